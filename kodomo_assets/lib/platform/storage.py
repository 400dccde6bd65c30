"""The storage resource: every store and zone, closed at rest.

One Dagster resource owns where data lives (KODOMO_HOME, KODOMO_INBOX), the file modes
(umask 077: 0600 files in 0700 folders, from creation on), the keys the pipeline holds
(storage key, pseudonym key, the center's public keys), encryption at rest (every DuckDB
file and sealed file has its own data key in the key table), staged atomic publishing, and
forgetting a month (crypto-shredding, then deletion).
"""

from __future__ import annotations

import glob
import grp
import hmac
import json
import os
import re
import shutil
import stat
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import TypedDict

import duckdb
from dagster import ConfigurableResource, InitResourceContext
from pydantic import PrivateAttr

from kodomo_assets.lib.platform import crypto
from kodomo_assets.lib.platform.keys import (
    CenterPrivate,
    CenterPublic,
    KeyProblem,
    read_center_public,
    read_secret,
)
from kodomo_assets.lib.platform.keytable import KeyTable
from kodomo_assets.lib.policy.approval import (
    Approval,
    PolicyError,
    clock_problem,
    load_policy,
    policy_path,
    read_clock,
)

UMASK = 0o077
MONTH = re.compile(r"\d{4}-\d{2}")
STAGING = "*.staging.duckdb*"


class StoreMissing(FileNotFoundError):
    """An upstream file is not there yet (its asset has not been materialized)."""


class Forgotten(TypedDict):
    """What forgetting (a month, or some kinds of its files) did: counts and paths only."""

    month: str
    keys_destroyed: int
    removed: list[str]


def restrict_umask() -> None:
    """0600 files and 0700 folders for everything this process creates from now on: DuckDB
    files, WALs, spill files, sealed archives, logs. Never a chmod after the fact."""
    os.umask(UMASK)


def load_crypto(con: duckdb.DuckDBPyConnection) -> None:
    """DuckDB's crypto module (OpenSSL) ships in duckdb-extension-httpfs and is LOADed from
    the package folder: nothing is downloaded at run time."""
    import duckdb_extension_httpfs

    folder = Path(duckdb_extension_httpfs.__file__).parent / "extensions"
    ext = next(folder.glob(f"v{duckdb.__version__}/httpfs.duckdb_extension"), None)
    if ext is None:
        raise RuntimeError(
            f"duckdb-extension-httpfs が duckdb {duckdb.__version__} 用ではありません"
        )
    con.execute(f"LOAD '{ext}'")


class KodomoStorage(ConfigurableResource):
    """部署別ストア・各領域・受信箱の置き場所と鍵（設定は環境変数から EnvVar で渡す）。"""

    home: str
    inbox: str
    storage_key_file: str
    pseudonym_key_file: str
    center_public_key_file: str
    duckdb_memory: str = "4GB"
    drop_group_prefix: str = "kodomo-"  # scripts/accounts.sh: one group per department
    # The approval list and the clock that decides whether its period covers today: owned
    # here, so nothing but this resource's configuration can move either.
    approval_file: str = ""  # empty: the council's list, data/policy/approval.csv
    mode: str = "production"  # production | demo (a demo approval) | test
    clock: str = ""  # YYYY-MM-DD instead of the calendar: tests only, refused in production

    _keytable: KeyTable | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: InitResourceContext) -> None:
        restrict_umask()
        self.check_settings()

    def check_settings(self) -> None:
        """Refuse at start-up a clock override in production, and an approval list of the
        wrong kind for the mode (a demo list in production, a real one in the demo)."""
        try:
            approval = self.approval()
        except (PolicyError, FileNotFoundError):
            return  # every asset refuses a broken list itself, naming its row
        problem = clock_problem(self.mode, self.clock, approval)
        if problem:
            raise PolicyError(problem)

    def approval(self) -> Approval:
        return load_policy(Path(self.approval_file) if self.approval_file else policy_path())

    def today(self) -> date:
        """The date of processing, in Japan: the calendar, or the test's clock."""
        return read_clock(self.clock)

    # --- places ---------------------------------------------------------------------------

    @property
    def home_path(self) -> Path:
        return Path(self.home).resolve()

    @property
    def inbox_path(self) -> Path:
        return Path(self.inbox).resolve()

    def department_store(self, department: str, month: str) -> Path:
        """One DuckDB file per department and month: its own zone, and no shared writer."""
        return self.home_path / "stores" / department / f"{month}.duckdb"

    def raw_archive(self, department: str, month: str, file: str) -> Path:
        return self.home_path / "stores" / department / "raw" / month / f"{file}.sealed"

    def zone_store(self, zone: str, month: str, name: str) -> Path:
        """The linkage, analysis and center zones: one DuckDB file per asset and month."""
        return self.home_path / "zones" / zone / month / f"{name}.duckdb"

    def zone_file(self, zone: str, month: str, name: str) -> Path:
        return self.home_path / "zones" / zone / month / name

    def report_path(self, month: str) -> Path:
        return self.home_path / "reports" / month / "committee_report.html"

    def log_path(self, name: str) -> Path:
        return self.home_path / "logs" / name

    def scratch_dir(self) -> Path:
        path = self.home_path / "tmp"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def relative(self, path: Path) -> Path:
        return path.resolve().relative_to(self.home_path)

    def label(self, path: Path) -> str:
        """A file's name for records: relative to KODOMO_HOME, or to the inbox."""
        path = path.resolve()
        if path.is_relative_to(self.home_path):
            return path.relative_to(self.home_path).as_posix()
        return f"受信箱/{path.relative_to(self.inbox_path).as_posix()}"

    # --- keys -----------------------------------------------------------------------------

    @property
    def keytable(self) -> KeyTable:
        if self._keytable is None:
            self._keytable = KeyTable(self.home_path / "keytable", self._storage_key)
        return self._keytable

    def _storage_key(self) -> bytes:
        if not self.storage_key_file:
            raise KeyProblem("保存用の鍵 (KODOMO_STORAGE_KEY_FILE) が設定されていません")
        return read_secret(Path(self.storage_key_file), "保存用の鍵", self.home_path)

    def pseudonym_key(self) -> bytes:
        return read_secret(Path(self.pseudonym_key_file), "仮名化鍵", self.home_path)

    def center_public(self) -> CenterPublic:
        return read_center_public(Path(self.center_public_key_file))

    def storage_mac_key(self, purpose: str) -> bytes:
        """A key derived from the storage key for MACs (chained logs, keyed name hashes)."""
        return crypto.derive(self._storage_key(), purpose)

    def name_tag(self, name: str) -> str:
        """A short keyed hash of a name that may be personal data (an unlisted file, an
        unknown header): the steward can match it (`kodomo inspect-inbox`), a reader of
        the event log cannot confirm a guess without the storage key."""
        key = self.storage_mac_key("names")
        return hmac.new(key, unicodedata.normalize("NFKC", name).encode(), "sha256").hexdigest()[:8]

    def describe_header(self, index: int, header: str) -> str:
        return f"{index + 1}列目（識別 {self.name_tag(header)}）"

    def _data_key(self, path: Path, create: bool) -> bytes:
        try:
            key = self.keytable.key(self.relative(path), create=create)
        except crypto.DecryptionError:
            raise KeyProblem(
                f"{self.relative(path)} の鍵を開けません（保存用の鍵が、鍵表を作った鍵と違います）"
            ) from None
        if key is None:
            raise StoreMissing(
                f"{self.relative(path)} の鍵がありません（未作成か、保存期間を過ぎて消去済み）"
            )
        return key

    # --- DuckDB ---------------------------------------------------------------------------

    def connect(self) -> duckdb.DuckDBPyConnection:
        """An in-memory connection that can open encrypted files; spill files go to a 0700
        scratch folder and are encrypted too."""
        con = duckdb.connect()
        load_crypto(con)
        con.execute(f"SET memory_limit = '{self.duckdb_memory}'")
        con.execute(f"SET temp_directory = '{self.scratch_dir()}'")
        con.execute("SET temp_file_encryption = true")
        return con

    def _attach(
        self, con: duckdb.DuckDBPyConnection, alias: str, path: Path, key: bytes, read_only: bool
    ) -> None:
        mode = ", READ_ONLY" if read_only else ""
        try:
            con.execute(f"ATTACH '{path}' AS {alias} (ENCRYPTION_KEY '{key.hex()}'{mode})")
        except duckdb.Error as err:
            # DuckDB's message names the file, never the key; ours says what to do
            raise KeyProblem(
                f"{self.relative(path)} を開けません（鍵が違うか、ファイルが壊れています）: "
                f"{type(err).__name__}"
            ) from None

    def attach(self, con: duckdb.DuckDBPyConnection, alias: str, path: Path) -> None:
        """Another store or zone file, read-only, beside a connection's own databases."""
        if not path.exists():
            raise StoreMissing(
                f"{self.relative(path)} がありません（先に上流の資産を実体化してください）"
            )
        self._attach(con, alias, path, self._data_key(path, create=False), read_only=True)

    @contextmanager
    def open(self, path: Path, write: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """One store or zone file as the connection's default database (writing only for
        the department stores, whose datasets are replaced in one transaction each)."""
        if not write and not path.exists():
            raise StoreMissing(
                f"{self.relative(path)} がありません（先に上流の資産を実体化してください）"
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        con = self.connect()
        try:
            self._attach(
                con, "store", path, self._data_key(path, create=write), read_only=not write
            )
            con.execute("USE store")
            yield con
        finally:
            con.close()

    @contextmanager
    def staged(
        self, final: Path, key: bytes | None = None
    ) -> Iterator[tuple[duckdb.DuckDBPyConnection, Path]]:
        """A fresh encrypted staging file beside `final`; `promote` renames it into place once
        it passes the gate, so readers see the last good file or the new one. A crash or a
        refusal leaves only the staging file, which is removed."""
        final.parent.mkdir(parents=True, exist_ok=True)
        stage = final.with_name(f".{final.stem}.{os.getpid()}.staging.duckdb")
        _remove(stage)
        _sweep_dead(final)
        con = self.connect()
        try:
            self._attach(
                con, "zone", stage, key or self._data_key(final, create=True), read_only=False
            )
            con.execute("USE zone")
            yield con, stage
        finally:
            con.close()
            _remove(stage)

    @staticmethod
    def promote(con: duckdb.DuckDBPyConnection, stage: Path, final: Path) -> None:
        con.execute("CHECKPOINT")
        con.execute("USE memory")
        for (alias,) in con.execute(
            "SELECT database_name FROM duckdb_databases() WHERE NOT internal "
            "AND database_name <> 'memory'"
        ).fetchall():
            con.execute(f"DETACH {alias}")
        con.close()
        os.replace(stage, final)

    # --- the center zone: files only the center's private key opens -------------------------

    @contextmanager
    def staged_for_center(self, final: Path) -> Iterator[tuple[duckdb.DuckDBPyConnection, Path]]:
        """Staged like any zone file, but under a fresh data key that is wrapped to the
        center's public key and then dropped: the pipeline can write the file, never read it."""
        public = self.center_public()
        data_key = crypto.new_key()
        with self.staged(final, key=data_key) as (con, stage):
            yield con, stage
            if not stage.exists():  # promoted: record the envelope, forget the key
                envelope = crypto.wrap_to_public(
                    public.encryption, data_key, self.relative(final).as_posix()
                )
                self.keytable.put_envelope(self.relative(final), envelope)

    @contextmanager
    def open_as_center(
        self, path: Path, private: CenterPrivate
    ) -> Iterator[duckdb.DuckDBPyConnection]:
        """The center's own commands: unwrap the file's key with the private key."""
        if not path.exists():
            raise StoreMissing(f"{self.relative(path)} がありません")
        envelope = self.keytable.envelope(self.relative(path))
        if envelope is None:
            raise StoreMissing(
                f"{self.relative(path)} の鍵がありません（保存期間を過ぎて消去済みか、未作成）"
            )
        try:
            key = crypto.unwrap_with_private(
                private.encryption, envelope, self.relative(path).as_posix()
            )
        except crypto.DecryptionError:
            raise KeyProblem(
                "センターの秘密鍵が、このファイルを暗号化した公開鍵と対になっていません"
            ) from None
        con = self.connect()
        try:
            self._attach(con, "center", path, key, read_only=True)
            con.execute("USE center")
            yield con
        finally:
            con.close()

    # --- sealed files (raw exports, models) --------------------------------------------------

    def seal(self, path: Path, data: bytes | Path) -> None:
        """Encrypt `data` (bytes, or a file read chunk by chunk, so a city-size export is
        never held whole) into `path`, written under a temporary name and renamed."""
        key = self._data_key(path, create=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as fh:
            chunks = crypto.chunked(data) if isinstance(data, bytes) else crypto.file_chunks(data)
            for part in crypto.seal_chunks(key, chunks, self.relative(path).as_posix()):
                fh.write(part)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)

    def unseal(self, path: Path) -> bytes:
        if not path.exists():
            raise StoreMissing(f"{self.relative(path)} がありません")
        return crypto.open_sealed(
            self._data_key(path, create=False), path.read_bytes(), self.relative(path).as_posix()
        )

    # --- forgetting --------------------------------------------------------------------------

    def month_files(self, month: str) -> list[Path]:
        """Every file of a month: department stores and raw archives, zones, staging files,
        the month's folders, and the inbox folder with whatever failed delivery is left in
        it. Committee reports (aggregates) are kept."""
        home = self.home_path
        found: list[Path] = []
        for pattern in (
            f"stores/*/{month}.duckdb*",
            f"stores/*/.{month}.*",
            f"stores/*/raw/{month}",
            f"zones/*/{month}",
        ):
            found += [Path(p) for p in glob.glob(str(home / pattern))]
        inbox = self.inbox_path / month
        return sorted(found) + ([inbox] if inbox.is_dir() else [])

    def months_on_disk(self) -> list[str]:
        months = set(self.keytable.scopes()) - {"global"}
        for p in self.home_path.glob("stores/*/*.duckdb"):
            months.add(p.stem)
        for p in self.home_path.glob("zones/*/*"):
            if MONTH.fullmatch(p.name):
                months.add(p.name)
        return sorted(m for m in months if MONTH.fullmatch(m))

    def forget_month(self, month: str) -> Forgotten:
        """Destroy the month's data keys first (crypto-shredding: copies and backups become
        unreadable), then delete its files. Returns what was done, counts and paths only."""
        files = self.month_files(month)
        keys = self.keytable.forget(month)
        removed: list[str] = []
        for path in files:
            removed += (
                [self.label(p) for p in path.rglob("*") if p.is_file()]
                if path.is_dir()
                else [self.label(path)]
            )
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
        return {"month": month, "keys_destroyed": keys, "removed": removed}

    # --- the inbox ---------------------------------------------------------------------------

    def drop_problem(self, path: Path, department: str) -> str | None:
        """Why a delivered file must not be read, or None. Only a regular file is read, never
        a symlink (a clerk could point one at another department's drop). Where the
        department groups exist (scripts/accounts.sh), the file must carry its department's
        group: any clerk can create any file name in the shared month folder."""
        info = path.lstat()
        if not stat.S_ISREG(info.st_mode):
            return "通常のファイルではありません（シンボリックリンクなどは受け取りません）"
        try:
            expected = grp.getgrnam(f"{self.drop_group_prefix}{department}").gr_gid
        except KeyError:
            return None  # no department accounts on this machine (a demo or a test)
        if info.st_gid != expected:
            return f"{self.drop_group_prefix}{department} 以外のアカウントが置いたファイルです（受け取りません）"
        return None

    def archive_export(
        self,
        department: str,
        month: str,
        source: Path,
        read: os.stat_result | None = None,
        redact: Callable[[bytes], bytes] | None = None,
    ) -> bool:
        """After a successful ingest the plaintext export leaves the inbox: sealed into the
        department's raw archive (which reruns read and the purge forgets), then deleted.
        `read` is the file as it was read: the export is first renamed away (atomic, so a
        clerk may deliver again meanwhile), and a file that is not the one that was read is
        put back for the next run instead. True when the export was archived."""
        taken = source.with_name(f".{source.name}.{os.getpid()}.archiving")
        os.rename(source, taken)
        now = taken.stat()
        if read is not None and (now.st_ino, now.st_size, now.st_mtime_ns) != (
            read.st_ino,
            read.st_size,
            read.st_mtime_ns,
        ):
            if not source.exists():
                os.rename(taken, source)  # delivered again after it was read: not ours to seal
            else:
                taken.unlink()  # an intermediate delivery, superseded by the one in place
            return False
        # cells the content scan hit are masked in the sealed copy too: no store keeps them
        self.seal(
            self.raw_archive(department, month, source.name),
            redact(taken.read_bytes()) if redact else taken,
        )
        taken.unlink()
        return True

    def archived_export(self, department: str, month: str, file: str) -> bytes | None:
        target = self.raw_archive(department, month, file)
        return self.unseal(target) if target.exists() else None


def keep_only(con: duckdb.DuckDBPyConnection, tables: Iterable[str]) -> None:
    """Drop every view and working table of the staging file but the published ones."""
    keep = set(tables)
    for name, kind in con.execute(
        "SELECT table_name, 'TABLE' FROM duckdb_tables() WHERE database_name = current_database() "
        "UNION ALL SELECT view_name, 'VIEW' FROM duckdb_views() "
        "WHERE database_name = current_database() AND NOT internal"
    ).fetchall():
        if name not in keep:
            con.execute(f'DROP {kind} IF EXISTS "{name}"')


def write_json(path: Path, doc: object) -> None:
    """A small JSON file written under a temporary name and renamed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(doc, ensure_ascii=False, indent=2), encoding="utf-8")
    os.replace(tmp, path)


def _sweep_dead(final: Path) -> None:
    """Staging files (and WALs) that a killed process left beside `final`: another pid's,
    removed only once that process is gone, so a concurrent writer keeps its own."""
    prefix = f".{final.stem}."
    for p in final.parent.glob(f"{glob.escape(prefix)}{STAGING}"):
        pid = p.name[len(prefix) :].split(".", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            p.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove(path: Path) -> None:
    for p in (path, path.with_name(path.name + ".wal")):
        p.unlink(missing_ok=True)

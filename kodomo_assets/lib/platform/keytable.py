"""The key table: each stored file's random data key, wrapped by the storage key.

One JSON file per month (`<keytable>/<YYYY-MM>.json`), so forgetting a month is deleting
one file: once it is gone, no remaining key opens that month's stores, archives or zones,
nor any backup copy of them (crypto-shredding). Keys for files of no month live in
`global.json`. Updates are whole-file rewrites under a lock, renamed into place.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from kodomo_assets.lib.platform.crypto import DecryptionError, derive, new_key, unwrap, wrap

MONTH = re.compile(r"^(\d{4}-\d{2})(\.|$)")
GLOBAL = "global"


def scope_of(relative: Path) -> str:
    """The month a stored file belongs to: the first path part that is (or starts) YYYY-MM."""
    for part in relative.parts:
        m = MONTH.match(part)
        if m:
            return m.group(1)
    return GLOBAL


class KeyTable:
    def __init__(self, folder: Path, storage_key: Callable[[], bytes]):
        """`storage_key` is read only when a key is wrapped or unwrapped: the center's
        commands read their envelopes without it."""
        self.folder = folder
        self._storage_key = storage_key
        self._kek_cache: bytes | None = None

    @property
    def _kek(self) -> bytes:
        if self._kek_cache is None:
            self._kek_cache = derive(self._storage_key(), "keytable-wrap")
        return self._kek_cache

    def _file(self, scope: str) -> Path:
        return self.folder / f"{scope}.json"

    @contextmanager
    def _locked(self, scope: str) -> Iterator[dict]:
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        with open(self.folder / f".{scope}.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield self._read(scope)

    def _read(self, scope: str) -> dict:
        try:
            return json.loads(self._file(scope).read_text(encoding="utf-8"))["keys"]
        except FileNotFoundError:
            return {}

    def _write(self, scope: str, entries: dict) -> None:
        tmp = self.folder / f".{scope}.{os.getpid()}.tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump({"scope": scope, "keys": entries}, fh, indent=1, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self._file(scope))

    def key(self, relative: Path, create: bool) -> bytes | None:
        """The file's data key; a new one is recorded before the file is ever written."""
        name, scope = relative.as_posix(), scope_of(relative)
        entries = self._read(scope)
        if name not in entries and create:
            with self._locked(scope) as entries:
                if name not in entries:
                    entries[name] = wrap(self._kek, new_key(), name)
                    self._write(scope, entries)
        entry = entries.get(name)
        if isinstance(entry, dict):
            return None  # a center file: only the center's private key unwraps it
        return unwrap(self._kek, entry, name) if entry is not None else None

    def put_envelope(self, relative: Path, envelope: dict[str, str]) -> None:
        """A center file's data key, wrapped to the center's public key (not to ours)."""
        name, scope = relative.as_posix(), scope_of(relative)
        with self._locked(scope) as entries:
            entries[name] = envelope
            self._write(scope, entries)

    def envelope(self, relative: Path) -> dict[str, str] | None:
        entry = self._read(scope_of(relative)).get(relative.as_posix())
        return entry if isinstance(entry, dict) else None

    def rewrap(self, new_storage_key: bytes) -> int:
        """Storage key rotation: every data key re-wrapped under the new key, month by month
        (each file renamed into place); center envelopes are not ours and stay as they are."""
        new_kek, count = derive(new_storage_key, "keytable-wrap"), 0
        for scope in self.scopes():
            with self._locked(scope) as entries:
                for name, entry in entries.items():
                    if not isinstance(entry, str):
                        continue
                    try:
                        entries[name] = wrap(new_kek, unwrap(self._kek, entry, name), name)
                        count += 1
                    except DecryptionError:
                        unwrap(new_kek, entry, name)  # done by an interrupted earlier run
                self._write(scope, entries)
        self._kek_cache = new_kek
        return count

    def scopes(self) -> list[str]:
        return sorted(p.stem for p in self.folder.glob("*.json")) if self.folder.is_dir() else []

    def entries(self, scope: str) -> list[str]:
        return sorted(self._read(scope))

    def forget_entries(self, scope: str, names: set[str]) -> int:
        """Destroy some of a month's data keys (one kind of output whose 保存期間 ended
        before the month's others): the table is rewritten without them."""
        with self._locked(scope) as entries:
            gone = [n for n in entries if n in names]
            for n in gone:
                del entries[n]
            if gone:
                self._write(scope, entries)
        return len(gone)

    def forget(self, scope: str) -> int:
        """Destroy a month's data keys. The file is overwritten before it is unlinked, so
        the wrapped keys do not linger in the file's old blocks on a simple filesystem."""
        with self._locked(scope) as entries:
            path = self._file(scope)
            if path.exists():
                size = path.stat().st_size
                with open(path, "r+b") as fh:
                    fh.write(os.urandom(size))
                    fh.flush()
                    os.fsync(fh.fileno())
                path.unlink()
        (self.folder / f".{scope}.lock").unlink(missing_ok=True)
        return len(entries)

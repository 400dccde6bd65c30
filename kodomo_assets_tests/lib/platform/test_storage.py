"""The storage resource as an attacker with a shell would meet it: modes, files that open
only with their key, forgetting a month, and a review list only the center can read."""

import os
import shutil
import stat
from pathlib import Path

import duckdb
import pytest

from kodomo_assets.lib.platform.keys import KeyProblem, center_keygen, read_center_private
from kodomo_assets.lib.platform.storage import KodomoStorage, StoreMissing, restrict_umask
from kodomo_assets_tests.conftest import make_keys, make_storage

MONTH = "2022-10"


def write_table(storage: KodomoStorage, path: Path, rows: int = 3) -> None:
    with storage.staged(path) as (con, stage):
        con.execute(
            f"CREATE TABLE t AS SELECT range AS id, 'secret-' || range AS name FROM range({rows})"
        )
        storage.promote(con, stage, path)


def test_files_and_folders_are_private_from_creation(storage: KodomoStorage) -> None:
    restrict_umask()
    path = storage.zone_store("analysis", MONTH, "x")
    write_table(storage, path)
    storage.seal(storage.raw_archive("shimin", MONTH, "jumin.csv"), b"a,b\n1,2\n")
    for p in storage.home_path.rglob("*"):
        mode = stat.S_IMODE(p.stat().st_mode)
        assert mode == (0o700 if p.is_dir() else 0o600), (p, oct(mode))


def test_a_store_opens_only_with_its_own_key(
    storage: KodomoStorage, keys: Path, tmp_path: Path
) -> None:
    path = storage.zone_store("analysis", MONTH, "x")
    write_table(storage, path)
    with storage.open(path) as con:
        assert con.execute("SELECT count(*) FROM t").fetchone() == (3,)
    assert b"secret-1" not in path.read_bytes()
    with pytest.raises(duckdb.Error, match="encrypted"):  # a shell user with DuckDB and no key
        duckdb.connect(str(path), read_only=True).execute("SELECT * FROM t")
    con = duckdb.connect()
    with pytest.raises(duckdb.Error):
        con.execute(f"ATTACH '{path}' AS s (READ_ONLY)")
    # another storage key cannot unwrap the file's data key from the key table
    other = make_storage(storage.home_path, storage.inbox_path, make_keys(tmp_path / "other"))
    with pytest.raises(KeyProblem, match="保存用の鍵"):
        other.open(path).__enter__()


def test_every_file_has_its_own_data_key(storage: KodomoStorage) -> None:
    a, b = storage.zone_store("analysis", MONTH, "a"), storage.zone_store("analysis", MONTH, "b")
    write_table(storage, a)
    write_table(storage, b)
    ka = storage.keytable.key(storage.relative(a), create=False)
    kb = storage.keytable.key(storage.relative(b), create=False)
    assert ka and kb and ka != kb
    shutil.copy(a, b)  # a file moved under another name does not open with that name's key
    with pytest.raises(KeyProblem):
        storage.open(b).__enter__()


def test_forgetting_a_month_makes_its_backups_unreadable(
    storage: KodomoStorage, tmp_path: Path
) -> None:
    old, kept = (
        storage.zone_store("analysis", "2022-04", "x"),
        storage.zone_store("analysis", MONTH, "x"),
    )
    write_table(storage, old)
    write_table(storage, kept)
    raw = storage.raw_archive("shimin", "2022-04", "jumin.csv")
    storage.seal(raw, b"secret export")
    backup = tmp_path / "backup"
    shutil.copytree(storage.home_path, backup)
    done = storage.forget_month("2022-04")
    assert done["keys_destroyed"] == 2 and not old.exists() and not raw.exists()
    with storage.open(kept) as con:  # the other month is untouched
        assert con.execute("SELECT count(*) FROM t").fetchone() == (3,)
    # put the backup back in place: with every key that remains, it no longer opens
    for path in (old, raw):
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(backup / storage.relative(path), path)
    with pytest.raises(StoreMissing):
        storage.open(old).__enter__()
    with pytest.raises(StoreMissing):
        storage.unseal(raw)
    # the key table is the one thing a data backup must not hold (README): it is gone here
    assert not (storage.home_path / "keytable" / "2022-04.json").exists()


def test_a_sealed_file_detects_tampering_and_the_wrong_name(storage: KodomoStorage) -> None:
    path = storage.raw_archive("shimin", MONTH, "jumin.csv")
    storage.seal(path, b"x" * 100)
    assert storage.unseal(path) == b"x" * 100 and b"xxxx" not in path.read_bytes()
    blob = bytearray(path.read_bytes())
    blob[-5] ^= 1
    path.write_bytes(bytes(blob))
    from kodomo_assets.lib.platform.crypto import DecryptionError

    with pytest.raises(DecryptionError):
        storage.unseal(path)


def test_the_review_list_is_written_by_the_pipeline_and_read_only_by_the_center(
    storage: KodomoStorage, keys: Path, tmp_path: Path
) -> None:
    path = storage.zone_store("center", MONTH, "review_list")
    with storage.staged_for_center(path) as (con, stage):
        con.execute("CREATE TABLE review_list AS SELECT '0000001234' AS atena_no")
        storage.promote(con, stage, path)
    # the pipeline (storage key, pseudonym key, center public key) cannot open what it wrote
    assert storage.keytable.key(storage.relative(path), create=False) is None
    with pytest.raises(StoreMissing):
        storage.open(path).__enter__()
    with storage.open_as_center(path, read_center_private(keys / "center")) as con:
        assert con.execute("SELECT atena_no FROM review_list").fetchone() == ("0000001234",)
    center_keygen(tmp_path / "impostor", None)
    with pytest.raises(KeyProblem, match="対になっていません"):
        storage.open_as_center(path, read_center_private(tmp_path / "impostor")).__enter__()


def test_keys_beside_the_data_or_open_to_others_are_refused(
    storage: KodomoStorage, keys: Path
) -> None:
    inside = storage.home_path / "storage.key"
    inside.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(keys / "storage.key", inside)
    with pytest.raises(KeyProblem, match="データと同じ場所"):
        make_storage(storage.home_path, storage.inbox_path, keys).model_copy(
            update={"storage_key_file": str(inside)}
        ).keytable.key(Path("x"), create=True)
    os.chmod(keys / "pseudonym.key", 0o644)
    with pytest.raises(KeyProblem, match="chmod 600"):
        storage.pseudonym_key()


def test_rotating_the_storage_key_keeps_every_file_readable(
    storage: KodomoStorage, tmp_path: Path
) -> None:
    from kodomo_assets.lib.platform.keys import create_secret, read_secret

    path = storage.zone_store("analysis", MONTH, "x")
    write_table(storage, path)
    create_secret(tmp_path / "new.key")
    new = read_secret(tmp_path / "new.key", "新しい鍵")
    assert storage.keytable.rewrap(new) == 1
    old = make_storage(storage.home_path, storage.inbox_path, Path(storage.storage_key_file).parent)
    assert old.keytable.rewrap(new) == 0  # run again (after an interruption): nothing left to do
    rotated = storage.model_copy(update={"storage_key_file": str(tmp_path / "new.key")})
    with rotated.open(path) as con:
        assert con.execute("SELECT count(*) FROM t").fetchone() == (3,)
    stale = make_storage(
        storage.home_path, storage.inbox_path, Path(storage.storage_key_file).parent
    )
    with pytest.raises(KeyProblem, match="保存用の鍵"):  # the old key no longer opens anything
        stale.open(path).__enter__()


def test_an_export_delivered_again_while_it_was_read_stays_for_the_next_run(
    storage: KodomoStorage,
) -> None:
    folder = storage.inbox_path / MONTH
    folder.mkdir(parents=True)
    drop = folder / "jumin.csv"
    drop.write_bytes(b"first")
    read = drop.stat()
    drop.unlink()
    drop.write_bytes(b"second, corrected")  # the clerk re-delivers during the ingest
    assert not storage.archive_export("shimin", MONTH, drop, read)
    assert drop.read_bytes() == b"second, corrected"
    assert not storage.raw_archive("shimin", MONTH, "jumin.csv").exists()
    assert [p.name for p in folder.iterdir()] == ["jumin.csv"]
    assert storage.archive_export("shimin", MONTH, drop, drop.stat())
    assert storage.archived_export("shimin", MONTH, "jumin.csv") == b"second, corrected"
    assert list(folder.iterdir()) == []

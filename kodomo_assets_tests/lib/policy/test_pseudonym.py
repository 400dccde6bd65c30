"""Keyed pseudonyms and where their key may live (lib/platform/keys.py, the storage resource)."""

import hmac
import os
import stat
import threading
from concurrent.futures import ThreadPoolExecutor
from hashlib import sha256
from pathlib import Path

import duckdb
import pytest

from kodomo_assets.lib.platform.keys import KeyProblem, create_secret, read_secret
from kodomo_assets.lib.platform.storage import KodomoStorage
from kodomo_assets.lib.policy.pseudonym import register_udfs, token
from kodomo_assets_tests.conftest import make_storage

LABEL = "仮名化鍵"


def with_pseudonym_key(storage: KodomoStorage, path: Path) -> KodomoStorage:
    return KodomoStorage(
        home=storage.home,
        inbox=storage.inbox,
        storage_key_file=storage.storage_key_file,
        pseudonym_key_file=str(path),
        center_public_key_file=storage.center_public_key_file,
        mode=storage.mode,
        clock=storage.clock,
    )


def test_tokens_are_keyed_hmac_with_separate_purposes() -> None:
    key = bytes(range(32))
    expected = hmac.new(key, b"child\x1f0001234567", sha256).hexdigest()[:32]
    assert token(key, "child", "0001234567") == expected
    assert token(key, "household", "0001234567") != expected
    assert token(bytes(32), "child", "0001234567") != expected
    con = duckdb.connect()
    register_udfs(con, key)
    got = con.execute("SELECT pseudonym_child('0001234567'), pseudonym_child(NULL)").fetchone()
    assert got == (expected, None)


@pytest.mark.parametrize("size", [1, 32, 64, 65, 100])
def test_the_sql_function_is_hmac_for_every_key_length(size: int) -> None:
    """The UDF prepares HMAC's padded key states itself: keys shorter than, equal to and
    longer than SHA-256's 64-byte block (hashed first) must all give hmac's bytes."""
    key = os.urandom(size)
    values = ["0001234567", "", "宛名番号", "9" * 300]
    con = duckdb.connect()
    register_udfs(con, key)
    for purpose in ("child", "household"):
        got = [
            r[0]
            for r in con.execute(
                f"SELECT pseudonym_{purpose}(v) FROM unnest(?) t(v)", [values]
            ).fetchall()
        ]
        assert got == [
            hmac.new(key, purpose.encode() + b"\x1f" + v.encode(), sha256).hexdigest()[:32]
            for v in values
        ]


def test_a_created_key_is_private_and_never_recreated(tmp_path: Path) -> None:
    path = tmp_path / "secrets" / "pseudonym.key"
    assert create_secret(path)
    key = read_secret(path, LABEL)
    assert len(key) == 32 and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert not create_secret(path)  # reused, not recreated
    assert read_secret(path, LABEL) == key


def test_the_storage_resource_reads_its_configured_key(storage: KodomoStorage, keys: Path) -> None:
    expected = bytes.fromhex((keys / "pseudonym.key").read_text().strip())
    assert storage.pseudonym_key() == expected
    assert token(storage.pseudonym_key(), "child", "0001234567") == token(
        expected, "child", "0001234567"
    )


def test_a_missing_key_is_an_error_and_is_never_created(kodomo_env, keys: Path) -> None:
    inbox, home = kodomo_env
    absent = keys / "absent.key"
    storage = with_pseudonym_key(make_storage(home, inbox, keys), absent)
    with pytest.raises(KeyProblem, match="がありません"):
        storage.pseudonym_key()
    assert not absent.exists()


def test_a_key_beside_the_data_or_readable_by_others_is_refused(kodomo_env, keys: Path) -> None:
    inbox, home = kodomo_env
    beside = home / "pseudonym.key"
    assert create_secret(beside)
    with pytest.raises(KeyProblem, match="データと同じ場所"):
        read_secret(beside, LABEL, home)
    storage = with_pseudonym_key(make_storage(home, inbox, keys), beside)
    with pytest.raises(KeyProblem, match="データと同じ場所") as err:
        storage.pseudonym_key()
    assert beside.read_text().strip() not in str(err.value)  # never quotes the key
    shared = keys / "pseudonym.key"
    for mode in (0o640, 0o604):
        os.chmod(shared, mode)
        with pytest.raises(KeyProblem, match="chmod 600"):
            read_secret(shared, LABEL, home)
        with pytest.raises(KeyProblem, match="chmod 600"):
            make_storage(home, inbox, keys).pseudonym_key()


def test_a_short_or_non_hex_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "pseudonym.key"
    path.write_text("0f" * 8)
    os.chmod(path, 0o600)
    with pytest.raises(KeyProblem, match="短すぎます"):
        read_secret(path, LABEL)
    path.write_text("zz" * 32)
    with pytest.raises(KeyProblem, match="16進数") as err:
        read_secret(path, LABEL)
    assert "zz" not in str(err.value)
    path.write_text("0f" * 32 + "\n")
    assert read_secret(path, LABEL) == bytes([15]) * 32


def test_creators_starting_at_once_on_a_fresh_machine_share_one_key(tmp_path: Path) -> None:
    path = tmp_path / "secrets" / "pseudonym.key"
    start = threading.Barrier(8)

    def create_then_read() -> tuple[bool, bytes]:
        start.wait()
        made = create_secret(path)
        return made, read_secret(path, LABEL)

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(lambda _: create_then_read(), range(8)))
    assert sum(made for made, _ in outcomes) == 1  # exactly one creator won
    loaded = {key for _, key in outcomes}
    assert len(loaded) == 1 and len(next(iter(loaded))) == 32
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["pseudonym.key"]  # no temp file left behind

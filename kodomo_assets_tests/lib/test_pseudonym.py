"""Keyed pseudonyms and where their key may live."""

import hmac
import os
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from hashlib import sha256
from pathlib import Path

import duckdb
import pytest

from kodomo_assets.lib.pseudonym import PseudonymKeyError, load_key, register_udfs, token


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


def test_demo_mode_creates_a_private_key_with_a_warning(pseudonym_key: Path) -> None:
    assert not pseudonym_key.exists()
    with pytest.warns(UserWarning, match="デモ用の仮名化鍵"):
        key = load_key()
    assert len(key) == 32 and pseudonym_key.stat().st_mode & 0o777 == 0o600
    assert load_key() == key  # reused, not recreated


def test_without_demo_mode_a_missing_key_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KODOMO_DEMO")
    with pytest.raises(PseudonymKeyError, match="仮名化鍵がありません"):
        load_key()


def test_a_key_beside_the_data_or_readable_by_others_is_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pseudonym_key: Path) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("KODOMO_HOME", str(home))
    monkeypatch.setenv("KODOMO_KEY_FILE", str(home / "pseudonym.key"))
    with pytest.raises(PseudonymKeyError, match="データと同じ場所"):
        load_key()
    monkeypatch.setenv("KODOMO_KEY_FILE", str(pseudonym_key))
    pseudonym_key.parent.mkdir(parents=True)
    pseudonym_key.write_text("ab" * 32)
    os.chmod(pseudonym_key, 0o644)
    with pytest.raises(PseudonymKeyError, match="chmod 600"):
        load_key()


def test_key_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KODOMO_PSEUDONYM_KEY", "0f" * 32)
    assert load_key() == bytes([15]) * 32
    monkeypatch.setenv("KODOMO_PSEUDONYM_KEY", "0f" * 8)
    with pytest.raises(PseudonymKeyError, match="短すぎます"):
        load_key()


def test_runs_starting_at_once_on_a_fresh_demo_machine_share_one_key(
        pseudonym_key: Path) -> None:
    assert not pseudonym_key.exists()
    start = threading.Barrier(8)

    def first_load() -> bytes:
        start.wait()
        return load_key()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with ThreadPoolExecutor(8) as pool:
            loaded = list(pool.map(lambda _: first_load(), range(8)))
    assert len(set(loaded)) == 1 and len(loaded[0]) == 32
    assert os.stat(pseudonym_key).st_mode & 0o777 == 0o600
    assert [p.name for p in pseudonym_key.parent.iterdir() if p.name.startswith(".")] == []

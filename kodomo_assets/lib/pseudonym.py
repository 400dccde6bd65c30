"""Keyed pseudonyms: HMAC-SHA256(key, purpose || 0x1F || id), one purpose per kind of id.

An unkeyed hash of a 10-digit 宛名番号 is brute-forced in about 1.6 core-hours, so the key
is what protects the analysis zone. It comes from KODOMO_PSEUDONYM_KEY (hex) or the file
named by KODOMO_KEY_FILE; it is never logged and never kept under KODOMO_HOME beside the
data. Only demo mode (KODOMO_DEMO=1) creates a key, with mode 0600 and a warning.
"""

from __future__ import annotations

import hmac
import os
import secrets
import stat
import warnings
from hashlib import sha256
from pathlib import Path

import duckdb
import pyarrow as pa

from kodomo_assets.lib.paths import kodomo_home

PURPOSES = ("child", "household")
TOKEN_HEX = 32  # 128 bits of the HMAC: collisions are negligible at city scale
TOKEN_PATTERN = f"[0-9a-f]{{{TOKEN_HEX}}}"


class PseudonymKeyError(RuntimeError):
    """The pseudonym key is missing, unsafe or stored beside the data."""


def default_key_file() -> Path:
    base = Path(os.environ.get("XDG_CONFIG_HOME", Path.home() / ".config"))
    return base / "kodomo_assets" / "pseudonym.key"


def _check_location(path: Path) -> None:
    home = kodomo_home()
    if path.resolve().is_relative_to(home):
        raise PseudonymKeyError(f"仮名化鍵 {path} がデータと同じ場所 ({home}) にあります。"
                        "鍵はデータの外に置いてください。")


def load_key() -> bytes:
    env = os.environ.get("KODOMO_PSEUDONYM_KEY")
    if env:
        try:
            key = bytes.fromhex(env.strip())
        except ValueError:
            raise PseudonymKeyError("KODOMO_PSEUDONYM_KEY は16進数の鍵（32バイト以上）です") from None
        if len(key) < 32:
            raise PseudonymKeyError("KODOMO_PSEUDONYM_KEY が短すぎます（32バイト以上）")
        return key
    path = Path(os.environ.get("KODOMO_KEY_FILE") or default_key_file())
    _check_location(path)
    if not path.exists():
        if os.environ.get("KODOMO_DEMO") != "1":
            raise PseudonymKeyError(f"仮名化鍵がありません。KODOMO_PSEUDONYM_KEY か KODOMO_KEY_FILE "
                            f"({path}) を設定してください。")
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32) + "\n")
        warnings.warn(f"デモ用の仮名化鍵を作成しました: {path}（権限 0600）。本番では鍵を管理者が"
                      "用意し、KODOMO_KEY_FILE で指定してください。", stacklevel=2)
    if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise PseudonymKeyError(f"仮名化鍵 {path} が所有者以外にも読めます。chmod 600 としてください。")
    key = bytes.fromhex(path.read_text().strip())
    if len(key) < 32:
        raise PseudonymKeyError(f"仮名化鍵 {path} が短すぎます（32バイト以上）")
    return key


def token(key: bytes, purpose: str, value: str) -> str:
    if purpose not in PURPOSES:
        raise ValueError(purpose)
    msg = purpose.encode() + b"\x1f" + value.encode()
    return hmac.new(key, msg, sha256).hexdigest()[:TOKEN_HEX]


def register_udfs(con: duckdb.DuckDBPyConnection, key: bytes) -> None:
    """pseudonym_child(id) and pseudonym_household(id) in SQL. The key stays in Python:
    it never appears in SQL text, which DuckDB may echo in an error."""
    for purpose in PURPOSES:
        con.create_function(f"pseudonym_{purpose}", _vectorised(key, purpose), ["VARCHAR"], "VARCHAR",
                            type="arrow", null_handling="special", side_effects=False)


def _vectorised(key: bytes, purpose: str):  # noqa: ANN202 - a DuckDB arrow UDF
    def fn(values: pa.Array) -> pa.Array:
        return pa.array([None if v is None else token(key, purpose, v) for v in values.to_pylist()],
                        pa.string())
    return fn

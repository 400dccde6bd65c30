"""Secrets: the pseudonym key (analysis zone) and the center key (center zone).

Each comes from an environment variable (hex) or a 0600 file named by another; neither is
ever logged nor kept under KODOMO_HOME beside the data. Only demo mode (KODOMO_DEMO=1)
creates a missing key file, with a warning.
"""

from __future__ import annotations

import os
import secrets
import stat
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

from kodomo_assets.lib.paths import kodomo_home


class KeyProblem(RuntimeError):
    """A key is missing, unsafe or stored beside the data."""


@dataclass(frozen=True)
class KeySpec:
    label: str  # Japanese, for messages
    env: str  # hex value
    file_env: str  # path of a key file
    file_name: str  # default file under ~/.config/kodomo_assets/


PSEUDONYM = KeySpec("仮名化鍵", "KODOMO_PSEUDONYM_KEY", "KODOMO_KEY_FILE", "pseudonym.key")
CENTER = KeySpec("センター鍵", "KODOMO_CENTER_KEY", "KODOMO_CENTER_KEY_FILE", "center.key")


def default_key_file(spec: KeySpec) -> Path:
    base = Path(os.environ.get("XDG_CONFIG_HOME", Path.home() / ".config"))
    return base / "kodomo_assets" / spec.file_name


def _hex(text: str, what: str) -> bytes:
    try:
        key = bytes.fromhex(text.strip())
    except ValueError:
        raise KeyProblem(f"{what} は16進数の鍵（32バイト以上）です") from None
    if len(key) < 32:
        raise KeyProblem(f"{what} が短すぎます（32バイト以上）")
    return key


def _create_demo_key(path: Path) -> bool:
    """Write a whole key under a temporary name, then link it into place: when two runs
    start at once on a fresh demo machine, one key wins and both read it complete."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mode 0600
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32) + "\n")
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    finally:
        os.unlink(tmp)


def load(spec: KeySpec) -> bytes:
    if os.environ.get(spec.env):
        return _hex(os.environ[spec.env], spec.env)
    path = Path(os.environ.get(spec.file_env) or default_key_file(spec))
    home = kodomo_home()
    if path.resolve().is_relative_to(home):
        raise KeyProblem(f"{spec.label} {path} がデータと同じ場所 ({home}) にあります。"
                         "鍵はデータの外に置いてください。")
    if not path.exists():
        if os.environ.get("KODOMO_DEMO") != "1":
            raise KeyProblem(f"{spec.label}がありません。{spec.env} か {spec.file_env} ({path}) を"
                             "設定してください。")
        if _create_demo_key(path):
            warnings.warn(f"デモ用の{spec.label}を作成しました: {path}（権限 0600）。本番では鍵を管理者が"
                          f"用意し、{spec.file_env} で指定してください。", stacklevel=3)
    if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyProblem(f"{spec.label} {path} が所有者以外にも読めます。chmod 600 としてください。")
    return _hex(path.read_text(), f"{spec.label} {path}")

"""Key files: the pipeline's secrets (storage key, pseudonym key), the center's public keys
(given to the pipeline) and the center's private keys (kept by the center).

A secret is a 0600 file of 32+ bytes as hex, never under KODOMO_HOME beside the data,
never logged. The center's private keys are PKCS#8 PEM files, encrypted with a passphrase
that only center staff know (KODOMO_CENTER_PASSPHRASE, or asked at the terminal).
"""

from __future__ import annotations

import getpass
import json
import os
import secrets
import stat
import sys
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from kodomo_assets.lib.platform.crypto import b64, fingerprint, public_raw, unb64

ENCRYPTION_FILE, SIGNING_FILE, PUBLIC_FILE = (
    "center_encryption.pem",
    "center_signing.pem",
    "center_public.json",
)
PASSPHRASE_ENV = "KODOMO_CENTER_PASSPHRASE"


class KeyProblem(RuntimeError):
    """A key is missing, unsafe, stored beside the data, or the wrong one. Never quotes a key."""


def _private_file_check(path: Path, label: str, home: Path | None) -> None:
    if home is not None and path.resolve().is_relative_to(home.resolve()):
        raise KeyProblem(
            f"{label} {path} がデータと同じ場所 ({home}) にあります。鍵はデータの外に置いてください。"
        )
    if not path.is_file():
        raise KeyProblem(f"{label} {path} がありません。")
    if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyProblem(f"{label} {path} が所有者以外にも読めます。chmod 600 としてください。")


def read_secret(path: Path, label: str, home: Path | None = None) -> bytes:
    _private_file_check(path, label, home)
    try:
        key = bytes.fromhex(path.read_text().strip())
    except ValueError:
        raise KeyProblem(f"{label} {path} は16進数の鍵（32バイト以上）ではありません") from None
    if len(key) < 32:
        raise KeyProblem(f"{label} {path} が短すぎます（32バイト以上）")
    return key


def _write_new(path: Path, data: bytes) -> bool:
    """Write a whole file under a temporary name (0600), then link it into place: two
    processes creating the same key at once share one complete file. False if it existed."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    finally:
        os.unlink(tmp)


def create_secret(path: Path) -> bool:
    return _write_new(path, (secrets.token_hex(32) + "\n").encode())


# --- the center's keys ---------------------------------------------------------------------


@dataclass(frozen=True)
class CenterPublic:
    encryption: X25519PublicKey
    signing: Ed25519PublicKey
    # signing keys of earlier pairs (after a rotation), by fingerprint: old log lines and
    # verification files still verify
    previous: tuple[tuple[str, Ed25519PublicKey], ...] = ()

    @property
    def fingerprint(self) -> str:
        return fingerprint(public_raw(self.encryption))

    def signing_key(self, signer: str) -> Ed25519PublicKey | None:
        """The signing key of the pair with this fingerprint, current or earlier."""
        if signer == self.fingerprint:
            return self.signing
        return dict(self.previous).get(signer)


@dataclass(frozen=True)
class CenterPrivate:
    encryption: X25519PrivateKey
    signing: Ed25519PrivateKey

    def public(self) -> CenterPublic:
        return CenterPublic(self.encryption.public_key(), self.signing.public_key())


def center_keygen(
    folder: Path, passphrase: str | None, previous: Path | None = None
) -> dict[str, Path]:
    """Two key pairs for the center: X25519 (the review list is encrypted to it) and Ed25519
    (the center signs exports, imports and verification results). Refuses to overwrite.
    `previous`: the public file of the pair being replaced, whose signing keys are kept."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    enc, sig = X25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    protect = (
        serialization.BestAvailableEncryption(passphrase.encode())
        if passphrase
        else serialization.NoEncryption()
    )
    out = {}
    for name, key in ((ENCRYPTION_FILE, enc), (SIGNING_FILE, sig)):
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, protect
        )
        if not _write_new(folder / name, pem):
            raise KeyProblem(
                f"{folder / name} は既にあります（上書きしません。鍵の更新は README を参照）"
            )
        out[name] = folder / name
    public: dict[str, Any] = {
        "encryption": b64(public_raw(enc.public_key())),
        "signing": b64(public_raw(sig.public_key())),
        "fingerprint": fingerprint(public_raw(enc.public_key())),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "previous": [],
    }
    if previous is not None:
        old = json.loads(previous.read_text(encoding="utf-8"))
        public["previous"] = [
            *old.get("previous", []),
            {"fingerprint": old["fingerprint"], "signing": old["signing"]},
        ]
    _write_new(folder / PUBLIC_FILE, (json.dumps(public, indent=2) + "\n").encode())
    out[PUBLIC_FILE] = folder / PUBLIC_FILE
    return out


def read_center_public(path: Path) -> CenterPublic:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        return CenterPublic(
            X25519PublicKey.from_public_bytes(unb64(doc["encryption"])),
            Ed25519PublicKey.from_public_bytes(unb64(doc["signing"])),
            tuple(
                (p["fingerprint"], Ed25519PublicKey.from_public_bytes(unb64(p["signing"])))
                for p in doc.get("previous", [])
            ),
        )
    except FileNotFoundError:
        raise KeyProblem(
            f"センターの公開鍵 {path} がありません（kodomo center-keygen で作成）"
        ) from None
    except (ValueError, KeyError, TypeError):
        raise KeyProblem(f"センターの公開鍵 {path} を読めません") from None


def _passphrase(path: Path) -> bytes:
    text = os.environ.get(PASSPHRASE_ENV)
    if text is None and sys.stdin.isatty():
        text = getpass.getpass(f"センター秘密鍵 {path.name} のパスフレーズ: ")
    if not text:
        raise KeyProblem(
            f"センター秘密鍵 {path} はパスフレーズで保護されています（{PASSPHRASE_ENV}）"
        )
    return text.encode()


def _load_private(path: Path, home: Path | None) -> PrivateKeyTypes:
    _private_file_check(path, "センター秘密鍵", home)
    pem = path.read_bytes()
    encrypted = b"ENCRYPTED" in pem.split(b"\n", 1)[0]
    try:
        return serialization.load_pem_private_key(pem, _passphrase(path) if encrypted else None)
    except (ValueError, TypeError):
        raise KeyProblem(
            f"センター秘密鍵 {path} を開けません（パスフレーズが違うか、壊れています）"
        ) from None


def read_center_private(folder: Path, home: Path | None = None) -> CenterPrivate:
    """Only the center's own commands call this; the pipeline never does."""
    enc, sig = (
        _load_private(folder / ENCRYPTION_FILE, home),
        _load_private(folder / SIGNING_FILE, home),
    )
    if not isinstance(enc, X25519PrivateKey) or not isinstance(sig, Ed25519PrivateKey):
        raise KeyProblem(f"{folder} の鍵の種類が違います（X25519 と Ed25519）")
    return CenterPrivate(enc, sig)

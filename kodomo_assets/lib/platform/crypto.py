"""Encryption primitives, all from `cryptography` (AES-256-GCM, HKDF-SHA256, X25519, Ed25519).

- Data keys are random 32-byte keys, one per file. They are wrapped (AES-GCM) by a key
  derived from the storage key, bound to the file's relative path, so a wrapped key cannot
  be moved to another file.
- A file that is not DuckDB (a raw export, a model) is sealed in 16 MiB AES-GCM chunks; the
  chunk index and a last-chunk flag are authenticated, so truncation or reordering fails.
- For the center: a data key is wrapped to the center's X25519 public key (ephemeral
  X25519, HKDF, AES-GCM), so only the holder of the private key unwraps it; records are
  signed with Ed25519 and verified with the public key.
"""

from __future__ import annotations

import base64
import hashlib
import os
import struct
from collections.abc import Iterator
from pathlib import Path

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MAGIC = b"KODOMO-SEALED-1\n"
CHUNK = 1 << 24
_RAW = serialization.Encoding.Raw, serialization.PublicFormat.Raw


class DecryptionError(Exception):
    """Wrong key, or a file or record that was altered. Never carries key material."""


def new_key() -> bytes:
    return os.urandom(32)


def derive(key: bytes, purpose: str) -> bytes:
    """A purpose-bound subkey, so one secret never serves two uses directly."""
    return HKDF(SHA256(), 32, salt=None, info=f"kodomo:{purpose}".encode()).derive(key)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


def wrap(kek: bytes, data_key: bytes, context: str) -> str:
    nonce = os.urandom(12)
    return b64(nonce + AESGCM(kek).encrypt(nonce, data_key, context.encode()))


def unwrap(kek: bytes, wrapped: str, context: str) -> bytes:
    raw = unb64(wrapped)
    try:
        return AESGCM(kek).decrypt(raw[:12], raw[12:], context.encode())
    except InvalidTag:
        raise DecryptionError(f"鍵を復号できません（{context}）") from None


# --- sealed files -----------------------------------------------------------------------


def _nonce(prefix: bytes, index: int) -> bytes:
    return prefix + struct.pack(">I", index)


def seal_chunks(data_key: bytes, chunks: Iterator[bytes], context: str) -> Iterator[bytes]:
    """MAGIC, an 8-byte nonce prefix, then (length, ciphertext) per chunk."""
    aes, prefix = AESGCM(data_key), os.urandom(8)
    yield MAGIC + prefix
    pending, index = next(chunks, None), 0
    while pending is not None:
        following = next(chunks, None)
        last = following is None
        aad = f"{context}|{index}|{int(last)}".encode()
        sealed = aes.encrypt(_nonce(prefix, index), pending, aad)
        yield struct.pack(">Q", len(sealed)) + sealed
        pending, index = following, index + 1


def open_sealed(data_key: bytes, blob: bytes, context: str) -> bytes:
    if not blob.startswith(MAGIC):
        raise DecryptionError(f"暗号化されたファイルではありません（{context}）")
    aes, prefix = AESGCM(data_key), blob[len(MAGIC) : len(MAGIC) + 8]
    pos, index, out = len(MAGIC) + 8, 0, []
    while pos < len(blob):
        (size,) = struct.unpack(">Q", blob[pos : pos + 8])
        pos += 8
        last = pos + size >= len(blob)
        try:
            out.append(
                aes.decrypt(
                    _nonce(prefix, index),
                    blob[pos : pos + size],
                    f"{context}|{index}|{int(last)}".encode(),
                )
            )
        except InvalidTag:
            raise DecryptionError(
                f"復号できません（鍵が違うか、ファイルが改変されています: {context}）"
            ) from None
        pos, index = pos + size, index + 1
    if index == 0:
        raise DecryptionError(f"暗号化されたファイルが空です（{context}）")
    return b"".join(out)


def chunked(data: bytes) -> Iterator[bytes]:
    yield from (data[i : i + CHUNK] for i in range(0, max(len(data), 1), CHUNK))


def file_chunks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as fh:
        first = fh.read(CHUNK)
        yield first  # an empty file is one empty chunk, as with chunked(b"")
        while chunk := fh.read(CHUNK):
            yield chunk


# --- the center's key pairs ---------------------------------------------------------------


def public_raw(key: X25519PublicKey | Ed25519PublicKey) -> bytes:
    return key.public_bytes(*_RAW)


def fingerprint(raw_public: bytes) -> str:
    return hashlib.sha256(raw_public).hexdigest()[:16]


def wrap_to_public(public: X25519PublicKey, data_key: bytes, context: str) -> dict[str, str]:
    """Envelope: an ephemeral X25519 exchange with the center's public key gives a one-time
    key-encryption key; the pipeline keeps nothing that could unwrap it again."""
    ephemeral = X25519PrivateKey.generate()
    shared = ephemeral.exchange(public)
    kek = HKDF(
        SHA256(),
        32,
        salt=public_raw(ephemeral.public_key()),
        info=f"kodomo:center-wrap:{context}".encode(),
    ).derive(shared)
    return {
        "alg": "X25519-HKDF-SHA256-AES256GCM",
        "recipient": fingerprint(public_raw(public)),
        "ephemeral": b64(public_raw(ephemeral.public_key())),
        "wrapped": wrap(kek, data_key, context),
    }


def unwrap_with_private(private: X25519PrivateKey, envelope: dict[str, str], context: str) -> bytes:
    ephemeral = unb64(envelope["ephemeral"])
    shared = private.exchange(X25519PublicKey.from_public_bytes(ephemeral))
    kek = HKDF(SHA256(), 32, salt=ephemeral, info=f"kodomo:center-wrap:{context}".encode()).derive(
        shared
    )
    return unwrap(kek, envelope["wrapped"], context)


def sign(private: Ed25519PrivateKey, payload: bytes) -> str:
    return b64(private.sign(payload))


def verify(public: Ed25519PublicKey, payload: bytes, signature: str) -> bool:
    try:
        public.verify(unb64(signature), payload)
        return True
    except (InvalidSignature, ValueError):
        return False

"""A tamper-evident log kept by the pipeline (purges, and later link decisions): each JSON
line carries the hash of the line before and an HMAC keyed from the storage key, so a
deleted, edited, reordered or forged line is found by anyone holding that key."""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
import os
from pathlib import Path
from typing import Any

GENESIS = "0" * 64


def _canonical(entry: dict[str, Any]) -> bytes:
    return json.dumps(
        {k: v for k, v in entry.items() if k != "mac"},
        ensure_ascii=False,
        sort_keys=True,
        separators=(",", ":"),
    ).encode()


class ChainedLog:
    def __init__(self, path: Path, key: bytes):
        self.path, self._key = path, key

    def _mac(self, entry: dict[str, Any]) -> str:
        return hmac.new(self._key, _canonical(entry), hashlib.sha256).hexdigest()

    def append(self, record: dict[str, Any]) -> dict[str, Any]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            lines = [ln for ln in self.path.read_bytes().split(b"\n") if ln.strip()]
            entry = {
                **record,
                "seq": len(lines) + 1,
                "prev": hashlib.sha256(lines[-1]).hexdigest() if lines else GENESIS,
            }
            entry["mac"] = self._mac(entry)
            os.write(fd, (json.dumps(entry, ensure_ascii=False) + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        return entry

    def entries(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        return [json.loads(ln) for ln in self.path.read_bytes().split(b"\n") if ln.strip()]

    def first_broken_line(self) -> int | None:
        """The first line that does not verify, or None when the whole chain holds."""
        if not self.path.exists():
            return None
        prev, n = GENESIS, 0
        for raw in self.path.read_bytes().split(b"\n"):
            if not raw.strip():
                continue
            n += 1
            try:
                entry = json.loads(raw)
            except json.JSONDecodeError:
                return n
            if (
                not isinstance(entry, dict)
                or entry.get("prev") != prev
                or entry.get("seq") != n
                or not hmac.compare_digest(str(entry.get("mac", "")), self._mac(entry))
            ):
                return n
            prev = hashlib.sha256(raw).hexdigest()
        return None

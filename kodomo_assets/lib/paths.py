"""Where the project's own data files are (registry, approval list). Where the city's data
lives is the storage resource's business (lib/platform/storage.py)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DATA_DIR = Path(os.environ.get("KODOMO_DATA", REPO_ROOT / "data"))
REGISTRY = DATA_DIR / "registry"


def content_version(prefix: str, *files: Path) -> str:
    """An asset's code version from the files that decide its output (registry files, the
    lib modules it runs): a change in any of them marks the asset's partitions stale."""
    return f"{prefix}-" + hashlib.sha256(b"".join(f.read_bytes() for f in files)).hexdigest()[:10]

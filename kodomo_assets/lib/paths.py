"""Where the project's own data files are (registry, approval list). Where the city's data
lives is the storage resource's business (lib/platform/storage.py)."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DATA_DIR = Path(os.environ.get("KODOMO_DATA", REPO_ROOT / "data"))

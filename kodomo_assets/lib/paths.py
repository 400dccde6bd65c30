"""Where things live. Inputs come from KODOMO_INBOX, every output goes under KODOMO_HOME."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DATA_DIR = Path(os.environ.get("KODOMO_DATA", REPO_ROOT / "data"))


def kodomo_home() -> Path:
    return Path(os.environ.get("KODOMO_HOME", REPO_ROOT / ".kodomo_home")).resolve()


def kodomo_inbox() -> Path:
    return Path(os.environ.get("KODOMO_INBOX", REPO_ROOT / ".kodomo_inbox")).resolve()


def department_store(department: str, month: str) -> Path:
    """One DuckDB file per department and month: its own zone, and no shared writer."""
    return kodomo_home() / "stores" / department / f"{month}.duckdb"


def scratch_dir() -> Path:
    path = kodomo_home() / "tmp"
    path.mkdir(parents=True, exist_ok=True)
    return path


def zone_store(zone: str, month: str, name: str) -> Path:
    """The linkage, analysis and center zones: one DuckDB file per asset and month, each
    written only by its asset and published by an atomic rename."""
    return kodomo_home() / "zones" / zone / month / f"{name}.duckdb"

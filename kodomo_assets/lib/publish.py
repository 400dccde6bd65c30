"""Staged writes: build a zone's DuckDB file beside its final name, gate it, then rename.

The rename is atomic, so readers see the last good file or the new one, never a half-written
or a refused one; a crash or a refusal leaves only the staging file, which is removed.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from kodomo_assets.lib.paths import scratch_dir


def attach_read_only(con: duckdb.DuckDBPyConnection, alias: str, path: Path) -> None:
    if not path.exists():
        raise FileNotFoundError(f"{path} がありません（先に上流の資産を実体化してください）")
    con.execute(f"ATTACH '{path}' AS {alias} (READ_ONLY)")


@contextmanager
def staged_file(final: Path) -> Iterator[Path]:
    """A fresh staging path beside `final`, removed afterwards unless it was promoted."""
    final.parent.mkdir(parents=True, exist_ok=True)
    stage = final.with_name(f".{final.stem}.{os.getpid()}.staging.duckdb")
    _remove(stage)
    _sweep_dead(final)
    try:
        yield stage
    finally:
        _remove(stage)


@contextmanager
def staged(final: Path) -> Iterator[tuple[duckdb.DuckDBPyConnection, Path]]:
    """A connection to a fresh staging file; the caller calls `promote` once it passes."""
    with staged_file(final) as stage:
        con = duckdb.connect(str(stage))
        # DuckDB spills past this to temp_directory; 4GB fits a 10M-resident month's joins
        con.execute(f"SET memory_limit = '{os.environ.get('KODOMO_DUCKDB_MEMORY', '4GB')}'")
        con.execute(f"SET temp_directory = '{scratch_dir()}'")
        try:
            yield con, stage
        finally:
            con.close()


def promote(con: duckdb.DuckDBPyConnection, stage: Path, final: Path) -> None:
    con.execute("CHECKPOINT")
    for alias, in con.execute("SELECT database_name FROM duckdb_databases() WHERE NOT internal "
                              "AND database_name NOT IN (current_database(), 'memory')").fetchall():
        con.execute(f"DETACH {alias}")
    con.close()
    os.replace(stage, final)


def keep_only(con: duckdb.DuckDBPyConnection, tables: Iterable[str]) -> None:
    """Drop every view and working table of the staging file but the published ones."""
    keep = set(tables)
    for name, kind in con.execute(
            "SELECT table_name, 'TABLE' FROM duckdb_tables() WHERE database_name = current_database() "
            "UNION ALL SELECT view_name, 'VIEW' FROM duckdb_views() "
            "WHERE database_name = current_database() AND NOT internal").fetchall():
        if name not in keep:
            con.execute(f'DROP {kind} IF EXISTS "{name}"')


def _sweep_dead(final: Path) -> None:
    """Staging files (and WALs) that a killed process left beside `final`: another pid's,
    removed only once that process is gone, so a concurrent writer keeps its own."""
    prefix = f".{final.stem}."
    for p in final.parent.glob(f"{glob.escape(prefix)}*.staging.duckdb*"):
        pid = p.name[len(prefix):].split(".", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            p.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove(path: Path) -> None:
    for p in (path, path.with_name(path.name + ".wal")):
        p.unlink(missing_ok=True)

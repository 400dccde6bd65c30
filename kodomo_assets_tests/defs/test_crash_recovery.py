"""A run killed (SIGKILL) in the middle of the linked-table step, then run again, ends with
exactly the table an uninterrupted run writes, and leaves no staging file behind.

Both runs go through the `dagster` CLI in their own process group, as in production; the
kill hits the whole group while the step's staging file exists.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from kodomo_assets.demo import generate
from kodomo_assets.lib.registry import load_registry

MONTH = "2022-10"
ROOT = Path(__file__).resolve().parents[2]
DAGSTER = Path(sys.executable).parent / "dagster"
SELECT = ",".join(["sources/inbox_receipt", *(f"sources/{d}" for d in load_registry().datasets),
                   "linkage/pupil_links", "analysis/linked_children"])


def command(month: str = MONTH) -> list[str]:
    return [str(DAGSTER), "asset", "materialize", "-m", "kodomo_assets", "--select", SELECT,
            "--partition", month]


def environment(base: Path, inbox: Path, secrets: Path) -> dict[str, str]:
    """A private KODOMO_HOME and Dagster instance under `base`; the keys outside it."""
    dagster_home = base / "dagster_home"
    dagster_home.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "dagster_home" / "dagster.yaml", dagster_home)
    env = {k: v for k, v in os.environ.items()
           if k not in ("KODOMO_PSEUDONYM_KEY", "KODOMO_CENTER_KEY", "KODOMO_POLICY")}
    env.update(KODOMO_INBOX=str(inbox), KODOMO_HOME=str(base / "home"),
               DAGSTER_HOME=str(dagster_home), KODOMO_DEMO="1",
               KODOMO_KEY_FILE=str(secrets / "pseudonym.key"),
               KODOMO_CENTER_KEY_FILE=str(secrets / "center.key"))
    return env


def linked_rows(home: Path) -> tuple[list[tuple], list[tuple]]:
    path = home / "zones" / "analysis" / MONTH / "linked_children.duckdb"
    with duckdb.connect(str(path), read_only=True) as con:
        return (con.execute("DESCRIBE linked_children").fetchall(),
                con.execute("SELECT * FROM linked_children ORDER BY child_token").fetchall())


def staging_files(home: Path) -> list[Path]:
    return sorted(p for p in home.rglob("*") if ".staging" in p.name)


def test_a_killed_linked_table_step_recovers_to_the_uninterrupted_result(tmp_path: Path) -> None:
    inbox, secrets = tmp_path / "inbox", tmp_path / "secrets"
    generate(inbox, residents=15000, months=[MONTH], seed=4)

    # the reference: one uninterrupted run in its own home
    ref_env = environment(tmp_path / "reference", inbox, secrets)
    ref = subprocess.run(command(), env=ref_env, capture_output=True, text=True, timeout=300,
                         start_new_session=True)
    assert ref.returncode == 0, ref.stderr[-3000:]
    reference = linked_rows(Path(ref_env["KODOMO_HOME"]))
    assert len(reference[1]) > 1000

    # the same run in another home, killed while the linked table is being written
    env = environment(tmp_path / "crashed", inbox, secrets)
    home = Path(env["KODOMO_HOME"])
    analysis = home / "zones" / "analysis" / MONTH
    with open(tmp_path / "crashed.log", "wb") as log:
        proc = subprocess.Popen(command(), env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            deadline = time.monotonic() + 300
            while not list(analysis.glob(".linked_children.*.staging.duckdb")):
                assert proc.poll() is None, "the run ended before the linked-table step was caught"
                assert time.monotonic() < deadline, "the linked-table step never started"
                time.sleep(0.002)
            os.killpg(proc.pid, signal.SIGKILL)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    # killed mid-step: nothing was published, the crash left its staging file
    assert not (analysis / "linked_children.duckdb").exists()
    assert staging_files(home)
    assert (home / "zones" / "linkage" / MONTH / "pupil_links.duckdb").exists()

    # the same command again
    rerun = subprocess.run(command(), env=env, capture_output=True, text=True, timeout=300,
                           start_new_session=True)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "RUN_SUCCESS" in rerun.stderr + rerun.stdout
    assert staging_files(home) == []
    assert not list(home.rglob("*.wal"))
    assert sorted(p.name for p in analysis.iterdir()) == ["linked_children.duckdb"]
    assert linked_rows(home) == reference


@pytest.mark.parametrize("alive", [False, True])
def test_staging_files_of_dead_processes_are_swept_and_live_ones_kept(
        tmp_path: Path, alive: bool) -> None:
    """The unit behind the recovery: a new staged write removes the staging files (and
    their WAL) that a dead process left beside the same final file, never a live one's."""
    from kodomo_assets.lib.publish import staged_file

    final = tmp_path / "linked_children.duckdb"
    if alive:
        other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        pid = other.pid
    else:
        dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True)
        pid = int(dead.stdout)
    left = [tmp_path / f".linked_children.{pid}.staging.duckdb",
            tmp_path / f".linked_children.{pid}.staging.duckdb.wal"]
    unrelated = tmp_path / f".pupil_links.{pid}.staging.duckdb"
    for p in [*left, unrelated]:
        p.write_bytes(b"x")
    try:
        with staged_file(final) as stage:
            assert stage.name == f".linked_children.{os.getpid()}.staging.duckdb"
            assert [p.exists() for p in left] == [alive, alive]
            assert unrelated.exists()
    finally:
        if alive:
            other.kill()
            other.wait()

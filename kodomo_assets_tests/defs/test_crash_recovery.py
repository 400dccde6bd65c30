"""A run killed (SIGKILL) in the middle of the linked-table step, then run again, ends with
exactly the linked table, scores and review list an uninterrupted run writes, and leaves no
staging file behind.

Both runs go through the `dagster` CLI in their own process group, as in production, with
the code location's environment (the pipeline's keys and the center's PUBLIC key, never the
center's private keys); the kill hits the whole group while the step's staging file exists.
The first run's sources take the exports out of the inbox, so the rerun reads their sealed
copies from the raw archive.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kodomo_assets.demo import generate
from kodomo_assets.lib.platform.keys import read_center_private
from kodomo_assets.lib.platform.storage import KodomoStorage
from kodomo_assets.lib.registry import load_registry
from kodomo_assets_tests.conftest import make_keys, make_storage, pipeline_env

MONTH = "2022-10"
ROOT = Path(__file__).resolve().parents[2]
DAGSTER = Path(sys.executable).parent / "dagster"
# the month's chain up to the linked table, then on to the scores and the review list
TO_LINKED = [
    "sources/inbox_receipt",
    *(f"sources/{d}" for d in load_registry().datasets),
    "linkage/pupil_links",
    "analysis/linked_children",
]
SELECT = ",".join([*TO_LINKED, "analysis/risk_scores", "center/review_list"])


def command(month: str = MONTH, select: str = SELECT) -> list[str]:
    return [
        str(DAGSTER),
        "asset",
        "materialize",
        "-m",
        "kodomo_assets",
        "--select",
        select,
        "--partition",
        month,
    ]


def environment(base: Path, storage: KodomoStorage) -> dict[str, str]:
    """A private Dagster instance under `base` and the code location's environment for
    `storage` (its home, inbox and the keys the pipeline holds); no other KODOMO_ variable
    of the developer's shell leaks in."""
    dagster_home = base / "dagster_home"
    dagster_home.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "dagster_home" / "dagster.yaml", dagster_home)
    env = {k: v for k, v in os.environ.items() if not k.startswith("KODOMO_")}
    env.update(pipeline_env(storage), DAGSTER_HOME=str(dagster_home))
    return env


def copy_inbox(generated: Path, base: Path) -> Path:
    """Each home ingests (and so empties) its own copy of the generated inbox."""
    inbox = base / "inbox"
    shutil.copytree(generated, inbox)
    return inbox


def outputs(storage: KodomoStorage, keys: Path) -> dict[str, list[tuple]]:
    """The linked table, the scores and the review list (opened as the center), row for row."""
    out = {}
    with storage.open(storage.zone_store("analysis", MONTH, "linked_children")) as con:
        out["linked_columns"] = con.execute("DESCRIBE linked_children").fetchall()
        out["linked"] = con.execute("SELECT * FROM linked_children ORDER BY child_token").fetchall()
    with storage.open(storage.zone_store("analysis", MONTH, "risk_scores")) as con:
        out["scores"] = con.execute("SELECT * FROM risk_scores ORDER BY child_token").fetchall()
    center = read_center_private(keys / "center")
    with storage.open_as_center(storage.zone_store("center", MONTH, "review_list"), center) as con:
        out["review"] = con.execute("SELECT * FROM review_list ORDER BY section, rank").fetchall()
    return out


def staging_files(home: Path) -> list[Path]:
    return sorted(p for p in home.rglob("*") if ".staging" in p.name)


def test_a_killed_linked_table_step_recovers_to_the_uninterrupted_result(tmp_path: Path) -> None:
    generated, keys = tmp_path / "generated", make_keys(tmp_path / "secrets")
    generate(generated, residents=15000, months=[MONTH], seed=4)

    # the reference: one uninterrupted run in its own home, on its own copy of the inbox
    ref_storage = make_storage(
        tmp_path / "reference" / "home", copy_inbox(generated, tmp_path / "reference"), keys
    )
    ref_env = environment(tmp_path / "reference", ref_storage)
    ref = subprocess.run(
        command(), env=ref_env, capture_output=True, text=True, timeout=600, start_new_session=True
    )
    assert ref.returncode == 0, ref.stderr[-3000:]
    reference = outputs(ref_storage, keys)
    assert len(reference["linked"]) > 1000
    assert len(reference["scores"]) == len(reference["linked"]) and reference["review"]

    # the same run in another home (same keys), killed while the linked table is being written
    storage = make_storage(
        tmp_path / "crashed" / "home", copy_inbox(generated, tmp_path / "crashed"), keys
    )
    env = environment(tmp_path / "crashed", storage)
    home = storage.home_path
    analysis = home / "zones" / "analysis" / MONTH
    with open(tmp_path / "crashed.log", "wb") as log:
        proc = subprocess.Popen(
            command(), env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
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
    assert storage.zone_store("linkage", MONTH, "pupil_links").exists()
    # the sources had finished: every export left the inbox for the raw archive
    assert list((storage.inbox_path / MONTH).iterdir()) == []

    # the same command again: the sources read their sealed copies
    rerun = subprocess.run(
        command(), env=env, capture_output=True, text=True, timeout=600, start_new_session=True
    )
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "RUN_SUCCESS" in rerun.stderr + rerun.stdout
    assert staging_files(home) == []
    assert not list(home.rglob("*.wal"))
    ref_analysis = ref_storage.zone_store("analysis", MONTH, "linked_children").parent
    assert sorted(p.name for p in analysis.iterdir()) == sorted(
        p.name for p in ref_analysis.iterdir()
    )
    assert "linked_children.duckdb" in {p.name for p in analysis.iterdir()}
    got = outputs(storage, keys)
    assert got["linked_columns"] == reference["linked_columns"]
    assert got["linked"] == reference["linked"]
    assert got["scores"] == reference["scores"]
    assert got["review"] == reference["review"]


@pytest.mark.parametrize("alive", [False, True])
def test_staging_files_of_dead_processes_are_swept_and_live_ones_kept(
    storage: KodomoStorage, alive: bool
) -> None:
    """The unit behind the recovery: a new staged write removes the staging files (and
    their WAL) that a dead process left beside the same final file, never a live one's."""
    final = storage.zone_store("analysis", MONTH, "linked_children")
    final.parent.mkdir(parents=True)
    if alive:
        other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        pid = other.pid
    else:
        dead = subprocess.run(
            [sys.executable, "-c", "import os; print(os.getpid())"],
            capture_output=True,
            text=True,
            check=True,
        )
        pid = int(dead.stdout)
    left = [
        final.with_name(f".linked_children.{pid}.staging.duckdb"),
        final.with_name(f".linked_children.{pid}.staging.duckdb.wal"),
    ]
    unrelated = final.with_name(f".pupil_links.{pid}.staging.duckdb")
    for p in [*left, unrelated]:
        p.write_bytes(b"x")
    try:
        with storage.staged(final) as (_, stage):
            assert stage.name == f".linked_children.{os.getpid()}.staging.duckdb"
            assert [p.exists() for p in left] == [alive, alive]
            assert unrelated.exists()
        assert not stage.exists()  # not promoted: the staging file is removed
    finally:
        if alive:
            other.kill()
            other.wait()

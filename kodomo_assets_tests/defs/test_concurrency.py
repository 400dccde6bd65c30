"""Two runs launched at once for different months, on one KODOMO_HOME and one Dagster
instance (SQLite), both succeed: each month has its own department stores, zone files and
key table, so no DuckDB file (nor key table) is ever written by two processes."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from dagster import DagsterInstance

from kodomo_assets.demo import generate
from kodomo_assets_tests.conftest import make_keys, make_storage
from kodomo_assets_tests.defs.test_crash_recovery import TO_LINKED, command, environment

MONTHS = ("2022-09", "2022-10")


def test_two_months_at_once_on_one_home_and_instance(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    generate(inbox, residents=15000, months=list(MONTHS), seed=4)
    # keys provisioned beforehand, as in production (the pipeline never creates them)
    keys = make_keys(tmp_path / "secrets")
    storage = make_storage(tmp_path / "shared" / "home", inbox, keys)
    env = environment(tmp_path / "shared", storage)
    # the instance exists before the runs, as in use: two processes creating a fresh SQLite
    # instance at once race on its schema ("table runs already exists", Dagster's own)
    with DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        assert instance.get_runs() == []

    logs = {m: (tmp_path / f"{m}.out", tmp_path / f"{m}.err") for m in MONTHS}
    procs = {}
    for month in MONTHS:
        out, err = logs[month]
        with open(out, "wb") as o, open(err, "wb") as e:
            procs[month] = subprocess.Popen(
                command(month, ",".join(TO_LINKED)),
                env=env,
                stdout=o,
                stderr=e,
                start_new_session=True,
            )
    started = time.monotonic()
    try:
        codes = {m: p.wait(timeout=400) for m, p in procs.items()}
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
                p.wait()
    stderr = {m: logs[m][1].read_text(errors="replace") for m in MONTHS}
    stdout = {m: logs[m][0].read_text(errors="replace") for m in MONTHS}
    for month in MONTHS:
        assert codes[month] == 0, stderr[month][-3000:]
        assert "RUN_SUCCESS" in stderr[month] + stdout[month]
        for marker in ("lock", "Lock", "IO Error", "database is locked"):
            assert marker not in stderr[month], (month, marker)

    # the two runs really overlapped: each started its steps before the other finished
    def window(month: str) -> tuple[str, str]:
        lines = [
            line
            for line in stderr[month].splitlines()
            if " - STEP_START - " in line or " - RUN_SUCCESS - " in line
        ]
        return lines[0][:19], lines[-1][:19]

    (a0, a1), (b0, b1) = window(MONTHS[0]), window(MONTHS[1])
    assert a0 <= b1 and b0 <= a1, "the runs did not overlap"
    assert time.monotonic() - started < 400

    home = storage.home_path
    counts = {}
    for month in MONTHS:
        with storage.open(storage.zone_store("analysis", month, "linked_children")) as con:
            counts[month] = con.execute("SELECT count(*) FROM linked_children").fetchone()[0]
        assert counts[month] > 1000, month
        for dept in ("shimin", "gakumu", "shido"):
            assert storage.department_store(dept, month).exists()
        assert list((inbox / month).iterdir()) == []  # both months' exports were ingested
    assert storage.keytable.scopes() == sorted(MONTHS)  # each month its own key table
    assert not [p for p in home.rglob("*") if ".staging" in p.name or p.suffix == ".wal"]

"""Two runs launched at once for different months, on one KODOMO_HOME and one Dagster
instance (SQLite), both succeed: each month has its own department stores and zone files,
so no DuckDB file is ever opened by two processes."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import duckdb
import pytest
from dagster import DagsterInstance

from kodomo_assets.demo import generate
from kodomo_assets.lib import keys
from kodomo_assets_tests.defs.test_crash_recovery import command, environment

MONTHS = ("2022-09", "2022-10")


def test_two_months_at_once_on_one_home_and_instance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    inbox, secrets = tmp_path / "inbox", tmp_path / "secrets"
    generate(inbox, residents=15000, months=list(MONTHS), seed=4)
    env = environment(tmp_path / "shared", inbox, secrets)
    # keys provisioned beforehand, as in production (not created by whichever run is first)
    for name in ("KODOMO_HOME", "KODOMO_KEY_FILE", "KODOMO_CENTER_KEY_FILE"):
        monkeypatch.setenv(name, env[name])
    keys.load(keys.PSEUDONYM)
    keys.load(keys.CENTER)
    # the instance exists before the runs, as in use: two processes creating a fresh SQLite
    # instance at once race on its schema ("table runs already exists", Dagster's own)
    with DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        assert instance.get_runs() == []

    logs = {m: (tmp_path / f"{m}.out", tmp_path / f"{m}.err") for m in MONTHS}
    procs = {}
    for month in MONTHS:
        out, err = logs[month]
        with open(out, "wb") as o, open(err, "wb") as e:
            procs[month] = subprocess.Popen(command(month), env=env, stdout=o, stderr=e,
                                            start_new_session=True)
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
        lines = [line for line in stderr[month].splitlines() if " - STEP_START - " in line
                 or " - RUN_SUCCESS - " in line]
        return lines[0][:19], lines[-1][:19]

    (a0, a1), (b0, b1) = window(MONTHS[0]), window(MONTHS[1])
    assert a0 <= b1 and b0 <= a1, "the runs did not overlap"
    assert time.monotonic() - started < 400

    home = Path(env["KODOMO_HOME"])
    counts = {}
    for month in MONTHS:
        path = home / "zones" / "analysis" / month / "linked_children.duckdb"
        with duckdb.connect(str(path), read_only=True) as con:
            counts[month] = con.execute("SELECT count(*) FROM linked_children").fetchone()[0]
        assert counts[month] > 1000, month
        for dept in ("shimin", "gakumu", "shido"):
            assert (home / "stores" / dept / f"{month}.duckdb").exists()
    assert not [p for p in home.rglob("*") if ".staging" in p.name or p.suffix == ".wal"]

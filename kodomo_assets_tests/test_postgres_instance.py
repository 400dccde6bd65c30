"""The production instance (dagster_home/postgres/dagster.yaml) against a real PostgreSQL
server: scripts/postgres.sh installs Debian's postgresql when missing and starts a throwaway
cluster; a real materialization must land in its runs and event_logs tables.

No skip: if PostgreSQL cannot be installed or started, these tests fail, since CI must be
able to install it."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest
import yaml
from dagster import AssetKey, DagsterInstance, materialize
from dagster._core.run_coordinator import QueuedRunCoordinator
from dagster_postgres.event_log import PostgresEventLogStorage
from dagster_postgres.run_storage import PostgresRunStorage
from dagster_postgres.schedule_storage import PostgresScheduleStorage

from kodomo_assets.defs.sources import inbox_receipt, source_assets
from kodomo_assets.demo import generate
from kodomo_assets.lib.paths import REPO_ROOT
from kodomo_assets_tests.conftest import make_keys, make_storage

MONTH = "2022-10"
CONFIG = REPO_ROOT / "dagster_home" / "postgres" / "dagster.yaml"
SCRIPT = REPO_ROOT / "scripts" / "postgres.sh"
PG_VARS = (
    "DAGSTER_PG_HOST",
    "DAGSTER_PG_PORT",
    "DAGSTER_PG_USER",
    "DAGSTER_PG_PASSWORD",
    "DAGSTER_PG_DB",
)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def pg_server() -> Iterator[dict[str, str] | str]:
    """A PostgreSQL server for this module: its DAGSTER_PG_* values, or why it could not be
    started (the test then fails; a fixture error would not read as a failed test). Always
    stopped and removed afterwards."""
    # Not under pytest's tmp dir: as root, the server runs as user postgres, and pytest's
    # /tmp/pytest-of-root is closed to other users.
    cluster = Path(tempfile.mkdtemp(prefix="kodomo-pg-"))
    try:
        started = subprocess.run(
            ["bash", str(SCRIPT), "start", str(cluster), str(free_port())],
            capture_output=True,
            text=True,
            timeout=900,
        )
        if started.returncode != 0:
            yield (
                "scripts/postgres.sh could not install or start PostgreSQL (Debian's postgresql "
                "package is required; CI must be able to install it with apt-get):\n"
                + started.stderr[-4000:]
            )
        else:
            yield dict(line.split("=", 1) for line in started.stdout.splitlines() if "=" in line)
    finally:
        subprocess.run(
            ["bash", str(SCRIPT), "stop", str(cluster)], capture_output=True, timeout=120
        )
        shutil.rmtree(cluster, ignore_errors=True)


def use_postgres_instance(
    server: dict[str, str] | str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[dict[str, str], Path]:
    """DAGSTER_HOME holding a copy of the production dagster.yaml, DAGSTER_PG_* set."""
    if isinstance(server, str):
        pytest.fail(server, pytrace=False)
    assert set(server) == set(PG_VARS), server.keys()
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(CONFIG, home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    for name, value in server.items():
        monkeypatch.setenv(name, value)
    return server, home


def connect(env: dict[str, str]):
    return psycopg2.connect(
        host=env["DAGSTER_PG_HOST"],
        port=int(env["DAGSTER_PG_PORT"]),
        user=env["DAGSTER_PG_USER"],
        password=env["DAGSTER_PG_PASSWORD"],
        dbname=env["DAGSTER_PG_DB"],
    )


def test_the_config_reads_every_connection_detail_from_the_environment() -> None:
    config = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    db = config["storage"]["postgres"]["postgres_db"]
    assert db.pop("scheme") == "postgresql+psycopg2"  # the driver dagster-postgres installs
    assert {field: spec["env"] for field, spec in db.items()} == {
        "hostname": "DAGSTER_PG_HOST",
        "port": "DAGSTER_PG_PORT",
        "username": "DAGSTER_PG_USER",
        "password": "DAGSTER_PG_PASSWORD",
        "db_name": "DAGSTER_PG_DB",
    }
    assert config["telemetry"] == {"enabled": False}
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert config["run_coordinator"]["config"]["max_concurrent_runs"] == 1


def test_a_materialization_is_stored_in_postgres(pg_server, tmp_path, monkeypatch) -> None:
    pg_env, postgres_home = use_postgres_instance(pg_server, tmp_path, monkeypatch)
    inbox = tmp_path / "inbox"
    counts = generate(inbox, residents=2000, months=[MONTH], seed=1)
    storage = make_storage(tmp_path / "home", inbox, make_keys(tmp_path / "secrets"))
    jumin = next(a for a in source_assets if a.key.path[-1] == "jumin")
    keys = {AssetKey(["sources", "inbox_receipt"]), AssetKey(["sources", "jumin"])}

    with DagsterInstance.get() as instance:
        assert instance.telemetry_enabled is False
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
        coordinator = instance.run_coordinator
        assert isinstance(coordinator, QueuedRunCoordinator)
        assert coordinator.get_run_queue_config().max_concurrent_runs == 1
        result = materialize(
            [inbox_receipt, jumin],
            partition_key=MONTH,
            instance=instance,
            resources={"storage": storage},
        )
        assert result.success
        run_id = result.run_id

    # In PostgreSQL itself, not in some local file next to DAGSTER_HOME.
    assert not list(postgres_home.rglob("*.db"))
    with connect(pg_env) as con, con.cursor() as cur:
        cur.execute("SELECT status FROM runs WHERE run_id = %s", (run_id,))
        assert cur.fetchall() == [("SUCCESS",)]
        cur.execute(
            "SELECT asset_key, partition FROM event_logs "
            "WHERE run_id = %s AND dagster_event_type = 'ASSET_MATERIALIZATION'",
            (run_id,),
        )
        rows = cur.fetchall()
    con.close()
    assert {AssetKey.from_db_string(key) for key, _ in rows} == keys
    assert {partition for _, partition in rows} == {MONTH}

    # A fresh instance (the webserver, the daemon, tomorrow's run) sees the same history.
    with DagsterInstance.get() as again:
        assert again.get_run_by_id(run_id).is_success
        event = again.get_latest_materialization_event(AssetKey(["sources", "jumin"]))
        assert event is not None and event.run_id == run_id
        stored = event.asset_materialization.metadata["dagster/row_count"].value
        assert stored == counts[MONTH]["jumin"]["expected_valid_rows"]
    with storage.open(storage.department_store("shimin", MONTH)) as con:
        assert con.execute("SELECT count(*) FROM jumin").fetchone()[0] == stored
    assert os.environ["DAGSTER_PG_PASSWORD"] not in CONFIG.read_text(encoding="utf-8")

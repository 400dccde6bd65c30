from pathlib import Path

from dagster import DagsterInstance

from kodomo_assets.lib.paths import REPO_ROOT


def test_the_bundled_instance_has_telemetry_off(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "dagster.yaml").write_bytes(
        (REPO_ROOT / "dagster_home" / "dagster.yaml").read_bytes()
    )
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    with DagsterInstance.get() as instance:
        assert instance.telemetry_enabled is False


def test_the_bundled_queue_runs_one_month_at_a_time(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "dagster.yaml").write_bytes(
        (REPO_ROOT / "dagster_home" / "dagster.yaml").read_bytes()
    )
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    with DagsterInstance.get() as instance:
        queue = instance.get_concurrency_config().run_queue_config
        assert queue.max_concurrent_runs == 2
        [limit] = queue.tag_concurrency_limits
        assert limit["key"] == "dagster/partition" and limit["limit"] == 1
        assert limit["value"] == {"applyLimitPerUniqueValue": True}

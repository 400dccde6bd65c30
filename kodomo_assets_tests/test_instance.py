from pathlib import Path

from dagster import DagsterInstance

from kodomo_assets.lib.paths import REPO_ROOT


def test_the_bundled_instance_has_telemetry_off(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "dagster.yaml").write_bytes((REPO_ROOT / "dagster_home" / "dagster.yaml").read_bytes())
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    with DagsterInstance.get() as instance:
        assert instance.telemetry_enabled is False

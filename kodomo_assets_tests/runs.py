"""Running assets for one month in a test, and reading what the run recorded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from dagster import AssetsDefinition, DagsterInstance, ExecuteInProcessResult, materialize

from kodomo_assets.lib.platform.storage import KodomoStorage


def run(
    assets: Sequence[AssetsDefinition],
    month: str,
    storage: KodomoStorage,
    instance: DagsterInstance | None = None,
) -> ExecuteInProcessResult:
    """Materialize `assets` for `month` with a configured storage resource, recording
    failures instead of raising them."""
    return materialize(
        assets,
        partition_key=month,
        raise_on_error=False,
        instance=instance or DagsterInstance.ephemeral(),
        resources={"storage": storage},
    )


def purge(
    storage: KodomoStorage, instance: DagsterInstance, months: list[str], dry_run: bool = False
) -> ExecuteInProcessResult:
    """The code location's purge job, with this test's storage resource in place of the one
    configured from the environment."""
    # here, not at the top: loading the whole code location costs seconds, and most modules
    # that import this one never purge
    from kodomo_assets.definitions import defs

    config = {"ops": {"purge_months": {"config": {"months": months, "dry_run": dry_run}}}}
    return defs.resolve_job_def("retention_purge").execute_in_process(
        run_config=config, instance=instance, resources={"storage": storage}, raise_on_error=False
    )


def metadata(result: ExecuteInProcessResult) -> dict[str, dict]:
    """Materialization metadata by asset key ("sources/jumin"), as plain values."""
    out = {}
    for event in result.get_asset_materialization_events():
        mat = event.event_specific_data.materialization
        out["/".join(mat.asset_key.path)] = {k: v.value for k, v in mat.metadata.items()}
    return out


def failures(result: ExecuteInProcessResult) -> dict[str, str]:
    """Step key -> the message of its failure."""
    return {
        e.step_key: e.event_specific_data.error.message
        for e in result.all_events
        if e.event_type_value == "STEP_FAILURE"
    }


def failure_message(result: ExecuteInProcessResult) -> str:
    """The message of the run's first step failure."""
    return next(iter(failures(result).values()))


def started(result: ExecuteInProcessResult) -> list[str]:
    return [e.step_key for e in result.all_events if e.event_type_value == "STEP_START"]


def refresh_process(
    storage: KodomoStorage, dagster_home: Path, month: str, timeout: int = 900
) -> subprocess.CompletedProcess:
    """`dagster job execute` of monthly_refresh for `month` in a child process, as the
    schedule runs it, with the pipeline's environment only (no KODOMO_ variable of the
    caller's, so none of the center's keys) and the repository as working directory."""
    from kodomo_assets.lib.paths import REPO_ROOT
    from kodomo_assets_tests.conftest import pipeline_env

    env = {k: v for k, v in os.environ.items() if not k.startswith("KODOMO_")}
    env.update(pipeline_env(storage), DAGSTER_HOME=str(dagster_home))
    job = ["job", "execute", "-m", "kodomo_assets", "-j", "monthly_refresh"]
    return subprocess.run(
        [
            str(Path(sys.executable).parent / "dagster"),
            *job,
            "--tags",
            json.dumps({"dagster/partition": month}),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO_ROOT,
    )

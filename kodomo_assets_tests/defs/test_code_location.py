"""A snapshot of the code location, like dagster-open-platform's snapshot of its asset keys
but wider: every asset's key, group, owners, kinds, tags, checks (and whether they block),
code version, partitions and dependencies (with any partition mapping), and every job,
schedule, sensor and resource, compared with the committed `snapshots/code_location.json`.
An accidental change (an asset leaving its group, a check no longer blocking, a dependency
gone, a code version that marks every partition stale) shows in review as a change of that
file; an intended one is recorded by regenerating it:

    KODOMO_UPDATE_SNAPSHOT=1 pytest kodomo_assets_tests/defs/test_code_location.py

Several code versions are hashes of the files that decide the asset's output (registry
files, lib modules: lib/paths.content_version), so editing one of those files changes the
snapshot too, as it should: it marks the asset's partitions stale. The snapshot holds names
and settings only: no path of this machine, no time, no value that changes from run to run.
"""

from __future__ import annotations

import difflib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from dagster import AssetKey, Definitions

from kodomo_assets.definitions import defs

SNAPSHOT = Path(__file__).parent / "snapshots" / "code_location.json"
UPDATE = "KODOMO_UPDATE_SNAPSHOT"
ROOT = Path(__file__).resolve().parents[2]
REGENERATE = f"{UPDATE}=1 pytest kodomo_assets_tests/defs/test_code_location.py"
KIND_TAG = "dagster/kind/"  # kinds are listed on their own


def key(k: AssetKey) -> str:
    """An asset key as the UI and the README write it: "sources/jumin"."""
    return k.to_user_string()


def describe_assets(d: Definitions) -> dict[str, dict[str, Any]]:
    """Each asset's settings by key, every list and mapping sorted."""
    graph = d.resolve_asset_graph()
    out: dict[str, dict[str, Any]] = {}
    for k in graph.get_all_asset_keys():
        node = graph.get(k)
        checks = {
            spec.name: "blocking" if spec.blocking else "non-blocking"
            for spec in node.assets_def.check_specs
            if spec.asset_key == k
        }
        assert set(checks) == {c.name for c in node.check_keys}, key(k)  # every check described
        out[key(k)] = {
            "group": node.group_name,
            "owners": sorted(node.owners),
            "kinds": sorted(node.kinds),
            "tags": {t: v for t, v in sorted(node.tags.items()) if not t.startswith(KIND_TAG)},
            "checks": dict(sorted(checks.items())),
            "code_version": node.code_version,
            "partitions": str(node.partitions_def) if node.partitions_def else None,
            # the default mapping (the same month) unless the asset declares another
            "deps": {
                key(parent): repr(node.partition_mappings[parent])
                if parent in node.partition_mappings
                else "default"
                for parent in sorted(node.parent_keys, key=key)
            },
        }
    return dict(sorted(out.items()))


def describe(d: Definitions) -> dict[str, Any]:
    """The code location as sorted, JSON-able names and settings."""
    jobs = {}
    for job in d.resolve_all_job_defs():
        if job.name.startswith("__"):  # Dagster's implicit asset job
            continue
        selected = job.asset_layer.selected_asset_keys if job.asset_layer else set()
        jobs[job.name] = {
            "assets": sorted(key(k) for k in selected),
            "ops": sorted(n.name for n in job.graph.node_defs) if not selected else [],
            "partitions": str(job.partitions_def) if job.partitions_def else None,
            "executor": job.executor_def.name,
        }
    schedules = {
        s.name: {
            "job": s.job_name,
            "cron": s.cron_schedule,
            "timezone": s.execution_timezone,
            "default_status": s.default_status.value,
        }
        for s in d.schedules or []
    }
    sensors = {
        s.name: {
            "job": s.job_name,
            "minimum_interval_seconds": s.minimum_interval_seconds,
            "default_status": s.default_status.value,
        }
        for s in d.sensors or []
    }
    return {
        "assets": describe_assets(d),
        "jobs": dict(sorted(jobs.items())),
        "schedules": dict(sorted(schedules.items())),
        "sensors": dict(sorted(sensors.items())),
        "resources": sorted(d.resources or {}),
    }


def render(doc: dict[str, Any]) -> str:
    """The snapshot file's text: sorted keys, the Japanese as written, one final newline."""
    return json.dumps(doc, ensure_ascii=False, indent=2, sort_keys=True) + "\n"


def test_the_code_location_matches_its_snapshot() -> None:
    current = render(describe(defs))
    if os.environ.get(UPDATE) == "1":
        SNAPSHOT.parent.mkdir(parents=True, exist_ok=True)
        SNAPSHOT.write_text(current, encoding="utf-8")
    assert SNAPSHOT.exists(), f"no snapshot yet: run `{REGENERATE}` and commit the file"
    committed = SNAPSHOT.read_text(encoding="utf-8")
    diff = "".join(
        difflib.unified_diff(
            committed.splitlines(keepends=True),
            current.splitlines(keepends=True),
            fromfile="committed snapshots/code_location.json",
            tofile="the code location now",
        )
    )
    assert not diff, (
        "The code location differs from its snapshot. If the change is intended, regenerate "
        f"it and commit the file:\n\n    {REGENERATE}\n\n{diff}"
    )


def test_the_snapshot_is_the_same_in_another_process() -> None:
    """Another process hashes strings differently (PYTHONHASHSEED), so anything left in set or
    hash order would come out in another order there; and no path of this machine is in it."""
    text = render(describe(defs))
    assert str(ROOT) not in text and str(Path.home()) not in text
    assert '"sources/jumin"' in text and '"monthly_refresh"' in text  # it describes something
    code = (
        "import sys; from kodomo_assets.definitions import defs; "
        "from kodomo_assets_tests.defs.test_code_location import describe, render; "
        "sys.stdout.write(render(describe(defs)))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345", "PYTHONPATH": str(ROOT)}
    other = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert other.stdout == text

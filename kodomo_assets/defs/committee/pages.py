"""What the Dagster instance recorded for the committee's report, gathered once (Month): each
asset's latest metadata, failed checks, late files, the month's runs. The pages and their 課題
are built from it in lib/reporting/ (pages.py, first_page.py and the sections' modules)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from dagster import (
    AssetKey,
    AssetMaterialization,
    AssetRecordsFilter,
    DagsterEventType,
    DagsterInstance,
    EventLogRecord,
    RunsFilter,
)

from kodomo_assets.defs.analysis.assets import KEY as LINKED_KEY
from kodomo_assets.defs.center.assets import KEY as REVIEW_KEY
from kodomo_assets.defs.evaluation.assets import EVALUATION_KEY, FAIRNESS_KEY
from kodomo_assets.defs.linkage.assets import KEY as LINK_KEY
from kodomo_assets.defs.scoring.assets import KEY as SCORES_KEY
from kodomo_assets.defs.sources.assets import source_key
from kodomo_assets.defs.sources.inbox import KEY as INBOX_KEY
from kodomo_assets.lib.center.export import TOKYO, read_access_log
from kodomo_assets.lib.platform.storage import KodomoStorage
from kodomo_assets.lib.registry import load_registry
from kodomo_assets.lib.reporting.pages import Month, problems

__all__ = ["Month", "gather", "problems"]  # problems: the 課題 from what gather read


def _latest(instance: DagsterInstance, key: AssetKey, month: str) -> EventLogRecord | None:
    records = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=key, asset_partitions=[month]), limit=1
    ).records
    return records[0] if records else None


def _materialization(record: EventLogRecord) -> AssetMaterialization:
    mat = record.event_log_entry.asset_materialization
    assert mat is not None  # the records are materializations
    return mat


def meta(instance: DagsterInstance, key: AssetKey, month: str) -> dict:
    record = _latest(instance, key, month)
    if record is None:
        return {}
    return {k: v.value for k, v in _materialization(record).metadata.items()}


def failed_checks(instance: DagsterInstance, month: str) -> dict[str, int]:
    """Blocking checks that failed in the month's runs (a gate refusal stops the asset's
    table from being written), counted by asset and check."""
    out: dict[str, int] = {}
    for record in instance.get_run_records(RunsFilter(tags={"dagster/partition": month}), limit=50):
        for entry in instance.all_logs(
            record.dagster_run.run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION
        ):
            evaluation = entry.get_dagster_event().asset_check_evaluation_data
            if not evaluation.passed:
                name = f"{evaluation.asset_key.to_user_string()} の {evaluation.check_name}"
                out[name] = out.get(name, 0) + 1
    return out


def late_files(instance: DagsterInstance, month: str) -> list[str]:
    """Files an earlier receipt of the month found missing: they arrived late (the latest
    receipt says what is missing still)."""
    records = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=INBOX_KEY, asset_partitions=[month]), limit=20
    ).records
    late: set[str] = set()
    for record in records[1:]:  # newest first: every receipt before the latest
        missing = _materialization(record).metadata.get("missing")
        late |= set(cast("list[str]", missing.value) if missing is not None else [])
    return sorted(late)


def _tokyo(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, TOKYO).isoformat(timespec="seconds")


def runs(instance: DagsterInstance, month: str) -> list[list[Any]]:
    """The month's runs: id, job, status, start, who started it (the run's tags)."""
    return [
        [
            r.dagster_run.run_id[:8],
            r.dagster_run.job_name,
            r.dagster_run.status.value,
            r.start_time and _tokyo(r.start_time),
            r.dagster_run.tags.get("user") or r.dagster_run.tags.get("dagster/user") or "—",
        ]
        for r in instance.get_run_records(RunsFilter(tags={"dagster/partition": month}), limit=30)
    ]


def latest_materializations(instance: DagsterInstance, month: str) -> list[list[Any]]:
    """Each pipeline asset's latest materialization of the month: when, run, by whom."""
    keys = (*(source_key(d) for d in load_registry().datasets), LINK_KEY, LINKED_KEY)
    rows: list[list[Any]] = []
    for key in (*keys, SCORES_KEY, REVIEW_KEY, EVALUATION_KEY, FAIRNESS_KEY):
        record = _latest(instance, key, month)
        if record is None:
            rows.append(["/".join(key.path), "—", "—", "—"])
            continue
        m = _materialization(record).metadata
        by = m["materialized_by"].value if "materialized_by" in m else "—"
        rows.append(["/".join(key.path), _tokyo(record.timestamp), record.run_id[:8], by])
    return rows


def gather(storage: KodomoStorage, instance: DagsterInstance, month: str) -> Month:
    registry = load_registry()
    sources = {
        ds.label: m
        for ds in registry.datasets.values()
        if (m := meta(instance, source_key(ds.name), month))
    }
    listed = {
        m: int(r["new_suggestions"])
        for m in storage.months_on_disk()
        if m <= month
        if (r := meta(instance, REVIEW_KEY, m)) and "new_suggestions" in r
    }
    scores = meta(instance, SCORES_KEY, month)
    return Month(
        month,
        sources,
        meta(instance, INBOX_KEY, month),
        meta(instance, LINK_KEY, month),
        meta(instance, REVIEW_KEY, month),
        listed,
        failed_checks(instance, month),
        read_access_log(storage, month),
        late_files(instance, month),
        str(scores.get("ranking_mode", "")),
        fired=scores.get("indicators_fired") or {},
        planted=meta(instance, EVALUATION_KEY, month).get("planted_needs_unknown"),
        runs=runs(instance, month),
        latest=latest_materializations(instance, month),
    )

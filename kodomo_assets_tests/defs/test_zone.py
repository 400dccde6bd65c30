"""defs/zone.py's publishing, on its own: publish_gated promotes a staged zone file only when
the gate passed, keeping the published tables and nothing else; a refused table yields its
failed checks, raises a Failure that is not retried, and leaves the last published file as
it was. The gate's own checks are tested in lib/policy/test_gate.py; here its report is given."""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest
from dagster import AssetCheckResult, Failure

from kodomo_assets.defs.zone import check_results, publish_gated
from kodomo_assets.lib.platform.storage import KodomoStorage
from kodomo_assets.lib.policy.gate import CHECKS, CheckOutcome, GateReport

MONTH = "2022-10"
PROBLEM = "address: 電話番号 1 件"  # column names and counts only, as the gate writes them


def report(table: str, failed: dict[str, list[str]] | None = None) -> GateReport:
    """A gate report on `table`: every check passed but those in `failed` (with problems)."""
    failed = failed or {}
    return GateReport(
        table, [CheckOutcome(name, name not in failed, failed.get(name, [])) for name in CHECKS]
    )


def drive(gen: Generator[AssetCheckResult, None, Any], yielded: list[AssetCheckResult]) -> Any:
    """What a generator asset's `yield from` sees: each result yielded (appended to `yielded`,
    so they are there when the generator raises), then the return value."""
    while True:
        try:
            yielded.append(next(gen))
        except StopIteration as stop:
            return stop.value


def tables(storage: KodomoStorage, path: Path) -> dict[str, list[tuple]]:
    """Every table and view of a published zone file, with its rows."""
    with storage.open(path) as con:
        names = [
            n
            for (n,) in con.execute(
                "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() "
                "UNION ALL SELECT view_name FROM duckdb_views() "
                "WHERE database_name = current_database() AND NOT internal ORDER BY 1"
            ).fetchall()
        ]
        return {n: con.execute(f'SELECT * FROM "{n}" ORDER BY ALL').fetchall() for n in names}


def publish(
    storage: KodomoStorage, final: Path, value: int, gate: GateReport
) -> list[AssetCheckResult]:
    """Stage `scores` (one row of `value`) beside working tables and a view, then publish."""
    with storage.staged(final) as (con, stage):
        con.execute(f"CREATE TABLE scores AS SELECT {value} AS v")
        con.execute("CREATE TABLE work AS SELECT 1 AS tmp")
        con.execute("CREATE VIEW peek AS SELECT * FROM work")
        yielded: list[AssetCheckResult] = []
        results = drive(publish_gated(storage, con, stage, final, gate, ["scores"]), yielded)
        assert yielded == []  # a passing gate yields nothing: its results are returned
        assert not stage.exists()  # renamed into place
    return results


def test_a_passing_gate_publishes_only_the_listed_tables(storage: KodomoStorage) -> None:
    final = storage.zone_store("analysis", MONTH, "risk_scores")
    results = publish(storage, final, 1, report("scores"))
    assert [(r.check_name, r.passed) for r in results] == [(name, True) for name in CHECKS]
    assert tables(storage, final) == {"scores": [(1,)]}  # no working table, no view
    assert list(final.parent.glob("*.staging.duckdb*")) == []


def test_a_refused_table_is_never_written_and_the_last_one_stays(
    storage: KodomoStorage,
) -> None:
    final = storage.zone_store("analysis", MONTH, "risk_scores")
    publish(storage, final, 1, report("scores"))
    before = final.read_bytes()
    refused = report("scores", {"content_scan": [PROBLEM]})
    yielded: list[AssetCheckResult] = []
    with pytest.raises(Failure) as err, storage.staged(final) as (con, stage):
        con.execute("CREATE TABLE scores AS SELECT 2 AS v")
        drive(publish_gated(storage, con, stage, final, refused, ["scores"]), yielded)
    # every check's result first (recorded as failed checks), then the Failure
    assert [(r.check_name, r.passed) for r in yielded] == [
        (name, name != "content_scan") for name in CHECKS
    ]
    scan = next(r for r in yielded if r.check_name == "content_scan")
    assert scan.metadata["problems"].value == [PROBLEM]
    assert err.value.description == refused.message()
    assert err.value.description.startswith("scores: 公開前の検査で拒否しました")
    assert PROBLEM in err.value.description
    assert not err.value.allow_retries  # the same table would be refused again
    assert final.read_bytes() == before and tables(storage, final) == {"scores": [(1,)]}
    assert list(final.parent.glob("*.staging.duckdb*")) == []  # the refused file is gone


def test_a_check_passes_only_when_it_passed_on_every_table() -> None:
    results = check_results(
        [report("a"), report("b", {"approved_columns": ["余分な列: extra"]}), report("c")]
    )
    assert [(r.check_name, r.passed) for r in results] == [
        (name, name != "approved_columns") for name in CHECKS
    ]
    for r in results:
        assert r.metadata["tables"].value == ["a", "b", "c"]
        expected = ["余分な列: extra"] if r.check_name == "approved_columns" else []
        assert r.metadata["problems"].value == expected

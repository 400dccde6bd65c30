"""The zone gate: what a table must pass before it is published into another zone.

Run on the staged table, before promotion, so a leaking table is never written where it
would be read. Great Expectations checks the column set on a zero-row frame (its SQL
datasource is broken on DuckDB, and whole tables never go through pandas); the content
scan is DuckDB SQL. Results carry counts and column names, never a value.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache

import duckdb

from kodomo_assets.lib.platform.rows import one_row
from kodomo_assets.lib.policy import content
from kodomo_assets.lib.policy.pseudonym import TOKEN_PATTERN
from kodomo_assets.lib.policy.statutory import DENIED_HEADER_PATTERN, is_direct_identifier
from kodomo_assets.lib.registry import load_registry

CHECKS = {
    "approved_columns": "列の集合が承認された列の集合と完全に一致する（ExpectTableColumnsToMatchSet, exact_match）",
    "no_denied_columns": "法令上利用できない列・直接識別子・生の番号の列がない",
    "content_scan": "文字列の列に個人番号（検査用数字が合う12桁）・電話番号・10桁以上の番号・金額がない"
    "（受信時と同じ検出器で値ごとに）。仮名の列は仮名の形だけ",
}


@dataclass
class CheckOutcome:
    name: str
    passed: bool
    problems: list[str] = field(default_factory=list)  # column names and counts only
    counts: dict[str, int] = field(default_factory=dict)


@dataclass
class GateReport:
    table: str
    outcomes: list[CheckOutcome]

    @property
    def passed(self) -> bool:
        return all(o.passed for o in self.outcomes)

    def message(self) -> str:
        lines = [f"{self.table}: 公開前の検査で拒否しました。表は公開先に書き込んでいません。"]
        for o in self.outcomes:
            if not o.passed:
                lines.append(f"- {CHECKS[o.name]}: " + "; ".join(o.problems))
        return "\n".join(lines)


def denied_column_names(allowed_ids: Iterable[str] = ()) -> set[str]:
    """Registry columns that may never appear in a published table of this zone."""
    out = set()
    for ds in load_registry().datasets.values():
        for c in ds.columns:
            if c.forbidden or c.marker == "id" or (c.type == "id" and c.name != "district_code"):
                out.add(c.name)
    return out - set(allowed_ids)


def _is_denied(name: str, denied: set[str]) -> bool:
    return name in denied or bool(DENIED_HEADER_PATTERN.search(name)) or is_direct_identifier(name)


@cache
def _deny_expectation() -> type:
    """GE has no "column must not exist" expectation; this one reads table.columns. Built on
    first use (GE registers expectation classes, so only once) to keep GE's import lazy."""
    from great_expectations.expectations.expectation import BatchExpectation

    class ExpectTableColumnsToExcludeDenied(BatchExpectation):
        """No column whose name is statutorily denied or a raw identifier."""

        denied: list[str]
        metric_dependencies = ("table.columns",)
        success_keys = ("denied",)
        args_keys = ("denied",)

        def _validate(
            self,
            metrics: dict,
            runtime_configuration: dict | None = None,
            execution_engine: object = None,
        ) -> dict:
            found = [c for c in metrics["table.columns"] if _is_denied(c, set(self.denied))]
            return {"success": not found, "result": {"observed_value": found}}

    return ExpectTableColumnsToExcludeDenied


_warm_up: threading.Thread | None = None


def warm_up() -> None:
    """Load Great Expectations in a thread while the asset's DuckDB work runs (DuckDB
    releases the GIL): the first gate of a run would otherwise wait about 3 s for GE's
    import and first context. Once per process; the gate waits for it."""
    global _warm_up
    if _warm_up is None:

        def run() -> None:
            # a failure here is raised again, in place, by the real gate
            with contextlib.suppress(Exception):
                _gx_column_checks(["x"], ["x"], set())

        _warm_up = threading.Thread(target=run, name="gx-warm-up", daemon=True)
        _warm_up.start()


def _column_checks(columns: list[str], approved: list[str], denied: set[str]) -> list[CheckOutcome]:
    if _warm_up is not None:
        _warm_up.join()  # GE's registries are not built for two threads at once
    return _gx_column_checks(columns, approved, denied)


def _gx_column_checks(
    columns: list[str], approved: list[str], denied: set[str]
) -> list[CheckOutcome]:
    """The two column-set expectations, run by Great Expectations on a zero-row frame."""
    import great_expectations as gx  # 3 s and 220 MB: only when a gate runs
    import pandas as pd
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    # Offline: no usage statistics, and no temporary docs site left behind on each run.
    ctx = gx.get_context(
        mode="ephemeral",
        project_config=DataContextConfig(
            analytics_enabled=False,
            store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        ),
    )
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    frame = pd.DataFrame({c: pd.Series([], dtype="object") for c in columns})
    batch = (
        ctx.data_sources.add_pandas("gate")
        .add_dataframe_asset("table")
        .add_batch_definition_whole_dataframe("zero_rows")
        .get_batch(batch_parameters={"dataframe": frame})
    )
    exact = batch.validate(
        gx.expectations.ExpectTableColumnsToMatchSet(column_set=approved, exact_match=True)
    )
    extra = sorted(set(columns) - set(approved))
    missing = sorted(set(approved) - set(columns))
    deny = batch.validate(_deny_expectation()(denied=sorted(denied)))
    found = deny.result.get("observed_value") or []
    return [
        CheckOutcome(
            "approved_columns",
            bool(exact.success),
            ([f"承認されていない列 {', '.join(extra)}"] if extra else [])
            + ([f"承認された列の欠落 {', '.join(missing)}"] if missing else []),
            {"extra": len(extra), "missing": len(missing)},
        ),
        CheckOutcome(
            "no_denied_columns",
            bool(deny.success),
            [f"利用できない列 {', '.join(found)}"] if found else [],
            {"denied": len(found)},
        ),
    ]


def _content_scan(
    con: duckdb.DuckDBPyConnection, table: str, text_columns: list[str], token_columns: list[str]
) -> CheckOutcome:
    """The door's detector again (lib/policy/content.py), value by value: counts per column and
    kind, never a value."""
    content.install(con)
    problems: list[str] = []
    counts = dict.fromkeys([*content.KINDS, "not_token"], 0)
    for col in text_columns:
        for kind, n in con.execute(
            f'SELECT k, count(*) FROM (SELECT content_hit("{col}") AS k FROM {table}) '
            "WHERE k IS NOT NULL GROUP BY k ORDER BY k"
        ).fetchall():
            counts[kind] += n
            problems.append(f"列 {col} に{content.label(kind)}がある値 {n} 件")
    for col in token_columns:
        (n,) = one_row(
            con.execute(
                f'SELECT count(*) FROM {table} WHERE NOT regexp_full_match("{col}", ?)',
                [TOKEN_PATTERN],
            )
        )
        if n:
            counts["not_token"] += n
            problems.append(f"仮名の列 {col} に仮名の形でない値 {n} 件")
    return CheckOutcome("content_scan", not problems, problems, counts)


def inspect_table(
    con: duckdb.DuckDBPyConnection,
    table: str,
    *,
    approved: list[str],
    token_columns: Iterable[str] = (),
    id_columns: Iterable[str] = (),
) -> GateReport:
    """Check a staged table against its approved column set and scan its text content.
    `id_columns` are raw identifiers this zone is approved to hold (the linkage zone)."""
    schema = con.execute(f"DESCRIBE {table}").fetchall()
    columns = [r[0] for r in schema]
    tokens, ids = set(token_columns), set(id_columns)
    text = [
        name
        for name, typ, *_ in schema
        if typ.startswith("VARCHAR") and name not in tokens and name not in ids
    ]
    outcomes = _column_checks(columns, approved, denied_column_names(ids))
    # list columns are scanned as their joined text
    scan = table
    if any(typ.endswith("[]") for _, typ, *_ in schema):
        cols = ", ".join(
            f'array_to_string("{n}", \',\') AS "{n}"' if t.endswith("[]") else f'"{n}"'
            for n, t, *_ in schema
        )
        scan = f"(SELECT {cols} FROM {table})"
    outcomes.append(_content_scan(con, scan, text, [c for c in columns if c in tokens]))
    return GateReport(table=table, outcomes=outcomes)

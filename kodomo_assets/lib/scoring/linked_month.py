"""The month's linked table built in a DuckDB connection: the department stores attached, the
plan's SQL run, k enforced and the linkage attack made on the register's columns; and the
audit-only attributes, which never leave the calling step."""

from __future__ import annotations

import duckdb

from kodomo_assets.lib.linkage.link import STORE as LINK_STORE
from kodomo_assets.lib.platform.storage import KodomoStorage
from kodomo_assets.lib.policy.anonymity import AttackResult, enforce_k, linkage_attack
from kodomo_assets.lib.policy.approval import MonthApproval
from kodomo_assets.lib.policy.pseudonym import register_udfs
from kodomo_assets.lib.registry import load_registry
from kodomo_assets.lib.scoring.linked_table import TABLE, Plan, compile_sql, load_spec, plan

LINK_TABLE = "linkage.pupil_link"


def source_tables(approval: MonthApproval) -> dict[str, str]:
    """Each dataset that has an approved key, as the qualified table of its store."""
    reg = load_registry()
    return {
        ds.name: f"{ds.department.code}.{ds.name}"
        for ds in reg.datasets.values()
        if approval.columns(ds.name, "key")
    }


def attach_sources(
    storage: KodomoStorage, con: duckdb.DuckDBPyConnection, month: str, tables: dict[str, str]
) -> None:
    for dept in sorted({t.split(".")[0] for t in tables.values()}):
        storage.attach(con, dept, storage.department_store(dept, month))


def build(
    storage: KodomoStorage,
    con: duckdb.DuckDBPyConnection,
    month: str,
    p: Plan,
    approval: MonthApproval,
    key: bytes,
) -> tuple[dict[str, int], AttackResult]:
    """TABLE in `con`, k enforced on it; the rows suppressed per group and the attack."""
    tables, qis = source_tables(approval), p.quasi_identifiers
    register_udfs(con, key)
    attach_sources(storage, con, month, tables)
    storage.attach(con, "linkage", storage.zone_store("linkage", month, LINK_STORE))
    for stmt in compile_sql(p, month, tables, LINK_TABLE):
        con.execute(stmt)
    # the attacker's side: the same coarsened columns as the register gives them (they
    # are built from the register alone: load_spec refuses a register column that is not)
    con.execute(f"CREATE TEMP TABLE register_view AS SELECT {', '.join(qis)} FROM {TABLE}")
    suppressed = enforce_k(con, TABLE, "register_view", qis, p.suppression_order())
    attack = linkage_attack(con, TABLE, "register_view", qis, fixed=p.never_suppressed)
    return suppressed, attack


def audit_attributes(
    storage: KodomoStorage, con: duckdb.DuckDBPyConnection, month: str, approval: MonthApproval
) -> list[str]:
    """TEMP TABLE audit_attributes (child_token and the audit-only attributes such as district
    and foreign residence), computed from the register inside the calling step only: they
    never sit in the analysis table, and callers publish aggregates of them."""
    audit = plan(load_spec(), approval).audit
    if not audit.features:
        con.execute(
            "CREATE OR REPLACE TEMP TABLE audit_attributes AS SELECT NULL::VARCHAR AS child_token "
            "WHERE false"
        )
        return []
    register_udfs(con, storage.pseudonym_key())
    tables = {k: v for k, v in source_tables(approval).items() if k == audit.spec.base_dataset}
    attach_sources(storage, con, month, tables)
    for stmt in compile_sql(
        audit,
        month,
        tables,
        LINK_TABLE,
        table="audit_attributes",
        temp=True,
        audit=True,
        tokens=("child",),
    ):
        con.execute(stmt)
    return [f.name for f in audit.features]

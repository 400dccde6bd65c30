"""連携テーブル: one row per child, pseudonyms and approved features only (analysis zone)."""

import hashlib

from dagster import (
    AssetExecutionContext,
    AssetKey,
    Failure,
    MaterializeResult,
    MetadataValue,
    TableColumn,
    TableColumnDep,
    TableColumnLineage,
    TableSchema,
)

from kodomo_assets.defs.approval import approval_for
from kodomo_assets.defs.lineage import materialized_by
from kodomo_assets.defs.linkage.assets import KEY as LINK_KEY
from kodomo_assets.defs.sources.assets import source_key
from kodomo_assets.defs.zone import check_results, zone_asset
from kodomo_assets.lib.gate import inspect_table, warm_up
from kodomo_assets.lib.linked_table import TOKENS, Plan, compile_sql, describe, load_spec, plan
from kodomo_assets.lib.paths import DATA_DIR, department_store, zone_store
from kodomo_assets.lib.policy import MonthApproval
from kodomo_assets.lib.pseudonym import PseudonymKeyError, load_key, register_udfs
from kodomo_assets.lib.publish import attach_read_only, keep_only, promote, staged
from kodomo_assets.lib.registry import load_registry

KEY = AssetKey(["analysis", "linked_children"])
TABLE = "linked_children"
_spec_file = DATA_DIR / "registry" / "linked_table.yaml"
CODE_VERSION = "1-" + hashlib.sha256(_spec_file.read_bytes()).hexdigest()[:10]


def lineage(p: Plan) -> TableColumnLineage:
    return TableColumnLineage(deps_by_column={
        name: [TableColumnDep(asset_key=source_key(ds), column_name=col) for ds, col in p.lineage[name]]
        + ([TableColumnDep(asset_key=LINK_KEY, column_name="atena_no")]
           if any(ds in ("gakurei", "shukketsu") for ds, _ in p.lineage[name]) else [])
        for name in p.columns})


def schema(p: Plan) -> TableSchema:
    text, types = describe(p), p.types()
    return TableSchema(columns=[TableColumn(name=c, type=types[c], description=text[c]) for c in p.columns])


def _tables(approval: MonthApproval) -> dict[str, str]:
    reg = load_registry()
    return {ds.name: f"{ds.department.code}.{ds.name}" for ds in reg.datasets.values()
            if approval.columns(ds.name, "key")}


@zone_asset(
    KEY,
    zone="analysis",
    sensitive=True,
    kinds={"duckdb"},
    code_version=CODE_VERSION,
    deps=[*(source_key(ds) for ds in load_registry().datasets), LINK_KEY],
    description=(
        "連携テーブル（分析領域）: 基準月末に0〜17歳の児童1人につき1行。児童と世帯は仮名"
        "（鍵付き HMAC-SHA256）でのみ表し、列は承認リスト（別紙 個人情報項目）で分析に承認された"
        "項目から作るものだけ: 出欠の推移、手当・保護・就学援助、同居家族の要介護度とサービス、"
        "障害とサービス、健診と予防接種、保育、転居、センターの把握状況。公開前に検査し、"
        "承認外の列・禁止列・個人番号や電話番号などの値があれば書き込まずに失敗する。"
    ),
)
def linked_children(context: AssetExecutionContext):  # noqa: ANN201 - yields check results
    month = context.partition_key
    approval = approval_for(month)
    warm_up()  # the gate's Great Expectations loads while the SQL runs
    p = plan(load_spec(), approval)
    try:
        key = load_key()
    except PseudonymKeyError as err:
        raise Failure(description=str(err), allow_retries=False) from None
    tables = _tables(approval)
    final = zone_store("analysis", month, TABLE)
    with staged(final) as (con, stage):
        register_udfs(con, key)
        for dept in sorted({t.split(".")[0] for t in tables.values()}):
            attach_read_only(con, dept, department_store(dept, month))
        attach_read_only(con, "linkage", zone_store("linkage", month, "pupil_links"))
        for stmt in compile_sql(p, month, tables, "linkage.pupil_link"):
            con.execute(stmt)
        report = inspect_table(con, TABLE, approved=p.columns, token_columns=list(TOKENS))
        results = check_results([report])
        if not report.passed:
            yield from results  # recorded as failed checks; nothing is published
            raise Failure(description=report.message(), allow_retries=False)
        (rows,) = con.execute(f"SELECT count(*) FROM {TABLE}").fetchone()
        keep_only(con, [TABLE])
        promote(con, stage, final)
    yield MaterializeResult(
        metadata={
            "dagster/row_count": rows,
            "dagster/column_schema": schema(p),
            "dagster/column_lineage": lineage(p),
            "materialized_by": materialized_by(),
            "approved_columns": len(p.columns),
            "omitted_columns": MetadataValue.json(p.omitted),
            "approval_periods": MetadataValue.json([x.label() for x in approval.periods]),
            "store": MetadataValue.path(str(final)),
        },
        check_results=results,
    )

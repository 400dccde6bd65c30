"""連携テーブル: one row per child, pseudonyms and approved, coarsened features only
(analysis zone), published only when the linkage attack fails."""

from dagster import (
    AssetCheckResult,
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
from kodomo_assets.lib.paths import REGISTRY, content_version
from kodomo_assets.lib.platform.keys import KeyProblem
from kodomo_assets.lib.platform.rows import one_row
from kodomo_assets.lib.platform.storage import KodomoStorage, keep_only
from kodomo_assets.lib.policy.anonymity import MAX_BELOW_K_SHARE, MAX_UNIQUE_SHARE, AttackResult, K
from kodomo_assets.lib.policy.gate import inspect_table, warm_up
from kodomo_assets.lib.registry import load_registry
from kodomo_assets.lib.scoring import linked_month
from kodomo_assets.lib.scoring.linked_table import TABLE, TOKENS, Plan, describe, load_spec, plan

KEY = AssetKey(["analysis", "linked_children"])
ATTACK_CHECK = "linkage_attack"
CODE_VERSION = content_version("2", REGISTRY / "linked_table.yaml")
audit_attributes = linked_month.audit_attributes  # defs/evaluation imports it from here


def lineage(p: Plan) -> TableColumnLineage:
    return TableColumnLineage(
        deps_by_column={
            name: [
                TableColumnDep(asset_key=source_key(ds), column_name=col)
                for ds, col in p.lineage[name]
            ]
            + (
                [TableColumnDep(asset_key=LINK_KEY, column_name="atena_no")]
                if any(ds in ("gakurei", "shukketsu") for ds, _ in p.lineage[name])
                else []
            )
            for name in p.columns
        }
    )


def schema(p: Plan) -> TableSchema:
    text, types = describe(p), p.types()
    return TableSchema(
        columns=[TableColumn(name=c, type=types[c], description=text[c]) for c in p.columns]
    )


def attack_result(attack: AttackResult, suppressed: dict[str, int]) -> AssetCheckResult:
    """The attack's figures, never a row: counts, shares and column names."""
    return AssetCheckResult(
        check_name=ATTACK_CHECK,
        passed=attack.passed,
        description=None if attack.passed else attack.message(),
        metadata={
            "children": attack.children,
            "unique_match_share": MetadataValue.float(round(attack.unique_share, 5)),
            "below_k_share": MetadataValue.float(round(attack.below_k_share, 5)),
            "min_k": attack.min_k if attack.min_k is not None else 0,
            "k": K,
            "max_unique_share": MAX_UNIQUE_SHARE,
            "max_below_k_share": MAX_BELOW_K_SHARE,
            "register_columns": MetadataValue.json(list(attack.columns)),
            "rows_suppressed": MetadataValue.json(suppressed),
        },
    )


@zone_asset(
    KEY,
    zone="analysis",
    sensitive=True,
    kinds={"duckdb"},
    code_version=CODE_VERSION,
    deps=[*(source_key(ds) for ds in load_registry().datasets), LINK_KEY],
    checks=[
        (
            ATTACK_CHECK,
            f"連結攻撃の自己検査: 住民基本台帳から導ける列（年齢・性別・世帯構成・居住期間）で連携テーブルと"
            f"台帳を照合し、一人に特定される児童が {MAX_UNIQUE_SHARE:.0%} 以下、{K} 人未満に絞られる児童が "
            f"{MAX_BELOW_K_SHARE:.0%} 以下のときだけ公開する。",
        )
    ],
    description=(
        "連携テーブル（分析領域）: 基準月末に0〜17歳の児童1人につき1行。児童と世帯は仮名"
        "（鍵付き HMAC-SHA256）でのみ表し、列は承認リスト（別紙 個人情報項目）で分析に承認された"
        "項目から作るものだけ: 出欠の推移、手当・保護・就学援助、同居家族の要介護度とサービス、"
        "障害とサービス、健診と予防接種、保育、転居、センターの把握状況。住民基本台帳から導ける列は"
        "粗くし（居住期間は区分、世帯人数などは上限付き、町丁目と正確な日付は載せない）、同じ組み合わせの"
        f"児童が {K} 人未満なら不明にしてから、台帳との連結攻撃を自ら行って確かめる。公開前に検査し、"
        "承認外の列・禁止列・個人番号や電話番号などの値があれば書き込まずに失敗する。"
    ),
)
def linked_children(context: AssetExecutionContext, storage: KodomoStorage):
    month = context.partition_key
    approval = approval_for(storage, month)
    warm_up()  # the gate's Great Expectations loads while the SQL runs
    p = plan(load_spec(), approval)
    try:
        key = storage.pseudonym_key()
    except KeyProblem as err:
        raise Failure(description=str(err), allow_retries=False) from None
    final = storage.zone_store("analysis", month, TABLE)
    with storage.staged(final) as (con, stage):
        suppressed, attack = linked_month.build(storage, con, month, p, approval, key)
        report = inspect_table(con, TABLE, approved=p.columns, token_columns=list(TOKENS))
        results = [*check_results([report]), attack_result(attack, suppressed)]
        if not report.passed or not attack.passed:
            yield from results  # recorded as failed checks; nothing is published
            raise Failure(
                description="\n".join(
                    ([report.message()] if not report.passed else [])
                    + ([attack.message()] if not attack.passed else [])
                ),
                allow_retries=False,
            )
        (rows,) = one_row(con.execute(f"SELECT count(*) FROM {TABLE}"))
        keep_only(con, [TABLE])
        storage.promote(con, stage, final)
    context.log.info(attack.message())
    yield MaterializeResult(
        metadata={
            "dagster/row_count": rows,
            "dagster/column_schema": schema(p),
            "dagster/column_lineage": lineage(p),
            "materialized_by": materialized_by(),
            "approved_columns": len(p.columns),
            "omitted_columns": MetadataValue.json(p.omitted),
            "approval_periods": MetadataValue.json([x.label() for x in approval.periods]),
            "unique_match_share": MetadataValue.float(round(attack.unique_share, 5)),
            "below_k_share": MetadataValue.float(round(attack.below_k_share, 5)),
            "store": MetadataValue.path(str(final)),
        },
        check_results=results,
    )

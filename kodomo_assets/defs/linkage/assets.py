"""児童生徒の連携: Board of Education pupils linked to the resident register.

Runs in the linkage zone, the only place direct identifiers (kana, address) are compared.
Its output holds raw 宛名番号 and 学籍番号, approved as 連携キー, and is read only by the
linked-table step, which turns them into pseudonyms.
"""

import zlib

from dagster import (
    AssetExecutionContext,
    AssetKey,
    Failure,
    MaterializeResult,
    MetadataValue,
)

from kodomo_assets.defs.approval import approval_for
from kodomo_assets.defs.lineage import column_lineage, materialized_by
from kodomo_assets.defs.sources.assets import source_key
from kodomo_assets.defs.zone import check_results, zone_asset
from kodomo_assets.lib.linkage.allowed import approved_inputs
from kodomo_assets.lib.linkage.decisions import apply_standing
from kodomo_assets.lib.linkage.link import STORE, link_pupils
from kodomo_assets.lib.linkage.truth import linkage_against_truth
from kodomo_assets.lib.platform.storage import KodomoStorage, keep_only
from kodomo_assets.lib.policy.gate import inspect_table, warm_up
from kodomo_assets.lib.registry import load_registry
from kodomo_assets.lib.scoring.evaluation import truth_for

LINKAGE_VERSION = "2"
TABLES = {
    "pupil_link": ["pupil_no", "atena_no", "method", "match_weight", "match_probability"],
    "link_review": ["pupil_no", "atena_no", "reason", "match_weight", "match_probability"],
}
KEY = AssetKey(["linkage", "pupil_links"])


def _lineage(fields: frozenset[str]) -> dict[str, list[tuple[AssetKey, str]]]:
    jumin, gakurei = source_key("jumin"), source_key("gakurei")
    matched = [(k, f) for f in sorted(fields) for k in (jumin, gakurei)]
    return {
        "pupil_no": [(gakurei, "pupil_no")],
        "atena_no": [(gakurei, "atena_no"), (jumin, "atena_no")],
        "method": [(gakurei, "atena_no")],
        "match_weight": matched,
        "match_probability": matched,
        "reason": [(gakurei, "atena_no"), *matched],
    }


@zone_asset(
    KEY,
    zone="linkage",
    sensitive=False,
    kinds={"duckdb", "splink"},
    code_version=LINKAGE_VERSION,
    deps=[source_key("jumin"), source_key("gakurei")],
    description=(
        "児童生徒の連携: 学齢簿の児童生徒を住民基本台帳の宛名番号に結び付ける。宛名番号があれば"
        "氏名カナと生年月日の一致を確かめて連携し（一致しなければ同じ照合の根拠で確かめる）、空欄なら Splink による確率的照合（氏名カナ・"
        "生年月日・性別・住所。m確率は宛名番号のある児童生徒から学習）で一対一に連携する。"
        "不確実な候補は自動連携せず確認用の表へ。既知の宛名番号の一部を伏せて毎回精度を測る。"
        "職員が確認した組（同一・別人）は、どちらの記録も変わらない限り翌月以降そのまま適用する。"
        "連携領域にのみ保存し、分析領域へは仮名化して渡す。"
    ),
)
def pupil_links(context: AssetExecutionContext, storage: KodomoStorage):
    month = context.partition_key
    approval = approval_for(storage, month)
    warm_up()  # the gate's Great Expectations loads while the SQL runs
    reg = load_registry()
    final = storage.zone_store("linkage", month, STORE)
    with storage.staged(final) as (con, stage):
        for ds in ("jumin", "gakurei"):
            dept = reg.datasets[ds].department.code
            storage.attach(con, dept, storage.department_store(dept, month))
        fields = approved_inputs(con, approval)
        r = link_pupils(con, seed=zlib.crc32(month.encode()), fields=fields)
        # demo only: the automatic linkage against the truth, before decisions change it
        truth, _ = truth_for(storage.inbox_path, month)
        against_truth = linkage_against_truth(con, truth.parent) if truth is not None else None
        decided, r = apply_standing(con, storage, month, r)  # a steward's earlier decisions
        reports = [
            inspect_table(con, t, approved=cols, id_columns=("pupil_no", "atena_no"))
            for t, cols in TABLES.items()
        ]
        results = check_results(reports)
        if not all(x.passed for x in results):
            yield from results
            raise Failure(
                description="\n".join(x.message() for x in reports if not x.passed),
                allow_retries=False,
            )
        keep_only(con, TABLES)
        storage.promote(con, stage, final)
    context.log.info(
        f"{month}: 宛名番号 {r.deterministic}、宛名番号（照合で確認）{r.checked}、"
        f"確率的照合 {r.probabilistic}、"
        f"確認待ち {r.review}、未連携 {r.unlinked}"
    )
    yield MaterializeResult(
        metadata={
            "dagster/row_count": r.deterministic + r.checked + r.probabilistic,
            "pupils": r.pupils,
            "linked_by_atena_no": r.deterministic,
            "linked_by_atena_no_checked": r.checked,
            "linked_probabilistically": r.probabilistic,
            "steward_review": r.review,
            "unlinked": r.unlinked,
            "holdout_pairs": r.holdout_pairs,
            "holdout_precision": MetadataValue.float(r.precision)
            if r.precision is not None
            else None,
            "holdout_recall": MetadataValue.float(r.recall) if r.recall is not None else None,
            "holdout_disagreeing": r.holdout_disagreeing,
            "holdout_recall_disagreeing": (
                MetadataValue.float(r.recall_disagreeing)
                if r.recall_disagreeing is not None
                else None
            ),
            "twins_cross_linked": r.twins_cross_linked,
            # demo truth: blank-ID pupils' automatic links, overall and per variant kind
            "demo_truth_linkage": MetadataValue.json(against_truth) if against_truth else None,
            "matching_fields": MetadataValue.json(sorted(fields)),
            "m_probabilities": MetadataValue.json(r.m_probabilities),
            "linkage_seconds": round(r.seconds, 2),
            # the steward's decisions of earlier months (kodomo link-decisions), counts only
            "linked_by_decision": decided.linked,
            "link_decisions_same": decided.same,
            "link_decisions_different": decided.different,
            "link_decisions_lapsed": decided.lapsed,
            "link_decisions_blocked": decided.blocked,
            "store": MetadataValue.path(str(final)),
            "materialized_by": materialized_by(),
            "dagster/column_lineage": column_lineage(_lineage(fields)),
        },
        check_results=results,
    )

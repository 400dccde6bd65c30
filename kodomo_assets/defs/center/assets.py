"""確認リスト: the center's review list, re-identified (center zone, the center's eyes only)."""

import warnings

from dagster import (
    AssetDep,
    AssetExecutionContext,
    AssetKey,
    BetaWarning,
    Config,
    Failure,
    MaterializeResult,
    MetadataValue,
    TimeWindowPartitionMapping,
)

from kodomo_assets.defs.approval import approval_for
from kodomo_assets.defs.lineage import column_lineage, materialized_by
from kodomo_assets.defs.scoring.assets import KEY as SCORES_KEY
from kodomo_assets.defs.scoring.assets import TABLE as SCORES_TABLE
from kodomo_assets.defs.sources.assets import source_key
from kodomo_assets.defs.zone import check_results, zone_asset
from kodomo_assets.lib.center import listing
from kodomo_assets.lib.center.listing import COLUMNS, REGISTER, verified_before
from kodomo_assets.lib.center.review_list import NEW, RISEN, SHARE, TABLE, k_for
from kodomo_assets.lib.partitions import previous_month
from kodomo_assets.lib.platform.keys import KeyProblem
from kodomo_assets.lib.platform.rows import one_row
from kodomo_assets.lib.platform.storage import KodomoStorage, keep_only
from kodomo_assets.lib.policy.gate import inspect_table
from kodomo_assets.lib.policy.pseudonym import register_udfs
from kodomo_assets.lib.registry import load_registry

KEY = AssetKey(["center", "review_list"])
FEEDBACK_KEY = AssetKey(["center", "verification_feedback"])
# The months' order is part of the graph, not of luck: a month's list reads the previous
# month's list's scores (score rose) and every result returned so far (no re-listing without
# news). It depends on its own previous month (a self-dependency: Dagster then backfills the
# months in order without reaching past the range) and on this month's results, which answer
# the previous list; the previous month's scores and results come before the previous list.
with warnings.catch_warnings():  # the first month has no previous one: allowed (beta flag)
    warnings.simplefilter("ignore", BetaWarning)
    PREVIOUS = TimeWindowPartitionMapping(
        start_offset=-1, end_offset=-1, allow_nonexistent_upstream_partitions=True
    )


class ReviewListConfig(Config):
    share: float = SHARE  # k as a share of all children
    k: int = 0  # a fixed k instead (0: use share)
    rise: float = 0.05  # a known child's score increase that puts it in the second section
    # a child found 非該当 within this many months is not listed again unless an indicator
    # fires that did not fire then (0: always list)
    relist_after: int = 6


@zone_asset(
    KEY,
    zone="center",
    sensitive=True,
    kinds={"duckdb"},
    code_version="2",
    deps=[SCORES_KEY, FEEDBACK_KEY, AssetDep(KEY, partition_mapping=PREVIOUS), source_key("jumin")],
    description=(
        "確認リスト（センター領域。子ども家庭支援センターのみ閲覧。リストごとの新しい鍵で暗号化し、その鍵は"
        "センターの公開鍵でだけ包んで保存するため、更新処理は書けても読めない）: センターが現在把握していない"
        "児童のうちスコア上位 k 人（既定は全児童の2%）と、別枠で、既知の児童のうちスコアが前月から"
        "上がった児童。順位・較正済みスコア・発生した指標・理由・事実の時点を付け、宛名番号に戻す。"
        "いずれも支援の必要性の示唆であり、職員が一人ずつ確認する。書き出しは "
        "`kodomo review-list`（センターの秘密鍵と利用目的が必要、記録が残る）。"
    ),
)
def review_list(context: AssetExecutionContext, config: ReviewListConfig, storage: KodomoStorage):
    month = context.partition_key
    approval_for(storage, month)
    try:
        pseudonym_key = storage.pseudonym_key()
        recipient = storage.center_public().fingerprint  # no list without the center's key
    except KeyProblem as err:
        raise Failure(description=str(err), allow_retries=False) from None
    final = storage.zone_store("center", month, TABLE)
    prev = storage.zone_store("analysis", previous_month(month), SCORES_TABLE)
    with storage.staged_for_center(final) as (con, stage):
        register_udfs(con, pseudonym_key)
        storage.attach(con, "scores", storage.zone_store("analysis", month, SCORES_TABLE))
        register = load_registry().datasets["jumin"].department.code
        storage.attach(con, REGISTER, storage.department_store(register, month))
        if prev.exists():
            storage.attach(con, "prev", prev)
        (n_children,) = one_row(con.execute(f"SELECT count(*) FROM scores.{SCORES_TABLE}"))
        k = k_for(n_children, config.share, config.k)
        verified = verified_before(storage, con, month, config.relist_after)
        listed, joined = listing.build(con, month, k, config.rise, verified, prev.exists())
        if listed != joined:
            raise Failure(
                description=f"{month}: {listed - joined} 人を宛名番号に戻せませんでした"
                "（住民基本台帳と連携テーブルの基準月が一致しているか確認してください）",
                allow_retries=False,
            )
        report = inspect_table(
            con, TABLE, approved=COLUMNS, token_columns=["child_token"], id_columns=["atena_no"]
        )
        results = check_results([report])
        if not report.passed:
            yield from results
            raise Failure(description=report.message(), allow_retries=False)
        counts, held_back, no_reason = listing.figures(con, verified)
        keep_only(con, [TABLE])
        storage.promote(con, stage, final)
    yield MaterializeResult(
        metadata={
            "dagster/row_count": joined,
            "k": k,
            "children_scored": n_children,
            "new_suggestions": counts.get(NEW, 0),
            "known_with_rising_score": counts.get(RISEN, 0),
            "previous_month_scores": MetadataValue.text(
                "あり" if prev.exists() else "なし（前月未計算）"
            ),
            "rows_without_reason": no_reason,
            "not_relisted_after_non_confirmation": held_back,
            "encrypted_to": MetadataValue.text(f"センターの公開鍵（指紋 {recipient}）"),
            "materialized_by": materialized_by(),
            "dagster/column_lineage": column_lineage(
                {
                    c: [(SCORES_KEY, "child_token"), (source_key("jumin"), "atena_no")]
                    if c == "atena_no"
                    else [(SCORES_KEY, "score")]
                    if c in ("rank", "section", "prev_score")
                    else [(SCORES_KEY, c)]
                    for c in COLUMNS
                }
            ),
        },
        check_results=results,
    )

"""確認結果のフィードバック: the center's signed verification results (pseudonyms only), the
PPV of each indicator and score band. Needs the center's public key, never a private one."""

from dagster import (
    AssetExecutionContext,
    Failure,
    MaterializeResult,
    MetadataValue,
)

from kodomo_assets.defs.approval import approval_for
from kodomo_assets.defs.center.assets import FEEDBACK_KEY as KEY
from kodomo_assets.defs.lineage import materialized_by
from kodomo_assets.defs.sources.inbox import FEEDBACK_FILE
from kodomo_assets.defs.sources.inbox import KEY as INBOX_KEY
from kodomo_assets.defs.zone import zone_asset
from kodomo_assets.lib.center import feedback as fb
from kodomo_assets.lib.center.feedback import STORE
from kodomo_assets.lib.partitions import previous_month
from kodomo_assets.lib.platform.keys import KeyProblem
from kodomo_assets.lib.platform.storage import KodomoStorage, keep_only
from kodomo_assets.lib.registry import load_registry

# the signed file is the center's delivery: sealed in the center's raw archive once read
CENTER_DEPARTMENT = load_registry().datasets["soudan"].department.code


@zone_asset(
    KEY,
    zone="analysis",
    group="center",
    sensitive=True,
    kinds={"json", "duckdb"},
    code_version="2",
    # a month's run takes the results returned for the month before's list (its inbox folder):
    # the center checks a list after it is made, before the next month's data arrive
    deps=[INBOX_KEY],
    gated=False,
    description=(
        "確認結果のフィードバック（分析領域。仮名のみ）: 前月の確認リストについて、子ども家庭支援センターが"
        f"`kodomo feedback-import` で署名して前月の基準月フォルダに置いた {FEEDBACK_FILE}（児童の仮名・確認リストの基準月・確認結果 = "
        "該当／非該当／既知）を、センターの公開鍵で署名検証してから、指標別・スコア帯別の陽性的中率 "
        "PPV = 該当 ÷ (該当 + 非該当) と件数を出す。既知は別に数える。署名のない・改変されたファイルは"
        "読まずに失敗とする。リストにない宛名番号などの行はセンター側の取込で理由を付けて除かれ、"
        "件数だけが届く。ファイルがない月は「未提出」として空の表を作る（失敗ではない）。"
        "メタデータは集計値のみ。"
    ),
)
def verification_feedback(
    context: AssetExecutionContext, storage: KodomoStorage
) -> MaterializeResult:
    month = context.partition_key
    approval_for(storage, month)
    listed = previous_month(month)  # the list these results answer
    delivered = storage.inbox_path / listed / FEEDBACK_FILE
    try:
        public = storage.center_public()
        read = delivered.stat() if delivered.is_file() else None
        raw = (
            delivered.read_bytes()
            if read
            else storage.archived_export(CENTER_DEPARTMENT, listed, FEEDBACK_FILE)
        )
        doc = fb.verified_document(raw, public, listed) if raw is not None else None
    except (KeyProblem, fb.SignatureError) as err:
        raise Failure(description=f"{FEEDBACK_FILE}: {err}", allow_retries=False) from None
    rows = doc["rows"] if doc else []
    final = storage.zone_store("analysis", month, STORE)
    with storage.staged(final) as (con, stage):
        fb.build_tables(con, rows)
        figures = fb.summary(con)
        keep_only(con, fb.TABLES)
        storage.promote(con, stage, final)
    if read is not None:
        storage.archive_export(CENTER_DEPARTMENT, listed, delivered, read)
    refused = doc["refused_by_reason"] if doc else {}
    return MaterializeResult(
        metadata={
            "status": MetadataValue.text("提出済（署名検証済み）" if doc else "未提出"),
            "list_month": listed,
            "dagster/row_count": len(rows),
            "signed_by": MetadataValue.text(
                f"センター（鍵の指紋 {doc['signer']}）" if doc else "—"
            ),
            "outcomes": MetadataValue.json(figures["outcomes"]),
            "ppv_overall": (
                MetadataValue.float(figures["ppv"])
                if figures["ppv"] is not None
                else MetadataValue.text("算出不可（該当・非該当の結果がない）")
            ),
            "ppv_by_indicator": MetadataValue.json(figures["by_indicator"]),
            "ppv_by_band": MetadataValue.json(figures["by_band"]),
            "counts_by_list_month": MetadataValue.json(figures["by_month"]),
            "refused_at_import": sum(refused.values()),
            "refused_by_reason": MetadataValue.json(refused),
            "score_bands": MetadataValue.text(
                "較正済みスコア（小数第3位、確認リストの表示と同じ）: "
                + "／".join(b[0] for b in fb.BANDS)
            ),
            "materialized_by": materialized_by(),
        }
    )

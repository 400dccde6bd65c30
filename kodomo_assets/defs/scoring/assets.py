"""リスクスコア: indicators and a calibrated model over the linked table (analysis zone)."""

import time
from collections.abc import Generator

import duckdb
import numpy as np
from dagster import (
    AssetCheckResult,
    AssetExecutionContext,
    AssetKey,
    Failure,
    MaterializeResult,
    MetadataValue,
)

from kodomo_assets.defs.analysis.assets import KEY as LINKED_KEY
from kodomo_assets.defs.approval import approval_for
from kodomo_assets.defs.lineage import column_lineage, materialized_by
from kodomo_assets.defs.zone import publish_gated, zone_asset
from kodomo_assets.lib.paths import REGISTRY, content_version
from kodomo_assets.lib.platform.storage import KodomoStorage
from kodomo_assets.lib.policy.gate import inspect_table
from kodomo_assets.lib.scoring import model as scoring
from kodomo_assets.lib.scoring import ranking
from kodomo_assets.lib.scoring import risk_scores as risk
from kodomo_assets.lib.scoring.linked_table import Feature, Plan, load_spec, plan
from kodomo_assets.lib.scoring.risk_scores import COLUMNS, TABLE, MonthInput

KEY = AssetKey(["analysis", "risk_scores"])
SEED = 20221011  # the council's date: one seed, so a month always scores the same
REGISTRY_FILES = [REGISTRY / n for n in ("indicators.yaml", "linked_table.yaml")]
CODE_VERSION = content_version("2", *REGISTRY_FILES)


def month_input(
    storage: KodomoStorage, con: duckdb.DuckDBPyConnection, p: Plan, month: str
) -> MonthInput:
    """lib's month input for risk_scores and item_worth; too few labels fail the asset."""
    try:
        return risk.month_input(storage, con, p, month)
    except risk.TooFewLabels as err:
        raise Failure(description=str(err), allow_retries=False) from None


def _lineage(features: list[Feature], shown: list[str]) -> dict[str, list[tuple[AssetKey, str]]]:
    model = [(LINKED_KEY, f.name) for f in features]
    rules = [(LINKED_KEY, c) for c in shown if c not in ("child_token", "household_token")]
    label = [(LINKED_KEY, "consultations_total"), (LINKED_KEY, "council_registered")]
    return {
        "child_token": [(LINKED_KEY, "child_token")],
        "score": model + label,
        "rank": model + label + rules,
        "known_to_center": label,
        "center_known": [(LINKED_KEY, "center_known")],
        "indicators": rules,
        "reasons": rules + model,
        "facts_asof": rules,
    }


@zone_asset(
    KEY,
    zone="analysis",
    sensitive=True,
    kinds={"duckdb", "scikitlearn"},
    code_version=CODE_VERSION,
    deps=[LINKED_KEY],
    description=(
        "リスクスコア（分析領域）: 連携テーブルから、説明できる指標（data/registry/indicators.yaml）"
        "と、子ども家庭支援センターが把握している児童（相談または要対協登録）を正例として学習した"
        "勾配ブースティング（Platt 法で較正、5分割交差検証。学習する児童が6万人以上なら3分割）のスコアを児童ごとに求める。"
        "各児童に、発生した指標と寄与の大きい事実（SHAP）を日本語の理由として付ける。"
        "外国人住民・町丁目は特徴量に使わず公平性の確認に残す。スコアは示唆であり、判断は職員が行う。"
    ),
)
def risk_scores(
    context: AssetExecutionContext, storage: KodomoStorage
) -> Generator[AssetCheckResult | MaterializeResult, None, None]:
    started = time.perf_counter()
    month = context.partition_key
    approval = approval_for(storage, month)
    p = plan(load_spec(), approval)
    features = scoring.model_features(p)
    final = storage.zone_store("analysis", month, TABLE)
    label_cols = [
        c for c in ("consultations_total", "council_registered", "center_known") if c in p.columns
    ]
    if len(label_cols) < 3:
        raise Failure(
            description="学習の正解（センターの相談記録）が承認されていないため、スコアを作れません",
            allow_retries=False,
        )
    with storage.staged(final) as (con, stage):
        m = month_input(storage, con, p, month)
        s = risk.score_month(m, features, SEED, month)
        risk.create_table(con, m, s, p.lineage)
        report = inspect_table(con, TABLE, approved=COLUMNS, token_columns=["child_token"])
        results = yield from publish_gated(storage, con, stage, final, report, [TABLE])
    card, choice = s.card, s.choice
    assert card.past_share is not None and card.past_share_listed is not None  # set by score_month
    risk.write_model(storage, final.parent, s.model, card, s.categories)
    yield MaterializeResult(
        metadata={
            "dagster/row_count": len(s.out),
            "training_rows": card.training_rows,
            "training_positives": card.positives,
            "cv_auc_known_to_center": MetadataValue.float(round(card.cv_auc, 4)),
            "cv_brier": MetadataValue.float(round(card.cv_brier, 5)),
            "ranking_mode": MetadataValue.text(ranking.LABELS[choice.mode]),
            "ranking_reason": MetadataValue.text(choice.reason()),
            "past_consultation_share": MetadataValue.float(round(card.past_share, 4)),
            "past_consultation_share_listed": MetadataValue.float(round(card.past_share_listed, 4)),
            "features": len(card.features),
            "indicators_fired": MetadataValue.json(risk.fired_counts(m)),
            "indicators_omitted": MetadataValue.json(m.omitted),
            "rows_without_reason": int(sum(not r for r in s.said)),
            "score_mean": MetadataValue.float(round(float(np.mean(s.score)), 5)),
            "model_card": MetadataValue.path(str(final.parent / "model_card.json")),
            "seconds": round(time.perf_counter() - started, 1),
            "materialized_by": materialized_by(),
            "dagster/column_lineage": column_lineage(_lineage(features, m.shown)),
        },
        check_results=results,
    )

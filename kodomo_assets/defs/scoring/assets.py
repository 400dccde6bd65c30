"""リスクスコア: indicators and a calibrated model over the linked table (analysis zone)."""

import io
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import duckdb
import joblib
import numpy as np
import pandas as pd
from dagster import (
    AssetExecutionContext,
    AssetKey,
    Failure,
    MaterializeResult,
    MetadataValue,
)

from kodomo_assets.defs.analysis.assets import KEY as LINKED_KEY
from kodomo_assets.defs.analysis.assets import TABLE as LINKED_TABLE
from kodomo_assets.defs.approval import approval_for
from kodomo_assets.defs.lineage import column_lineage, materialized_by
from kodomo_assets.defs.zone import publish_gated, zone_asset
from kodomo_assets.lib.paths import REGISTRY, content_version
from kodomo_assets.lib.platform.rows import one_row
from kodomo_assets.lib.platform.storage import KodomoStorage, write_json
from kodomo_assets.lib.policy.gate import inspect_table
from kodomo_assets.lib.scoring import model as scoring
from kodomo_assets.lib.scoring import ranking
from kodomo_assets.lib.scoring.evaluation import review_k
from kodomo_assets.lib.scoring.indicators import Indicator, compile_sql, load_indicators, sources
from kodomo_assets.lib.scoring.linked_table import Plan, load_spec, month_sql, plan

KEY = AssetKey(["analysis", "risk_scores"])
TABLE = "risk_scores"
COLUMNS = [
    "child_token",
    "score",
    "rank",
    "known_to_center",
    "center_known",
    "indicators",
    "fact_sources",
    "reasons",
    "facts_asof",
]
SEED = 20221011  # the council's date: one seed, so a month always scores the same
REGISTRY_FILES = [REGISTRY / n for n in ("indicators.yaml", "linked_table.yaml")]
CODE_VERSION = content_version("2", *REGISTRY_FILES)


def usable(con: duckdb.DuckDBPyConnection, source: str, asof: str) -> tuple[list[Indicator], dict]:
    """Indicators whose columns the month's linked table holds; the rest, with the reason."""
    ok, omitted = [], {}
    for i in load_indicators():
        try:
            con.execute(compile_sql((i,), source, asof) + " LIMIT 0").fetchall()
            ok.append(i)
        except duckdb.BinderException:
            omitted[i.name] = "連携テーブルに必要な列がない（未承認の項目を使う）ため作成しない"
    return ok, omitted


@dataclass
class MonthInput:
    """What risk_scores and item_worth both start from."""

    asof_sql: str
    asof: pd.Timestamp
    shown: list[str]  # the indicators' view: every column but the label's
    indicators: list[Indicator]
    omitted: dict[str, str]
    frame: pd.DataFrame  # the linked table joined with the fired indicators, by child_token
    y: np.ndarray  # the label: a consultation or a 要対協 registration


def month_input(
    storage: KodomoStorage, con: duckdb.DuckDBPyConnection, p: Plan, month: str
) -> MonthInput:
    """Attach the month's linked table, fire the indicators on a view without the label's
    columns, and read the frame and the label; refuse a month with too few of either class."""
    asof_sql = month_sql(month)["asof"]
    asof = pd.Timestamp(one_row(duckdb.sql(f"SELECT {asof_sql}"))[0])
    storage.attach(con, "linked", storage.zone_store("analysis", month, LINKED_TABLE))
    hidden = scoring.label_columns(p)
    shown = [c for c in p.columns if c not in hidden]
    con.execute(
        f"CREATE TEMP VIEW scoring_input AS SELECT {', '.join(shown)} FROM linked.{LINKED_TABLE}"
    )
    indicators, omitted = usable(con, "scoring_input", asof_sql)
    con.execute(
        f"CREATE TEMP TABLE fired AS {compile_sql(tuple(indicators), 'scoring_input', asof_sql)}"
    )
    frame = con.execute(
        f"SELECT l.*, f.* EXCLUDE (child_token) FROM linked.{LINKED_TABLE} l "
        "JOIN fired f USING (child_token) ORDER BY child_token"
    ).df()
    y = ((frame["consultations_total"] > 0) | frame["council_registered"]).to_numpy(int)
    if y.sum() < 10 or y.sum() > len(y) - 10:
        raise Failure(
            description=f"{month}: 学習に使える正例・負例が足りません（正例 {y.sum()} 件）",
            allow_retries=False,
        )
    return MonthInput(asof_sql, asof, shown, indicators, omitted, frame, y)


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def write_model(
    storage: KodomoStorage, folder: Path, model, card: scoring.Card, categories: dict
) -> None:
    """The model sealed like any zone file (it was fitted on the month's children); its card,
    aggregates only, as JSON for the committee. Each is renamed into place."""
    buffer = io.BytesIO()
    joblib.dump({"model": model, "categories": categories, "card": asdict(card)}, buffer)
    storage.seal(folder / "model.joblib.sealed", buffer.getvalue())
    write_json(folder / "model_card.json", asdict(card))


def _lineage(features: list, shown: list[str]) -> dict[str, list[tuple[AssetKey, str]]]:
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
def risk_scores(context: AssetExecutionContext, storage: KodomoStorage):
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
        indicators, omitted, frame, y, asof, shown = (
            m.indicators,
            m.omitted,
            m.frame,
            m.y,
            m.asof,
            m.shown,
        )
        d, categories = scoring.design(frame, features, tuple(indicators), m.asof)
        model, card = scoring.train(d.matrix, y, SEED, month, d.terms)
        # out of fold for the children the model learned from: no list position rests on its
        # own label (a past consultation would otherwise lift its own child to the top)
        score = model.honest_scores(d.matrix)
        # the list's order: indicators first unless the month's known children show that the
        # model, alone or blended, ranks them better (lib/ranking)
        count = frame[[f"ind_{i.name}" for i in indicators]].sum(axis=1).to_numpy("float64")
        rows = model.fitted_rows
        choice = ranking.choose(
            count[rows],
            model.fitted_scores,
            y[rows],
            model.fitted_weights,
            share=ranking.LIST_SHARE,
        )
        priority = choice.priority(count, score)
        card.ranking = choice.as_dict()
        eligible = ~frame["center_known"].astype(bool).to_numpy()
        card.past_share, card.past_share_listed = scoring.past_consultation_shares(
            priority, y.astype(bool), eligible, review_k(len(score))
        )
        # exact SHAP wherever the list could reach (k is 2% by default): the top 5% of its
        # order, and the known children among the top 5% by score (the rising-score section)
        contrib = scoring.contributions(
            model,
            d.matrix,
            (priority >= np.quantile(priority, 0.95))
            | (~eligible & (score >= np.quantile(score, 0.95))),
        )
        said = scoring.reasons(
            [list(r) for r in frame["indicator_reasons"]], contrib, d.matrix, d.terms, asof
        )
        labels = {i.name: i.label for i in indicators}
        out = pd.DataFrame(
            {
                "child_token": frame["child_token"],
                "score": score,
                "rank": pd.Series(-priority).rank(method="first").astype("int32").to_numpy(),
                "known_to_center": y.astype(bool),
                "center_known": frame["center_known"].astype(bool),
                "reasons": said,
            }
        )
        to_label = (
            " ".join(f"WHEN {_quote(n)} THEN {_quote(label)}" for n, label in labels.items())
            or "WHEN NULL THEN NULL"
        )
        # whom to ask: the departments each fired indicator's facts come from
        to_sources = (
            " ".join(
                f"WHEN {_quote(i.name)} THEN {_quote(i.label + ': ' + '・'.join(sources(i, p.lineage)))}"
                for i in indicators
            )
            or "WHEN NULL THEN NULL"
        )
        con.register("scored", out)
        # indicator labels and fact dates are lists already in `fired`: joined in SQL, not
        # rebuilt row by row in Python; the snapshot date covers every other fact
        con.execute(
            f"CREATE TABLE {TABLE} AS SELECT s.child_token, s.score, s.rank, s.known_to_center, "
            f"s.center_known, list_transform(f.indicators, n -> CASE n {to_label} END) AS indicators, "
            f"list_transform(f.indicators, n -> CASE n {to_sources} END) AS fact_sources, "
            f"s.reasons, list_append(f.indicator_asof, {_quote(f'その他の事実: {asof.date().isoformat()} 時点')}) "
            f"AS facts_asof FROM scored s JOIN fired f USING (child_token) ORDER BY s.rank"
        )
        con.unregister("scored")
        report = inspect_table(con, TABLE, approved=COLUMNS, token_columns=["child_token"])
        results = yield from publish_gated(storage, con, stage, final, report, [TABLE])
    write_model(storage, final.parent, model, card, categories)
    fired_counts = {labels[i.name]: int(frame[f"ind_{i.name}"].sum()) for i in indicators}
    yield MaterializeResult(
        metadata={
            "dagster/row_count": len(out),
            "training_rows": card.training_rows,
            "training_positives": card.positives,
            "cv_auc_known_to_center": MetadataValue.float(round(card.cv_auc, 4)),
            "cv_brier": MetadataValue.float(round(card.cv_brier, 5)),
            "ranking_mode": MetadataValue.text(ranking.LABELS[choice.mode]),
            "ranking_reason": MetadataValue.text(choice.reason()),
            "past_consultation_share": MetadataValue.float(round(card.past_share, 4)),
            "past_consultation_share_listed": MetadataValue.float(round(card.past_share_listed, 4)),
            "features": len(card.features),
            "indicators_fired": MetadataValue.json(fired_counts),
            "indicators_omitted": MetadataValue.json(omitted),
            "rows_without_reason": int(sum(not r for r in said)),
            "score_mean": MetadataValue.float(round(float(np.mean(score)), 5)),
            "model_card": MetadataValue.path(str(final.parent / "model_card.json")),
            "seconds": round(time.perf_counter() - started, 1),
            "materialized_by": materialized_by(),
            "dagster/column_lineage": column_lineage(_lineage(features, shown)),
        },
        check_results=results,
    )

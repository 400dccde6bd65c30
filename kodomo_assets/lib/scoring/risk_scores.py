"""リスクスコア's month, outside Dagster: the linked table with the fired indicators and the
label, the fit and the list's order, the scores table in SQL, the sealed model and its card."""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass
from pathlib import Path

import duckdb
import joblib
import numpy as np
import pandas as pd

from kodomo_assets.lib.ingest.typing_sql import q
from kodomo_assets.lib.platform.rows import one_row
from kodomo_assets.lib.platform.storage import KodomoStorage, write_json
from kodomo_assets.lib.scoring import model as scoring
from kodomo_assets.lib.scoring import ranking
from kodomo_assets.lib.scoring.evaluation import review_k
from kodomo_assets.lib.scoring.indicators import Indicator, compile_sql, load_indicators, sources
from kodomo_assets.lib.scoring.linked_table import TABLE as LINKED_TABLE
from kodomo_assets.lib.scoring.linked_table import Feature, Plan, month_sql

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


class TooFewLabels(ValueError):
    """A month with too few positives or negatives to learn from."""


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
        raise TooFewLabels(f"{month}: 学習に使える正例・負例が足りません（正例 {y.sum()} 件）")
    return MonthInput(asof_sql, asof, shown, indicators, omitted, frame, y)


@dataclass
class Scored:
    """The month's fit and what the list is made of: one row per child in `out`."""

    model: scoring.Model
    card: scoring.Card
    categories: dict
    choice: ranking.Choice
    score: np.ndarray
    said: list
    out: pd.DataFrame


def score_month(m: MonthInput, features: list[Feature], seed: int, month: str) -> Scored:
    """Fit the model, score every child, choose the list's order and give the reasons."""
    frame, y = m.frame, m.y
    d, categories = scoring.design(frame, features, tuple(m.indicators), m.asof)
    model, card = scoring.train(d.matrix, y, seed, month, d.terms)
    # out of fold for the children the model learned from: no list position rests on its
    # own label (a past consultation would otherwise lift its own child to the top)
    score = model.honest_scores(d.matrix)
    # the list's order: indicators first unless the month's known children show that the
    # model, alone or blended, ranks them better (lib/ranking)
    count = frame[[f"ind_{i.name}" for i in m.indicators]].sum(axis=1).to_numpy("float64")
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
        [list(r) for r in frame["indicator_reasons"]], contrib, d.matrix, d.terms, m.asof
    )
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
    return Scored(model, card, categories, choice, score, said, out)


def create_table(
    con: duckdb.DuckDBPyConnection, m: MonthInput, s: Scored, lineage: dict[str, list]
) -> None:
    """TABLE from the scored children and `fired` (temp, from month_input): indicator labels,
    the departments behind them and the facts' dates."""
    labels = {i.name: i.label for i in m.indicators}
    to_label = (
        " ".join(f"WHEN {q(n)} THEN {q(label)}" for n, label in labels.items())
        or "WHEN NULL THEN NULL"
    )
    # whom to ask: the departments each fired indicator's facts come from
    to_sources = (
        " ".join(
            f"WHEN {q(i.name)} THEN {q(i.label + ': ' + '・'.join(sources(i, lineage)))}"
            for i in m.indicators
        )
        or "WHEN NULL THEN NULL"
    )
    con.register("scored", s.out)
    # indicator labels and fact dates are lists already in `fired`: joined in SQL, not
    # rebuilt row by row in Python; the snapshot date covers every other fact
    con.execute(
        f"CREATE TABLE {TABLE} AS SELECT s.child_token, s.score, s.rank, s.known_to_center, "
        f"s.center_known, list_transform(f.indicators, n -> CASE n {to_label} END) AS indicators, "
        f"list_transform(f.indicators, n -> CASE n {to_sources} END) AS fact_sources, "
        f"s.reasons, list_append(f.indicator_asof, {q(f'その他の事実: {m.asof.date().isoformat()} 時点')}) "
        f"AS facts_asof FROM scored s JOIN fired f USING (child_token) ORDER BY s.rank"
    )
    con.unregister("scored")


def fired_counts(m: MonthInput) -> dict[str, int]:
    """How many children each indicator fired for, by its Japanese label."""
    return {i.label: int(m.frame[f"ind_{i.name}"].sum()) for i in m.indicators}


def write_model(
    storage: KodomoStorage, folder: Path, model: scoring.Model, card: scoring.Card, categories: dict
) -> None:
    """The model sealed like any zone file (it was fitted on the month's children); its card,
    aggregates only, as JSON for the committee. Each is renamed into place."""
    buffer = io.BytesIO()
    joblib.dump({"model": model, "categories": categories, "card": asdict(card)}, buffer)
    storage.seal(folder / "model.joblib.sealed", buffer.getvalue())
    write_json(folder / "model_card.json", asdict(card))

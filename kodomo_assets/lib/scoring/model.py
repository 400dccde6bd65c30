"""The learned score: features from the linked table, a calibrated gradient-boosting model
trained on children the 子ども家庭支援センター knows, and reasons in Japanese.

The label is the center's own record (a consultation or a 要対協 registration); the
center's columns are never features, and neither are the audit attributes (foreign
resident, district). Each child's reasons are the indicators that fired, then the facts
with the largest positive SHAP contributions of the (uncalibrated) base model: the
monotone calibration keeps its ranking.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss, roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict

from kodomo_assets.lib.scoring.indicators import Indicator
from kodomo_assets.lib.scoring.linked_table import Feature, Plan

LABEL_DATASET = "soudan"  # the center's records: the label, never a feature
MAX_REASONS = 4
# Sampled negatives, weighted back. Measured at 1.6M residents (seed 42, one key): 20 per
# positive and at most 150,000 gave risk_scores 25.3 s at ≈1.4% known and 35.3 s at 5%;
# 10 and 80,000 give 19.3 s and 24.5 s, the list's precision/recall moving by ≤ 0.002.
NEGATIVES_PER_POSITIVE = 10
MIN_NEGATIVES = 50_000  # below this every negative is kept (a city the size of 昭島市)
MAX_NEGATIVES = 80_000  # above this more negatives barely move the model but fit time grows
LARGE_TRAINING = 60_000


@dataclass(frozen=True)
class Term:
    """One model input and how to say it in Japanese."""

    name: str
    label: str
    kind: str  # bool, number, rate, days, onehot, indicator
    value: str | None = None  # the category of a one-hot term


@dataclass
class Design:
    terms: list[Term]
    matrix: np.ndarray


@dataclass
class Card:
    """The model card: what it was trained on and how well it separates the label."""

    month: str
    features: list[str]
    training_rows: int
    positives: int
    cv_auc: float
    cv_brier: float
    seed: int
    params: dict = field(default_factory=dict)
    # children the center knew before (a past consultation: a positive in training) though not
    # now: their share among the eligible children, and among the top k of the list
    past_share: float | None = None
    past_share_listed: float | None = None
    ranking: dict | None = None  # lib/ranking.Choice.as_dict(): the list's order and why


def label_columns(plan: Plan) -> set[str]:
    """The linked-table columns built from the center's records: the label, never a feature
    and never read by an indicator."""
    return {
        name for name, deps in plan.lineage.items() if any(ds == LABEL_DATASET for ds, _ in deps)
    }


def model_features(plan: Plan) -> list[Feature]:
    label_cols = label_columns(plan)
    return [
        f
        for f in plan.published
        if f.model and not f.audit_only and f.name not in label_cols and not f.type.endswith("[]")
    ]


def design(
    frame: pd.DataFrame,
    features: list[Feature],
    indicators: tuple[Indicator, ...],
    asof: pd.Timestamp,
    categories: dict[str, list[str]] | None = None,
) -> tuple[Design, dict]:
    """Numeric matrix (NaN for unknown) and its terms. Categories are fixed from the
    training frame so a later month gets the same columns."""
    cats = dict(categories or {})
    cols, terms = [], []
    for f in features:
        s = frame[f.name]
        if f.type == "BOOLEAN":
            cols.append(s.astype("float64").to_numpy())
            terms.append(Term(f.name, f.label, "bool"))
        elif f.type == "DATE":
            cols.append((asof - pd.to_datetime(s)).dt.days.astype("float64").to_numpy())
            terms.append(Term(f.name, f.label, "days"))
        elif f.type == "VARCHAR":
            values = cats.setdefault(f.name, sorted(s.dropna().unique().tolist()))
            for v in values:
                cols.append(np.where(s.isna(), np.nan, (s == v).astype("float64")))
                terms.append(Term(f.name, f.label, "onehot", v))
        else:
            cols.append(pd.to_numeric(s).astype("float64").to_numpy())
            terms.append(Term(f.name, f.label, "rate" if "rate" in f.name else "number"))
    for i in indicators:
        cols.append(frame[f"ind_{i.name}"].astype("float64").to_numpy())
        terms.append(Term(f"ind_{i.name}", i.label, "indicator"))
    return Design(terms, np.column_stack(cols) if cols else np.empty((len(frame), 0))), cats


@dataclass
class Model:
    """The base model and the Platt sigmoid fitted on its out-of-fold log-odds. The sigmoid
    is monotone, so the base model's ranking and its explanation are the score's."""

    base: HistGradientBoostingClassifier
    platt: LogisticRegression
    # the training rows (indexes into the matrix it was trained on) and their calibrated
    # out-of-fold scores: a child's list position never rests on its own label
    fitted_rows: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    fitted_scores: np.ndarray = field(default_factory=lambda: np.empty(0))
    fitted_weights: np.ndarray = field(
        default_factory=lambda: np.empty(0)
    )  # inverse sampling rates

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return self.platt.predict_proba(self.base.decision_function(x).reshape(-1, 1))

    def honest_scores(self, x: np.ndarray) -> np.ndarray:
        """P(label) for every row of the training matrix `x`: out of fold (cross-fitted with
        the calibration's folds) for the rows the model learned from, the model's for the rest."""
        score = self.predict_proba(x)[:, 1]
        score[self.fitted_rows] = self.fitted_scores
        return score


def _base(seed: int) -> HistGradientBoostingClassifier:
    return HistGradientBoostingClassifier(
        max_iter=200,
        learning_rate=0.05,
        max_leaf_nodes=15,
        min_samples_leaf=20,
        l2_regularization=1.0,
        random_state=seed,
    )


def training_sample(
    y: np.ndarray, seed: int, ratio: int = NEGATIVES_PER_POSITIVE
) -> tuple[np.ndarray, np.ndarray]:
    """All positives and a seeded share of negatives, weighted back to the population so
    the calibrated probabilities stay honest: at city scale the label is rare (≈1.4%) and
    the extra negatives only cost time."""
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    wanted = min(max(ratio * len(pos), MIN_NEGATIVES), MAX_NEGATIVES)
    frac = min(1.0, wanted / max(len(neg), 1))
    keep = np.sort(np.r_[pos, neg[np.random.default_rng(seed).random(len(neg)) < frac]])
    return keep, np.where(y[keep] == 1, 1.0, 1.0 / frac)


def n_folds(training_rows: int) -> int:
    """5 folds; 3 from LARGE_TRAINING rows, where each fold still learns from a third of a
    city's sample and the cross-validation is most of the scoring's time."""
    return 3 if training_rows >= LARGE_TRAINING else 5


def _without_empty_columns(xs: np.ndarray, trains: list[np.ndarray]) -> np.ndarray:
    """A column with no value in some fold's training rows (a window before the first month
    of data: every child's previous-quarter absence in April) is set to 0 for fitting.
    scikit-learn's binning fails on an all-missing column, and a constant one is never split
    on, so scoring and SHAP see the column as unused, as it is."""
    present = ~np.isnan(xs)
    empty = np.zeros(xs.shape[1], dtype=bool)
    for rows in [np.arange(len(xs)), *trains]:
        empty |= ~present[rows].any(axis=0)
    if not empty.any():
        return xs
    out = xs.copy()
    out[:, empty] = 0.0
    return out


def train(
    x: np.ndarray, y: np.ndarray, seed: int, month: str, terms: list[Term]
) -> tuple[Model, Card]:
    """Platt calibration as CalibratedClassifierCV(method="sigmoid", ensemble=False) does
    it: out-of-fold log-odds over 5 seeded folds, a sigmoid fitted on them, then one base
    model on all sampled rows, so the model that is explained is the model that scores.
    Done by hand only to reuse the same out-of-fold predictions for the card (sklearn
    would fit the five folds twice). Sigmoid, not isotonic: isotonic steps tie the top of
    the list and lose the base model's order."""
    keep, weight = training_sample(y, seed)
    xs, ys = x[keep], y[keep]
    folds = StratifiedKFold(n_folds(len(keep)), shuffle=True, random_state=seed)
    xs = _without_empty_columns(xs, [train for train, _ in folds.split(xs, ys)])
    oof = cross_val_predict(
        _base(seed), xs, ys, cv=folds, method="decision_function", params={"sample_weight": weight}
    ).reshape(-1, 1)
    platt = LogisticRegression(C=np.inf).fit(oof, ys, sample_weight=weight)
    model = Model(
        _base(seed).fit(xs, ys, sample_weight=weight),
        platt,
        keep,
        platt.predict_proba(oof)[:, 1],
        weight,
    )
    card = Card(
        month=month,
        features=[_term_name(t) for t in terms],
        training_rows=len(keep),
        positives=int(ys.sum()),
        cv_auc=float(roc_auc_score(ys, oof[:, 0], sample_weight=weight)),
        cv_brier=float(brier_score_loss(ys, platt.predict_proba(oof)[:, 1], sample_weight=weight)),
        seed=seed,
        params={k: v for k, v in _base(seed).get_params().items() if k != "random_state"}
        | {
            "calibration": f"sigmoid (Platt) on {folds.n_splits}-fold out-of-fold log-odds",
            "negatives_sampled": f"{len(keep) - int(ys.sum())} of {int((y == 0).sum())}",
        },
    )
    return model, card


def contributions(model: Model, x: np.ndarray, exact: np.ndarray) -> np.ndarray:
    """Per-feature contributions to the base model's log-odds: exact TreeSHAP for the rows
    that can reach the list (`exact`), the tree path decomposition (Saabas, shap's
    approximate mode, about 50× faster) for the rest."""
    import shap  # imported when scoring runs: numba start-up is slow

    explainer = shap.TreeExplainer(model.base)
    out = np.asarray(explainer.shap_values(x, approximate=True), dtype="float64")
    if exact.any():
        out[exact] = explainer.shap_values(x[exact])
    return out


def _term_name(t: Term) -> str:
    return f"{t.name}={t.value}" if t.kind == "onehot" else t.name


def say(t: Term, v: float, asof: pd.Timestamp) -> str | None:
    """A fact in Japanese, or None when the value says nothing (unknown, or a category
    the child does not have)."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    if t.kind in ("bool", "indicator"):
        return t.label if v >= 0.5 else f"{t.label}: なし"
    if t.kind == "onehot":
        return f"{t.label}: {t.value}" if v >= 0.5 else None
    if t.kind == "days":
        return f"{t.label}: {(asof - pd.Timedelta(days=int(v))).date().isoformat()}"
    if t.kind == "rate":
        return f"{t.label}: {v:.0%}"
    return f"{t.label}: {int(v) if float(v).is_integer() else round(v, 2)}"


def reasons(
    indicator_reasons: list[list[str]],
    shap_values: np.ndarray,
    x: np.ndarray,
    terms: list[Term],
    asof: pd.Timestamp,
) -> list[list[str]]:
    """Per child: the fired indicators' reasons, then the largest positive contributions
    not already said, up to MAX_REASONS; at least the single largest contribution.
    Each (term, value) is said once and reused: at city scale most values repeat."""
    order = np.argsort(-shap_values, axis=1)[:, : MAX_REASONS * 2]
    top_shap = np.take_along_axis(shap_values, order, axis=1).tolist()
    top_x = np.take_along_axis(x, order, axis=1).tolist()
    skip = [t.kind == "indicator" for t in terms]  # a fired indicator already says itself
    said: dict[tuple[int, float], str | None] = {}
    out = []
    for row, given in enumerate(indicator_reasons):
        facts = list(given)[:MAX_REASONS]
        for j, c, v in zip(order[row].tolist(), top_shap[row], top_x[row], strict=True):
            if len(facts) >= MAX_REASONS or (facts and c <= 0):
                break
            if skip[j] or v != v:  # NaN: unknown says nothing
                continue
            text = said.get((j, v), "")
            if text == "":
                text = said[(j, v)] = say(terms[j], v, asof)
            if text and text not in facts:
                facts.append(text)
        out.append(facts or ["特記すべき要因なし（スコアが低い）"])
    return out


def past_consultation_shares(
    priority: np.ndarray, known_before: np.ndarray, eligible: np.ndarray, k: int
) -> tuple[float, float]:
    """The share of children with a past consultation among the eligible children, and among
    the k the list takes (highest priority first, ties in row order, as the list breaks them)."""
    order = np.argsort(-np.where(eligible, priority, -np.inf), kind="stable")[:k]
    past = known_before & eligible
    return float(past[eligible].mean()) if eligible.any() else 0.0, float(past[order].mean())

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
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import brier_score_loss, roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict

from kodomo_assets.lib.indicators import Indicator
from kodomo_assets.lib.linked_table import Feature, Plan

LABEL_DATASET = "soudan"  # the center's records: the label, never a feature
MAX_REASONS = 4
NEGATIVES_PER_POSITIVE = 20
MIN_NEGATIVES = 50_000  # below this every negative is kept (a city the size of 昭島市)


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


def model_features(plan: Plan) -> list[Feature]:
    label_cols = {name for name, deps in plan.lineage.items() if any(ds == LABEL_DATASET for ds, _ in deps)}
    return [f for f in plan.features
            if f.model and not f.audit_only and f.name not in label_cols and not f.type.endswith("[]")]


def design(frame: pd.DataFrame, features: list[Feature], indicators: tuple[Indicator, ...],
           asof: pd.Timestamp, categories: dict[str, list[str]] | None = None) -> tuple[Design, dict]:
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


def _base(seed: int) -> HistGradientBoostingClassifier:
    return HistGradientBoostingClassifier(max_iter=200, learning_rate=0.05, max_leaf_nodes=15,
                                          min_samples_leaf=20, l2_regularization=1.0, random_state=seed)


def training_sample(y: np.ndarray, seed: int, ratio: int = NEGATIVES_PER_POSITIVE
                    ) -> tuple[np.ndarray, np.ndarray]:
    """All positives and a seeded share of negatives, weighted back to the population so
    the calibrated probabilities stay honest: at city scale the label is rare (≈1.4%) and
    the extra negatives only cost time."""
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    frac = min(1.0, max(ratio * len(pos), MIN_NEGATIVES) / max(len(neg), 1))
    keep = np.sort(np.r_[pos, neg[np.random.default_rng(seed).random(len(neg)) < frac]])
    return keep, np.where(y[keep] == 1, 1.0, 1.0 / frac)


def train(x: np.ndarray, y: np.ndarray, seed: int, month: str, terms: list[Term]
          ) -> tuple[CalibratedClassifierCV, Card]:
    """Sigmoid (Platt) calibration over 5 folds, then one base model on all sampled rows
    (ensemble=False), so the model that is explained is the model that scores. Sigmoid,
    not isotonic: isotonic steps tie the top of the list and lose the base model's order."""
    keep, weight = training_sample(y, seed)
    xs, ys = x[keep], y[keep]
    folds = StratifiedKFold(5, shuffle=True, random_state=seed)
    model = CalibratedClassifierCV(_base(seed), method="sigmoid", cv=folds, ensemble=False)
    model.fit(xs, ys, sample_weight=weight)
    oof = cross_val_predict(_base(seed), xs, ys, cv=folds, method="predict_proba",
                            params={"sample_weight": weight})[:, 1]
    card = Card(month=month, features=[_term_name(t) for t in terms], training_rows=len(keep),
                positives=int(ys.sum()), cv_auc=float(roc_auc_score(ys, oof, sample_weight=weight)),
                cv_brier=float(brier_score_loss(ys, oof, sample_weight=weight)), seed=seed,
                params={k: v for k, v in _base(seed).get_params().items() if k != "random_state"}
                | {"calibration": "sigmoid, 5-fold, ensemble=False",
                   "negatives_sampled": f"{len(keep) - int(ys.sum())} of {int((y == 0).sum())}"})
    return model, card


def base_model(model: CalibratedClassifierCV) -> HistGradientBoostingClassifier:
    return model.calibrated_classifiers_[0].estimator


def contributions(model: CalibratedClassifierCV, x: np.ndarray, exact: np.ndarray) -> np.ndarray:
    """Per-feature contributions to the base model's log-odds: exact TreeSHAP for the rows
    that can reach the list (`exact`), the tree path decomposition (Saabas, shap's
    approximate mode, about 50× faster) for the rest."""
    import shap  # imported when scoring runs: numba start-up is slow

    explainer = shap.TreeExplainer(base_model(model))
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


def reasons(indicator_reasons: list[list[str]], shap_values: np.ndarray, x: np.ndarray,
            terms: list[Term], asof: pd.Timestamp) -> list[list[str]]:
    """Per child: the fired indicators' reasons, then the largest positive contributions
    not already said, up to MAX_REASONS; at least the single largest contribution."""
    out = []
    order = np.argsort(-shap_values, axis=1)[:, :MAX_REASONS * 2]
    for row, said in enumerate(indicator_reasons):
        facts = list(said)[:MAX_REASONS]
        for j in order[row]:
            if len(facts) >= MAX_REASONS or (facts and shap_values[row, j] <= 0):
                break
            t = terms[j]
            if t.kind == "indicator":
                continue  # its own reason is already listed when it fired
            text = say(t, x[row, j], asof)
            if text and text not in facts:
                facts.append(text)
        out.append(facts or ["特記すべき要因なし（スコアが低い）"])
    return out

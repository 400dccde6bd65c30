"""The learned score: features, calibration, determinism and reasons."""

import numpy as np
import pandas as pd
import pytest

from kodomo_assets.lib.policy.approval import load_policy
from kodomo_assets.lib.scoring import model as scoring
from kodomo_assets.lib.scoring.indicators import Indicator
from kodomo_assets.lib.scoring.linked_table import Feature, load_spec, plan

ASOF = pd.Timestamp("2022-10-31")


def test_features_exclude_the_label_and_the_audit_attributes() -> None:
    names = {
        f.name
        for f in scoring.model_features(plan(load_spec(), load_policy().for_month("2022-10")))
    }
    assert {"absence_rate_3m", "household_heavy_care_no_service", "welfare"} <= names
    assert not names & {
        "district_code",
        "foreign_resident",
        "center_known",
        "council_registered",
        "consultations_total",
        "last_consultation_date",
        "school",
        "child_token",
    }


def _synthetic(n: int = 6000, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    carer = rng.random(n) < 0.03
    absences = rng.poisson(1 + 6 * carer)
    frame = pd.DataFrame(
        {
            "heavy": carer & (rng.random(n) < 0.8),
            "absent": absences.astype(float),
            "since": pd.to_datetime("2022-01-01") + pd.to_timedelta(rng.integers(0, 300, n), "D"),
            "aid": np.where(rng.random(n) < 0.5, "なし", "要保護"),
            "ind_x": carer & (absences > 4),
        }
    )
    y = (carer & (rng.random(n) < 0.6)) | (rng.random(n) < 0.01)
    return frame, y.astype(int)


FEATURES = [
    Feature("heavy", "同居家族 要介護4・5", "BOOLEAN", "others", ""),
    Feature("absent", "直近3か月の欠席日数", "INTEGER", "child", ""),
    Feature("since", "認定開始日", "DATE", "others", ""),
    Feature("aid", "就学援助区分", "VARCHAR", "child", ""),
]
IND = (Indicator("x", "指標X", "説明", "true", "'x'", "{asof}"),)


def test_design_encodes_each_type() -> None:
    frame, _ = _synthetic(10)
    d, cats = scoring.design(frame, FEATURES, IND, ASOF)
    kinds = [t.kind for t in d.terms]
    assert kinds == ["bool", "number", "days", "onehot", "onehot", "indicator"]
    assert cats["aid"] == ["なし", "要保護"] and d.matrix.shape == (10, 6)
    assert d.matrix[0, 2] == (ASOF - frame["since"][0]).days


def test_training_is_calibrated_deterministic_and_ranks_the_signal() -> None:
    frame, y = _synthetic()
    d, _ = scoring.design(frame, FEATURES, IND, ASOF)
    model, card = scoring.train(d.matrix, y, seed=7, month="2022-10", terms=d.terms)
    again, _ = scoring.train(d.matrix, y, seed=7, month="2022-10", terms=d.terms)
    p = model.predict_proba(d.matrix)[:, 1]
    assert np.array_equal(p, again.predict_proba(d.matrix)[:, 1])
    assert abs(p.mean() - y.mean()) < 0.01  # calibrated to the label's base rate
    assert card.cv_auc > 0.75 and card.training_rows == len(y) and card.positives == y.sum()
    assert p[frame["heavy"]].mean() > 5 * p[~frame["heavy"]].mean()
    # the sigmoid is monotone: the explained base model ranks exactly as the score does
    raw = model.base.decision_function(d.matrix)
    assert np.array_equal(np.argsort(p, kind="stable"), np.argsort(raw, kind="stable"))


def test_a_city_sized_sample_is_cross_validated_on_three_folds() -> None:
    assert scoring.n_folds(scoring.LARGE_TRAINING - 1) == 5
    assert scoring.n_folds(scoring.LARGE_TRAINING) == 3


def test_sampling_keeps_positives_and_reweights_negatives() -> None:
    y = np.r_[np.ones(100, int), np.zeros(200_000, int)]
    keep, weight = scoring.training_sample(y, seed=1)
    assert (y[keep] == 1).sum() == 100
    n_neg = (y[keep] == 0).sum()
    assert abs(n_neg - scoring.MIN_NEGATIVES) < 1000
    assert weight[y[keep] == 0][0] == pytest.approx(200_000 / scoring.MIN_NEGATIVES, rel=0.001)
    # a prefecture: 20 negatives per positive would be 400,000 rows; the cap holds it
    big = np.r_[np.ones(20_000, int), np.zeros(1_500_000, int)]
    keep, _ = scoring.training_sample(big, seed=1)
    assert abs((big[keep] == 0).sum() - scoring.MAX_NEGATIVES) < 2000 and big[keep].sum() == 20_000


def test_reasons_lead_with_indicators_then_positive_contributions() -> None:
    frame, _ = _synthetic(3)
    d, _ = scoring.design(frame, FEATURES, IND, ASOF)
    x = d.matrix.copy()
    x[:, 0], x[:, 1] = [1, 0, np.nan], [9, 0, np.nan]
    shap = np.zeros_like(x)
    shap[0, :2] = [0.8, 0.5]  # heavy care and absences push child 0 up
    shap[1, 1] = -0.3  # child 1: nothing positive
    out = scoring.reasons([["指標Xの事実"], [], []], shap, x, d.terms, ASOF)
    assert out[0] == ["指標Xの事実", "同居家族 要介護4・5", "直近3か月の欠席日数: 9"]
    assert len(out[1]) == 1  # still the single largest contribution, never empty
    assert out[2] == ["認定開始日: " + frame["since"][2].date().isoformat()]  # unknowns are skipped
    assert all(len(r) <= scoring.MAX_REASONS for r in out)


def test_a_column_empty_in_the_first_month_neither_breaks_training_nor_moves_a_score() -> None:
    """April is the first month of data: every child's previous-quarter absence is missing.
    scikit-learn's binning fails on an all-missing column; the model trains without it, and a
    column with one value (empty in some fold) is left unused the same way."""
    rng = np.random.default_rng(3)
    n = 3000
    signal = rng.random(n) < 0.05
    x = np.column_stack([signal + rng.normal(0, 0.3, n), rng.normal(size=n)])
    y = (signal & (rng.random(n) < 0.7)).astype(int)
    empty = np.full(n, np.nan)
    lone = np.full(n, np.nan)
    lone[np.flatnonzero(y)[0]] = 5.0
    terms = [scoring.Term(f"c{i}", f"c{i}", "number") for i in range(4)]
    model, card = scoring.train(np.column_stack([x, empty, lone]), y, 7, "2022-04", terms)
    bare, _ = scoring.train(x, y, 7, "2022-04", terms[:2])
    full = np.column_stack([x, empty, lone])
    assert np.allclose(model.predict_proba(full), bare.predict_proba(x))
    assert card.cv_auc > 0.8
    shap = scoring.contributions(model, full, np.zeros(n, dtype=bool))
    assert not shap[:, 2:].any()


def test_a_training_childs_score_is_its_out_of_fold_prediction() -> None:
    """Every child the model learned from is scored by the fold models that did not see it,
    then calibrated: its own label never lifts it. The rest get the full model's score."""
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    rng = np.random.default_rng(11)
    n = 80_000  # more negatives than MIN_NEGATIVES: only a sample of them is trained on
    x = np.column_stack([rng.normal(size=n), rng.normal(size=n)])
    y = ((x[:, 0] + rng.normal(0, 1, n)) > 3.2).astype(int)
    terms = [scoring.Term(f"c{i}", f"c{i}", "number") for i in range(2)]
    model, _ = scoring.train(x, y, 5, "2022-10", terms)
    keep, weight = scoring.training_sample(y, 5)
    assert np.array_equal(model.fitted_rows, keep) and y[keep].sum() == y.sum()  # every positive
    folds = StratifiedKFold(5, shuffle=True, random_state=5)
    oof = cross_val_predict(
        scoring._base(5),
        x[keep],
        y[keep],
        cv=folds,
        method="decision_function",
        params={"sample_weight": weight},
    )
    honest = model.honest_scores(x)
    assert np.allclose(honest[keep], model.platt.predict_proba(oof.reshape(-1, 1))[:, 1])
    rest = np.setdiff1d(np.arange(n), keep)
    assert len(rest) > 0
    assert np.allclose(honest[rest], model.predict_proba(x[rest])[:, 1])
    # in-sample scores would have put the positives higher than their honest ones
    assert (
        model.predict_proba(x[keep])[:, 1][y[keep] == 1].mean() > honest[keep][y[keep] == 1].mean()
    )


def test_the_listed_share_of_past_consultations_counts_the_top_k_of_eligible_children() -> None:
    score = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    known_before = np.array([True, False, True, False, False, True])
    eligible = np.array([False, True, True, True, True, True])  # the first is known now
    share, listed = scoring.past_consultation_shares(score, known_before, eligible, k=2)
    assert share == pytest.approx(2 / 5) and listed == pytest.approx(1 / 2)

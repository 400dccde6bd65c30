"""The list's order: indicators first unless the month's known children show better."""

import numpy as np
import pytest

from kodomo_assets.lib.scoring import ranking


def test_the_indicators_count_decides_and_the_score_breaks_ties() -> None:
    count = np.array([1, 2, 1, 0, 2])
    score = np.array([0.9, 0.1, 0.2, 0.99, 0.3])
    order = np.argsort(-ranking.priority(ranking.INDICATORS, count, score), kind="stable")
    assert order.tolist() == [4, 1, 0, 2, 3]
    assert np.argsort(-ranking.priority(ranking.MODEL, count, score)).tolist()[0] == 3
    # a score of exactly 1 still ranks below one more indicator
    assert ranking.priority(ranking.INDICATORS, np.array([0]), np.array([1.0]))[0] < 1


def test_the_blend_weight_grows_with_the_known_children() -> None:
    assert ranking.blend_weight(20) < 0.2 < ranking.blend_weight(200) == pytest.approx(1.0)
    assert ranking.blend_weight(5000) < 2


def test_the_list_share_counts_sampled_negatives_at_their_weight() -> None:
    key = np.array([5.0, 4.0, 3.0, 2.0, 1.0])
    # five rows standing for 1 + 9 + 1 + 9 + 1 children: the first 10% of 21 is 2 children
    chosen = ranking.top_share(key, np.array([1.0, 9.0, 1.0, 9.0, 1.0]), 0.1)
    assert chosen.tolist() == [True, False, False, False, False]
    assert ranking.top_share(key, np.ones(5), 0.4).tolist() == [True, True, False, False, False]


def _town(n: int, positives: int, model_sees: bool, seed: int = 0, misses_count: bool = False):
    """Children with 0–2 indicators; the label follows the indicators, and (when model_sees)
    a hidden factor the out-of-fold score knows and the indicators do not; misses_count: the
    score knows only the hidden factor."""
    rng = np.random.default_rng(seed)
    count = rng.choice([0, 1, 2], size=n, p=[0.9, 0.08, 0.02]).astype(float)
    hidden = rng.normal(size=n)
    logit = -6 + 1.2 * count + (2.5 * hidden if model_sees else 0)
    p = 1 / (1 + np.exp(-logit))
    y = np.zeros(n, dtype=bool)
    y[np.argsort(-(p + rng.random(n) * 1e-3))[:positives]] = True
    noise = rng.normal(scale=0.8 if model_sees else 3.0, size=n)
    score = 1 / (1 + np.exp(-(logit - (1.2 * count if misses_count else 0) + noise)))
    return count, score, y


def test_the_model_alone_must_beat_the_blend_not_only_the_indicators() -> None:
    """Each step away from the rules needs its own evidence: a model that beats the
    indicators but not the blend leaves the blend in place."""
    count, score, y = _town(40000, 800, model_sees=True, seed=2, misses_count=True)
    choice = ranking.choose(count, score, y, np.ones(len(y)), 0.02)
    assert choice.mode == ranking.BLEND, choice.reason()
    assert choice.wins[ranking.MODEL] < ranking.WIN_SHARE
    assert "合成を採用した" in choice.reason() and "学習モデルのみが合成を" in choice.reason()


def test_few_known_children_keep_the_indicators_first() -> None:
    count, score, y = _town(2000, 20, model_sees=False)
    choice = ranking.choose(count, score, y, np.ones(len(y)), 0.02)
    assert choice.mode == ranking.INDICATORS and choice.positives == 20
    assert choice.wins[ranking.BLEND] < ranking.WIN_SHARE
    text = choice.reason()
    assert "指標優先" in text and "20 人" in text and "再標本化" in text
    # the committee's version has no precision: times the list's length it is a small count
    committee = choice.as_dict()["reason_for_committee"]
    assert "適合率" not in committee and "0.0" not in committee and "20 人" in committee


def test_a_model_that_sees_more_replaces_the_indicators_when_the_evidence_is_strong() -> None:
    count, score, y = _town(40000, 800, model_sees=True)
    choice = ranking.choose(count, score, y, np.ones(len(y)), 0.02)
    assert choice.mode in (ranking.MODEL, ranking.BLEND)
    assert choice.wins[ranking.BLEND] >= ranking.WIN_SHARE  # the first step, over the indicators
    assert choice.precision[choice.mode] > choice.precision[ranking.INDICATORS]
    if choice.mode == ranking.MODEL:  # the second step, over the blend
        assert choice.wins[ranking.MODEL] >= ranking.WIN_SHARE
    assert "採用した" in choice.reason()
    # the same inputs choose the same way: the bootstrap is seeded
    assert ranking.choose(count, score, y, np.ones(len(y)), 0.02) == choice
    d = choice.as_dict()
    assert d["mode"] == choice.mode and d["label"] == ranking.LABELS[choice.mode]

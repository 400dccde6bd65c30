"""The evaluation and fairness figures on small hand-made arrays."""

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kodomo_assets.lib.scoring import evaluation as ev


def tokens(n: int) -> np.ndarray:
    return np.array([f"{i:032x}" for i in range(n)])


# -- k and the lists -------------------------------------------------------------------------


def test_k_mirrors_the_review_list() -> None:
    assert ev.review_k(16337) == 327
    assert ev.review_k(0) == ev.review_k(10) == 1
    assert ev.review_k(125) == 2  # round() as ReviewListConfig: 2.5 → 2
    assert all(ev.review_k(n) == max(1, round(0.02 * n)) for n in range(0, 5000, 7))
    assert ev.review_k(1000, share=0.05) == 50


def test_top_k_breaks_ties_by_token_like_the_review_list() -> None:
    score = np.array([0.5, 0.9, 0.5, 0.1, 0.5])
    tok = np.array(["e", "d", "c", "b", "a"])
    assert ev.top_k(score, tok, 3).tolist() == [False, True, True, False, True]
    assert ev.top_k(score, tok, 10).all()


def test_precision_and_recall_at_k() -> None:
    chosen = np.array([1, 1, 1, 1, 0, 0, 0, 0], dtype=bool)
    need = np.array([1, 1, 0, 0, 1, 0, 0, 0], dtype=bool)
    f = ev.list_figures(chosen, need)
    assert (f.selected, f.found) == (4, 2)
    assert f.precision == pytest.approx(0.5) and f.recall == pytest.approx(2 / 3)
    empty = ev.list_figures(np.zeros(8, bool), need)
    assert math.isnan(empty.precision) and empty.recall == 0
    assert math.isnan(ev.list_figures(chosen, np.zeros(8, bool)).recall)


def test_a_rule_lists_all_it_flags_or_k_of_them_in_token_order() -> None:
    tok = np.array(["f", "e", "d", "c", "b", "a"])
    flagged = np.array([1, 1, 0, 1, 1, 0], dtype=bool)
    assert ev.rule_list(flagged, tok, 2).tolist() == [False, False, False, True, True, False]
    assert ev.rule_list(flagged, tok, 4).tolist() == flagged.tolist()
    assert ev.rule_list(flagged, tok, 10).tolist() == flagged.tolist()


def test_the_best_rule_has_the_highest_recall_then_precision() -> None:
    need = np.array([1, 1, 1, 0, 0, 0, 0, 0], dtype=bool)
    fired = [["A", "B"], ["A", "C"], ["C"], ["A"], ["A"], ["B"], [], ["D"]]
    rules, lists = ev.rule_figures(
        [("a", "A"), ("b", "B"), ("c", "C"), ("d", "D"), ("e", "E")], fired, tokens(8), need, k=3
    )
    r = rules.set_index("indicator")
    # A flags 4 > k: the first three tokens (children 0, 1, 3) → 2 found of 3
    assert r.loc["a", ["flagged", "selected", "found"]].tolist() == [4, 3, 2]
    assert lists["a"].tolist() == [True, True, False, True, False, False, False, False]
    # C: 2 of 2 found, same recall as A but higher precision → best
    assert r.loc["c", "precision_at_k"] == 1.0 and r.loc["c", "recall_at_k"] == pytest.approx(2 / 3)
    assert r["best"].tolist() == [False, False, True, False, False]
    assert math.isnan(r.loc["e", "precision_at_k"]) and r.loc["e", "recall_at_k"] == 0


def test_recall_per_need_kind() -> None:
    chosen = {
        "model": np.array([1, 1, 0, 0, 1], dtype=bool),
        "baseline": np.array([0, 0, 1, 1, 0], dtype=bool),
    }
    kinds = {
        "neglect": np.array([1, 0, 1, 0, 0], dtype=bool),
        "poverty_gap": np.array([0, 1, 0, 1, 1], dtype=bool),
    }
    t = ev.recall_by_kind(chosen, kinds).set_index("kind")
    assert t.loc["neglect", "label"] == "ネグレクト"
    assert t.loc["neglect", ["positives", "model_found", "baseline_found"]].tolist() == [2, 1, 1]
    assert t.loc["poverty_gap", "model_recall"] == pytest.approx(2 / 3)
    assert t.loc["poverty_gap", "baseline_recall"] == pytest.approx(1 / 3)


def test_reliability_bins_and_calibration_error() -> None:
    score = np.array([0.05, 0.05, 0.15, 0.95, 1.0])
    label = np.array([0, 1, 0, 1, 1])
    need = np.array([0, 0, 1, 1, 0])
    t = ev.reliability(score, label, need)
    assert len(t) == 10 and t["n"].tolist() == [2, 1, 0, 0, 0, 0, 0, 0, 0, 2]
    assert t.loc[0, "label_rate"] == 0.5 and t.loc[9, "need_rate"] == 0.5
    assert math.isnan(t.loc[5, "mean_score"])
    expected = (2 * abs(0.05 - 0.5) + 1 * abs(0.15 - 0) + 2 * abs(0.975 - 1)) / 5
    assert ev.expected_calibration_error(t) == pytest.approx(expected)


def test_evaluate_uses_only_children_the_center_does_not_know() -> None:
    n = 100  # k = 2
    tok = tokens(n)
    score = np.linspace(1, 0, n)
    known = np.zeros(n, bool)
    known[0] = True  # the top score is known: not on the list
    scores = pd.DataFrame(
        {
            "child_token": tok,
            "score": score,
            "rank": np.arange(1, n + 1),
            "known_to_center": known,
            "center_known": known,
            "indicators": [["R"] if i in (50, 60) else [] for i in range(n)],
        }
    )
    planted = pd.DataFrame(
        {
            "child_token": tok[[0, 1, 50, 99]],
            "kind": ["neglect", "neglect", "poverty_gap", "neglect"],
        }
    )
    e = ev.evaluate(scores, planted, [("r", "R")])
    m = e.metrics.set_index("metric")
    assert (
        e.k == 2 and e.counts["planted_needs_unknown"] == 3 and e.counts["planted_needs_known"] == 1
    )
    assert m.at["precision_at_k", "model"] == 0.5 and m.at["recall_at_k", "model"] == pytest.approx(
        1 / 3
    )
    assert m.at["precision_at_k", "baseline"] == 0.5 and m.at[
        "recall_at_k", "baseline"
    ] == pytest.approx(1 / 3)
    assert e.best_rule == "R"
    by_kind = e.by_kind.set_index("kind")
    assert by_kind.loc["neglect", ["positives", "model_found"]].tolist() == [2, 1]
    assert by_kind.loc["poverty_gap", "baseline_recall"] == 1.0
    assert list(e.metrics.columns[:3]) == ["metric", "model", "baseline"]
    assert set(e.rules.columns) == set(ev.EVALUATION_TABLES["rules"])


def test_the_list_is_measured_in_risk_scores_rank_beside_both_pure_orders() -> None:
    """The list follows the rank whichever mode made it; the indicators-first and the
    model-only orders are measured beside it from the same scores."""
    n = 100  # k = 2
    tok = tokens(n)
    score = np.linspace(0.9, 0.0, n)
    fired = [["R"] if i in (50, 98) else [] for i in range(n)]
    order = np.empty(n, dtype=int)  # rows 50 and 98 first, then the score's order
    order[np.r_[50, 98, np.arange(0, 50), np.arange(51, 98), 99]] = np.arange(1, n + 1)
    scores = pd.DataFrame(
        {
            "child_token": tok,
            "score": score,
            "rank": order,
            "known_to_center": False,
            "center_known": False,
            "indicators": fired,
        }
    )
    planted = pd.DataFrame({"child_token": tok[[50, 98, 97]], "kind": ["neglect"] * 3})
    m = ev.evaluate(scores, planted, [("r", "R")]).metrics.set_index("metric")
    assert m.at["found", "model"] == 2 and m.at["found", "indicators_first"] == 2
    assert m.at["found", "learned"] == 0  # rows 0 and 1 have the highest scores and no need
    assert m.at["recall_at_k", "model"] == pytest.approx(2 / 3)


# -- the truth -----------------------------------------------------------------------------


def test_the_truth_applies_to_the_newest_generated_month_only(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    (inbox / "2022-09").mkdir(parents=True)
    (inbox / "2022-09" / "jumin.csv").write_text("x")
    (inbox / "2022-10").mkdir()  # ingested: the exports left the inbox, the folder stays
    path, status = ev.truth_for(inbox, "2022-10")
    assert path is None and ev.NO_TRUTH in status
    (inbox / "_truth").mkdir()
    (inbox / "_truth" / "needs.csv").write_text(
        "atena_no,pupil_no,kind,onset_month,known_to_center,confounder\n"
        "0000000001,,neglect,2022-07,0,0\n0000000002,,chronic_absence,2022-07,0,1\n"
        "0000000001,,poverty_gap,2022-01,1,0\n"
    )
    assert ev.newest_month(inbox) == "2022-10"  # without counts.json: the newest month folder
    # the generator's counts.json names the months it made: a later folder (the center's
    # signed results for 2022-11, say) does not move the truth's month
    (inbox / "_truth" / "counts.json").write_text('{"2022-09": {}, "2022-10": {}}')
    (inbox / "2022-11").mkdir()
    (inbox / "2022-11" / "kakunin_signed.json").write_text("{}")
    assert ev.newest_month(inbox) == "2022-10"
    path, status = ev.truth_for(inbox, "2022-10")
    assert path == inbox / "_truth" / "needs.csv" and ev.NO_TRUTH not in status
    path, status = ev.truth_for(inbox, "2022-09")
    assert path is None and ev.NO_TRUTH in status and "2022-10" in status
    planted = ev.planted_needs(inbox / "_truth" / "needs.csv", lambda a: "t" + a)
    assert planted.to_dict("list") == {
        "child_token": ["t0000000001", "t0000000001"],
        "kind": ["neglect", "poverty_gap"],
    }


# -- fairness ------------------------------------------------------------------------------


def test_groups_of_each_attribute() -> None:
    linked = pd.DataFrame(
        {
            "single_parent": [True, False, None],
            "foreign_resident": [False, False, True],
            "district_code": ["0011", None, "0012"],
            "welfare": [False, True, False],
            "child_rearing_allowance": [True, False, False],
        }
    )
    g = ev.attribute_groups(linked)
    assert g["single_parent"].tolist() == ["ひとり親世帯", "ひとり親世帯以外", ev.UNKNOWN_GROUP]
    assert g["district_code"].tolist() == ["0011", ev.UNKNOWN_GROUP, "0012"]
    assert g["on_aid"].tolist() == ["受給あり", "受給あり", "受給なし"]
    assert ev.attribute_groups(linked.drop(columns="welfare"))["on_aid"] is None


def _children(
    spec: dict[str, tuple[int, int, int, int]],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """group → (tn, fp, fn, tp) as child-level arrays."""
    g, y, p = [], [], []
    for group, counts in spec.items():
        for (yt, yp), c in zip([(0, 0), (0, 1), (1, 0), (1, 1)], counts, strict=True):
            g += [group] * c
            y += [yt] * c
            p += [yp] * c
    return np.array(g), np.array(y), np.array(p)


def test_metric_frame_over_cells_equals_fairlearn_over_children() -> None:
    from fairlearn.metrics import (
        MetricFrame,
        equalized_odds_difference,
        false_positive_rate,
        selection_rate,
        true_positive_rate,
    )

    g, y, p = _children({"a": (50, 5, 3, 7), "b": (80, 2, 6, 4), "c": (30, 1, 0, 0)})
    c = ev.cells(g, y, p)
    assert c["count"].sum() == len(g)
    mine = ev.metric_frame(c)
    theirs = MetricFrame(
        metrics={
            "selection_rate": selection_rate,
            "tpr": true_positive_rate,
            "fpr": false_positive_rate,
        },
        y_true=y,
        y_pred=p,
        sensitive_features=pd.Series(g, name="group"),
    ).by_group
    assert np.allclose(mine.loc[["a", "b"]].to_numpy(), theirs.loc[["a", "b"]].to_numpy())
    assert theirs.loc["c", "tpr"] == 0 and math.isnan(mine.loc["c", "tpr"])  # no need: undefined
    assert mine.loc["c", "selection_rate"] == pytest.approx(1 / 31)
    by = ev.counts_by_group(c).join(mine)
    by["suppressed"] = ev.suppression(by["n"])
    gap, tpr_gap, fpr_gap = ev.equalized_odds(c, by[ev.eligible(by)])
    ab = np.isin(g, ["a", "b"])
    assert gap == pytest.approx(equalized_odds_difference(y[ab], p[ab], sensitive_features=g[ab]))
    assert tpr_gap == pytest.approx(0.7 - 0.4) and fpr_gap == pytest.approx(5 / 55 - 2 / 82)
    assert gap == pytest.approx(max(tpr_gap, fpr_gap))


def test_bootstrap_intervals_match_fairlearns_bootstrap() -> None:
    from fairlearn.metrics import MetricFrame, selection_rate, true_positive_rate

    g, y, p = _children({"a": (400, 40, 20, 40), "b": (300, 10, 30, 20)})
    ours = ev.bootstrap_rates(ev.cells(g, y, p), n_boot=4000, seed=1)
    mf = MetricFrame(
        metrics={"selection_rate": selection_rate, "tpr": true_positive_rate},
        y_true=y,
        y_pred=p,
        sensitive_features=pd.Series(g, name="group"),
        n_boot=300,
        ci_quantiles=list(ev.CI_QUANTILES),
        random_state=1,
    )
    lo, hi = mf.by_group_ci
    for m in ("selection_rate", "tpr"):
        assert np.allclose(ours[f"{m}_ci_low"], lo[m], atol=0.03)
        assert np.allclose(ours[f"{m}_ci_high"], hi[m], atol=0.03)
    assert (ours["tpr_ci_low"] < [40 / 60, 20 / 50]).all() and (
        ours["tpr_ci_high"] > [40 / 60, 20 / 50]
    ).all()
    again = ev.bootstrap_rates(ev.cells(g, y, p), n_boot=4000, seed=1)
    pd.testing.assert_frame_equal(ours, again)  # a fixed seed: the same intervals every month rerun


def test_small_groups_are_suppressed_with_a_second_group_when_one_alone_would_show() -> None:
    assert ev.suppression(pd.Series([5, 40, 20], index=list("abc"))).tolist() == [True, False, True]
    assert ev.suppression(pd.Series([5, 7, 20], index=list("abc"))).tolist() == [True, True, False]
    assert not ev.suppression(pd.Series([10, 12], index=list("ab"))).any()
    g, y, p = _children({"big": (300, 10, 10, 15), "mid": (150, 4, 4, 6), "tiny": (6, 1, 1, 1)})
    by_group, gaps = ev.audit({"district_code": pd.Series(g)}, y, p, n_boot=200)
    view = {r["group"]: r for r in ev.suppressed_view(by_group)}
    assert (
        view["tiny"]["n"] == view["tiny"]["positives"] == ev.SUPPRESSED
        and view["tiny"]["tpr"] is None
    )
    assert view["mid"]["n"] == ev.SUPPRESSED  # else n(tiny) = children − big − mid
    assert view["big"]["n"] == 335 and view["big"]["tpr"] == pytest.approx(0.6)
    # 10 listed without a need among 310: the FPR would give 10 back, and it may (≥ 10)
    assert view["big"]["fpr"] == pytest.approx(10 / 310, abs=1e-4)
    g2, y2, p2 = _children({"big": (300, 10, 5, 15), "other": (300, 10, 10, 20)})
    other, _ = ev.audit({"district_code": pd.Series(g2)}, y2, p2, n_boot=50)
    assert {r["group"]: r for r in ev.suppressed_view(other)}["big"]["tpr"] is None  # the 5 missed
    assert by_group.set_index("group")["suppressed"].to_dict() == {
        "big": False,
        "mid": True,
        "tiny": True,
    }
    assert gaps.loc[0, "groups_compared"] == 1 and math.isnan(gaps.loc[0, "equalized_odds_gap"])
    assert "計算できない" in gaps.loc[0, "explanation"]


def test_a_missing_attribute_is_reported_not_audited() -> None:
    g, y, p = _children({"a": (50, 5, 3, 7), "b": (80, 2, 6, 4)})
    by_group, gaps = ev.audit(
        {"single_parent": pd.Series(g), "foreign_resident": None}, y, p, n_boot=50
    )
    assert gaps["attribute"].tolist() == ["single_parent", "foreign_resident"]
    assert "未承認" in gaps.loc[1, "explanation"] and set(by_group["attribute"]) == {
        "single_parent"
    }


def _gap_text(spec: dict[str, tuple[int, int, int, int]]) -> tuple[float, str]:
    g, y, p = _children(spec)
    _, gaps = ev.audit({"single_parent": pd.Series(g)}, y, p, n_boot=200)
    return gaps.loc[0, "equalized_odds_gap"], gaps.loc[0, "explanation"]


def test_the_explanation_switches_at_a_gap_of_one_tenth() -> None:
    # TPR 0.8 vs 0.7: a gap of exactly 0.1 is within the limit
    gap, text = _gap_text({"a": (900, 90, 20, 80), "b": (900, 90, 30, 70)})
    assert gap == pytest.approx(0.1)  # 0.10000000000000009 in floating point
    assert "0.1 以下" in text and "超える" not in text and "偶然では説明しにくい" not in text
    # large groups: a gap within the limit that chance does not explain is noted
    gap, text = _gap_text({"a": (9000, 90, 200, 800), "b": (9000, 90, 250, 750)})
    assert gap == pytest.approx(0.05) and "0.1 以下" in text and "偶然では説明しにくい" in text
    # TPR 0.8 vs 0.69: above it, with the driving rate, both groups and the chance figures
    gap, text = _gap_text({"a": (900, 90, 20, 80), "b": (900, 90, 31, 69)})
    assert gap == pytest.approx(0.11) and "0.1 を超える" in text
    assert "TPR" in text and "「a」0.80" in text and "「b」0.69" in text and "基準率" in text
    assert "偶然" in text and "95%区間" in text


def test_a_gap_resting_on_counts_of_one_to_nine_is_not_explained_with_figures() -> None:
    """Two needs a group: 'one child moves the rate by 0.50' would say there are two. The
    gap, the rates and the base rates are withheld; the sentence says why."""
    g, y, p = _children({"a": (200, 2, 1, 1), "b": (200, 2, 0, 2)})
    _, gaps = ev.audit({"single_parent": pd.Series(g)}, y, p, n_boot=200)
    text = gaps.loc[0, "explanation"]
    assert not gaps.loc[0, "disclosable"] and "秘匿" in text
    assert not re.search(r"[0-9]\.[0-9]|基準率|人、", text)


def test_the_explanation_tells_chance_from_a_real_gap() -> None:
    # 24 needs per group: a gap of 0.17 is what chance gives
    gap, text = _gap_text({"a": (2000, 100, 14, 10), "b": (2000, 100, 10, 14)})
    assert gap == pytest.approx(4 / 24) and "偶然の揺らぎで説明でき" in text
    # large groups, FPR 0.12 vs 0.01 and base rates 20% vs 2%: not chance
    gap, text = _gap_text({"a": (3600, 500, 200, 800), "b": (4900, 50, 20, 80)})
    assert gap > 0.1 and "FPR" in text and "基準率の高い群" in text
    assert "偶然だけでは説明しにくい" in text

"""How well the score finds the needs the demo generator planted, and whether it finds them
equally across groups of children.

Pure functions over numpy and pandas; the assets in defs/evaluation only read and write.
Everything is measured over the children the 子ども家庭支援センター does not currently know
(center_known = false), the children the review list is made of, with the review list's k and its order (risk_scores' rank: lib/ranking's mode). The truth exists only for generated demo data
(`_truth/needs.csv` in the inbox); a real city has none and gets no figures.
"""

from __future__ import annotations

import json
import math
import re
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import brier_score_loss, roc_auc_score

from kodomo_assets.lib.center.review_list import SHARE, k_for
from kodomo_assets.lib.reporting.suppression import mask_text, visible
from kodomo_assets.lib.scoring import ranking

NO_TRUTH = "正解データなし"
GAP_LIMIT = 0.1  # an equalized-odds gap above this is explained, not just reported
MIN_CELL = 10  # committee outputs suppress groups of fewer than 10 children
SUPPRESSED = "x"
CI_QUANTILES = (0.025, 0.975)
N_BINS = 10
# bootstrap_rates draws 1000 replicates for 850 districts of 230k children in 0.3 s;
# fairlearn 0.15's MetricFrame(n_boot=...) re-stacks every row per metric and replicate,
# 1.8 s per replicate and attribute at that size (n_boot ≈ 2 in a 20 s budget).
N_BOOT = 1000
BOOT_SEED = 20221011
FEW_NEEDS = 20  # below this many planted needs a group's TPR moves by ≥ 0.05 per child

KIND_LABELS = {
    "young_carer_elder": "ヤングケアラー（高齢者の介護）",
    "young_carer_disability_sibling": "ヤングケアラー（障害のある家族・きょうだい）",
    "poverty_gap": "経済的困窮と支援の狭間",
    "neglect": "ネグレクト",
    "non_attendance": "不登校",
    "isolated_parenting": "孤立した子育て",
}

# attribute → (Japanese name, label of True, label of False); district_code is categorical
ATTRIBUTES: dict[str, tuple[str, str | None, str | None]] = {
    "single_parent": ("ひとり親世帯", "ひとり親世帯", "ひとり親世帯以外"),
    "foreign_resident": ("外国人住民", "外国人住民", "外国人住民以外"),
    "district_code": ("町丁目", None, None),
    "on_aid": ("手当・保護の受給", "受給あり", "受給なし"),
}
ON_AID_INPUTS = ("welfare", "child_rearing_allowance")
UNKNOWN_GROUP = "不明"

METRIC_LABELS = {
    "auc": "AUC（センター未把握の児童で、支援の必要がある児童を上位に並べる力）",
    "precision_at_k": "適合率（リストに載った児童のうち支援の必要がある児童の割合。リストは最大k人）",
    "recall_at_k": "再現率（支援の必要がある児童のうちリストに載った割合）",
    "selected": "リストに載る人数",
    "found": "リストに載った支援の必要がある児童の数",
    "brier": "Brier スコア（センター把握の有無に対する較正、全児童）",
    "ece": "期待較正誤差（10区間、全児童）",
}


# The published tables' columns and DuckDB types: fixed, so a month without truth writes
# the same (empty) tables and the gate approves exactly these columns.
EVALUATION_TABLES: dict[str, dict[str, str]] = {
    # model: the review list as ranked (risk_scores' rank, whichever mode ran); baseline: the best
    # single indicator; indicators_first and learned: the two pure orders lib/ranking chooses from
    "metrics": {
        "metric": "VARCHAR",
        "model": "DOUBLE",
        "baseline": "DOUBLE",
        "indicators_first": "DOUBLE",
        "learned": "DOUBLE",
        "description": "VARCHAR",
    },
    "recall_by_kind": {
        "kind": "VARCHAR",
        "label": "VARCHAR",
        "positives": "INTEGER",
        "model_found": "INTEGER",
        "model_recall": "DOUBLE",
        "baseline_found": "INTEGER",
        "baseline_recall": "DOUBLE",
    },
    "calibration": {
        "bin": "INTEGER",
        "lower": "DOUBLE",
        "upper": "DOUBLE",
        "n": "INTEGER",
        "mean_score": "DOUBLE",
        "label_rate": "DOUBLE",
        "need_rate": "DOUBLE",
    },
    "rules": {
        "indicator": "VARCHAR",
        "label": "VARCHAR",
        "flagged": "INTEGER",
        "selected": "INTEGER",
        "found": "INTEGER",
        "precision_at_k": "DOUBLE",
        "recall_at_k": "DOUBLE",
        "auc": "DOUBLE",
        "best": "BOOLEAN",
    },
}
FAIRNESS_TABLES: dict[str, dict[str, str]] = {
    "by_group": {
        "attribute": "VARCHAR",
        "label": "VARCHAR",
        "group": "VARCHAR",
        "n": "INTEGER",
        "positives": "INTEGER",
        "selected": "INTEGER",
        "suppressed": "BOOLEAN",
        **{
            f"{m}{s}": "DOUBLE"
            for m in ("selection_rate", "tpr", "fpr")
            for s in ("", "_ci_low", "_ci_high")
        },
    },
    "gaps": {
        "attribute": "VARCHAR",
        "label": "VARCHAR",
        "equalized_odds_gap": "DOUBLE",
        "tpr_gap": "DOUBLE",
        "fpr_gap": "DOUBLE",
        "groups_compared": "INTEGER",
        "chance_gap_median": "DOUBLE",
        "chance_gap_95": "DOUBLE",
        "chance_p": "DOUBLE",
        "disclosable": "BOOLEAN",
        "explanation": "VARCHAR",
    },
    # the committee's district table: aggregates of the district that never reaches the
    # analysis table (computed from the register in the fairness audit's step only)
    "district_counts": {
        "district_code": "VARCHAR",
        "children": "INTEGER",
        "flagged": "INTEGER",
        "listed": "INTEGER",
    },
    # the audit a city without demo truth can run: this month's selection, and the center's
    # verified outcomes of every list so far, by group (districts left out: too small)
    "verified_by_group": {
        "attribute": "VARCHAR",
        "group": "VARCHAR",
        "children": "INTEGER",
        "listed": "INTEGER",
        "checked": "INTEGER",
        "confirmed": "INTEGER",
    },
}


def verified_by_group(
    groups: Mapping[str, pd.Series | None],
    listed: np.ndarray,
    checked: np.ndarray,
    confirmed: np.ndarray,
) -> pd.DataFrame:
    """Per group of each audited attribute (not districts): children, listed this month,
    checked (該当 or 非該当 in any month's results) and confirmed (該当)."""
    rows = []
    for attr, values in groups.items():
        if values is None or attr == "district_code":
            continue
        frame = pd.DataFrame(
            {
                "group": values.to_numpy(),
                "listed": listed,
                "checked": checked,
                "confirmed": confirmed,
            }
        )
        for group, g in frame.groupby("group", sort=True):
            rows.append(
                {
                    "attribute": ATTRIBUTES[attr][0],
                    "group": group,
                    "children": len(g),
                    "listed": int(g["listed"].sum()),
                    "checked": int(g["checked"].sum()),
                    "confirmed": int(g["confirmed"].sum()),
                }
            )
    return pd.DataFrame(rows, columns=list(FAIRNESS_TABLES["verified_by_group"]))


# -- k and the list ---------------------------------------------------------------------


def review_k(n_children: int, share: float = SHARE) -> int:
    """The review list's k at its default share (lib/center/review_list.k_for)."""
    return k_for(n_children, share)


def top_k(score: np.ndarray, tokens: np.ndarray, k: int) -> np.ndarray:
    """The k highest scores, ties broken by child_token: the review list's own order."""
    order = np.lexsort((np.asarray(tokens, dtype=str), -np.asarray(score, dtype="float64")))
    chosen = np.zeros(len(order), dtype=bool)
    chosen[order[:k]] = True
    return chosen


def first_k(rank: np.ndarray, k: int) -> np.ndarray:
    """The k children with the smallest rank: risk_scores' rank is the list's order, whichever
    mode made it (lib/ranking)."""
    chosen = np.zeros(len(rank), dtype=bool)
    chosen[np.argsort(np.asarray(rank), kind="stable")[:k]] = True
    return chosen


def rule_list(flagged: np.ndarray, tokens: np.ndarray, k: int) -> np.ndarray:
    """An indicator as a ranker: every child it flags, or k of them in child_token order
    when it flags more (a rule has no order of its own)."""
    flagged = np.asarray(flagged, dtype=bool)
    if flagged.sum() <= k:
        return flagged.copy()
    idx = np.flatnonzero(flagged)
    keep = idx[np.argsort(np.asarray(tokens, dtype=str)[idx], kind="stable")[:k]]
    chosen = np.zeros(len(flagged), dtype=bool)
    chosen[keep] = True
    return chosen


@dataclass(frozen=True)
class ListFigures:
    selected: int
    found: int
    precision: float  # found / selected: what staff would find going down the list
    recall: float  # found / all planted needs


def list_figures(chosen: np.ndarray, need: np.ndarray) -> ListFigures:
    chosen, need = np.asarray(chosen, dtype=bool), np.asarray(need, dtype=bool)
    selected, found, positives = int(chosen.sum()), int((chosen & need).sum()), int(need.sum())
    return ListFigures(
        selected,
        found,
        found / selected if selected else math.nan,
        found / positives if positives else math.nan,
    )


def auc(need: np.ndarray, score: np.ndarray) -> float:
    need = np.asarray(need, dtype=bool)
    if need.all() or not need.any():
        return math.nan  # undefined without both classes
    return float(roc_auc_score(need, score))


# -- the truth --------------------------------------------------------------------------

_MONTH = re.compile(r"\d{4}-\d{2}")


def newest_month(inbox: Path) -> str | None:
    """The month the generator's truth describes: the newest month it generated (its
    counts.json), else the newest month folder (ingested exports leave the inbox)."""
    counts = inbox / "_truth" / "counts.json"
    if counts.is_file():
        return max(json.loads(counts.read_text(encoding="utf-8")), default=None)
    months = (
        [p.name for p in inbox.iterdir() if p.is_dir() and _MONTH.fullmatch(p.name)]
        if inbox.is_dir()
        else []
    )
    return max(months, default=None)


def truth_for(inbox: Path, month: str) -> tuple[Path | None, str]:
    """The truth file when it applies to the month, and a sentence saying so or why not."""
    needs = inbox / "_truth" / "needs.csv"
    if not needs.is_file():
        return (
            None,
            f"{NO_TRUTH}（受信フォルダに _truth/needs.csv がない。実データでは支援の必要の正解がないため評価しない）",
        )
    newest = newest_month(inbox)
    if month != newest:
        return (
            None,
            f"{NO_TRUTH}（正解は {newest} 時点のもので、{month} には当てはまらないため評価しない）",
        )
    return needs, f"正解データあり（デモデータの生成器が埋め込んだ支援の必要、{newest} 時点）"


def planted_needs(path: Path, tokenize: Callable[[str], str]) -> pd.DataFrame:
    """child_token and kind of every planted need (confounder = 0); confounders mimic a
    need's signals without one, so they are negatives. A child may carry two kinds."""
    truth = pd.read_csv(path, dtype=str, keep_default_na=False)
    planted = truth[truth["confounder"].astype(int) == 0]
    return pd.DataFrame(
        {
            "child_token": [tokenize(a) for a in planted["atena_no"]],
            "kind": planted["kind"].to_numpy(),
        }
    ).drop_duplicates(ignore_index=True)


def kind_label(kind: str) -> str:
    return KIND_LABELS.get(kind, kind)


# -- evaluation -------------------------------------------------------------------------


@dataclass
class Evaluation:
    k: int
    counts: dict[str, int]
    metrics: pd.DataFrame  # metric, model, baseline, description
    by_kind: pd.DataFrame
    calibration: pd.DataFrame
    rules: pd.DataFrame
    best_rule: str | None  # Japanese label
    brier: float
    ece: float


def recall_by_kind(
    chosen: Mapping[str, np.ndarray], kinds: Mapping[str, np.ndarray]
) -> pd.DataFrame:
    """Recall of each list (model, baseline, ...) per need kind; `kinds` maps a kind to the
    boolean need of that kind over the same children."""
    rows = []
    for kind, need in sorted(kinds.items()):
        row = {"kind": kind, "label": kind_label(kind), "positives": int(np.sum(need))}
        for name, sel in chosen.items():
            f = list_figures(sel, need)
            row[f"{name}_found"], row[f"{name}_recall"] = f.found, f.recall
        rows.append(row)
    columns = ["kind", "label", "positives"] + [
        f"{n}_{c}" for n in chosen for c in ("found", "recall")
    ]
    return pd.DataFrame(rows, columns=columns)


def reliability(
    score: np.ndarray, label: np.ndarray, need: np.ndarray, n_bins: int = N_BINS
) -> pd.DataFrame:
    """Equal-width score bins (sklearn's calibration_curve 'uniform'): mean score against the
    rate of the model's own label, and the rate of planted needs in the same bins."""
    score = np.asarray(score, dtype="float64")
    b = np.clip((score * n_bins).astype(int), 0, n_bins - 1)
    frame = pd.DataFrame(
        {
            "bin": b,
            "score": score,
            "label": np.asarray(label, dtype=float),
            "need": np.asarray(need, dtype=float),
        }
    )
    agg = frame.groupby("bin").agg(
        n=("score", "size"),
        mean_score=("score", "mean"),
        label_rate=("label", "mean"),
        need_rate=("need", "mean"),
    )
    out = agg.reindex(range(n_bins)).rename_axis("bin").reset_index()
    out["n"] = out["n"].fillna(0).astype("int64")
    out.insert(1, "lower", out["bin"] / n_bins)
    out.insert(2, "upper", (out["bin"] + 1) / n_bins)
    return out


def expected_calibration_error(table: pd.DataFrame) -> float:
    used = table[table["n"] > 0]
    if used.empty:
        return math.nan
    return float(
        (used["n"] * (used["mean_score"] - used["label_rate"]).abs()).sum() / used["n"].sum()
    )


def rule_figures(
    indicators: Sequence[tuple[str, str]],
    fired: Sequence[Iterable[str]],
    tokens: np.ndarray,
    need: np.ndarray,
    k: int,
) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Each indicator (name, Japanese label) as a list over the same children; `fired`
    holds each child's fired indicator labels. The best rule has the highest recall@k,
    ties broken by precision, then by the indicators' order."""
    exploded = pd.Series(list(fired), dtype=object).explode()
    rows, lists = [], {}
    for order, (name, label) in enumerate(indicators):
        flagged = np.zeros(len(tokens), dtype=bool)
        flagged[exploded.index[(exploded == label).to_numpy()]] = True
        chosen = rule_list(flagged, tokens, k)
        f = list_figures(chosen, need)
        lists[name] = chosen
        rows.append(
            {
                "indicator": name,
                "label": label,
                "flagged": int(flagged.sum()),
                "selected": f.selected,
                "found": f.found,
                "precision_at_k": f.precision,
                "recall_at_k": f.recall,
                "auc": auc(need, flagged),
                "order": order,
            }
        )
    rules = pd.DataFrame(
        rows,
        columns=[
            "indicator",
            "label",
            "flagged",
            "selected",
            "found",
            "precision_at_k",
            "recall_at_k",
            "auc",
            "order",
        ],
    )
    rules["best"] = False
    if not rules.empty:
        ranked = rules.assign(
            r=rules["recall_at_k"].fillna(-1), p=rules["precision_at_k"].fillna(-1)
        )
        ranked = ranked.sort_values(["r", "p", "order"], ascending=[False, False, True])
        rules.loc[ranked.index[0], "best"] = True
    return rules.drop(columns="order"), lists


def evaluate(
    scores: pd.DataFrame, planted: pd.DataFrame, indicators: Sequence[tuple[str, str]]
) -> Evaluation:
    """scores: child_token, score, rank, known_to_center, center_known, indicators (fired
    labels), one row per scored child. planted: child_token, kind."""
    n_children = len(scores)
    k = review_k(n_children)
    tokens = scores["child_token"].to_numpy(dtype=str)
    is_need = np.isin(tokens, planted["child_token"].to_numpy(dtype=str))
    unknown = ~scores["center_known"].to_numpy(dtype=bool)
    u_tokens, u_score, u_need = (
        tokens[unknown],
        scores["score"].to_numpy("float64")[unknown],
        is_need[unknown],
    )

    u_rank = scores["rank"].to_numpy()[unknown]
    model_list = first_k(u_rank, k)
    model = list_figures(model_list, u_need)
    fired = scores["indicators"].to_numpy()[unknown]
    first_key = ranking.priority(
        ranking.INDICATORS, np.array([len(f) for f in fired], dtype="float64"), u_score
    )
    first = list_figures(top_k(first_key, u_tokens, k), u_need)
    learned = list_figures(top_k(u_score, u_tokens, k), u_need)
    rules, lists = rule_figures(indicators, fired, u_tokens, u_need, k)
    best = rules[rules["best"]].iloc[0] if not rules.empty else None
    base_list = lists[best["indicator"]] if best is not None else np.zeros_like(model_list)
    base = list_figures(base_list, u_need)

    kinds = {
        kind: np.isin(u_tokens, g["child_token"].to_numpy(dtype=str))
        for kind, g in planted.groupby("kind")
    }
    by_kind = recall_by_kind({"model": model_list, "baseline": base_list}, kinds)

    label = scores["known_to_center"].to_numpy(dtype=bool)
    score = scores["score"].to_numpy("float64")
    calibration = reliability(score, label, is_need)
    brier = float(brier_score_loss(label, score)) if n_children else math.nan
    ece = expected_calibration_error(calibration)
    base_auc = float(best["auc"]) if best is not None else math.nan
    values = {
        "auc": (auc(u_need, -u_rank), base_auc, auc(u_need, first_key), auc(u_need, u_score)),
        **{
            m: tuple(getattr(f, m.removesuffix("_at_k")) for f in (model, base, first, learned))
            for m in ("precision_at_k", "recall_at_k", "selected", "found")
        },
        "brier": (brier, math.nan, math.nan, brier),
        "ece": (ece, math.nan, math.nan, ece),
    }
    metrics = pd.DataFrame(
        [
            {
                "metric": m,
                "model": float(a),
                "baseline": float(b),
                "indicators_first": float(c),
                "learned": float(d),
                "description": METRIC_LABELS[m],
            }
            for m, (a, b, c, d) in values.items()
        ]
    )
    counts = {
        "children_scored": n_children,
        "unknown_children": int(unknown.sum()),
        "planted_needs": int(planted["child_token"].nunique()),
        "planted_needs_unknown": int(u_need.sum()),
        "planted_needs_known": int((is_need & ~unknown).sum()),
        # moved away, turned 18 or never linked: not in the scored month
        "planted_needs_not_scored": int(planted["child_token"].nunique() - is_need.sum()),
    }
    return Evaluation(
        k=k,
        counts=counts,
        metrics=metrics,
        by_kind=by_kind,
        calibration=calibration,
        rules=rules,
        best_rule=None if best is None else str(best["label"]),
        brier=brier,
        ece=ece,
    )


# -- fairness ---------------------------------------------------------------------------


def attribute_groups(linked: pd.DataFrame) -> dict[str, pd.Series | None]:
    """Each audited attribute as Japanese group labels per child, or None when the linked
    table lacks its column (not approved for the month)."""
    out: dict[str, pd.Series | None] = {}
    for attr, (_, yes, no) in ATTRIBUTES.items():
        inputs = ON_AID_INPUTS if attr == "on_aid" else (attr,)
        if not all(c in linked for c in inputs):
            out[attr] = None
        elif yes is None or no is None:
            out[attr] = linked[attr].astype("string").fillna(UNKNOWN_GROUP).astype(str)
        else:
            flags = [linked[c].astype("boolean") for c in inputs]
            # on_aid: either benefit known to be received is enough
            value = (
                flags[0] if len(flags) == 1 else (flags[0].fillna(False) | flags[1].fillna(False))
            )
            out[attr] = pd.Series(
                np.where(value.isna(), UNKNOWN_GROUP, np.where(value.fillna(False), yes, no)),
                index=linked.index,
            )
    return out


def cells(group: np.ndarray, y_true: np.ndarray, y_pred: np.ndarray) -> pd.DataFrame:
    """Children collapsed to (group, need, listed) with counts: every rate is a weighted mean
    over these, and a bootstrap over children is a multinomial draw over them."""
    frame = pd.DataFrame(
        {
            "group": np.asarray(group, dtype=str),
            "y_true": np.asarray(y_true, dtype=int),
            "y_pred": np.asarray(y_pred, dtype=int),
        }
    )
    return frame.groupby(["group", "y_true", "y_pred"]).size().rename("count").reset_index()


def counts_by_group(c: pd.DataFrame) -> pd.DataFrame:
    q = c.pivot_table(
        index="group", columns=["y_true", "y_pred"], values="count", aggfunc="sum", fill_value=0
    )
    q = q.reindex(columns=pd.MultiIndex.from_product([[0, 1], [0, 1]]), fill_value=0)
    out = pd.DataFrame({"tn": q[(0, 0)], "fp": q[(0, 1)], "fn": q[(1, 0)], "tp": q[(1, 1)]})
    out["n"] = out.sum(axis=1)
    out["positives"] = out["tp"] + out["fn"]
    out["selected"] = out["tp"] + out["fp"]
    return out.astype("int64")


def metric_frame(c: pd.DataFrame) -> pd.DataFrame:
    """selection rate, TPR and FPR per group from fairlearn's MetricFrame over the cells,
    weighted by their counts (the same figures as over children, without the per-row cost).
    fairlearn gives a TPR of 0 to a group without a planted need and an FPR of 0 to a group
    without a negative; those are undefined here (NaN)."""
    from fairlearn.metrics import (  # lazily: slow to import, and only the audit needs it
        MetricFrame,
        false_positive_rate,
        selection_rate,
        true_positive_rate,
    )

    w = c["count"].to_numpy(dtype="float64")
    funcs = {
        "selection_rate": selection_rate,
        "tpr": true_positive_rate,
        "fpr": false_positive_rate,
    }
    mf = MetricFrame(
        metrics=funcs,
        y_true=c["y_true"].to_numpy(),
        y_pred=c["y_pred"].to_numpy(),
        sensitive_features=pd.Series(c["group"].to_numpy(), name="group"),
        sample_params={m: {"sample_weight": w} for m in funcs},
    )
    out = mf.by_group.astype("float64")
    counts = counts_by_group(c).reindex(out.index)
    out.loc[counts["positives"] == 0, "tpr"] = np.nan
    out.loc[counts["n"] - counts["positives"] == 0, "fpr"] = np.nan
    return out


def bootstrap_rates(
    c: pd.DataFrame,
    n_boot: int = N_BOOT,
    seed: int = BOOT_SEED,
    quantiles: Sequence[float] = CI_QUANTILES,
) -> pd.DataFrame:
    """Percentile intervals of each group's selection rate, TPR and FPR, resampling children
    with replacement as MetricFrame(n_boot=..., ci_quantiles=...) does, but as one
    multinomial draw over the cells per replicate. A replicate where a group has no child
    (or no need, for TPR) leaves that rate undefined and out of the quantiles (nanquantile,
    as fairlearn)."""
    groups = np.sort(c["group"].unique())
    g = np.searchsorted(groups, c["group"].to_numpy())
    counts = c["count"].to_numpy(dtype="int64")
    total = int(counts.sum())
    draws = np.random.default_rng(seed).multinomial(total, counts / total, size=n_boot)
    quad = {}
    for yt in (0, 1):
        for yp in (0, 1):
            m = (c["y_true"].to_numpy() == yt) & (c["y_pred"].to_numpy() == yp)
            q = np.zeros((n_boot, len(groups)))
            q[:, g[m]] = draws[:, m]  # (group, y_true, y_pred) is unique per cell
            quad[yt, yp] = q
    tn, fp, fn, tp = quad[0, 0], quad[0, 1], quad[1, 0], quad[1, 1]
    with np.errstate(invalid="ignore", divide="ignore"):
        rates = {
            "selection_rate": (tp + fp) / (tn + fp + fn + tp),
            "tpr": tp / (tp + fn),
            "fpr": fp / (fp + tn),
        }
    out = pd.DataFrame(index=pd.Index(groups, name="group"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN groups stay NaN
        for name, r in rates.items():
            lo, hi = np.nanquantile(r, list(quantiles), axis=0)
            out[f"{name}_ci_low"], out[f"{name}_ci_high"] = lo, hi
    return out


def suppression(n: pd.Series) -> pd.Series:
    """Groups hidden in committee outputs: fewer than MIN_CELL children, and, when that hides
    exactly one group of an attribute, also its smallest other group, since the attribute's
    groups add up to the published number of children."""
    hidden = n < MIN_CELL
    if hidden.sum() == 1 and len(n) > 1:
        hidden[n[~hidden].idxmin()] = True
    return hidden


def eligible(by_group: pd.DataFrame) -> pd.Series:
    """Groups the gap compares: not suppressed, with both a planted need and a child
    without one (otherwise TPR or FPR is undefined, and fairlearn would count it as 0)."""
    return (
        ~by_group["suppressed"]
        & (by_group["positives"] > 0)
        & (by_group["n"] > by_group["positives"])
    )


def equalized_odds(c: pd.DataFrame, by_group: pd.DataFrame) -> tuple[float, float, float]:
    """fairlearn's equalized_odds_difference over the children of the groups in `by_group`,
    and the TPR and FPR gaps (max − min across those groups) it is the larger of."""
    from fairlearn.metrics import equalized_odds_difference

    if len(by_group) < 2:
        return math.nan, math.nan, math.nan
    sub = c[c["group"].isin(set(by_group.index))]
    gap = equalized_odds_difference(
        sub["y_true"].to_numpy(),
        sub["y_pred"].to_numpy(),
        sensitive_features=sub["group"].to_numpy(),
        sample_weight=sub["count"].to_numpy(dtype="float64"),
    )
    return float(gap), float(np.ptp(by_group["tpr"])), float(np.ptp(by_group["fpr"]))


def chance_gaps(by_group: pd.DataFrame, n_sim: int = N_BOOT, seed: int = BOOT_SEED) -> np.ndarray:
    """The gap chance alone gives with these groups' sizes and base rates: every group
    draws its listed children at the pooled TPR and FPR (binomial), n_sim times."""
    pos = by_group["positives"].to_numpy(dtype="int64")
    neg = (by_group["n"] - by_group["positives"]).to_numpy(dtype="int64")
    tpr0 = by_group["tp"].sum() / max(pos.sum(), 1)
    fpr0 = by_group["fp"].sum() / max(neg.sum(), 1)
    rng = np.random.default_rng(seed)
    tpr = rng.binomial(pos, tpr0, size=(n_sim, len(pos))) / pos
    fpr = rng.binomial(neg, fpr0, size=(n_sim, len(neg))) / neg
    return np.maximum(np.ptp(tpr, axis=1), np.ptp(fpr, axis=1))


def _group_text(row: pd.Series, metric: str, denominator: str) -> str:
    text = (
        f"「{row.name}」{row[metric]:.2f}（児童 {int(row['n']):,}人、支援の必要 {int(row['positives']):,}人、"
        f"基準率 {row['positives'] / row['n']:.1%}"
    )
    if row[denominator] >= FEW_NEEDS:
        text += f"、95%区間 {row[f'{metric}_ci_low']:.2f}–{row[f'{metric}_ci_high']:.2f}"
    return text + "）"


def explain(name: str, gap: Mapping[str, float], by_group: pd.DataFrame) -> str:
    """One Japanese paragraph for the committee, computed from the figures: within the limit,
    say so; above it, which rate drives the gap and between which groups, their sizes, base
    rates and intervals, and how large a gap chance alone gives with such groups."""
    comp = by_group[eligible(by_group)]
    hidden = int(by_group["suppressed"].sum())
    small = f"、{MIN_CELL}人未満などで秘匿する {hidden} 群は除外" if hidden else ""
    if math.isnan(gap["equalized_odds_gap"]):
        return (
            f"{name}: 支援の必要がある児童とない児童の両方を含む群が2つ未満のため、"
            f"均等化オッズの差は計算できない（{len(comp)} 群{small}）。"
        )
    if not gap.get("disclosable", True):
        return (
            f"{name}: 比較する {len(comp)} 群{small}のうちに、支援の必要がある・ない児童の数、またはリストに"
            "載った・載らなかった児童の数が10人未満の群があるため、率と差は秘匿する（一人の違いが読み取れるため）。"
        )
    head = (
        f"{name}: 均等化オッズの差は {gap['equalized_odds_gap']:.2f}（TPR差 {gap['tpr_gap']:.2f}、"
        f"FPR差 {gap['fpr_gap']:.2f}、{len(comp)} 群を比較{small}）"
    )
    chance = f"{gap['chance_p']:.0%}" if gap["chance_p"] >= 0.01 else "1%未満"
    if gap["equalized_odds_gap"] <= GAP_LIMIT + 1e-9:  # 0.8 − 0.7 is 0.10000000000000009
        text = (
            f"{head}で、基準 {GAP_LIMIT} 以下。支援の必要がある児童がリストに載る率も、"
            "必要のない児童が載る率も、群の間で大きな差はない。"
        )
        if gap["chance_p"] < 0.05:  # large groups: a small gap can still be systematic
            text += f"ただし差は小さいながら偶然では説明しにくい（偶然で生じる確率 {chance}）ため、推移を見る。"
        return text
    tpr_driven = gap["tpr_gap"] >= gap["fpr_gap"]
    metric, denominator = ("tpr", "positives") if tpr_driven else ("fpr", "negatives")
    jp = (
        "支援の必要がある児童がリストに載る率（TPR）"
        if tpr_driven
        else "支援の必要がない児童がリストに載る率（FPR）"
    )
    comp = comp.assign(negatives=comp["n"] - comp["positives"])
    hi, lo = comp.loc[comp[metric].idxmax()], comp.loc[comp[metric].idxmin()]
    parts = [
        f"{head}で、基準 {GAP_LIMIT} を超える。主に{jp}の差で、最も高い"
        f"{_group_text(hi, metric, denominator)}、最も低い{_group_text(lo, metric, denominator)}。"
    ]
    few = comp[denominator] < FEW_NEEDS
    what = "支援の必要がある児童" if tpr_driven else "支援の必要がない児童"
    fewest = int(min(hi[denominator], lo[denominator]))
    if fewest < FEW_NEEDS:
        parts.append(
            f"{what}が {fewest}人の群では 一人の違いで率が {1 / fewest:.2f} 動き、"
            "ブートストラップ区間も当てにならない。"
        )
    base = comp["positives"] / comp["n"]
    if not tpr_driven and base[hi.name] > 1.5 * base[lo.name]:
        parts.append(
            "基準率の高い群ほどスコアの高い児童が多く、支援の必要がない児童も上位に入りやすい。"
        )
    if len(comp) > 2:
        text = (
            f"比較した {len(comp)} 群のうち {int(few.sum())} 群は{what}が {FEW_NEEDS}人未満"
            f"（中央値 {comp[denominator].median():.0f}人）"
        )
        if (~few).any():
            widths = (comp[f"{metric}_ci_high"] - comp[f"{metric}_ci_low"])[~few]
            text += f"、{FEW_NEEDS}人以上の群でも95%区間の幅は中央値 {widths.median():.2f}"
        parts.append(text + "。")
    parts.append(
        f"全群が同じ率だとしても、この群の大きさでは偶然で生じる差は中央値 {gap['chance_gap_median']:.2f}・"
        f"95%点 {gap['chance_gap_95']:.2f} で、観測された差以上が偶然で生じる確率は {chance}。"
    )
    if gap["chance_p"] >= 0.05:
        parts.append("差は偶然の揺らぎで説明でき、偏りとは判断できない。月ごとの推移で確認する。")
    else:
        parts.append("偶然だけでは説明しにくい。特徴量と基準率の違いを検討会で確認する。")
    return "".join(parts)


GAP_COLUMNS = list(FAIRNESS_TABLES["gaps"])
BY_GROUP_COLUMNS = list(FAIRNESS_TABLES["by_group"])


def audit(
    groups: Mapping[str, pd.Series | None],
    need: np.ndarray,
    listed: np.ndarray,
    n_boot: int = N_BOOT,
    seed: int = BOOT_SEED,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """by_group and gaps for each attribute over the same children (the unknown ones):
    `need` is y_true, `listed` (in the review list's top k) is y_pred."""
    frames, gaps = [], []
    for attr, series in groups.items():
        name = ATTRIBUTES[attr][0]
        row: dict = {"attribute": attr, "label": name, "groups_compared": 0}
        if series is None:
            gaps.append(
                row | {"explanation": f"{name}: 連携テーブルに列がない（未承認）ため確認できない。"}
            )
            continue
        c = cells(series.to_numpy(), need, listed)
        by = counts_by_group(c).join(metric_frame(c)).join(bootstrap_rates(c, n_boot, seed))
        by["suppressed"] = suppression(by["n"])
        comp = by[eligible(by)]
        row["equalized_odds_gap"], row["tpr_gap"], row["fpr_gap"] = equalized_odds(c, comp)
        row["groups_compared"] = len(comp)
        # the gap is a difference of rates: published only when no rate behind it rests on a
        # count (or its rest) of 1–9, or one group's rate and the gap give back another's
        row["disclosable"] = bool(len(comp)) and all(
            visible(g.tp, g.positives)
            and visible(g.fp, g.n - g.positives)
            and visible(g.positives, g.n)
            for g in comp.itertuples()
        )
        if len(comp) >= 2:
            chance = chance_gaps(comp, n_boot, seed)
            row |= {
                "chance_gap_median": float(np.median(chance)),
                "chance_gap_95": float(np.quantile(chance, 0.95)),
                "chance_p": float(np.mean(chance >= row["equalized_odds_gap"] - 1e-12)),
            }
        # committee output: counts of 1–9 inside the sentence are masked too
        gaps.append(row | {"explanation": mask_text(explain(name, row, by))})
        frames.append(by.reset_index().assign(attribute=attr, label=name))
    by_group = (
        pd.concat(frames, ignore_index=True)[BY_GROUP_COLUMNS]
        if frames
        else pd.DataFrame(columns=BY_GROUP_COLUMNS)
    )
    return by_group, pd.DataFrame(gaps).reindex(columns=GAP_COLUMNS)


def suppressed_view(by_group: pd.DataFrame) -> list[dict]:
    """by_group for metadata: a suppressed group (see `suppression`) shows its counts as "x"
    and no rates (committee outputs suppress small cells); a rate whose numerator or rest is
    1–9 is left out too, or rate × group size would give the count back."""
    out = []
    for r in by_group.itertuples(index=False):
        row = {"attribute": r.label, "group": r.group}
        for col in ("n", "positives", "selected"):
            row[col] = SUPPRESSED if r.suppressed else int(getattr(r, col))
        negatives = int(r.n) - int(r.positives)
        counts = {
            "selection_rate": (r.selected, r.n),
            "tpr": (r.tpr * r.positives, r.positives),
            "fpr": (r.fpr * negatives, negatives),
        }
        for col in ("selection_rate", "tpr", "fpr"):
            v, lo, hi = (getattr(r, f"{col}{s}") for s in ("", "_ci_low", "_ci_high"))
            num, den = counts[col]
            hide = r.suppressed or pd.isna(v) or not visible(round(num), int(den))
            row[col] = None if hide else round(float(v), 4)
            row[f"{col}_ci"] = (
                None if hide or pd.isna(lo) else [round(float(lo), 4), round(float(hi), 4)]
            )
        out.append(row)
    return out

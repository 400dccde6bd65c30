"""What the evaluation and the fairness audit say in their metadata and logs: aggregates only,
rates rounded to four places, small groups suppressed (evaluation.suppressed_view)."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from kodomo_assets.lib.policy.pseudonym import TOKEN_PATTERN
from kodomo_assets.lib.reporting.markdown import table
from kodomo_assets.lib.scoring import evaluation as ev
from kodomo_assets.lib.scoring.evaluation_store import Audited

MARKDOWN = frozenset({"model_vs_baseline", "rules", "explanations", "by_group"})  # tables
_TOKEN = re.compile(TOKEN_PATTERN)

# (metadata key, metric, list) of the headline figures: the review list, the best single rule
# (baseline), and the two orders the list can take
HEADLINE = [
    ("auc", "auc", "model"),
    ("precision_at_k", "precision_at_k", "model"),
    ("recall_at_k", "recall_at_k", "model"),
    ("baseline_auc", "auc", "baseline"),
    ("baseline_precision_at_k", "precision_at_k", "baseline"),
    ("baseline_recall_at_k", "recall_at_k", "baseline"),
    ("indicators_first_precision_at_k", "precision_at_k", "indicators_first"),
    ("indicators_first_recall_at_k", "recall_at_k", "indicators_first"),
    ("learned_precision_at_k", "precision_at_k", "learned"),
    ("learned_recall_at_k", "recall_at_k", "learned"),
]
RULE_COLUMNS = {
    "label": "指標",
    "flagged": "該当",
    "selected": "リスト",
    "found": "必要あり",
    "precision_at_k": "適合率",
    "recall_at_k": "再現率",
    "best": "最良",
}
GROUP_COLUMNS = {
    "attribute": "属性",
    "group": "群",
    "n": "人数",
    "positives": "必要あり",
    "selected": "リスト",
    "selection_rate": "選ばれる率",
    "selection_rate_ci": "95%区間",
    "tpr": "TPR",
    "tpr_ci": "TPRの95%区間",
    "fpr": "FPR",
    "fpr_ci": "FPRの95%区間",
}


def evaluation(
    month: str, status: str, n_children: int, result: ev.Evaluation | None
) -> tuple[dict, list[str]]:
    """The evaluation's metadata (plain values; MARKDOWN's keys hold tables) and log lines."""
    k = ev.review_k(n_children)
    metadata: dict = {"truth": status, "k": k, "children_scored": n_children}
    if result is None:
        return metadata, [f"{month}: {status}"]
    metadata |= result.counts | headline(result)
    metadata["best_rule"] = result.best_rule or "なし"
    metadata["model_vs_baseline"] = model_vs_baseline(result)
    metadata["recall_by_kind"] = recall_by_kind(result)
    metadata["rules"] = rules(result)
    return metadata, [evaluation_line(month, k, result)]


def audit(month: str, status: str, audited: Audited) -> tuple[dict, list[str]]:
    """The fairness audit's metadata (as `evaluation`'s) and log lines: the gaps' explanations."""
    metadata: dict = {"truth": status, "k": audited.k, "unknown_children": audited.unknown}
    if audited.gaps is None or audited.by_group is None:
        return metadata, [f"{month}: {status}"]
    metadata |= gap_figures(audited.gaps)
    metadata["explanations"] = explanations(audited.gaps)
    metadata["groups_suppressed"] = int(audited.by_group["suppressed"].sum())
    metadata["by_group"] = by_group(audited.by_group)
    return metadata, list(audited.gaps["explanation"])


def token_shaped(metadata: dict) -> bool:
    """Whether anything in the metadata is shaped like a child_token: then it is not published."""
    return bool(_TOKEN.search(repr(metadata)))


def rounded(values: dict[str, float | None]) -> dict[str, float]:
    """Each figure to four places; a missing one (None, NaN) is left out."""
    return {k: round(float(v), 4) for k, v in values.items() if not (v is None or np.isnan(v))}


def headline(result: ev.Evaluation) -> dict[str, float]:
    m = result.metrics.set_index("metric")
    figures = {key: m.at[metric, col] for key, metric, col in HEADLINE}
    return rounded(figures | {"brier": result.brier, "ece": result.ece})


def model_vs_baseline(result: ev.Evaluation) -> str:
    baseline = f"基準（{result.best_rule}）"
    columns = {
        "metric": "指標",
        "model": "確認リスト",
        "baseline": baseline,
        "indicators_first": "指標優先",
        "learned": "学習モデルのみ",
        "description": "説明",
    }
    shown = ["説明", "確認リスト", "指標優先", "学習モデルのみ", baseline]
    return table(result.metrics.rename(columns=columns)[shown])


def recall_by_kind(result: ev.Evaluation) -> dict[str, dict[str, float | int]]:
    return {
        r.label: {
            "positives": int(r.positives),
            "model": round(float(r.model_recall), 4),
            "baseline": round(float(r.baseline_recall), 4),
        }
        for r in result.by_kind.itertuples()
    }


def rules(result: ev.Evaluation) -> str:
    return table(result.rules[list(RULE_COLUMNS)].rename(columns=RULE_COLUMNS))


def evaluation_line(month: str, k: int, result: ev.Evaluation) -> str:
    m = result.metrics.set_index("metric")
    return (
        f"{month}: k={k}、スコアの再現率 {m.at['recall_at_k', 'model']:.3f}、"
        f"最良の単独指標（{result.best_rule}）{m.at['recall_at_k', 'baseline']:.3f}"
    )


def gap_figures(gaps: pd.DataFrame) -> dict[str, float]:
    figures: dict[str, float] = {}
    for r in gaps.itertuples():
        if r.disclosable is True:  # a gap from small counts would give a count back
            figures |= rounded(
                {
                    f"equalized_odds_gap_{r.attribute}": r.equalized_odds_gap,
                    f"tpr_gap_{r.attribute}": r.tpr_gap,
                    f"fpr_gap_{r.attribute}": r.fpr_gap,
                }
            )
    return figures


def explanations(gaps: pd.DataFrame) -> str:
    return "\n".join(f"- {t}" for t in gaps["explanation"])


def by_group(frame: pd.DataFrame) -> str:
    """The audit's groups, small ones suppressed, with each interval as one cell."""
    shown = pd.DataFrame(ev.suppressed_view(frame))
    for col in ("selection_rate_ci", "tpr_ci", "fpr_ci"):
        shown[col] = [None if ci is None else f"{ci[0]:.3f}–{ci[1]:.3f}" for ci in shown[col]]
    return table(shown.rename(columns=GROUP_COLUMNS))

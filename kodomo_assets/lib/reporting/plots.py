"""The report's figures, drawn with matplotlib and embedded as PNG data URIs. Every figure
leaves out what would show a count of 1–9: the callers pass only what may be drawn, or the
figure drops it here."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from kodomo_assets.lib.reporting import report as R


def calibration(shown: list[tuple[float, float]]) -> str:
    """Mean score against the known share, per bin that may be drawn, with the diagonal."""
    fig, ax = plt.subplots(figsize=(4.5, 4))
    ax.plot([0, max(s for s, _ in shown)], [0, max(s for s, _ in shown)], "--", color="#999")
    ax.plot([s for s, _ in shown], [r for _, r in shown], "o-")
    ax.set_xlabel("予測スコアの平均"), ax.set_ylabel("既知の割合"), ax.set_title("較正（10区分）")
    return R.image(R.png(fig), "較正のグラフ")


def score_histogram(scores: np.ndarray) -> str:
    fig, ax = plt.subplots(figsize=(6, 3.5))
    counts, edges = np.histogram(scores, bins=20, range=(0, 1))
    heights = np.where(counts >= 10, counts, 0)  # bins of 1–9 children are not drawn
    ax.bar(edges[:-1], heights, width=0.05, align="edge", color="#669")
    ax.set_yscale("symlog")
    ax.set_xlabel("較正済みスコア")
    ax.set_ylabel("児童数")
    ax.set_title("スコアの分布（10人未満の区分は表示しない）")
    return R.image(R.png(fig), "スコアの分布")


def indicator_trend(months: list[str], labels: list[str], series: np.ndarray) -> str:
    """One line per indicator over the months; `series` holds NaN where a count is left out."""
    fig, ax = plt.subplots(figsize=(8, 4))
    for i, label in enumerate(labels):
        ax.plot(months, series[i], marker="o", label=label)
    ax.set_ylabel("該当児童数"), ax.set_title("指標ごとの該当児童数の推移（10人未満は表示しない）")
    ax.legend(fontsize=6, loc="center left", bbox_to_anchor=(1, 0.5))
    return R.image(R.png(fig), "指標ごとの該当児童数の推移")

"""The review list's order: the indicators first, the learned model, or a blend of the two,
chosen each month by cross-validation on the children the center already knows.

A town of 12,000 residents has about twenty known children: a model fitted on them ranks
worse than the indicators it already computes. So the indicators rank unless the month's
own evidence shows otherwise. On the training rows (the model's out-of-fold scores, so no
child's place rests on its own label) each mode's precision at the list's share is measured
against the center's label; a mode replaces the indicators only when it beats them in at
least WIN_SHARE of bootstrap replicates. Demo truth is never read here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

INDICATORS, MODEL, BLEND = "indicators", "model", "blend"
MODES = (INDICATORS, MODEL, BLEND)
LABELS = {
    INDICATORS: "指標優先（発生した指標の数の多い順、同数は学習スコア順）",
    MODEL: "学習モデル（較正済みスコアの高い順）",
    BLEND: "指標と学習モデルの合成（指標の数＋重み×標準化した学習スコア）",
}
LIST_SHARE = 0.02  # the review list's default k, as a share of the children
N_BOOT = 500
# The indicators give way only to a mode that beats them this often. Set on the demo (seeds
# 1–3 and 42, two pseudonym keys): at 30,000 residents the blend won 41–74% of replicates and
# was 0.01 worse on the truth; at 113,000 it won 85–97% and was 0.04–0.05 better.
WIN_SHARE = 0.8
BLEND_PRIOR = 200  # known children at which the blend's model weight reaches half its full 2
BOOT_SEED = 20221011


@dataclass(frozen=True)
class Choice:
    """The mode that ranks this month's list, and the evidence it was chosen on."""

    mode: str
    blend_weight: float  # the model's weight in the blend, per standard deviation of log-odds
    center: float  # the log-odds' mean and spread over the training rows: the blend's scale
    scale: float
    positives: int  # known children in the training rows
    precision: dict[str, float]  # mode -> out-of-fold precision at the list's share
    wins: dict[str, float]  # mode -> share of replicates in which it beat the indicators

    def priority(self, count: np.ndarray, score: np.ndarray) -> np.ndarray:
        """The sort key of the list, higher first: for the indicators, the count plus the
        score (always below 1), so the count decides and the score breaks ties."""
        return priority(self.mode, count, score, self.blend_weight, self.center, self.scale)

    def reason(self, figures: bool = True) -> str:
        """Why this mode ran, in Japanese. Without figures for the committee: a precision
        times the list's length would give back a small count of known children."""
        basis = f"センターが把握している児童 {self.positives} 人を正解とした交差検証で、"
        if figures:
            basis += "上位の適合率は " + "、".join(f"{short(m)} {self.precision[m]:.3f}" for m in MODES) + "。"
        if self.mode == INDICATORS:
            best = max((MODEL, BLEND), key=lambda m: self.wins[m])
            return basis + (f"学習を使う順位付けが指標優先を上回った割合は最大 {self.wins[best]:.0%}"
                            f"（{N_BOOT} 回の再標本化）で、{WIN_SHARE:.0%} に届かないため指標優先とした。")
        return basis + (f"{short(self.mode)}が指標優先を {N_BOOT} 回の再標本化の {self.wins[self.mode]:.0%} で"
                        f"上回った（基準 {WIN_SHARE:.0%}）ため採用した。")

    def as_dict(self) -> dict:
        return asdict(self) | {"label": LABELS[self.mode], "reason": self.reason(),
                               "reason_for_committee": self.reason(figures=False)}


def short(mode: str) -> str:
    return LABELS[mode].split("（")[0]


def _logit(score: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(score, dtype="float64"), 1e-9, 1 - 1e-9)
    return np.log(p / (1 - p))


def priority(mode: str, count: np.ndarray, score: np.ndarray, blend_weight: float = 0.0,
             center: float = 0.0, scale: float = 1.0) -> np.ndarray:
    count = np.asarray(count, dtype="float64")
    score = np.asarray(score, dtype="float64")
    if mode == INDICATORS:
        return count + np.minimum(score, 1 - 1e-9)
    if mode == MODEL:
        return score
    return count + blend_weight * (_logit(score) - center) / scale


def blend_weight(positives: int) -> float:
    """Grows with the evidence: 2 × n / (n + BLEND_PRIOR), one indicator's worth of log-odds
    spread at 200 known children, near nothing at 20."""
    return 2.0 * positives / (positives + BLEND_PRIOR)


def top_share(key: np.ndarray, weight: np.ndarray, share: float) -> np.ndarray:
    """The rows that make up the first `share` of the (sampling-)weighted rows, highest key
    first, ties in row order: the list's k, on training rows whose negatives were sampled."""
    order = np.argsort(-key, kind="stable")
    within = np.cumsum(weight[order]) <= share * weight.sum()
    within[0] = True
    chosen = np.zeros(len(key), dtype=bool)
    chosen[order[within]] = True
    return chosen


def choose(count: np.ndarray, oof_score: np.ndarray, y: np.ndarray, weight: np.ndarray,
           share: float, seed: int = BOOT_SEED) -> Choice:
    """Pick the mode on the training rows: `oof_score` is each row's out-of-fold score, `y`
    the center's label, `weight` the inverse sampling rate of the row."""
    y = np.asarray(y, dtype=bool)
    weight = np.asarray(weight, dtype="float64")
    logits = _logit(oof_score)
    center = float(np.average(logits, weights=weight))
    scale = float(np.sqrt(np.average((logits - center) ** 2, weights=weight))) or 1.0
    w = blend_weight(int(y.sum()))
    tops = {m: top_share(priority(m, count, oof_score, w, center, scale), weight, share) for m in MODES}
    # the bootstrap needs only the rows some mode lists: Poisson(1) replicate weights on them
    rows = np.flatnonzero(np.logical_or.reduce(list(tops.values())))
    draws = np.random.default_rng(seed).poisson(1.0, size=(N_BOOT, len(rows))) * weight[rows]
    hits = draws * y[rows]
    precision, replicate = {}, {}
    for m, top in tops.items():
        inside = top[rows]
        precision[m] = float((weight[rows] * y[rows])[inside].sum() / weight[rows][inside].sum())
        replicate[m] = hits[:, inside].sum(axis=1) / np.maximum(draws[:, inside].sum(axis=1), 1e-12)
    wins = {m: float(np.mean(replicate[m] > replicate[INDICATORS])) for m in MODES}
    wins[INDICATORS] = 0.0
    able = [m for m in (BLEND, MODEL) if wins[m] >= WIN_SHARE and precision[m] > precision[INDICATORS]]
    mode = max(able, key=lambda m: precision[m]) if able else INDICATORS
    return Choice(mode, w, center, scale, int(y.sum()), precision, wins)

"""The review list's order: the indicators first, the learned model, or a blend of the two,
chosen each month by cross-validation on the children the center already knows.

A town of 12,000 residents has about twenty known children: a model fitted on them ranks
worse than the indicators it already computes. So the indicators rank unless the month's
own evidence shows otherwise. On the training rows (the model's out-of-fold scores, so no
child's place rests on its own label) each mode's precision at the list's share is measured
against the center's label. The blend replaces the indicators only when it beats them in at
least WIN_SHARE of bootstrap replicates, and the model alone replaces the blend only when it
beats the blend as often. Demo truth is never read here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from kodomo_assets.lib.center.review_list import SHARE

INDICATORS, MODEL, BLEND = "indicators", "model", "blend"
MODES = (INDICATORS, MODEL, BLEND)
LABELS = {
    INDICATORS: "指標優先（発生した指標の数の多い順、同数は学習スコア順）",
    MODEL: "学習モデル（較正済みスコアの高い順）",
    BLEND: "指標と学習モデルの合成（指標の数＋重み×標準化した学習スコア）",
}
LIST_SHARE = SHARE  # the review list's default k, as a share of the children
N_BOOT = 500
# Each step away from the indicators (to the blend, then from the blend to the model alone)
# needs this share of bootstrap wins over the step before. Set on the demo (seed 42, five
# pseudonym keys): at 30,000 residents the blend won 0–86% of replicates and was 0–0.012
# worse on the truth; at 113,000 it won 56–98% and was 0.012–0.046 better, and the model
# alone never beat it on the truth.
WIN_SHARE = 0.9
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
    # the share of replicates in which a step won: the blend over the indicators (BLEND), the
    # model alone over the blend (MODEL)
    wins: dict[str, float]

    def priority(self, count: np.ndarray, score: np.ndarray) -> np.ndarray:
        """The sort key of the list, higher first: for the indicators, the count plus the
        score (always below 1), so the count decides and the score breaks ties."""
        return priority(self.mode, count, score, self.blend_weight, self.center, self.scale)

    def reason(self, figures: bool = True) -> str:
        """Why this mode ran, in Japanese. Without figures for the committee: a precision
        times the list's length would give back a small count of known children."""
        basis = f"センターが把握している児童 {self.positives} 人を正解とした交差検証で、"
        if figures:
            basis += (
                "上位の適合率は "
                + "、".join(f"{short(m)} {self.precision[m]:.3f}" for m in MODES)
                + "。"
            )
        step = f"{short(BLEND)}が{short(INDICATORS)}を {N_BOOT} 回の再標本化の {self.wins[BLEND]:.0%} で上回り"
        if self.mode == INDICATORS:
            return (
                basis + f"{step}、基準の {WIN_SHARE:.0%} に届かないため{short(INDICATORS)}とした。"
            )
        model = f"{short(MODEL)}のみが合成を {self.wins[MODEL]:.0%} で上回った"
        if self.mode == BLEND:
            return (
                basis
                + f"{step}（基準 {WIN_SHARE:.0%}）、{model}が基準に届かないため、合成を採用した。"
            )
        return (
            basis + f"{step}、{model}（基準 {WIN_SHARE:.0%}）ため、{short(MODEL)}のみを採用した。"
        )

    def as_dict(self) -> dict:
        return asdict(self) | {
            "label": LABELS[self.mode],
            "reason": self.reason(),
            "reason_for_committee": self.reason(figures=False),
        }


def short(mode: str) -> str:
    return LABELS[mode].split("（")[0]


def _logit(score: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(score, dtype="float64"), 1e-9, 1 - 1e-9)
    return np.log(p / (1 - p))


def priority(
    mode: str,
    count: np.ndarray,
    score: np.ndarray,
    blend_weight: float = 0.0,
    center: float = 0.0,
    scale: float = 1.0,
) -> np.ndarray:
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


def choose(
    count: np.ndarray,
    oof_score: np.ndarray,
    y: np.ndarray,
    weight: np.ndarray,
    share: float,
    seed: int = BOOT_SEED,
) -> Choice:
    """Pick the mode on the training rows: `oof_score` is each row's out-of-fold score, `y`
    the center's label, `weight` the inverse sampling rate of the row."""
    y = np.asarray(y, dtype=bool)
    weight = np.asarray(weight, dtype="float64")
    logits = _logit(oof_score)
    center = float(np.average(logits, weights=weight))
    scale = float(np.sqrt(np.average((logits - center) ** 2, weights=weight))) or 1.0
    w = blend_weight(int(y.sum()))
    tops = {
        m: top_share(priority(m, count, oof_score, w, center, scale), weight, share) for m in MODES
    }
    # the bootstrap needs only the rows some mode lists: Poisson(1) replicate weights on them
    rows = np.flatnonzero(np.logical_or.reduce(list(tops.values())))
    draws = np.random.default_rng(seed).poisson(1.0, size=(N_BOOT, len(rows))) * weight[rows]
    hits = draws * y[rows]
    precision, replicate = {}, {}
    for m, top in tops.items():
        inside = top[rows]
        precision[m] = float((weight[rows] * y[rows])[inside].sum() / weight[rows][inside].sum())
        replicate[m] = hits[:, inside].sum(axis=1) / np.maximum(draws[:, inside].sum(axis=1), 1e-12)
    wins = {
        BLEND: float(np.mean(replicate[BLEND] > replicate[INDICATORS])),
        MODEL: float(np.mean(replicate[MODEL] > replicate[BLEND])),
    }
    mode = INDICATORS
    if wins[BLEND] >= WIN_SHARE and precision[BLEND] > precision[INDICATORS]:
        mode = BLEND
        if wins[MODEL] >= WIN_SHARE and precision[MODEL] > precision[BLEND]:
            mode = MODEL  # the indicators add nothing the model does not know
    return Choice(mode, w, center, scale, int(y.sum()), precision, wins)

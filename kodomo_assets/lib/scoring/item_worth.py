"""必要最小限: what each approved item of the 別紙 is worth to the learned score.

For the full model, each department dataset and each item approved for 分析, the score's
cross-validated AUC and precision@k (k = the review list's 2% of children) against the
label the score learns (known to the 子ども家庭支援センター), with every linked-table column
whose lineage reads the item removed, and every indicator whose rule, reason or as-of date
reads one of those columns. All variants use the same sampled training rows, folds, model
settings and seed as the score, so their differences are paired and a seed gives the same
figures. Where the center's verified outcomes reach MIN_OUTCOMES, the PPV of listed
children whose indicators read the item.

Items that are not model inputs are reported, not refitted: keys and 照合 only, the
center's own records (the label), audit-only attributes, and items no column reads.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import duckdb
import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from threadpoolctl import threadpool_limits

from kodomo_assets.lib.center.feedback import CONFIRMED, NOT_CONFIRMED
from kodomo_assets.lib.policy.approval import MonthApproval
from kodomo_assets.lib.registry import load_registry
from kodomo_assets.lib.scoring import model as scoring
from kodomo_assets.lib.scoring.evaluation import review_k
from kodomo_assets.lib.scoring.indicators import Indicator, compile_sql
from kodomo_assets.lib.scoring.linked_table import TOKENS, Feature, Plan

# The council's bar: below both, removing the item costs the score too little to justify
# holding it. Precision is one point of the top 2% (about three of 320 children at 昭島市 size).
AUC_THRESHOLD = 0.005
PRECISION_THRESHOLD = 0.01
FOLDS = 5  # as the score's calibration: the full model's figure matches its card's
MIN_OUTCOMES = 10  # verified 該当 + 非該当 before a PPV is shown
# Refits of the full model with one column of seeded random numbers added: how far a change
# that carries no information moves the figures. At 昭島市 size we measured up to 0.015 AUC
# and 4–5 children of the top 2%, above the thresholds: a drop within it is 保留, not 必要.
NOISE_DRAWS = 3

DROP, NEEDED, UNSURE, UNREAD = "削除候補", "必要", "保留（ゆらぎの範囲）", "どの列も読まない"
LINK_ONLY = "連携・照合のみ（モデルの入力ではない）"
LABEL = "学習の正解（モデルの入力ではない）"
AUDIT = "公平性の確認のみ（モデルの入力ではない）"
BASELINE, CONTROL_VERDICT = "基準（全項目）", "対照（ゆらぎの目安）"
VERDICTS = (DROP, NEEDED, UNSURE, UNREAD, LINK_ONLY, LABEL, AUDIT)
FULL, CONTROL, DATASET, ITEM = "全項目", "対照", "データセット", "項目"
CONTROL_NOTE = "全項目に情報のない乱数の列を1列加えて学習し直した。差はモデルのゆらぎの目安"
WHOLE = "（データセット全体）"
BASE_NOTE = "児童と世帯の特定（連携テーブルの基礎）に使うため、モデルへの寄与にかかわらず外せない"

# the published table (item_worth), in order
SCHEMA = {
    "level": "VARCHAR",
    "department": "VARCHAR",
    "dataset": "VARCHAR",
    "item": "VARCHAR",
    "columns_removed": "VARCHAR[]",
    "indicators_removed": "VARCHAR[]",
    "auc": "DOUBLE",
    "auc_drop": "DOUBLE",
    "precision_at_k": "DOUBLE",
    "precision_drop": "DOUBLE",
    "verified_outcomes": "INTEGER",
    "ppv_verified": "DOUBLE",
    "verdict": "VARCHAR",
    "harm_rank": "INTEGER",
    "note": "VARCHAR",
}


@dataclass(frozen=True)
class Unit:
    """One row of the table: what is removed, or why nothing is refitted."""

    level: str
    dataset: str
    item: str | None  # None: the whole dataset
    columns: tuple[str, ...] = ()
    verdict: str | None = None  # set when the unit is reported, not refitted
    note: str = ""


@dataclass
class Inputs:
    """The month's design inputs, as analysis/risk_scores reads them."""

    frame: pd.DataFrame  # linked table joined with the fired indicators (ind_* columns)
    features: list[Feature]
    indicators: tuple[Indicator, ...]
    asof: pd.Timestamp
    asof_sql: str  # the as-of date as SQL, for compiling indicators
    y: np.ndarray  # known to the center (the score's label)
    plan: Plan
    approval: MonthApproval
    shown: list[str] = field(default_factory=list)  # the indicators' view (no label columns)


label_columns = scoring.label_columns


def _reads(p: Plan, pairs: Iterable[tuple[str, str]]) -> list[str]:
    pairs = set(pairs)
    return [c for c in p.columns if c not in TOKENS and pairs & set(p.lineage[c])]


def units(p: Plan, approval: MonthApproval) -> list[Unit]:
    """The datasets, then their items, in the approval list's order."""
    labels, base = label_columns(p), p.spec.base_dataset
    audit = {f.name for f in p.features if f.audit_only}
    out: list[Unit] = []
    datasets = list(dict.fromkeys(i.dataset for i in approval.items))
    for ds in datasets:
        items = [i for i in approval.items if i.dataset == ds]
        analysed = [(i.dataset, i.column) for i in items if "analysis" in i.uses]
        # the base register defines the children: only its analysed items go; any other
        # dataset goes with every column that reads it, its presence included (在籍 …)
        cols = (
            _reads(p, analysed)
            if ds == base
            else [c for c in p.columns if c not in TOKENS and any(d == ds for d, _ in p.lineage[c])]
        )
        if ds == scoring.LABEL_DATASET:
            out.append(Unit(DATASET, ds, None, tuple(cols), LABEL))
        elif cols:
            out.append(Unit(DATASET, ds, None, tuple(cols), note=BASE_NOTE if ds == base else ""))
        for i in items:
            if "analysis" not in i.uses:
                out.append(Unit(ITEM, ds, i.header, (), LINK_ONLY))
                continue
            cols = _reads(p, [(ds, i.column)])
            verdict = None
            if not cols:
                read_by_audit = any((ds, i.column) in p.lineage.get(a, ()) for a in audit)
                verdict = AUDIT if read_by_audit else UNREAD
            elif set(cols) <= labels:
                verdict = LABEL
            note = BASE_NOTE if ds == base and i.column in p.spec.base_inputs else ""
            out.append(Unit(ITEM, ds, i.header, tuple(cols), verdict, note))
    return out


def indicators_without(
    indicators: tuple[Indicator, ...], types: dict[str, str], removed: Iterable[str], asof_sql: str
) -> set[str]:
    """Names of the indicators that no longer compile once `removed` leave the view of
    `types` (column -> DuckDB type): as analysis/risk_scores omits them."""
    removed = set(removed) & set(types)
    if not removed:
        return set()
    con = duckdb.connect()
    try:
        ddl = ", ".join(f'"{c}" {t}' for c, t in types.items() if c not in removed)
        con.execute(f"CREATE TABLE v ({ddl})")
        gone = set()
        for i in indicators:
            try:
                con.execute(compile_sql((i,), "v", asof_sql) + " LIMIT 0").fetchall()
            except duckdb.BinderException:
                gone.add(i.name)
        return gone
    finally:
        con.close()


def precision_at_k(score: np.ndarray, y: np.ndarray, weight: np.ndarray, k: int) -> float:
    """Share of positives among the k highest scores, counting a sampled negative for the
    negatives it stands for (its weight), so k is k children of the whole population."""
    order = np.argsort(-score, kind="stable")
    cum = np.cumsum(weight[order])
    top = order[: max(1, int(np.searchsorted(cum, k, side="right")))]
    return float((weight[top] * y[top]).sum() / weight[top].sum())


def cross_validate(
    x: np.ndarray, y: np.ndarray, weight: np.ndarray, k: int, seed: int, folds: int = FOLDS
) -> tuple[float, float]:
    """(AUC, precision@k) of out-of-fold log-odds, with the score's model settings."""
    cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
    # one OpenMP thread: the fits are small and many, and on a busy 2-core machine the
    # threads' barriers made one CV 80× slower (156 s instead of 1.9 s, same figures)
    with threadpool_limits(1, user_api="openmp"):
        oof = cross_val_predict(
            scoring._base(seed),
            x,
            y,
            cv=cv,
            method="decision_function",
            params={"sample_weight": weight},
        )
    return float(roc_auc_score(y, oof, sample_weight=weight)), precision_at_k(oof, y, weight, k)


def ppv(verified: pd.DataFrame | None, labels: set[str]) -> tuple[int, float | None]:
    """(該当 + 非該当, PPV) over verified children listed with one of the indicators
    `labels` (all of them when `labels` is None); PPV only from MIN_OUTCOMES outcomes."""
    if verified is None or verified.empty or not labels:
        return 0, None
    hit = verified["indicators"].map(
        lambda xs: bool(labels.intersection(xs if xs is not None else ()))
    )
    decided = verified.loc[hit & verified["result"].isin([CONFIRMED, NOT_CONFIRMED]), "result"]
    n = len(decided)
    return n, (float((decided == CONFIRMED).mean()) if n >= MIN_OUTCOMES else None)


def verdict(auc_drop: float, precision_drop: float, noise: tuple[float, float]) -> str:
    """削除候補 under both thresholds; 必要 when a drop exceeds its threshold and what a
    column of pure noise moves the figure by (`noise`: AUC, precision); else 保留."""
    if auc_drop < AUC_THRESHOLD and precision_drop < PRECISION_THRESHOLD:
        return DROP
    if auc_drop > max(AUC_THRESHOLD, noise[0]) or precision_drop > max(
        PRECISION_THRESHOLD, noise[1]
    ):
        return NEEDED
    return UNSURE


def item_worth(
    inputs: Inputs, seed: int, verified: pd.DataFrame | None = None, folds: int = FOLDS
) -> pd.DataFrame:
    """The table (SCHEMA): the full model, the noise controls, then per dataset and item.
    `verified`: the center's outcomes (result, indicators as labels), or None."""
    p, registry = inputs.plan, load_registry()
    design, _ = scoring.design(inputs.frame, inputs.features, inputs.indicators, inputs.asof)
    keep, weight = scoring.training_sample(inputs.y, seed)
    x, y = design.matrix[keep], inputs.y[keep]
    k = review_k(len(inputs.frame))
    types = {c: t for c, t in p.types().items() if c in (inputs.shown or p.columns)}
    label_of = {i.name: i.label for i in inputs.indicators}
    done: dict[frozenset[int], tuple[float, float]] = {}  # removed terms -> figures

    def figures(removed_terms: frozenset[int]) -> tuple[float, float]:
        if removed_terms not in done:  # two items read by the same columns: one refit
            cols = [j for j in range(x.shape[1]) if j not in removed_terms]
            done[removed_terms] = cross_validate(x[:, cols], y, weight, k, seed, folds)
        return done[removed_terms]

    def blank(level: str, item: str | None, verdict_: str | None) -> dict:
        return {
            "level": level,
            "department": None,
            "dataset": None,
            "item": item,
            "columns_removed": [],
            "indicators_removed": [],
            "auc": None,
            "auc_drop": None,
            "precision_at_k": None,
            "precision_drop": None,
            "verified_outcomes": 0,
            "ppv_verified": None,
            "verdict": verdict_,
            "harm_rank": None,
            "note": None,
        }

    full_auc, full_precision = figures(frozenset())
    rows = [
        blank(FULL, None, BASELINE)
        | {
            "auc": full_auc,
            "auc_drop": 0.0,
            "precision_at_k": full_precision,
            "precision_drop": 0.0,
        }
    ]
    rows[0]["verified_outcomes"], rows[0]["ppv_verified"] = ppv(verified, set(label_of.values()))
    # the noise floor: the same refit with one column that carries no information added
    for n in range(1, NOISE_DRAWS + 1):
        noise = np.random.default_rng([seed, n]).random(len(y))
        auc, precision = cross_validate(np.c_[x, noise], y, weight, k, seed, folds)
        rows.append(
            blank(CONTROL, f"乱数の列 {n}", CONTROL_VERDICT)
            | {
                "auc": auc,
                "auc_drop": full_auc - auc,
                "precision_at_k": precision,
                "precision_drop": full_precision - precision,
                "note": CONTROL_NOTE,
            }
        )
    floor = (
        max(abs(r["auc_drop"]) for r in rows[1:]),
        max(abs(r["precision_drop"]) for r in rows[1:]),
    )
    for u in units(p, inputs.approval):
        row = blank(u.level, u.item, u.verdict) | {
            "columns_removed": list(u.columns),
            "note": u.note or None,
        }
        ds = registry.datasets[u.dataset]
        row |= {"department": ds.department.label, "dataset": ds.label, "item": u.item or WHOLE}
        if u.verdict is None:
            gone = indicators_without(inputs.indicators, types, u.columns, inputs.asof_sql)
            removed = frozenset(
                j
                for j, t in enumerate(design.terms)
                if t.name in u.columns or t.name.removeprefix("ind_") in gone
            )
            auc, precision = figures(removed)
            labels = {label_of[n] for n in gone}
            row |= {
                "indicators_removed": sorted(labels),
                "auc": auc,
                "auc_drop": full_auc - auc,
                "precision_at_k": precision,
                "precision_drop": full_precision - precision,
                "verdict": verdict(full_auc - auc, full_precision - precision, floor),
            }
            row["verified_outcomes"], row["ppv_verified"] = ppv(verified, labels)
            if u.note:  # the register's items that define the children: never dropped
                row["verdict"] = NEEDED
        rows.append(row)
    out = pd.DataFrame(rows, columns=list(SCHEMA))
    for level in (DATASET, ITEM):  # 1 = its removal hurts most
        refit = (out["level"] == level) & out["auc"].notna()
        order = out[refit].sort_values(
            ["auc_drop", "precision_drop"], ascending=False, kind="stable"
        )
        out.loc[order.index, "harm_rank"] = range(1, len(order) + 1)
    out["harm_rank"] = out["harm_rank"].astype("Int32")
    out["verified_outcomes"] = out["verified_outcomes"].astype("int32")
    return out


def noise_floor(table: pd.DataFrame) -> tuple[float, float]:
    """How far a column of pure noise moved AUC and precision@k (the largest control)."""
    control = table[table["level"] == CONTROL]
    return float(control["auc_drop"].abs().max()), float(control["precision_drop"].abs().max())


def summary(table: pd.DataFrame) -> dict[str, int]:
    """Items per verdict (the council's three lists and the rest), aggregates only."""
    items = table[table["level"] == ITEM]
    return {v: int((items["verdict"] == v).sum()) for v in VERDICTS}


def listed(table: pd.DataFrame, verdict_: str) -> list[str]:
    """「データセット: 項目」 of the items with one verdict, in the approval list's order."""
    items = table[(table["level"] == ITEM) & (table["verdict"] == verdict_)]
    return [f"{r.dataset}: {r.item}" for r in items.itertuples()]


def hurts_most(table: pd.DataFrame, n: int = 10) -> str:
    """The n items whose removal hurts most, as a Markdown table."""
    items = table[(table["level"] == ITEM) & table["harm_rank"].notna()].sort_values("harm_rank")
    lines = ["| 順位 | 項目 | AUC の低下 | 適合率の低下 | 判定 |", "|---|---|---|---|---|"]
    lines += [
        f"| {r.harm_rank} | {r.dataset}: {r.item} | {r.auc_drop:.4f} | {r.precision_drop:.4f} | {r.verdict} |"
        for r in items.head(n).itertuples()
    ]
    return "\n".join(lines)

"""The committee's lineage diagram, drawn from the registry, the approval list and the
linked table's plan: the files the code runs on, so the picture cannot drift from it.

departments → department stores → (linkage) → linked table → risk scores → review list
→ committee report. Columns holding 要配慮 data are drawn down to the column: each
approved sensitive source column, and each linked-table column built from one.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")  # no display in a closed server room
import matplotlib.pyplot as plt
import matplotlib_fontja  # noqa: F401  - bundles IPAexGothic: Japanese labels, offline
from matplotlib.axes import Axes

from kodomo_assets.lib.policy.approval import MonthApproval
from kodomo_assets.lib.registry import Registry
from kodomo_assets.lib.scoring.linked_table import Plan


@dataclass
class Diagram:
    png: bytes
    labels: list[str]  # every text drawn, for tests and the report's alt text


def _box(
    ax: Axes, x: float, y: float, text: str, color: str, width: float = 2.2, size: int = 8
) -> None:
    ax.text(
        x,
        y,
        text,
        ha="center",
        va="center",
        fontsize=size,
        bbox={"boxstyle": "round,pad=0.3", "fc": color, "ec": "#555555", "lw": 0.6},
        wrap=False,
        clip_on=False,
    )


def _edge(
    ax: Axes,
    a: tuple[float, float],
    b: tuple[float, float],
    color: str = "#888888",
    lw: float = 0.6,
) -> None:
    ax.annotate(
        "",
        xy=b,
        xytext=a,
        arrowprops={"arrowstyle": "->", "color": color, "lw": lw, "shrinkA": 18, "shrinkB": 18},
    )


def draw(registry: Registry, approval: MonthApproval, plan: Plan) -> Diagram:
    sensitive = {(i.dataset, i.column): i.header for i in approval.items if i.sensitive}
    labels: list[str] = []
    rows: list[tuple[str, str, str | None]] = []  # (dataset, label, sensitive column)
    for ds in registry.datasets.values():
        rows.append((ds.name, f"{ds.label}（{ds.file}）", None))
        rows += [
            (ds.name, f"要配慮: {sensitive[(ds.name, c.name)]}", c.name)
            for c in ds.columns
            if (ds.name, c.name) in sensitive
        ]
    derived = [n for n in plan.columns if any(k in sensitive for k in plan.lineage[n])]
    height = max(len(rows), len(derived)) * 0.32 + 1.5
    fig, ax = plt.subplots(figsize=(16, height))
    ax.set_xlim(0, 16)
    ax.set_ylim(-1, max(len(rows), len(derived)) + 1)
    ax.axis("off")
    top = max(len(rows), len(derived))

    def y(i: int, n: int) -> float:
        return top - i * top / max(n, 1)

    dept_y: dict[str, float] = {}
    ds_y: dict[str, float] = {}
    col_y: dict[tuple[str, str], float] = {}
    for i, (ds_name, text, col) in enumerate(rows):
        yy = y(i, len(rows))
        if col is None:
            ds = registry.datasets[ds_name]
            _box(ax, 4.4, yy, text, "#dbe9f6")
            ds_y[ds_name] = yy
            dept_y.setdefault(ds.department.label, yy)
            _edge(ax, (1.3, dept_y[ds.department.label]), (4.4, yy))
        else:
            _box(ax, 4.9, yy, text, "#fde2cf", size=7)
            col_y[(ds_name, col)] = yy
        labels.append(text)
    for name, yy in dept_y.items():
        _box(ax, 1.3, yy, name, "#eeeeee", size=8)
        labels.append(name)
    mid = top / 2
    link_y = (ds_y["jumin"] + ds_y["gakurei"]) / 2 if {"jumin", "gakurei"} <= set(ds_y) else mid
    _box(ax, 7.3, link_y, "連携領域: 児童生徒の連携\n（照合のみ・宛名番号）", "#e8e0f4")
    for ds_name in ("jumin", "gakurei"):
        if ds_name in ds_y:
            _edge(ax, (4.4, ds_y[ds_name]), (7.3, link_y))
    table = f"分析領域: 連携テーブル\n（仮名・承認列 {len(plan.columns)} 列）"
    _box(ax, 9.6, mid, table, "#d5f0dd", size=9)
    _edge(ax, (7.3, link_y), (9.6, mid))
    for yy in ds_y.values():
        _edge(ax, (4.4, yy), (9.6, mid), color="#bbbbbb", lw=0.4)
    for j, name in enumerate(derived):
        yy = y(j, len(derived))
        _box(ax, 11.8, yy, f"{name}", "#fde2cf", size=7)
        labels.append(name)
        for src in plan.lineage[name]:
            if src in col_y:
                _edge(ax, (4.9, col_y[src]), (11.8, yy), color="#d9822b", lw=0.5)
    for x, text, color in (
        (13.3, "分析領域:\nリスクスコア", "#d5f0dd"),
        (14.5, "センター領域:\n確認リスト", "#f6d5d5"),
        (15.5, "委員会\n報告書", "#eeeeee"),
    ):
        _box(ax, x, mid - 2, text, color, size=8)
        labels.append(text)
    _edge(ax, (9.6, mid), (13.3, mid - 2))
    _edge(ax, (13.3, mid - 2), (14.5, mid - 2))
    _edge(ax, (14.5, mid - 2), (15.5, mid - 2))
    labels.append(table)
    ax.set_title(
        f"データの流れ（{approval.month}）: 部署 → 部署別ストア → 連携テーブル → スコア → "
        "確認リスト → 報告書。橙は要配慮個人情報の列",
        fontsize=10,
    )
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return Diagram(png=buf.getvalue(), labels=labels)

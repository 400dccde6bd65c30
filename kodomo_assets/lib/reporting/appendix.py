"""The report's appendices: A, the approval list as the council approved it (別紙 個人情報項目);
B, the data's flow into the linked table and each column's lineage."""

from __future__ import annotations

from kodomo_assets.lib.policy.approval import USES, Approval, MonthApproval
from kodomo_assets.lib.registry import load_registry
from kodomo_assets.lib.reporting import report as R
from kodomo_assets.lib.reporting.lineage_diagram import draw
from kodomo_assets.lib.scoring.linked_table import describe, load_spec, plan

USE_NAMES = {code: name for name, code in USES.items()}  # 利用区分 as the list writes it
APPROVAL_HEADER = [
    "番号",
    "保有課",
    "情報名",
    "項目",
    "要配慮",
    "目的外利用",
    "提供",
    "利用区分",
    "利用目的",
    "根拠",
    "承認期間",
    "保存期間",
    "今月",
]


def _mark(holds: bool) -> str:
    return "○" if holds else ""


def approval_section(policy: Approval, month: str) -> list:
    rows = [
        [
            str(i.no),
            i.department,
            i.info,
            i.header,
            _mark(i.sensitive),
            _mark(i.out_of_purpose),
            _mark(i.provision),
            "・".join(USE_NAMES[u] for u in sorted(i.uses)),
            i.purpose,
            i.period.basis if i.period else "",
            f"{i.period.start}〜{i.period.end}" if i.period else "",
            f"{i.retention_months}か月" if i.retention_months is not None else "",
            _mark(bool(i.period and i.period.covers(month))),
        ]
        for i in policy.items
    ]
    return [R.Table("別紙 個人情報項目（data/policy/approval.csv）", APPROVAL_HEADER, rows)]


def lineage_section(approval: MonthApproval) -> list:
    registry = load_registry()
    p = plan(load_spec(), approval)
    diagram = draw(registry, approval, p)
    per_ds = []
    for ds in registry.datasets.values():
        used = sorted({n for n in p.columns if any(d == ds.name for d, _ in p.lineage[n])})
        sensitive = [i.header for i in approval.items if i.dataset == ds.name and i.sensitive]
        per_ds.append(
            [ds.department.label, ds.label, ds.file, str(len(used)), "、".join(sensitive) or "—"]
        )
    text = describe(p)
    return [
        R.image(R.png_bytes(diagram.png), "データの流れ: " + "、".join(diagram.labels)),
        R.Table(
            "データセットごとの連携（連携テーブルの列数と要配慮の承認項目）",
            ["保有課", "情報名", "ファイル", "連携テーブルの列", "要配慮の項目"],
            per_ds,
        ),
        R.Table(
            "連携テーブルの列と元の項目（列の系譜）",
            ["列", "内容と元の項目"],
            [[n, text[n]] for n in p.columns],
        ),
    ]

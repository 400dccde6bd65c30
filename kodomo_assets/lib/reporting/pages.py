"""The council's pages of the report after the first: 1 the verification evidence, 3 課題
and 4 必要最小限, from what the month's records say (Month, gathered from the Dagster instance
in defs/committee/pages.py). The tables themselves are built in council.py."""

from __future__ import annotations

from dataclasses import dataclass, field

import duckdb

from kodomo_assets.lib.center.feedback import BANDS
from kodomo_assets.lib.platform.storage import KodomoStorage
from kodomo_assets.lib.reporting import council as C
from kodomo_assets.lib.reporting import report as R
from kodomo_assets.lib.scoring.indicators import load_indicators

FAIRNESS_BOUND = 0.1  # the audit's bound on the equalized-odds gap (lib/scoring/evaluation.py)


@dataclass
class Month:
    """What the month's records say, gathered once for every page."""

    month: str
    sources: dict[str, dict]  # dataset label -> source asset metadata
    inbox: dict
    link: dict
    review: dict
    listed: dict[str, int]  # list month -> new suggestions, for every month with a list
    refusals: dict[str, int]
    exports: list[dict]
    late: list[str]
    ranking: str = ""  # the list's order this month (lib/ranking's label), "" before scoring
    fired: dict[str, int] = field(default_factory=dict)  # children per indicator (the scores)
    planted: int | None = None  # planted needs the center does not know (demo truth only)
    runs: list[list[str]] = field(default_factory=list)  # the month's runs, for section 8
    latest: list[list[str]] = field(default_factory=list)  # each asset's latest materialization


def problems(
    storage: KodomoStorage,
    facts: Month,
    gaps: list[tuple[str, float | None, bool]],
    silent: list[str],
) -> tuple[C.MonthProblems, list[str]]:
    """課題 from what the pipeline saw, then the steward's notes (refusals by line)."""
    out = C.MonthProblems()
    C.quarantine_problems(out, facts.sources)
    missing = facts.inbox.get("missing") or []
    if missing:
        out.add("受信", f"未着のファイル {len(missing)} 件: {'、'.join(missing)}", weight=1.0)
    late = [f for f in facts.late if f not in missing]
    if late:
        out.add(
            "受信",
            f"遅配: {'、'.join(late)}（先の取込のときには未着で、後から届いた）",
            weight=0.45,
        )
    link = facts.link
    if link:
        out.add(
            "連携",
            f"学齢簿の児童生徒 {R.small(link.get('pupils'))} 人のうち未連携 {R.small(link.get('unlinked'))} 人、"
            f"照合の確認待ち {R.small(link.get('steward_review'))} 件",
            weight=0.5 if (link.get("unlinked") or 0) > 0.01 * (link.get("pupils") or 0) else 0.05,
        )
    for name, n in facts.refusals.items():
        out.add("ゲート", f"{name} が失敗（{n} 回）。その表は書き出していない", weight=0.9)
    over = [(label, gap, ok) for label, gap, ok in gaps if gap is not None and gap > FAIRNESS_BOUND]
    for label, gap, _ in (g for g in over if g[2]):
        out.add(
            "公平性",
            f"{label}: 均等化オッズの差 {gap:.3f} が目安 {FAIRNESS_BOUND} を超える",
            weight=0.8,
        )
    hidden = [label for label, _, ok in over if not ok]
    if hidden:
        out.add(
            "公平性",
            f"{'、'.join(hidden)}: 均等化オッズの差が目安 {FAIRNESS_BOUND} を超えるが、群が小さく"
            "値は示せない（偶然の差かどうかは 6 の説明）",
            weight=0.3,
        )
    for sentence in silent:
        out.add("指標", sentence, weight=0.35)
    notes, refused = C.read_notes(storage.home_path / "committee_notes" / f"{facts.month}.csv")
    for kind, text, action in notes:
        out.add(f"{kind}（担当者）", text + (f" — 対応: {action}" if action else ""), weight=0.6)
    return out, refused


def verification_pages(con: duckdb.DuckDBPyConnection, facts: Month) -> list:
    labels = [i.label for i in load_indicators()]
    months = (
        [C.by_month(con, facts.listed)]
        if facts.listed
        else [
            R.paragraph(
                "確認リストの実体化の記録（Dagster のインスタンス）がないため、基準月ごとの確認状況は示さない。"
            )
        ]
    )
    return [*months, *C.ppv_tables(con, labels, [b[0] for b in BANDS])]


def worth_pages(storage: KodomoStorage, month: str) -> list:
    """必要最小限: the newest item-worth review up to this month (its own job, quarterly)."""
    done = [
        m
        for m in storage.months_on_disk()
        if m <= month and storage.zone_store("analysis", m, "item_worth").exists()
    ]
    if not done:
        return [
            R.paragraph(
                "データ項目の効き目の確認（item_worth_review ジョブ。四半期ごと、または委員会の求めに"
                "応じて実行）は、まだ実行されていない。"
            )
        ]
    with storage.open(storage.zone_store("analysis", done[-1], "item_worth")) as con:
        frame = con.execute("SELECT * FROM item_worth").df()
    return C.worth_tables(frame, done[-1])

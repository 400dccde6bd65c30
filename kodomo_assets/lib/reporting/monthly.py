"""The committee's monthly report put together: its sections in the council's order, from the
month's stores and what the Dagster instance recorded (pages.Month, read in defs/committee)."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import duckdb

from kodomo_assets.lib.center.export import TOKYO
from kodomo_assets.lib.platform.storage import KodomoStorage
from kodomo_assets.lib.reporting import council as C
from kodomo_assets.lib.reporting import pages as P
from kodomo_assets.lib.reporting import report as R
from kodomo_assets.lib.reporting.appendix import approval_section, lineage_section
from kodomo_assets.lib.reporting.figures import figures_section
from kodomo_assets.lib.reporting.first_page import first_page
from kodomo_assets.lib.reporting.history import history_section
from kodomo_assets.lib.reporting.model_pages import model_section
from kodomo_assets.lib.reporting.trends import indicator_trend, trend_pages
from kodomo_assets.lib.scoring.evaluation_store import FAIRNESS_TABLE
from kodomo_assets.lib.scoring.indicators import load_indicators


def monthly_report(
    storage: KodomoStorage, facts: P.Month, records: list[tuple[str, int | None, int]]
) -> R.Report:
    """`records`: each chained record's name, first broken line (None: it verifies) and lines."""
    month = facts.month
    # never refused: an aggregate report may be re-rendered after the period; it states
    # whether the data month and today's date are inside it
    approval = storage.approval()
    standing = approval.standing(month, storage.today())
    figures_parts, figures = figures_section(
        storage, month, facts.sources, facts.link, facts.review.get("k")
    )
    with storage.connect() as con:
        verified_months = C.attach_verified(storage, con, month)
        verified = C.checked_totals(con)
        verification = P.verification_pages(con, facts)
        gaps, by_group = _fairness(storage, con, month)
        trends, silent = trend_pages(storage, con, month, verified_months)
    issues, refused_notes = P.problems(storage, facts, gaps, silent)
    fired = {i.label: 0 for i in load_indicators()} | facts.fired
    main = first_page(
        storage,
        facts,
        approval,
        standing,
        verified,
        fired,
        issues.main(),
        figures.get("n_children"),
    )
    return R.Report(
        month=month,
        generated_at=datetime.now(TOKYO).isoformat(timespec="seconds") + "（日本時間）",
        standing=R.standing_lines(standing),
        demo=approval.demo,
        sections=[
            ("要点（審議会の皆さまへ）", main),
            ("1. 確認の結果（分析結果の検証）", [*verification, *by_group]),
            (
                "2. 傾向分析",
                trends or [R.paragraph("確認結果がまだないため、重なりの分析はない。")],
            ),
            ("3. 課題", [issues.table(), *(R.paragraph(t) for t in refused_notes)]),
            ("4. データ項目の効き目（必要最小限）", P.worth_pages(storage, month)),
            ("5. 今月の数字", figures_parts),
            (
                "6. モデルカード・評価・公平性",
                model_section(storage, month, figures, facts.planted),
            ),
            ("7. 指標の推移", indicator_trend(storage)),
            (
                "8. 実行と閲覧の記録",
                history_section(storage, month, facts.runs, facts.latest, records),
            ),
            ("付録A 承認リスト（別紙 個人情報項目）", approval_section(approval, month)),
            ("付録B データの流れ（列の系譜）", lineage_section(approval.as_recorded(month))),
        ],
    )


def _fairness(
    storage: KodomoStorage, con: duckdb.DuckDBPyConnection, month: str
) -> tuple[list[tuple[str, float | None, bool]], list[R.Table]]:
    """The fairness audit's gaps (for 課題) and its verified outcomes by group (section 1)."""
    fair = storage.zone_store("analysis", month, FAIRNESS_TABLE)
    if not fair.exists():
        return [], []
    storage.attach(con, "fa", fair)
    gaps = con.execute("SELECT label, equalized_odds_gap, disclosable FROM fa.gaps").fetchall()
    groups = con.execute(
        'SELECT attribute, "group", children, listed, checked, confirmed FROM fa.verified_by_group'
    ).fetchall()
    return gaps, [C.verified_groups_table(groups)]


def write_report(path: Path, html: str) -> None:
    """Written under a temporary name and renamed: a reader never sees half a report."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(html, encoding="utf-8")
    os.replace(tmp, path)

"""Section 5 of the report, 今月の数字: rows received and kept per export, the pupils' linkage,
children per indicator and per district, from the sources' and the linkage's metadata (as
the Dagster instance recorded it) and the month's analysis zone."""

from __future__ import annotations

import duckdb
import numpy as np

from kodomo_assets.lib.platform.rows import one_row
from kodomo_assets.lib.platform.storage import KodomoStorage
from kodomo_assets.lib.reporting import report as R
from kodomo_assets.lib.reporting.suppression import share_text, visible
from kodomo_assets.lib.scoring.evaluation_store import FAIRNESS_TABLE
from kodomo_assets.lib.scoring.indicators import load_indicators
from kodomo_assets.lib.scoring.risk_scores import TABLE as SCORES

LINK_COLUMNS = [
    "宛名番号で連携",
    "宛名番号を照合で確認して連携",
    "確率的照合で連携",
    "職員の確認で連携",
    "未連携（確認待ち含む）",
]


def figures_section(
    storage: KodomoStorage, month: str, sources: dict[str, dict], link: dict, k: int | None
) -> tuple[list, dict]:
    """The section's tables, and for the other sections the month's scores, children and k
    (empty without scores). `sources`: each export's metadata by its label; `k`: the review
    list's own k as its materialization recorded it (None before the list exists: no
    column of listed children then, rather than a k derived here that may not be the list's)."""
    parts: list = []
    if sources:
        grid = [
            [m["dagster/row_count"], m["quarantined"], m["duplicates_removed"]]
            for m in sources.values()
        ]
        t = R.suppressed_grid(list(sources), ["保存", "隔離", "重複除去"], np.array(grid))
        t.caption, t.header[-1] = "受信と取込（行数。受信 = 保存 + 隔離 + 重複除去）", "受信"
        parts.append(t)
    if link:
        parts.append(_link_table(link))
    scores = storage.zone_store("analysis", month, SCORES)
    figures: dict = {}
    if scores.exists():
        with storage.connect() as con:
            storage.attach(con, "s", scores)
            (n_children,) = one_row(con.execute(f"SELECT count(*) FROM s.{SCORES}"))
            listed = (
                "NULL::BOOLEAN"
                if k is None
                else f"""(NOT s.center_known AND row_number() OVER (PARTITION BY s.center_known
                 ORDER BY s.rank) <= {int(k)})"""
            )
            con.execute(f"CREATE TEMP TABLE t AS SELECT s.*, {listed} AS listed FROM s.{SCORES} s")
            parts.append(_indicator_table(con, with_list=k is not None))
            # districts never sit in the analysis table: the fairness audit's aggregates
            audit = storage.zone_store("analysis", month, FAIRNESS_TABLE)
            districts = []
            if audit.exists():
                storage.attach(con, "fa", audit)
                districts = con.execute(
                    "SELECT district_code, children, flagged, listed "
                    "FROM fa.district_counts ORDER BY 1"
                ).fetchall()
            if districts:
                parts.append(_district_table(districts))
            figures["scores"] = con.execute("SELECT score FROM t").fetchnumpy()["score"]
            figures["n_children"], figures["k"] = n_children, k
    return parts, figures


def _link_table(link: dict) -> R.Table:
    checked = link.get("linked_by_atena_no_checked") or 0  # absent before issue 15
    decided = link.get("linked_by_decision") or 0  # absent before the link-review workflow
    linked = link["linked_by_atena_no"] + checked + link["linked_probabilistically"] + decided
    counts = [
        link["linked_by_atena_no"],
        checked,
        link["linked_probabilistically"],
        decided,
        link["unlinked"],
    ]
    t = R.suppressed_grid(["児童生徒"], LINK_COLUMNS, np.array([counts]))
    t.caption = "学齢簿と住民基本台帳の連携"
    # a rate is shown only when its numerator and its rest are both 0 or ≥ 10
    pairs = link.get("holdout_pairs") or 0
    recall, precision = link.get("holdout_recall"), link.get("holdout_precision")
    correct = round((recall or 0) * pairs)
    predicted = round(correct / precision) if precision else 0
    t.note = (
        f"連携率 {share_text(linked, link['pupils'])}。確認待ち {R.small(link['steward_review'])} 件。"
        f"既知の宛名番号の一部を伏せた検証: 適合率 {share_text(correct, predicted, '{:.3f}')}、"
        f"再現率 {share_text(correct, pairs, '{:.3f}')}、双子の取り違え {R.small(link['twins_cross_linked'])} 件"
        "（率は、分子とその残りがともに0か10以上のときだけ示す）。"
    )
    return t


def _indicator_table(con: duckdb.DuckDBPyConnection, with_list: bool) -> R.Table:
    """Children per indicator, all and listed, from TEMP TABLE t (the scores and `listed`;
    without a review list the listed column says —)."""
    rows = []
    for i in load_indicators():
        fired, listed = one_row(
            con.execute(
                "SELECT count(*) FILTER (list_contains(indicators, ?)), "
                "count(*) FILTER (listed AND list_contains(indicators, ?)) FROM t",
                [i.label, i.label],
            )
        )
        # 該当 − うち掲載 is a count too: both parts 0 or ≥ 10, or the part is hidden
        shown = R.small(listed) if visible(listed, fired) else R.MASK
        rows.append([i.label, R.small(fired), shown if with_list else R.small(None)])
    return R.Table(
        "指標ごとの該当児童数（全児童／確認リスト掲載）",
        ["指標", "該当", "うち掲載"],
        rows,
        counts={1, 2},
        note="一人が複数の指標に該当しうるため合計は示さない。",
    )


def _district_table(districts: list[tuple[str, int, int, int]]) -> R.Table:
    labels, children = [d[0] for d in districts], [d[1] for d in districts]
    flagged, listed = [d[2] for d in districts], [d[3] for d in districts]
    cols = [R.suppressed_column(labels, children)] + [
        R.suppressed_column(labels, counts, wholes=children) for counts in (flagged, listed)
    ]
    return R.Table(
        "町丁目ごとの児童数・指標該当・確認リスト掲載（新規の示唆）",
        ["町丁目コード", "児童", "指標に該当", "確認リスト掲載"],
        [[a[0], a[1], b[1], c[1]] for a, b, c in zip(*cols, strict=True)],
        counts={1, 2, 3},
        note="各列で1〜9は x、合計から逆算できないよう二次秘匿。児童数との差が1〜9になる値も x。",
    )

"""lib/reporting/report.py on its own, without a month of data: suppressed columns and grids,
lone counts, the approval's two sentences, and the rendered page (self-contained, escaped,
counts of 1–9 masked in its text, the demo's warning only in the demo, an embedded font
cut down to the page's characters). The whole report of a month is tested in
defs/test_committee_report.py."""

from __future__ import annotations

import base64
import io
import re
from datetime import date

import numpy as np
import pytest
from fontTools.ttLib import TTFont

from kodomo_assets.lib.policy.approval import Period, Standing
from kodomo_assets.lib.reporting.report import (
    Report,
    Table,
    count_text,
    embedded_font,
    paragraph,
    paragraph_list,
    render,
    small,
    standing_lines,
    suppressed_column,
    suppressed_grid,
)
from kodomo_assets.lib.reporting.suppression import recoverable, with_totals

FY2022 = Period(date(2022, 4, 1), date(2023, 3, 31), "条例第13条")
LATER = Period(date(2022, 4, 1), date(2031, 3, 31), "デモ用")


def test_a_count_is_shown_with_separators_or_masked() -> None:
    assert count_text(1234567, hidden=False) == "1,234,567"
    assert count_text(0, hidden=False) == "0"
    assert count_text(1234567, hidden=True) == "x"


@pytest.mark.parametrize(
    ("value", "shown"),
    [(None, "—"), (0, "0"), (1, "x"), (9, "x"), (10, "10"), (12345, "12,345")],
)
def test_a_lone_count_hides_1_to_9_and_shows_zero(value: int | None, shown: str) -> None:
    assert small(value) == shown


def test_a_column_hides_a_small_count_and_a_second_one_beside_it() -> None:
    # 5 alone would be 55 - 20 - 30: the smallest other count goes too; the total stays
    assert suppressed_column(["A", "B", "C"], [5, 20, 30]) == [
        ["A", "x"],
        ["B", "x"],
        ["C", "30"],
        ["合計", "55"],
    ]
    assert suppressed_column(["A", "B"], [0, 20], total_label="計") == [
        ["A", "0"],
        ["B", "20"],
        ["計", "20"],
    ]


def test_a_part_whose_rest_of_the_whole_is_small_is_hidden_too() -> None:
    # A: 20 of 25 children, so 5 are not counted: shown, 25 - 20 would give them back
    assert suppressed_column(["A", "B"], [20, 30], wholes=[25, 100]) == [
        ["A", "x"],
        ["B", "x"],
        ["合計", "50"],
    ]
    assert suppressed_column(["A", "B"], [20, 30], wholes=[40, 100]) == [
        ["A", "20"],
        ["B", "30"],
        ["合計", "50"],
    ]


def test_a_grid_leaves_no_line_with_one_hidden_cell() -> None:
    values = np.array([[3, 20], [15, 40]])
    table = suppressed_grid(["r1", "r2"], ["c1", "c2"], values)
    assert table.header == ["", "c1", "c2", "合計"]
    assert table.counts == {1, 2, 3}
    assert table.rows == [
        ["r1", "x", "x", "23"],
        ["r2", "x", "x", "55"],
        ["合計", "18", "60", "78"],
    ]
    hidden = np.array([[c == "x" for c in row[1:]] for row in table.rows])
    assert not recoverable(with_totals(values), hidden)


def test_the_standing_when_both_facts_hold() -> None:
    lines = standing_lines(Standing("2022-10", date(2022, 11, 2), (FY2022,), (FY2022,)))
    label = "2022-04-01〜2023-03-31（根拠: 条例第13条）"
    assert lines == [
        (f"基準月 2022-10 は承認期間内（{label}）", True),
        (f"処理日 2022-11-02 は承認期間内（{label}）", True),
    ]


def test_the_standing_after_the_period_names_the_ended_period_and_what_stops() -> None:
    (month, month_holds), (today, today_holds) = standing_lines(
        Standing("2022-10", date(2026, 11, 2), (FY2022,), ())
    )
    assert month_holds and not today_holds
    assert today == (
        "処理日 2026-11-02 は承認期間外（2022-04-01〜2023-03-31（根拠: 条例第13条） は終了）。"
        "この月の処理・書き出し・確認結果の取込は行わない（集計の報告書の再作成のみ）"
    )


def test_the_standing_names_only_the_period_that_covers_both() -> None:
    """Two periods cover the month; only the later one covers the date of processing."""
    lines = standing_lines(Standing("2022-10", date(2026, 11, 2), (FY2022, LATER), (LATER,)))
    assert lines[1] == (f"処理日 2026-11-02 は承認期間内（{LATER.label()}）", True)
    assert "条例第13条" in lines[0][0] and "条例第13条" not in lines[1][0]


def test_a_date_in_a_period_that_misses_the_month_does_not_hold() -> None:
    """One period must cover both: today inside FY2022 does not open a month outside it."""
    lines = standing_lines(Standing("2023-10", date(2022, 11, 2), (), (FY2022,)))
    assert lines == [
        ("基準月 2023-10 はどの承認期間にも含まれない", False),
        (
            "処理日 2022-11-02 は承認期間外。"
            "この月の処理・書き出し・確認結果の取込は行わない（集計の報告書の再作成のみ）",
            False,
        ),
    ]


def page(demo: bool = False) -> str:
    table = Table(
        "表<1>",
        ["区分", "件数", "備考"],
        [["今月 3 件", "3", "対象 5 人"], ["計", "1,234", "x"]],
        counts={1},
        note="注 2 世帯",
    )
    report = Report(
        "2022-10",
        "2022-11-02 10:00",
        [("基準月は期間内", True), ("処理日は期間外", False)],
        [("見出し&", [table, paragraph("段落 4 件 <b>太字</b>"), paragraph_list(["結論 7 人"])])],
        demo=demo,
    )
    return render(report)


def without_font(html: str) -> str:
    return re.sub(r"data:font/ttf;base64,[A-Za-z0-9+/=]+", "FONT", html)


def test_the_page_is_escaped_and_masks_small_counts_in_its_text() -> None:
    html = without_font(page())
    assert "<caption>表&lt;1&gt;</caption>" in html and "<h2>見出し&amp;</h2>" in html
    assert "<b>" not in html and "段落 x 件 &lt;b&gt;太字&lt;/b&gt;" in html
    # text cells, notes, paragraphs and conclusions: "3 件", "5 人", "2 世帯" become x
    assert "<td>今月 x 件</td>" in html and "<td>対象 x 人</td>" in html
    assert '<p class="note">注 x 世帯</p>' in html and "<li>結論 x 人</li>" in html
    # count columns carry class "n" and are suppressed by whoever built them (count_text)
    assert '<td class="n">3</td>' in html and '<td class="n">1,234</td>' in html
    assert html.count('class="n"') == 2
    assert '<li class="ok">基準月は期間内</li><li class="ng">処理日は期間外</li>' in html


def test_the_page_is_self_contained() -> None:
    html = page()
    assert not re.search(r"(src|href)=\"(?!data:)", html)
    assert "http://" not in html and "https://" not in html and "<script" not in html
    assert 'src: url("data:font/ttf;base64,' in html


def test_the_demo_warning_is_shown_only_in_the_demo() -> None:
    warning = "デモ用・架空の承認による処理です"
    assert warning in page(demo=True) and warning not in page(demo=False)


def test_the_embedded_font_holds_the_characters_of_the_text_and_few_others() -> None:
    uri = embedded_font("審議会 月次報告 x")
    font = TTFont(io.BytesIO(base64.b64decode(uri.removeprefix("data:font/ttf;base64,"))))
    cmap = font.getBestCmap()
    assert all(ord(ch) in cmap for ch in "審議会月次報告x")
    assert ord("鬱") not in cmap and ord("Q") not in cmap  # cut down, not the whole font

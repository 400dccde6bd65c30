"""The privacy committee's monthly report: one self-contained HTML file in Japanese.

No external fonts, scripts or network: styles are inline, images are PNG data URIs
rendered with a bundled Japanese font (matplotlib-fontja). Every count from 1 to 9 is shown
as "x", with secondary suppression (lib/reporting/suppression.py); counts carry class "n" so a test
can check them all.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass, field
from typing import Any

import jinja2
import matplotlib
from markupsafe import escape

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import matplotlib_fontja
import numpy as np

from kodomo_assets.lib.policy.approval import Period, Standing
from kodomo_assets.lib.reporting.suppression import (
    MASK,
    THRESHOLD,
    mask_text,
    protect,
    visible,
    with_totals,
)


@dataclass
class Table:
    caption: str
    header: list[str]
    rows: list[list[Any]]  # cells are rendered as text (str() and the template)
    counts: set[int] = field(default_factory=set)  # indexes of count columns (class "n")
    note: str = ""


@dataclass
class Report:
    month: str
    generated_at: str
    # the approval's two facts, each (sentence, holds): the data month against the period,
    # the date of processing against the period
    standing: list[tuple[str, bool]]
    sections: list[tuple[str, list[Table | str]]]  # (heading, tables, paragraphs or images)
    demo: bool = False


def count_text(v: int, hidden: bool) -> str:
    return MASK if hidden else f"{int(v):,}"


def suppressed_column(
    labels: list[str], values: list[int], total_label: str = "合計", wholes: list[int] | None = None
) -> list[list[str]]:
    """One additive column with its total: primary and secondary suppression. `wholes`: each
    row's whole (children of the district) when the column counts a part of it: a part whose
    rest is 1–9 is hidden too, so no subtraction between columns gives a small count."""
    grid = with_totals(np.array(values, dtype="int64").reshape(-1, 1))
    extra = None
    if wholes is not None:
        whole = with_totals(np.array(wholes, dtype="int64").reshape(-1, 1))
        extra = np.array(
            [[not visible(v, w)] * 2 for v, w in zip(grid[:, 0], whole[:, 0], strict=True)]
        )
    hidden = protect(grid, hidden=extra)
    return [
        [label, count_text(grid[i, 0], hidden[i, 0])]
        for i, label in enumerate([*labels, total_label])
    ]


def suppressed_grid(row_labels: list[str], col_labels: list[str], values: np.ndarray) -> Table:
    grid = with_totals(values)
    hidden = protect(grid)
    rows = [
        [label, *(count_text(v, h) for v, h in zip(grid[i], hidden[i], strict=True))]
        for i, label in enumerate([*row_labels, "合計"])
    ]
    return Table("", ["", *col_labels, "合計"], rows, counts=set(range(1, len(col_labels) + 2)))


def small(v: int | None) -> str:
    """A lone count with no total beside it: primary suppression is enough."""
    if v is None:
        return "—"
    return MASK if 0 < v < THRESHOLD else f"{int(v):,}"


def png(fig: plt.Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return png_bytes(buf.getvalue())


def png_bytes(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


def image(src: str, alt: str) -> str:
    return f'<img src="{src}" alt="{escape(alt)}">'


TEMPLATE = jinja2.Template(
    """<!DOCTYPE html>
<html lang="ja"><head><meta charset="utf-8">
<title>個人情報保護運営審議会 月次報告 {{ r.month }}</title>
<style>
{% if font %}@font-face { font-family: "IPAexGothic"; src: url("{{ font }}") format("truetype"); }{% endif %}
body { font-family: "IPAexGothic", sans-serif; margin: 2em; color: #222; max-width: 1200px; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; border-bottom: 2px solid #557; margin-top: 2em; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.85em; }
th, td { border: 1px solid #bbb; padding: 3px 6px; vertical-align: top; }
th { background: #eef; } td.n { text-align: right; }
caption { text-align: left; font-weight: bold; padding: 4px 0; }
.ok { color: #060; font-weight: bold; } .ng { color: #a00; font-weight: bold; }
.note { font-size: 0.85em; color: #444; } ul.lead li { margin: 0.3em 0; font-size: 1.05em; } img { max-width: 100%; border: 1px solid #ddd; }
</style></head><body>
<h1>子ども・家庭データ連携 月次報告（基準月 {{ r.month }}）</h1>
<p>作成: {{ r.generated_at }}。この報告は集計値のみを含み、個人を識別できる情報を含まない。
1〜9 の件数は「x」と表示し、合計から逆算できないよう二次秘匿を行っている（小さなセルの秘匿）。</p>
{% if r.demo %}<p class="ng">デモ用・架空の承認による処理です（合成データ。実在の承認・児童ではありません）。</p>{% endif %}
<ul>{% for text, holds in r.standing %}<li class="{{ 'ok' if holds else 'ng' }}">{{ text }}</li>{% endfor %}</ul>
{% for heading, parts in r.sections %}
<h2>{{ heading }}</h2>
{% for part in parts %}
{% if part.header is defined %}
<table>{% if part.caption %}<caption>{{ part.caption }}</caption>{% endif %}
<tr>{% for h in part.header %}<th>{{ h }}</th>{% endfor %}</tr>
{% for row in part.rows %}<tr>{% for v in row %}<td{% if loop.index0 in part.counts %} class="n"{% endif %}>{{ v }}</td>{% endfor %}</tr>
{% endfor %}</table>
{% if part.note %}<p class="note">{{ part.note }}</p>{% endif %}
{% else %}{{ part | safe }}
{% endif %}
{% endfor %}
{% endfor %}
</body></html>
""",
    autoescape=True,
)


def paragraph(text: str) -> str:
    return f"<p>{escape(mask_text(text))}</p>"


def paragraph_list(items: list[str]) -> str:
    """Conclusions as a list, each escaped and masked like a paragraph."""
    return (
        '<ul class="lead">' + "".join(f"<li>{escape(mask_text(t))}</li>" for t in items) + "</ul>"
    )


def embedded_font(text: str) -> str:
    """IPAexGothic (bundled with matplotlib-fontja) cut down to the characters the page uses,
    as a data URI: the page renders the same on any machine, with no font fetched."""
    from pathlib import Path

    from fontTools import subset

    font = subset.load_font(
        str(Path(matplotlib_fontja.__file__).parent / "fonts" / "ipaexg.ttf"), subset.Options()
    )
    sub = subset.Subsetter(subset.Options())
    sub.populate(text="".join(sorted(set(text))))
    sub.subset(font)
    buf = io.BytesIO()
    font.save(buf)
    return "data:font/ttf;base64," + base64.b64encode(buf.getvalue()).decode()


def _masked(part: Table | str) -> Table | str:
    """Text cells of a table get the sentence rule too: "今月 3 件" in an answer is a count."""
    if not isinstance(part, Table):
        return part
    rows = [
        [v if i in part.counts else mask_text(str(v)) for i, v in enumerate(r)] for r in part.rows
    ]
    return Table(part.caption, part.header, rows, part.counts, mask_text(part.note))


def render(report: Report) -> str:
    report = Report(
        report.month,
        report.generated_at,
        report.standing,
        [(h, [_masked(p) for p in parts]) for h, parts in report.sections],
        report.demo,
    )
    html = TEMPLATE.render(r=report, font="")
    return TEMPLATE.render(r=report, font=embedded_font(html))


def standing_lines(standing: Standing) -> list[tuple[str, bool]]:
    """The data month and the date of processing, each against the approval's periods."""

    def against(periods: tuple[Period, ...]) -> str:
        return "、".join(p.label() for p in periods)

    month = (
        f"基準月 {standing.month} は承認期間内（{against(standing.month_periods)}）"
        if standing.month_covered
        else f"基準月 {standing.month} はどの承認期間にも含まれない"
    )
    covering = [p for p in standing.month_periods if p.covers_day(standing.today)]
    if covering:
        today = f"処理日 {standing.today.isoformat()} は承認期間内（{against(tuple(covering))}）"
    else:
        ended = [p for p in standing.month_periods if p.end < standing.today]
        today = (
            f"処理日 {standing.today.isoformat()} は承認期間外"
            + (f"（{against(tuple(ended))} は終了）" if ended else "")
            + "。この月の処理・書き出し・確認結果の取込は行わない（集計の報告書の再作成のみ）"
        )
    return [(month, standing.month_covered), (today, bool(covering))]

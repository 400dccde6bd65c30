"""What the council asked, answered from the months processed so far: the center's
verification results (PPV), trends, and the month's problems (課題).

Every table is suppressed under the report's rules (lib/reporting/suppression.py): a count of 1–9 is
"x", a rate is shown only when its numerator and its rest are both 0 or ≥ 10, and a part is
hidden when the whole minus it would be 1–9. The verification results are pseudonyms only
(the center's signed files, center/verification_feedback); the pipeline joins them to this
month's analysis zone for group rates and never sees a 宛名番号.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
import numpy as np

from kodomo_assets.lib.center.feedback import CONFIRMED, KNOWN, NOT_CONFIRMED
from kodomo_assets.lib.platform.rows import one_row
from kodomo_assets.lib.platform.storage import KodomoStorage
from kodomo_assets.lib.policy.content import detect, label
from kodomo_assets.lib.reporting import report as R
from kodomo_assets.lib.reporting.suppression import MASK, share_text, visible

if TYPE_CHECKING:
    import pandas as pd

FEEDBACK_STORE = "verification_feedback"
NEW = "新規の示唆"
AGE_BANDS = (("0〜5歳", 0, 5), ("6〜11歳", 6, 11), ("12〜14歳", 12, 14), ("15〜17歳", 15, 17))
NOTE_KINDS = ("受信", "連携", "指標", "確認", "公平性", "運用", "その他")
NOTE_HEADER = ("区分", "内容", "対応")
NOTE_MAX = 200  # characters: a note says what went wrong, not whom it concerned


# -- suppression helpers --------------------------------------------------------------------


def column(values: list[int], wholes: list[int] | None = None) -> list[str]:
    """One additive column's cells and its total (last), primary and secondary suppression:
    a part whose whole minus it is 1–9 is hidden too."""
    return [
        text
        for _, text in R.suppressed_column(
            [str(i) for i in range(len(values))], values, wholes=wholes
        )
    ]


def rate(num: int, den: int, num_cell: str, den_cell: str, fmt: str = "{:.1%}") -> str:
    """A rate only where both its counts are shown: a hidden count times a shown rate would
    give it back."""
    if MASK in (num_cell, den_cell):
        return MASK
    return share_text(num, den, fmt)


def _grouped(rows: list[tuple]) -> dict[str, list[tuple]]:
    out: dict[str, list[tuple]] = {}
    for r in rows:
        out.setdefault(r[0], []).append(r[1:])
    return out


def _partitioned(rows: list[tuple]) -> Iterator[tuple[str, str, list[int], list[str]]]:
    """(attribute, group, children, part, checked, confirmed) rows -> per attribute, each
    group and the total with its four counts and their cells. The groups partition the
    children, so each column is suppressed with its total; the part and checked are parts of
    the children, confirmed of checked."""
    for attr, groups in _grouped(rows).items():
        names = [g[0] for g in groups]
        counts = [[g[i] for g in groups] for i in range(1, 5)]
        cells = [
            column(counts[0]),
            column(counts[1], counts[0]),
            column(counts[2], counts[0]),
            column(counts[3], counts[2]),
        ]
        for i, name in enumerate([*names, "合計"]):
            yield (
                attr,
                name,
                [c[i] if i < len(names) else sum(c) for c in counts],
                [c[i] for c in cells],
            )


# -- the center's results over the months ---------------------------------------------------


def attach_verified(
    storage: KodomoStorage, con: duckdb.DuckDBPyConnection, month: str
) -> list[str]:
    """TEMP VIEW verified: every signed result returned for lists up to `month` (pseudonyms),
    the latest per child and list month. Returns the months that had a results file."""
    months = [
        m
        for m in storage.months_on_disk()
        if m <= month and storage.zone_store("analysis", m, FEEDBACK_STORE).exists()
    ]
    parts = []
    for i, m in enumerate(months):
        storage.attach(con, f"vf{i}", storage.zone_store("analysis", m, FEEDBACK_STORE))
        parts.append(
            f"SELECT child_token, list_month, result, section, score_band, indicators "
            f"FROM vf{i}.verification"
        )
    union = " UNION ALL ".join(parts) or (
        "SELECT NULL::VARCHAR AS child_token, NULL::VARCHAR AS list_month, NULL::VARCHAR AS result, "
        "NULL::VARCHAR AS section, NULL::VARCHAR AS score_band, NULL::VARCHAR[] AS indicators WHERE false"
    )
    con.execute(f"""CREATE OR REPLACE TEMP VIEW verified AS SELECT * FROM ({union})
                    QUALIFY row_number() OVER (PARTITION BY child_token, list_month ORDER BY result) = 1""")
    return months


def by_month(con: duckdb.DuckDBPyConnection, listed: dict[str, int]) -> R.Table:
    """Per list month: listed (new suggestions), checked (該当, 非該当, 既知) and still open,
    additive with totals and secondary suppression; PPV beside."""
    got = {
        m: (c, n, k)
        for m, c, n, k in con.execute(f"""
        SELECT list_month, count(*) FILTER (result = '{CONFIRMED}'), count(*) FILTER (result = '{NOT_CONFIRMED}'),
               count(*) FILTER (result = '{KNOWN}') FROM verified WHERE section = '{NEW}' GROUP BY 1""").fetchall()
    }
    months = sorted(listed)
    grid = np.array(
        [[*got.get(m, (0, 0, 0)), max(listed[m] - sum(got.get(m, (0, 0, 0))), 0)] for m in months],
        dtype="int64",
    ).reshape(-1, 4)
    t = R.suppressed_grid(months, ["該当", "非該当", "既知", "未確認"], grid)
    t.header[0], t.header[-1] = "確認リストの基準月", "合計（掲載された新規の示唆）"
    totals = grid.sum(axis=0) if len(grid) else np.zeros(4, "int64")
    for row, (c, n) in zip(
        t.rows, [*((r[0], r[1]) for r in grid), (totals[0], totals[1])], strict=True
    ):
        row.append(rate(int(c), int(c + n), row[1], row[2], "{:.2f}"))
    t.header.append("陽性的中率 PPV")
    t.caption = "確認リストの確認状況（センターの確認結果。基準月ごと）"
    t.note = (
        "PPV = 該当 ÷（該当 + 非該当）。既知はセンターが既に把握していた児童。未確認は、まだ結果が"
        "返っていない児童。率は、分子とその残りがともに0か10以上のときだけ示す。"
    )
    return t


def checked_totals(con: duckdb.DuckDBPyConnection) -> tuple[int, int, int]:
    """Across all months: checked (any result), 該当, 非該当, for the new suggestions."""
    return one_row(
        con.execute(f"""SELECT count(*), count(*) FILTER (result = '{CONFIRMED}'),
                           count(*) FILTER (result = '{NOT_CONFIRMED}') FROM verified
                           WHERE section = '{NEW}'""")
    )


def _ppv_rows(rows: list[tuple[str, int, int]]) -> list[list[str]]:
    out = []
    for name, confirmed, not_confirmed in rows:
        decided = confirmed + not_confirmed
        out.append(
            [
                name,
                R.small(decided),
                R.small(confirmed) if visible(confirmed, decided) else MASK,
                share_text(confirmed, decided, "{:.2f}"),
            ]
        )
    return out


def ppv_tables(
    con: duckdb.DuckDBPyConnection, indicator_labels: list[str], bands: list[str]
) -> list[R.Table]:
    """PPV per indicator and per score band, over every month's results."""
    per_indicator = dict.fromkeys(indicator_labels, (0, 0))
    for name, c, n in con.execute(f"""
            SELECT i, count(*) FILTER (result = '{CONFIRMED}'), count(*) FILTER (result = '{NOT_CONFIRMED}')
            FROM (SELECT unnest(indicators) AS i, result FROM verified) GROUP BY i""").fetchall():
        per_indicator[name] = (c, n)
    per_band = dict.fromkeys(bands, (0, 0))
    for name, c, n in con.execute(f"""
            SELECT score_band, count(*) FILTER (result = '{CONFIRMED}'), count(*) FILTER (result = '{NOT_CONFIRMED}')
            FROM verified GROUP BY 1""").fetchall():
        per_band[name] = (c, n)
    head = ["確認（該当+非該当）", "該当", "PPV"]
    note = "全基準月の確認結果。一人が複数の指標に該当しうるため指標の合計は示さない。"
    # the bands partition the results: a column with its total, secondary suppression
    names = list(per_band)
    decided = [c + n for c, n in per_band.values()]
    confirmed = [c for c, _ in per_band.values()]
    d_cells, c_cells = column(decided), column(confirmed, wholes=decided)
    band_rows = [
        [name, d, c, rate(cn, dn, c, d, "{:.2f}")]
        for name, d, c, cn, dn in zip(
            [*names, "合計"],
            d_cells,
            c_cells,
            [*confirmed, sum(confirmed)],
            [*decided, sum(decided)],
            strict=True,
        )
    ]
    return [
        R.Table(
            "指標ごとの陽性的中率（センターの確認結果）",
            ["指標", *head],
            _ppv_rows([(k, *v) for k, v in per_indicator.items()]),
            counts={1, 2},
            note=note,
        ),
        R.Table("スコア帯ごとの陽性的中率", ["較正済みスコア", *head], band_rows, counts={1, 2}),
    ]


def verified_groups_table(rows: list[tuple[str, str, int, int, int, int]]) -> R.Table:
    """(attribute, group, children, listed, checked, confirmed) -> selection rate and PPV by
    group, from the verified outcomes: the fairness audit a city without demo truth can run.
    An attribute's groups partition the children, so each column is suppressed with its
    total; confirmed is never shown, but gates the PPV the same way."""
    out = [
        [
            attr,
            name,
            c[0],
            c[1],
            rate(v[1], v[0], c[1], c[0], "{:.2%}"),
            c[2],
            rate(v[3], v[2], c[3], c[2], "{:.2f}"),
        ]
        for attr, name, v, c in _partitioned(rows)
    ]
    return R.Table(
        "群ごとの選ばれる率と陽性的中率（確認結果による公平性の確認）",
        ["属性", "群", "未把握の児童", "今月の掲載", "選ばれる率", "確認済み", "PPV"],
        out,
        counts={2, 3, 5},
        note="選ばれる率 = 掲載 ÷ 未把握の児童（今月）。PPV = 該当 ÷（該当 + 非該当）（全基準月の確認結果を、"
        "今月の属性で数える）。各列で1〜9は x、合計から逆算できないよう二次秘匿。率は、分子とその"
        "残りがともに0か10以上で、二つの数がともに示されているときだけ示す。",
    )


# -- 傾向分析 --------------------------------------------------------------------------------


def co_occurrence(con: duckdb.DuckDBPyConnection, labels: list[str]) -> R.Table:
    """How indicators fire together among confirmed (該当) children. A pair is hidden when it
    or what either indicator's count leaves without it is 1–9 (no subtraction gives a child)."""
    rows = con.execute(
        f"SELECT DISTINCT child_token, indicators FROM verified WHERE result = '{CONFIRMED}'"
    ).fetchall()
    sets = [set(i or []) for _, i in rows]
    single = {a: sum(a in s for s in sets) for a in labels}
    out = []
    for a in labels:
        cells = []
        for b in labels:
            if a == b:
                cells.append(R.small(single[a]))
                continue
            both = sum(a in s and b in s for s in sets)
            ok = visible(both, single[a]) and visible(both, single[b])
            cells.append(R.small(both) if ok else MASK)
        out.append([a, *cells])
    return R.Table(
        "確認で該当となった児童の指標の重なり（人数。対角は各指標の人数）",
        ["指標", *labels],
        out,
        counts=set(range(1, len(labels) + 1)),
    )


def rates_by_group(con: duckdb.DuckDBPyConnection) -> R.Table:
    """Flag rate (this month) and confirmation rate (all results) by age band and household
    type. Needs TEMP TABLE kids(child_token, age_years, single_parent, flagged, center_known)."""
    bands = " ".join(
        f"WHEN age_years BETWEEN {lo} AND {hi} THEN '{name}'" for name, lo, hi in AGE_BANDS
    )
    rows = []
    for attr, expr in (
        ("年齢", f"CASE {bands} ELSE '不明' END"),
        (
            "世帯",
            "CASE WHEN single_parent THEN 'ひとり親世帯' WHEN single_parent IS NULL "
            "THEN '不明' ELSE 'ふたり親等の世帯' END",
        ),
    ):
        rows += [
            (attr, *r)
            for r in con.execute(f"""
                WITH g AS (SELECT {expr} AS grp, k.* FROM kids k WHERE NOT k.center_known),
                v AS (SELECT child_token, bool_or(result = '{CONFIRMED}') AS hit FROM verified
                      WHERE result IN ('{CONFIRMED}', '{NOT_CONFIRMED}') GROUP BY 1)
                SELECT grp, count(*)::INTEGER, (count(*) FILTER (flagged))::INTEGER,
                       count(v.child_token)::INTEGER, (count(*) FILTER (v.hit))::INTEGER
                FROM g LEFT JOIN v USING (child_token) GROUP BY 1 ORDER BY 1""").fetchall()
        ]
    out = [
        [
            attr,
            name,
            c[0],
            rate(v[1], v[0], c[1], c[0]),
            c[2],
            rate(v[3], v[2], c[3], c[2], "{:.2f}"),
        ]
        for attr, name, v, c in _partitioned(rows)
    ]
    return R.Table(
        "年齢・世帯の型ごとの指標該当率と確認での該当率（センター未把握の児童）",
        ["属性", "群", "児童", "指標に該当した割合", "確認済み", "該当の割合（PPV）"],
        out,
        counts={2, 4},
        note="指標に該当した割合は今月、確認は全基準月の結果（今月の属性で数える）。各列で1〜9は x、"
        "二次秘匿あり。率は二つの数がともに示され、分子とその残りが0か10以上のときだけ示す。",
    )


def district_trend(series: dict[str, list[tuple[str, int, int]]]) -> R.Table:
    """month -> [(district, children, flagged)]: each district's share flagged, month by
    month, shown only where the month's district table (same suppression) shows both counts."""
    months = sorted(series)
    districts = sorted({d for rows in series.values() for d, _, _ in rows})
    cell: dict[tuple[str, str], str] = {}
    for m in months:
        rows = sorted(series[m])
        n_c = column([r[1] for r in rows])
        f_c = column([r[2] for r in rows], [r[1] for r in rows])
        for i, (d, n, f) in enumerate(rows):
            cell[(m, d)] = rate(f, n, f_c[i], n_c[i])
    return R.Table(
        "町丁目ごとの指標該当率の推移",
        ["町丁目コード", *months],
        [[d, *(cell.get((m, d), "—") for m in months)] for d in districts],
        note="該当 ÷ 児童。今月の数字の町丁目の表と同じ秘匿で、二つの数がともに示され、該当とその残りが"
        "ともに0か10以上のときだけ示す（x は秘匿）。",
    )


def silent_indicators(fired: dict[str, int], confirmed: dict[str, int]) -> list[str]:
    """Sentences: indicators that never fired in any month, or never confirmed."""
    never = [a for a, n in fired.items() if n == 0]
    unconfirmed = [a for a, n in fired.items() if n > 0 and confirmed.get(a, 0) == 0]
    return ([f"どの月も該当がなかった指標: {'、'.join(never)}"] if never else []) + (
        [f"該当はあるが確認で該当となった児童がいない指標: {'、'.join(unconfirmed)}"]
        if unconfirmed
        else []
    )


# -- 課題 ------------------------------------------------------------------------------------


@dataclass
class Problem:
    kind: str
    text: str
    weight: float = 0.0  # for ordering the first page's main problems


@dataclass
class MonthProblems:
    problems: list[Problem] = field(default_factory=list)

    def add(self, kind: str, text: str, weight: float = 0.0) -> None:
        self.problems.append(Problem(kind, text, weight))

    def main(self, n: int = 3) -> list[str]:
        return [p.text for p in sorted(self.problems, key=lambda p: -p.weight)[:n]]

    def table(self) -> R.Table:
        return R.Table(
            "今月の課題（パイプラインが記録したもの・担当者の記入）",
            ["区分", "内容"],
            [[p.kind, p.text] for p in self.problems] or [["—", "記録された課題はない"]],
        )


def quarantine_problems(out: MonthProblems, sources: dict[str, dict]) -> None:
    """Quarantine rate per department and its main reasons (counts from the source assets)."""
    for name, meta in sources.items():
        received, quarantined = (
            int(meta.get("rows_received") or 0),
            int(meta.get("quarantined") or 0),
        )
        if not quarantined:
            continue
        reasons = sorted((meta.get("quarantine_by_reason") or {}).items(), key=lambda kv: -kv[1])[
            :2
        ]
        said = "、".join(f"{r}（{R.small(int(n))} 行）" for r, n in reasons)
        out.add(
            "受信",
            f"{name}: 隔離 {R.small(quarantined)} 行（{share_text(quarantined, received, '{:.2%}')}）。"
            f"主な理由: {said or '—'}",
            weight=0.4 if quarantined > 0.01 * received else 0.02,
        )


def read_notes(path: Path) -> tuple[list[tuple[str, str, str]], list[str]]:
    """A steward's notes (CSV 区分,内容,対応): the rows kept, and the refusals by line. A note
    that the content detector flags (a number, a phone number, an amount) is refused, and
    so is one over NOTE_MAX characters; a refusal names the line and the reason, never the text."""
    if not path.is_file():
        return [], []
    kept, refused = [], []
    with open(path, encoding="utf-8-sig", newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader, [])
        if tuple(h.strip() for h in header) != NOTE_HEADER:
            return [], [
                f"{path.name}: 見出し行は {','.join(NOTE_HEADER)} です（ファイル全体を使いません）"
            ]
        for line, row in enumerate(reader, start=2):
            if not any(c.strip() for c in row):
                continue
            kind, text, action = (row + ["", "", ""])[:3]
            hit = next((h for h in (detect(text), detect(action)) if h), None)
            if kind.strip() not in NOTE_KINDS:
                refused.append(f"{path.name} {line}行目: 区分は {'・'.join(NOTE_KINDS)} のいずれか")
            elif hit:
                refused.append(
                    f"{path.name} {line}行目: {label(hit)}があるため載せません（個人情報を書かないでください）"
                )
            elif len(text) + len(action) > NOTE_MAX:
                refused.append(f"{path.name} {line}行目: {NOTE_MAX} 字を超えるため載せません")
            else:
                kept.append((kind.strip(), text.strip(), action.strip()))
    return kept, refused


# -- 必要最小限 --------------------------------------------------------------------------------


def worth_tables(frame: pd.DataFrame, month: str) -> list:
    """The item-worth review as the council reads it: items the model could drop at a cost
    under the threshold (candidates for next year's 別紙), approved items no column reads,
    and the items whose removal hurts most. Figures are model scores and PPVs of at least
    iw.MIN_OUTCOMES results, not counts of children."""
    from kodomo_assets.lib.scoring import item_worth as iw

    def f(v: object, fmt: str = "{:+.3f}") -> str:
        return "—" if v is None or (isinstance(v, float) and np.isnan(v)) else fmt.format(v)

    items = frame[frame["level"] == iw.ITEM]
    full = frame[frame["level"] == iw.FULL].iloc[0]
    auc_noise, precision_noise = iw.noise_floor(frame)

    def rows(part: pd.DataFrame) -> list[list[str]]:
        return [
            [
                r.department,
                r.item,
                f(r.auc_drop),
                f(r.precision_drop),
                f(r.ppv_verified, "{:.2f}"),
                r.verdict,
            ]
            for r in part.itertuples()
        ]

    head = ["保有課", "承認項目", "AUC の低下", "上位k人の適合率の低下", "確認結果の PPV", "判定"]
    hurts = items[items["harm_rank"].notna()].sort_values("harm_rank").head(10)
    about = (
        f"{month} のデータで、項目を読む列と指標を外して学習し直した{iw.FOLDS}分割交差検証。全項目のモデル: "
        f"AUC {full.auc:.3f}、上位k人の適合率 {full.precision_at_k:.3f}。低下が AUC {iw.AUC_THRESHOLD}・適合率 "
        f"{iw.PRECISION_THRESHOLD} の両方より小さければ「{iw.DROP}」。情報のない乱数の列を加えたときの変化"
        f"（ゆらぎの目安: AUC {auc_noise:.3f}、適合率 {precision_noise:.3f}）を超える低下だけを「{iw.NEEDED}」とする。"
    )
    return [
        R.paragraph(about),
        R.Table(
            f"翌年度の別紙から外す候補（{iw.DROP}）",
            head,
            rows(items[items["verdict"] == iw.DROP]) or [["—", "なし", "", "", "", ""]],
        ),
        R.Table(
            f"承認されているが、どの列も読まない項目（{iw.UNREAD}）",
            ["保有課", "承認項目", "説明"],
            [
                [r.department, r.item, r.note or "連携テーブルの列がこの項目を読まない"]
                for r in items[items["verdict"] == iw.UNREAD].itertuples()
            ]
            or [["—", "なし", ""]],
        ),
        R.Table(
            "外すとリストの質が最も下がる項目（低下の大きい順）",
            head,
            rows(hurts) or [["—", "なし", "", "", "", ""]],
        ),
    ]

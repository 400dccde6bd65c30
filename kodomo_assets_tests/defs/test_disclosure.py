"""No arithmetic disclosure: a committee member holding the reports of consecutive months
tries to solve every suppressed cell ("x") from everything published beside it: the
table's totals, the other cells, and the rates printed under it. Each hidden cell is an
integer unknown; the member looks for its smallest and largest possible value. A cell
whose two agree is solved, and none may be."""

import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from dagster import DagsterInstance
from scipy.optimize import Bounds, LinearConstraint, milp

from kodomo_assets.definitions import ASSETS
from kodomo_assets.demo import generate
from kodomo_assets.demo.center import check_list
from kodomo_assets.lib.platform.keys import read_center_private
from kodomo_assets.lib.reporting.suppression import share_text, visible
from kodomo_assets_tests.conftest import copy_inbox, demo_env
from kodomo_assets_tests.runs import failures, run

MONTHS = ["2022-09", "2022-10"]


class Tables(HTMLParser):
    """Every <table> of a report: its caption and its rows of cell texts."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[dict] = []
        self._cell: list[str] | None = None
        self._in_caption = False

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag == "table":
            self.tables.append({"caption": "", "rows": [], "note": ""})
        elif tag == "tr" and self.tables:
            self.tables[-1]["rows"].append([])
        elif tag in ("td", "th") and self.tables:
            self._cell = []
        elif tag == "caption":
            self._in_caption = True

    def handle_endtag(self, tag: str) -> None:
        if (
            tag in ("td", "th")
            and self._cell is not None
            and self.tables
            and self.tables[-1]["rows"]
        ):
            self.tables[-1]["rows"][-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "caption":
            self._in_caption = False

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        elif self._in_caption and self.tables:
            self.tables[-1]["caption"] += data


def number(text: str) -> int | None:
    return int(text.replace(",", "")) if re.fullmatch(r"[0-9][0-9,]*", text) else None


def count_tables(rows: list[list[str]]) -> list[list[list[str]]]:
    """The count grids of a table: its rate columns (率, PPV) left out, and a table of groups
    by attribute (属性, 群, ...) split into one grid per attribute."""
    header = rows[0]
    keep = [j for j, h in enumerate(header) if not (h.endswith("率") or "割合" in h or "PPV" in h)]
    rows = [[r[j] for j in keep if j < len(r)] for r in rows]
    if rows[0][:2] != ["属性", "群"]:
        return [rows]
    blocks: dict[str, list[list[str]]] = {}
    for r in rows[1:]:
        blocks.setdefault(r[0], [rows[0][1:]]).append(r[1:])
    return list(blocks.values())


def additive(rows: list[list[str]]) -> tuple[np.ndarray, np.ndarray, bool] | None:
    """The grid of a table whose last row is 合計 (its columns add up): values (NaN where
    hidden), the hidden mask, and whether its last column is its rows' total too (headed 合計,
    or 受信 in the intake table). None for a table that is not additive."""
    header, body = rows[0], [r for r in rows[1:] if r]
    if len(body) < 2 or body[-1][0] != "合計" or any(len(r) != len(body[0]) for r in body):
        return None
    cells = [r[1:] for r in body]
    if not all(c == "x" or number(c) is not None for r in cells for c in r):
        return None
    grid = np.array([[np.nan if c == "x" else number(c) for c in r] for r in cells], dtype=float)
    return grid, np.isnan(grid), header[-1].startswith("合計") or header[-1] == "受信"


def solvable(
    grid: np.ndarray,
    hidden: np.ndarray,
    rate_rows: list[tuple[list[int], float, int]],
    row_totals: bool = True,
) -> list:
    """The hidden cells whose value is forced: integer unknowns ≥ 0, every line of the body
    adding up to its total where the table is additive that way (the last column; the last
    row), and each printed rate (cells of a row over the row's total, to its precision)."""
    where = {tuple(ix): k for k, ix in enumerate(np.argwhere(hidden))}
    n = len(where)
    if n == 0:
        return []
    big = float(np.nansum(np.where(hidden, 0, grid)) + 10**6)
    a_rows, lo, hi = [], [], []

    def add(cells: list[tuple[int, int]], coef: list[float], low: float, high: float) -> None:
        a = np.zeros(n)
        const = 0.0
        for (i, j), c in zip(cells, coef, strict=True):
            if (i, j) in where:
                a[where[(i, j)]] += c
            else:
                const += c * grid[i, j]
        a_rows.append(a), lo.append(low - const), hi.append(high - const)

    rows_, cols_ = grid.shape
    if row_totals:  # a row's cells sum to its last cell
        for i in range(rows_):
            add([(i, j) for j in range(cols_)], [1.0] * (cols_ - 1) + [-1.0], 0, 0)
    for j in range(cols_):  # a column's cells sum to its last cell (合計)
        add([(i, j) for i in range(rows_)], [1.0] * (rows_ - 1) + [-1.0], 0, 0)
    for cols, rate, digits in rate_rows:  # sum(cols) / total within the printed rounding
        half = 0.5 * 10**-digits
        cells = [(0, j) for j in cols] + [(0, cols_ - 1)]
        add(cells, [1.0] * len(cols) + [-(rate - half)], 0, np.inf)
        add(cells, [1.0] * len(cols) + [-(rate + half)], -np.inf, 0)
    constraints = LinearConstraint(np.array(a_rows), lo, hi)
    forced = []
    for ix, k in where.items():
        c = np.zeros(n)
        c[k] = 1.0
        ends = [
            milp(sign * c, constraints=constraints, integrality=np.ones(n), bounds=Bounds(0, big))
            for sign in (1, -1)
        ]
        assert all(e.success for e in ends)
        if round(ends[0].fun) == round(-ends[1].fun):
            forced.append((ix, round(ends[0].fun)))
    return forced


def link_rate(html: str) -> tuple[float, int] | None:
    m = re.search(r"連携率 ([0-9.]+)%", html)
    return (float(m.group(1)) / 100, 3) if m else None


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    generated = tmp_path_factory.mktemp("generated")
    generate(generated, residents=9000, months=MONTHS, seed=17)
    inbox = copy_inbox(generated, tmp_path_factory.mktemp("inbox"))
    out = []
    with demo_env(inbox, tmp_path_factory) as storage:
        instance = DagsterInstance.ephemeral()
        center = read_center_private(Path(storage.storage_key_file).parent / "center")
        for (
            month
        ) in MONTHS:  # as in use: the center returns each list's results before the next month
            result = run(ASSETS, month, storage, instance)
            assert result.success, failures(result)
            check_list(storage, center, month, inbox / "_truth")  # taken by the next month's run
            out.append(storage.report_path(month).read_text(encoding="utf-8"))
    return out


def test_no_suppressed_cell_of_any_month_can_be_solved(reports: list[str]) -> None:
    checked = hidden_cells = 0
    for html in reports:
        parser = Tables()
        parser.feed(html)
        for table, rows in ((t, g) for t in parser.tables for g in count_tables(t["rows"])):
            found = additive(rows)
            if found is None:
                continue
            grid, hidden, row_totals = found
            rates = []
            if "連携" in table["caption"] and (rate := link_rate(html)):
                rates.append(([0, 1], *rate))  # 連携率 = (宛名番号 + 確率的照合) / 合計
            checked += 1
            hidden_cells += int(hidden.sum())
            assert solvable(grid, hidden, rates, row_totals) == [], table["caption"]
    # the intake and district tables of each month, and the verification and group tables
    assert checked >= 2 * 6
    assert hidden_cells > 0  # a small town: there is something to protect


def test_the_solver_does_solve_what_the_old_report_gave_away() -> None:
    """The issue's case: 939 pupils, 23 and 6 hidden, 連携率 99.4%: with the rate printed,
    the hidden cells come back; with the rate withheld, they do not."""
    grid = np.array([[910.0, np.nan, np.nan, 939.0], [910.0, np.nan, np.nan, 939.0]])
    hidden = np.isnan(grid)
    assert sorted(v for _, v in solvable(grid, hidden, [([0, 1], 0.994, 3)])) == [6, 6, 23, 23]
    assert solvable(grid, hidden, []) == []
    assert share_text(933, 939) == "x" and not visible(933, 939) and visible(929, 939)

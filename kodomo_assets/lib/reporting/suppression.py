"""Small-cell suppression for committee tables: counts 1–9 shown as "x", with secondary
suppression so that no hidden cell can be recovered from the totals.

A table is a grid of counts whose last row and last column are the totals. Primary: every
count from 1 to threshold−1 (0 is shown; totals too when small). Secondary: a row or
column with exactly one hidden cell is solved by subtraction, so one more of its cells is
hidden (the smallest non-zero one; the line's total when no other cell is left), and this
repeats until every line hides none or at least two of its cells. The same rule as the
NDB's public statistics (< 10); a hand-written pass because pytauargus needs τ-ARGUS.
"""

from __future__ import annotations

import re

import numpy as np

THRESHOLD = 10
MASK = "x"


def visible(num: int, den: int, threshold: int = THRESHOLD) -> bool:
    """A share num/den may be published only when its numerator and its complement are
    each 0 or ≥ threshold: otherwise rate × total gives back a count of 1–9 (連携率 99.4% of
    939 pupils is 6 unlinked)."""
    return all(v == 0 or v >= threshold for v in (int(num), int(den) - int(num)))


def share_text(num: int, den: int, fmt: str = "{:.1%}") -> str:
    return fmt.format(num / den) if den and visible(num, den) else MASK


def protect(
    counts: np.ndarray, threshold: int = THRESHOLD, hidden: np.ndarray | None = None
) -> np.ndarray:
    """Boolean mask of the cells to hide in a table with a totals row and column. `hidden`:
    cells that must be hidden for another reason (a share that would give a count back)."""
    c = np.asarray(counts, dtype="int64")
    if c.ndim != 2 or c.shape[0] < 2 or c.shape[1] < 2:
        raise ValueError("a table with a totals row and a totals column")
    hidden = ((c > 0) & (c < threshold)) | (np.zeros_like(c, bool) if hidden is None else hidden)
    changed = True
    while changed:
        changed = False
        lines = [(i, slice(None)) for i in range(c.shape[0])] + [
            (slice(None), j) for j in range(c.shape[1])
        ]
        for line in lines:
            cells, mask = c[line], hidden[line]
            if mask.sum() == 1:
                pick = _second(cells, mask)
                idx = (line[0], pick) if isinstance(line[0], int) else (pick, line[1])
                hidden[idx] = True
                changed = True
    return hidden


def _second(cells: np.ndarray, mask: np.ndarray) -> int:
    """The cell to hide beside a lone hidden one: the smallest visible non-zero interior
    cell, else the line's total (the last cell)."""
    interior = [(v, k) for k, v in enumerate(cells[:-1]) if not mask[k] and v > 0]
    if interior and not mask[-1]:
        return min(interior)[1]
    if not mask[-1]:
        return len(cells) - 1
    return min(interior)[1] if interior else int(np.flatnonzero(~mask)[0])


def with_totals(table: np.ndarray) -> np.ndarray:
    """Append a totals column and a totals row."""
    t = np.asarray(table, dtype="int64")
    t = np.column_stack([t, t.sum(axis=1)])
    return np.vstack([t, t.sum(axis=0)])


def render(counts: np.ndarray, hidden: np.ndarray) -> list[list[str]]:
    return [
        [MASK if h else f"{v:,}" for v, h in zip(row, hrow, strict=True)]
        for row, hrow in zip(np.asarray(counts), hidden, strict=True)
    ]


def recoverable(counts: np.ndarray, hidden: np.ndarray) -> bool:
    """True when some line hides exactly one cell: it could be solved by subtraction."""
    lines = list(hidden) + list(hidden.T)
    return any(line.sum() == 1 for line in lines)


_SMALL_IN_TEXT = re.compile(r"(?<![0-9.,])([1-9])(?=\s*(?:人|件|世帯))")


def mask_text(text: str) -> str:
    """Counts of 1–9 people, cases or households inside a sentence become "x" too."""
    return _SMALL_IN_TEXT.sub(MASK, text)

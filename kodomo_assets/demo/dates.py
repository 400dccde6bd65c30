"""Day arithmetic on int day numbers (days since 1970-01-01) and the date spellings of the
contract. Strings are precomputed once per form for every day in range and then indexed,
so formatting a column is a numpy take, not a Python loop over rows."""

from __future__ import annotations

from functools import cache

import numpy as np

NONE = -(10**6)  # "no date": rendered blank
_BASE = np.datetime64("1900-01-01", "D").astype(int)
_LAST = np.datetime64("2040-12-31", "D").astype(int)

# name, letter, GYYMMDD digit, first day (change-over days belong to the new era)
ERAS = (
    ("明治", "M", 1, "1868-01-25"),
    ("大正", "T", 2, "1912-07-30"),
    ("昭和", "S", 3, "1926-12-25"),
    ("平成", "H", 4, "1989-01-08"),
    ("令和", "R", 5, "2019-05-01"),
)
# Day forms for 2022-10-11: 2022/10/11, 2022-10-11, 20221011, 令和4年10月11日 (元年 for year 1),
# R4.10.11, R04.10.11, R4/10/11 (like H28/4/1), 5041011 (GYYMMDD, G = 1 明治 .. 5 令和).
SLASH, HYPHEN, COMPACT, KANJI, LETTER, LETTER0, LETTER_SLASH, CODE7 = range(8)
# Month forms (対象年月) 0..3: 2022-10, 2022/10, R4.10, 令和4年10月.

# Impossible values a reader must quarantine (never readable as a valid date).
BAD_DATES = (
    "R4.2.30",
    "平成32年1月1日",
    "20221399",
    "2022/02/30",
    "令和4年2月29日",
    "5040231",
    "H31/5/1",
    "2021-13-01",
)
BAD_MONTHS = ("2022-13", "R4.13", "令和4年0月", "2022/00")


def day(text: str) -> int:
    return int(np.datetime64(text, "D").astype(int))


_ERA_START = np.array([day(s) for *_, s in ERAS])


@cache
def _ymd_table() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    d = np.arange(_BASE, _LAST + 1).astype("M8[D]")
    y = d.astype("M8[Y]").astype(int) + 1970
    m = d.astype("M8[M]").astype(int) % 12 + 1
    return y, m, (d - d.astype("M8[M]")).astype(int) + 1


def ymd(days: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Year, month, day arrays (a table lookup inside 1900..2040, which is hot)."""
    days = np.asarray(days, dtype="int64")
    inside = (days >= _BASE) & (days <= _LAST)
    if inside.all():
        i = days - _BASE
        return tuple(a.take(i) for a in _ymd_table())
    d = days.astype("M8[D]")
    y = d.astype("M8[Y]").astype(int) + 1970
    m = d.astype("M8[M]").astype(int) % 12 + 1
    return y, m, (d - d.astype("M8[M]")).astype(int) + 1


def month_start(abs_month: np.ndarray | int) -> np.ndarray:
    """abs_month = year * 12 + month - 1."""
    return (
        (np.asarray(abs_month, dtype="int64") - 1970 * 12)
        .astype("M8[M]")
        .astype("M8[D]")
        .astype(int)
    )


def month_end(abs_month: np.ndarray | int) -> np.ndarray:
    return month_start(np.asarray(abs_month) + 1) - 1


def abs_month(days: np.ndarray) -> np.ndarray:
    return np.asarray(days, dtype="int64").astype("M8[D]").astype("M8[M]").astype(int) + 1970 * 12


def add_months(days: np.ndarray, months: np.ndarray | int) -> np.ndarray:
    """Same day-of-month n months later, clipped to the month's end."""
    y, m, d = ymd(days)
    target = y * 12 + m - 1 + np.asarray(months)
    return np.minimum(month_start(target) + d - 1, month_end(target))


def age_years(birth: np.ndarray, ref: np.ndarray | int) -> np.ndarray:
    by, bm, bd = ymd(birth)
    ry, rm, rd = ymd(np.broadcast_to(ref, np.shape(birth)))
    return ry - by - ((rm * 100 + rd) < (bm * 100 + bd))


def age_months(birth: np.ndarray, ref: np.ndarray | int) -> np.ndarray:
    by, bm, bd = ymd(birth)
    ry, rm, rd = ymd(np.broadcast_to(ref, np.shape(birth)))
    return (ry * 12 + rm) - (by * 12 + bm) - (rd < bd)


def school_cohort(birth: np.ndarray) -> np.ndarray:
    """Pupils born 2 April Y .. 1 April Y+1 share a school year (学年, April 2 cutoff)."""
    y, m, d = ymd(birth)
    return y - ((m * 100 + d) <= 401)


def fiscal_year(abs_m: np.ndarray | int) -> np.ndarray:
    """年度 of an absolute month: April..March."""
    return (np.asarray(abs_m) - 3) // 12


def _era_parts(days: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    era = np.searchsorted(_ERA_START, days, side="right") - 1
    start_year = np.array([int(s[:4]) for *_, s in ERAS])
    y, _, _ = ymd(days)
    return era, y - start_year[era] + 1


@cache
def _day_table(form: int) -> np.ndarray:
    days = np.arange(_BASE, _LAST + 1)
    y, m, d = (a.tolist() for a in ymd(days))
    era, ey = (a.tolist() for a in _era_parts(days))
    names = [e[0] for e in ERAS]
    letters = [e[1] for e in ERAS]
    rows = zip(y, m, d, era, ey, strict=True)
    if form == SLASH:
        out = [f"{a}/{b:02d}/{c:02d}" for a, b, c, *_ in rows]
    elif form == HYPHEN:
        out = [f"{a}-{b:02d}-{c:02d}" for a, b, c, *_ in rows]
    elif form == COMPACT:
        out = [f"{a}{b:02d}{c:02d}" for a, b, c, *_ in rows]
    elif form == KANJI:
        out = [f"{names[e]}{'元' if n == 1 else n}年{b}月{c}日" for _, b, c, e, n in rows]
    elif form == LETTER:
        out = [f"{letters[e]}{n}.{b}.{c}" for _, b, c, e, n in rows]
    elif form == LETTER0:
        out = [f"{letters[e]}{n:02d}.{b:02d}.{c:02d}" for _, b, c, e, n in rows]
    elif form == LETTER_SLASH:
        out = [f"{letters[e]}{n}/{b}/{c}" for _, b, c, e, n in rows]
    else:
        out = [f"{ERAS[e][2]}{n:02d}{b:02d}{c:02d}" for _, b, c, e, n in rows]
    return np.array(out + [""], dtype=object)  # the last slot renders NONE as blank


def render_days(days: np.ndarray, forms: np.ndarray) -> np.ndarray:
    """Strings for int days in per-row forms; NONE becomes ''."""
    days = np.asarray(days, dtype="int64")
    forms = np.asarray(forms)
    idx = np.where(days == NONE, _LAST - _BASE + 1, days - _BASE)
    out = np.empty(len(days), dtype=object)
    for f in np.unique(forms):
        sel = forms == f
        out[sel] = _day_table(int(f)).take(idx[sel])
    return out


def render_month(abs_m: int, form: int) -> str:
    y, m = divmod(abs_m, 12)
    m += 1
    if form == 0:
        return f"{y}-{m:02d}"
    if form == 1:
        return f"{y}/{m:02d}"
    era, n = (int(a[0]) for a in _era_parts(month_start(np.array([abs_m]))))
    year = "元" if n == 1 else str(n)
    return f"{ERAS[era][1]}{n}.{m}" if form == 2 else f"{ERAS[era][0]}{year}年{m}月"


def is_reiwa_gannen(days: np.ndarray) -> np.ndarray:
    """Days rendered 令和元年… in the kanji form."""
    return (days >= _ERA_START[4]) & (days < day("2020-01-01"))

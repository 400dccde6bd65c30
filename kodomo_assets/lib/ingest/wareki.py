"""Dates as municipal systems write them: 西暦, 和暦 and the 7-digit GYYMMDD code.

Hand-written because japanera and jpdatetime both mis-parse common forms
(library-notes.md). Input is expected NFKC-normalised (full-width digits folded).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date


@dataclass(frozen=True)
class Era:
    name: str
    letter: str
    code: str  # G of GYYMMDD
    start: date
    end: date  # inclusive; 明治→大正 and 大正→昭和 changed on the day, so those overlap


ERAS = (
    Era("明治", "M", "1", date(1868, 1, 25), date(1912, 7, 30)),
    Era("大正", "T", "2", date(1912, 7, 30), date(1926, 12, 25)),
    Era("昭和", "S", "3", date(1926, 12, 25), date(1989, 1, 7)),
    Era("平成", "H", "4", date(1989, 1, 8), date(2019, 4, 30)),
    Era("令和", "R", "5", date(2019, 5, 1), date(9999, 12, 31)),
)
_BY_KEY = {k: e for e in ERAS for k in (e.name, e.letter, e.code)}

_ERA_NAMES = "|".join(e.name for e in ERAS)
_SEP = r"\s*[./\-]\s*"
_DATE_FORMS = (
    ("western", re.compile(rf"(\d{{4}}){_SEP}(\d{{1,2}}){_SEP}(\d{{1,2}})")),
    ("western", re.compile(r"(\d{4})(\d{2})(\d{2})")),
    ("era", re.compile(r"([1-5])(\d{2})(\d{2})(\d{2})")),
    (
        "era",
        re.compile(rf"({_ERA_NAMES})\s*(元|\d{{1,2}})\s*年\s*(\d{{1,2}})\s*月\s*(\d{{1,2}})\s*日"),
    ),
    ("era", re.compile(rf"([MTSHRmtshr])\s*(元|\d{{1,2}}){_SEP}(\d{{1,2}}){_SEP}(\d{{1,2}})")),
)
_MONTH_FORMS = (
    ("western", re.compile(rf"(\d{{4}}){_SEP}(\d{{1,2}})")),
    ("western", re.compile(r"(\d{4})(\d{2})")),
    ("era", re.compile(rf"({_ERA_NAMES})\s*(元|\d{{1,2}})\s*年\s*(\d{{1,2}})\s*月")),
    ("era", re.compile(rf"([MTSHRmtshr])\s*(元|\d{{1,2}}){_SEP}(\d{{1,2}})")),
)


class DateParseError(ValueError):
    """A value in no listed form, or a day that does not exist. The message never
    repeats the value, so it is safe to count and report."""


def _era_year(era_key: str, year: str) -> tuple[Era, int]:
    era = _BY_KEY[era_key.upper()]
    n = 1 if year == "元" else int(year)
    if n < 1:
        raise DateParseError(f"{era.name}0年は存在しない")
    return era, era.start.year + n - 1


def _match(
    text: str | None, forms: tuple[tuple[str, re.Pattern[str]], ...], what: str
) -> tuple[str, re.Match] | None:
    """The first listed form that matches the whole value; None for a blank."""
    value = (text or "").strip()
    if not value:
        return None
    for kind, pattern in forms:
        if m := pattern.fullmatch(value):
            return kind, m
    raise DateParseError(f"{what}の形式として読めない")


def parse_date(text: str | None) -> date | None:
    """Parse one date; blank means unknown (None). Raises DateParseError otherwise."""
    if (found := _match(text, _DATE_FORMS, "日付")) is None:
        return None
    kind, m = found
    if kind == "western":
        return _make(*(int(g) for g in m.groups()))
    era, y = _era_year(m.group(1), m.group(2))
    result = _make(y, int(m.group(3)), int(m.group(4)))
    if not era.start <= result <= era.end:
        raise DateParseError(f"{era.name}の期間外の日付")
    return result


def parse_year_month(text: str | None) -> str | None:
    """Parse a month such as 2022-10, 2022/10, R4.10 or 令和4年10月 into 'YYYY-MM'."""
    if (found := _match(text, _MONTH_FORMS, "年月")) is None:
        return None
    kind, m = found
    if kind == "western":
        y, mo = int(m.group(1)), int(m.group(2))
    else:
        era, y = _era_year(m.group(1), m.group(2))
        mo = int(m.group(3))
    if not 1 <= mo <= 12:
        raise DateParseError("存在しない年月")
    if kind == "era" and not (
        (era.start.year, era.start.month) <= (y, mo) <= (era.end.year, era.end.month)
    ):
        raise DateParseError(f"{era.name}の期間外の年月")
    return f"{y:04d}-{mo:02d}"


def _make(y: int, mo: int, d: int) -> date:
    try:
        return date(y, mo, d)
    except ValueError:
        raise DateParseError("存在しない日付") from None


# --- the same grammar in DuckDB SQL, for the common case -----------------------------------
# A city's register holds some 300,000 distinct date strings; parsing each in Python cost
# 1.5 s of the 1.6M-resident refresh. The macro reads the listed forms when written plainly
# (ASCII digits, no spaces, the exact era boundaries) and gives NULL for anything else,
# valid or not, which parse_date then decides: it stays the only source of an error and
# the reference that kodomo_assets_tests/lib/ingest/test_wareki.py holds the macro to.
_NAMES = ", ".join(f"'{e.name}'" for e in ERAS)
_LETTERS = ", ".join(f"'{e.letter}'" for e in ERAS)
_FIRST_YEAR = ", ".join(str(e.start.year) for e in ERAS)
_STARTS = ", ".join(f"DATE '{e.start}'" for e in ERAS)
_ENDS = ", ".join(f"DATE '{e.end}'" for e in ERAS)
_YEAR = "CASE WHEN {y} = '元' THEN 1 ELSE CAST({y} AS INTEGER) END"
_KANJI = "^(明治|大正|昭和|平成|令和)(元|[0-9]{1,2})年([0-9]{1,2})月([0-9]{1,2})日$"
_LETTER = "^([MTSHRmtshr])(元|[0-9]{1,2})[./-]([0-9]{1,2})[./-]([0-9]{1,2})$"
_WESTERN = "^([0-9]{4})[./-]([0-9]{1,2})[./-]([0-9]{1,2})$"


def _groups(pattern: str, s: str = "s") -> tuple[str, ...]:
    return tuple(f"regexp_extract({s}, '{pattern}', {i})" for i in range(1, 5))


def _era_call(era: str, groups: tuple[str, ...]) -> str:
    y, m, d = groups[1:]
    return (
        f"wareki_era_date({era}, {_YEAR.format(y=y)}, CAST({m} AS INTEGER), CAST({d} AS INTEGER))"
    )


DATE_MACROS = [
    # era index (1 明治 … 5 令和), year of the era, month, day -> the date if it exists and
    # falls inside that era, else NULL
    "CREATE OR REPLACE TEMP MACRO wareki_era_date(i, n, m, d) AS CASE WHEN n >= 1 AND "
    f"try(make_date([{_FIRST_YEAR}][i] + n - 1, m, d)) BETWEEN [{_STARTS}][i] AND [{_ENDS}][i] "
    f"THEN try(make_date([{_FIRST_YEAR}][i] + n - 1, m, d)) END",
    "CREATE OR REPLACE TEMP MACRO wareki_date(s) AS CASE "
    f"WHEN regexp_matches(s, '{_WESTERN}') THEN CASE WHEN CAST(substr(s, 1, 4) AS INTEGER) >= 1 THEN "
    f"try(make_date(CAST(substr(s, 1, 4) AS INTEGER), CAST({_groups(_WESTERN)[1]} AS INTEGER), "
    f"CAST({_groups(_WESTERN)[2]} AS INTEGER))) END "
    "WHEN regexp_full_match(s, '[0-9]{8}') THEN CASE WHEN CAST(substr(s, 1, 4) AS INTEGER) >= 1 THEN "
    "try(make_date(CAST(substr(s, 1, 4) AS INTEGER), CAST(substr(s, 5, 2) AS INTEGER), "
    "CAST(substr(s, 7, 2) AS INTEGER))) END "
    "WHEN regexp_full_match(s, '[1-5][0-9]{6}') THEN wareki_era_date(CAST(substr(s, 1, 1) AS INTEGER), "
    "CAST(substr(s, 2, 2) AS INTEGER), CAST(substr(s, 4, 2) AS INTEGER), CAST(substr(s, 6, 2) AS INTEGER)) "
    f"WHEN regexp_matches(s, '{_KANJI}') THEN "
    f"{_era_call(f'list_position([{_NAMES}], {_groups(_KANJI)[0]})', _groups(_KANJI))} "
    f"WHEN regexp_matches(s, '{_LETTER}') THEN "
    f"{_era_call(f'list_position([{_LETTERS}], upper({_groups(_LETTER)[0]}))', _groups(_LETTER))} "
    "END",
]

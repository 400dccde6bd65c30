import random
from datetime import date, timedelta

import duckdb
import pytest

from kodomo_assets.lib.ingest.decode import normalise
from kodomo_assets.lib.ingest.wareki import (
    DATE_MACROS,
    ERAS,
    DateParseError,
    parse_date,
    parse_year_month,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2022/10/11", date(2022, 10, 11)),
        ("2022-10-11", date(2022, 10, 11)),
        ("20221011", date(2022, 10, 11)),
        ("令和4年10月11日", date(2022, 10, 11)),
        ("令和元年5月1日", date(2019, 5, 1)),
        ("R4.10.11", date(2022, 10, 11)),
        ("R04.10.11", date(2022, 10, 11)),
        ("H28/4/1", date(2016, 4, 1)),
        ("h28.4.1", date(2016, 4, 1)),
        ("5041011", date(2022, 10, 11)),
        ("4280401", date(2016, 4, 1)),
        ("3640107", date(1989, 1, 7)),
        ("昭和22年3月3日", date(1947, 3, 3)),
        ("S22.3.3", date(1947, 3, 3)),
        ("大正15年12月25日", date(1926, 12, 25)),
        ("昭和元年12月25日", date(1926, 12, 25)),
        ("明治45年7月30日", date(1912, 7, 30)),
        ("平成31年4月30日", date(2019, 4, 30)),
        ("平成元年1月8日", date(1989, 1, 8)),
        (" 2022/1/5 ", date(2022, 1, 5)),
    ],
)
def test_every_listed_form(text: str, expected: date) -> None:
    assert parse_date(text) == expected


def test_full_width_digits_after_nfkc() -> None:
    assert parse_date(normalise("令和４年１０月１１日")) == date(2022, 10, 11)
    assert parse_date(normalise("Ｒ４．１０．１１")) == date(2022, 10, 11)
    assert parse_date(normalise("５０４１０１１")) == date(2022, 10, 11)


@pytest.mark.parametrize("blank", [None, "", "   "])
def test_blank_is_unknown(blank: str | None) -> None:
    assert parse_date(blank) is None


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("R4.2.30", "存在しない日付"),
        ("2022/02/29", "存在しない日付"),
        ("20221399", "存在しない日付"),
        ("平成32年1月1日", "平成の期間外の日付"),
        ("平成31年5月1日", "平成の期間外の日付"),
        ("令和元年4月30日", "令和の期間外の日付"),
        ("昭和64年1月8日", "昭和の期間外の日付"),
        ("H0.1.1", "平成0年は存在しない"),
        ("6041011", "日付の形式として読めない"),
        ("2022年10月11日", "日付の形式として読めない"),
        ("昨日", "日付の形式として読めない"),
    ],
)
def test_invalid_dates_name_the_reason_without_the_value(text: str, reason: str) -> None:
    with pytest.raises(DateParseError) as err:
        parse_date(text)
    assert str(err.value) == reason


def test_era_boundary_heisei_reiwa() -> None:
    assert parse_date("平成31年4月30日") == date(2019, 4, 30)
    assert parse_date("令和元年5月1日") == date(2019, 5, 1)
    assert parse_date("4310430") == date(2019, 4, 30)
    assert parse_date("5010501") == date(2019, 5, 1)
    with pytest.raises(DateParseError):
        parse_date("4310501")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2022-10", "2022-10"),
        ("2022/10", "2022-10"),
        ("R4.10", "2022-10"),
        ("令和4年10月", "2022-10"),
        ("令和元年5月", "2019-05"),
        ("平成31年4月", "2019-04"),
    ],
)
def test_year_month_forms(text: str, expected: str) -> None:
    assert parse_year_month(text) == expected


@pytest.mark.parametrize("text", ["2022-13", "令和元年4月", "平成32年1月", "R4.0", "10月"])
def test_invalid_year_month(text: str) -> None:
    with pytest.raises(DateParseError):
        parse_year_month(text)


def _sql_dates(texts: list[str]) -> list[date | None]:
    con = duckdb.connect()
    for macro in DATE_MACROS:
        con.execute(macro)
    return [
        r[0]
        for r in con.execute(
            "SELECT wareki_date(t) FROM unnest(?) WITH ORDINALITY u(t, i) ORDER BY i", [texts]
        ).fetchall()
    ]


def _python(text: str) -> date | str:
    try:
        return parse_date(text)
    except DateParseError:
        return "error"


def _written(day: date, rng: random.Random) -> list[str]:
    """Every listed form of one day, in the era(s) it belongs to, plus a few near misses."""
    out = [f"{day.year}/{day.month}/{day.day}", f"{day:%Y-%m-%d}", f"{day:%Y%m%d}"]
    for e in ERAS:
        n = day.year - e.start.year + 1
        if 1 <= n <= 99:
            yy = "元" if n == 1 and rng.random() < 0.5 else str(n)
            out += [
                f"{e.name}{yy}年{day.month}月{day.day}日",
                f"{e.letter}{yy}.{day.month}.{day.day}",
                f"{e.letter.lower()}{n:02d}/{day.month:02d}-{day.day}",
                f"{e.code}{n:02d}{day:%m%d}",
                f"{e.name} {yy}年{day.month}月{day.day}日",
            ]  # a space: Python's alone
    return out


def test_the_sql_fast_path_agrees_with_the_parser_or_leaves_the_value_to_it() -> None:
    """parse_date is the reference: wherever wareki_date gives a date it is parse_date's,
    every plainly written valid date gets one, and every error is left to Python (NULL)."""
    rng = random.Random(7)
    days = [date(1868, 1, 25) + timedelta(days=rng.randrange(0, 60_000)) for _ in range(400)]
    for e in ERAS:  # each era's first and last day, and the days either side
        days += [e.start - timedelta(days=1), e.start] + (
            [e.end, e.end + timedelta(days=1)] if e.end < date(9999, 1, 1) else []
        )
    texts = [t for d in days for t in _written(d, rng)]
    texts += [
        "R4.2.30",
        "2022/02/29",
        "20221399",
        "平成32年1月1日",
        "平成31年5月1日",
        "令和元年4月30日",
        "昭和64年1月8日",
        "H0.1.1",
        "6041011",
        "2022年10月11日",
        "昨日",
        "0000/01/01",
        "00000101",
        "5000101",
        "R1.4.30",
        "S64.1.8",
        "T1.7.29",
        "H31.13.1",
        "R4.10.11x",
        "٢٠٢٢/10/11",
        "\t2022/1/5",
    ]
    fast = dict(zip(texts, _sql_dates(texts), strict=True))
    assert all(fast[t] == _python(t) for t in texts if fast[t] is not None)
    assert all(fast[t] is None for t in texts if _python(t) == "error")
    plain = [t for d in days for t in _written(d, rng) if " " not in t and _python(t) != "error"]
    assert None not in _sql_dates(plain)

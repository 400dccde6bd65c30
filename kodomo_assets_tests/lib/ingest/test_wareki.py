from datetime import date

import pytest

from kodomo_assets.lib.ingest.decode import normalise
from kodomo_assets.lib.ingest.wareki import DateParseError, parse_date, parse_year_month


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
    [("2022-10", "2022-10"), ("2022/10", "2022-10"), ("R4.10", "2022-10"),
     ("令和4年10月", "2022-10"), ("令和元年5月", "2019-05"), ("平成31年4月", "2019-04")],
)
def test_year_month_forms(text: str, expected: str) -> None:
    assert parse_year_month(text) == expected


@pytest.mark.parametrize("text", ["2022-13", "令和元年4月", "平成32年1月", "R4.0", "10月"])
def test_invalid_year_month(text: str) -> None:
    with pytest.raises(DateParseError):
        parse_year_month(text)

"""lib/partitions.py: the one home of month arithmetic on 基準月 keys."""

from datetime import date

import pytest

from kodomo_assets.lib.partitions import month_end, month_of, months_before, previous_month, shift


@pytest.mark.parametrize(
    ("month", "n", "expected"),
    [
        ("2022-10", 1, "2022-11"),
        ("2022-12", 1, "2023-01"),
        ("2023-01", -1, "2022-12"),
        ("2022-04", 12, "2023-04"),
        ("2022-04", -16, "2020-12"),
        ("2022-10", 0, "2022-10"),
    ],
)
def test_shift_crosses_years_both_ways(month: str, n: int, expected: str) -> None:
    assert shift(month, n) == expected


def test_previous_months_newest_first() -> None:
    assert previous_month("2023-01") == "2022-12"
    assert months_before("2023-02", 3) == ["2023-01", "2022-12", "2022-11"]
    assert months_before("2023-02", 0) == []


@pytest.mark.parametrize(
    ("month", "expected"),
    [
        ("2022-10", date(2022, 10, 31)),
        ("2024-02", date(2024, 2, 29)),
        ("2023-02", date(2023, 2, 28)),
        ("2022-12", date(2022, 12, 31)),
    ],
)
def test_month_end_is_the_last_day(month: str, expected: date) -> None:
    assert month_end(month) == expected


def test_the_month_of_a_day() -> None:
    assert month_of(date(2022, 11, 2)) == "2022-11"
    assert previous_month(month_of(date(2023, 1, 1))) == "2022-12"  # the schedule's month

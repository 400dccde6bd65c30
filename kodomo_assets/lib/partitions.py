"""Monthly partitions keyed by the reference month (基準月), e.g. 2022-10, and the one home
of month arithmetic on such keys."""

from datetime import date, timedelta

from dagster import MonthlyPartitionsDefinition

FIRST_MONTH = "2022-04"
monthly = MonthlyPartitionsDefinition(start_date=FIRST_MONTH, fmt="%Y-%m")


def shift(month: str, n: int) -> str:
    """The month `n` months after `month` (before it for negative n)."""
    y, m = (int(x) for x in month.split("-"))
    index = y * 12 + m - 1 + n
    return f"{index // 12}-{index % 12 + 1:02d}"


def previous_month(month: str) -> str:
    return shift(month, -1)


def months_before(month: str, n: int) -> list[str]:
    """The n months before `month`, newest first."""
    return [shift(month, -i) for i in range(1, n + 1)]


def month_of(day: date) -> str:
    return f"{day.year}-{day.month:02d}"


def month_end(month: str) -> date:
    """The last day of the month (the reference date of its data)."""
    return date.fromisoformat(f"{shift(month, 1)}-01") - timedelta(days=1)

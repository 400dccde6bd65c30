"""Monthly partitions keyed by the reference month (基準月), e.g. 2022-10."""

from dagster import MonthlyPartitionsDefinition

FIRST_MONTH = "2022-04"
monthly = MonthlyPartitionsDefinition(start_date=FIRST_MONTH, fmt="%Y-%m")

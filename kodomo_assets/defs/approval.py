"""The approval check every partitioned asset makes before it reads anything."""

from dagster import Failure

from kodomo_assets.lib.policy import ApprovalPeriodError, MonthApproval, PolicyError, load_policy


def approval_for(month: str) -> MonthApproval:
    try:
        return load_policy().for_month(month)
    except (ApprovalPeriodError, PolicyError, FileNotFoundError) as err:
        raise Failure(description=str(err), allow_retries=False) from None

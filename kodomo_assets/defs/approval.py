"""The approval check every partitioned asset makes before it reads anything: a period must
cover both the data month and the date of processing (the storage resource's clock)."""

from dagster import Failure

from kodomo_assets.lib.platform.storage import KodomoStorage
from kodomo_assets.lib.policy.approval import ApprovalPeriodError, MonthApproval, PolicyError


def approval_for(storage: KodomoStorage, month: str) -> MonthApproval:
    try:
        return storage.approval().in_force(month, storage.today())
    except (ApprovalPeriodError, PolicyError, FileNotFoundError) as err:
        raise Failure(description=str(err), allow_retries=False) from None

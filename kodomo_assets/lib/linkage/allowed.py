"""What the approval lets the linkage read: the pupil and resident keys, and the match fields
it allows; the rest reach the linkage as NULL."""

from kodomo_assets.lib.policy.approval import MonthApproval

MATCH_FIELDS = ("name_kana", "birth_date", "sex", "address")


def restricted(approval: MonthApproval, dataset: str, alias: str) -> str:
    """The dataset's columns that the approval allows for matching; NULL for the rest."""
    allowed = approval.columns(dataset, "match")
    keys = [
        c for c in ("pupil_no", "atena_no", "household_no") if approval.allows(dataset, c, "key")
    ]
    cols = keys + [c if c in allowed else f"NULL AS {c}" for c in MATCH_FIELDS]
    return f"(SELECT {', '.join(cols)} FROM {alias}.{dataset})"

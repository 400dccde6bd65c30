"""What the approval lets the linkage read: the pupil and resident keys, and the match fields
it allows; the rest reach the linkage as NULL."""

import duckdb

from kodomo_assets.lib.linkage.link import prepare_inputs
from kodomo_assets.lib.policy.approval import MonthApproval
from kodomo_assets.lib.registry import load_registry

MATCH_FIELDS = ("name_kana", "birth_date", "sex", "address")


def restricted(approval: MonthApproval, dataset: str, alias: str) -> str:
    """The dataset's columns that the approval allows for matching; NULL for the rest."""
    allowed = approval.columns(dataset, "match")
    keys = [
        c for c in ("pupil_no", "atena_no", "household_no") if approval.allows(dataset, c, "key")
    ]
    cols = keys + [c if c in allowed else f"NULL AS {c}" for c in MATCH_FIELDS]
    return f"(SELECT {', '.join(cols)} FROM {alias}.{dataset})"


def approved_inputs(con: duckdb.DuckDBPyConnection, approval: MonthApproval) -> frozenset[str]:
    """The linkage's views `residents` and `pupils` over the register and the 学齢簿, each
    attached under its department's code from the registry, restricted to what the approval
    allows. Returns the fields both sides may compare."""
    registry = load_registry()
    for dataset in ("jumin", "gakurei"):
        department = registry.datasets[dataset].department.code
        con.execute(f"CREATE TEMP VIEW {dataset}_ok AS {restricted(approval, dataset, department)}")
    prepare_inputs(con, "jumin_ok", "gakurei_ok")
    return frozenset(approval.columns("jumin", "match") & approval.columns("gakurei", "match"))

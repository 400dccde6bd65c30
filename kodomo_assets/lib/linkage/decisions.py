"""A steward's standing decisions on uncertain pupil-resident pairs (照合の判断).

`kodomo link-decisions` stores the decisions taken on a month's `link_review` in that month's
linkage zone (`link_decisions.duckdb`, encrypted like every zone file), each with a keyed
fingerprint of both records as they were compared. Every later month's linkage applies the
decisions whose two records are still exactly as the steward saw them: 同一 links the pair
without review, 別人 keeps it from being linked or listed. A change in either record lapses
the decision, and the pair is the linkage's to judge (and review) again. A decision lives as
long as its month's 保存期間 (照合の判断): the purge forgets it with the month.

Nothing here logs or raises a value: counts only.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass, replace
from pathlib import Path

import duckdb

from kodomo_assets.lib.linkage.link import (
    METHOD_ATENA,
    METHOD_ATENA_CHECKED,
    METHOD_SPLINK,
    LinkageResult,
)
from kodomo_assets.lib.platform.rows import one_row
from kodomo_assets.lib.platform.storage import KodomoStorage

SAME, DIFFERENT = "同一", "別人"
DECISIONS = (SAME, DIFFERENT)
METHOD_CONFIRMED = "職員の確認（同一）"
STORE = "link_decisions"
TABLE = "link_decision"
COLUMNS = (
    "pupil_no",
    "atena_no",
    "decision",
    "pupil_print",
    "resident_print",
    "decided_month",
    "decided_at",
    "decided_by",
)
# the fields the linkage compares (lib/linkage.prepare_inputs' views), as the approval lets them in
PUPIL_FIELDS = ("pupil_no", "atena_no", "name_kana", "birth_date", "sex", "address")
RESIDENT_FIELDS = ("atena_no", "name_kana", "birth_date", "sex", "address")


@dataclass(frozen=True)
class Decision:
    pupil_no: str
    atena_no: str
    decision: str
    pupil_print: str
    resident_print: str
    decided_month: str
    decided_at: str = ""
    decided_by: str = ""


@dataclass(frozen=True)
class Applied:
    """What the standing decisions did to a month's linkage (counts only)."""

    same: int = 0  # 同一 decisions in force: the pair is linked
    different: int = 0  # 別人 decisions in force: the pair is neither linked nor listed
    lapsed: int = 0  # a record changed (or the resident left the register) since the decision
    blocked: int = 0  # 同一 in force, but the resident is linked to another pupil this month
    linked: int = 0  # pupils linked by a 同一 decision (method 職員の確認（同一）)

    def adjust(
        self, r: LinkageResult, con: duckdb.DuckDBPyConnection, removed: dict[str, int]
    ) -> LinkageResult:
        """The linkage's counts after the decisions: review and unlinked recounted."""
        (review,) = one_row(con.execute("SELECT count(*) FROM link_review"))
        (links,) = one_row(con.execute("SELECT count(*) FROM pupil_link"))
        return replace(
            r,
            review=review,
            unlinked=r.pupils - links,
            deterministic=r.deterministic - removed.get(METHOD_ATENA, 0),
            checked=r.checked - removed.get(METHOD_ATENA_CHECKED, 0),
            probabilistic=r.probabilistic - removed.get(METHOD_SPLINK, 0),
        )


def apply_standing(
    con: duckdb.DuckDBPyConnection, storage: KodomoStorage, month: str, r: LinkageResult
) -> tuple[Applied, LinkageResult]:
    """The linkage asset's hook: apply the decisions of earlier months to `con`'s outputs,
    and the linkage's counts after them."""
    applied, removed = apply_decisions(con, print_key(storage), standing(storage, month))
    return applied, applied.adjust(r, con, removed)


def print_key(storage: KodomoStorage) -> bytes:
    return storage.storage_mac_key("link-decisions")


def store_path(storage: KodomoStorage, month: str) -> Path:
    return storage.zone_store("linkage", month, STORE)


def record_prints(
    con: duckdb.DuckDBPyConnection, key: bytes, pupils: set[str], residents: set[str]
) -> tuple[dict[str, str], dict[str, str]]:
    """Keyed fingerprints (HMAC-SHA256) of the named pupils' and residents' compared fields,
    read from the views `pupils` and `residents`. Keyed, so a fingerprint cannot be matched
    against guessed names and birth dates without the storage key."""

    def prints(view: str, fields: tuple[str, ...], key_col: str, ids: set[str]) -> dict[str, str]:
        if not ids:
            return {}
        rows: dict[str, list[list[str | None]]] = {}
        sql = (
            f"SELECT {', '.join(f'CAST({f} AS VARCHAR)' for f in fields)} FROM {view} "
            f"WHERE {key_col} IN (SELECT unnest(?::VARCHAR[]))"
        )
        for row in con.execute(sql, [sorted(ids)]).fetchall():
            rows.setdefault(row[fields.index(key_col)], []).append(list(row))
        return {
            k: hmac.new(
                key, json.dumps(sorted(v, key=str), ensure_ascii=False).encode(), hashlib.sha256
            ).hexdigest()
            for k, v in rows.items()
        }

    return (
        prints("pupils", PUPIL_FIELDS, "pupil_no", pupils),
        prints("residents", RESIDENT_FIELDS, "atena_no", residents),
    )


def read_decisions(storage: KodomoStorage, month: str) -> list[Decision]:
    """The decisions taken on one month's review list (none when there is no file)."""
    path = store_path(storage, month)
    if not path.exists():
        return []
    with storage.open(path) as con:
        return [
            Decision(*row)
            for row in con.execute(
                f"SELECT {', '.join(COLUMNS)} FROM {TABLE} ORDER BY pupil_no, atena_no"
            ).fetchall()
        ]


def standing(storage: KodomoStorage, month: str) -> list[Decision]:
    """Every decision taken on an earlier month's list and not yet purged; of two on the same
    pair, the later one."""
    months = sorted(
        p.parent.name
        for p in storage.home_path.glob(f"zones/linkage/*/{STORE}.duckdb")
        if p.parent.name < month
    )
    latest: dict[tuple[str, str], Decision] = {}
    for m in months:
        for d in read_decisions(storage, m):
            latest[(d.pupil_no, d.atena_no)] = d
    return list(latest.values())


def still_valid(
    con: duckdb.DuckDBPyConnection, key: bytes, decisions: list[Decision]
) -> tuple[list[Decision], int]:
    """The decisions whose two records are unchanged, and how many lapsed. A decision whose
    pupil is no longer on the 学齢簿 is neither: there is nothing to link."""
    pupils, residents = record_prints(
        con, key, {d.pupil_no for d in decisions}, {d.atena_no for d in decisions}
    )
    valid, lapsed = [], 0
    for d in decisions:
        if d.pupil_no not in pupils:
            continue
        # "" for a resident the register did not hold: a 別人 stands while it still does not
        if (
            pupils[d.pupil_no] == d.pupil_print
            and residents.get(d.atena_no, "") == d.resident_print
        ):
            valid.append(d)
        else:
            lapsed += 1
    # one 同一 per pupil and per resident: the latest
    same: dict[str, Decision] = {}
    for d in sorted(
        (d for d in valid if d.decision == SAME), key=lambda d: (d.decided_month, d.decided_at)
    ):
        same = {p: x for p, x in same.items() if x.atena_no != d.atena_no}
        same[d.pupil_no] = d
    return [d for d in valid if d.decision == DIFFERENT] + list(same.values()), lapsed


def apply_decisions(
    con: duckdb.DuckDBPyConnection, key: bytes, decisions: list[Decision]
) -> tuple[Applied, dict[str, int]]:
    """Change `pupil_link` and `link_review` in `con` (the linkage's outputs, beside its views
    `pupils` and `residents`) by the standing decisions. Returns the counts and the automatic
    links removed, by method."""
    valid, lapsed = still_valid(con, key, decisions)
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _ld AS SELECT * FROM (VALUES (NULL::VARCHAR, NULL::VARCHAR, "
        "NULL::VARCHAR)) t(pupil_no, atena_no, decision) WHERE false"
    )
    if valid:
        con.executemany(
            "INSERT INTO _ld VALUES (?, ?, ?)",
            [(d.pupil_no, d.atena_no, d.decision) for d in valid],
        )
    try:
        removed = dict(
            con.execute(f"""
            SELECT method, count(*) FROM pupil_link l SEMI JOIN _ld d
            ON d.pupil_no = l.pupil_no AND d.atena_no = l.atena_no AND d.decision = '{DIFFERENT}'
            GROUP BY method""").fetchall()
        )
        con.execute(f"""DELETE FROM pupil_link l USING _ld d WHERE d.decision = '{DIFFERENT}'
                        AND d.pupil_no = l.pupil_no AND d.atena_no = l.atena_no""")
        con.execute(f"""DELETE FROM link_review l USING _ld d WHERE d.decision = '{DIFFERENT}'
                        AND d.pupil_no = l.pupil_no AND d.atena_no = l.atena_no""")
        # a 同一 whose resident another pupil holds this month waits for review
        (blocked,) = one_row(
            con.execute(f"""SELECT count(*) FROM _ld d JOIN pupil_link l USING (atena_no)
            WHERE d.decision = '{SAME}' AND l.pupil_no <> d.pupil_no""")
        )
        con.execute(f"""CREATE OR REPLACE TEMP TABLE _ld_new AS
            SELECT d.pupil_no, d.atena_no, r.match_weight, r.match_probability
            FROM _ld d LEFT JOIN link_review r USING (pupil_no, atena_no)
            WHERE d.decision = '{SAME}'
              AND NOT EXISTS (SELECT 1 FROM pupil_link l WHERE l.atena_no = d.atena_no)""")
        # the steward's pair replaces what the automatic pass did with the pupil
        for method, n in con.execute("""SELECT method, count(*) FROM pupil_link
                WHERE pupil_no IN (SELECT pupil_no FROM _ld_new) GROUP BY method""").fetchall():
            removed[method] = removed.get(method, 0) + n
        con.execute("DELETE FROM pupil_link WHERE pupil_no IN (SELECT pupil_no FROM _ld_new)")
        con.execute("DELETE FROM link_review WHERE pupil_no IN (SELECT pupil_no FROM _ld_new)")
        con.execute(f"""INSERT INTO pupil_link (pupil_no, atena_no, method, match_weight, match_probability)
            SELECT pupil_no, atena_no, '{METHOD_CONFIRMED}', match_weight, match_probability FROM _ld_new""")
        con.execute(
            "CREATE OR REPLACE TABLE pupil_link AS SELECT * FROM pupil_link ORDER BY pupil_no"
        )
        (linked,) = one_row(
            con.execute(f"SELECT count(*) FROM pupil_link WHERE method = '{METHOD_CONFIRMED}'")
        )
    finally:
        con.execute("DROP TABLE IF EXISTS temp._ld")
        con.execute("DROP TABLE IF EXISTS temp._ld_new")
    same = sum(d.decision == SAME for d in valid)
    return Applied(
        same=same - blocked,
        different=len(valid) - same,
        lapsed=lapsed,
        blocked=blocked,
        linked=linked,
    ), removed


def write_decisions(con: duckdb.DuckDBPyConnection, decisions: list[Decision]) -> None:
    """The month's decisions as the table of a (staging) store open on `con`."""
    con.execute(f"CREATE OR REPLACE TABLE {TABLE} ({', '.join(f'{c} VARCHAR' for c in COLUMNS)})")
    con.executemany(
        f"INSERT INTO {TABLE} VALUES ({', '.join('?' * len(COLUMNS))})",
        [tuple(getattr(d, c) for c in COLUMNS) for d in decisions],
    )

"""No linkage attack: the analysis table against an insider who holds the resident register.

The attacker of threat-model property 2 has a decrypted copy of the analysis table and the
register, not the pseudonym key. From the register they compute every column of the table
that the register determines (age, sex, household composition, time at the address), with
the same coarsening, and join. Two things keep that join from naming a child:

- `enforce_k`: before publishing, a child whose published row the attack below would narrow
  to fewer than K residents has those columns set to unknown, a group at a time, in the
  order the linked table's spec gives (local suppression);
- `linkage_attack`: the attack itself, run on every publication. A published unknown
  matches any value, as the attacker would read it. The table is published only when at
  most 1% of children match exactly one resident and at most 5% match fewer than K.

The bounds are code, not configuration: no policy file relaxes them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import duckdb

from kodomo_assets.lib.platform.rows import one_row

K = 5
MAX_UNIQUE_SHARE = 0.01
MAX_BELOW_K_SHARE = 0.05


@dataclass(frozen=True)
class AttackResult:
    children: int
    unique: int  # children whose published row matches exactly one resident
    below_k: int  # children whose published row matches fewer than K residents
    min_k: int | None
    columns: tuple[str, ...]

    @property
    def unique_share(self) -> float:
        return self.unique / self.children if self.children else 0.0

    @property
    def below_k_share(self) -> float:
        return self.below_k / self.children if self.children else 0.0

    @property
    def passed(self) -> bool:
        return self.unique_share <= MAX_UNIQUE_SHARE and self.below_k_share <= MAX_BELOW_K_SHARE

    def message(self) -> str:
        return (
            f"連結攻撃（住民基本台帳から導ける列 {len(self.columns)} 列で照合）: 一人に特定される児童 "
            f"{self.unique_share:.2%}（上限 {MAX_UNIQUE_SHARE:.0%}）、{K} 人未満に絞られる児童 "
            f"{self.below_k_share:.2%}（上限 {MAX_BELOW_K_SHARE:.0%}）、最小の k = {self.min_k}"
        )


def _partition(columns: Sequence[str]) -> str:
    return ", ".join(f'"{c}"' for c in columns)


def _fit(
    con: duckdb.DuckDBPyConnection,
    published: str,
    register: str,
    columns: Sequence[str],
    fixed: Sequence[str],
) -> None:
    """TEMP TABLE _fit: each distinct published pattern, its children (n) and the residents
    it fits (k). A published unknown fits any value; `fixed` columns are never suppressed,
    so they are matched exactly (a hash join, which keeps this fast at city scale)."""
    cols = _partition(columns)
    fits = (
        " AND ".join(
            [f'p."{c}" IS NOT DISTINCT FROM r."{c}"' for c in fixed]
            + [f'(p."{c}" IS NULL OR p."{c}" = r."{c}")' for c in columns if c not in fixed]
        )
        or "true"
    )
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _fit AS
        WITH p AS (SELECT row_number() OVER () AS pattern, *
                   FROM (SELECT {cols}, count(*) AS n FROM {published} GROUP BY ALL)),
             r AS (SELECT {cols}, count(*) AS m FROM {register} GROUP BY ALL),
             k AS (SELECT p.pattern, coalesce(sum(r.m), 0) AS k FROM p LEFT JOIN r ON {fits}
                   GROUP BY p.pattern)
        SELECT p.*, k.k FROM p JOIN k USING (pattern)""")


def enforce_k(
    con: duckdb.DuckDBPyConnection,
    table: str,
    register: str,
    columns: Sequence[str],
    order: Sequence[Sequence[str]],
    k: int = K,
) -> dict[str, int]:
    """Set quasi-identifiers to unknown, group by group in `order`, for every row that the
    attack below would narrow to fewer than k residents. Returns the rows suppressed per
    group (counts only)."""
    suppressed: dict[str, int] = {}
    same = " AND ".join(f't."{c}" IS NOT DISTINCT FROM f."{c}"' for c in columns)
    fixed = [c for c in columns if not any(c in g for g in order)]
    for group in order:
        _fit(con, table, register, columns, fixed)
        (n,) = one_row(con.execute(f"SELECT coalesce(sum(n), 0) FROM _fit WHERE k < {k}"))
        if n == 0:
            break
        sets = ", ".join(f'"{c}" = NULL' for c in group)
        con.execute(
            f"UPDATE {table} t SET {sets} FROM (SELECT * FROM _fit WHERE k < {k}) f WHERE {same}"
        )
        suppressed["・".join(group)] = int(n)
    con.execute("DROP TABLE IF EXISTS _fit")
    return suppressed


def linkage_attack(
    con: duckdb.DuckDBPyConnection,
    published: str,
    register: str,
    columns: Sequence[str],
    fixed: Sequence[str] = (),
    k: int = K,
) -> AttackResult:
    """Join the published rows to the register's rows on `columns`: how many residents
    does each child's published row fit? Computed over distinct patterns, so it stays
    cheap at city scale. `fixed`: columns the table never suppresses."""
    _fit(con, published, register, columns, fixed)
    row = one_row(
        con.execute(f"""
        SELECT coalesce(sum(n), 0), coalesce(sum(n) FILTER (k = 1), 0),
               coalesce(sum(n) FILTER (k BETWEEN 1 AND {k - 1}), 0), min(k) FILTER (k > 0)
        FROM _fit""")
    )
    con.execute("DROP TABLE IF EXISTS _fit")
    return AttackResult(
        children=int(row[0]),
        unique=int(row[1]),
        below_k=int(row[2]),
        min_k=None if row[3] is None else int(row[3]),
        columns=tuple(columns),
    )

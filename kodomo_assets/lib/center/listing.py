"""確認リスト's selection in SQL: the month's scores beside the previous month's and the
results returned lately, the two sections, and the listed children re-identified through
the register (only they are mapped back)."""

from __future__ import annotations

import duckdb

from kodomo_assets.lib.center.feedback import NOT_CONFIRMED
from kodomo_assets.lib.center.feedback import STORE as FEEDBACK_STORE
from kodomo_assets.lib.center.review_list import NEW, RISEN, TABLE
from kodomo_assets.lib.partitions import months_before
from kodomo_assets.lib.platform.rows import one_row
from kodomo_assets.lib.platform.storage import KodomoStorage
from kodomo_assets.lib.scoring.linked_table import month_sql
from kodomo_assets.lib.scoring.risk_scores import TABLE as SCORES_TABLE

COLUMNS = [
    "section",
    "rank",
    "atena_no",
    "child_token",
    "score",
    "prev_score",
    "indicators",
    "reasons",
    "facts_asof",
    "fact_sources",
    "prev_result",
    "prev_result_month",
]

# the resident register's department store, attached under this name to map the listed
# pseudonyms back to 宛名番号
REGISTER = "resident_register"


def verified_before(
    storage: KodomoStorage, con: duckdb.DuckDBPyConnection, month: str, n: int
) -> str:
    """SQL for each child's latest verification result on the n lists before (pseudonyms,
    from the signed results the center returned), attaching what exists. A month's results
    store holds the previous month's list: this month's and the n − 1 before."""
    parts = []
    for i, m in enumerate([month, *months_before(month, n - 1)] if n else []):
        path = storage.zone_store("analysis", m, FEEDBACK_STORE)
        if path.exists():
            storage.attach(con, f"fb{i}", path)
            parts.append(
                f"SELECT child_token, result, list_month, indicators FROM fb{i}.verification"
            )
    union = " UNION ALL ".join(parts) or (
        "SELECT NULL::VARCHAR AS child_token, NULL::VARCHAR AS result, "
        "NULL::VARCHAR AS list_month, NULL::VARCHAR[] AS indicators WHERE false"
    )
    return (
        f"(SELECT * FROM ({union}) QUALIFY row_number() OVER "
        "(PARTITION BY child_token ORDER BY list_month DESC) = 1)"
    )


def build(
    con: duckdb.DuckDBPyConnection, month: str, k: int, rise: float, verified: str, prev: bool
) -> tuple[int, int]:
    """TEMP TABLE listed and TABLE from `scores`, REGISTER and (`prev`) `prev` attached to
    `con`: the children listed and those mapped back to a 宛名番号."""
    prev_sql = (
        "prev.risk_scores"
        if prev
        else "(SELECT NULL::VARCHAR AS child_token, NULL::DOUBLE AS score WHERE false)"
    )
    # re-identification: only the listed tokens are mapped back, through the register
    con.execute(f"""
        CREATE TEMP TABLE listed AS
        WITH s AS (SELECT s.*, p.score AS prev_score, v.result AS prev_result,
                          v.list_month AS prev_result_month,
                          -- 非該当 lately, and no indicator fires that did not fire then
                          coalesce(v.result = '{NOT_CONFIRMED}' AND list_has_all(v.indicators, s.indicators),
                                   false) AS no_news
                   FROM scores.{SCORES_TABLE} s LEFT JOIN {prev_sql} p USING (child_token)
                   LEFT JOIN {verified} v USING (child_token)),
        new AS (SELECT '{NEW}' AS section,
                       row_number() OVER (ORDER BY rank) AS section_rank, *  -- risk_scores' order
                FROM s WHERE NOT center_known AND NOT no_news QUALIFY section_rank <= {k}),
        risen AS (SELECT '{RISEN}' AS section,
                         row_number() OVER (ORDER BY score - prev_score DESC, child_token) AS section_rank, *
                  FROM s WHERE center_known AND score - prev_score >= {rise})
        SELECT * FROM new UNION ALL SELECT * FROM risen
    """)
    con.execute(f"""
        CREATE TABLE {TABLE} AS
        SELECT l.section, l.section_rank::INTEGER AS rank, j.atena_no, l.child_token, l.score, l.prev_score,
               l.indicators, l.reasons, l.facts_asof, l.fact_sources, l.prev_result, l.prev_result_month
        FROM listed l JOIN (SELECT atena_no, pseudonym_child(atena_no) AS child_token
                            FROM {REGISTER}.jumin  -- children only: the HMAC is the cost
                            WHERE birth_date > {month_sql(month)["asof"]} - INTERVAL 19 YEAR) j USING (child_token)
        ORDER BY l.section <> '{NEW}', l.section_rank
    """)
    listed, joined = one_row(
        con.execute(f"SELECT (SELECT count(*) FROM listed), (SELECT count(*) FROM {TABLE})")
    )
    return int(listed), int(joined)


def figures(con: duckdb.DuckDBPyConnection, verified: str) -> tuple[dict[str, int], int, int]:
    """Counts only: per section, the children held back after 非該当, those without reason."""
    counts = dict(con.execute(f"SELECT section, count(*) FROM {TABLE} GROUP BY 1").fetchall())
    (held_back,) = one_row(
        con.execute(f"""
        SELECT count(*) FROM scores.{SCORES_TABLE} s JOIN {verified} v USING (child_token)
        WHERE NOT s.center_known AND v.result = '{NOT_CONFIRMED}' AND list_has_all(v.indicators, s.indicators)
          AND s.rank <= (SELECT coalesce(max(rank), 0) FROM listed WHERE section = '{NEW}')""")
    )
    (no_reason,) = one_row(con.execute(f"SELECT count(*) FROM {TABLE} WHERE len(reasons) = 0"))
    return counts, held_back, no_reason

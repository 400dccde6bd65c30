"""Link 学齢簿 pupils to 住民基本台帳 residents.

A pupil whose 宛名番号 is filled in is linked by it, after a check that kana and birth date
agree; when they do not, the pair is weighed on the same evidence as a blank pupil's
(lib/linkage/compare.py). A blank pupil goes through a Splink model (DuckDB) whose m-probabilities are learnt
from the 宛名番号 links themselves; a seeded share of those links is also scored as if
blank, to measure precision and recall. Only unambiguous, high-probability pairs are
linked; the rest go to `link_review` for a steward.

Reads the views `residents` and `pupils` (see prepare_inputs) and writes the tables
`pupil_link` (one row per linked pupil, one-to-one) and `link_review`, whose reasons are
the REASON_* strings below. Nothing here prints or logs a row value: it runs inside
Dagster, whose logs every user sees.
"""

from __future__ import annotations

import logging
import math
import re
import time
from dataclasses import dataclass

import duckdb
import pyarrow as pa
from splink import DuckDBAPI, Linker, SettingsCreator

from kodomo_assets.lib.linkage.compare import (
    BIRTH_EXACT,
    GIVEN_MIDDLE,
    GIVEN_SAME_READING,
    blocking,
    columns,
    comparisons,
)
from kodomo_assets.lib.platform.rows import one_row

METHOD_ATENA = "宛名番号"
METHOD_ATENA_CHECKED = "宛名番号（確率的照合で確認）"
METHOD_SPLINK = "確率的照合"
REASON_NOT_FOUND = "宛名番号が住民基本台帳にない"
REASON_DISAGREE = "宛名番号はあるが氏名カナ・生年月日が一致しない"
REASON_UNCERTAIN = "確率的照合の不確実帯"
REASON_DUPLICATE = "宛名番号が複数の児童生徒で重複している"
REASON_TAKEN = "一致した住民は宛名番号で連携済み"

ALL_FIELDS = frozenset({"name_kana", "birth_date", "sex", "address"})
MARGIN = 4.0  # match-weight points a runner-up must trail the best pair by
M_FLOOR = 0.01  # no level is impossible for a true match (see _floor_m)
TRAIN_PAIRS = 50_000  # labelled pairs for m: plenty, and bounded at city scale
# u of the name levels: 1.2e6 random pairs hold plenty at about half the cost of 2e6 (at exactly
# 1e6, its default, Splink prints a warning to the terminal)
U_MAX_PAIRS = 1.2e6

# typed explicitly: a caller may pass NULL for a column the approval does not allow
PREPARE_SQL = """
CREATE OR REPLACE TEMP VIEW residents AS
SELECT CAST(atena_no AS VARCHAR) AS atena_no, CAST(household_no AS VARCHAR) AS household_no,
       {kana} AS name_kana, CAST(birth_date AS DATE) AS birth_date, CAST(sex AS VARCHAR) AS sex,
       {address} AS address
FROM {jumin};
CREATE OR REPLACE TEMP VIEW pupils AS
SELECT CAST(pupil_no AS VARCHAR) AS pupil_no, nullif(trim(CAST(atena_no AS VARCHAR)), '') AS atena_no,
       {kana} AS name_kana, CAST(birth_date AS DATE) AS birth_date, CAST(sex AS VARCHAR) AS sex,
       {address} AS address
FROM {gakurei};
"""
KANA_SQL = (
    r"nullif(trim(regexp_replace(CAST(name_kana AS VARCHAR), '[\s\x{3000}]+', ' ', 'g')), '')"
)
ADDRESS_SQL = "nullif(trim(CAST(address AS VARCHAR)), '')"
STORE = "pupil_links"  # the linkage zone's file of the month's links
TABLE_NAME = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*){0,2}")


@dataclass
class LinkageResult:
    pupils: int
    deterministic: int
    checked: int  # 宛名番号 pupils whose kana or birth date disagreed, linked on the evidence
    probabilistic: int
    review: int
    unlinked: int
    holdout_pairs: int
    precision: float | None
    recall: float | None
    holdout_disagreeing: int  # held-out pupils whose records disagree with their resident's
    recall_disagreeing: float | None
    twins_cross_linked: int
    m_probabilities: dict
    seconds: float


def prepare_inputs(con: duckdb.DuckDBPyConnection, jumin: str, gakurei: str) -> None:
    """Create the temp views `residents` and `pupils` that link_pupils() reads."""
    for name in (jumin, gakurei):
        if not TABLE_NAME.fullmatch(name):
            raise ValueError(f"not a table name: {name!r}")
    con.execute(
        PREPARE_SQL.format(jumin=jumin, gakurei=gakurei, kana=KANA_SQL, address=ADDRESS_SQL)
    )


def link_pupils(
    con: duckdb.DuckDBPyConnection,
    *,
    seed: int,
    holdout_share: float = 0.1,
    fields: frozenset[str] = ALL_FIELDS,
    lower: float = 0.80,
    upper: float = 0.99,
) -> LinkageResult:
    """Create `pupil_link` and `link_review` in `con` from its `residents` and `pupils`
    (see the module docstring). Blank pupils are scored only when at least two of the
    matching fields are approved and there are 宛名番号 links to learn m from."""
    started = time.perf_counter()
    if not (0 < lower < 1 and lower <= upper <= 1):
        raise ValueError("need 0 < lower < 1 and lower <= upper <= 1")
    fields = frozenset(fields) & ALL_FIELDS  # other approved columns are not matching fields here
    logging.getLogger("splink").setLevel(logging.WARNING)
    try:
        scoring = len(fields) >= 2  # one field alone cannot tell children apart
        _snapshot(con)
        _deterministic(con, fields)
        _holdout(con, seed, holdout_share if scoring else 0.0)
        _training(con, seed)
        _candidates(con)
        m_probabilities = _score(con, fields, seed, lower) if scoring else _no_scores(con)
        _decide(con, lower, upper)
        _write_outputs(con)
        return _result(con, m_probabilities, time.perf_counter() - started)
    finally:
        for table in (
            "_lk_pup",
            "_lk_res",
            "_lk_det",
            "_lk_holdout",
            "_lk_train",
            "_lk_cand",
            "_lk_scored",
            "_lk_decided",
        ):
            con.execute(f"DROP TABLE IF EXISTS temp.{table}")  # never a table of the caller's


# --- deterministic ---------------------------------------------------------------------


def _snapshot(con: duckdb.DuckDBPyConnection) -> None:
    """Read the inputs once: every pupil, and the residents that can matter - those of
    pupil age (the pupils' birth dates, a year either side) and those a pupil's 宛名番号
    names - each flagged when a same-household, same-birth-date sibling (a twin) exists."""
    con.execute("""
        CREATE OR REPLACE TEMP TABLE _lk_pup AS
        SELECT pupil_no, nullif(atena_no, '') AS atena_no, name_kana, birth_date, sex, address
        FROM pupils;
        CREATE OR REPLACE TEMP TABLE _lk_res AS
        WITH span AS (
            SELECT min(birth_date) - INTERVAL 1 YEAR AS lo, max(birth_date) + INTERVAL 1 YEAR AS hi
            FROM _lk_pup
        ), kept AS (
            SELECT r.*, span.lo IS NULL OR r.birth_date IS NULL
                        OR r.birth_date BETWEEN span.lo AND span.hi AS pupil_age
            FROM residents r, span
        )
        SELECT *, household_no IS NOT NULL AND birth_date IS NOT NULL
               AND count(*) OVER (PARTITION BY household_no, birth_date) > 1 AS has_twin
        FROM kept
        WHERE atena_no IS NOT NULL AND (pupil_age OR atena_no IN (SELECT atena_no FROM _lk_pup))
    """)


def _deterministic(con: duckdb.DuckDBPyConnection, fields: frozenset[str]) -> None:
    """One row per pupil with a 宛名番号, with its status. The agreement check compares
    only approved fields; with neither kana nor birth date approved the number stands alone.
    A pupil whose kana or birth date disagrees is not refused for that: when no one else
    names the resident, the probabilistic pass weighs the pair like any other."""
    kana = (
        "replace(p.name_kana, ' ', '') = replace(r.name_kana, ' ', '')"
        if "name_kana" in fields
        else "NULL::BOOLEAN"
    )
    birth = "p.birth_date = r.birth_date" if "birth_date" in fields else "NULL::BOOLEAN"
    agrees = (
        "coalesce(kana_ok, birth_ok) AND coalesce(birth_ok, kana_ok)"
        if fields & {"name_kana", "birth_date"}
        else "true"
    )
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _lk_det AS
        WITH joined AS (
            SELECT p.pupil_no, p.atena_no, r.atena_no IS NOT NULL AS found,
                   {kana} AS kana_ok, {birth} AS birth_ok
            FROM _lk_pup p LEFT JOIN _lk_res r ON r.atena_no = p.atena_no
            WHERE p.atena_no IS NOT NULL
        ), checked AS (
            SELECT pupil_no, atena_no, found, found AND coalesce({agrees}, false) AS agrees
            FROM joined
        )
        SELECT pupil_no, atena_no, agrees AND claims = 1 AS linked,
               -- disagreeing, and the only pupil naming the resident: checked on the evidence
               found AND NOT agrees AND named = 1 AS checked,
               CASE WHEN NOT found THEN '{REASON_NOT_FOUND}'
                    WHEN NOT agrees THEN '{REASON_DISAGREE}'
                    WHEN claims > 1 THEN '{REASON_DUPLICATE}' END AS reason
        FROM (SELECT *, count(*) FILTER (WHERE agrees) OVER (PARTITION BY atena_no) AS claims,
                     count(*) OVER (PARTITION BY atena_no) AS named
              FROM checked)
    """)


def _holdout(con: duckdb.DuckDBPyConnection, seed: int, share: float) -> None:
    """A seeded, exact share of the 宛名番号 pupils that name their resident alone, chosen
    by a hash of pupil_no: those whose records disagree too, so variants are measured."""
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE _lk_holdout AS
        SELECT pupil_no, atena_no FROM _lk_det WHERE linked OR checked
        QUALIFY row_number() OVER (ORDER BY md5(?::VARCHAR || ':' || pupil_no), pupil_no)
                <= round(?::DOUBLE * count(*) OVER ())
    """,
        [seed, max(0.0, min(1.0, share))],
    )


def _training(con: duckdb.DuckDBPyConnection, seed: int) -> None:
    """The labelled pairs for m: 宛名番号 pupils outside the holdout (a seeded sample at
    most), disagreeing ones included, so the variants' levels are learnt, not floored."""
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _lk_train AS
        SELECT d.pupil_no, d.atena_no FROM _lk_det d ANTI JOIN _lk_holdout h USING (pupil_no)
        WHERE d.linked OR d.checked ORDER BY md5(?::VARCHAR || ':' || d.pupil_no), d.pupil_no LIMIT {TRAIN_PAIRS}
    """,
        [seed],
    )


def _candidates(con: duckdb.DuckDBPyConnection) -> None:
    """Residents of pupil age not already claimed by a (non-held-out) 宛名番号 link."""
    con.execute("""
        CREATE OR REPLACE TEMP TABLE _lk_cand AS
        SELECT * FROM _lk_res
        WHERE pupil_age AND atena_no NOT IN (
            SELECT d.atena_no FROM _lk_det d ANTI JOIN _lk_holdout h USING (pupil_no) WHERE d.linked)
    """)


# --- probabilistic ---------------------------------------------------------------------


def _inputs(con: duckdb.DuckDBPyConnection, fields: frozenset[str]) -> dict[str, pa.Table]:
    cols_p, cols_r = columns(fields, "p"), columns(fields, "r")
    # a checked pupil's own resident is always compared (blocking on it); a held-out one
    # is scored as if blank
    claimed = """(SELECT d.atena_no FROM _lk_det d WHERE d.pupil_no = p.pupil_no AND d.checked
                  AND d.pupil_no NOT IN (SELECT pupil_no FROM _lk_holdout)) AS claimed_atena_no"""
    queries = {
        "score_pupils": f"""SELECT p.pupil_no AS unique_id, {cols_p}, {claimed} FROM _lk_pup p
            WHERE p.atena_no IS NULL OR p.pupil_no IN (SELECT pupil_no FROM _lk_holdout)
               OR p.pupil_no IN (SELECT pupil_no FROM _lk_det WHERE checked)""",
        "score_residents": f"SELECT r.atena_no AS unique_id, {cols_r}, r.atena_no AS claimed_atena_no FROM _lk_cand r",
        "train_pupils": f"""SELECT p.pupil_no AS unique_id, {cols_p}, NULL::VARCHAR AS claimed_atena_no
            FROM _lk_pup p WHERE p.pupil_no IN (SELECT pupil_no FROM _lk_train)""",
        "train_residents": f"""SELECT r.atena_no AS unique_id, {cols_r}, NULL::VARCHAR AS claimed_atena_no
            FROM _lk_res r WHERE r.atena_no IN (SELECT atena_no FROM _lk_train)""",
        "labels": """SELECT 'pupils' AS source_dataset_l, pupil_no AS unique_id_l,
            'residents' AS source_dataset_r, atena_no AS unique_id_r,
            1.0 AS clerical_match_score FROM _lk_train""",
    }
    return {name: con.sql(sql).to_arrow_table() for name, sql in queries.items()}


def _floor_m(model: dict) -> dict[str, list[float]]:
    """Floor and renormalise the m of every level. The training pairs passed the
    agreement check, so disagreeing kana or birth dates are unseen by construction,
    not impossible; an unseen level would otherwise get m = 1e-6 and veto any pair."""
    out = {}
    for comp in model["comparisons"]:
        levels = [lv for lv in comp["comparison_levels"] if not lv.get("is_null_level")]
        ms = [max(float(lv.get("m_probability") or 0.0), M_FLOOR) for lv in levels]
        total = sum(ms)
        for lv, m in zip(levels, ms, strict=True):
            lv["m_probability"] = m / total
        out[comp["output_column_name"]] = [round(m / total, 6) for m in ms]
    return out


def _score(
    con: duckdb.DuckDBPyConnection, fields: frozenset[str], seed: int, lower: float
) -> dict[str, list[float]]:
    """Score blank and held-out pupils against the candidates into `_lk_scored`."""
    frames = _inputs(con, fields)
    if not (
        frames["score_pupils"].num_rows
        and frames["score_residents"].num_rows
        and frames["labels"].num_rows
    ):
        _no_scores(con)
        return {}
    splink_con = duckdb.connect()
    try:
        splink_con.execute("SET enable_progress_bar = false")
        db = DuckDBAPI(connection=splink_con)
        sdf = {
            name: db.register(table, table_name=name, dataset_display_name=name.split("_")[-1])
            for name, table in frames.items()
            if name != "labels"
        }
        labels = db.register(frames["labels"], table_name="labels")
        settings = SettingsCreator(
            link_type="link_only",
            unique_id_column_name="unique_id",
            comparisons=comparisons(fields),
            blocking_rules_to_generate_predictions=blocking(fields),
            retain_matching_columns=True,
            retain_intermediate_calculation_columns=False,
        )
        trainer = Linker([sdf["train_pupils"], sdf["train_residents"]], settings, log_level=None)
        trainer.training.estimate_m_from_pairwise_labels(labels)
        model = trainer.misc.save_model_to_json()
        m_probabilities = _floor_m(model)
        # prior: each scored pupil matches at most one candidate
        model["probability_two_random_records_match"] = 1 / frames["score_residents"].num_rows
        linker = Linker([sdf["score_pupils"], sdf["score_residents"]], model, log_level=None)
        linker.training.estimate_u_using_random_sampling(max_pairs=U_MAX_PAIRS, seed=seed)
        floor = min(_weight(lower), 0.0) - MARGIN - 1  # low enough to see every close runner-up
        # a level the u sample never saw (say, same building but another room) keeps
        # Splink's u = 1e-6, about one in the pairs sampled: no warning needed for that
        scored = linker.inference.predict(
            threshold_match_weight=floor, warning_mode="never"
        ).as_pyarrow_table()
    finally:
        splink_con.close()
    _store_scores(con, scored)
    return m_probabilities


def _weight(probability: float) -> float:
    return math.log2(probability / (1 - probability))


def _no_scores(con: duckdb.DuckDBPyConnection) -> dict[str, list[float]]:
    con.execute("""CREATE OR REPLACE TEMP TABLE _lk_scored (pupil_no VARCHAR, atena_no VARCHAR,
        match_weight DOUBLE, match_probability DOUBLE, given_level INTEGER, birth_level INTEGER)""")
    return {}


def _store_scores(con: duckdb.DuckDBPyConnection, scored: pa.Table) -> None:
    given = "gamma_given_kana" if "gamma_given_kana" in scored.column_names else "NULL::INTEGER"
    birth = "gamma_birth_date" if "gamma_birth_date" in scored.column_names else "NULL::INTEGER"
    con.register("_lk_splink_out", scored)
    try:
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE _lk_scored AS
            SELECT CASE WHEN source_dataset_l = 'pupils' THEN unique_id_l ELSE unique_id_r END AS pupil_no,
                   CASE WHEN source_dataset_l = 'pupils' THEN unique_id_r ELSE unique_id_l END AS atena_no,
                   match_weight::DOUBLE AS match_weight, match_probability::DOUBLE AS match_probability,
                   {given} AS given_level, {birth} AS birth_level
            FROM _lk_splink_out
        """)
    finally:
        con.unregister("_lk_splink_out")


# --- decisions and outputs -------------------------------------------------------------


def _decide(con: duckdb.DuckDBPyConnection, lower: float, upper: float) -> None:
    """Each scored pupil's best pair at probability >= lower, and what to do with it.
    A pair is linked only if it is the clear best both for its pupil and for its
    resident and its probability reaches `upper`: no single weak field vetoes it, the
    weights decide, but for twins. They differ only in the given name, often by a kana or
    two (ユウト/ユウマ), so a resident with a twin in the register needs the same given
    name or reading (and is never linked without name_kana), and a pair that agrees on the
    birth date needs given names no further apart than a dropped middle name (the twin
    may be missing from the register). A pupil whose 宛名番号 was checked
    is linked only to that resident. Otherwise a steward decides."""
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _lk_decided AS
        WITH ranked AS (
            SELECT s.*, c.has_twin,
                   row_number() OVER (PARTITION BY pupil_no ORDER BY match_weight DESC, atena_no) AS rank_p,
                   lead(match_weight) OVER (PARTITION BY pupil_no ORDER BY match_weight DESC, atena_no) AS next_p,
                   row_number() OVER (PARTITION BY atena_no ORDER BY match_weight DESC, pupil_no) AS rank_r,
                   lead(match_weight) OVER (PARTITION BY atena_no ORDER BY match_weight DESC, pupil_no) AS next_r
            FROM _lk_scored s JOIN _lk_cand c USING (atena_no)
        ), best AS (
            SELECT r.*, h.pupil_no IS NOT NULL AS holdout, d.atena_no AS claimed
            FROM ranked r LEFT JOIN _lk_holdout h USING (pupil_no)
            LEFT JOIN (SELECT pupil_no, atena_no FROM _lk_det WHERE checked) d USING (pupil_no)
            WHERE rank_p = 1 AND match_probability >= {float(lower)}
        )
        SELECT pupil_no, atena_no, match_weight, match_probability, holdout, claimed,
               CASE WHEN rank_r > 1 OR next_p > match_weight - {MARGIN}
                         OR next_r > match_weight - {MARGIN} THEN 'uncertain'
                    WHEN has_twin AND coalesce(given_level, -1) < {GIVEN_SAME_READING} THEN 'uncertain'
                    WHEN birth_level = {BIRTH_EXACT} AND given_level < {GIVEN_MIDDLE} THEN 'uncertain'
                    WHEN match_probability < {float(upper)} THEN 'uncertain'
                    WHEN NOT holdout AND atena_no IN (SELECT atena_no FROM _lk_holdout) THEN 'taken'
                    ELSE 'link' END AS decision
        FROM best
    """)


def _write_outputs(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(f"""
        CREATE OR REPLACE TABLE pupil_link AS
        SELECT pupil_no, atena_no, '{METHOD_ATENA}' AS method,
               NULL::DOUBLE AS match_weight, NULL::DOUBLE AS match_probability
        FROM _lk_det WHERE linked
        UNION ALL
        SELECT pupil_no, atena_no, '{METHOD_SPLINK}', match_weight, match_probability
        FROM _lk_decided WHERE decision = 'link' AND NOT holdout AND claimed IS NULL
        UNION ALL
        SELECT pupil_no, atena_no, '{METHOD_ATENA_CHECKED}', match_weight, match_probability
        FROM _lk_decided WHERE decision = 'link' AND atena_no = claimed
        ORDER BY pupil_no
    """)
    con.execute(f"""
        CREATE OR REPLACE TABLE link_review AS
        SELECT pupil_no, atena_no, reason, NULL::DOUBLE AS match_weight, NULL::DOUBLE AS match_probability
        FROM _lk_det WHERE NOT linked
            AND pupil_no NOT IN (SELECT pupil_no FROM pupil_link WHERE method = '{METHOD_ATENA_CHECKED}')
        UNION ALL
        SELECT pupil_no, atena_no,
               CASE decision WHEN 'taken' THEN '{REASON_TAKEN}' ELSE '{REASON_UNCERTAIN}' END,
               match_weight, match_probability
        FROM _lk_decided WHERE decision <> 'link' AND NOT holdout AND claimed IS NULL
        ORDER BY pupil_no
    """)


def _result(con: duckdb.DuckDBPyConnection, m_probabilities: dict, seconds: float) -> LinkageResult:
    (pupils,) = one_row(con.execute("SELECT count(*) FROM _lk_pup"))
    deterministic, checked, probabilistic = one_row(
        con.execute(f"""
        SELECT count(*) FILTER (WHERE method = '{METHOD_ATENA}'),
               count(*) FILTER (WHERE method = '{METHOD_ATENA_CHECKED}'),
               count(*) FILTER (WHERE method = '{METHOD_SPLINK}') FROM pupil_link""")
    )
    (review,) = one_row(con.execute("SELECT count(*) FROM link_review"))
    holdout_checked, correct_checked = one_row(
        con.execute("""
        SELECT count(*), count(*) FILTER (WHERE x.atena_no = h.atena_no AND x.decision = 'link')
        FROM _lk_holdout h JOIN _lk_det d USING (pupil_no) LEFT JOIN _lk_decided x USING (pupil_no)
        WHERE d.checked""")
    )
    holdout, linked, correct, twins = one_row(
        con.execute("""
        SELECT (SELECT count(*) FROM _lk_holdout),
               count(d.pupil_no),
               count(*) FILTER (WHERE d.atena_no = h.atena_no),
               count(*) FILTER (WHERE d.atena_no <> h.atena_no AND got.household_no = truth.household_no
                                AND got.birth_date = truth.birth_date)
        FROM _lk_decided d
        JOIN _lk_holdout h USING (pupil_no)
        LEFT JOIN _lk_res got ON got.atena_no = d.atena_no
        LEFT JOIN _lk_res truth ON truth.atena_no = h.atena_no
        WHERE d.decision = 'link'
    """)
    )
    return LinkageResult(
        pupils=pupils,
        deterministic=deterministic,
        checked=checked,
        probabilistic=probabilistic,
        review=review,
        unlinked=pupils - deterministic - checked - probabilistic,
        holdout_pairs=holdout,
        holdout_disagreeing=holdout_checked,
        recall_disagreeing=correct_checked / holdout_checked if holdout_checked else None,
        # precision is undefined when nothing held out was auto-linked
        precision=correct / linked if linked else None,
        recall=correct / holdout if holdout else None,
        twins_cross_linked=twins,
        m_probabilities=m_probabilities,
        seconds=round(seconds, 3),
    )

"""The linkage judged against the demo generator's truth (`_truth/persons.parquet` and
`_truth/pupil_variants.csv`): precision and recall of the automatic links for pupils
whose 宛名番号 is blank, overall and per kind of spelling variant (issue 15). Counts and
rates only; a real city has no truth and gets None."""

from __future__ import annotations

from pathlib import Path

import duckdb

PERSONS, VARIANTS = "persons.parquet", "pupil_variants.csv"
NO_VARIANT = "none"

SQL = """
WITH truth AS (
    SELECT pupil_no, atena_no AS true_atena FROM read_parquet(?) WHERE pupil_no <> ''
), kinds AS (
    SELECT pupil_no, kind FROM read_csv(?, all_varchar = true)
), joined AS (
    SELECT p.atena_no IS NULL AS blank, t.true_atena <> '' AS resident, coalesce(k.kind, '{none}') AS kind,
           l.atena_no AS got, l.atena_no = t.true_atena AS hit
    FROM pupils p JOIN truth t USING (pupil_no) LEFT JOIN kinds k USING (pupil_no)
    LEFT JOIN pupil_link l USING (pupil_no)
)
SELECT kind,
       count(*) FILTER (WHERE blank AND resident) AS blank_residents,
       count(got) FILTER (WHERE blank) AS blank_linked,
       count(*) FILTER (WHERE blank AND hit) AS blank_right,
       count(*) FILTER (WHERE resident) AS residents,
       count(got) AS linked,
       count(*) FILTER (WHERE hit) AS hit
FROM joined GROUP BY ALL ORDER BY kind
"""


def _rate(num: int, den: int) -> float | None:
    return round(num / den, 4) if den else None


def linkage_against_truth(con: duckdb.DuckDBPyConnection, truth: Path) -> dict | None:
    """From `pupils` and `pupil_link` in `con`. `blank`: the blank-ID pupils' automatic
    links (precision over every blank pupil linked, 住登外 included; recall over blank
    pupils who are residents). `by_kind`: the same per variant kind, plus all pupils of
    the kind (any method), so kinds too rare among blank pupils are still measured."""
    persons, variants = truth / PERSONS, truth / VARIANTS
    if not (persons.is_file() and variants.is_file()):
        return None
    rows = con.execute(SQL.format(none=NO_VARIANT), [str(persons), str(variants)]).fetchall()
    by_kind = {}
    for kind, blank_res, blank_linked, blank_right, residents, linked, hit in rows:
        by_kind[kind] = {
            "blank_pupils": blank_res,
            "blank_recall": _rate(blank_right, blank_res),
            "blank_precision": _rate(blank_right, blank_linked),
            "pupils": residents,
            "recall": _rate(hit, residents),
            "precision": _rate(hit, linked),
        }
    totals = [sum(r[i] for r in rows) for i in range(1, 4)]
    blank = {
        "pupils": totals[0],
        "linked": totals[1],
        "right": totals[2],
        "precision": _rate(totals[2], totals[1]),
        "recall": _rate(totals[2], totals[0]),
    }
    return {"blank": blank, "by_kind": by_kind}

"""The report's trends: 傾向分析 (section 2: co-occurrence, rates by group, districts across
months, silent indicators) and the indicators over the months (section 7), read from the
analysis zone's stores of every month up to the report's."""

from __future__ import annotations

import duckdb
import numpy as np

from kodomo_assets.lib.platform.rows import one_row
from kodomo_assets.lib.platform.storage import KodomoStorage
from kodomo_assets.lib.reporting import council as C
from kodomo_assets.lib.reporting import plots
from kodomo_assets.lib.reporting import report as R
from kodomo_assets.lib.scoring.evaluation_store import FAIRNESS_TABLE
from kodomo_assets.lib.scoring.indicators import load_indicators
from kodomo_assets.lib.scoring.linked_table import TABLE as LINKED
from kodomo_assets.lib.scoring.risk_scores import TABLE as SCORES


def trend_pages(
    storage: KodomoStorage, con: duckdb.DuckDBPyConnection, month: str, verified: list[str]
) -> tuple[list, list[str]]:
    """傾向分析: co-occurrence among confirmed children, rates by age band and household,
    districts across months, and indicators that never fire or are never confirmed."""
    labels = [i.label for i in load_indicators()]
    parts: list = [C.co_occurrence(con, labels)] if verified else []
    scores = storage.zone_store("analysis", month, SCORES)
    linked = storage.zone_store("analysis", month, LINKED)
    if scores.exists() and linked.exists():
        storage.attach(con, "ts", scores)
        storage.attach(con, "tl", linked)
        columns = {r[0] for r in con.execute("DESCRIBE tl.linked_children").fetchall()}
        single = "l.single_parent" if "single_parent" in columns else "NULL::BOOLEAN"
        age = "l.age_years" if "age_years" in columns else "NULL::INTEGER"
        con.execute(f"""CREATE OR REPLACE TEMP TABLE kids AS SELECT s.child_token, {age} AS age_years,
                        {single} AS single_parent, len(s.indicators) > 0 AS flagged, s.center_known
                        FROM ts.{SCORES} s LEFT JOIN tl.{LINKED} l USING (child_token)""")
        parts.append(C.rates_by_group(con))
    series, fired = _months_so_far(storage, month, labels)
    if series:
        parts.append(C.district_trend(series))
    confirmed = dict(
        con.execute(
            "SELECT i, count(*) FROM (SELECT unnest(indicators) AS i FROM verified "
            "WHERE result = '該当') GROUP BY i"
        ).fetchall()
    )
    silent = C.silent_indicators(fired, confirmed)
    parts += [R.paragraph(t) for t in silent]
    return parts, silent


def _months_so_far(
    storage: KodomoStorage, month: str, labels: list[str]
) -> tuple[dict[str, list[tuple]], dict[str, int]]:
    """Each month's district counts (from its fairness audit) and the children flagged per
    indicator summed over the months up to `month`."""
    series, fired = {}, dict.fromkeys(labels, 0)
    for m in (m for m in storage.months_on_disk() if m <= month):
        audit = storage.zone_store("analysis", m, FAIRNESS_TABLE)
        if audit.exists():
            with storage.open(audit) as a:
                series[m] = a.execute(
                    "SELECT district_code, children, flagged FROM district_counts"
                ).fetchall()
        past = storage.zone_store("analysis", m, SCORES)
        if past.exists():
            with storage.open(past) as sc:
                for label, n in sc.execute(
                    "SELECT i, count(*) FROM (SELECT unnest(indicators) AS i "
                    f"FROM {SCORES}) GROUP BY i"
                ).fetchall():
                    fired[label] = fired.get(label, 0) + n
    return series, fired


def indicator_trend(storage: KodomoStorage) -> list:
    """Children flagged per indicator over the months with scores."""
    folder = storage.home_path / "zones" / "analysis"
    months = (
        sorted(p.name for p in folder.iterdir() if (p / f"{SCORES}.duckdb").exists())
        if folder.exists()
        else []
    )
    if not months:
        return []
    labels = [i.label for i in load_indicators()]
    series = np.full((len(labels), len(months)), np.nan)
    for j, m in enumerate(months):
        with storage.open(folder / m / f"{SCORES}.duckdb") as con:
            for i, label in enumerate(labels):
                (n,) = one_row(
                    con.execute(
                        f"SELECT count(*) FILTER (list_contains(indicators, ?)) FROM {SCORES}",
                        [label],
                    )
                )
                series[i, j] = n if n >= 10 or n == 0 else np.nan  # small counts left out
    return [plots.indicator_trend(months, labels, series)]

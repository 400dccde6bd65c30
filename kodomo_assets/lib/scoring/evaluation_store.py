"""The evaluation's and the fairness audit's stores: what they read in DuckDB (the month's
scores attached as `scores`, the linked table as `linked`, TEMP TABLE audit_attributes) and
the fixed tables they write (evaluation.EVALUATION_TABLES, FAIRNESS_TABLES)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from kodomo_assets.lib.platform.storage import KodomoStorage
from kodomo_assets.lib.policy.pseudonym import token
from kodomo_assets.lib.reporting.council import attach_verified
from kodomo_assets.lib.scoring import evaluation as ev
from kodomo_assets.lib.scoring.indicators import load_indicators

# the analysis zone's stores: not in evaluation.py, whose bytes are the assets' code version
EVALUATION_TABLE, FAIRNESS_TABLE = "evaluation", "fairness_audit"
AUDIT_COLUMNS = ["single_parent", "foreign_resident", "district_code", *ev.ON_AID_INPUTS]
Frames = dict[str, pd.DataFrame | None]  # table -> its rows (None or absent: left empty)


@dataclass
class Staged:
    """A month's staged store: the month's scores attached as `scores`, and the planted truth
    (None without one) with the sentence saying which."""

    storage: KodomoStorage
    con: duckdb.DuckDBPyConnection
    month: str
    truth: Path | None
    status: str


def planted(storage: KodomoStorage, truth: Path | None) -> pd.DataFrame | None:
    """The planted needs by child_token (None without truth); KeyProblem without the key."""
    if truth is None:
        return None
    key = storage.pseudonym_key()
    return ev.planted_needs(truth, lambda atena_no: token(key, "child", atena_no))


def scored(con: duckdb.DuckDBPyConnection, scores: str) -> pd.DataFrame:
    """One row per scored child, as ev.evaluate reads it."""
    return con.execute(
        "SELECT child_token, score, rank, known_to_center, center_known, indicators "
        f"FROM scores.{scores}"
    ).df()


def evaluated(scores: pd.DataFrame, planted: pd.DataFrame) -> ev.Evaluation:
    return ev.evaluate(scores, planted, [(i.name, i.label) for i in load_indicators()])


def evaluation_frames(result: ev.Evaluation | None) -> Frames:
    if result is None:
        return {}
    return {
        "metrics": result.metrics,
        "recall_by_kind": result.by_kind,
        "calibration": result.calibration,
        "rules": result.rules,
    }


@dataclass
class Audited:
    """The fairness audit of the month: the tables to write and what its metadata reads."""

    k: int
    unknown: int  # children the center does not know, whom the audit covers
    frames: Frames
    by_group: pd.DataFrame | None = None  # None without truth
    gaps: pd.DataFrame | None = None


def audited(
    s: Staged, attributes: list[str], planted: pd.DataFrame | None, tables: tuple[str, str]
) -> Audited:
    """The audit over the scores joined to the linked table (attached as `linked`) and the
    audit-only `attributes` (TEMP TABLE audit_attributes); `tables`: the scores' and the
    linked table's names."""
    con, (scores, linked) = s.con, tables
    present = {r[0] for r in con.execute(f"DESCRIBE linked.{linked}").fetchall()}
    cols = "".join(f", l.{c}" for c in AUDIT_COLUMNS if c in present and c not in attributes)
    cols += "".join(f", a.{c}" for c in AUDIT_COLUMNS if c in attributes)  # unapproved: not audited
    frame = con.execute(
        f"SELECT s.child_token, s.score, s.rank, s.center_known{cols} FROM scores.{scores} s "
        f"LEFT JOIN linked.{linked} l USING (child_token) "
        "LEFT JOIN audit_attributes a USING (child_token)"
    ).df()
    k = ev.review_k(len(frame))
    unknown = frame[~frame["center_known"].astype(bool)].reset_index(drop=True)
    out = Audited(k, len(unknown), {})
    if planted is not None:
        listed = ev.first_k(unknown["rank"].to_numpy(), k)
        need = unknown["child_token"].isin(planted["child_token"]).to_numpy()
        out.by_group, out.gaps = ev.audit(ev.attribute_groups(unknown), need, listed)
        out.frames = {"by_group": out.by_group, "gaps": out.gaps}
    out.frames["district_counts"] = (
        district_counts(con, k, scores) if "district_code" in attributes else None
    )
    out.frames["verified_by_group"] = verified_by_group(s.storage, con, s.month, unknown, k)
    return out


def district_counts(con: duckdb.DuckDBPyConnection, k: int, scores: str) -> pd.DataFrame:
    """Children, children with an indicator, and new suggestions on the review list per
    district: the committee's district table, aggregates only (small cells are suppressed
    where the report shows them)."""
    return con.execute(f"""
        WITH t AS (SELECT s.indicators, a.district_code,
                          NOT s.center_known AND row_number() OVER (
                              PARTITION BY s.center_known ORDER BY s.rank) <= {k} AS listed
                   FROM scores.{scores} s LEFT JOIN audit_attributes a USING (child_token))
        SELECT coalesce(district_code, '不明') AS district_code, count(*) AS children,
               count(*) FILTER (len(indicators) > 0) AS flagged, count(*) FILTER (listed) AS listed
        FROM t GROUP BY 1 ORDER BY 1""").df()


def verified_by_group(
    storage: KodomoStorage,
    con: duckdb.DuckDBPyConnection,
    month: str,
    unknown: pd.DataFrame,
    k: int,
) -> pd.DataFrame:
    """Selection rate and PPV by group from the center's verified outcomes (pseudonyms)."""
    attach_verified(storage, con, month)
    outcomes = dict(
        con.execute(
            "SELECT child_token, bool_or(result = '該当') FROM verified "
            "WHERE result IN ('該当', '非該当') GROUP BY 1"
        ).fetchall()
    )
    tokens = unknown["child_token"].to_numpy()
    listed = ev.first_k(unknown["rank"].to_numpy(), k)
    checked = np.array([t in outcomes for t in tokens])
    confirmed = np.array([bool(outcomes.get(t)) for t in tokens])
    return ev.verified_by_group(ev.attribute_groups(unknown), listed, checked, confirmed)


def fill(
    con: duckdb.DuckDBPyConnection, schemas: dict[str, dict[str, str]], frames: Frames
) -> None:
    """Create the fixed tables and fill those with a frame: a month without truth writes the
    same tables, empty."""
    for name, columns in schemas.items():
        ddl = ", ".join(f'"{c}" {t}' for c, t in columns.items())
        con.execute(f"CREATE TABLE {name} ({ddl})")
        frame = frames.get(name)
        if frame is not None and not frame.empty:
            con.register("frame", frame[list(columns)])
            con.execute(f"INSERT INTO {name} SELECT * FROM frame")
            con.unregister("frame")

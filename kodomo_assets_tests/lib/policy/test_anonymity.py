"""The linkage attack of threat-model property 2, run as an insider would: the analysis
table against the resident register, on a generated town."""

from pathlib import Path

import duckdb
import pytest

from kodomo_assets.demo import generate
from kodomo_assets.lib.ingest.load import ingest
from kodomo_assets.lib.policy.anonymity import K, enforce_k, linkage_attack
from kodomo_assets.lib.policy.approval import load_policy
from kodomo_assets.lib.policy.pseudonym import register_udfs
from kodomo_assets.lib.registry import load_registry
from kodomo_assets.lib.scoring.linked_table import compile_sql, load_spec, plan

MONTH = "2022-10"
ASOF = "DATE '2022-10-31'"


@pytest.fixture(scope="module")
def town(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 12,000-resident town's register, ingested."""
    out = tmp_path_factory.mktemp("town")
    generate(out / "inbox", residents=12_000, months=[MONTH], seed=5)
    ds = load_registry().datasets["jumin"]
    with duckdb.connect(str(out / "jumin.duckdb")) as con:
        ingest(ds, MONTH, out / "inbox" / MONTH / ds.file, con)
    return out


def connect(town: Path) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute(f"ATTACH '{town / 'jumin.duckdb'}' AS shimin (READ_ONLY)")
    register_udfs(con, bytes(32))
    return con


def test_the_old_columns_name_almost_every_child(town: Path) -> None:
    """Before coarsening: exact date at the address and district. The attacker computes
    them from the register; the gate's bounds refuse such a table."""
    con = connect(town)
    old = (
        f"SELECT date_sub('year', birth_date, {ASOF}) AS age, sex, district_code, registered_date "
        f"FROM shimin.jumin WHERE date_sub('year', birth_date, {ASOF}) <= 17 AND birth_date <= {ASOF}"
    )
    con.execute(f"CREATE TABLE published AS {old}")
    con.execute(f"CREATE TABLE register AS {old}")
    attack = linkage_attack(
        con, "published", "register", ["age", "sex", "district_code", "registered_date"]
    )
    assert attack.children > 1000
    assert attack.unique_share > 0.5 and not attack.passed
    assert "一人に特定される児童" in attack.message()


def test_the_published_columns_after_suppression_pass_the_attack(town: Path) -> None:
    con = connect(town)
    p = plan(load_spec(), load_policy().for_month(MONTH))
    qis = p.quasi_identifiers
    assert {"age_years", "sex", "single_parent"} <= set(qis)
    assert "district_code" not in p.columns and "residence_since" not in p.columns
    sub = p.subset(set(qis))
    tables = {"jumin": "shimin.jumin"}
    for stmt in compile_sql(sub, MONTH, tables, "none"):
        con.execute(stmt)  # the published side (linked_children, register columns only)
    for stmt in compile_sql(
        sub, MONTH, tables, "none", table="register_view", tokens=(), temp=True
    ):
        con.execute(stmt)
    before = linkage_attack(con, "linked_children", "register_view", qis)
    assert not before.passed  # a town this small needs more than bands and caps
    age_sex = con.execute(
        "SELECT age_years, sex FROM linked_children ORDER BY child_token"
    ).fetchall()
    suppressed = enforce_k(con, "linked_children", "register_view", qis, p.suppression_order())
    after = linkage_attack(con, "linked_children", "register_view", qis, fixed=p.never_suppressed)
    assert after.passed and after.unique == 0 and after.below_k == 0 and after.min_k >= K
    assert suppressed and sum(suppressed.values()) > 0
    # age and sex are never suppressed, and most children keep every column
    assert (
        con.execute("SELECT age_years, sex FROM linked_children ORDER BY child_token").fetchall()
        == age_sex
    )
    (whole,) = con.execute(
        f"SELECT avg(({' AND '.join(f'{c} IS NOT NULL' for c in qis)})::INT) FROM linked_children"
    ).fetchone()
    assert whole > 0.4


def test_an_unknown_value_fits_every_resident_as_the_attacker_reads_it() -> None:
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE register AS SELECT * FROM (VALUES (7, 'a'), (7, 'b'), (7, 'b'), (8, 'c')) t(age, x)"
    )
    con.execute(
        "CREATE TABLE published AS SELECT * FROM (VALUES (7, NULL), (7, 'b'), (7, 'b'), (8, 'c')) t(age, x)"
    )
    attack = linkage_attack(con, "published", "register", ["age", "x"], fixed=["age"], k=3)
    # (7, NULL) fits 3 residents; (7, 'b') fits 2; (8, 'c') fits exactly one
    assert (attack.children, attack.unique, attack.below_k, attack.min_k) == (4, 1, 3, 1)

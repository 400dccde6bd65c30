"""The linked table's plan: an allow-list generated from the approval list."""

import dataclasses
from pathlib import Path

import duckdb
import pytest

from kodomo_assets.lib.paths import DATA_DIR
from kodomo_assets.lib.policy.approval import load_policy, parse_policy
from kodomo_assets.lib.policy.pseudonym import register_udfs
from kodomo_assets.lib.registry import load_registry
from kodomo_assets.lib.scoring.linked_table import (
    Feature,
    LinkedTableError,
    compile_sql,
    load_spec,
    plan,
)
from kodomo_assets_tests.conftest import withdrawn_approval

MONTH = "2022-10"


def test_every_column_is_built_from_approved_inputs_with_complete_lineage() -> None:
    approval = load_policy().for_month(MONTH)
    p = plan(load_spec(), approval)
    assert not p.omitted and p.columns[:2] == ["child_token", "household_token"]
    assert len(p.columns) >= 40
    for name in p.columns:
        assert p.lineage[name], name
        for ds, col in p.lineage[name]:
            assert approval.allows(ds, col, "analysis") or approval.allows(ds, col, "key"), (
                name,
                ds,
                col,
            )
    assert p.lineage["school_aid"] == [("gakurei", "school_aid")]
    # 学校名 and 学年 are approved but read by no column; the audit attributes never published
    assert not any(
        ("gakurei", c) in deps for deps in p.lineage.values() for c in ("school", "grade")
    )
    assert not {"district_code", "foreign_resident", "school", "school_grade"} & set(p.columns)
    assert ("kaigo", "care_level") in p.lineage["household_max_care_level"]
    assert ("jumin", "household_no") in p.lineage["household_max_care_level"]


def test_a_column_whose_input_is_not_approved_is_left_out_with_the_reason(tmp_path: Path) -> None:
    approval = parse_policy(
        withdrawn_approval(tmp_path, "就学援助区分", "gakurei.csv", 提供="")
    ).for_month(MONTH)
    p = plan(load_spec(), approval)
    assert "school_aid" not in p.columns and "就学援助区分" in p.omitted["school_aid"]
    assert "school_fee_arrears" in p.columns


def test_an_unapproved_key_drops_everything_that_joins_through_it(tmp_path: Path) -> None:
    approval = parse_policy(
        withdrawn_approval(tmp_path, "学籍番号", "shukketsu.csv", 提供="")
    ).for_month(MONTH)
    p = plan(load_spec(), approval)
    gone = {"absent_days_3m", "absence_rate_3m", "absence_trend", "nurse_visits_3m"}
    assert gone <= set(p.omitted) and not gone & set(p.columns)
    assert "absence_rate_3m" in p.omitted and "元になる列" in p.omitted["absence_trend"]


def test_the_base_needs_its_keys(tmp_path: Path) -> None:
    approval = parse_policy(
        withdrawn_approval(tmp_path, "世帯番号", "jumin.csv", 目的外利用="")
    ).for_month(MONTH)
    with pytest.raises(LinkedTableError, match="住民基本台帳の世帯番号"):
        plan(load_spec(), approval)


def _toy_stores() -> tuple[duckdb.DuckDBPyConnection, dict[str, str]]:
    """Every registry table, empty but for one family, with every stored column."""
    from kodomo_assets.lib.ingest.typing_sql import SQL_TYPES

    con = duckdb.connect()
    register_udfs(con, bytes(32))
    tables = {}
    for ds in load_registry().datasets.values():
        cols = ", ".join(f"{c.name} {SQL_TYPES[c.type]}" for c in ds.stored_columns)
        con.execute(f"CREATE TABLE {ds.name} ({cols})")
        tables[ds.name] = ds.name
    con.execute(
        "INSERT INTO jumin (atena_no, household_no, birth_date, relation, sex) VALUES "
        "('0000000001', '0000000009', DATE '2012-05-01', '子', '1'), "
        "('0000000002', '0000000009', DATE '1980-01-01', '世帯主', '2')"
    )
    con.execute(
        "INSERT INTO hoiku (atena_no, facility, enrolment_status) VALUES "
        "('0000000001', '東保育園', '入所中')"
    )
    con.execute("CREATE TABLE pupil_link (pupil_no VARCHAR, atena_no VARCHAR, method VARCHAR)")
    return con, tables


def test_the_query_builds_one_row_per_child_and_cannot_reach_undeclared_columns() -> None:
    spec = load_spec()
    con, tables = _toy_stores()
    p = plan(spec, load_policy().for_month(MONTH))
    for stmt in compile_sql(p, MONTH, tables, "pupil_link"):
        con.execute(stmt)
    row = con.execute(
        "SELECT age_years, single_parent, nursery_status, household_size FROM linked_children"
    ).fetchall()
    assert row == [(10, True, "入所中", 2)]
    # a column that reads 施設名 without declaring it fails to bind: it cannot leak
    sneaky = Feature(
        name="nursery_name",
        label="x",
        type="VARCHAR",
        scope="child",
        dataset="hoiku",
        inputs=("enrolment_status",),
        expr="max(x.facility)",
    )
    p2 = plan(
        dataclasses.replace(spec, features=(*spec.features, sneaky)), load_policy().for_month(MONTH)
    )
    with pytest.raises(duckdb.BinderException, match="facility"):
        for stmt in compile_sql(p2, MONTH, tables, "pupil_link"):
            con.execute(stmt)


def test_labels_with_commas_survive_yaml_and_unknown_keys_are_refused(tmp_path) -> None:
    labels = {f.name: f.label for f in load_spec().features}
    assert labels["sex"] == "性別（1=男, 2=女）"
    assert labels["household_max_care_level"].endswith("3–7=要介護1–5）")
    text = (DATA_DIR / "registry" / "linked_table.yaml").read_text(encoding="utf-8")
    broken = tmp_path / "linked_table.yaml"
    broken.write_text(
        text.replace('label: "性別（1=男, 2=女）"', "label: 性別（1=男, 2=女）"), encoding="utf-8"
    )
    with pytest.raises(LinkedTableError, match="不明な項目"):
        load_spec(broken)


def test_free_text_never_reaches_the_analysis_table_even_when_approved() -> None:
    """学校名 is approved for 分析 in the FY2022 list, yet a column reading it is left out:
    a text field can hold anything (a phone number typed into it)."""
    spec = load_spec()
    school = Feature(
        name="school",
        label="在籍校",
        type="VARCHAR",
        scope="child",
        expr="max(x.school)",
        dataset="gakurei",
        inputs=("school",),
    )
    approval = load_policy().for_month("2022-10")
    assert approval.allows("gakurei", "school", "analysis")
    p = plan(dataclasses.replace(spec, features=(*spec.features, school)), approval)
    assert "school" not in p.columns and "自由記述" in p.omitted["school"]

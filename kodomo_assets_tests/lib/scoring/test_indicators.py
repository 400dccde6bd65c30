"""Indicators: data-defined rules over the linked table, with reasons and as-of dates."""

import duckdb
import pytest

from kodomo_assets.lib.policy.approval import load_policy
from kodomo_assets.lib.scoring.indicators import compile_sql, load_indicators
from kodomo_assets.lib.scoring.linked_table import load_spec, month_sql, plan
from kodomo_assets.lib.scoring.model import LABEL_DATASET

PLAN = plan(load_spec(), load_policy().for_month("2022-10"))
ASOF = month_sql("2022-10")["asof"]


@pytest.fixture
def con() -> duckdb.DuckDBPyConnection:
    """An empty linked table with the month's approved columns, and the view the rules
    read: the same table without the center's own (label) columns."""
    c = duckdb.connect()
    types = PLAN.types()
    c.execute(
        "CREATE TABLE linked_children (" + ", ".join(f"{n} {types[n]}" for n in PLAN.columns) + ")"
    )
    hidden = {n for n, deps in PLAN.lineage.items() if any(d == LABEL_DATASET for d, _ in deps)}
    c.execute(
        "CREATE VIEW scoring_input AS SELECT "
        + ", ".join(n for n in PLAN.columns if n not in hidden)
        + " FROM linked_children"
    )
    return c


def insert(con: duckdb.DuckDBPyConnection, **values) -> None:
    row = {
        "child_token": "a" * 32,
        "household_token": "b" * 32,
        "pupil": False,
        "welfare": False,
        "child_rearing_allowance": False,
        "disability_services": False,
        **values,
    }
    cols = ", ".join(row)
    con.execute(
        f"INSERT INTO linked_children ({cols}) VALUES ({', '.join('?' for _ in row)})",
        list(row.values()),
    )


def fired(con: duckdb.DuckDBPyConnection, columns: str) -> tuple:
    """`columns` of the indicators' output for the one child inserted."""
    row = con.execute(
        f"SELECT {columns} FROM ({compile_sql(load_indicators(), 'scoring_input', ASOF)})"
    ).fetchone()
    assert row is not None
    return row


def test_at_least_eight_indicators_each_named_and_described() -> None:
    indicators = load_indicators()
    assert len(indicators) >= 8
    for i in indicators:
        assert i.label and i.description and "{" not in i.rule


def test_no_rule_reads_the_centers_own_columns(con) -> None:
    # every rule binds against the view without 相談記録 columns: none restates the label
    con.execute(compile_sql(load_indicators(), "scoring_input", ASOF) + " LIMIT 0").fetchall()


def test_young_carer_elder_fires_with_its_facts_and_date(con) -> None:
    insert(
        con,
        age_years=13,
        pupil=True,
        household_heavy_care_no_service=True,
        household_max_care_level=7,
        household_care_since="2022-06-01",
        absent_days_prev_3m=2,
        absent_days_3m=9,
        absence_rate_prev_3m=0.04,
        absence_rate_3m=0.22,
        late_early_3m=0,
        single_parent=True,
    )
    names, reasons, asof = fired(con, "indicators, indicator_reasons, indicator_asof")
    assert "young_carer_elder" in names
    reason = reasons[names.index("young_carer_elder")]
    # the fact that met the rule first (the rate that rose), then the household's situation
    assert reason == "欠席率 4%→22%（3か月ごと）・同居家族 要介護5・居宅サービスなし・ひとり親"
    assert asof[names.index("young_carer_elder")] == "ヤングケアラー（高齢者の介護）: 2022-06-01"


def test_late_arrivals_come_first_when_they_met_the_rule_and_falling_absences_are_not_shown(
    con,
) -> None:
    """The issue's rank 1: absences fell (25 → 14 days) and the rule fired on 遅刻・早退."""
    insert(
        con,
        age_years=13,
        pupil=True,
        household_heavy_care_no_service=True,
        household_max_care_level=6,
        absent_days_prev_3m=25,
        absent_days_3m=14,
        absence_rate_prev_3m=0.40,
        absence_rate_3m=0.22,
        late_early_3m=5,
    )
    names, reasons = fired(con, "indicators, indicator_reasons")
    reason = reasons[names.index("young_carer_elder")]
    assert reason == "遅刻・早退 5回（3か月）・同居家族 要介護4・居宅サービスなし"


def test_the_same_child_without_rising_absence_does_not_fire(con) -> None:
    insert(
        con,
        age_years=13,
        pupil=True,
        household_heavy_care_no_service=True,
        household_max_care_level=7,
        absence_rate_prev_3m=0.10,
        absence_rate_3m=0.10,
        late_early_3m=0,
    )
    (names,) = fired(con, "indicators")
    assert "young_carer_elder" not in names


def test_unknown_values_never_fire(con) -> None:
    insert(con)  # every other column NULL: unknown, not a risk
    row = fired(con, "* EXCLUDE (child_token)")
    assert not any(v is True for v in row) and row[-3] == []


def test_a_threshold_the_file_does_not_define_is_an_error(tmp_path) -> None:
    path = tmp_path / "indicators.yaml"
    path.write_text(
        "thresholds: {}\nindicators:\n  - {name: x, label: x, description: x, "
        "rule: 'a > {missing}', reason: \"'x'\", asof: '{asof}'}\n",
        encoding="utf-8",
    )
    with pytest.raises(ValueError, match="missing"):
        load_indicators(path)

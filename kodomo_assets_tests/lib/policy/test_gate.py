"""The zone gate on small staged tables."""

import duckdb
import pytest

from kodomo_assets.lib.policy.content import is_my_number
from kodomo_assets.lib.policy.gate import inspect_table

VALID = "123456789018"  # a valid check digit (番号法施行令第8条)


def test_my_number_check_digit() -> None:
    assert is_my_number(VALID)
    assert sum(is_my_number(VALID[:11] + str(d)) for d in range(10)) == 1
    assert not is_my_number("12345678901") and not is_my_number("12345678901a")


@pytest.fixture
def con() -> duckdb.DuckDBPyConnection:
    c = duckdb.connect()
    c.execute(
        "CREATE TABLE t AS SELECT repeat('a', 32) AS child_token, '要介護5' AS care, "
        "'東小学校' AS school, [1, 2] AS absences FROM range(3)"
    )
    return c


def _outcome(report, name):
    return next(o for o in report.outcomes if o.name == name)


def test_a_clean_table_passes(con) -> None:
    r = inspect_table(
        con,
        "t",
        approved=["child_token", "care", "school", "absences"],
        token_columns=["child_token"],
    )
    assert r.passed, r.message()


@pytest.mark.parametrize(
    ("value", "what"),
    [(f"東小 {VALID}", "個人番号"), ("TEL 042-544-5111", "電話番号"), ("0001234567", "宛名番号")],
)
def test_identifiers_inside_an_allowed_text_column_are_refused(con, value: str, what: str) -> None:
    con.execute("UPDATE t SET school = ? WHERE rowid = 1", [value])
    r = inspect_table(
        con,
        "t",
        approved=["child_token", "care", "school", "absences"],
        token_columns=["child_token"],
    )
    scan = _outcome(r, "content_scan")
    assert not r.passed and not scan.passed
    assert any(what in p and "school" in p and "1 件" in p for p in scan.problems)
    assert value not in r.message()  # counts and column names only


def test_a_twelve_digit_run_with_a_wrong_check_digit_is_not_a_my_number(con) -> None:
    con.execute("UPDATE t SET school = '123456789017'")
    r = inspect_table(
        con,
        "t",
        approved=["child_token", "care", "school", "absences"],
        token_columns=["child_token"],
    )
    assert _outcome(r, "content_scan").counts["my_number"] == 0


def test_extra_and_denied_columns_and_non_token_values(con) -> None:
    con.execute("ALTER TABLE t ADD COLUMN my_number VARCHAR")
    con.execute("UPDATE t SET child_token = '0001234567' WHERE rowid = 0")
    r = inspect_table(
        con,
        "t",
        approved=["child_token", "care", "school", "absences"],
        token_columns=["child_token"],
    )
    assert not _outcome(r, "approved_columns").passed
    assert "my_number" in _outcome(r, "no_denied_columns").problems[0]
    assert _outcome(r, "content_scan").counts["not_token"] == 1
    # a zone approved to hold raw keys declares them
    con.execute("CREATE TABLE link AS SELECT '0001234567' AS atena_no, '00012345' AS pupil_no")
    ok = inspect_table(
        con, "link", approved=["atena_no", "pupil_no"], id_columns=["atena_no", "pupil_no"]
    )
    assert ok.passed
    assert not inspect_table(con, "link", approved=["atena_no", "pupil_no"]).passed


def test_the_gate_runs_offline(con, monkeypatch: pytest.MonkeyPatch) -> None:
    """Great Expectations must not phone home (usage statistics) inside a closed network."""
    import socket

    calls = []

    def refuse(*args, **kwargs):
        calls.append(args)  # recorded too: a background sender would swallow the error
        raise OSError("network call at run time")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    r = inspect_table(
        con,
        "t",
        approved=["child_token", "care", "school", "absences"],
        token_columns=["child_token"],
    )
    assert r.passed and not calls


def test_warm_up_loads_great_expectations_once_and_the_gate_still_decides() -> None:
    from kodomo_assets.lib.policy import gate

    gate.warm_up()
    first = gate._warm_up
    gate.warm_up()
    assert gate._warm_up is first  # once per process
    outcomes = gate._column_checks(["a", "my_number"], ["a"], {"my_number"})
    assert not first.is_alive()  # the gate waited for it
    assert [(o.name, o.passed) for o in outcomes] == [
        ("approved_columns", False),
        ("no_denied_columns", False),
    ]

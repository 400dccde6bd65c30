"""The approval list: the committed file, statutory refusals and approval periods."""

import csv
from datetime import date
from pathlib import Path

import pytest

from kodomo_assets.lib.policy.approval import (
    DEFAULT_POLICY,
    DEMO_MARK,
    DEMO_POLICY,
    OUTPUT_FILE,
    OUTPUT_KINDS,
    ApprovalPeriodError,
    PolicyError,
    clock_problem,
    load_policy,
    parse_policy,
)
from kodomo_assets.lib.registry import load_registry
from kodomo_assets_tests.conftest import (
    APPROVE,
    FY2022,
    approval_rows,
    edited_approval,
    write_approval,
)


def test_the_committee_file_lists_every_registry_column_once() -> None:
    rows = [r for r in approval_rows() if r["ファイル"] != OUTPUT_FILE]
    listed = [(r["ファイル"], r["項目"]) for r in rows]
    expected = [(ds.file, c.header) for ds in load_registry().datasets.values() for c in ds.columns]
    assert sorted(listed) == sorted(expected)
    assert [int(r["番号"]) for r in approval_rows()] == list(range(1, len(approval_rows()) + 1))
    for r in rows:  # every approval carries its basis and period; refusals say why
        if "○" in (r["目的外利用"], r["提供"]):
            assert FY2022 in r["根拠"] and r["承認期間開始"] == "2022-04-01"
        else:
            assert r["利用目的"].startswith(("利用しない", "提供しない")) and not r["根拠"]


def test_fy2022_approval_matches_the_minutes() -> None:
    a = load_policy().for_month("2022-10")
    assert [p.basis for p in a.periods] == [p.basis for p in load_policy().periods]
    assert "諮問第65号" in a.periods[0].basis and a.retention_months == 12
    assert a.columns("jumin", "analysis") >= {"birth_date", "relation", "district_code"}
    assert not a.columns("jumin", "analysis") & {"name", "name_kana", "address", "my_number"}
    assert a.columns("gakurei", "match") == {"name_kana", "birth_date", "sex", "address"}
    assert "income" not in a.columns("teate", "analysis")  # no local tax data (会長の質問)
    assert a.columns("teate", "analysis") >= {"allowance_kind", "payment_status"}
    assert "facility" not in a.columns("hoiku", "analysis")  # 施設名: not approved by default
    board = {i.dataset for i in a.items if i.provision}
    assert board == {"gakurei", "shukketsu"} and not any(
        i.provision for i in a.items if i.out_of_purpose
    )


@pytest.mark.parametrize(
    ("file", "header", "law"),
    [
        ("teate.csv", "所得額", "地方税法第22条"),
        ("jumin.csv", "個人番号", "番号法"),
        ("soudan.csv", "相談内容", "自由記述"),
        ("shukketsu.csv", "欠席理由", "自由記述"),
    ],
)
def test_a_policy_approving_a_statutorily_forbidden_item_fails_naming_the_row(
    tmp_path: Path, file: str, header: str, law: str
) -> None:
    path = edited_approval(tmp_path, header, file, **APPROVE)
    with pytest.raises(PolicyError) as err:
        parse_policy(path)
    no = next(r["番号"] for r in approval_rows() if r["項目"] == header and r["ファイル"] == file)
    assert f"番号 {no}" in str(err.value) and header in str(err.value) and law in str(err.value)


def test_direct_identifiers_may_only_be_approved_for_matching(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="直接識別子"):
        parse_policy(edited_approval(tmp_path, "住所", "jumin.csv", 利用区分="照合・分析"))
    with pytest.raises(PolicyError, match="直接識別子"):
        parse_policy(edited_approval(tmp_path, "氏名", "jumin.csv", **APPROVE))
    matched = parse_policy(edited_approval(tmp_path, "住所", "gakurei.csv", 利用区分="照合"))
    assert matched.for_month("2022-10").allows("gakurei", "address", "match")


def test_malformed_rows_are_refused(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="○ か空欄"):
        parse_policy(edited_approval(tmp_path, "続柄", "jumin.csv", 目的外利用="はい"))
    with pytest.raises(PolicyError, match="台帳にありません"):
        parse_policy(edited_approval(tmp_path, "続柄", "jumin.csv", 項目="年収"))
    with pytest.raises(PolicyError, match="根拠・承認期間"):
        parse_policy(edited_approval(tmp_path, "続柄", "jumin.csv", 根拠=""))
    with pytest.raises(PolicyError, match="保存期間"):
        parse_policy(edited_approval(tmp_path, "続柄", "jumin.csv", **{"保存期間（月）": "一年"}))


def test_a_month_outside_every_period_names_the_periods_and_their_basis() -> None:
    with pytest.raises(ApprovalPeriodError) as err:
        load_policy().for_month("2023-05")
    text = str(err.value)
    assert "2023-05" in text and "2022-04-01〜2023-03-31" in text and FY2022 in text
    assert load_policy().for_month("2022-04") and load_policy().for_month("2023-03")
    with pytest.raises(ApprovalPeriodError):
        load_policy().for_month("2022-03")


def test_a_later_period_recorded_under_the_act_opens_its_months(tmp_path: Path) -> None:
    later = "個人情報保護法第69条第2項第2号・第3号"
    rows = approval_rows()
    extra = [
        {
            **r,
            "番号": str(len(rows) + i + 1),
            "根拠": later,
            "承認期間開始": "2023-04-01",
            "承認期間終了": "2024-03-31",
        }
        for i, r in enumerate(r for r in rows if r["ファイル"] == "jumin.csv" and r["根拠"])
    ]
    approval = parse_policy(write_approval(tmp_path / "approval.csv", rows + extra))
    may = approval.for_month("2023-05")
    assert [p.basis for p in may.periods] == [later]
    assert may.columns("jumin", "analysis") and not may.columns("gakurei", "key")


def test_a_period_must_cover_the_date_of_processing_too() -> None:
    """The FY2022 approval ended 2023-03-31: a month inside it is refused today, naming the
    period, its basis and the date; inside the period it is in force."""
    policy = load_policy(DEFAULT_POLICY)
    with pytest.raises(ApprovalPeriodError) as err:
        policy.in_force("2022-10", date(2026, 11, 29))
    text = str(err.value)
    assert "2026-11-29" in text and "2022-04-01〜2023-03-31" in text and FY2022 in text
    assert "データは読んでいません" in text
    assert policy.in_force("2022-10", date(2022, 11, 2)).periods
    assert policy.in_force("2022-10", date(2023, 3, 31)).periods
    with pytest.raises(ApprovalPeriodError):
        policy.in_force("2022-10", date(2023, 4, 1))
    standing = policy.standing("2022-10", date(2026, 11, 29))
    assert standing.month_covered and not standing.today_covered


def test_every_kind_of_output_has_its_retention_row(tmp_path: Path) -> None:
    policy = load_policy(DEFAULT_POLICY)
    assert {o.kind for o in policy.outputs} == set(OUTPUT_KINDS.values())
    assert policy.retention("verification") > policy.retention("scores") > 0
    rows = approval_rows()
    without = [r for r in rows if not (r["ファイル"] == OUTPUT_FILE and r["項目"] == "確認リスト")]
    with pytest.raises(PolicyError, match="種類ごとにちょうど1行"):
        parse_policy(write_approval(tmp_path / "a.csv", without))
    odd = [
        {**r, "項目": "メモ"} if r["ファイル"] == OUTPUT_FILE and r["項目"] == "確認リスト" else r
        for r in rows
    ]
    with pytest.raises(PolicyError, match="出力の種類"):
        parse_policy(write_approval(tmp_path / "b.csv", odd))


def test_the_demo_approval_says_so_on_every_row_and_approves_the_same_items() -> None:
    with open(DEMO_POLICY, encoding="utf-8-sig", newline="") as fh:
        demo_rows = list(csv.DictReader(fh))
    assert all(DEMO_MARK in r["根拠"] for r in demo_rows)
    demo, real = load_policy(DEMO_POLICY), load_policy(DEFAULT_POLICY)
    assert demo.demo and not real.demo
    same = lambda a: [(i.dataset, i.column, i.uses, i.approved) for i in a.items]  # noqa: E731
    assert same(demo) == same(real)
    # the demo's months and today lie inside its period, and inside its retention
    assert demo.in_force("2022-04", date(2026, 11, 29)) and demo.in_force(
        "2022-10", date(2026, 11, 29)
    )
    assert demo.for_month("2022-04").retention_months >= 12 * (2026 - 2022) + 8
    assert min(o.retention_months for o in demo.outputs) >= 12 * (2026 - 2022) + 8


def test_a_list_mixing_demo_and_real_rows_is_refused(tmp_path: Path) -> None:
    rows = approval_rows()
    rows[0] = {**rows[0], "根拠": DEMO_MARK}
    with pytest.raises(PolicyError, match="混在"):
        parse_policy(write_approval(tmp_path / "mixed.csv", rows))


def test_production_refuses_a_clock_override_and_a_demo_list() -> None:
    real, demo = load_policy(DEFAULT_POLICY), load_policy(DEMO_POLICY)
    assert "本番では処理日を変えられません" in clock_problem("production", "2022-11-02", real)
    assert DEMO_MARK in clock_problem("production", "", demo)
    assert "デモでは" in clock_problem("demo", "", real)
    assert clock_problem("production", "", real) is None
    assert (
        clock_problem("demo", "", demo) is None
        and clock_problem("test", "2022-11-02", real) is None
    )
    assert "YYYY-MM-DD" in clock_problem("test", "11/02", real)
    assert "mode" in clock_problem("prod", "", real)

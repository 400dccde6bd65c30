"""The approval list: the committed file, statutory refusals and approval periods."""

import csv
from pathlib import Path

import pytest

from kodomo_assets.lib.policy import (
    HEADER,
    ApprovalPeriodError,
    PolicyError,
    load_policy,
    parse_policy,
    policy_path,
)
from kodomo_assets.lib.registry import load_registry

FY2022 = "昭島市個人情報保護条例第13条第2項第6号"


def _rows() -> list[dict[str, str]]:
    with open(policy_path(), encoding="utf-8-sig", newline="") as fh:
        return list(csv.DictReader(fh))


def _write(path: Path, rows: list[dict[str, str]]) -> Path:
    with open(path, "w", encoding="utf-8-sig", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=HEADER)
        w.writeheader()
        w.writerows(rows)
    return path


def _edited(tmp_path: Path, header: str, file: str, **changes: str) -> Path:
    rows = _rows()
    row = next(r for r in rows if r["項目"] == header and r["ファイル"] == file)
    row.update(changes)
    return _write(tmp_path / "approval.csv", rows)


APPROVE = {"目的外利用": "○", "利用区分": "分析", "根拠": FY2022,
           "承認期間開始": "2022-04-01", "承認期間終了": "2023-03-31", "保存期間（月）": "12"}


def test_the_committee_file_lists_every_registry_column_once() -> None:
    rows = _rows()
    listed = [(r["ファイル"], r["項目"]) for r in rows]
    expected = [(ds.file, c.header) for ds in load_registry().datasets.values() for c in ds.columns]
    assert sorted(listed) == sorted(expected)
    assert [int(r["番号"]) for r in rows] == list(range(1, len(rows) + 1))
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
    assert board == {"gakurei", "shukketsu"} and not any(i.provision for i in a.items if i.out_of_purpose)


@pytest.mark.parametrize(("file", "header", "law"), [
    ("teate.csv", "所得額", "地方税法第22条"),
    ("jumin.csv", "個人番号", "番号法"),
    ("soudan.csv", "相談内容", "自由記述"),
    ("shukketsu.csv", "欠席理由", "自由記述"),
])
def test_a_policy_approving_a_statutorily_forbidden_item_fails_naming_the_row(
        tmp_path: Path, file: str, header: str, law: str) -> None:
    path = _edited(tmp_path, header, file, **APPROVE)
    with pytest.raises(PolicyError) as err:
        parse_policy(path)
    no = next(r["番号"] for r in _rows() if r["項目"] == header and r["ファイル"] == file)
    assert f"番号 {no}" in str(err.value) and header in str(err.value) and law in str(err.value)


def test_direct_identifiers_may_only_be_approved_for_matching(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="直接識別子"):
        parse_policy(_edited(tmp_path, "住所", "jumin.csv", 利用区分="照合・分析"))
    with pytest.raises(PolicyError, match="直接識別子"):
        parse_policy(_edited(tmp_path, "氏名", "jumin.csv", **APPROVE))
    matched = parse_policy(_edited(tmp_path, "住所", "gakurei.csv", 利用区分="照合"))
    assert matched.for_month("2022-10").allows("gakurei", "address", "match")


def test_malformed_rows_are_refused(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="○ か空欄"):
        parse_policy(_edited(tmp_path, "続柄", "jumin.csv", 目的外利用="はい"))
    with pytest.raises(PolicyError, match="台帳にありません"):
        parse_policy(_edited(tmp_path, "続柄", "jumin.csv", 項目="年収"))
    with pytest.raises(PolicyError, match="根拠・承認期間"):
        parse_policy(_edited(tmp_path, "続柄", "jumin.csv", 根拠=""))
    with pytest.raises(PolicyError, match="保存期間"):
        parse_policy(_edited(tmp_path, "続柄", "jumin.csv", **{"保存期間（月）": "一年"}))


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
    rows = _rows()
    extra = [{**r, "番号": str(len(rows) + i + 1), "根拠": later, "承認期間開始": "2023-04-01",
              "承認期間終了": "2024-03-31"}
             for i, r in enumerate(r for r in rows if r["ファイル"] == "jumin.csv" and r["根拠"])]
    approval = parse_policy(_write(tmp_path / "approval.csv", rows + extra))
    may = approval.for_month("2023-05")
    assert [p.basis for p in may.periods] == [later]
    assert may.columns("jumin", "analysis") and not may.columns("gakurei", "key")

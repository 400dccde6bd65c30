"""`kodomo review-list`: the export of a hand-made center zone, its signed access log, and
refusals."""

import csv
import json
import os
import stat
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import duckdb
import openpyxl
import pytest

from kodomo_assets.cli import main
from kodomo_assets.lib.center.export import (
    HEADERS,
    access_log_path,
    read_access_log,
    verify_access_log,
)
from kodomo_assets.lib.center.review_list import NEW, RISEN
from kodomo_assets.lib.platform.accounts import os_account
from kodomo_assets.lib.platform.keys import (
    CenterPrivate,
    KeyProblem,
    center_keygen,
    read_center_private,
)
from kodomo_assets.lib.platform.storage import KodomoStorage, StoreMissing
from kodomo_assets.lib.policy.approval import DEMO_POLICY

MONTH = "2022-10"
PURPOSE = "ケース会議"  # a 利用目的コード (data/policy/purposes.csv)
YOUNG_CARER, POVERTY = "ヤングケアラー（高齢者の介護）", "経済的困窮と支援の狭間"
ROWS = [  # section, rank, atena_no, child_token, score, prev_score, indicators, reasons, facts_asof
    (
        NEW,
        1,
        "0000001234",
        "t1",
        0.61234,
        None,
        [YOUNG_CARER, POVERTY],
        ["同居家族 要介護5・居宅サービスなし", "生活保護受給世帯・就学援助なし"],
        ["2022-08-01", "2022-10-31"],
    ),
    (RISEN, 1, "0012345678", "t3", 0.15, 0.0804, [], ["=1+1 と書かれた理由"], ["2022-10-31"]),
    (
        NEW,
        2,
        "0000000007",
        "t2",
        0.2,
        0.1,
        [POVERTY],
        ["児童扶養手当受給・就学援助なし"],
        ["2022-10-31"],
    ),
]
ATENA = ["0000001234", "0000000007", "0012345678"]  # exported order: new suggestions first


def make_review_list(storage: KodomoStorage, month: str, rows: Sequence[tuple]) -> Path:
    """A center zone file with the asset's schema, written as review_list writes it: under a
    fresh data key wrapped to the center's public key, which the pipeline cannot unwrap."""
    path = storage.zone_store("center", month, "review_list")
    with storage.staged_for_center(path) as (con, stage):
        con.execute(
            "CREATE TABLE review_list (section VARCHAR, rank INTEGER, atena_no VARCHAR, "
            "child_token VARCHAR, score DOUBLE, prev_score DOUBLE, indicators VARCHAR[], "
            "reasons VARCHAR[], facts_asof VARCHAR[], fact_sources VARCHAR[], prev_result VARCHAR, "
            "prev_result_month VARCHAR)"
        )
        con.executemany(
            "INSERT INTO review_list VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL, NULL)", rows
        )
        storage.promote(con, stage, path)
    return path


@pytest.fixture
def center_zone(storage: KodomoStorage, center_env: Path) -> Path:
    """The month's list, and a center worker's terminal (KODOMO_HOME, KODOMO_INBOX,
    KODOMO_CENTER_KEY_DIR) for the CLI."""
    return make_review_list(storage, MONTH, ROWS)


def export(out: Path, month: str = MONTH, purpose: str = PURPOSE) -> int:
    return main(["review-list", "--month", month, "--out", str(out), "--purpose", purpose])


def test_csv_round_trip(center_zone: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "出力" / "list.csv"
    out.parent.mkdir()
    assert export(out) == 0
    raw = out.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf") and b"\r\n" in raw
    with open(out, encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == HEADERS and len(rows) == 1 + len(ROWS)  # a plain table: headers first
    body = [dict(zip(HEADERS, r, strict=True)) for r in rows[1:]]
    assert [r["宛名番号"] for r in body] == ATENA
    assert [(r["区分"], r["順位"]) for r in body] == [(NEW, "1"), (NEW, "2"), (RISEN, "1")]
    assert body[0]["スコア"] == "0.612" and body[0]["前月スコア"] == ""
    assert body[2]["前月スコア"] == "0.08"
    assert body[0]["指標"] == f"{YOUNG_CARER}／{POVERTY}"
    assert body[0]["事実の時点"] == "2022-08-01／2022-10-31"
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert [p.name for p in out.parent.iterdir()] == ["list.csv"]  # no temp file left behind
    printed = capsys.readouterr()
    assert printed.out.count("\n") == 1 and "3 行" in printed.out and "list.csv" in printed.out
    assert "示唆" in printed.err and PURPOSE in printed.err
    assert not any(a in printed.out + printed.err for a in ATENA)  # never a row's content


def test_xlsx_round_trip(center_zone: Path, tmp_path: Path) -> None:
    out = tmp_path / "list.xlsx"
    assert export(out) == 0
    wb = openpyxl.load_workbook(out)
    assert wb.sheetnames == ["説明", "確認リスト"]
    about = {r[0]: r[1] for r in wb["説明"].iter_rows(values_only=True)}
    assert "示唆" in about["注意"] and "一人ずつ確認" in about["注意"]
    assert about["基準月"] == MONTH and about["利用目的"] == "ケース会議（個別ケース検討会議）"
    assert about["件数"] == "3 件"
    # 日本時間, whatever zone the server is set to
    assert datetime.fromisoformat(about["書き出し日時"]).utcoffset().total_seconds() == 9 * 3600
    assert about["書き出し日時"].endswith("+09:00")
    sheet = wb["確認リスト"]
    rows = list(sheet.iter_rows(values_only=True))
    assert list(rows[0]) == [*HEADERS, "確認結果", "確認日", "確認の区分"] and len(rows) == 1 + len(
        ROWS
    )
    assert all(r[-3:] == (None, None, None) for r in rows[1:])  # for staff to fill in
    # a filter on the header, frozen panes, wrapped reasons, and pages staff can print
    first = chr(ord("A") + len(HEADERS))  # the three verification columns follow the list's
    third = chr(ord(first) + 2)
    assert sheet.auto_filter.ref == f"A1:{third}4" and sheet.freeze_panes == "A2"
    assert sheet.cell(2, 7).alignment.wrap_text
    assert sheet.page_setup.orientation == "landscape" and sheet.page_setup.fitToWidth == 1
    assert sheet.print_title_rows == "$1:$1" and "示唆" in sheet.oddHeader.center.text
    lists = {str(v.sqref): v.formula1 for v in sheet.data_validations.dataValidation}
    assert lists[f"{first}2:{first}4"] == '"該当,非該当,既知,未確認"'
    assert (
        "家庭訪問" in lists[f"{third}2:{third}4"]
        and f"{chr(ord(first) + 1)}2:{chr(ord(first) + 1)}4" in lists
    )
    assert [r[2] for r in rows[1:]] == ATENA  # text, leading zeros kept
    assert all(sheet.cell(i, 3).number_format == "@" for i in range(2, 5))
    assert rows[1][3] == 0.612 and rows[1][4] is None
    reason = sheet.cell(4, 7)
    assert reason.value == "=1+1 と書かれた理由" and reason.data_type == "s"  # never a formula
    assert stat.S_IMODE(out.stat().st_mode) == 0o600


def test_every_export_is_logged_without_row_content(
    center_zone: Path, storage: KodomoStorage, tmp_path: Path
) -> None:
    assert export(tmp_path / "a.csv") == 0
    assert export(tmp_path / "b.xlsx", purpose=" 訪問前確認 ") == 0
    log = read_access_log(storage)
    assert [(e["format"], e["file"]) for e in log] == [("csv", "a.csv"), ("xlsx", "b.xlsx")]
    for entry in log:
        assert entry["user"] == os_account() and entry["month"] == MONTH
        assert entry["action"] == "export" and entry["rows"] == len(ROWS)
        assert datetime.fromisoformat(entry["time"]).tzinfo is not None
    assert [e["purpose"] for e in log] == [PURPOSE, "訪問前確認"]
    assert read_access_log(storage, month="2022-09") == []
    path = access_log_path(storage)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text(encoding="utf-8")
    # the full path of each copy stays in the center zone: the purge lists what to destroy
    assert len(text.splitlines()) == 2
    assert [e["path"] for e in log] == [str((tmp_path / n).resolve()) for n in ("a.csv", "b.xlsx")]
    assert not any(a in text for a in ATENA)


def test_the_access_log_is_signed_and_chained(
    center_zone: Path, storage: KodomoStorage, center: CenterPrivate, tmp_path: Path
) -> None:
    assert export(tmp_path / "a.csv") == 0
    assert export(tmp_path / "b.csv", purpose="訪問前確認") == 0
    public = center.public()
    assert verify_access_log(storage, public) is None
    path = access_log_path(storage)
    original = path.read_bytes()
    first, second = original.decode("utf-8").splitlines()

    def tampered(lines: list[str]) -> int | None:
        path.write_text("".join(f"{ln}\n" for ln in lines), encoding="utf-8")
        try:
            return verify_access_log(storage, public)
        finally:
            path.write_bytes(original)

    def edited(line: str, **changes: object) -> str:
        return json.dumps({**json.loads(line), **changes}, ensure_ascii=False)

    assert tampered([second]) == 1  # the first line deleted: the chain no longer starts at genesis
    assert tampered([first, edited(second, purpose="別の目的")]) == 2
    assert tampered([edited(first, user="someone-else"), second]) == 1
    assert verify_access_log(storage, public) is None  # restored: the chain holds again
    # lines signed by the center do not verify against another key pair's public key
    center_keygen(tmp_path / "other", None)
    assert verify_access_log(storage, read_center_private(tmp_path / "other").public()) == 1


def test_the_pipelines_storage_alone_cannot_open_the_list(
    center_zone: Path, storage: KodomoStorage
) -> None:
    assert storage.storage_key_file and storage.center_public_key_file  # every pipeline key
    with pytest.raises((KeyProblem, StoreMissing)), storage.open(center_zone):
        pass
    with pytest.raises(duckdb.Error, match="encrypt"):
        duckdb.connect(str(center_zone), read_only=True)
    blob = center_zone.read_bytes()
    assert not any(a.encode() in blob for a in ATENA)
    assert stat.S_IMODE(center_zone.stat().st_mode) == 0o600


def test_a_wrong_center_key_is_refused(
    center_zone: Path, storage: KodomoStorage, tmp_path: Path, monkeypatch, capsys
) -> None:
    center_keygen(tmp_path / "other", None)
    monkeypatch.setenv("KODOMO_CENTER_KEY_DIR", str(tmp_path / "other"))
    out = tmp_path / "list.csv"
    assert export(out) == 2
    err = capsys.readouterr().err
    assert "対になっていません" in err and "Traceback" not in err
    assert not out.exists() and read_access_log(storage) == []
    assert list(tmp_path.glob(".list.csv*")) == []


def test_a_missing_center_key_is_a_clear_error(
    center_zone: Path, storage: KodomoStorage, tmp_path: Path, monkeypatch, capsys
) -> None:
    empty = tmp_path / "no-keys"
    empty.mkdir()
    monkeypatch.setenv("KODOMO_CENTER_KEY_DIR", str(empty))
    assert export(tmp_path / "list.csv") == 2
    err = capsys.readouterr().err
    assert (
        "センターの秘密鍵を読めません" in err and "がありません" in err and "Traceback" not in err
    )
    assert not (tmp_path / "list.csv").exists() and read_access_log(storage) == []


def test_a_purpose_is_required(
    center_zone: Path, storage: KodomoStorage, tmp_path: Path, capsys
) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["review-list", "--month", MONTH, "--out", str(tmp_path / "list.csv")])
    assert stopped.value.code == 2 and "--purpose" in capsys.readouterr().err
    # free text is refused: a sentence can name a person or hold a phone number
    for typed in (" 　\t", "山田さん宅 090-1234-5678 の訪問前に確認", '=HYPERLINK("x")'):
        assert export(tmp_path / "list.csv", purpose=typed) == 2
        err = capsys.readouterr().err
        assert "利用目的コード" in err and "個別確認" in err and "090" not in err
    assert not (tmp_path / "list.csv").exists() and read_access_log(storage) == []


def test_no_cell_of_any_sheet_is_a_formula(center_zone: Path, tmp_path: Path) -> None:
    """A reason that starts with = (or +, -, @) stays text in the xlsx and the csv."""
    assert export(tmp_path / "list.xlsx") == 0 and export(tmp_path / "list.csv") == 0
    book = openpyxl.load_workbook(tmp_path / "list.xlsx")
    for ws in book.worksheets:
        assert not [c.coordinate for row in ws.iter_rows() for c in row if c.data_type == "f"], (
            ws.title
        )
    rows = list(csv.reader((tmp_path / "list.csv").read_text(encoding="utf-8-sig").splitlines()))
    assert not [v for r in rows for v in r if v.startswith(("=", "+", "-", "@"))]
    assert any(v == "'=1+1 と書かれた理由" for r in rows for v in r)


def test_an_unknown_extension_is_refused(
    center_zone: Path, storage: KodomoStorage, tmp_path: Path, capsys
) -> None:
    assert export(tmp_path / "list.txt") == 2
    assert ".csv か .xlsx" in capsys.readouterr().err
    assert not (tmp_path / "list.txt").exists() and read_access_log(storage) == []


def test_a_month_without_a_list_says_what_to_materialize(
    center_zone: Path, storage: KodomoStorage, tmp_path: Path, capsys
) -> None:
    assert export(tmp_path / "list.csv", month="2022-09") == 1
    err = capsys.readouterr().err
    assert "2022-09" in err and "center/review_list" in err and "実体化" in err
    assert export(tmp_path / "list.csv", month="2022/09") == 2
    assert not (tmp_path / "list.csv").exists() and read_access_log(storage) == []


def test_an_existing_file_is_replaced_whole(center_zone: Path, tmp_path: Path) -> None:
    out = tmp_path / "list.csv"
    out.write_text("古い内容\n" * 1000, encoding="utf-8")
    os.chmod(out, 0o644)
    assert export(out) == 0
    assert "古い内容" not in out.read_text(encoding="utf-8-sig")
    assert stat.S_IMODE(out.stat().st_mode) == 0o600


def test_the_center_cannot_export_or_import_after_the_approval_ended(
    center_zone: Path, storage: KodomoStorage, tmp_path: Path, monkeypatch, capsys
) -> None:
    """Under the council's FY2022 list (ended 2023-03-31), today's export and import are
    refused before the list is opened, naming the period, its basis and the date."""
    monkeypatch.delenv("KODOMO_POLICY")
    monkeypatch.delenv("KODOMO_MODE")
    out = tmp_path / "list.csv"
    assert export(out) == 2
    err = capsys.readouterr().err
    assert "処理日" in err and "2022-04-01〜2023-03-31" in err and "諮問第65号" in err
    assert not out.exists() and read_access_log(storage) == []
    kakunin = tmp_path / "kakunin.csv"
    kakunin.write_text("宛名番号,基準月,確認結果\n", encoding="utf-8")
    assert main(["feedback-import", "--month", MONTH, "--file", str(kakunin)]) == 2
    assert "処理日" in capsys.readouterr().err and read_access_log(storage) == []
    # a demo approval under production settings is refused too
    monkeypatch.setenv("KODOMO_POLICY", str(DEMO_POLICY))
    assert export(out) == 2 and "本番では使えません" in capsys.readouterr().err

"""Verification results: the center's import of kakunin.csv against hand-made review lists
(a signed file of pseudonyms), and center/verification_feedback, which verifies it with the
public key only and computes the PPV, checked by hand."""

import json
import shutil
import stat
from pathlib import Path

import pytest
from dagster import DagsterInstance, ExecuteInProcessResult

from kodomo_assets.cli import main
from kodomo_assets.defs.center.feedback import verification_feedback
from kodomo_assets.defs.sources import inbox_receipt
from kodomo_assets.lib.center import feedback as fb
from kodomo_assets.lib.center.export import ImportResult, import_feedback, read_access_log
from kodomo_assets.lib.center.review_list import NEW, RISEN
from kodomo_assets.lib.platform.keys import (
    PUBLIC_FILE,
    CenterPrivate,
    center_keygen,
    read_center_private,
)
from kodomo_assets.lib.platform.storage import KodomoStorage
from kodomo_assets.lib.policy.pseudonym import token
from kodomo_assets_tests.lib.center.test_export import POVERTY, YOUNG_CARER, make_review_list
from kodomo_assets_tests.runs import failure_message, metadata, run

MONTH = "2022-10"


def child(atena: str) -> str:
    """A pseudonym for the hand-made lists (as review_list writes them: never the number)."""
    return token(bytes(32), "child", atena)


def listed(section: str, rank: int, atena: str, score: float, indicators: list[str]) -> tuple:
    return (section, rank, atena, child(atena), score, None, indicators, ["理由"], ["2022-10-31"])


SEPTEMBER = [
    listed(NEW, 1, "0000000101", 0.6, [YOUNG_CARER, POVERTY]),  # A
    listed(NEW, 2, "0000000102", 0.3, [YOUNG_CARER]),  # B
    listed(RISEN, 1, "0000000103", 0.15, []),  # C
]
OCTOBER = [
    listed(NEW, 1, "0000000201", 0.55, [POVERTY]),  # D
    listed(NEW, 2, "0000000202", 0.05, [YOUNG_CARER]),  # E
    listed(NEW, 3, "0000000102", 0.25, [POVERTY]),  # B again
]
KAKUNIN = [
    "宛名番号,基準月,確認結果",
    "101,2022-09,該当",  # 2: A, padded to 10 digits
    "０００００００１０２,2022/09,非該当",  # 3: B, full-width digits
    "0000000103,令和4年9月,既知",  # 4: C
    "0000000201,2022-10,該当",  # 5: D
    "0000000202,2022-10,非該当",  # 6: E
    "0000000102,2022-10,該当",  # 7: B in October
    "0000000999,2022-10,該当",  # 8: on no list: refused at import
    "0000000101,2022-10,非該当",  # 9: A was not on October's list: refused at import
    "12AB,2022-10,該当",  # 10..19: refused at import, as before
    "0000000201,2022-13,該当",
    "0000000202,2022-10,たぶん",
    "0000000101,2022-09",
    "0000000103,2022-11,該当",
    "0000000101,2022-09,該当",
    ",2022-10,該当",
    "0000000301,2022-08,該当",
    "0000000202,2022-09,該当",
    "0000000202,2022-09,非該当",
]
ATENA = [
    "0000000101",
    "0000000102",
    "0000000103",
    "0000000201",
    "0000000202",
    "0000000999",
    "0000000301",
    "12AB",
]
REFUSED = {
    fb.NOT_LISTED: 2,
    "宛名番号が数字でない": 1,
    "基準月が年月として読めない": 1,
    "確認結果が 該当・非該当・既知 のいずれでもない": 1,
    "列数が見出しと異なる": 1,
    "基準月が提出月より後": 1,
    "重複行（同じ宛名番号・基準月・確認結果）": 1,
    "宛名番号が空": 1,
    fb.NO_LIST: 1,
    "同じ宛名番号・基準月に異なる確認結果": 2,
}
REFUSED_LINES = {
    8: fb.NOT_LISTED,
    9: fb.NOT_LISTED,
    10: "宛名番号が数字でない",
    11: "基準月が年月として読めない",
    13: "列数が見出しと異なる",
    16: "宛名番号が空",
    17: fb.NO_LIST,
    18: "同じ宛名番号・基準月に異なる確認結果",
}
STORE = "verification_feedback"
NEXT = "2022-11"  # the run that takes October's results


def write_kakunin(path: Path, lines: list[str], encoding: str = "cp932") -> Path:
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode(encoding))
    return path


def feedback(
    storage: KodomoStorage, listed: str = MONTH
) -> tuple[ExecuteInProcessResult, DagsterInstance]:
    """The next month's run, which takes the results returned for `listed`'s list."""
    instance = DagsterInstance.ephemeral()
    return run([verification_feedback], month_after(listed), storage, instance), instance


def month_after(month: str) -> str:
    y, m = (int(x) for x in month.split("-"))
    return f"{y + (m == 12)}-{m % 12 + 1:02d}"


def signed_file(storage: KodomoStorage, month: str = MONTH) -> Path:
    return storage.inbox_path / month / fb.FEEDBACK_FILE


@pytest.fixture
def lists(storage: KodomoStorage) -> None:
    make_review_list(storage, "2022-09", SEPTEMBER)
    make_review_list(storage, MONTH, OCTOBER)


@pytest.fixture
def imported(lists, storage: KodomoStorage, center: CenterPrivate, tmp_path: Path) -> ImportResult:
    return import_feedback(storage, center, MONTH, write_kakunin(tmp_path / "kakunin.csv", KAKUNIN))


@pytest.mark.parametrize("encoding", ["cp932", "utf-8-sig", "utf-8"])
def test_ppv_per_indicator_and_band_as_computed_by_hand(
    lists, storage: KodomoStorage, center: CenterPrivate, tmp_path: Path, encoding: str
) -> None:
    source = write_kakunin(tmp_path / "kakunin.csv", KAKUNIN, encoding)
    imported = import_feedback(storage, center, MONTH, source)
    assert imported.rows == 6 and imported.path == signed_file(storage)
    assert [line for line, _ in imported.refused] == list(range(8, 20))
    assert {
        line: reason for line, reason in imported.refused if line in REFUSED_LINES
    } == REFUSED_LINES
    # the signed file holds pseudonyms, the lists' figures and counts: never a 宛名番号
    signed = signed_file(storage).read_text(encoding="utf-8")
    assert not any(a in signed for a in ATENA)
    doc = json.loads(signed)
    assert doc["month"] == MONTH and doc["refused_by_reason"] == REFUSED
    assert sorted(r["child_token"] for r in doc["rows"]) == sorted(
        child(a)
        for a in (
            "0000000101",
            "0000000102",
            "0000000103",
            "0000000201",
            "0000000202",
            "0000000102",
        )
    )
    assert stat.S_IMODE(signed_file(storage).stat().st_mode) == 0o600

    result, instance = feedback(storage)
    assert result.success
    (meta,) = metadata(result).values()
    assert meta["status"] == "提出済（署名検証済み）" and meta["dagster/row_count"] == 6
    assert meta["outcomes"] == {"該当": 3, "非該当": 2, "既知": 1}
    assert meta["ppv_overall"] == pytest.approx(0.6)
    assert meta["ppv_by_indicator"] == {
        YOUNG_CARER: {"該当": 1, "非該当": 2, "既知": 0, "PPV": 0.333},  # A, B(9月), E
        POVERTY: {"該当": 3, "非該当": 0, "既知": 0, "PPV": 1.0},  # A, D, B(10月)
        "（指標なし）": {"該当": 0, "非該当": 0, "既知": 1, "PPV": None},  # C
    }
    assert meta["ppv_by_band"] == {
        "0.5以上": {"該当": 2, "非該当": 0, "既知": 0, "PPV": 1.0},  # A 0.6, D 0.55
        "0.2以上0.5未満": {"該当": 1, "非該当": 1, "既知": 0, "PPV": 0.5},  # B 0.25, B 0.3
        "0.1以上0.2未満": {"該当": 0, "非該当": 0, "既知": 1, "PPV": None},  # C 0.15
        "0.1未満": {"該当": 0, "非該当": 1, "既知": 0, "PPV": 0.0},  # E 0.05
    }
    assert meta["counts_by_list_month"] == {
        "2022-09": {"該当": 1, "非該当": 1, "既知": 1},
        "2022-10": {"該当": 2, "非該当": 1, "既知": 0},
    }
    assert meta["refused_at_import"] == 12 and meta["refused_by_reason"] == REFUSED
    # no 宛名番号 in the metadata nor anywhere in the event log
    logged = json.dumps(meta, ensure_ascii=False, default=str) + json.dumps(
        [repr(e) for e in instance.all_logs(result.run_id)], ensure_ascii=False
    )
    assert not any(a in logged for a in ATENA)

    path = storage.zone_store("analysis", NEXT, STORE)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    with storage.open(path) as con:
        tables = {t for (t,) in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
        columns = [c for (c, *_) in con.execute("DESCRIBE verification").fetchall()]
        rows = con.execute(
            "SELECT child_token, list_month, result, score_band FROM verification"
        ).fetchall()
        bands = con.execute("SELECT score_band, ppv FROM ppv_by_band").fetchall()
    assert tables == set(fb.TABLES)
    assert "atena_no" not in columns and "child_token" in columns
    assert rows[:3] == [
        (child("0000000101"), "2022-09", "該当", "0.5以上"),
        (child("0000000102"), "2022-09", "非該当", "0.2以上0.5未満"),
        (child("0000000103"), "2022-09", "既知", "0.1以上0.2未満"),
    ]
    assert len(rows) == 6 and {r[2] for r in rows} == {"該当", "非該当", "既知"}
    assert bands == [
        ("0.5以上", 1.0),
        ("0.2以上0.5未満", 0.5),
        ("0.1以上0.2未満", None),
        ("0.1未満", 0.0),
    ]
    blob = path.read_bytes()
    assert not any(child(a).encode() in blob for a in ("0000000101", "0000000201"))  # encrypted
    # the delivery left the inbox, sealed; a rerun reads the sealed copy and agrees
    assert not signed_file(storage).exists()
    again, _ = feedback(storage)
    assert (
        again.success
        and metadata(again)["center/verification_feedback"]["outcomes"] == meta["outcomes"]
    )


def test_the_import_is_logged_and_reports_refused_lines_by_number(
    lists, storage: KodomoStorage, center_env: Path, tmp_path: Path, capsys
) -> None:
    source = write_kakunin(tmp_path / "kakunin.csv", KAKUNIN)
    assert main(["feedback-import", "--month", MONTH, "--file", str(source)]) == 0
    printed = capsys.readouterr()
    refused = [ln for ln in printed.err.splitlines() if "取り込みませんでした" in ln]
    assert len(refused) == 12
    assert f"{source} 8行目: {fb.NOT_LISTED}（取り込みませんでした）" in refused
    assert f"{source} 17行目: {fb.NO_LIST}（取り込みませんでした）" in refused
    assert "6 件" in printed.out and "除外 12 件" in printed.out and fb.FEEDBACK_FILE in printed.out
    assert not any(a in printed.out + printed.err.replace(str(source), "") for a in ATENA)
    (entry,) = read_access_log(storage, MONTH)
    assert (entry["action"], entry["rows"], entry["file"]) == ("import", 6, "kakunin.csv")
    assert signed_file(storage).exists()


def test_a_month_without_results_is_not_submitted_not_failed(lists, storage: KodomoStorage) -> None:
    result, _ = feedback(storage)
    assert result.success
    (meta,) = metadata(result).values()
    assert meta["status"] == "未提出" and meta["dagster/row_count"] == 0
    assert meta["refused_at_import"] == 0 and meta["ppv_by_indicator"] == {}
    assert all(v["PPV"] is None for v in meta["ppv_by_band"].values())
    with storage.open(storage.zone_store("analysis", NEXT, STORE)) as con:
        counts = [
            con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
            for t in ("verification", "ppv_by_indicator", "counts_by_month")
        ]
        assert counts == [0, 0, 0]
        assert con.execute("SELECT count(*) FROM ppv_by_band").fetchone()[0] == 4


def test_a_file_with_the_wrong_header_is_refused_at_import_without_quoting_it(
    lists, storage: KodomoStorage, center_env: Path, tmp_path: Path, capsys
) -> None:
    source = write_kakunin(tmp_path / "kakunin.csv", ["番号,月,結果", "0000000101,2022-09,該当"])
    assert main(["feedback-import", "--month", MONTH, "--file", str(source)]) == 2
    err = capsys.readouterr().err
    assert "kakunin.csv" in err and "宛名番号" in err and "0000000101" not in err
    assert "Traceback" not in err
    assert not signed_file(storage).exists() and read_access_log(storage) == []


def test_a_file_edited_after_signing_fails_and_writes_nothing(
    imported, storage: KodomoStorage
) -> None:
    path = signed_file(storage)
    doc = json.loads(path.read_text(encoding="utf-8"))
    doc["rows"][0]["result"] = (
        fb.NOT_CONFIRMED if doc["rows"][0]["result"] == fb.CONFIRMED else fb.CONFIRMED
    )
    path.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    result, _ = feedback(storage)
    assert not result.success
    message = failure_message(result)
    assert fb.FEEDBACK_FILE in message and "署名を検証できません" in message
    assert not any(a in message for a in ATENA)
    assert not storage.zone_store("analysis", NEXT, STORE).exists()
    assert not result.get_asset_materialization_events()


def test_a_file_signed_by_another_key_pair_fails(
    imported, storage: KodomoStorage, tmp_path: Path
) -> None:
    center_keygen(tmp_path / "other", None)
    other = read_center_private(tmp_path / "other")
    path = signed_file(storage)
    doc = json.loads(path.read_text(encoding="utf-8"))
    forged = fb.signed_document(
        doc["month"],
        doc["rows"],
        doc["refused_by_reason"],
        doc["imported_by"],
        doc["created"],
        other.signing,
        other.public().fingerprint,
    )
    path.write_text(json.dumps(forged, ensure_ascii=False), encoding="utf-8")
    result, _ = feedback(storage)
    assert not result.success and "署名を検証できません" in failure_message(result)
    assert not storage.zone_store("analysis", NEXT, STORE).exists()
    # unsigned: the signature removed
    del forged["signature"]
    path.write_text(json.dumps(forged, ensure_ascii=False), encoding="utf-8")
    result, _ = feedback(storage)
    assert not result.success and fb.FORMAT in failure_message(result)
    assert not storage.zone_store("analysis", NEXT, STORE).exists()


def test_a_file_signed_for_another_month_fails(imported, storage: KodomoStorage) -> None:
    later = signed_file(storage, "2022-11")
    later.parent.mkdir()
    shutil.move(signed_file(storage), later)
    result, _ = feedback(storage, "2022-11")
    assert not result.success and "2022-11 のものではありません" in failure_message(result)


def test_the_asset_needs_no_private_key(
    imported, storage: KodomoStorage, keys: Path, tmp_path: Path
) -> None:
    public_only = tmp_path / "public"
    public_only.mkdir()
    shutil.copy(keys / "center" / PUBLIC_FILE, public_only / PUBLIC_FILE)
    shutil.rmtree(keys / "center")  # the center's private keys are nowhere on this machine
    pipeline = KodomoStorage(
        home=storage.home,
        inbox=storage.inbox,
        storage_key_file=storage.storage_key_file,
        pseudonym_key_file=storage.pseudonym_key_file,
        center_public_key_file=str(public_only / PUBLIC_FILE),
        mode=storage.mode,
        clock=storage.clock,
    )
    result, _ = feedback(pipeline)
    assert result.success
    (meta,) = metadata(result).values()
    assert meta["status"] == "提出済（署名検証済み）" and meta["dagster/row_count"] == 6
    assert meta["ppv_overall"] == pytest.approx(0.6)


def test_the_inbox_receipt_lists_the_signed_file_and_ignores_a_plain_kakunin(
    imported, storage: KodomoStorage
) -> None:
    write_kakunin(storage.inbox_path / MONTH / "kakunin.csv", KAKUNIN[:2])
    result = run([inbox_receipt], MONTH, storage)
    (meta,) = metadata(result).values()
    assert meta["received"] == 1 and meta["ignored_unlisted"] == 1
    assert meta["ignored_unlisted_tags"] == [storage.name_tag("kakunin.csv")]
    assert fb.FEEDBACK_FILE not in meta["missing"] and "kakunin.csv" not in meta["missing"]

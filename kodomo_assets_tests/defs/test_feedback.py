"""center/verification_feedback: kakunin.csv joined to hand-made review lists, PPV by hand."""

import json
import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from dagster import DagsterInstance, ExecuteInProcessResult

from kodomo_assets.defs.center.assets import NEW, RISEN
from kodomo_assets.defs.center.feedback import verification_feedback
from kodomo_assets.defs.sources import inbox_receipt
from kodomo_assets.lib import keys
from kodomo_assets.lib.center_store import open_center
from kodomo_assets.lib.paths import zone_store
from kodomo_assets_tests.lib.test_export import POVERTY, YOUNG_CARER, make_review_list
from kodomo_assets_tests.runs import failure_message, metadata, run

MONTH = "2022-10"


def listed(section: str, rank: int, atena: str, score: float, indicators: list[str]) -> tuple:
    return (section, rank, atena, f"t{atena}", score, None, indicators, ["理由"], ["2022-10-31"])


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
    "0000000999,2022-10,該当",  # 8: on no list: 対象外
    "0000000101,2022-10,非該当",  # 9: A was not on October's list: 対象外
    "12AB,2022-10,該当",  # 10..19: quarantined
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
ATENA = ["0000000101", "0000000102", "0000000103", "0000000201", "0000000202", "0000000999",
         "0000000301", "12AB"]
QUARANTINE = {
    "宛名番号が数字でない": 1,
    "基準月が年月として読めない": 1,
    "確認結果が 該当・非該当・既知 のいずれでもない": 1,
    "列数が見出しと異なる": 1,
    "基準月が提出月より後": 1,
    "重複行（同じ宛名番号・基準月・確認結果）": 1,
    "宛名番号が空": 1,
    "基準月の確認リストがない": 1,
    "同じ宛名番号・基準月に異なる確認結果": 2,
}


def feedback(month: str = MONTH) -> tuple[ExecuteInProcessResult, DagsterInstance]:
    instance = DagsterInstance.ephemeral()
    return run([verification_feedback], month, instance), instance


@pytest.fixture
def lists(kodomo_env: tuple[Path, Path]) -> None:
    with pytest.warns(UserWarning, match="デモ用のセンター鍵"):
        make_review_list("2022-09", SEPTEMBER)
    make_review_list(MONTH, OCTOBER)


@pytest.mark.parametrize("encoding", ["cp932", "utf-8-sig", "utf-8"])
def test_ppv_per_indicator_and_band_as_computed_by_hand(lists, write_export: Callable[..., Path],
                                                        encoding: str) -> None:
    write_export("kakunin.csv", KAKUNIN, encoding=encoding)
    result, instance = feedback()
    assert result.success
    (meta,) = metadata(result).values()
    assert meta["status"] == "提出済" and meta["dagster/row_count"] == 8
    assert meta["outcomes"] == {"該当": 3, "非該当": 2, "既知": 1, "対象外": 2}
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
        "2022-09": {"該当": 1, "非該当": 1, "既知": 1, "対象外": 0},
        "2022-10": {"該当": 2, "非該当": 1, "既知": 0, "対象外": 2},
    }
    assert meta["quarantined"] == 10 and meta["quarantine_by_reason"] == QUARANTINE
    # no 宛名番号 in the metadata nor anywhere in the event log
    logged = json.dumps(meta, ensure_ascii=False, default=str) + json.dumps(
        [repr(e) for e in instance.all_logs(result.run_id)], ensure_ascii=False)
    assert not any(a in logged for a in ATENA)

    path = zone_store("center", MONTH, "verification_feedback")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    with open_center(path, keys.load(keys.CENTER)) as con:
        tables = {t for (t,) in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
        rows = con.execute("SELECT line, atena_no, list_month, outcome, score_band "
                           "FROM verification ORDER BY line").fetchall()
        bands = con.execute("SELECT score_band, ppv FROM ppv_by_band").fetchall()
        quarantined = con.execute("SELECT line, reason FROM quarantine ORDER BY line").fetchall()
    assert tables == {"verification", "ppv_by_indicator", "ppv_by_band", "counts_by_month",
                      "quarantine"}
    assert rows[:3] == [(2, "0000000101", "2022-09", "該当", "0.5以上"),
                        (3, "0000000102", "2022-09", "非該当", "0.2以上0.5未満"),
                        (4, "0000000103", "2022-09", "既知", "0.1以上0.2未満")]
    assert [r[3] for r in rows[6:]] == ["対象外", "対象外"] and rows[6][4] is None
    assert bands == [("0.5以上", 1.0), ("0.2以上0.5未満", 0.5), ("0.1以上0.2未満", None),
                     ("0.1未満", 0.0)]
    assert [q[0] for q in quarantined] == list(range(10, 20))


def test_a_month_without_results_is_not_submitted_not_failed(lists) -> None:
    result, _ = feedback()
    assert result.success
    (meta,) = metadata(result).values()
    assert meta["status"] == "未提出" and meta["dagster/row_count"] == 0
    assert meta["quarantined"] == 0 and meta["ppv_by_indicator"] == {}
    assert all(v["PPV"] is None for v in meta["ppv_by_band"].values())
    with open_center(zone_store("center", MONTH, "verification_feedback"), keys.load(keys.CENTER),
                        read_only=True) as con:
        counts = [con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                  for t in ("verification", "ppv_by_indicator", "counts_by_month", "quarantine")]
        assert counts == [0, 0, 0, 0]
        assert con.execute("SELECT count(*) FROM ppv_by_band").fetchone()[0] == 4


def test_a_file_with_the_wrong_header_fails_without_quoting_it(lists, write_export) -> None:
    write_export("kakunin.csv", ["番号,月,結果", "0000000101,2022-09,該当"])
    result, _ = feedback()
    assert not result.success
    message = failure_message(result)
    assert "kakunin.csv" in message and "宛名番号" in message and "0000000101" not in message
    assert not zone_store("center", MONTH, "verification_feedback").exists()


def test_the_inbox_receipt_lists_kakunin_as_received(kodomo_env, write_export) -> None:
    write_export("kakunin.csv", KAKUNIN[:2])
    result = run([inbox_receipt], MONTH)
    (meta,) = metadata(result).values()
    assert meta["received"] == 1 and meta["ignored_unlisted"] == []
    assert "kakunin.csv" not in meta["missing"]

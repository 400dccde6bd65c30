"""The center's round trip: the workbook staff receive is the form they return. Staff fill
確認結果, 確認日 and 確認の区分 with openpyxl as they would in Excel, mistakes included;
`kodomo feedback-import` refuses each bad row by sheet, row and column and signs the rest;
the pipeline's feedback asset computes the PPV from exactly the filled values."""

from datetime import date
from pathlib import Path

import openpyxl
import pytest

from kodomo_assets.defs.center.feedback import verification_feedback
from kodomo_assets.lib.center import feedback as fb
from kodomo_assets.lib.center.export import (
    HEADERS,
    ExportError,
    export_review_list,
    import_feedback,
    read_access_log,
)
from kodomo_assets.lib.center.review_list import NEW
from kodomo_assets_tests.lib.center.test_export import POVERTY, YOUNG_CARER, make_review_list
from kodomo_assets_tests.runs import metadata, run

MONTH = "2022-10"
CHECK_COLUMNS = [len(HEADERS) + i for i in (1, 2, 3)]  # 確認結果, 確認日, 確認の区分
RESULT, DAY, METHOD = (chr(ord("A") + c - 1) for c in CHECK_COLUMNS)
LIST = [  # section, rank, atena_no, child_token, score, prev_score, indicators, reasons, facts_asof
    (
        NEW,
        rank,
        f"00000001{rank:02d}",
        f"{rank:032x}",
        0.9 - rank / 100,
        None,
        [YOUNG_CARER] if rank % 2 else [POVERTY],
        ["理由"],
        ["2022-10-31"],
    )
    for rank in range(1, 9)
]


@pytest.fixture
def workbook(storage, center, tmp_path: Path) -> Path:
    make_review_list(storage, MONTH, LIST)
    out = tmp_path / "list.xlsx"
    export_review_list(storage, center, MONTH, out, "個別確認")
    book = openpyxl.load_workbook(out)
    sheet = book["確認リスト"]
    fill = {  # row: (確認結果, 確認日, 確認の区分), rows 2..9 are ranks 1..8
        2: ("該当", date(2022, 10, 15), "家庭訪問"),  # rank 1, young carer
        3: ("非該当", date(2022, 10, 20), "学校照会"),  # rank 2, poverty
        4: ("該当", date(2022, 11, 2), "記録確認"),  # rank 3, young carer
        5: ("たぶん", date(2022, 10, 21), "家庭訪問"),  # an unknown result: I
        6: ("該当", date(2022, 9, 30), "家庭訪問"),  # before the list's month: J
        7: ("非該当", date(2022, 10, 22), "電話"),  # not a 確認の区分: K
        8: ("既知", date(2022, 10, 23), "面談"),  # rank 7: already known
        9: ("未確認", None, None),  # not a result: skipped
    }
    for row, values in fill.items():
        for col, value in zip(CHECK_COLUMNS, values, strict=True):
            sheet.cell(row, col).value = value
    sheet.cell(4, 3).value = "0000009999"  # a typo'd 宛名番号 on rank 3: C
    sheet.cell(3, 4).value = 0.5  # rank 2's score changed by hand: refused as changed
    book.save(out)
    return out


def test_the_returned_workbook_reaches_the_feedback_asset(storage, center, workbook: Path) -> None:
    imported = import_feedback(storage, center, MONTH, workbook)
    assert imported.rows == 2  # rank 1 (該当) and rank 7 (既知)
    assert imported.refused == [
        ("確認リスト 3行 C列（宛名番号）", "順位またはスコアが書き出したときと違う"),
        ("確認リスト 4行 C列（宛名番号）", fb.NOT_LISTED),
        (
            f"確認リスト 5行 {RESULT}列（確認結果）",
            "確認結果が 該当・非該当・既知 のいずれでもない",
        ),
        (f"確認リスト 6行 {DAY}列（確認日）", "確認日が処理の期間（2022-10-01〜今日）の外"),
        (f"確認リスト 7行 {METHOD}列（確認の区分）", "確認の区分が一覧にない"),
    ]
    assert [e["action"] for e in read_access_log(storage)] == ["export", "import"]
    (meta,) = metadata(run([verification_feedback], "2022-11", storage)).values()  # the next run
    assert meta["outcomes"] == {"該当": 1, "非該当": 0, "既知": 1}
    assert meta["ppv_by_indicator"][YOUNG_CARER] == {"該当": 1, "非該当": 0, "既知": 1, "PPV": 1.0}
    assert meta["refused_at_import"] == 5


def test_a_workbook_of_another_month_is_refused_whole(storage, center, workbook: Path) -> None:
    with pytest.raises(ExportError, match="基準月 2022-09 の確認リストではありません"):
        import_feedback(storage, center, "2022-09", workbook)


def test_a_child_found_not_in_need_is_not_listed_again_without_news(tmp_path_factory) -> None:
    """Two months as in use: a child verified 非該当 on September's list is on October's list
    only if an indicator fires in October that did not fire in September; a child verified
    該当 stays, with its previous result and month shown. Both lists are drawn long (a third
    of the children), so the months share enough children whatever the key does to scores."""
    from dagster import DagsterInstance, materialize

    from kodomo_assets.definitions import ASSETS
    from kodomo_assets.defs.center import review_list
    from kodomo_assets.demo import generate
    from kodomo_assets.lib.platform.keys import read_center_private
    from kodomo_assets_tests.conftest import copy_inbox, demo_env

    generated = tmp_path_factory.mktemp("generated")
    generate(generated, residents=9000, months=["2022-09", MONTH], seed=23)
    inbox = copy_inbox(generated, tmp_path_factory.mktemp("inbox"))
    long = {"ops": {"center__review_list": {"config": {"share": 0.3}}}}
    always = {"ops": {"center__review_list": {"config": {"share": 0.3, "relist_after": 0}}}}
    with demo_env(inbox, tmp_path_factory) as storage:
        center = read_center_private(Path(storage.storage_key_file).parent / "center")
        instance = DagsterInstance.ephemeral()

        def refresh(assets: list, month: str, config: dict) -> None:
            assert materialize(
                assets,
                partition_key=month,
                instance=instance,
                run_config=config,
                resources={"storage": storage},
            ).success

        def listed(month: str) -> dict[str, list[str]]:
            with storage.open_as_center(
                storage.zone_store("center", month, "review_list"), center
            ) as con:
                return {
                    t: i
                    for t, i in con.execute(
                        "SELECT child_token, indicators FROM review_list WHERE section = ?", [NEW]
                    ).fetchall()
                }

        refresh(ASSETS, "2022-09", long)
        refresh(ASSETS, MONTH, always)  # October as it would be without the rule
        september, october = listed("2022-09"), listed(MONTH)
        both = [t for t in september if t in october]
        quiet = [t for t in both if set(october[t]) <= set(september[t])]  # no news in October
        news = [t for t in both if t not in quiet]
        assert quiet  # the case the rule is about
        in_need, not_in_need = quiet[0], quiet[1:6] + news[:5]
        out = tmp_path_factory.mktemp("out") / "september.xlsx"
        export_review_list(storage, center, "2022-09", out, "個別確認")
        book = openpyxl.load_workbook(out)
        sheet = book["確認リスト"]
        with storage.open_as_center(
            storage.zone_store("center", "2022-09", "review_list"), center
        ) as con:
            token = {
                a: t
                for t, a in con.execute("SELECT child_token, atena_no FROM review_list").fetchall()
            }
        others = []
        for row in range(2, sheet.max_row + 1):
            who = token.get(sheet.cell(row, 3).value)
            if who == in_need or who in not_in_need:
                result = "該当" if who == in_need else "非該当"
                for col, value in zip(
                    CHECK_COLUMNS, (result, date(2022, 9, 20), "記録確認"), strict=True
                ):
                    sheet.cell(row, col).value = value
            elif len(others) < 3:
                others.append(row)
        # and the mistakes staff make: a typo'd 宛名番号, an unknown result, a date in the wrong month
        typo, unknown, early = others
        for row, values in (
            (typo, ("該当", date(2022, 9, 21), "家庭訪問")),
            (unknown, ("要確認", date(2022, 9, 21), "家庭訪問")),
            (early, ("該当", date(2022, 8, 31), "家庭訪問")),
        ):
            for col, value in zip(CHECK_COLUMNS, values, strict=True):
                sheet.cell(row, col).value = value
        sheet.cell(typo, 3).value = "9999999999"
        book.save(out)
        imported = import_feedback(storage, center, "2022-09", out)
        assert imported.rows == 1 + len(not_in_need)
        assert sorted(where for where, _ in imported.refused) == sorted(
            [
                f"確認リスト {typo}行 C列（宛名番号）",
                f"確認リスト {unknown}行 {RESULT}列（確認結果）",
                f"確認リスト {early}行 {DAY}列（確認日）",
            ]
        )
        assert run(
            [verification_feedback], MONTH, storage, instance
        ).success  # October's run takes them
        again = materialize(
            [review_list],
            partition_key=MONTH,
            instance=instance,
            run_config=long,
            resources={"storage": storage},
        )
        held = [t for t in not_in_need if t in quiet]
        assert metadata(again)["center/review_list"]["not_relisted_after_non_confirmation"] >= len(
            held
        )
        october = listed(MONTH)
        assert in_need in october
        for child in not_in_need:  # back on the list exactly when something new fired
            assert (child in october) == (child in news), child
        with storage.open_as_center(
            storage.zone_store("center", MONTH, "review_list"), center
        ) as con:
            assert con.execute(
                "SELECT prev_result, prev_result_month FROM review_list WHERE child_token = ?",
                [in_need],
            ).fetchone() == ("該当", "2022-09")

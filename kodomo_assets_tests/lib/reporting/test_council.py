"""The council's tables: verification results, trends and 課題, suppressed as an adversary
would attack them (a subtraction from a total, a rate times a shown count)."""

from pathlib import Path

import duckdb
import pytest

from kodomo_assets.lib.reporting import council as C
from kodomo_assets.lib.reporting.suppression import MASK


def _verified(rows: list[tuple[str, str, str, str, str, list[str]]]) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute(
        "CREATE TEMP TABLE v (child_token VARCHAR, list_month VARCHAR, result VARCHAR, "
        "section VARCHAR, score_band VARCHAR, indicators VARCHAR[])"
    )
    con.executemany("INSERT INTO v VALUES (?, ?, ?, ?, ?, ?)", rows)
    con.execute("CREATE TEMP VIEW verified AS SELECT * FROM v")
    return con


def _results(
    month: str,
    confirmed: int,
    not_confirmed: int,
    start: int = 0,
    indicators: list[str] | None = None,
) -> list[tuple]:
    return [
        (
            f"t{month}{start + i}",
            month,
            "該当" if i < confirmed else "非該当",
            C.NEW,
            "0.1未満",
            indicators or ["A"],
        )
        for i in range(confirmed + not_confirmed)
    ]


def test_a_month_with_few_confirmed_hides_them_and_a_second_cell_so_the_total_solves_nothing() -> (
    None
):
    con = _verified(_results("2022-09", 3, 20) + _results("2022-10", 15, 12))
    table = C.by_month(con, {"2022-09": 26, "2022-10": 30})
    rows = {r[0]: r for r in table.rows}
    assert rows["2022-09"][1] == MASK  # 3 confirmed
    # a second cell of the column goes with it (another month or the total): 18 − 15 = 3
    assert sum(r[1] == MASK for r in table.rows) >= 2
    assert rows["2022-09"][-1] == MASK  # no PPV from a hidden count
    assert all(r[-1] == MASK for r in table.rows if r[1] == MASK)
    assert rows["2022-10"][4] == MASK  # 30 − 27 = 3 still open


def test_a_rate_is_never_shown_beside_a_hidden_count() -> None:
    assert C.rate(25, 1160, MASK, "1,160") == MASK
    assert C.rate(25, 1160, "25", "1,160", "{:.2%}") == "2.16%"
    assert C.rate(3, 1160, "x", "1,160") == MASK


def test_groups_that_partition_the_children_are_suppressed_with_their_total() -> None:
    """The old table showed 25 of 26 listed in one group: 26 − 25 gave the other group's 1."""
    rows = [
        ("ひとり親世帯", "ひとり親世帯", 78, 1, 4, 1),
        ("ひとり親世帯", "それ以外", 1160, 25, 36, 10),
    ]
    table = C.verified_groups_table(rows)
    by = {r[1]: r for r in table.rows}
    assert by["ひとり親世帯"][3] == MASK and by["それ以外"][3] == MASK  # 25 hidden too: total is 26
    assert by["合計"][3] == "26" and by["それ以外"][4] == MASK  # and no rate gives it back


def test_co_occurrence_hides_a_pair_whose_rest_is_small() -> None:
    # 12 confirmed with A, 11 with both A and B, 20 with B: A without B is 1
    rows = [(f"a{i}", "2022-10", "該当", C.NEW, "0.1未満", ["A", "B"]) for i in range(11)]
    rows += [("a11", "2022-10", "該当", C.NEW, "0.1未満", ["A"])]
    rows += [(f"b{i}", "2022-10", "該当", C.NEW, "0.1未満", ["B"]) for i in range(9)]
    table = C.co_occurrence(_verified(rows), ["A", "B"])
    a, b = table.rows
    assert a[1] == "12" and b[2] == "20" and a[2] == MASK and b[1] == MASK


def test_ppv_by_band_is_suppressed_across_the_bands() -> None:
    """61 in one band and a total of 63 gave the other band's 2 away."""
    rows = [
        (f"t{i}", "2022-10", "該当" if i < 11 else "非該当", C.NEW, "0.1未満", ["A"])
        for i in range(61)
    ]
    rows += [(f"u{i}", "2022-10", "非該当", C.NEW, "0.1以上0.2未満", ["A"]) for i in range(2)]
    _, bands = C.ppv_tables(_verified(rows), ["A"], ["0.1以上0.2未満", "0.1未満"])
    by = {r[0]: r for r in bands.rows}
    assert by["0.1以上0.2未満"][1] == MASK and by["0.1未満"][1] == MASK and by["合計"][1] == "63"


def test_silent_indicators_are_named() -> None:
    said = C.silent_indicators({"A": 0, "B": 12, "C": 30}, {"C": 4})
    assert said == [
        "どの月も該当がなかった指標: A",
        "該当はあるが確認で該当となった児童がいない指標: B",
    ]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("宛名番号 0000123456 の世帯で転居が続いた", "宛名番号など10桁以上の番号の疑い"),
        ("父親 090-1234-5678 から問合せ", "電話番号の疑い"),
        ("滞納額 35,000円 の家庭", "金額の疑い"),
    ],
)
def test_a_note_holding_personal_data_is_refused_by_line_without_its_text(
    tmp_path: Path, text: str, reason: str
) -> None:
    path = tmp_path / "2022-10.csv"
    path.write_text(
        f"区分,内容,対応\n連携,学齢簿の住所の表記揺れが多い,学務課に依頼\n運用,{text},\n",
        encoding="utf-8",
    )
    kept, refused = C.read_notes(path)
    assert kept == [("連携", "学齢簿の住所の表記揺れが多い", "学務課に依頼")]
    assert refused == [
        f"2022-10.csv 3行目: {reason}があるため載せません（個人情報を書かないでください）"
    ]
    assert text not in refused[0]


def test_notes_with_an_unknown_kind_or_header_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "n.csv"
    path.write_text("区分,内容,対応\n感想,多い,\n", encoding="utf-8")
    assert C.read_notes(path) == (
        [],
        ["n.csv 2行目: 区分は 受信・連携・指標・確認・公平性・運用・その他 のいずれか"],
    )
    path.write_text("メモ\nなにか\n", encoding="utf-8")
    kept, refused = C.read_notes(path)
    assert kept == [] and "見出し行は 区分,内容,対応" in refused[0]
    assert C.read_notes(tmp_path / "none.csv") == ([], [])

import threading
from collections.abc import Callable
from pathlib import Path

import duckdb
import numpy as np
import pytest

from kodomo_assets.lib.ingest.decode import SourceFileError, _field_separators
from kodomo_assets.lib.ingest.load import ingest, read_ahead
from kodomo_assets.lib.registry import load_registry
from kodomo_assets_tests.conftest import JUMIN_HEADER

JUMIN = load_registry().datasets["jumin"]
OK = "0000000001,0000000009,123456789018,髙橋 太郎,ﾀｶﾊｼ ﾀﾛｳ,令和元年5月1日,1,世帯主,東京都昭島市東町1丁目,0120,日本人,R4.10.11"


@pytest.fixture
def run(kodomo_env: tuple[Path, Path]) -> Callable:
    """Ingest the export written into this test's inbox into a plain DuckDB file (the storage
    resource's encryption is tested on its own); returns the result and a read connection."""
    inbox, home = kodomo_env

    def ingest_into(ds=JUMIN, month: str = "2022-10", wrap=None):
        store = home / f"{ds.department.code}-{month}.duckdb"
        store.parent.mkdir(parents=True, exist_ok=True)
        con = duckdb.connect(str(store))
        try:
            result = ingest(ds, month, inbox / month / ds.file, wrap(con) if wrap else con)
        finally:
            con.close()
        return result, duckdb.connect(str(store), read_only=True)

    return ingest_into


def test_cp932_oddities_survive_and_are_normalised(run, write_export) -> None:
    write_export(
        "jumin.csv",
        [
            JUMIN_HEADER,
            OK,
            "０００００００００２,0000000009,,山﨑 花子,やまざき はなこ,H28/4/1,女,妻,"
            '"昭島市㈱ビル①,1～3号",１２０,外国人,5041011',
        ],
    )
    result, con = run()
    assert result.encoding == "cp932"
    rows = con.execute(
        "SELECT atena_no, name, name_kana, birth_date::VARCHAR, sex, address, "
        "district_code FROM jumin ORDER BY atena_no"
    ).fetchall()
    assert rows[0] == (
        "0000000001",
        "髙橋 太郎",
        "タカハシ タロウ",
        "2019-05-01",
        "1",
        "東京都昭島市東町1丁目",
        "0120",
    )
    # NFKC folds ㈱, ① and ～; 﨑 (a unified CJK compatibility ideograph) is kept.
    assert rows[1] == (
        "0000000002",
        "山﨑 花子",
        "ヤマザキ ハナコ",
        "2016-04-01",
        "2",
        "昭島市(株)ビル1,1~3号",
        "0120",
    )


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig"])
def test_utf8_with_and_without_bom(run, write_export, encoding: str) -> None:
    write_export("jumin.csv", [JUMIN_HEADER, OK], encoding=encoding, newline="\n")
    result, con = run()
    assert result.encoding == encoding
    assert con.execute("SELECT name FROM jumin").fetchall() == [("髙橋 太郎",)]


def test_forbidden_column_is_never_stored(run, write_export) -> None:
    write_export("jumin.csv", [JUMIN_HEADER, OK])
    result, con = run()
    assert result.dropped_forbidden_columns == ["個人番号"]
    columns = [r[0] for r in con.execute("DESCRIBE jumin").fetchall()]
    assert "my_number" not in columns
    everything = (
        con.execute("SELECT * FROM jumin").fetchall()
        + con.execute("SELECT * FROM jumin_quarantine").fetchall()
    )
    assert "123456789018" not in repr(everything)


def test_header_mapping_ignores_unknown_and_order(run, write_export) -> None:
    header = JUMIN_HEADER.split(",")
    values = OK.split(",")
    order = list(reversed(range(len(header))))
    write_export(
        "jumin.csv",
        [
            ",".join([header[i] for i in order] + ["予備項目", "備考"]),
            ",".join([values[i] for i in order] + ["x", "自由記述"]),
        ],
    )
    result, con = run()
    # unknown headers are named by position only (the asset adds a keyed tag): never quoted
    assert result.ignored_columns == ["13列目"]
    assert sorted(result.dropped_forbidden_columns) == ["14列目", "個人番号"]
    assert con.execute("SELECT atena_no, household_no FROM jumin").fetchall() == [
        ("0000000001", "0000000009")
    ]


def test_missing_column_fails_naming_file_line_and_column(run, write_export) -> None:
    write_export("jumin.csv", [JUMIN_HEADER.replace("続柄,", ""), OK.replace("世帯主,", "")])
    with pytest.raises(SourceFileError) as err:
        run()
    assert "jumin.csv 1行目 列「続柄」" in str(err.value)


def test_tax_header_is_refused(run, write_export) -> None:
    write_export("jumin.csv", [JUMIN_HEADER + ",住民税額", OK + ",1000"])
    with pytest.raises(SourceFileError) as err:
        run()
    assert "地方税法第22条" in str(err.value)
    assert "1000" not in str(err.value)


def test_utf16_is_refused(run, write_export) -> None:
    write_export("jumin.csv", [JUMIN_HEADER, OK], encoding="utf-16")
    with pytest.raises(SourceFileError, match="UTF-16"):
        run()


def test_quarantine_keeps_every_bad_row_with_reason_and_line(run, write_export) -> None:
    write_export(
        "jumin.csv",
        [
            JUMIN_HEADER,
            OK,  # 2 stored
            OK.replace("令和元年5月1日", "R4.2.30").replace("0000000001,", "0000000003,", 1),
            OK.replace(",世帯主,", ",不明,").replace("0000000001,", "0000000004,", 1),
            OK.replace("0000000001,", "00000A0005,", 1),
            OK.replace("0000000001,", "0000000006,", 1),  # 6 stored
            OK.replace("0000000001,", " 0000000006 ,", 1),  # 7 exact duplicate of 6
            OK.replace("0000000001,", "0000000007,", 1),  # 8 conflicts with 9
            OK.replace("0000000001,", "0000000007,", 1).replace(",1,世帯主", ",2,世帯主"),
            OK.replace("0000000001,", "0000000008,", 1).replace(",0120,", ',"0120,'),
            "0000000010,0000000009",
            OK.replace("0000000001,", ",", 1),
            "",
            "",
        ],
    )
    result, con = run()
    assert (result.rows_received, result.stored_rows, result.duplicates_removed) == (11, 2, 1)
    assert result.quarantined == 8
    quarantine = dict(
        con.execute("SELECT line, array_to_string(reasons, '|') FROM jumin_quarantine").fetchall()
    )
    assert quarantine == {
        3: "生年月日: 存在しない日付",
        4: "続柄: 定義外の値",
        5: "宛名番号: 数字以外を含む",
        8: "宛名番号: キーが重複し内容が矛盾",
        9: "宛名番号: キーが重複し内容が矛盾",
        10: '引用符 " の対応が取れていない行',
        11: "列数が見出しと異なる (2 列、見出しは 12 列)",
        12: "宛名番号: 必須項目が空",
    }
    assert result.quarantine_by_reason["宛名番号: キーが重複し内容が矛盾"] == 2
    assert result.blank_lines == 2
    # raw values stay inside the department store for the steward to correct
    assert con.execute("SELECT birth_date FROM jumin_quarantine WHERE line = 3").fetchone() == (
        "R4.2.30",
    )


def test_cross_field_rule_from_registry(run, write_export) -> None:
    ds = load_registry().datasets["shukketsu"]
    header = "学籍番号,対象年月,授業日数,欠席日数,遅刻回数,早退回数,保健室来室回数,いじめ被害認知,欠席理由"
    write_export(
        "shukketsu.csv",
        [
            header,
            "1001,R4.10,20,3,0,0,1,無,風邪",
            "1001,2022/09,20,21,0,0,0,無,",
            "1002,令和4年10月,２０,x,0,0,0,無,",
        ],
    )
    result, con = run(ds)
    assert result.stored_rows == 1
    assert con.execute("SELECT pupil_no, month, absent_days FROM shukketsu").fetchall() == [
        ("1001", "2022-10", 3)
    ]
    assert sorted(result.quarantine_by_reason) == [
        "欠席日数: 0以上の整数でない",
        "欠席日数: 欠席日数が授業日数を超えています",
    ]


def test_header_only_file_fails_rather_than_storing_an_empty_table(run, write_export) -> None:
    write_export("jumin.csv", [JUMIN_HEADER, "", ""])  # trailing blank lines are no data either
    with pytest.raises(
        SourceFileError, match="jumin.csv 2行目: 見出し行だけでデータ行が1行もありません"
    ):
        run()


def test_truncated_last_line_without_line_end_is_quarantined(run, kodomo_env) -> None:
    inbox, _ = kodomo_env
    (inbox / "2022-10").mkdir()
    text = f"{JUMIN_HEADER}\r\n{OK}\r\n{OK[:40]}"
    (inbox / "2022-10" / "jumin.csv").write_bytes(text.encode("cp932"))
    result, con = run()
    assert (result.stored_rows, result.quarantined) == (1, 1)
    assert con.execute("SELECT line FROM jumin_quarantine").fetchall() == [(3,)]


def test_zero_byte_file_fails_clearly(run, kodomo_env) -> None:
    inbox, _ = kodomo_env
    (inbox / "2022-10").mkdir()
    (inbox / "2022-10" / "jumin.csv").write_bytes(b"")
    with pytest.raises(SourceFileError, match="0 バイト"):
        run()


def test_other_encoding_is_refused_with_the_line(run, write_export) -> None:
    write_export("jumin.csv", [JUMIN_HEADER, OK.replace("髙", "高")], encoding="euc_jp")
    with pytest.raises(SourceFileError) as err:
        run()
    assert "jumin.csv 1行目" in str(err.value)


def test_an_undecodable_line_is_quarantined_not_the_file(run, kodomo_env) -> None:
    inbox, _ = kodomo_env
    (inbox / "2022-10").mkdir()
    good = (JUMIN_HEADER + "\r\n" + OK + "\r\n").encode("cp932")
    broken = (
        OK.replace("0000000001,", "0000000002,", 1)
        .encode("cp932")
        .replace("東町".encode("cp932"), b"\x85\x40")
    )
    (inbox / "2022-10" / "jumin.csv").write_bytes(good + broken + b"\r\n")
    result, con = run()
    assert (result.stored_rows, result.quarantined) == (1, 1)
    reason = con.execute("SELECT reasons[1] FROM jumin_quarantine").fetchone()[0]
    assert "cp932 として読めない" in reason


def test_multi_valued_codes_are_checked_item_by_item(run, write_export) -> None:
    ds = load_registry().datasets["seiho"]
    write_export(
        "seiho.csv",
        [
            "ケース番号,宛名番号,世帯番号,保護開始日,保護廃止日,扶助種別",
            "000001,0000000001,0000000001,R4.4.1,,生活扶助;教育扶助",
            "000001,0000000002,0000000001,R4.4.1,,生活扶助;住宅手当",
            "000001,0000000003,0000000001,R4.4.1,,生活扶助 ; 医療扶助",
        ],
    )
    result, con = run(ds)
    assert con.execute("SELECT atena_no, aid_kinds FROM seiho ORDER BY 1").fetchall() == [
        ("0000000001", ["生活扶助", "教育扶助"]),
        ("0000000003", ["生活扶助", "医療扶助"]),
    ]
    assert result.quarantine_by_reason == {"扶助種別: 定義外の値": 1}


def test_stray_spaces_around_a_quoted_field_keep_its_comma(run, write_export) -> None:
    write_export(
        "jumin.csv",
        [
            JUMIN_HEADER,
            OK.replace(",東京都昭島市東町1丁目,", ',  "東京都昭島市東町1丁目,コーポ①" ,'),
            OK.replace("0000000001,", ' "0000000002" ,', 1),
        ],
    )
    result, con = run()
    assert (result.stored_rows, result.quarantined) == (2, 0)
    assert con.execute("SELECT atena_no, address FROM jumin ORDER BY 1").fetchall() == [
        ("0000000001", "東京都昭島市東町1丁目,コーポ1"),
        ("0000000002", "東京都昭島市東町1丁目"),
    ]


def test_a_failure_during_the_write_leaves_the_last_good_state(
    run, write_export, kodomo_env
) -> None:
    write_export("jumin.csv", [JUMIN_HEADER, OK])
    run()[1].close()
    write_export("jumin.csv", [JUMIN_HEADER, OK, OK.replace("0000000001,", "0000000002,", 1)])

    class CrashBeforeCommit:
        def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
            self._con = con

        def execute(self, sql: str, *args):
            if sql.startswith("CREATE OR REPLACE TABLE jumin_quarantine"):
                raise RuntimeError("simulated crash between the two writes")
            return self._con.execute(sql, *args)

        def __getattr__(self, name: str):
            return getattr(self._con, name)

    with pytest.raises(RuntimeError):
        run(wrap=CrashBeforeCommit)
    store = kodomo_env[1] / "shimin-2022-10.duckdb"
    with duckdb.connect(str(store), read_only=True) as con:
        assert con.execute("SELECT atena_no FROM jumin").fetchall() == [("0000000001",)]


def test_fully_quoted_export_with_escaped_quotes(run, write_export) -> None:
    def quoted(line: str) -> str:
        return ",".join(f'"{v}"' for v in line.split(","))

    write_export(
        "jumin.csv",
        [
            quoted(JUMIN_HEADER),
            quoted(OK),
            quoted(OK.replace("0000000001", "0000000002", 1)).replace("東町1丁目", 'コーポ""A"",1'),
        ],
    )
    result, con = run()
    assert (result.stored_rows, result.quarantined) == (2, 0)
    assert con.execute("SELECT address FROM jumin ORDER BY atena_no").fetchall() == [
        ("東京都昭島市東町1丁目",),
        ('東京都昭島市コーポ"A",1',),
    ]


def test_read_ahead_keeps_order_raises_in_place_and_stops_when_the_reader_stops() -> None:
    def blocks():
        yield from range(5)
        raise SourceFileError("jumin.csv", "区間を解析できません", line=9)

    got = []
    with pytest.raises(SourceFileError, match="9行目"):
        for b in read_ahead(blocks()):
            got.append(b)
    assert got == [0, 1, 2, 3, 4]
    ahead = read_ahead(iter(range(1000)), depth=1)
    assert next(ahead) == 0
    ahead.close()  # the consumer stops early: the reading thread ends with it
    assert not [t for t in threading.enumerate() if t.name == "read-ahead"]


def test_commas_inside_quotes_are_not_separators_and_parity_resets_per_line() -> None:
    data = b'a,"b,c",d\nx,"y\n1,2,3\n"p,q","r,s",t\n'
    buf = np.frombuffer(data, np.uint8)
    ends = np.flatnonzero(buf == 10)
    starts = np.r_[0, ends[:-1] + 1]
    counts = _field_separators(buf, np.flatnonzero(buf == 34), starts, ends)
    assert counts.tolist() == [2, 1, 2, 2]  # the unbalanced line 2 does not shift line 3


def _everything(con: duckdb.DuckDBPyConnection) -> str:
    """Every value of every table of a store, as text: what a thief of the file would read."""
    tables = [t for (t,) in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()]
    return "\n".join(str(r) for t in tables for r in con.execute(f'SELECT * FROM "{t}"').fetchall())


@pytest.mark.parametrize(
    "planted",
    [
        "東小 1234 5678 9018",
        "一二三四五六七八九〇一八",
        "番号123,456,789,018",
        "090 1234 5678",
        "０９０ー１２３４ー５６７８",
        "+81-90-1234-5678",
        "(042)545-1234",
        "所得3280000円",
    ],
)
def test_a_forbidden_value_in_a_text_column_is_quarantined_masked_at_the_door(
    run, write_export, planted: str
) -> None:
    """施設名 is not even approved for analysis: it is scanned all the same, before it is stored."""
    hoiku = load_registry().datasets["hoiku"]
    write_export(
        "hoiku.csv",
        [
            "宛名番号,施設名,入所状況,保育の必要性事由,入所年月日",
            "0000000001,東保育園,入所中,就労,R4.4.1",
            f'0000000002,"{planted}",入所中,就労,R4.4.1',
        ],
    )
    result, con = run(hoiku)
    assert (result.stored_rows, result.quarantined) == (1, 1)
    (reason,) = result.quarantine_by_reason
    assert reason.startswith("施設名: ") and reason.endswith("の疑い")
    stored = _everything(con)
    digits = "".join(ch for ch in planted if ch.isdigit())
    assert planted not in stored and (not digits or digits not in stored.replace(" ", ""))
    assert (
        con.execute("SELECT facility FROM hoiku_quarantine").fetchone()[0].startswith("＊＊＊＊（")
    )
    assert "0000000002" in stored  # the rest of the row is kept, for the department to fix


def test_a_twelve_digit_number_in_a_count_is_out_of_range_and_masked(run, write_export) -> None:
    yobo = load_registry().datasets["yobo"]
    write_export(
        "yobo.csv",
        [
            "宛名番号,定期接種対象数,接種済数",
            "0000000001,12,11",
            "0000000002,123456789018,3",
            "0000000003,41,3",
        ],
    )
    result, con = run(yobo)
    assert (result.stored_rows, result.quarantined) == (1, 2)
    assert result.quarantine_by_reason == {
        "定期接種対象数: 個人番号の疑い": 1,
        "定期接種対象数: 範囲外の値（0-40）": 1,
    }
    assert "123456789018" not in _everything(con) and "41" not in str(
        con.execute("SELECT doses_due FROM yobo_quarantine").fetchall()
    )


@pytest.mark.parametrize("tax_header", ["都民税", "均等割", "所得割額", "住⺠税額", "特別徴収税額"])
def test_a_tax_header_inside_a_listed_export_refuses_the_export(
    run, write_export, tax_header: str
) -> None:
    write_export("jumin.csv", [JUMIN_HEADER + "," + tax_header, OK + ",1000"], encoding="utf-8")
    with pytest.raises(SourceFileError, match="地方税法第22条") as err:
        run()
    assert tax_header not in str(err.value) and "13列目" in str(err.value)

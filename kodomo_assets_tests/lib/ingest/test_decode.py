"""lib/ingest/decode.py: the sealed copy's redaction, and the reader itself (read_header,
iter_blocks) on bytes, without Dagster or a store: encoding detection, refusals that name
file, line and byte and never a value, line numbers, and lines set aside."""

from pathlib import Path

import pytest

from kodomo_assets.lib.ingest import decode
from kodomo_assets.lib.ingest.decode import (
    ALLOWED,
    Decoded,
    SourceFileError,
    iter_blocks,
    read_header,
    redact,
)

MASK = "＊＊＊＊（電話番号の疑い）"


def test_only_the_hit_cells_change_and_every_other_byte_is_kept() -> None:
    text = '宛名番号,氏名,備考\r\n0000000001,"山田, 花子",090-1234-5678\r\n0000000002,佐藤,なし\r\n'
    data = text.encode("cp932")
    got = redact(data, "cp932", {2: {2: MASK}}).decode("cp932")
    assert (
        got == f'宛名番号,氏名,備考\r\n0000000001,"山田, 花子",{MASK}\r\n0000000002,佐藤,なし\r\n'
    )


def test_lines_anywhere_in_the_file_including_a_last_line_without_its_end() -> None:
    data = b"a,b\n1,x\n2,y\n3,z"
    got = redact(data, "utf-8-sig", {4: {1: MASK}, 2: {0: MASK}})
    assert got == f"a,b\n{MASK},x\n2,y\n3,{MASK}".encode()
    assert redact(data, "utf-8", {}) == data


# -- the reader: read_header and iter_blocks ---------------------------------------------------

NAME = Path("受信箱/2022-10/jumin.csv")  # only named in messages: the bytes are given


def read(
    data: bytes, keep: list[int] | None = None, path: Path = NAME
) -> tuple[Decoded, list[dict]]:
    """The header, then every kept row (`_line` and c<i>) as `iter_blocks` yields them."""
    decoded = read_header(path, data)
    keep = list(range(len(decoded.headers))) if keep is None else keep
    content = None if path.exists() else data
    rows = [r for block in iter_blocks(path, decoded, keep, content) for r in block.to_pylist()]
    return decoded, rows


def refusal(data: bytes) -> SourceFileError:
    with pytest.raises(SourceFileError) as err:
        read_header(NAME, data)
    return err.value


def test_the_encoding_is_detected_from_the_header_line() -> None:
    head = "宛名番号,氏名カナ\r\n"
    utf8 = read_header(NAME, head.encode("utf-8") + b"1,x\r\n")
    assert (utf8.encoding, utf8.headers) == ("utf-8", ["宛名番号", "氏名カナ"])
    assert utf8.header_bytes == len(head.encode("utf-8"))  # the data starts right after it
    sjis = read_header(NAME, head.encode("cp932"))
    assert (sjis.encoding, sjis.headers) == ("cp932", ["宛名番号", "氏名カナ"])
    assert sjis.header_bytes == len(head.encode("cp932"))


def test_a_bom_is_utf8_and_is_not_part_of_the_first_header() -> None:
    data = b"\xef\xbb\xbf" + "宛名番号,氏名\n1,山田\n".encode()
    decoded, rows = read(data)
    assert decoded.encoding == "utf-8-sig"
    assert decoded.headers == ["宛名番号", "氏名"]  # not "\ufeff宛名番号"
    assert decoded.header_bytes == 3 + len("宛名番号,氏名\n".encode())
    assert rows == [{"_line": 2, "c0": "1", "c1": "山田"}]


def test_after_a_bom_only_utf8_is_tried() -> None:
    """A BOM says UTF-8: CP932 bytes after it are refused, not guessed as CP932."""
    err = refusal(b"\xef\xbb\xbf" + "宛名番号,氏名\n".encode("cp932"))
    assert err.line == 1 and "バイト目が CP932 または UTF-8" in err.problem
    assert "宛名" not in str(err)


@pytest.mark.parametrize(
    "data",
    [
        "宛名番号,氏名\r\n".encode("utf-16"),  # with its BOM (FF FE)
        "宛名番号,氏名\r\n".encode("utf-16-be"),  # without a BOM: NUL bytes
        "id,name\n".encode("utf-16-le"),
    ],
    ids=["utf16_bom", "utf16_be_no_bom", "utf16_le_ascii"],
)
def test_utf16_is_refused_naming_the_file_and_line_1(data: bytes) -> None:
    err = refusal(data)
    assert str(err) == f"{NAME} 1行目: UTF-16 は受け付けられません: {ALLOWED} で出力してください"
    assert (err.file, err.line, err.column) == (str(NAME), 1, None)


def test_a_header_neither_utf8_nor_cp932_names_its_byte_never_the_text() -> None:
    # 0xE9 then a space: a CP932 lead byte without its trail byte, and no UTF-8 either
    data = "宛名番号,".encode("cp932") + b"Caf\xe9 \r\n"
    err = refusal(data)
    assert str(err) == f"{NAME} 1行目: 13 バイト目が {ALLOWED} として読めません"
    assert "宛名番号" not in str(err) and "Caf" not in str(err)


def test_an_empty_file_and_an_empty_header_line_are_refused() -> None:
    assert str(refusal(b"")) == f"{NAME} 1行目: 0 バイトの空ファイルです (見出し行が必要)"
    assert str(refusal(b"\r\n1,2\r\n")) == f"{NAME} 1行目: 見出し行がありません"


def test_headers_are_nfkc_normalised_stripped_and_split_outside_quotes() -> None:
    decoded = read_header(NAME, ' ｼﾒｲ ,住所,"方書,備考",ＩＤ\r\n'.encode("cp932"))
    assert decoded.headers == ["シメイ", "住所", "方書,備考", "ID"]


def test_the_file_on_disk_is_read_when_no_bytes_are_given(tmp_path: Path) -> None:
    path = tmp_path / "jumin.csv"
    path.write_bytes("宛名番号,氏名\r\n0000000001,ﾀﾛｳ\r\n".encode("cp932"))
    decoded, rows = read(path.read_bytes(), path=path)
    assert decoded.encoding == "cp932"
    assert rows == [{"_line": 2, "c0": "0000000001", "c1": "タロウ"}]  # NFKC: half-width kana


def test_rows_keep_their_line_numbers_past_blank_and_set_aside_lines() -> None:
    data = b"a,b,c\n1,x,y\n\n2,only-two\n3,p,q\n \n4,r,s\n"
    decoded, rows = read(data)
    assert [r["_line"] for r in rows] == [2, 5, 7]
    assert [r["c0"] for r in rows] == ["1", "3", "4"]
    assert decoded.data_lines == 3 and decoded.blank_lines == 2
    assert [(b.line, b.reason) for b in decoded.bad_lines] == [
        (4, "列数が見出しと異なる (2 列、見出しは 3 列)")
    ]


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("9,x,y,z", "列数が見出しと異なる (4 列、見出しは 3 列)"),
        ('9,"x,y', '引用符 " の対応が取れていない行'),
        ("9,x\ry,z", "行の途中に改行文字 (CR) がある行"),
    ],
    ids=["too_many_columns", "unbalanced_quote", "lone_cr"],
)
def test_a_malformed_line_is_set_aside_with_its_number_and_never_its_text(
    line: str, reason: str
) -> None:
    data = f"a,b,c\r\n1,x,y\r\n{line}\r\n2,x,y\r\n".encode()
    decoded, rows = read(data)
    assert [(r["_line"], r["c0"]) for r in rows] == [(2, "1"), (4, "2")]
    assert [(b.line, b.reason) for b in decoded.bad_lines] == [(3, reason)]


def test_an_undecodable_row_is_set_aside_naming_its_byte() -> None:
    """The header decides the encoding: under an ASCII header (UTF-8), a row with a byte
    that is no UTF-8 is set aside with the byte's position, and the rest is read."""
    data = b"a,b\r\n1,x\r\n2,Caf\xe9 \r\n3,y\r\n"
    decoded, rows = read(data)
    assert decoded.encoding == "utf-8"
    assert [r["c0"] for r in rows] == ["1", "3"]
    assert [(b.line, b.reason) for b in decoded.bad_lines] == [
        (3, "6 バイト目が utf-8 として読めない")
    ]


def test_quoted_commas_stay_inside_their_field() -> None:
    data = '番号,氏名,備考\r\n1,"山田, 花子",x\r\n2,"a,b,c",""\r\n'.encode("cp932")
    decoded, rows = read(data)
    assert rows == [
        {"_line": 2, "c0": "1", "c1": "山田, 花子", "c2": "x"},
        {"_line": 3, "c0": "2", "c1": "a,b,c", "c2": ""},
    ]
    assert decoded.bad_lines == []


def test_a_quote_after_a_space_is_still_one_field() -> None:
    """`1, "昭島市,コーポ①",x` is not standard CSV (pyarrow would split it at the comma): the
    line is rewritten as canonical CSV first."""
    decoded, rows = read('番号,住所,備考\n1, "昭島市,コーポ①",x\n'.encode("cp932"))
    assert [(r["c0"], r["c1"], r["c2"]) for r in rows] == [("1", "昭島市,コーポ1", "x")]
    assert decoded.bad_lines == []


def test_crlf_and_lf_read_the_same_and_no_value_keeps_a_cr() -> None:
    lf = "a,b\n1,x\n2,\n"
    _, crlf_rows = read(lf.replace("\n", "\r\n").encode())
    _, lf_rows = read(lf.encode())
    assert (
        crlf_rows
        == lf_rows
        == [
            {"_line": 2, "c0": "1", "c1": "x"},
            {"_line": 3, "c0": "2", "c1": ""},
        ]
    )


@pytest.mark.parametrize("ending", ["\r\n", "\n"])
def test_a_last_line_without_its_line_end_is_read(ending: str) -> None:
    decoded, rows = read(f"a,b{ending}1,x{ending}2,y".encode())
    assert rows == [{"_line": 2, "c0": "1", "c1": "x"}, {"_line": 3, "c0": "2", "c1": "y"}]
    assert decoded.data_lines == 2 and decoded.bad_lines == []


def test_only_the_kept_columns_are_materialised() -> None:
    decoded, rows = read("a,個人番号,c\n1,123456789018,x\n".encode(), keep=[0, 2])
    assert rows == [{"_line": 2, "c0": "1", "c2": "x"}]
    assert "123456789018" not in repr(rows)


def test_line_numbers_continue_across_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """A tiny block size: lines cut by a block boundary are joined, and numbered on."""
    monkeypatch.setattr(decode, "_BLOCK", 5)
    data = b"a,b,c\n1,x,y\n22,xx,yy\n333\n4444,xxxx,yyyy\n55555,x,y"
    decoded, rows = read(data, keep=[0, 2])
    assert [(r["_line"], r["c0"], r["c2"]) for r in rows] == [
        (2, "1", "y"),
        (3, "22", "yy"),
        (5, "4444", "yyyy"),
        (6, "55555", "y"),
    ]
    assert [(b.line, b.reason) for b in decoded.bad_lines] == [
        (4, "列数が見出しと異なる (1 列、見出しは 3 列)")
    ]


def test_a_file_error_names_file_line_and_column() -> None:
    err = SourceFileError(NAME, "必須の列がありません", line=1, column="宛名番号")
    assert str(err) == f"{NAME} 1行目 列「宛名番号」: 必須の列がありません"
    assert (err.file, err.line, err.column, err.problem) == (
        str(NAME),
        1,
        "宛名番号",
        "必須の列がありません",
    )
    assert str(SourceFileError(NAME, "x")) == f"{NAME}: x"

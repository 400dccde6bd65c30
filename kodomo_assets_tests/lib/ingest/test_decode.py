"""lib/ingest/decode.py: the sealed copy's redaction (the reader itself is tested through ingest)."""

from kodomo_assets.lib.ingest.decode import redact

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

"""The content detector, as a careless department would meet it: every written form of a My
Number, a phone number and an amount, and the values that must pass."""

import random

import duckdb
import pytest

from kodomo_assets.lib.policy import content
from kodomo_assets.lib.policy.content import detect, is_my_number

MY_NUMBER = "123456789018"  # a valid check digit
KANJI = "〇一二三四五六七八九"

FORMS = [
    # (value as typed, kind)
    ("1234 5678 9018", "my_number"),
    ("1234-5678-9018", "my_number"),
    ("１２３４５６７８９０１８", "my_number"),
    ("".join(KANJI[int(d)] for d in MY_NUMBER), "my_number"),
    ("番号123,456,789,018", "my_number"),
    ("個人番号：1234.5678.9018", "my_number"),
    ("マイナンバー 123456789018", "my_number"),
    ("090 1234 5678", "phone"),
    ("０９０ー１２３４ー５６７８", "phone"),
    ("+81-90-1234-5678", "phone"),
    ("(042)545-1234", "phone"),
    ("042-545-1234", "phone"),
    ("TEL0425445111", "phone"),
    ("0120-123-456", "phone"),
    ("0001234567", "number"),
    ("123456789017", "number"),  # 12 digits, wrong check digit: still a long number
    ("所得3280000円", "money"),
    ("所得 328万円", "money"),
    ("¥3,280,000", "money"),
    ("年収 三百万 円", "money"),
]
CLEAN = [
    "昭島市立東小学校",
    "東京都昭島市東町1丁目10番20号 コーポ101",
    "昭島市東町1-10-20",
    "ヤマダ タロウ",
    "山田 太郎",
    "2022年10月11日",
    "第一保育園",
    "R4.10.11",
    "要介護5",
    "コーポ昭島 1001号",
    "",
    None,
]


@pytest.mark.parametrize(("value", "kind"), FORMS)
def test_every_written_form_is_found(value: str, kind: str) -> None:
    assert detect(value) == kind


@pytest.mark.parametrize("value", CLEAN)
def test_ordinary_values_pass(value: str | None) -> None:
    assert detect(value) is None


def test_the_sql_check_digit_agrees_with_the_law_on_random_numbers() -> None:
    rng = random.Random(8)
    numbers = [f"{rng.randrange(10**12):012d}" for _ in range(2000)]
    con = duckdb.connect()
    content.install(con)
    got = [
        r[0]
        for r in con.execute("SELECT my_number_ok(n) FROM unnest(?) t(n)", [numbers]).fetchall()
    ]
    assert got == [is_my_number(n) for n in numbers]
    assert 150 < sum(got) < 250  # about one in ten has a valid check digit


def test_values_are_scanned_one_by_one_never_joined() -> None:
    """Two harmless values next to each other (a list joined with ',') are not a number."""
    assert detect("12345") is None and detect("67890") is None
    con = duckdb.connect()
    content.install(con)
    assert con.execute(
        "SELECT count(content_hit(v)) FROM unnest(['12345', '67890', '12']) t(v)"
    ).fetchone() == (0,)

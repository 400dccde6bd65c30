"""What a careless department types into a text field: a My Number, a phone number, a long
number, an amount of money. One detector, in DuckDB SQL, used value by value both at the
door (ingestion) and by the zone gate, so the two can never disagree.

Each value is read as NFKC text (the reader normalises every non-ASCII column). Kanji
numerals become digits, `+81` becomes a leading 0, and separators inside the value
(spaces, hyphens, ー, dots, commas, brackets) are ignored, so `1234 5678 9018`,
`一二三四五六七八九〇一八`, `番号123,456,789,018`, `+81-90-1234-5678` and `(042)545-1234` are
all found. The scan never joins values together.
"""

from __future__ import annotations

import re
import threading
import unicodedata

import duckdb

from kodomo_assets.lib.platform.rows import one_row

KINDS = {
    "my_number": "個人番号",
    "phone": "電話番号",
    "number": "宛名番号など10桁以上の番号",
    "money": "金額",
}
_DIGIT = "[0-9〇零一二三四五六七八九]"
_SEPARATOR = r"[\s\-‐‑–—―−ー.,，、・･()（）+]"
# cheap first pass: ten digits with only separators between them, or money
LONG_RUN = f"{_DIGIT}({_SEPARATOR}*{_DIGIT}){{9}}"
MONEY = r"[0-9〇一二三四五六七八九十百千万億][\s,，]*(万|千)?\s*円|[¥￥]\s*[0-9]"

MACROS = [
    # 番号法施行令第8条: the 12th digit checks the first 11 (P1 is the digit left of it)
    "CREATE OR REPLACE TEMP MACRO my_number_rest(r) AS list_sum(list_transform(range(1, 12), "
    "n -> TRY_CAST(substr(r, 12 - n, 1) AS INTEGER) * CASE WHEN n <= 6 THEN n + 1 ELSE n - 5 END)) % 11",
    "CREATE OR REPLACE TEMP MACRO my_number_ok(r) AS TRY_CAST(substr(r, 12, 1) AS INTEGER) = "
    "CASE WHEN my_number_rest(r) <= 1 THEN 0 ELSE 11 - my_number_rest(r) END",
    f"CREATE OR REPLACE TEMP MACRO content_runs(x) AS regexp_extract_all(regexp_replace(regexp_replace("
    f"translate(x, '〇零一二三四五六七八九', '00123456789'), '[+]\\s*81[^0-9]*', '0', 'g'), "
    f"'{_SEPARATOR}', '', 'g'), '[0-9]+')",
    "CREATE OR REPLACE TEMP MACRO content_kind_of_runs(runs) AS CASE "
    "WHEN list_bool_or(list_transform(runs, r -> length(r) = 12 AND my_number_ok(r))) THEN 'my_number' "
    "WHEN list_bool_or(list_transform(runs, r -> regexp_full_match(r, '0[1-9][0-9]{8,9}'))) THEN 'phone' "
    "WHEN list_bool_or(list_transform(runs, r -> length(r) >= 10)) THEN 'number' END",
    # ten digits need ten characters, money needs 円 or ¥: most names, kana and counts are
    # settled by the length and three substring tests, before any regular expression
    f"CREATE OR REPLACE TEMP MACRO content_hit(x) AS CASE "
    f"WHEN x IS NULL OR (length(x) < 10 AND NOT contains(x, '円') AND NOT contains(x, '¥') "
    f"AND NOT contains(x, '￥')) OR NOT regexp_matches(x, '{LONG_RUN}|{MONEY}') THEN NULL "
    f"ELSE coalesce(CASE WHEN regexp_matches(x, '{LONG_RUN}') THEN content_kind_of_runs(content_runs(x)) END, "
    f"CASE WHEN regexp_matches(x, '{MONEY}') THEN 'money' END) END",
]


def is_my_number(digits: str) -> bool:
    """番号法施行令第8条 in Python: the reference the SQL macro is tested against."""
    if not re.fullmatch(r"[0-9]{12}", digits):
        return False
    p = [int(c) for c in digits[10::-1]]  # P1 is the digit just left of the check digit
    r = sum(pn * (n + 1 if n <= 6 else n - 5) for n, pn in enumerate(p, start=1)) % 11
    return int(digits[11]) == (0 if r <= 1 else 11 - r)


def install(con: duckdb.DuckDBPyConnection) -> None:
    """The detector's macros on a connection: content_hit(text) is a kind or NULL."""
    for sql in MACROS:
        con.execute(sql)


def label(kind: str) -> str:
    return f"{KINDS[kind]}の疑い"


def label_sql(kind_sql: str) -> str:
    """SQL: the Japanese label of a kind (NULL for NULL). A list lookup, not `CASE kind
    WHEN ...`: DuckDB expands that into one comparison per kind, each evaluating the whole
    scan again (three times the cost of the scan itself)."""
    kinds = ", ".join(f"'{k}'" for k in KINDS)
    labels = ", ".join(f"'{label(k)}'" for k in KINDS)
    return f"list_extract([{labels}], list_position([{kinds}], {kind_sql}))"


def mask_sql(label: str) -> str:
    """SQL: what a quarantine keeps instead of a value: why it was set aside, never the value."""
    return f"'＊＊＊＊（' || {label} || '）'"


_local = threading.local()


def detect(value: str | None) -> str | None:
    """The same detector for one value in Python (a steward's note, a CLI argument)."""
    if value is None:
        return None
    con = getattr(_local, "con", None)
    if con is None:
        con = _local.con = duckdb.connect()
        install(con)
    return one_row(con.execute("SELECT content_hit(?)", [unicodedata.normalize("NFKC", value)]))[0]

"""SQL that turns the normalised text of one column into its typed value, and names what
is wrong with a value that does not fit. Generated from the registry's column types."""

from __future__ import annotations

from kodomo_assets.lib.policy.content import label_sql
from kodomo_assets.lib.registry import Column

MARKER = "****("  # a masked value (＊＊＊＊（…）) as the reader sees it, after NFKC

SQL_TYPES = {
    "id": "VARCHAR",
    "text": "VARCHAR",
    "kana": "VARCHAR",
    "date": "DATE",
    "year_month": "VARCHAR",
    "int": "BIGINT",
    "enum": "VARCHAR",
    "enum_list": "VARCHAR[]",
}
PARSED_TYPES = ("date", "year_month")  # parsed in Python, once per distinct value
_HIRAGANA = "".join(chr(c) for c in range(0x3041, 0x3097))
_KATAKANA = "".join(chr(c + 0x60) for c in range(0x3041, 0x3097))


def q(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def enum_case(col: Column, x: str) -> str:
    """The code of a listed value, NULL for any other. A list lookup: `CASE x WHEN ...`
    would evaluate `x` once per listed value."""
    keys = ", ".join(q("".join(k.split())) for k in col.values)
    codes = ", ".join(q(v) for v in col.values.values())
    return f"list_extract([{codes}], list_position([{keys}], replace({x}, ' ', '')))"


def typed_value(col: Column, v: str) -> tuple[str, str | None]:
    """SQL for the typed value and for an invalid-value condition (None: always valid).
    `v` is the trimmed, NFKC-normalised text, NULL when blank."""
    if col.type == "id":
        digits = f"replace({v}, ' ', '')"
        if col.width:
            return (
                f"CASE WHEN length({digits}) < {col.width} THEN lpad({digits}, {col.width}, '0') "
                f"ELSE {digits} END"
            ), f"NOT regexp_full_match({digits}, '[0-9]+')"
        return digits, f"NOT regexp_full_match({digits}, '[0-9]+')"
    if col.type in ("text", "kana"):
        value = (
            f"CASE WHEN contains({v}, '  ') THEN regexp_replace({v}, ' +', ' ', 'g') ELSE {v} END"
        )
        if col.type == "kana":
            # translate() is slow; most kana fields hold no hiragana at all
            value = (
                f"CASE WHEN regexp_matches({v}, '[ぁ-ゖ]') "
                f"THEN translate({value}, {q(_HIRAGANA)}, {q(_KATAKANA)}) ELSE {value} END"
            )
        return value, None
    if col.type in PARSED_TYPES:
        return f"lk_{col.name}.value", f"lk_{col.name}.error IS NOT NULL"
    if col.type == "int":
        return (
            f"CASE WHEN TRY_CAST({v} AS BIGINT) <= {col.max} THEN TRY_CAST({v} AS BIGINT) END",
            f"NOT regexp_full_match({v}, '[0-9]{{1,18}}') AND NOT starts_with({v}, '{MARKER}')",
        )
    if col.type == "enum":
        return enum_case(col, v), f"{enum_case(col, v)} IS NULL"
    if col.type == "enum_list":
        items = f"list_transform(string_split({v}, ';'), x -> {enum_case(col, 'trim(x)')})"
        return items, f"list_position({items}, NULL) IS NOT NULL OR len({items}) = 0"
    raise ValueError(col.type)


def suspicion(col: Column, v: str) -> str | None:
    """SQL naming why a value must not be kept (NULL: nothing found): a free-text value the
    content scan hits, or a count out of its declared range (a 12-digit number typed into a
    count is as likely a My Number as a count). The quarantine, and the sealed copy of the
    export, keep this label, masked, instead of the value; a masked value read again (a
    rerun from the sealed copy) gives the same label. None: the column's own format rule
    is enough."""
    if col.scanned:
        found = label_sql(f"content_hit({v})")
    elif col.type == "int":
        found = (
            f"coalesce({label_sql(f'content_hit({v})')}, CASE WHEN regexp_full_match({v}, '[0-9]+') "
            f"AND (length({v}) > 18 OR TRY_CAST({v} AS BIGINT) > {col.max}) "
            f"THEN {q(f'範囲外の値（0-{col.max}）')} END)"
        )
    else:
        return None
    again = (
        f"replace(replace(regexp_extract({v}, '^[*]{{4}}[(](.*)[)]$', 1), '(', '（'), ')', '）')"
    )
    return f"CASE WHEN starts_with({v}, '{MARKER}') THEN {again} ELSE {found} END"


def reasons(col: Column, v: str, invalid: str | None) -> list[str]:
    out = []
    if col.required:
        out.append(f"CASE WHEN {v} IS NULL THEN {q(col.header + ': 必須項目が空')} END")
    if col.type in PARSED_TYPES:
        out.append(f"CASE WHEN {invalid} THEN {q(col.header + ': ')} || lk_{col.name}.error END")
    elif invalid:
        reason = {"id": "数字以外を含む", "int": "0以上の整数でない"}.get(
            col.stored_type, "定義外の値"
        )
        out.append(
            f"CASE WHEN {v} IS NOT NULL AND ({invalid}) THEN {q(col.header + ': ' + reason)} END"
        )
    return out

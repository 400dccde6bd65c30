"""What the probabilistic pass of lib/linkage/link.py compares, and how it blocks (issue 15).

Spellings differ between the 学齢簿 and the register in ways that carry no information:
long vowels (ユウト/ユート/ユウト), small kana (キョウコ/キヨウコ), ヂ/ジ, ヅ/ズ, ヴ/ブ, ヲ/オ,
dakuten (ヤマザキ/ヤマサキ), the foreign name order, a dropped middle name, a day/month swap
and the address form (3丁目12番5号 / 3-12-5 / 12番地5). Each has a level of its own beside
exact agreement, a Damerau-Levenshtein level for one slip and the Jaro-Winkler levels, so
Splink learns from the 宛名番号 links what each is worth instead of a rule vetoing it.
"""

from __future__ import annotations

import splink.comparison_level_library as cll
import splink.comparison_library as cl
from splink import block_on

# DuckDB's Jaro-Winkler works on UTF-8 bytes, so any two katakana strings of equal
# length look alike (each character shares its lead bytes). Shifting the 92 katakana
# U+30A1..U+30FC one-to-one onto ASCII U+0021..U+007C restores character-level similarity
# (and edit distances count characters); equality is unaffected. A code-point shift per
# character, not translate(): DuckDB builds translate's map again for every row, which
# cost 2.7 µs a call, a third of the linkage at city scale (issue 15, part 5).
KATAKANA_FIRST, KATAKANA_LAST, KANA_SHIFT = "\u30a1", "\u30fc", 0x30A1 - 0x21


def _each_char(expr: str, fn: str) -> str:
    """SQL applying the lambda body `fn` (of `c`) to every character of `expr`."""
    return f"array_to_string(list_transform(string_split({expr}, ''), c -> {fn}), '')"


def char_map(expr: str, src: str, dst: str) -> str:
    """translate(expr, src, dst) for equal-length maps, as a CASE per character."""
    whens = " ".join(f"WHEN '{a}' THEN '{b}'" for a, b in zip(src, dst, strict=True))
    return _each_char(expr, f"CASE c {whens} ELSE c END")


# the phonetic key: voiced and small kana to their plain forms, so ヂ/ジ, ヅ/ズ, ヴ/ブ and
# ヲ/オ meet too, then long vowels dropped after their row (コウジ, コージ, コオジ -> コシ),
# then kana a hand or a scan confuses by shape read alike (シ/ツ, ソ/ン, ク/ケ/タ …). A slip
# on a kana before a long vowel (ソウタ/ンウタ) escapes the key; the edit-distance level has it.
# Each map is (from, to) for char_map.
PLAIN = (
    "ヴヲァィゥェォャュョッヮガギグゲゴザジズゼゾダヂヅデドバビブベボパピプペポ",
    "フオアイウエオヤユヨツワカキクケコサシスセソタシステトハヒフヘホハヒフヘホ",
)  # ヂ=ジ, ヅ=ズ
assert len(PLAIN[0]) == len(PLAIN[1])
SHAPE = ("シソケタウレテメスユロム", "ツンククワルチナヌココマ")
_VU = (("ヴァ", "バ"), ("ヴィ", "ビ"), ("ヴェ", "ベ"), ("ヴォ", "ボ"))


def kana_key(expr: str) -> str:
    """SQL for the phonetic key of a katakana expression (spaces kept)."""
    for a, b in _VU:
        expr = f"replace({expr}, '{a}', '{b}')"
    expr = char_map(expr, *PLAIN)
    expr = f"regexp_replace({expr}, '([オコソトノホモヨロ])[ウオー]', '\\1', 'g')"
    expr = f"regexp_replace({expr}, '([ウクスツヌフムユル])[ウー]', '\\1', 'g')"
    expr = f"regexp_replace({expr}, '([エケセテネヘメレ])[イー]', '\\1', 'g')"
    return char_map(f"replace({expr}, 'ー', '')", *SHAPE)


def ascii_kana(expr: str) -> str:
    shifted = f"CASE WHEN c BETWEEN '{KATAKANA_FIRST}' AND '{KATAKANA_LAST}' THEN chr(unicode(c) - {KANA_SHIFT}) ELSE c END"
    return _each_char(expr, shifted)


def address_key(expr: str) -> str:
    """SQL: 丁目・番地・番・号 and hyphens read alike (3丁目12番5号 = 3-12-5 = 3丁目12番地5)."""
    return (
        f"rtrim(regexp_replace(regexp_replace({expr}, '(丁目|番地|番|号|の|[-‐－ー―])', '-', 'g'), "
        f"'-+', '-', 'g'), '-')"
    )


def columns(fields: frozenset[str], prefix: str) -> str:
    """The Splink input columns for the approved fields, from alias `prefix`."""
    cols = []
    if "name_kana" in fields:
        kana = f"{prefix}.name_kana"
        sur = f"nullif(split_part({kana}, ' ', 1), '')"
        giv = f"nullif(substr({kana}, length(split_part({kana}, ' ', 1)) + 2), '')"
        whole = f"replace({kana}, ' ', '')"
        cols += [
            f"{ascii_kana(sur)} AS surname_kana",
            f"{ascii_kana(giv)} AS given_kana",
            f"{ascii_kana(kana_key(sur))} AS surname_key",
            f"{ascii_kana(kana_key(giv))} AS given_key",
            f"{ascii_kana(kana_key(whole))} AS name_key",
        ]
    if "birth_date" in fields:
        cols += [f"{prefix}.birth_date", f"year({prefix}.birth_date) AS birth_year"]
    if "sex" in fields:
        cols.append(f"{prefix}.sex")
    if "address" in fields:
        street = f"nullif(split_part({prefix}.address, ' ', 1), '')"
        cols += [
            f"{prefix}.address",
            f"{street} AS address_street",
            f"{address_key(street)} || coalesce(' ' || nullif(substr({prefix}.address, "
            f"length({street}) + 2), ''), '') AS address_key",
            f"{address_key(street)} AS street_key",
        ]
    return ", ".join(cols)


# given-name levels from the top (Splink's gamma counts down to 0 = else): a twin in the
# register needs one of the first three (exact, the foreign order reversed, same reading);
# a pair agreeing on the birth date needs the middle-name level at least, as twins share
# everything but a given name, often one kana apart (ユウト/ユウマ)
GIVEN_LEVELS = 8
GIVEN_SAME_READING, GIVEN_MIDDLE = GIVEN_LEVELS - 3, GIVEN_LEVELS - 4
BIRTH_EXACT = 3


def _name_levels(col: str, other: str, tf: bool) -> list:
    plain = cll.ExactMatchLevel(col)
    exact = plain.configure(tf_adjustment_column=col) if tf else plain
    key = col.replace("_kana", "_key")
    levels = [
        cll.NullLevel(col),
        exact,
        cll.CustomLevel(f'"{col}_l" = "{other}_r" AND "{other}_l" = "{col}_r"', "氏と名が逆"),
        cll.ExactMatchLevel(key).configure(
            label_for_charts="読みが同じ（長音・濁点・小書き・字形の似た字）"
        ),
    ]
    if col == "given_kana":  # a middle name the other side drops (グエン ヴァン ミン / グエン ミン)
        levels.append(
            cll.CustomLevel(
                "ends_with(given_kana_l, ' ' || given_kana_r) OR ends_with(given_kana_r, ' ' || given_kana_l) OR "
                "starts_with(given_kana_l, given_kana_r || ' ') OR starts_with(given_kana_r, given_kana_l || ' ')",
                "ミドルネームの有無",
            )
        )
    else:  # the same number of levels on both sides
        levels.append(cll.CustomLevel("false", "（該当なし）"))
    levels += [
        cll.DamerauLevenshteinLevel(col, 1),
        cll.JaroWinklerLevel(col, 0.88),
        cll.JaroWinklerLevel(col, 0.7),
        cll.ElseLevel(),
    ]
    return levels


def comparisons(fields: frozenset[str]) -> list:
    comps: list = []
    if "name_kana" in fields:
        comps += [
            cl.CustomComparison(
                _name_levels("surname_kana", "given_kana", tf=True),
                output_column_name="surname_kana",
            ),
            cl.CustomComparison(
                _name_levels("given_kana", "surname_kana", tf=False),
                output_column_name="given_kana",
            ),
        ]
    if "birth_date" in fields:
        parts = " + ".join(
            f"CAST({f}(birth_date_l) = {f}(birth_date_r) AS INTEGER)"
            for f in ("year", "month", "day")
        )
        comps.append(
            cl.CustomComparison(
                [
                    cll.NullLevel("birth_date"),
                    cll.ExactMatchLevel("birth_date"),
                    cll.CustomLevel(
                        "year(birth_date_l) = year(birth_date_r) AND month(birth_date_l) = day(birth_date_r) "
                        "AND day(birth_date_l) = month(birth_date_r)",
                        "月と日が入れ替わり",
                    ),
                    cll.CustomLevel(f"{parts} = 2", "年・月・日のうち一つだけ違う"),
                    cll.ElseLevel(),
                ],
                output_column_name="birth_date",
            )
        )
    if "sex" in fields:
        comps.append(cl.ExactMatch("sex"))
    if "address" in fields:
        comps.append(
            cl.CustomComparison(
                [
                    cll.NullLevel("address"),
                    cll.ExactMatchLevel("address"),
                    cll.ExactMatchLevel("address_key").configure(
                        label_for_charts="番地の表記だけが違う"
                    ),
                    cll.ExactMatchLevel("street_key").configure(
                        label_for_charts="建物・部屋番号以外が一致"
                    ),
                    cll.JaroWinklerLevel("address", 0.95),
                    cll.ElseLevel(),
                ],
                output_column_name="address",
            )
        )
    return comps


def blocking(fields: frozenset[str]) -> list:
    rules = [block_on("claimed_atena_no")]  # a pupil's own 宛名番号, checked on the evidence
    if "birth_date" in fields:
        rules.append(block_on("birth_date"))
    if "name_kana" in fields:
        rules.append(
            block_on("name_key", "birth_year") if "birth_date" in fields else block_on("name_key")
        )
    if "address" in fields:
        rules.append(block_on("street_key", "sex") if "sex" in fields else block_on("street_key"))
    return rules

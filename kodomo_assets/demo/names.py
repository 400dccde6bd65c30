"""Name, place and facility tables (synthetic; readings match the kanji).

Faker's ja_JP pool is small and its kanji and kana are drawn independently
(library-notes.md), so the generator indexes these tables with numpy instead.
"""

from __future__ import annotations

import csv
import unicodedata

from kodomo_assets.lib.paths import DATA_DIR


def _rows(file: str) -> list[dict[str, str]]:
    """A table of data/demo/ (data, not code: the names and places are long lists)."""
    with open(DATA_DIR / "demo" / file, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def _column(file: str, kind: str, column: str) -> list[str]:
    return [r[column] for r in _rows(file) if r["kind"] == kind]


def _given(sex: str) -> tuple[list[tuple[str, str]], ...]:
    rows = [r for r in _rows("given_names.csv") if r["sex"] == sex]
    eras = sorted({int(r["era"]) for r in rows})
    return tuple([(r["kanji"], r["reading"]) for r in rows if int(r["era"]) == e] for e in eras)


# (kanji, reading, relative frequency). 髙橋 and 山﨑 are the CP932-only spellings
# (NEC/IBM extensions) that a Shift_JIS reader loses.
SURNAMES: list[tuple[str, str, float]] = [
    (r["kanji"], r["reading"], float(r["weight"])) for r in _rows("surnames.csv")
]

# Given names by birth era, (kanji, reading); eras split at 1955 and 1990.
MALE: tuple[list[tuple[str, str]], ...] = _given("M")
FEMALE: tuple[list[tuple[str, str]], ...] = _given("F")
ERA_BREAKS = ("1955-01-01", "1990-01-01")

# Foreign residents are registered in katakana (China, Vietnam, Korea, Nepal, Philippines
# lead Akishima's foreign population: statistics.md, 在留外国人統計 2024-12).
FOREIGN_SURNAMES = _column("foreign_names.csv", "surname", "reading")
FOREIGN_MALE = _column("foreign_names.csv", "male", "reading")
FOREIGN_FEMALE = _column("foreign_names.csv", "female", "reading")
# middle names of the 在留カード order (NGUYEN VAN MINH, SANTOS MARIA ANA …)
MIDDLE_NAMES = ["ヴァン", "ティ", "マリア", "ホセ", "アン"]

TOWNS = _column("places.csv", "town", "name")
TOWN_PREFIXES = ["", "東", "西", "南", "北", "新", "上", "下", "中"]
ELEMENTARY = _column("places.csv", "elementary", "name")
JUNIOR_HIGH = ["昭和", "福島", "清泉", "多摩辺", "瑞雲", "拝島", "玉川", "武蔵野", "東", "中神"]
ORDINALS = ["", "第二", "第三", "第四", "第五", "第六", "第七", "第八", "第九", "第十"]
NURSERIES = _column("places.csv", "nursery", "name")
BUILDINGS = _column("places.csv", "building", "name")
CIRCLED = "①②③④⑤"

_HIRA = {c: c - 0x60 for c in range(0x30A1, 0x30F4)}  # ァ..ン (ヴ has no hiragana in CP932)


def _half_width_map() -> dict[int, str]:
    out: dict[int, str] = {}
    for cp in range(0xFF61, 0xFFA0):
        hw = chr(cp)
        out.setdefault(ord(unicodedata.normalize("NFKC", hw)[0]), hw)
        for mark in "ﾞﾟ":
            full = unicodedata.normalize("NFKC", hw + mark)
            if len(full) == 1:
                out[ord(full)] = hw + mark
    out[0x3000] = " "
    return out


_HALF = _half_width_map()


def to_half_width(kana: str) -> str:
    """ﾀｶﾊｼ ﾀﾛｳ: what older terminals and bank-transfer formats still emit."""
    return kana.translate(_HALF)


def to_hiragana(kana: str) -> str:
    return kana.translate(_HIRA)

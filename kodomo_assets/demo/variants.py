"""How the 学齢簿 spells a pupil differently from the register (issue 15).

Each resident pupil gets at most one variant, drawn once (so it stays the same month
after month) from its own random stream: no other draw of the generator changes, nor
the number of residents, pupils or planted needs.

Rates, as shares of resident pupils (of foreign ones for the two foreign kinds). The
kana kinds add up to 5.4%, about what issue 15 measured on a city's 学齢簿: 46 of 786
blank-ID resident pupils (5.9%) whose kana differed from the register by one plausible
variant. Their split follows how often a name offers the chance: long vowels (ユウト,
サトウ, コウジ) and dakuten (ヤマザキ/ヤマサキ, ナカジマ/ナカシマ) are the common
disagreements between 戸籍 readings and what parents write; small kana and ヂ/ヅ/ヴ/ヲ
need rarer letters; a visual slip (シ/ツ, ソ/ン) is a clerk's typo. Foreign residents'
names are registered in the 在留カード order with every middle name; schools often use
the everyday order or drop the middle name (both 15%). A day/month swap is a keying
error of 0.3%. 8% of addresses are written the school system's way (3-12-5 or 12番地5)
rather than the register's 丁目・番・号.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from kodomo_assets.demo import names as N
from kodomo_assets.demo.population import (
    FOREIGN_GIVEN_START,
    GIVEN_KANA,
    MIDDLE_GIVEN_START,
    SUR_KANA,
    Population,
)
from kodomo_assets.demo.school import School

KINDS = (
    "substitution",
    "small_kana",
    "long_vowel",
    "ji_zu",
    "dakuten",
    "foreign_order",
    "middle_name",
    "date_swap",
    "address_form",
)
# what a steward reads (evaluation metadata, reports)
LABELS = {
    "substitution": "カナ一文字の違い",
    "small_kana": "小書き・大書き（ャ/ヤ・ッ/ツ）",
    "long_vowel": "長音（ー/ウ/オ）",
    "ji_zu": "ヂ/ジ・ヅ/ズ・ヴ/ブ・ヲ/オ",
    "dakuten": "濁点の有無",
    "foreign_order": "外国人の氏名の順",
    "middle_name": "ミドルネームの省略",
    "date_swap": "生年月日の月日の入れ替え",
    "address_form": "住所の番地表記",
}
SHARE = {
    "substitution": 0.008,
    "small_kana": 0.008,
    "long_vowel": 0.016,
    "ji_zu": 0.006,
    "dakuten": 0.016,
    "date_swap": 0.003,
    "address_form": 0.08,
}
FOREIGN_SHARE = {"foreign_order": 0.15, "middle_name": 0.15}

# visual slips of a handwritten or keyed katakana
CONFUSED = dict(
    pair
    for a, b in (
        "シツ",
        "ソン",
        "クケ",
        "ワウ",
        "ルレ",
        "チテ",
        "ナメ",
        "ヌス",
        "コユ",
        "マム",
        "ロコ",
        "タク",
    )
    for pair in ((a, b), (b, a))
)
SMALL = dict(zip("ャュョッァィゥェォ", "ヤユヨツアイウエオ", strict=True))
O_ROW = set("オコゴソゾトドノホボポモヨロョォ")
U_ROW = set("ウクグスズツヅヌフブプムユルュゥ")
JI_ZU = {"ヂ": "ジ", "ジ": "ヂ", "ヅ": "ズ", "ズ": "ヅ", "ヲ": "オ", "オ": "ヲ", "ヴ": "ブ"}
VOICED = dict(
    zip(
        "ガギグゲゴザジズゼゾダヂヅデドバビブベボ",
        "カキクケコサシスセソタチツテトハヒフヘホ",
        strict=True,
    )
)
UNVOICED = {v: k for k, v in VOICED.items()}


@dataclass
class Variants:
    """Per pupil row of School: the kind (index into KINDS, -1 none) and what the 学齢簿
    writes instead (None where it writes the register's own value)."""

    kind: np.ndarray
    kana: np.ndarray  # 氏名カナ as the school writes it (katakana, full-width space)
    birth: np.ndarray  # birth day as the school writes it
    address_form: np.ndarray  # 0 the register's form, 1 hyphens (3-12-5), 2 番地 (12番地5)
    register_given: dict[int, int]  # person -> given-name index with a middle name (register)


def plant(rng: np.random.Generator, pop: Population, school: School) -> Variants:
    p = pop.p
    n = len(school.pid)
    pid = school.pid
    sur, giv = SUR_KANA[p["sur"][pid]], GIVEN_KANA[p["giv"][pid]]
    resident = ~school.juto
    foreign = p["foreign"][pid].astype(bool) & resident
    birth = p["birth"][pid]
    kind = np.full(n, -1, "int8")
    kana = np.array([f"{s}\u3000{g}" for s, g in zip(sur, giv, strict=True)], dtype=object)
    school_birth = birth.copy()
    day = birth.astype("M8[D]")
    month = (day.astype("M8[M]") - day.astype("M8[Y]")).astype(int) + 1
    dom = (day - day.astype("M8[M]")).astype(int) + 1
    full = np.char.add(sur.astype(str), giv.astype(str))
    eligible = {
        "substitution": resident & _has(full, set(CONFUSED)),
        "small_kana": resident & _has(full, set(SMALL) | {"ツ"}),
        "long_vowel": resident & np.array([_long_vowel(s, None) is not None for s in full]),
        "ji_zu": resident & _has(full, set(JI_ZU)),
        "dakuten": resident.copy(),
        "foreign_order": foreign,
        "middle_name": foreign,
        "date_swap": resident & (dom <= 12) & (dom != month),
        "address_form": resident.copy(),
    }
    n_res, n_for = resident.sum(), foreign.sum()
    for k, name in enumerate(KINDS):
        target = SHARE.get(name, 0) * n_res + FOREIGN_SHARE.get(name, 0) * n_for
        cand = eligible[name] & (kind < 0)
        take = cand & (rng.random(n) < target / max(cand.sum(), 1))
        kind[take] = k
    register_given: dict[int, int] = {}
    form = np.zeros(n, "int8")
    for i in np.flatnonzero(kind >= 0).tolist():
        name = KINDS[kind[i]]
        s, g = sur[i], giv[i]
        if name == "foreign_order":
            kana[i] = f"{g}\u3000{s}"
        elif name == "middle_name":
            k = int(p["giv"][pid[i]]) - FOREIGN_GIVEN_START
            m, pick = len(N.MIDDLE_NAMES), int(rng.integers(0, len(N.MIDDLE_NAMES)))
            pick = (pick + 1) % m if N.MIDDLE_NAMES[pick] == g else pick  # never マリア マリア
            register_given[int(pid[i])] = MIDDLE_GIVEN_START + k * m + pick
        elif name == "date_swap":
            swapped = f"{str(day[i])[:4]}-{int(dom[i]):02d}-{int(month[i]):02d}"
            school_birth[i] = np.datetime64(swapped, "D").astype("int64")
        elif name == "address_form":
            form[i] = 1 + int(rng.integers(0, 2))
        else:
            changed = _kana_variant(name, s, g, rng)
            if changed is None:  # only a final ツ: nothing plausible to change
                kind[i] = -1
            else:
                kana[i] = "\u3000".join(changed)
    return Variants(
        kind=kind, kana=kana, birth=school_birth, address_form=form, register_given=register_given
    )


def _has(names: np.ndarray, chars: set[str]) -> np.ndarray:
    return np.array([any(c in chars for c in s) for s in names.tolist()], bool)


def _kana_variant(
    kind: str, sur: str, giv: str, rng: np.random.Generator
) -> tuple[str, str] | None:
    """One change in the surname or the given name (whichever offers it; drawn)."""
    parts = [sur, giv]
    order = [0, 1] if rng.random() < 0.5 else [1, 0]
    for j in order:
        out = _change(kind, parts[j], rng)
        if out is not None and out != parts[j]:
            parts[j] = out
            return parts[0], parts[1]
    return None


def _change(kind: str, s: str, rng: np.random.Generator) -> str | None:
    if kind == "long_vowel":
        return _long_vowel(s, rng)
    table = {"small_kana": {**SMALL, "ツ": "ッ"}, "ji_zu": JI_ZU, "substitution": CONFUSED}.get(
        kind
    )
    if kind == "dakuten":
        table = {**VOICED, **UNVOICED}
    if table is None:
        raise ValueError(f"unknown kind of variant: {kind}")
    spots = [
        i
        for i, c in enumerate(s)
        if c in table and not (kind == "small_kana" and c == "ツ" and i == len(s) - 1)
    ]
    if kind == "dakuten":  # dropping one is likelier than adding one
        voiced = [i for i in spots if s[i] in VOICED]
        spots = voiced if voiced and rng.random() < 0.7 else spots
    if not spots:
        return None
    i = spots[int(rng.integers(0, len(spots)))]
    new = table[s[i]]
    if s[i] == "ヴ" and i + 1 < len(s) and s[i + 1] in "ァィェォ":  # ヴァン -> バン
        new, s = "バビベボ"["ァィェォ".index(s[i + 1])], s[: i + 1] + s[i + 2 :]
    return s[:i] + new + s[i + 1 :]


def _long_vowel(s: str, rng: np.random.Generator | None) -> str | None:
    """ユウト -> ユート, オオタ -> オータ, サトウ -> サトオ; None when the name has no long vowel.
    Without rng: only whether it has one."""
    spots = [
        i
        for i in range(1, len(s))
        if (s[i] == "ウ" and (s[i - 1] in O_ROW or s[i - 1] in U_ROW))
        or (s[i] == "オ" and s[i - 1] in O_ROW)
        or s[i] == "ー"
    ]
    if rng is None:
        return "" if spots else None
    if not spots:
        return None
    i = spots[int(rng.integers(0, len(spots)))]
    choices = [c for c in "ーウオ" if c != s[i] and not (c == "オ" and s[i - 1] in U_ROW)]
    return s[:i] + choices[int(rng.integers(0, len(choices)))] + s[i + 1 :]


def school_address(text: str, form: int) -> str:
    """The street part the school's way, form 1: 3丁目12番5号 -> 3-12-5, 123番地5 -> 123-5;
    form 2: 3丁目12番地5, 123番5号. The building and room, after the first space, stay."""
    street, sep, rest = text.partition(" ")
    if "丁目" in street:
        street = (
            street.replace("丁目", "-").replace("番", "-").replace("号", "")
            if form == 1
            else street.replace("番", "番地").replace("号", "")
        )
    else:
        street = street.replace("番地", "-") if form == 1 else street.replace("番地", "番") + "号"
    return street + sep + rest


TRUTH_FILE = "pupil_variants.csv"


def truth_table(v: Variants, school: School) -> pd.DataFrame:
    """_truth/pupil_variants.csv: each pupil the 学齢簿 spells differently, and how."""
    rows = np.flatnonzero(v.kind >= 0)
    return pd.DataFrame(
        {
            "pupil_no": [str(x) for x in school.number[rows]],
            "kind": np.array(KINDS, dtype=object)[v.kind[rows]],
        }
    )

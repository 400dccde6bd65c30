"""Statutory limits that no registry or policy file can relax.

番号法 forbids 個人番号 for this purpose; 地方税法第22条 forbids tax-derived values;
free text is refused because it can hold anything; direct identifiers never leave the
linkage step. These patterns are matched against NFKC-normalised headers and file names.
"""

from __future__ import annotations

import re
import unicodedata

# CJK radical forms that NFKC leaves alone (a ⺠ in 住⺠税 reads as 民), and the traditional
# variants of the characters tax words are made of.
_RADICALS = dict(
    zip(
        "⺁⺄⺅⺆⺇⺉⺊⺌⺍⺎⺐⺒⺓⺖⺘⺙⺛⺜⺝⺠⺡⺢⺣⺤⺥⺦⺧⺨⺩⺪⺫⺬⺭⺮⺯⺰⺲⺵⺶⺷⺹⺺⺻⺼⺽⺾⺿⻀"
        "⻁⻂⻃⻄⻅⻆⻈⻉⻊⻋⻌⻍⻎⻏⻐⻑⻓⻔⻕⻖⻗⻘⻙⻚⻛⻜⻝⻟⻠⻢⻣⻤⻥⻦⻧⻨⻩⻪⻫⻬⻭⻮⻯⻰⻱⻲⻳",
        "厂乙亻冂几刂卜小小兀尢巳幺忄扌攵旡日月民氵氺灬爫爫丬牛犭王疋目示礻竹糸纟罒网羊羊耂肀聿月臼艹艹艹"
        "虎衤覀西见角讠贝足车辶辶辶阝钅長长门阜阝雨青韦页风飞食飠饣马骨鬼鱼鸟卤麦黄黾斉齐歯齿竜龙龜亀龟",
        strict=True,
    )
)
_VARIANTS = {"稅": "税", "徵": "徴", "收": "収", "縣": "県"}

# Local tax data, by meaning, in file names and headers (地方税法第22条): refused outright,
# whatever a registry or policy file says.
TAX_PATTERN = re.compile(
    r"市民税|都民税|道府県民税|府民税|県民税|道民税|住民税|均等割|所得割|特別徴収|普通徴収|課税|税額"
    r"|zei|tax|(tokubetsu|futsuu?)[\s_\-]*(ch|ty)ou?s(h|y)uu?",
    re.IGNORECASE,
)


def fold(text: str) -> str:
    """NFKC, then the radical forms and variants NFKC leaves alone, lower case."""
    text = unicodedata.normalize("NFKC", text)
    return "".join(_VARIANTS.get(ch, _RADICALS.get(ch, ch)) for ch in text).lower()


# Headers that are never read past ingestion, whatever a data file says, with the law.
_DENIED = (
    (re.compile(r"個人番号|マイナンバー|my_?number", re.IGNORECASE), "番号法"),
    (re.compile(r"所得|課税|住民税|税額|income|tax", re.IGNORECASE), "地方税法第22条"),
    (
        re.compile(
            r"相談内容|病名|所見|欠席理由|備考|メモ|自由記述|notes|diagnosis|findings",
            re.IGNORECASE,
        ),
        "自由記述",
    ),
)
DENIED_HEADER_PATTERN = re.compile("|".join(p.pattern for p, _ in _DENIED), re.IGNORECASE)

# Direct identifiers: usable only to link records (照合), never as an analysis field or key.
DIRECT_IDENTIFIER_PATTERN = re.compile(
    r"氏名|住所|電話|口座|被保険者番号|受付番号|ケース番号|保護者|^name|address|phone|account",
    re.IGNORECASE,
)


def is_tax_like(text: str) -> bool:
    """非課税 and 課税 alike: any mention of local tax refuses the file or header."""
    return bool(TAX_PATTERN.search(fold(text)))


def is_denied_header(header: str) -> bool:
    return bool(DENIED_HEADER_PATTERN.search(header))


def denial_basis(header: str) -> str | None:
    """The law that forbids this header outright, or None."""
    return next((law for pattern, law in _DENIED if pattern.search(header)), None)


def is_direct_identifier(header: str) -> bool:
    return bool(DIRECT_IDENTIFIER_PATTERN.search(header))

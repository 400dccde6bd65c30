"""Statutory limits that no registry or policy file can relax.

番号法 forbids 個人番号 for this purpose; 地方税法第22条 forbids tax-derived values;
free text is refused because it can hold anything; direct identifiers never leave the
linkage step. These patterns are matched against NFKC-normalised headers and file names.
"""

from __future__ import annotations

import re

# A file whose name or header shows local tax data is refused outright (source-exports.md).
TAX_PATTERN = re.compile(r"課税|住民税|所得割|zei", re.IGNORECASE)

# Headers that are never read past ingestion, whatever a data file says, with the law.
_DENIED = (
    (re.compile(r"個人番号|マイナンバー|my_?number", re.IGNORECASE), "番号法"),
    (re.compile(r"所得|課税|住民税|税額|income|tax", re.IGNORECASE), "地方税法第22条"),
    (re.compile(r"相談内容|病名|所見|欠席理由|備考|メモ|自由記述|notes|diagnosis|findings",
                re.IGNORECASE), "自由記述"),
)
DENIED_HEADER_PATTERN = re.compile("|".join(p.pattern for p, _ in _DENIED), re.IGNORECASE)

# Direct identifiers: usable only to link records (照合), never as an analysis field or key.
DIRECT_IDENTIFIER_PATTERN = re.compile(
    r"氏名|住所|電話|口座|被保険者番号|受付番号|ケース番号|保護者|^name|address|phone|account",
    re.IGNORECASE,
)


def is_tax_like(text: str) -> bool:
    return bool(TAX_PATTERN.search(text))


def is_denied_header(header: str) -> bool:
    return bool(DENIED_HEADER_PATTERN.search(header))


def denial_basis(header: str) -> str | None:
    """The law that forbids this header outright, or None."""
    return next((law for pattern, law in _DENIED if pattern.search(header)), None)


def is_direct_identifier(header: str) -> bool:
    return bool(DIRECT_IDENTIFIER_PATTERN.search(header))

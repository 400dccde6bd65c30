"""Statutory limits that no registry or policy file can relax.

番号法 forbids 個人番号 for this purpose; 地方税法第22条 forbids tax-derived values;
free text is refused because it can hold anything. These patterns are matched against
NFKC-normalised headers and file names.
"""

from __future__ import annotations

import re

# A file whose name or header shows local tax data is refused outright (source-exports.md).
TAX_PATTERN = re.compile(r"課税|住民税|所得割|zei", re.IGNORECASE)

# Headers that are never read past ingestion, whatever a data file says.
DENIED_HEADER_PATTERN = re.compile(
    r"個人番号|マイナンバー|my_?number|所得|課税|住民税|税額|相談内容|病名|所見|欠席理由|備考|メモ|自由記述",
    re.IGNORECASE,
)


def is_tax_like(text: str) -> bool:
    return bool(TAX_PATTERN.search(text))


def is_denied_header(header: str) -> bool:
    return bool(DENIED_HEADER_PATTERN.search(header))

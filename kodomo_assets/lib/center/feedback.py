"""確認結果: the center's verification of listed children, as it travels back to the pipeline.

Center side (`kodomo feedback-import`, with the center's private keys): kakunin.csv
(宛名番号,基準月,確認結果) is checked row by row; each row names the month of the list the
child was on. A row whose child is not on that list is refused. What remains becomes a
signed file of pseudonyms: (child_token, list month, result, and the list's section, rank,
score and indicators), delivered to the month's inbox folder. No 宛名番号 leaves the center.

Pipeline side (`center/verification_feedback`, with the center's public key only): the
signature is verified, then the PPV of each indicator and score band is computed.
確認結果 is 該当 (needed support), 非該当 (did not) or 既知 (already known: outside the PPV).
PPV = 該当 / (該当 + 非該当).
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kodomo_assets.lib.ingest.decode import SourceFileError, iter_blocks, read_header
from kodomo_assets.lib.ingest.wareki import DateParseError, parse_year_month
from kodomo_assets.lib.platform.crypto import sign, verify
from kodomo_assets.lib.platform.keys import CenterPublic

HEADER = ("宛名番号", "基準月", "確認結果")
CONFIRMED, NOT_CONFIRMED, KNOWN = "該当", "非該当", "既知"
RESULTS = (CONFIRMED, NOT_CONFIRMED, KNOWN)
UNCHECKED = "未確認"  # the list's default: not a result, nothing is imported for the row
CHECK_RESULTS = (CONFIRMED, NOT_CONFIRMED, KNOWN, UNCHECKED)
NOT_LISTED = "宛名番号がその基準月の確認リストにない"
NO_LIST = "基準月の確認リストがない"
NO_INDICATOR = "（指標なし）"
FORMAT = "kodomo-verification/1"
FEEDBACK_FILE = "kakunin_signed.json"  # in the month's inbox folder, written by the center
STORE = "verification_feedback"  # the signed results, in the analysis zone
# Bands of the calibrated score as the export shows it (3 decimals), so a child lands in
# the band staff saw. The list is the top 2% of children, so most of it sits in 0.1–0.5;
# 0.5 is "more likely than not", 0.1 the lower end of what the list usually reaches.
BANDS = (
    ("0.5以上", 0.5, None),
    ("0.2以上0.5未満", 0.2, 0.5),
    ("0.1以上0.2未満", 0.1, 0.2),
    ("0.1未満", None, 0.1),
)
TABLES = ["verification", "ppv_by_indicator", "ppv_by_band", "counts_by_month"]


class SignatureError(ValueError):
    """A verification file that the center did not sign, or that was changed after."""


@dataclass
class Kakunin:
    """kakunin.csv, checked: valid rows and refused ones with a reason, by line."""

    encoding: str = ""
    rows: list[tuple[int, str, str, str]] = field(
        default_factory=list
    )  # line, atena, month, result
    refused: list[tuple[int, str]] = field(default_factory=list)  # line, reason
    blank_lines: int = 0

    def refused_by_reason(self) -> dict[str, int]:
        return dict(Counter(r for _, r in self.refused).most_common())


def read_kakunin(path: Path, month: str) -> Kakunin:
    """Read and check the file; raises SourceFileError only when it cannot be read at all.
    Messages and reasons never quote a value from the file."""
    decoded = read_header(path)  # CP932 / UTF-8 (BOM or not), NFKC headers
    missing = [h for h in HEADER if h not in decoded.headers]
    if missing:
        raise SourceFileError(
            path,
            f"見出し {'・'.join(missing)} がありません（見出し行は {','.join(HEADER)}）",
            line=1,
        )
    out = Kakunin(encoding=decoded.encoding)
    keep = [decoded.headers.index(h) for h in HEADER]
    checked: list[tuple[int, str, str, str]] = []
    for block in iter_blocks(path, decoded, keep):
        lines = block.column("_line").to_pylist()
        values = zip(*(block.column(f"c{i}").to_pylist() for i in keep), strict=True)
        for line, (atena, ym, result) in zip(lines, values, strict=True):
            row = _check_row(atena, ym, result, month)
            if isinstance(row, str):
                out.refused.append((line, row))
            else:
                checked.append((line, *row))
    out.blank_lines = decoded.blank_lines
    out.refused += [(b.line, _bad_line_reason(b.reason)) for b in decoded.bad_lines]
    out.rows = _without_duplicates(checked, out.refused)
    out.refused.sort()
    return out


def _check_row(atena: str, ym: str, result: str, month: str) -> str | tuple[str, str, str]:
    """(宛名番号 padded to 10, list month YYYY-MM, result), or the first problem's reason."""
    atena, result = atena.strip(), result.strip()
    if not atena:
        return "宛名番号が空"
    if not re.fullmatch(r"[0-9]+", atena):
        return "宛名番号が数字でない"
    if len(atena) > 10:
        return "宛名番号が10桁を超える"
    try:
        list_month = parse_year_month(ym)
    except DateParseError:
        return "基準月が年月として読めない"
    if list_month is None:
        return "基準月が空"
    if list_month > month:
        return "基準月が提出月より後"
    if not result:
        return "確認結果が空"
    if result not in RESULTS:
        return "確認結果が 該当・非該当・既知 のいずれでもない"
    return atena.zfill(10), list_month, result


def _bad_line_reason(reason: str) -> str:
    # decode's reasons carry byte positions and column counts; group them by kind
    if "バイト目が" in reason:
        return re.sub(
            r"^\d+ バイト目が (\S+) として読めない", r"\1 として読めない文字がある", reason
        )
    return reason.split(" (")[0]


def _without_duplicates(
    rows: list[tuple[int, str, str, str]], refused: list[tuple[int, str]]
) -> list[tuple[int, str, str, str]]:
    """One result per child and list month: repeats of the same result keep the first row,
    conflicting results keep none (a person must decide), and every other row is refused."""
    groups: dict[tuple[str, str], list[tuple[int, str, str, str]]] = defaultdict(list)
    for row in rows:
        groups[(row[1], row[2])].append(row)
    kept = []
    for group in groups.values():
        if len({r[3] for r in group}) > 1:
            refused += [(r[0], "同じ宛名番号・基準月に異なる確認結果") for r in group]
            continue
        kept.append(group[0])
        refused += [(r[0], "重複行（同じ宛名番号・基準月・確認結果）") for r in group[1:]]
    return sorted(kept)


# --- the signed file ------------------------------------------------------------------------


def _canonical(doc: dict[str, Any]) -> bytes:
    body = {k: v for k, v in doc.items() if k != "signature"}
    return json.dumps(body, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()


def signed_document(
    month: str,
    rows: list[dict[str, Any]],
    refused: dict[str, int],
    imported_by: str,
    created: str,
    signer: Ed25519PrivateKey,
    fingerprint: str,
) -> dict[str, Any]:
    doc = {
        "format": FORMAT,
        "month": month,
        "created": created,
        "imported_by": imported_by,
        "signer": fingerprint,
        "rows": rows,
        "refused_by_reason": refused,
    }
    doc["signature"] = sign(signer, _canonical(doc))
    return doc


def verified_document(raw: bytes, public: CenterPublic, month: str) -> dict[str, Any]:
    """The rows of a verification file, only if the center signed exactly this content for
    this month (with its current or an earlier key pair). Messages never quote the file."""
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise SignatureError("確認結果ファイルが JSON として読めません") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or "signature" not in doc:
        raise SignatureError(f"確認結果ファイルの形式が {FORMAT} ではありません")
    key = public.signing_key(str(doc.get("signer")))
    if key is None or not verify(key, _canonical(doc), str(doc["signature"])):
        raise SignatureError(
            "確認結果ファイルの署名を検証できません（センターの署名がないか、署名後に変更されています）"
        )
    if doc.get("month") != month:
        raise SignatureError(f"確認結果ファイルは基準月 {month} のものではありません")
    return doc


# --- the pipeline's tables --------------------------------------------------------------------


def _band_sql(column: str) -> str:
    whens = []
    for label, low, high in BANDS:
        cond = " AND ".join(
            [
                *([f"{column} >= {low}"] if low is not None else []),
                *([f"{column} < {high}"] if high is not None else []),
            ]
        )
        whens.append(f"WHEN {cond} THEN '{label}'")
    return f"CASE {' '.join(whens)} END"


def _counts() -> str:
    return (
        f"count(*) FILTER (result = '{CONFIRMED}')::INTEGER AS confirmed, "
        f"count(*) FILTER (result = '{NOT_CONFIRMED}')::INTEGER AS not_confirmed, "
        f"count(*) FILTER (result = '{KNOWN}')::INTEGER AS already_known"
    )


PPV_SQL = "CASE WHEN confirmed + not_confirmed > 0 THEN confirmed / (confirmed + not_confirmed) END"


def build_tables(con: duckdb.DuckDBPyConnection, rows: list[dict[str, Any]]) -> None:
    """The published tables, from the verified rows (pseudonyms, never a 宛名番号)."""
    con.register(
        "verified_rows",
        pa.table(
            {
                "child_token": pa.array([r["child_token"] for r in rows], pa.string()),
                "list_month": pa.array([r["list_month"] for r in rows], pa.string()),
                "result": pa.array([r["result"] for r in rows], pa.string()),
                "section": pa.array([r["section"] for r in rows], pa.string()),
                "rank": pa.array([r["rank"] for r in rows], pa.int32()),
                "score": pa.array([r["score"] for r in rows], pa.float64()),
                "indicators": pa.array([r["indicators"] for r in rows], pa.list_(pa.string())),
            }
        ),
    )
    con.execute(f"""
        CREATE TABLE verification AS
        SELECT child_token, list_month, result, section, rank, round(score, 3) AS score,
               {_band_sql("round(score, 3)")} AS score_band, coalesce(indicators, []::VARCHAR[]) AS indicators
        FROM verified_rows ORDER BY list_month, section, rank""")
    con.unregister("verified_rows")
    # a child counts once for every indicator it had; a child with none under its own row
    con.execute(f"""
        CREATE TABLE ppv_by_indicator AS
        WITH x AS (SELECT result, unnest(CASE WHEN len(indicators) = 0 THEN ['{NO_INDICATOR}']
                                              ELSE indicators END) AS indicator FROM verification),
        c AS (SELECT indicator, {_counts()} FROM x GROUP BY indicator)
        SELECT *, {PPV_SQL} AS ppv FROM c ORDER BY confirmed + not_confirmed DESC, indicator""")
    bands = ", ".join(
        f"({n}, '{label}', {low if low is not None else 'NULL'}, "
        f"{high if high is not None else 'NULL'})"
        for n, (label, low, high) in enumerate(BANDS)
    )
    con.execute(f"""
        CREATE TABLE ppv_by_band AS
        WITH b(n, score_band, lower_bound, upper_bound) AS (VALUES {bands}),
        c AS (SELECT score_band, {_counts()} FROM verification GROUP BY score_band),
        j AS (SELECT b.score_band, b.lower_bound::DOUBLE AS lower_bound,
                     b.upper_bound::DOUBLE AS upper_bound,
                     coalesce(c.confirmed, 0) AS confirmed,
                     coalesce(c.not_confirmed, 0) AS not_confirmed,
                     coalesce(c.already_known, 0) AS already_known, b.n
              FROM b LEFT JOIN c USING (score_band))
        SELECT score_band, lower_bound, upper_bound, confirmed, not_confirmed, already_known,
               {PPV_SQL} AS ppv FROM j ORDER BY n""")
    con.execute(f"""
        CREATE TABLE counts_by_month AS
        WITH c AS (SELECT list_month, {_counts()} FROM verification GROUP BY list_month)
        SELECT *, {PPV_SQL} AS ppv FROM c ORDER BY list_month""")


def _ppv_table(con: duckdb.DuckDBPyConnection, table: str, key: str) -> dict[str, dict]:
    out = {}
    for name, confirmed, not_confirmed, known, ppv in con.execute(
        f"SELECT {key}, confirmed, not_confirmed, already_known, ppv FROM {table}"
    ).fetchall():
        out[name] = {
            CONFIRMED: confirmed,
            NOT_CONFIRMED: not_confirmed,
            KNOWN: known,
            "PPV": None if ppv is None else round(ppv, 3),
        }
    return out


def summary(con: duckdb.DuckDBPyConnection) -> dict:
    """Aggregates only: counts and PPVs, never a pseudonym."""
    outcomes = dict(con.execute("SELECT result, count(*) FROM verification GROUP BY 1").fetchall())
    outcomes = {k: outcomes.get(k, 0) for k in RESULTS}
    decided = outcomes[CONFIRMED] + outcomes[NOT_CONFIRMED]
    by_month = {
        m: {CONFIRMED: c, NOT_CONFIRMED: n, KNOWN: k}
        for m, c, n, k in con.execute(
            "SELECT list_month, confirmed, not_confirmed, already_known FROM counts_by_month"
        ).fetchall()
    }
    return {
        "outcomes": outcomes,
        "ppv": round(outcomes[CONFIRMED] / decided, 3) if decided else None,
        "by_indicator": _ppv_table(con, "ppv_by_indicator", "indicator"),
        "by_band": _ppv_table(con, "ppv_by_band", "score_band"),
        "by_month": by_month,
    }

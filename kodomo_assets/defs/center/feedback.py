"""確認結果のフィードバック: the center's verification of listed children, joined back to the
review lists, and the positive predictive value (PPV) of each indicator and score band.

The center delivers kakunin.csv (宛名番号,基準月,確認結果) in a month's inbox folder; each row
names the month of the list the child was on. 確認結果 is 該当 (needed support), 非該当 (did
not) or 既知 (already known: neither, so outside the PPV). A child not on the named month's
list is 対象外. PPV = 該当 / (該当 + 非該当).
"""

import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa
from dagster import (
    AssetExecutionContext,
    AssetKey,
    Failure,
    MaterializeResult,
    MetadataValue,
)

from kodomo_assets.defs.approval import approval_for
from kodomo_assets.defs.center.assets import KEY as REVIEW_KEY
from kodomo_assets.defs.center.assets import NEW, _private_folder
from kodomo_assets.defs.center.assets import TABLE as REVIEW_TABLE
from kodomo_assets.defs.sources.inbox import FEEDBACK_FILE
from kodomo_assets.defs.zone import zone_asset
from kodomo_assets.lib import keys
from kodomo_assets.lib.center_store import attach_center, staged_center
from kodomo_assets.lib.decode import SourceFileError, iter_blocks, read_header
from kodomo_assets.lib.paths import kodomo_inbox, zone_store
from kodomo_assets.lib.publish import keep_only, promote
from kodomo_assets.lib.wareki import DateParseError, parse_year_month

KEY = AssetKey(["center", "verification_feedback"])
STORE = "verification_feedback"
HEADER = ("宛名番号", "基準月", "確認結果")
CONFIRMED, NOT_CONFIRMED, KNOWN, NOT_LISTED = "該当", "非該当", "既知", "対象外"
RESULTS = (CONFIRMED, NOT_CONFIRMED, KNOWN)
NO_INDICATOR = "（指標なし）"
# Bands of the calibrated score as the export shows it (3 decimals), so a child lands in
# the band staff saw. The list is the top 2% of children, so most of it sits in 0.1–0.5;
# 0.5 is "more likely than not", 0.1 the lower end of what the list usually reaches.
BANDS = (("0.5以上", 0.5, None), ("0.2以上0.5未満", 0.2, 0.5), ("0.1以上0.2未満", 0.1, 0.2),
         ("0.1未満", None, 0.1))
TABLES = ["verification", "ppv_by_indicator", "ppv_by_band", "counts_by_month", "quarantine"]


@dataclass
class Kakunin:
    """kakunin.csv, checked: valid rows and quarantined ones with a reason, by line."""

    encoding: str = ""
    rows: list[tuple[int, str, str, str]] = field(default_factory=list)  # line, atena, month, result
    quarantine: list[tuple[int, str | None, str | None, str | None, str]] = field(default_factory=list)
    blank_lines: int = 0

    def quarantine_by_reason(self) -> dict[str, int]:
        return dict(Counter(q[4] for q in self.quarantine).most_common())


def read_kakunin(path: Path, month: str) -> Kakunin:
    """Read and check the file; raises SourceFileError only when it cannot be read at all.
    Messages and reasons never quote a value from the file."""
    decoded = read_header(path)  # CP932 / UTF-8 (BOM or not), NFKC headers
    missing = [h for h in HEADER if h not in decoded.headers]
    if missing:
        raise SourceFileError(path, f"見出し {'・'.join(missing)} がありません"
                              f"（見出し行は {','.join(HEADER)}）", line=1)
    out = Kakunin(encoding=decoded.encoding)
    keep = [decoded.headers.index(h) for h in HEADER]
    checked: list[tuple[int, str, str, str]] = []
    for block in iter_blocks(path, decoded, keep):
        lines = block.column("_line").to_pylist()
        values = zip(*(block.column(f"c{i}").to_pylist() for i in keep), strict=True)
        for line, (atena, ym, result) in zip(lines, values, strict=True):
            checked_row = _check_row(atena, ym, result, month)
            if isinstance(checked_row, str):
                out.quarantine.append((line, atena, ym, result, checked_row))
            else:
                checked.append((line, *checked_row))
    out.blank_lines = decoded.blank_lines
    out.quarantine += [(b.line, None, None, None, _bad_line_reason(b.reason))
                       for b in decoded.bad_lines]
    out.rows = _without_duplicates(checked, out.quarantine)
    out.quarantine.sort(key=lambda q: q[0])
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
        return re.sub(r"^\d+ バイト目が (\S+) として読めない", r"\1 として読めない文字がある", reason)
    return reason.split(" (")[0]


def _without_duplicates(rows: list[tuple[int, str, str, str]],
                        quarantine: list) -> list[tuple[int, str, str, str]]:
    """One result per child and list month: repeats of the same result keep the first row,
    conflicting results keep none (a person must decide), and every other row is quarantined."""
    groups: dict[tuple[str, str], list[tuple[int, str, str, str]]] = defaultdict(list)
    for row in rows:
        groups[(row[1], row[2])].append(row)
    kept = []
    for group in groups.values():
        if len({r[3] for r in group}) > 1:
            quarantine += [(*r, "同じ宛名番号・基準月に異なる確認結果") for r in group]
            continue
        kept.append(group[0])
        quarantine += [(*r, "重複行（同じ宛名番号・基準月・確認結果）") for r in group[1:]]
    return sorted(kept)


def _band_sql(column: str) -> str:
    whens = []
    for label, low, high in BANDS:
        cond = " AND ".join([*([f"{column} >= {low}"] if low is not None else []),
                             *([f"{column} < {high}"] if high is not None else [])])
        whens.append(f"WHEN {cond} THEN '{label}'")
    return f"CASE {' '.join(whens)} END"


def _counts() -> str:
    return (f"count(*) FILTER (outcome = '{CONFIRMED}')::INTEGER AS confirmed, "
            f"count(*) FILTER (outcome = '{NOT_CONFIRMED}')::INTEGER AS not_confirmed, "
            f"count(*) FILTER (outcome = '{KNOWN}')::INTEGER AS already_known")


PPV_SQL = "CASE WHEN confirmed + not_confirmed > 0 THEN confirmed / (confirmed + not_confirmed) END"


def build_tables(con: duckdb.DuckDBPyConnection, found: Kakunin, lists: dict[str, Path],
                 center_key: bytes) -> None:
    """The published tables, from the checked rows and the read-only review lists."""
    con.register("checked_rows", pa.table({
        "line": pa.array([r[0] for r in found.rows], pa.int64()),
        "atena_no": pa.array([r[1] for r in found.rows], pa.string()),
        "list_month": pa.array([r[2] for r in found.rows], pa.string()),
        "result": pa.array([r[3] for r in found.rows], pa.string()),
    }))
    parts = []
    for i, (list_month, path) in enumerate(sorted(lists.items())):
        attach_center(con, f"list{i}", path, center_key)
        parts.append(f"SELECT '{list_month}' AS list_month, atena_no, section, rank, score, "
                     f"coalesce(indicators, []::VARCHAR[]) AS indicators FROM list{i}.{REVIEW_TABLE}")
    listed = " UNION ALL ".join(parts) or (
        "SELECT NULL::VARCHAR AS list_month, NULL::VARCHAR AS atena_no, NULL::VARCHAR AS section, "
        "NULL::INTEGER AS rank, NULL::DOUBLE AS score, NULL::VARCHAR[] AS indicators WHERE false")
    # a child is in one section of a month's list; should it ever appear twice, take one row
    con.execute(f"""
        CREATE TEMP TABLE listed AS SELECT * FROM ({listed})
        QUALIFY row_number() OVER (PARTITION BY list_month, atena_no
                                   ORDER BY section <> '{NEW}', rank) = 1""")
    con.execute(f"""
        CREATE TABLE verification AS
        SELECT r.line::INTEGER AS line, r.atena_no, r.list_month, r.result,
               l.atena_no IS NOT NULL AS on_list,
               CASE WHEN l.atena_no IS NULL THEN '{NOT_LISTED}' ELSE r.result END AS outcome,
               l.section, l.rank, round(l.score, 3) AS score,
               {_band_sql('round(l.score, 3)')} AS score_band, l.indicators
        FROM checked_rows r LEFT JOIN listed l
          ON l.list_month = r.list_month AND l.atena_no = r.atena_no
        ORDER BY r.line""")
    # a child counts once for every indicator it had; a child with none under its own row
    con.execute(f"""
        CREATE TABLE ppv_by_indicator AS
        WITH x AS (SELECT outcome, unnest(CASE WHEN len(indicators) = 0 THEN ['{NO_INDICATOR}']
                                               ELSE indicators END) AS indicator
                   FROM verification WHERE on_list),
        c AS (SELECT indicator, {_counts()} FROM x GROUP BY indicator)
        SELECT *, {PPV_SQL} AS ppv FROM c ORDER BY confirmed + not_confirmed DESC, indicator""")
    bands = ", ".join(f"({n}, '{label}', {low if low is not None else 'NULL'}, "
                      f"{high if high is not None else 'NULL'})"
                      for n, (label, low, high) in enumerate(BANDS))
    con.execute(f"""
        CREATE TABLE ppv_by_band AS
        WITH b(n, score_band, lower_bound, upper_bound) AS (VALUES {bands}),
        c AS (SELECT score_band, {_counts()} FROM verification
              WHERE on_list GROUP BY score_band),
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
        WITH c AS (SELECT list_month, {_counts()},
                          count(*) FILTER (outcome = '{NOT_LISTED}')::INTEGER AS not_listed
                   FROM verification GROUP BY list_month)
        SELECT *, {PPV_SQL} AS ppv FROM c ORDER BY list_month""")
    con.register("quarantined_rows", pa.table({
        "line": pa.array([q[0] for q in found.quarantine], pa.int64()),
        "atena_no_raw": pa.array([q[1] for q in found.quarantine], pa.string()),
        "list_month_raw": pa.array([q[2] for q in found.quarantine], pa.string()),
        "result_raw": pa.array([q[3] for q in found.quarantine], pa.string()),
        "reason": pa.array([q[4] for q in found.quarantine], pa.string()),
    }))
    con.execute("CREATE TABLE quarantine AS SELECT line::INTEGER AS line, atena_no_raw, "
                "list_month_raw, result_raw, reason FROM quarantined_rows ORDER BY line")
    con.unregister("checked_rows")
    con.unregister("quarantined_rows")


def _ppv_table(con: duckdb.DuckDBPyConnection, table: str, key: str) -> dict[str, dict]:
    out = {}
    for name, confirmed, not_confirmed, known, ppv in con.execute(
            f"SELECT {key}, confirmed, not_confirmed, already_known, ppv FROM {table}").fetchall():
        out[name] = {CONFIRMED: confirmed, NOT_CONFIRMED: not_confirmed, KNOWN: known,
                     "PPV": None if ppv is None else round(ppv, 3)}
    return out


def _summary(con: duckdb.DuckDBPyConnection) -> dict:
    """Aggregates only: counts and PPVs, never a 宛名番号."""
    outcomes = dict(con.execute("SELECT outcome, count(*) FROM verification GROUP BY 1").fetchall())
    outcomes = {k: outcomes.get(k, 0) for k in (*RESULTS, NOT_LISTED)}
    decided = outcomes[CONFIRMED] + outcomes[NOT_CONFIRMED]
    by_month = {m: {CONFIRMED: c, NOT_CONFIRMED: n, KNOWN: k, NOT_LISTED: x}
                for m, c, n, k, x in con.execute(
                    "SELECT list_month, confirmed, not_confirmed, already_known, not_listed "
                    "FROM counts_by_month").fetchall()}
    return {
        "outcomes": outcomes,
        "ppv": round(outcomes[CONFIRMED] / decided, 3) if decided else None,
        "by_indicator": _ppv_table(con, "ppv_by_indicator", "indicator"),
        "by_band": _ppv_table(con, "ppv_by_band", "score_band"),
        "by_month": by_month,
    }


@zone_asset(
    KEY,
    zone="center",
    sensitive=True,
    kinds={"csv", "duckdb"},
    code_version="1",
    deps=[REVIEW_KEY],
    gated=False,
    description=(
        "確認結果のフィードバック（センター領域）: 子ども家庭支援センターが基準月フォルダに置く "
        f"{FEEDBACK_FILE}（宛名番号・基準月・確認結果 = 該当／非該当／既知）を、各行が示す基準月の"
        "確認リストと宛名番号で突き合わせ、指標別・スコア帯別の陽性的中率 "
        "PPV = 該当 ÷ (該当 + 非該当) と件数を出す。既知は別に数え、リストに載っていない児童の結果は"
        "対象外とする。読めない行は理由を付けて隔離し件数を記録する。ファイルがない月は「未提出」"
        "として空の表を作る（失敗ではない）。メタデータは集計値のみで、宛名番号は含まない。"
    ),
)
def verification_feedback(context: AssetExecutionContext) -> MaterializeResult:
    month = context.partition_key
    approval_for(month)
    try:
        center_key = keys.load(keys.CENTER)
    except keys.KeyProblem as err:
        raise Failure(description=str(err), allow_retries=False) from None
    source = kodomo_inbox() / month / FEEDBACK_FILE
    submitted = source.is_file()
    try:
        found = read_kakunin(source, month) if submitted else Kakunin()
    except SourceFileError as err:
        raise Failure(description=f"{month}: {err}", allow_retries=False) from None
    lists = {m: zone_store("center", m, REVIEW_TABLE) for m in {r[2] for r in found.rows}}
    absent = {m for m, p in lists.items() if not p.exists()}
    if absent:
        # no list to compare with: set aside, not 対象外 (we cannot tell whether it was listed)
        found.quarantine += [(*r, "基準月の確認リストがない") for r in found.rows if r[2] in absent]
        found.rows = [r for r in found.rows if r[2] not in absent]
        found.quarantine.sort(key=lambda q: q[0])
        lists = {m: p for m, p in lists.items() if m not in absent}
    final = zone_store("center", month, STORE)
    _private_folder(final)
    with staged_center(final, center_key) as (con, stage):
        build_tables(con, found, lists, center_key)
        summary = _summary(con)
        (rows,) = con.execute("SELECT count(*) FROM verification").fetchone()
        keep_only(con, TABLES)
        promote(con, stage, final)
    final.chmod(0o600)
    if absent:
        context.log.warning(f"{month}: 確認リストがない基準月 {', '.join(sorted(absent))} の行を隔離しました")
    return MaterializeResult(metadata={
        "status": MetadataValue.text("提出済" if submitted else "未提出"),
        "dagster/row_count": rows,
        "encoding": MetadataValue.text(found.encoding or "—"),
        "outcomes": MetadataValue.json(summary["outcomes"]),
        "ppv_overall": (MetadataValue.float(summary["ppv"]) if summary["ppv"] is not None
                        else MetadataValue.text("算出不可（該当・非該当の結果がない）")),
        "ppv_by_indicator": MetadataValue.json(summary["by_indicator"]),
        "ppv_by_band": MetadataValue.json(summary["by_band"]),
        "counts_by_list_month": MetadataValue.json(summary["by_month"]),
        "quarantined": len(found.quarantine),
        "quarantine_by_reason": MetadataValue.json(found.quarantine_by_reason()),
        "blank_lines": found.blank_lines,
        "score_bands": MetadataValue.text(
            "較正済みスコア（小数第3位、確認リストの表示と同じ）: " + "／".join(b[0] for b in BANDS)),
    })

"""Read one export into its department's DuckDB store: typed, deduplicated, with bad rows
quarantined. Everything heavy runs in DuckDB SQL; Python touches only distinct dates."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa

from kodomo_assets.lib.decode import Decoded, SourceFileError, read_header, read_table
from kodomo_assets.lib.decode import normalise as nfkc
from kodomo_assets.lib.registry import Column, Dataset
from kodomo_assets.lib.statutory import is_denied_header, is_tax_like
from kodomo_assets.lib.wareki import DateParseError, parse_date, parse_year_month

SQL_TYPES = {"id": "VARCHAR", "text": "VARCHAR", "kana": "VARCHAR", "date": "DATE",
             "year_month": "VARCHAR", "int": "BIGINT", "enum": "VARCHAR", "enum_list": "VARCHAR[]"}
_HIRAGANA = "".join(chr(c) for c in range(0x3041, 0x3097))
_KATAKANA = "".join(chr(c + 0x60) for c in range(0x3041, 0x3097))


@dataclass
class IngestResult:
    dataset: str
    month: str
    encoding: str
    rows_received: int
    blank_lines: int
    duplicates_removed: int
    stored_rows: int
    quarantined: int
    quarantine_by_reason: dict[str, int]
    ignored_columns: list[str] = field(default_factory=list)
    dropped_forbidden_columns: list[str] = field(default_factory=list)


def q(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _map_headers(ds: Dataset, path: Path, decoded: Decoded) -> tuple[dict[str, int], list[str], list[str]]:
    """Return column name -> position for stored columns, plus ignored and dropped headers."""
    by_header = {nfkc(c.header): c for c in ds.columns}
    positions: dict[str, int] = {}
    ignored, dropped = [], []
    for i, header in enumerate(decoded.headers):
        if is_tax_like(header):
            raise SourceFileError(
                path, "地方税情報と見られる列があるため受け取りを拒否しました (地方税法第22条)",
                line=1, column=header)
        col = by_header.get(header)
        if col is not None and col.name in positions:
            raise SourceFileError(path, "見出しが重複しています", line=1, column=header)
        if col is None:
            (dropped if is_denied_header(header) else ignored).append(header)
        elif col.forbidden:
            dropped.append(header)
        else:
            positions[col.name] = i
    if not positions:
        raise SourceFileError(path, "見出しが契約 (source-exports.md) と一致しません。"
                              f"文字コードが {decoded.encoding} で正しいか確認してください", line=1)
    for col in ds.stored_columns:
        if col.name not in positions:
            raise SourceFileError(path, "必須の列がありません", line=1, column=col.header)
    return positions, ignored, dropped


def _parse_lookup(con: duckdb.DuckDBPyConnection, name: str, column: str, parser) -> None:
    """Parse each distinct value once in Python and expose the result as a table."""
    values = [r[0] for r in con.execute(
        f"SELECT DISTINCT {column} FROM trimmed WHERE {column} IS NOT NULL").fetchall()]
    parsed, errors = [], []
    for v in values:
        try:
            parsed.append(parser(v))
            errors.append(None)
        except DateParseError as err:
            parsed.append(None)
            errors.append(str(err))
    table = pa.table({"raw": values, "value": parsed, "error": errors})
    con.register(f"{name}_arrow", table)
    con.execute(f"CREATE TEMP TABLE {name} AS SELECT * FROM {name}_arrow")
    con.unregister(f"{name}_arrow")


def _enum_case(col: Column, x: str) -> str:
    whens = " ".join(f"WHEN {q(''.join(k.split()))} THEN {q(v)}" for k, v in col.values.items())
    return f"CASE replace({x}, ' ', '') {whens} END"


def _typed(col: Column, v: str) -> tuple[str, str | None]:
    """SQL for the typed value and for an invalid-value condition (None: always valid).
    `v` is the trimmed, NFKC-normalised text, NULL when blank."""
    if col.type == "id":
        digits = f"replace({v}, ' ', '')"
        if col.width:
            return (f"CASE WHEN length({digits}) < {col.width} THEN lpad({digits}, {col.width}, '0') "
                    f"ELSE {digits} END"), f"NOT regexp_full_match({digits}, '[0-9]+')"
        return digits, f"NOT regexp_full_match({digits}, '[0-9]+')"
    if col.type in ("text", "kana"):
        value = f"CASE WHEN contains({v}, '  ') THEN regexp_replace({v}, ' +', ' ', 'g') ELSE {v} END"
        if col.type == "kana":
            # translate() is slow; most kana fields hold no hiragana at all
            value = (f"CASE WHEN regexp_matches({v}, '[ぁ-ゖ]') "
                     f"THEN translate({value}, {q(_HIRAGANA)}, {q(_KATAKANA)}) ELSE {value} END")
        return value, None
    if col.type in ("date", "year_month"):
        return f"lk_{col.name}.value", f"lk_{col.name}.error IS NOT NULL"
    if col.type == "int":
        return f"TRY_CAST({v} AS BIGINT)", f"NOT regexp_full_match({v}, '[0-9]+')"
    if col.type == "enum":
        return _enum_case(col, v), f"{_enum_case(col, v)} IS NULL"
    if col.type == "enum_list":
        items = f"list_transform(string_split({v}, ';'), x -> {_enum_case(col, 'trim(x)')})"
        return items, f"list_position({items}, NULL) IS NOT NULL OR len({items}) = 0"
    raise ValueError(col.type)


def _reason_sql(col: Column, v: str, invalid: str | None) -> list[str]:
    out = []
    if col.required:
        out.append(f"CASE WHEN {v} IS NULL THEN {q(col.header + ': 必須項目が空')} END")
    if col.type in ("date", "year_month"):
        out.append(f"CASE WHEN {invalid} THEN {q(col.header + ': ')} || lk_{col.name}.error END")
    elif invalid:
        reason = {"id": "数字以外を含む", "int": "0以上の整数でない"}.get(col.type, "定義外の値")
        out.append(f"CASE WHEN {v} IS NOT NULL AND ({invalid}) THEN {q(col.header + ': ' + reason)} END")
    return out


def ingest(ds: Dataset, month: str, inbox: Path, store: Path) -> IngestResult:
    path = inbox / month / ds.file
    if not path.is_file():
        raise SourceFileError(path, f"基準月 {month} の {ds.file} ({ds.label}, {ds.department.label}) が届いていません")
    decoded = read_header(path)
    positions, ignored, dropped = _map_headers(ds, path, decoded)
    table = read_table(path, decoded, sorted(positions.values()))
    con = duckdb.connect(str(store))
    try:
        con.execute("SET memory_limit = '1GB'; SET preserve_insertion_order = false")
        con.register("raw", table)
        return _load(con, ds, month, path, decoded, positions, ignored, dropped)
    finally:
        con.close()


def _load(con, ds: Dataset, month: str, path: Path, decoded: Decoded,
          positions: dict[str, int], ignored: list[str], dropped: list[str]) -> IngestResult:
    cols = ds.stored_columns
    raw = {c.name: f"c{positions[c.name]}" for c in cols}
    trimmed = ", ".join(f"NULLIF(trim({raw[c.name]}), '') AS v_{c.name}" for c in cols)
    con.execute(f"CREATE TEMP VIEW trimmed AS SELECT _line, {trimmed} FROM raw")
    for kind, parser in (("date", parse_date), ("year_month", parse_year_month)):
        for c in cols:
            if c.type == kind:
                _parse_lookup(con, f"lk_{c.name}", f"v_{c.name}", parser)
    joins = " ".join(
        f"LEFT JOIN lk_{c.name} ON lk_{c.name}.raw = t.v_{c.name}"
        for c in cols if c.type in ("date", "year_month")
    )
    typed_sql, reasons = [], []
    for c in cols:
        value, invalid = _typed(c, f"t.v_{c.name}")
        typed_sql.append(f"CAST({value} AS {SQL_TYPES[c.type]}) AS {c.name}")
        reasons += _reason_sql(c, f"t.v_{c.name}", invalid)
    con.execute(
        f"CREATE TEMP TABLE typed AS SELECT t._line, {', '.join(typed_sql)}, "
        f"list_filter([{', '.join(reasons) or 'NULL'}], x -> x IS NOT NULL) AS errors "
        f"FROM trimmed t {joins}"
    )
    if ds.checks:
        checks = ", ".join(
            f"CASE WHEN NOT coalesce(({c.rule}), true) THEN {q(c.column + ': ' + c.reason)} END"
            for c in ds.checks
        )
        con.execute(f"UPDATE typed SET errors = list_filter([{checks}], x -> x IS NOT NULL) "
                    "WHERE len(errors) = 0")
    names = ", ".join(c.name for c in cols)
    key = ", ".join(ds.key)
    key_label = "・".join(ds.column(k).header for k in ds.key)
    con.execute(
        f"CREATE TEMP TABLE distinct_ok AS SELECT min(_line) AS _line, count(*) AS copies, {names} "
        f"FROM typed WHERE len(errors) = 0 GROUP BY ALL"
    )
    con.execute(
        "CREATE TEMP TABLE conflicts AS SELECT _line FROM distinct_ok "
        f"QUALIFY count(*) OVER (PARTITION BY {key}) > 1"
    )
    raw_cols = ", ".join(f"r.{raw[c.name]} AS {c.name}" for c in cols)
    bad_lines = pa.table({
        "line": pa.array([b.line for b in decoded.bad_lines], pa.int64()),
        "reason": pa.array([b.reason for b in decoded.bad_lines], pa.string()),
    })
    con.register("bad_lines", bad_lines)
    null_cols = ", ".join(f"NULL::VARCHAR AS {c.name}" for c in cols)
    con.execute("BEGIN TRANSACTION")
    con.execute(
        f"CREATE OR REPLACE TABLE {ds.name} AS SELECT {names}, _line AS source_line "
        "FROM distinct_ok ANTI JOIN conflicts USING (_line) ORDER BY _line"
    )
    con.execute(
        f"CREATE OR REPLACE TABLE {ds.name}_quarantine AS "
        f"SELECT {q(ds.file)} AS source_file, t._line AS line, errors AS reasons, {raw_cols} "
        "FROM typed t JOIN raw r USING (_line) WHERE len(errors) > 0 "
        f"UNION ALL SELECT {q(ds.file)}, r._line, [{q(key_label + ': キーが重複し内容が矛盾')}], "
        f"{raw_cols} FROM raw r SEMI JOIN conflicts c ON r._line = c._line "
        f"UNION ALL SELECT {q(ds.file)}, line, [reason], {null_cols} FROM bad_lines "
        "ORDER BY line"
    )
    con.execute("COMMIT")
    con.unregister("bad_lines")
    stored = con.execute(f"SELECT count(*) FROM {ds.name}").fetchone()[0]
    dup = con.execute("SELECT coalesce(sum(copies - 1), 0) FROM distinct_ok").fetchone()[0]
    by_reason = Counter(dict(con.execute(
        f"SELECT r, count(*) FROM (SELECT unnest(reasons) AS r FROM {ds.name}_quarantine) GROUP BY r"
    ).fetchall()))
    quarantined = con.execute(f"SELECT count(*) FROM {ds.name}_quarantine").fetchone()[0]
    return IngestResult(
        dataset=ds.name, month=month, encoding=decoded.encoding,
        rows_received=decoded.data_lines + len(decoded.bad_lines),
        blank_lines=decoded.blank_lines, duplicates_removed=int(dup), stored_rows=stored,
        quarantined=quarantined, quarantine_by_reason=dict(by_reason),
        ignored_columns=ignored, dropped_forbidden_columns=dropped,
    )

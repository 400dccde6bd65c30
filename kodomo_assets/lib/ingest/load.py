"""Read one export into its department's DuckDB store: typed, deduplicated, with bad rows
quarantined. The file streams through in blocks, so memory stays bounded at city scale;
the heavy work is DuckDB SQL, and Python parses only the distinct dates that SQL does not
read plainly (wareki.DATE_MACROS)."""

from __future__ import annotations

import queue
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa

from kodomo_assets.lib.ingest.decode import Decoded, SourceFileError, iter_blocks, read_header
from kodomo_assets.lib.ingest.decode import normalise as nfkc
from kodomo_assets.lib.ingest.typing_sql import (
    PARSED_TYPES,
    SQL_TYPES,
    q,
    reasons,
    suspicion,
    typed_value,
)
from kodomo_assets.lib.ingest.wareki import (
    DATE_MACROS,
    DateParseError,
    parse_date,
    parse_year_month,
)
from kodomo_assets.lib.platform.rows import one_row
from kodomo_assets.lib.policy import content as scan
from kodomo_assets.lib.policy.statutory import is_denied_header, is_tax_like
from kodomo_assets.lib.registry import Dataset

PARSERS = {"date": parse_date, "year_month": parse_year_month}
HEADER_ONLY = (
    "見出し行だけでデータ行が1行もありません（出力の失敗と見られます。"
    "データのない月はファイルを置きません）"
)


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
    # line -> {column position -> masked text}: what the sealed copy must not keep
    redactions: dict[int, dict[int, str]] = field(default_factory=dict)


def position_only(index: int, header: str) -> str:
    return f"{index + 1}列目"


def map_headers(
    ds: Dataset, path: Path, decoded: Decoded, describe: Callable[[int, str], str] = position_only
) -> tuple[dict[str, int], list[str], list[str]]:
    """Return column name -> position for stored columns, plus ignored and dropped headers.
    A header the contract does not know is personal data too (`山田太郎さん要確認`): it is
    only ever named by `describe` (its position and a keyed hash), never quoted."""
    by_header = {nfkc(c.header): c for c in ds.columns}
    positions: dict[str, int] = {}
    ignored: list[str] = []
    dropped: list[str] = []
    for i, header in enumerate(decoded.headers):
        col = by_header.get(header)
        if is_tax_like(header):
            raise SourceFileError(
                path,
                "地方税情報と見られる列があるため受け取りを拒否しました (地方税法第22条)",
                line=1,
                column=describe(i, header),
            )
        if col is not None and col.name in positions:
            raise SourceFileError(path, "見出しが重複しています", line=1, column=header)
        if col is None:
            (dropped if is_denied_header(header) else ignored).append(describe(i, header))
        elif col.forbidden:
            dropped.append(header)  # a contract header (個人番号, 所得額 ...): named
        else:
            positions[col.name] = i
    if not positions:
        raise SourceFileError(
            path,
            "見出しが契約 (source-exports.md) と一致しません。"
            f"文字コードが {decoded.encoding} で正しいか確認してください",
            line=1,
        )
    for col in ds.stored_columns:
        if col.name not in positions:
            raise SourceFileError(path, "必須の列がありません", line=1, column=col.header)
    return positions, ignored, dropped


def ingest(
    ds: Dataset,
    month: str,
    path: Path,
    con: duckdb.DuckDBPyConnection,
    content: bytes | None = None,
    describe: Callable[[int, str], str] = position_only,
) -> IngestResult:
    """Read `path` (or `content`, its bytes from the raw archive) into the store that `con`
    has open as its default database: the dataset and its quarantine, in one transaction."""
    decoded = read_header(path, content)
    positions, ignored, dropped = map_headers(ds, path, decoded, describe)
    # no ORDER BY on the final write: a sort of every row would double the peak memory;
    # readers order by source_line
    con.execute("SET memory_limit = '1GB'")
    loader = _Loader(con, ds, positions)
    for block in read_ahead(iter_blocks(path, decoded, sorted(positions.values()), content)):
        loader.add(block)
    if decoded.data_lines + len(decoded.bad_lines) == 0:
        # "a department that delivered nothing has no file": a header alone is a failed
        # export, never a silent empty table (source-exports.md)
        raise SourceFileError(path, HEADER_ONLY, line=2)
    return loader.finish(month, decoded, ignored, dropped)


def read_ahead(blocks: Iterator[pa.Table], depth: int = 2) -> Iterator[pa.Table]:
    """Decode the next blocks in a thread while DuckDB types this one: on two cores the
    transcoding (which holds the GIL) overlaps DuckDB's SQL (which releases it). Errors
    from the reader are raised here, in order; a consumer that stops early stops it."""
    ahead: queue.Queue = queue.Queue(maxsize=depth)
    done, stop = object(), threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                ahead.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for block in blocks:
                if not put(block):
                    return
            put(done)
        except BaseException as err:
            put(err)

    thread = threading.Thread(target=produce, name="read-ahead", daemon=True)
    thread.start()
    try:
        while (item := ahead.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join()


class _Loader:
    """Temp tables `typed` and `quarantine` filled block by block, then one atomic write.
    Each block is typed while the reader decodes the next one, so DuckDB's work overlaps
    the decoding instead of following it (issue 15, part 5)."""

    def __init__(self, con: duckdb.DuckDBPyConnection, ds: Dataset, positions: dict[str, int]):
        self.con, self.ds, self.cols = con, ds, ds.stored_columns
        scan.install(con)
        for macro in DATE_MACROS:
            con.execute(macro)
        self.raw = {c.name: f"c{positions[c.name]}" for c in self.cols}
        self.parsed = [c for c in self.cols if c.type in PARSED_TYPES]
        for c in self.parsed:
            con.execute(
                f"CREATE TEMP TABLE lk_{c.name} (raw VARCHAR, value {SQL_TYPES[c.stored_type]}, error VARCHAR)"
            )
        text = ", ".join(f"{c.name} VARCHAR" for c in self.cols)
        con.execute(
            f"CREATE TEMP TABLE quarantine (source_file VARCHAR, line BIGINT, "
            f"reasons VARCHAR[], {text})"
        )
        self.typed_sql = self._typed_sql()
        # the typed table's shape, from the query itself on an empty block
        empty = pa.table(
            {
                "_line": pa.array([], pa.int64()),
                **{self.raw[c.name]: pa.array([], pa.string()) for c in self.cols},
            }
        )
        self._with_block(empty, lambda: con.execute(f"CREATE TEMP TABLE typed AS {self.typed_sql}"))
        self.quarantine_sql = self._quarantine_sql()

    def _typed_sql(self) -> str:
        values, why = [], []
        for c in self.cols:
            value, invalid = typed_value(c, f"t.v_{c.name}")
            values.append(f"CAST({value} AS {SQL_TYPES[c.stored_type]}) AS {c.name}")
            why += reasons(c, f"t.v_{c.name}", invalid)
            # the content scan, value by value: a hit quarantines the row, and the
            # quarantine keeps what kind of value it was, never the value
            found = suspicion(c, f"t.v_{c.name}")
            if found:
                values.append(f"{found} AS hit_{c.name}")
                why.append(
                    f"CASE WHEN hit_{c.name} IS NOT NULL THEN {q(c.header + ': ')} || hit_{c.name} END"
                )
        joins = " ".join(
            f"LEFT JOIN lk_{c.name} ON lk_{c.name}.raw = t.v_{c.name}" for c in self.parsed
        )
        base = (
            f"SELECT t._line, {', '.join(values)}, "
            f"list_filter([{', '.join(why) or 'NULL'}], x -> x IS NOT NULL) AS errors "
            f"FROM trimmed t {joins}"
        )
        if not self.ds.checks:
            return base
        # row rules run only on rows whose values all parsed
        checks = ", ".join(
            f"CASE WHEN NOT coalesce(({c.rule}), true) THEN {q(c.column + ': ' + c.reason)} END"
            for c in self.ds.checks
        )
        return (
            f"WITH base AS ({base}) SELECT * REPLACE (CASE WHEN len(errors) = 0 THEN "
            f"list_filter([{checks}], x -> x IS NOT NULL) ELSE errors END AS errors) FROM base"
        )

    def _quarantine_sql(self) -> str:
        """A block's rejected rows with their text as delivered, a scanned hit masked."""
        raw_cols = ", ".join(
            f"CASE WHEN t.hit_{c.name} IS NOT NULL THEN {scan.mask_sql(f't.hit_{c.name}')} "
            f"ELSE r.{self.raw[c.name]} END"
            if suspicion(c, "x")
            else f"r.{self.raw[c.name]}"
            for c in self.cols
        )
        return (
            f"INSERT INTO quarantine SELECT {q(self.ds.file)}, t._line, t.errors, {raw_cols} "
            "FROM typed t JOIN raw r USING (_line) WHERE t._line >= $first AND len(t.errors) > 0"
        )

    def _with_block(self, block: pa.Table, work: Callable[[], object]) -> None:
        """Run `work` with the block as the table `raw` and its trimmed text as `trimmed`.
        The block is copied into DuckDB first: its own scans of an Arrow table of two or
        three record batches run on one thread and cost twice the copy."""
        con = self.con
        con.register("arrow_block", block)
        con.execute("CREATE OR REPLACE TEMP TABLE raw AS FROM arrow_block")
        con.unregister("arrow_block")
        trimmed = ", ".join(
            f"NULLIF(trim({self.raw[c.name]}), '') AS v_{c.name}" for c in self.cols
        )
        con.execute(f"CREATE OR REPLACE TEMP VIEW trimmed AS SELECT _line, {trimmed} FROM raw")
        try:
            work()
        finally:
            con.execute("DROP VIEW trimmed")
            con.execute("DROP TABLE raw")

    def add(self, block: pa.Table) -> None:
        """Type one block: its new distinct dates first, then its rows, then its rejects.
        Lines only grow from block to block, so `_line >= first` reads this block's rows
        alone (DuckDB skips the earlier row groups by their min/max)."""
        con = self.con

        def work() -> None:
            for c in self.parsed:
                self._extend_lookup(c.name, c.stored_type)
            con.execute(f"INSERT INTO typed {self.typed_sql}")
            con.execute(self.quarantine_sql, {"first": block.column("_line")[0].as_py()})

        self._with_block(block, work)

    def _extend_lookup(self, name: str, kind: str) -> None:
        """Each distinct value once, over all blocks: the plainly written dates in SQL
        (wareki.DATE_MACROS), every other value, and every error, by the Python parser."""
        fast = "wareki_date(raw)" if kind == "date" else f"NULL::{SQL_TYPES[kind]}"
        con = self.con
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE lk_new AS SELECT raw, {fast} AS value, "
            f"NULL::VARCHAR AS error FROM (SELECT DISTINCT v_{name} AS raw FROM trimmed "
            f"WHERE v_{name} IS NOT NULL) ANTI JOIN lk_{name} USING (raw)"
        )
        values = [
            r[0] for r in con.execute("SELECT raw FROM lk_new WHERE value IS NULL").fetchall()
        ]
        if values:
            parsed: list[object] = []
            errors: list[str | None] = []
            for v in values:
                try:
                    parsed.append(PARSERS[kind](v))
                    errors.append(None)
                except DateParseError as err:
                    parsed.append(None)
                    errors.append(str(err))
            con.register(
                "slow_values",
                pa.table(
                    {
                        "raw": pa.array(values, pa.string()),
                        "value": parsed,
                        "error": pa.array(errors, pa.string()),
                    }
                ),
            )
            con.execute(
                "UPDATE lk_new SET value = s.value, error = s.error FROM slow_values s "
                "WHERE lk_new.raw = s.raw"
            )
            con.unregister("slow_values")
        con.execute(f"INSERT INTO lk_{name} SELECT * FROM lk_new")
        con.execute("DROP TABLE lk_new")

    def _redactions(self) -> dict[int, dict[int, str]]:
        """line -> {column position -> masked text}: what the sealed copy must not keep."""
        hits = [c for c in self.cols if suspicion(c, "x")]
        if not hits:
            return {}
        return {
            line: {
                int(self.raw[c.name][1:]): f"＊＊＊＊（{label}）"
                for c, label in zip(hits, labels, strict=True)
                if label
            }
            for line, *labels in self.con.execute(
                f"SELECT _line, {', '.join(f'hit_{c.name}' for c in hits)} FROM typed "
                f"WHERE {' OR '.join(f'hit_{c.name} IS NOT NULL' for c in hits)}"
            ).fetchall()
        }

    def finish(
        self, month: str, decoded: Decoded, ignored: list[str], dropped: list[str]
    ) -> IngestResult:
        con, ds = self.con, self.ds
        names = ", ".join(c.name for c in self.cols)
        key = ", ".join(ds.key)
        # Exact duplicates: a narrow row hash first, then a column-by-column confirmation of
        # the few candidates (grouping every wide row would cost GBs at city scale).
        con.execute(
            f"CREATE TEMP TABLE valid AS SELECT _line, hash({names}) AS h, {key} "
            "FROM typed WHERE len(errors) = 0"
        )
        same = " AND ".join(f"a.{c.name} IS NOT DISTINCT FROM b.{c.name}" for c in self.cols)
        con.execute(
            "CREATE TEMP TABLE duplicates AS SELECT d._line FROM (SELECT _line, "
            "min(_line) OVER (PARTITION BY h) AS first FROM valid "
            "SEMI JOIN (SELECT h FROM valid GROUP BY h HAVING count(*) > 1) USING (h)) d "
            "JOIN typed a ON a._line = d._line JOIN typed b ON b._line = d.first "
            f"WHERE d._line <> d.first AND {same}"
        )
        con.execute(
            "CREATE TEMP TABLE conflicts AS SELECT _line FROM valid ANTI JOIN duplicates "
            f"USING (_line) QUALIFY count(*) OVER (PARTITION BY {key}) > 1"
        )
        key_label = "・".join(ds.column(k).header for k in ds.key)
        as_text = ", ".join(f"CAST({c.name} AS VARCHAR)" for c in self.cols)
        con.execute(
            f"INSERT INTO quarantine SELECT {q(ds.file)}, _line, "
            f"[{q(key_label + ': キーが重複し内容が矛盾')}], {as_text} "
            "FROM typed SEMI JOIN conflicts USING (_line)"
        )
        con.register(
            "bad_lines",
            pa.table(
                {
                    "line": pa.array([b.line for b in decoded.bad_lines], pa.int64()),
                    "reason": pa.array([b.reason for b in decoded.bad_lines], pa.string()),
                }
            ),
        )
        nulls = ", ".join("NULL" for _ in self.cols)
        con.execute(
            f"INSERT INTO quarantine SELECT {q(ds.file)}, line, [reason], {nulls} FROM bad_lines"
        )
        con.unregister("bad_lines")
        con.execute("BEGIN TRANSACTION")
        con.execute(
            f"CREATE OR REPLACE TABLE {ds.name} AS SELECT {names}, _line AS source_line "
            "FROM typed ANTI JOIN (FROM duplicates UNION ALL FROM conflicts) USING (_line) "
            "WHERE len(errors) = 0"
        )
        con.execute(
            f"CREATE OR REPLACE TABLE {ds.name}_quarantine AS FROM quarantine ORDER BY line"
        )
        con.execute("COMMIT")
        by_reason = Counter(
            dict(
                con.execute(
                    f"SELECT r, count(*) FROM (SELECT unnest(reasons) AS r FROM {ds.name}_quarantine) GROUP BY r"
                ).fetchall()
            )
        )
        return IngestResult(
            dataset=ds.name,
            month=month,
            encoding=decoded.encoding,
            rows_received=decoded.data_lines + len(decoded.bad_lines),
            blank_lines=decoded.blank_lines,
            duplicates_removed=one_row(con.execute("SELECT count(*) FROM duplicates"))[0],
            stored_rows=one_row(con.execute(f"SELECT count(*) FROM {ds.name}"))[0],
            quarantined=one_row(con.execute(f"SELECT count(*) FROM {ds.name}_quarantine"))[0],
            quarantine_by_reason=dict(by_reason),
            ignored_columns=ignored,
            dropped_forbidden_columns=dropped,
            redactions=self._redactions(),
        )

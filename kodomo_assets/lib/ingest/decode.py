"""Decode a municipal CSV export into an Arrow table of the kept columns, in memory.

DuckDB cannot read CP932 (library-notes.md), so pyarrow parses each block and transcodes
it; numpy finds line structure first, so every row keeps its source line number and a
malformed line is set aside without failing the file. A physical line is a record: the
contract has quoted commas but no quoted newlines. Bytes 0x0A, 0x22 and 0x2C never occur
inside a CP932 or UTF-8 multibyte character, so scanning raw bytes is safe. Only kept
columns are materialised, so 禁止 values never leave the input file.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

ALLOWED = "CP932 または UTF-8 (BOM 有無可)"
_BLOCK = 1 << 25
_NL, _QUOTE, _COMMA, _CR = 10, 34, 44, 13
_SPACED_QUOTE = re.compile(rb'(^|,)[ \t]+"|"[ \t]+(,|$)')


class SourceFileError(Exception):
    """A file that cannot be read at all. The message names file, line and column and what
    was expected, never a value from the file."""

    def __init__(
        self, file: Path | str, problem: str, line: int | None = None, column: str | None = None
    ):
        where = (
            f"{file}" + (f" {line}行目" if line else "") + (f" 列「{column}」" if column else "")
        )
        super().__init__(f"{where}: {problem}")
        self.file, self.line, self.column, self.problem = str(file), line, column, problem


@dataclass
class BadLine:
    line: int
    reason: str


@dataclass
class Decoded:
    encoding: str
    headers: list[str]
    header_bytes: int = 0
    data_lines: int = 0
    blank_lines: int = 0
    bad_lines: list[BadLine] = field(default_factory=list)


def normalise(text: str) -> str:
    return unicodedata.normalize("NFKC", text)


def _open(path: Path, content: bytes | None) -> io.BufferedIOBase:
    """The export itself, or its bytes from the encrypted raw archive (a rerun)."""
    return io.BytesIO(content) if content is not None else open(path, "rb")


def read_header(path: Path, content: bytes | None = None) -> Decoded:
    """Detect the encoding from the first line and return the normalised headers."""
    with _open(path, content) as fh:
        head = fh.readline(1 << 20)
    if not head:
        raise SourceFileError(path, "0 バイトの空ファイルです (見出し行が必要)", line=1)
    if head[:2] in (b"\xff\xfe", b"\xfe\xff") or b"\x00" in head:
        raise SourceFileError(
            path, f"UTF-16 は受け付けられません: {ALLOWED} で出力してください", line=1
        )
    bom = head.startswith(b"\xef\xbb\xbf")
    first = head[3:] if bom else head
    for encoding in ["utf-8"] if bom else ["utf-8", "cp932"]:
        try:
            text = first.decode(encoding)
            break
        except UnicodeDecodeError as err:
            if encoding == "utf-8" and not bom:
                continue
            raise SourceFileError(
                path, f"{err.start + 1} バイト目が {ALLOWED} として読めません", line=1
            ) from None
    headers = [h.strip() for h in next(csv.reader([normalise(text).rstrip("\r\n")]), [])]
    if not any(headers):
        raise SourceFileError(path, "見出し行がありません", line=1)
    return Decoded(
        encoding="utf-8-sig" if bom else encoding, headers=headers, header_bytes=len(head)
    )


def iter_blocks(
    path: Path, decoded: Decoded, keep: Sequence[int], content: bytes | None = None
) -> Iterator[pa.Table]:
    """Yield `_line` plus the kept columns (as c<i>), NFKC-normalised, block by block, so
    memory stays bounded by the block size; malformed lines are recorded in `decoded`."""
    line_no = 1
    with _open(path, content) as fh:
        fh.seek(decoded.header_bytes)
        carry = b""
        while True:
            chunk = fh.read(_BLOCK)
            data = carry + chunk
            if not chunk:
                if data and not data.endswith(b"\n"):
                    data += b"\n"  # a last line without its line end
                carry = b""
            else:
                cut = data.rfind(b"\n") + 1
                data, carry = data[:cut], data[cut:]
            if data:
                table, n_lines = _read_block(path, data, decoded, keep, line_no + 1)
                line_no += n_lines
                if table.num_rows:
                    yield table
            if not chunk:
                break


def _read_block(
    path: Path, data: bytes, decoded: Decoded, keep: Sequence[int], first_line: int
) -> tuple[pa.Table, int]:
    width = len(decoded.headers)
    buf = np.frombuffer(data, np.uint8)
    ends = np.flatnonzero(buf == _NL)
    starts = np.r_[0, ends[:-1] + 1]
    content_end = ends - ((ends > starts) & (buf[np.maximum(ends - 1, 0)] == _CR))
    quote_pos = np.flatnonzero(buf == _QUOTE)
    quotes = np.diff(np.searchsorted(quote_pos, ends), prepend=0)
    commas = _field_separators(buf, quote_pos, starts, ends)
    ok = (quotes % 2 == 0) & (commas == width - 1) & (content_end > starts)
    # A quote next to a space ( "昭島市,コーポ①" ) is not standard CSV: such lines take the
    # slow path and are rewritten in canonical CSV, or pyarrow would split the field.
    near = np.concatenate(
        [buf[np.maximum(quote_pos - 1, 0)], buf[np.minimum(quote_pos + 1, len(buf) - 1)]]
    )
    spaced = np.unique(np.searchsorted(ends, np.tile(quote_pos, 2)[(near == 32) | (near == 9)]))
    ok[spaced] = False
    # A lone CR (one not right before the LF) ends a row for pyarrow: slow path, set aside.
    cr_pos = np.flatnonzero(buf == _CR)
    ok[np.searchsorted(ends, cr_pos[buf[cr_pos + 1] != _NL])] = False
    codec = decoded.encoding.replace("-sig", "")
    fixed: dict[int, bytes] = {}
    for i in np.flatnonzero(~ok).tolist():  # Python ints: line numbers are int
        raw = data[starts[i] : content_end[i]]
        line = _check_line(raw, codec, width, decoded, first_line + i)
        ok[i] = line is not None
        if line is not None and _SPACED_QUOTE.search(raw):
            fixed[int(i)] = line
    if not ok.any():
        return pa.table({}), len(ends)
    try:
        table = _parse(data, starts, ends, ok, fixed, codec, width, keep)
    except (pa.ArrowInvalid, UnicodeDecodeError):
        # rare path: find the lines the codec cannot read, set them aside, parse again
        for i, pos in _undecodable(data, starts, content_end, ok, codec):
            ok[i] = False
            decoded.bad_lines.append(
                BadLine(first_line + i, f"{pos} バイト目が {decoded.encoding} として読めない")
            )
        if not ok.any():  # every line of the block was undecodable: all quarantined
            return pa.table({}), len(ends)
        table = _parse_or_none(data, starts, ends, ok, fixed, codec, width, keep)
    kept_lines = np.flatnonzero(ok)
    decoded.data_lines += len(kept_lines)
    # pyarrow's own messages quote the offending row: never pass them on (the event log
    # is visible to every UI user)
    if table is None or table.num_rows != len(kept_lines):
        raise SourceFileError(path, f"{first_line}行目以降の区間を CSV として解析できません")
    columns = [_nfkc(table.column(f"c{i}")) for i in keep]
    return pa.table(
        [pa.array(kept_lines + first_line, pa.int64()), *columns],
        names=["_line", *(f"c{i}" for i in keep)],
    ), len(ends)


def _nfkc(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """NFKC, skipped for a column whose bytes are all ASCII (already normal): most ID,
    code and count columns, which would otherwise cost as much as the names."""
    if all(
        c.buffers()[2] is None or not (np.frombuffer(c.buffers()[2], np.uint8) & 0x80).any()
        for c in column.chunks
    ):
        return column
    return pc.utf8_normalize(column, form="NFKC")


def _field_separators(
    buf: np.ndarray, quote_pos: np.ndarray, starts: np.ndarray, ends: np.ndarray
) -> np.ndarray:
    """Commas outside quotes, per line. Every comma is counted by binary search; only the
    few lines that hold quotes are corrected, by the parity of the quotes before each of
    their commas relative to the line's start, so an unbalanced line does not disturb the
    next ones."""
    comma_pos = np.flatnonzero(buf == _COMMA)
    per_line = np.diff(np.searchsorted(comma_pos, ends), prepend=0)
    if not len(quote_pos):
        return per_line
    quoted = np.flatnonzero(np.diff(np.searchsorted(quote_pos, ends), prepend=0) > 0)
    lo = np.searchsorted(comma_pos, starts[quoted])
    counts = per_line[quoted]
    owner = np.repeat(np.arange(len(quoted)), counts)
    index = (
        np.arange(counts.sum())
        - np.repeat(np.cumsum(counts) - counts, counts)
        + np.repeat(lo, counts)
    )
    quotes_before = (
        np.searchsorted(quote_pos, comma_pos[index])
        - np.searchsorted(quote_pos, starts[quoted])[owner]
    )
    per_line[quoted] -= np.bincount(owner, weights=quotes_before & 1, minlength=len(quoted)).astype(
        per_line.dtype
    )
    return per_line


def _parse(
    data: bytes,
    starts: np.ndarray,
    ends: np.ndarray,
    ok: np.ndarray,
    fixed: dict[int, bytes],
    codec: str,
    width: int,
    keep: Sequence[int],
) -> pa.Table:
    kept_lines = np.flatnonzero(ok)
    if fixed:
        data = b"".join(fixed.get(i) or data[starts[i] : ends[i] + 1] for i in kept_lines.tolist())
    elif len(kept_lines) < len(ends):
        runs = np.split(kept_lines, np.flatnonzero(np.diff(kept_lines) != 1) + 1)
        data = b"".join(data[starts[r[0]] : ends[r[-1]] + 1] for r in runs if len(r))
    if codec != "utf-8":
        # Python's own codec, then UTF-8 for pyarrow: twice as fast as pyarrow's transcoding
        # stream (which calls the same codec in small pieces), and the mapping is the same
        data = data.decode(codec).encode("utf-8")
    return pacsv.read_csv(
        io.BytesIO(data),
        read_options=pacsv.ReadOptions(
            column_names=[f"c{i}" for i in range(width)], block_size=1 << 24
        ),
        parse_options=pacsv.ParseOptions(newlines_in_values=False, ignore_empty_lines=False),
        convert_options=pacsv.ConvertOptions(
            include_columns=[f"c{i}" for i in keep],
            column_types={f"c{i}": pa.string() for i in keep},
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        ),
    )


def _parse_or_none(*args: Any) -> pa.Table | None:
    try:
        return _parse(*args)
    except (pa.ArrowInvalid, UnicodeDecodeError):
        return None


def _check_line(raw: bytes, codec: str, width: int, decoded: Decoded, line: int) -> bytes | None:
    """The slow path, for lines with quotes, a wrong comma count or no content: the line
    as canonical CSV in its own codec, or None when it is blank or malformed."""
    if not raw.strip():
        decoded.blank_lines += 1
        return None
    if b"\r" in raw:
        decoded.bad_lines.append(BadLine(line, "行の途中に改行文字 (CR) がある行"))
        return None
    if raw.count(b'"') % 2:
        decoded.bad_lines.append(BadLine(line, '引用符 " の対応が取れていない行'))
        return None
    try:
        text = raw.decode(codec)
    except UnicodeDecodeError as err:
        decoded.bad_lines.append(
            BadLine(line, f"{err.start + 1} バイト目が {decoded.encoding} として読めない")
        )
        return None
    fields = next(csv.reader([text], skipinitialspace=True))
    if len(fields) != width:
        decoded.bad_lines.append(
            BadLine(line, f"列数が見出しと異なる ({len(fields)} 列、見出しは {width} 列)")
        )
        return None
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(fields)
    return out.getvalue().encode(codec)


def _undecodable(
    data: bytes, starts: np.ndarray, ends: np.ndarray, ok: np.ndarray, codec: str
) -> list[tuple[int, int]]:
    """(line index, 1-based byte column) of kept lines the codec cannot decode."""
    try:
        data.decode(codec)
        return []
    except UnicodeDecodeError:
        pass
    bad = []
    for i in np.flatnonzero(ok):
        try:
            data[starts[i] : ends[i]].decode(codec)
        except UnicodeDecodeError as err:
            bad.append((int(i), err.start + 1))
    return bad


def redact(data: bytes, encoding: str, redactions: dict[int, dict[int, str]]) -> bytes:
    """The export with some cells replaced (line -> {column position -> text}), every other
    byte as delivered: what is sealed for reruns once the content scan has hit a value.
    Only the redacted lines are split out; the rest is copied in slices (splitting every
    line of a city's register cost 0.9 s)."""
    codec = encoding.replace("-sig", "")
    ends = np.flatnonzero(np.frombuffer(data, np.uint8) == _NL)
    out, done = [], 0
    for line in sorted(redactions):
        start = int(ends[line - 2]) + 1 if line > 1 else 0
        end = int(ends[line - 1]) if line - 1 < len(ends) else len(data)
        raw = data[start:end]
        ending = b"\r" if raw.endswith(b"\r") else b""
        fields = next(csv.reader([raw.rstrip(b"\r").decode(codec)]))
        for position, text in redactions[line].items():
            fields[position] = text
        cells = io.StringIO()
        csv.writer(cells, lineterminator="").writerow(fields)
        out += [data[done:start], cells.getvalue().encode(codec) + ending]
        done = end
    out.append(data[done:])
    return b"".join(out)

"""Export of the center's review list (確認リスト) for staff, and the access log it leaves.

The list is a suggestion that center staff verify child by child. An export needs the
center key and a stated purpose, and every export appends one line to the center zone's
access log (who, when, which month, why, how many rows; never a row's content).
"""

from __future__ import annotations

import csv
import getpass
import hmac
import json
import os
import re
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb

from kodomo_assets.defs.center.assets import NEW, TABLE, key_check
from kodomo_assets.lib import keys

# key_check lives beside the asset that stores it, so both sides compute the same value
from kodomo_assets.lib.center_store import open_center
from kodomo_assets.lib.paths import kodomo_home, zone_store

FORMATS = {".csv": "csv", ".xlsx": "xlsx"}
HEADERS = ["区分", "順位", "宛名番号", "スコア", "前月スコア", "指標", "理由", "事実の時点"]
JOIN = "／"
MAX_PURPOSE = 200
NOTICE = ("この確認リストは支援の必要性の示唆であり、判定ではありません。"
          "子ども家庭支援センターの職員が一人ずつ確認してください。")
_MONTH = re.compile(r"(\d{4})-(\d{2})")


class ExportError(Exception):
    """A refused export. The message is Japanese and never quotes a row of the list."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code


class AccessLogError(ValueError):
    """The access log has a line that is not a JSON object."""


@dataclass(frozen=True)
class ExportResult:
    month: str
    rows: int
    format: str
    path: Path
    exported_at: str
    notice: str


def access_log_path() -> Path:
    return kodomo_home() / "zones" / "center" / "access_log.jsonl"


def append_access_log(*, month: str, purpose: str, rows: int, format: str, file: str,
                      user: str | None = None, time: str | None = None) -> dict[str, Any]:
    """Append one export record (0600 file, one write per line so concurrent exports
    don't interleave) and return it."""
    entry = {
        "user": user or getpass.getuser(),
        "time": time or _now(),
        "month": month,
        "purpose": purpose,
        "rows": rows,
        "format": format,
        "file": Path(file).name,  # the name only: a full path can reveal a person's folder
    }
    path = access_log_path()
    _private_dir(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.write(fd, (json.dumps(entry, ensure_ascii=False) + "\n").encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
    return entry


def read_access_log(month: str | None = None) -> list[dict[str, Any]]:
    """Every export record, oldest first (optionally of one month). A damaged line raises,
    so a report never silently leaves an export out."""
    path = access_log_path()
    if not path.exists():
        return []
    entries = []
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                entry = None
            if not isinstance(entry, dict):
                raise AccessLogError(f"{path.name} の {n} 行目が記録として読めません")
            if month is None or entry.get("month") == month:
                entries.append(entry)
    return entries


def export_review_list(month: str, out: Path, purpose: str) -> ExportResult:
    """Write the month's review list to `out` (.csv or .xlsx) and log the export."""
    purpose = _check_arguments(month, out, purpose)
    fmt = FORMATS[out.suffix.lower()]
    try:
        center_key = keys.load(keys.CENTER)
    except keys.KeyProblem as err:
        raise ExportError(f"センター鍵を読めないため書き出しません: {err}", exit_code=2) from None
    rows = _read_list(month, center_key)
    exported_at = _now()
    info = [("内容", f"確認リスト（基準月 {month}）"), ("注意", NOTICE), ("基準月", month),
            ("書き出し日時", exported_at), ("利用目的", purpose), ("件数", f"{len(rows)} 件")]
    _write_atomic(out, (lambda p: _write_csv(p, rows)) if fmt == "csv"
                  else (lambda p: _write_xlsx(p, rows, info)),
                  log=lambda: append_access_log(month=month, purpose=purpose, rows=len(rows),
                                                format=fmt, file=out.name, time=exported_at))
    notice = f"注意: {NOTICE}（基準月 {month}、書き出し {exported_at}、利用目的: {purpose}）"
    if fmt == "csv":
        notice += ("\nExcel で開くときは、宛名番号の先頭の 0 が消えないよう「データ」→"
                   "「テキストまたは CSV から」で宛名番号の列を文字列として読み込んでください。")
    return ExportResult(month=month, rows=len(rows), format=fmt, path=out,
                        exported_at=exported_at, notice=notice)


def _check_arguments(month: str, out: Path, purpose: str) -> str:
    m = _MONTH.fullmatch(month.strip())
    if not m or not 1 <= int(m.group(2)) <= 12:
        raise ExportError(f"--month は YYYY-MM の形式で指定してください（{month!r}）", exit_code=2)
    purpose = " ".join(purpose.split())  # one line in the log, whatever was typed
    if not purpose:
        raise ExportError("--purpose に利用目的を書いてください（空欄では書き出せません）",
                          exit_code=2)
    if len(purpose) > MAX_PURPOSE:
        raise ExportError(f"--purpose は {MAX_PURPOSE} 文字以内で書いてください", exit_code=2)
    if out.suffix.lower() not in FORMATS:
        raise ExportError(f"--out の拡張子は .csv か .xlsx にしてください（{out.name}）",
                          exit_code=2)
    if out.is_dir():
        raise ExportError(f"--out {out} はフォルダです。ファイル名を指定してください", exit_code=2)
    if not out.parent.is_dir():
        raise ExportError(f"出力先フォルダ {out.parent} がありません", exit_code=2)
    return purpose


def _read_list(month: str, center_key: bytes) -> list[list[Any]]:
    path = zone_store("center", month, TABLE)
    if not path.exists():
        raise ExportError(f"基準月 {month} の確認リストがありません。先に center/review_list を "
                          f"{month} について実体化してください。")
    try:
        with open_center(path, center_key) as con:
            return _rows(con, month, center_key)
    except PermissionError:
        raise ExportError(f"センター鍵が一致しません。基準月 {month} の確認リストは暗号化されており、"
                          "正しいセンター鍵でなければ開けません（書き出していません）。", exit_code=2) from None


def _rows(con: duckdb.DuckDBPyConnection, month: str, center_key: bytes) -> list[list[Any]]:
    try:
        (stored,) = con.execute("SELECT key_check FROM zone_key_check").fetchone()
    except (duckdb.CatalogException, TypeError):
        stored = None
    if stored is None or not hmac.compare_digest(str(stored), key_check(center_key)):
        raise ExportError(f"センター鍵が基準月 {month} の確認リストを作成した鍵と一致しません。"
                          "正しいセンター鍵を指定してください（書き出していません）。", exit_code=2)
    # the new suggestions first, each section in rank order
    return [list(r) for r in con.execute(f"""
        SELECT section, rank, atena_no, round(score, 3), round(prev_score, 3),
               array_to_string(indicators, '{JOIN}'), array_to_string(reasons, '{JOIN}'),
               array_to_string(facts_asof, '{JOIN}')
        FROM {TABLE} ORDER BY section <> ?, section, rank""", [NEW]).fetchall()]


def _write_atomic(out: Path, write: Callable[[Path], None], log: Callable[[], object]) -> None:
    """Temp file (0600) in the target folder, logged, then renamed: a reader sees no half
    file, and no export becomes visible without its log line."""
    fd, tmp_name = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        os.chmod(tmp, 0o600)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        log()
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _write_csv(path: Path, rows: Sequence[Sequence[Any]]) -> None:
    # BOM and CRLF: Excel opens UTF-8 correctly only with the BOM
    with open(path, "w", encoding="utf-8-sig", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\r\n")
        writer.writerow(HEADERS)
        writer.writerows(["" if v is None else v for v in r] for r in rows)


def _write_xlsx(path: Path, rows: Sequence[Sequence[Any]], info: Sequence[tuple[str, str]]) -> None:
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font

    wb = Workbook()
    about = wb.active
    about.title = "説明"
    for label, value in info:
        about.append([label, value])
        about.cell(about.max_row, 1).font = Font(bold=True)
    about.column_dimensions["A"].width = 14
    about.column_dimensions["B"].width = 90
    for row in about.iter_rows(min_col=2, max_col=2):
        row[0].alignment = Alignment(wrap_text=True, vertical="top")
    sheet = wb.create_sheet("確認リスト")
    sheet.append(HEADERS)
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    atena = HEADERS.index("宛名番号") + 1
    for r in rows:
        sheet.append(list(r))
        for cell in sheet[sheet.max_row]:
            if cell.data_type == "f":  # text that starts with "=" stays text, never a formula
                cell.data_type = "s"
        sheet.cell(sheet.max_row, atena).number_format = "@"  # keep leading zeros
    sheet.freeze_panes = "A2"
    for letter, width in zip("ABCDEFGH", (16, 6, 13, 8, 10, 40, 80, 30), strict=True):
        sheet.column_dimensions[letter].width = width
    wb.save(path)


def _private_dir(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)


def _now() -> str:
    return datetime.now().astimezone().isoformat(timespec="seconds")

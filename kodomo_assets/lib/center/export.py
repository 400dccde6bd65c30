"""The center's own commands: export of the review list (確認リスト) for staff, import of the
staff's verification results, and the access log both leave.

Both need the center's private keys (KODOMO_CENTER_KEY_DIR); the pipeline never holds them.
The list is a suggestion that center staff verify child by child. An export needs a
stated purpose, and every export and import appends one signed line to the center zone's
access log (who by OS account, when, which month, why, how many rows; never a row's
content), chained to the line before, so a deleted or edited line is found.
"""

from __future__ import annotations

import csv
import fcntl
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import duckdb

from kodomo_assets.lib.center import feedback as fb
from kodomo_assets.lib.center.review_list import NEW, TABLE
from kodomo_assets.lib.ingest.decode import SourceFileError
from kodomo_assets.lib.platform.accounts import os_account
from kodomo_assets.lib.platform.crypto import sign, verify
from kodomo_assets.lib.platform.keys import CenterPrivate, CenterPublic, KeyProblem
from kodomo_assets.lib.platform.storage import KodomoStorage, StoreMissing
from kodomo_assets.lib.policy.approval import (
    ApprovalPeriodError,
    PolicyError,
    load_purposes,
    load_verification_methods,
)

FORMATS = {".csv": "csv", ".xlsx": "xlsx"}
HEADERS = [
    "区分",
    "順位",
    "宛名番号",
    "スコア",
    "前月スコア",
    "指標",
    "理由",
    "事実の時点",
    "情報の出所（課）",
    "前回の確認",
]
CHECK_HEADERS = ["確認結果", "確認日", "確認の区分"]  # filled in by staff, read back by the import
LIST_SHEET = "確認リスト"
TOKYO = ZoneInfo("Asia/Tokyo")
JOIN = "／"
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
NOTICE = (
    "この確認リストは支援の必要性の示唆であり、判定ではありません。"
    "子ども家庭支援センターの職員が一人ずつ確認してください。"
)
GENESIS = "0" * 64
_MONTH = re.compile(r"(\d{4})-(\d{2})")


class ExportError(Exception):
    """A refused export or import. The message is Japanese and never quotes a row."""

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


@dataclass(frozen=True)
class ImportResult:
    month: str
    rows: int
    path: Path
    refused: list[
        tuple[int | str, str]
    ]  # line (or sheet, row, column), reason: the center's terminal


def access_log_path(storage: KodomoStorage) -> Path:
    return storage.home_path / "zones" / "center" / "access_log.jsonl"


def _line_hash(line: bytes) -> str:
    return hashlib.sha256(line.rstrip(b"\n")).hexdigest()


def append_access_log(
    storage: KodomoStorage,
    private: CenterPrivate,
    *,
    action: str,
    month: str,
    rows: int,
    file: str,
    purpose: str = "",
    format: str = "",
    time: str | None = None,
) -> dict[str, Any]:
    """Append one signed record chained to the last one (0600 file, one write per line)."""
    path = access_log_path(storage)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # two exports at once still form one chain
        with open(path, "rb") as fh:
            lines = [ln for ln in fh.read().split(b"\n") if ln.strip()]
        entry = {
            "action": action,
            "user": os_account(),
            "time": time or _now(),
            "month": month,
            "purpose": purpose,
            "rows": rows,
            "format": format,
            "file": Path(file).name,
            # where the copy is, kept in the center zone for the purge's list of copies to destroy
            "path": str(Path(file).resolve()),
            "prev": _line_hash(lines[-1]) if lines else GENESIS,
            "signer": private.public().fingerprint,
        }
        entry["signature"] = sign(private.signing, _canonical(entry))
        os.write(fd, (json.dumps(entry, ensure_ascii=False) + "\n").encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
    return entry


def _canonical(entry: dict[str, Any]) -> bytes:
    return json.dumps(
        {k: v for k, v in entry.items() if k != "signature"},
        ensure_ascii=False,
        sort_keys=True,
        separators=(",", ":"),
    ).encode()


def read_access_log(storage: KodomoStorage, month: str | None = None) -> list[dict[str, Any]]:
    """Every record, oldest first (optionally of one month). A damaged line raises, so a
    report never silently leaves an export out."""
    path = access_log_path(storage)
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


def verify_access_log(storage: KodomoStorage, public: CenterPublic) -> int | None:
    """The number of the first line that breaks the chain or its signature (a deleted,
    edited, inserted or forged line), or None when every line verifies."""
    path = access_log_path(storage)
    if not path.exists():
        return None
    prev = GENESIS
    for n, raw in enumerate(path.read_bytes().split(b"\n"), start=1):
        if not raw.strip():
            continue
        try:
            entry = json.loads(raw)
        except json.JSONDecodeError:
            return n
        key = public.signing_key(str(entry.get("signer"))) if isinstance(entry, dict) else None
        if (
            key is None
            or entry.get("prev") != prev
            or not verify(key, _canonical(entry), str(entry.get("signature", "")))
        ):
            return n
        prev = _line_hash(raw)
    return None


def _open_list(
    storage: KodomoStorage, private: CenterPrivate, month: str
) -> AbstractContextManager[duckdb.DuckDBPyConnection]:
    path = storage.zone_store("center", month, TABLE)
    if not path.exists():
        raise ExportError(
            f"基準月 {month} の確認リストがありません。先に center/review_list を "
            f"{month} について実体化してください。"
        )
    try:
        return storage.open_as_center(path, private)
    except (KeyProblem, StoreMissing) as err:
        raise ExportError(f"基準月 {month} の確認リストを開けません: {err}", exit_code=2) from None


def export_review_list(
    storage: KodomoStorage, private: CenterPrivate, month: str, out: Path, purpose: str
) -> ExportResult:
    """Write the month's review list to `out` (.csv or .xlsx) and log the export."""
    purpose = _check_arguments(month, out, purpose)
    in_force(storage, month)
    fmt = FORMATS[out.suffix.lower()]
    try:
        with _open_list(storage, private, month) as con:
            rows = _rows(con)
    except KeyProblem as err:
        raise ExportError(f"確認リストを開けません: {err}", exit_code=2) from None
    exported_at = _now()
    info = [
        ("内容", f"確認リスト（基準月 {month}）"),
        ("注意", NOTICE),
        ("基準月", month),
        ("書き出し日時", exported_at),
        ("利用目的", f"{purpose}（{load_purposes()[purpose]}）"),
        ("件数", f"{len(rows)} 件"),
    ]
    _write_atomic(
        out,
        (lambda p: _write_csv(p, rows)) if fmt == "csv" else (lambda p: _write_xlsx(p, rows, info)),
        log=lambda: append_access_log(
            storage,
            private,
            action="export",
            month=month,
            purpose=purpose,
            rows=len(rows),
            format=fmt,
            file=str(out),
            time=exported_at,
        ),
    )
    notice = f"注意: {NOTICE}（基準月 {month}、書き出し {exported_at}、利用目的: {purpose}）"
    if fmt == "csv":
        notice += (
            "\nExcel で開くときは、宛名番号の先頭の 0 が消えないよう「データ」→"
            "「テキストまたは CSV から」で宛名番号の列を文字列として読み込んでください。"
        )
    return ExportResult(
        month=month, rows=len(rows), format=fmt, path=out, exported_at=exported_at, notice=notice
    )


@dataclass
class Returned:
    """One result as staff returned it, and where it was (for a refusal's message)."""

    where: int | str  # a CSV line number, or "確認リスト 5行 I列（確認結果）"
    atena: str
    list_month: str
    result: str
    shown: tuple[int, float] | None = None  # rank and score as the workbook showed them
    checked_on: str | None = None
    method: str | None = None


def _returned_csv(source: Path, month: str) -> tuple[list[Returned], list[tuple[int | str, str]]]:
    found = fb.read_kakunin(source, month)
    return [Returned(line, atena, m, result) for line, atena, m, result in found.rows], list(
        found.refused
    )


def _cell(row: int, header: str) -> str:
    column = chr(ord("A") + [*HEADERS, *CHECK_HEADERS].index(header))
    return f"{LIST_SHEET} {row}行 {column}列（{header}）"


def _returned_xlsx(source: Path, month: str) -> tuple[list[Returned], list[tuple[int | str, str]]]:
    """The exported workbook with the three verification columns filled in. A row left blank
    or 未確認 is not a result; every other row is checked, and a bad one is refused with its
    sheet, row and column (never its value)."""
    from openpyxl import load_workbook

    try:
        book = load_workbook(source, read_only=True, data_only=True)
        about = {r[0]: r[1] for r in book["説明"].iter_rows(values_only=True) if r and r[0]}
        sheet = book[LIST_SHEET]
    except (KeyError, OSError, ValueError):
        raise ExportError(
            f"{source.name}: 書き出した確認リストの Excel ファイルとして読めません", exit_code=2
        ) from None
    if about.get("基準月") != month:
        raise ExportError(
            f"{source.name}: 基準月 {month} の確認リストではありません（説明シートの基準月）",
            exit_code=2,
        )
    rows = sheet.iter_rows(values_only=True)
    if list(next(rows, ()))[: len(HEADERS) + 3] != [*HEADERS, *CHECK_HEADERS]:
        raise ExportError(
            f"{source.name}: {LIST_SHEET} シートの見出しが書き出したときと違います", exit_code=2
        )
    methods, first = (
        load_verification_methods(),
        datetime.strptime(month + "-01", "%Y-%m-%d").date(),
    )
    today = datetime.now(TOKYO).date()
    out: list[Returned] = []
    refused: list[tuple[int | str, str]] = []
    for n, values in enumerate(rows, start=2):
        v: dict[str, Any] = dict(zip([*HEADERS, *CHECK_HEADERS], values, strict=False))
        result = str(v.get("確認結果") or "").strip()
        if result in ("", fb.UNCHECKED):
            continue
        day, method = v.get("確認日"), str(v.get("確認の区分") or "").strip()
        day = day.date() if isinstance(day, datetime) else day
        atena = str(v.get("宛名番号") or "").strip()
        problem = (
            ("確認結果", "確認結果が 該当・非該当・既知 のいずれでもない")
            if result not in fb.RESULTS
            else ("宛名番号", "宛名番号が数字10桁でない")
            if not re.fullmatch(r"[0-9]{10}", atena)
            else ("確認日", "確認日が日付でない")
            if not isinstance(day, date)
            else ("確認日", f"確認日が処理の期間（{first.isoformat()}〜今日）の外")
            if not first <= day <= today
            else ("確認の区分", "確認の区分が一覧にない")
            if method not in methods
            else None
        )
        if problem:
            refused.append((_cell(n, problem[0]), problem[1]))
            continue
        try:
            shown = (int(v["順位"]), round(float(v["スコア"]), 3))
        except (TypeError, ValueError):
            shown = (-1, -1.0)
        assert isinstance(day, date)  # a row without a date has a problem above
        out.append(
            Returned(_cell(n, "宛名番号"), atena, month, result, shown, day.isoformat(), method)
        )
    return out, refused


def import_feedback(
    storage: KodomoStorage, private: CenterPrivate, month: str, source: Path
) -> ImportResult:
    """The returned workbook (or kakunin.csv: 宛名番号,基準月,確認結果) -> a signed file of
    pseudonyms in the month's inbox folder. Rows whose child is not on the named month's
    list, or whose rank or score was changed, are refused, with where they were, on this
    terminal."""
    if not _MONTH.fullmatch(month.strip()):
        raise ExportError(f"--month は YYYY-MM の形式で指定してください（{month!r}）", exit_code=2)
    in_force(storage, month)
    try:
        returned, refused = (_returned_xlsx if source.suffix.lower() == ".xlsx" else _returned_csv)(
            source, month
        )
    except (SourceFileError, FileNotFoundError) as err:
        raise ExportError(str(err), exit_code=2) from None
    lists: dict[str, dict[str, dict[str, Any]]] = {}
    for list_month in sorted({r.list_month for r in returned}):
        try:
            with _open_list(storage, private, list_month) as con:
                lists[list_month] = {
                    row[0]: dict(
                        zip(
                            ("atena_no", "child_token", "section", "rank", "score", "indicators"),
                            row,
                            strict=True,
                        )
                    )
                    for row in con.execute(
                        f"SELECT atena_no, child_token, section, rank, score, coalesce(indicators, []) "
                        f"FROM {TABLE} ORDER BY section <> ?, rank DESC",
                        [NEW],
                    ).fetchall()
                }
        except ExportError as err:
            if err.exit_code == 2:
                raise
            lists[list_month] = {}
            refused += [(r.where, fb.NO_LIST) for r in returned if r.list_month == list_month]
    rows = []
    for r in returned:
        listed = lists[r.list_month].get(r.atena)
        if listed is None:
            if lists[r.list_month]:
                refused.append((r.where, fb.NOT_LISTED))
            continue
        if r.shown is not None and r.shown != (listed["rank"], round(listed["score"], 3)):
            refused.append((r.where, "順位またはスコアが書き出したときと違う"))
            continue
        rows.append(
            {
                "child_token": listed["child_token"],
                "list_month": r.list_month,
                "result": r.result,
                "section": listed["section"],
                "rank": listed["rank"],
                "score": listed["score"],
                "indicators": list(listed["indicators"]),
                **({"checked_on": r.checked_on, "method": r.method} if r.checked_on else {}),
            }
        )
    refused.sort(key=lambda x: (isinstance(x[0], str), x[0]))
    counts: dict[str, int] = {}
    for _, reason in refused:
        counts[reason] = counts.get(reason, 0) + 1
    doc = fb.signed_document(
        month, rows, counts, os_account(), _now(), private.signing, private.public().fingerprint
    )
    target = storage.inbox_path / month / fb.FEEDBACK_FILE
    target.parent.mkdir(parents=True, exist_ok=True)
    _write_atomic(
        target,
        lambda p: p.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8"),
        log=lambda: append_access_log(
            storage,
            private,
            action="import",
            month=month,
            rows=len(rows),
            format=source.suffix.lower().lstrip("."),
            file=str(source),
        ),
    )
    return ImportResult(month=month, rows=len(rows), path=target, refused=refused)


def in_force(storage: KodomoStorage, month: str) -> None:
    """An export or an import of results happens only while a period covers both the data
    month and today (the same rule as every asset)."""
    try:
        storage.check_settings()
        storage.approval().in_force(month, storage.today())
    except (ApprovalPeriodError, PolicyError) as err:
        raise ExportError(str(err), exit_code=2) from None


def _check_arguments(month: str, out: Path, purpose: str) -> str:
    m = _MONTH.fullmatch(month.strip())
    if not m or not 1 <= int(m.group(2)) <= 12:
        raise ExportError(f"--month は YYYY-MM の形式で指定してください（{month!r}）", exit_code=2)
    codes = load_purposes()
    purpose = purpose.strip()
    if purpose not in codes:  # a code, never free text: a sentence can name a person
        raise ExportError(
            "--purpose には利用目的コード（data/policy/purposes.csv）のいずれかを指定して"
            "ください: " + "、".join(codes),
            exit_code=2,
        )
    if out.suffix.lower() not in FORMATS:
        raise ExportError(
            f"--out の拡張子は .csv か .xlsx にしてください（{out.name}）", exit_code=2
        )
    if out.is_dir():
        raise ExportError(f"--out {out} はフォルダです。ファイル名を指定してください", exit_code=2)
    if not out.parent.is_dir():
        raise ExportError(f"出力先フォルダ {out.parent} がありません", exit_code=2)
    return purpose


def _rows(con: duckdb.DuckDBPyConnection) -> list[list[Any]]:
    # the new suggestions first, each section in rank order
    return [
        list(r)
        for r in con.execute(
            f"""
        SELECT section, rank, atena_no, round(score, 3), round(prev_score, 3),
               array_to_string(indicators, '{JOIN}'), array_to_string(reasons, '{JOIN}'),
               array_to_string(facts_asof, '{JOIN}'), array_to_string(fact_sources, '{JOIN}'),
               CASE WHEN prev_result IS NOT NULL THEN prev_result || '（' || prev_result_month || '）' END
        FROM {TABLE} ORDER BY section <> ?, section, rank""",
            [NEW],
        ).fetchall()
    ]


def _write_atomic(out: Path, write: Callable[[Path], object], log: Callable[[], object]) -> None:
    """Temp file (0600) in the target folder, logged, then renamed: a reader sees no half
    file, and no export becomes visible without its log line."""
    fd, tmp_name = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        log()
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def inert(value: Any) -> Any:
    """A text cell that a spreadsheet would run as a formula (=, +, -, @) keeps a leading
    apostrophe, so it is shown, never evaluated (CSV injection)."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return "" if value is None else value


def _write_csv(path: Path, rows: Sequence[Sequence[Any]]) -> None:
    # BOM and CRLF: Excel opens UTF-8 correctly only with the BOM
    with open(path, "w", encoding="utf-8-sig", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\r\n")
        writer.writerow(HEADERS)
        writer.writerows([inert(v) for v in r] for r in rows)


def _write_xlsx(path: Path, rows: Sequence[Sequence[Any]], info: Sequence[tuple[str, str]]) -> None:
    """The list as staff work in it and print it for case meetings: a filter on the header,
    frozen panes, wrapped reasons, landscape pages one page wide with the header and the
    注意 on every page, and the three verification columns they fill in (dropdowns and a
    date, no free text) for `kodomo feedback-import`."""
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font
    from openpyxl.worksheet.datavalidation import DataValidation
    from openpyxl.worksheet.worksheet import Worksheet

    wb = Workbook()
    about = wb.active
    assert isinstance(about, Worksheet)  # a new workbook's one sheet
    about.title = "説明"
    for label, value in info:
        about.append([label, value])
        about.cell(about.max_row, 1).font = Font(bold=True)
    about.column_dimensions["A"].width = 14
    about.column_dimensions["B"].width = 90
    for row in about.iter_rows(min_col=2, max_col=2):
        row[0].alignment = Alignment(wrap_text=True, vertical="top")
    sheet = wb.create_sheet(LIST_SHEET)
    sheet.append([*HEADERS, *CHECK_HEADERS])
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    atena = HEADERS.index("宛名番号") + 1
    for r in rows:
        sheet.append(list(r))
        sheet.cell(sheet.max_row, atena).number_format = "@"  # keep leading zeros
        for col in (6, 7, 8, 9):  # 指標, 理由, 事実の時点, 情報の出所
            sheet.cell(sheet.max_row, col).alignment = Alignment(wrap_text=True, vertical="top")
        sheet.cell(sheet.max_row, len(HEADERS) + 2).number_format = "yyyy-mm-dd"
    last = max(sheet.max_row, 2)
    result, day, method = (
        f"{chr(ord('A') + len(HEADERS) + i)}2:{chr(ord('A') + len(HEADERS) + i)}{last}"
        for i in range(3)
    )
    checks = [
        DataValidation(
            type="list",
            formula1='"' + ",".join(fb.CHECK_RESULTS) + '"',
            allow_blank=True,
            error="該当・非該当・既知・未確認から選んでください",
            showErrorMessage=True,
        ),
        DataValidation(
            type="date",
            operator="greaterThan",
            formula1="DATE(2000,1,1)",
            allow_blank=True,
            error="日付を入れてください（自由記述は入れません）",
            showErrorMessage=True,
        ),
        DataValidation(
            type="list",
            formula1='"' + ",".join(load_verification_methods()) + '"',
            allow_blank=True,
            error="確認の区分は一覧から選んでください",
            showErrorMessage=True,
        ),
    ]
    for check, where in zip(checks, (result, day, method), strict=True):
        sheet.add_data_validation(check)
        check.add(where)
    sheet.freeze_panes = "A2"
    sheet.auto_filter.ref = f"A1:{chr(ord('A') + len(HEADERS) + 2)}{last}"
    for letter, width in zip(
        "ABCDEFGHIJKLM", (16, 6, 13, 8, 10, 30, 60, 24, 30, 16, 10, 12, 12), strict=True
    ):
        sheet.column_dimensions[letter].width = width
    sheet.page_setup.orientation = "landscape"
    sheet.page_setup.fitToWidth, sheet.page_setup.fitToHeight = 1, 0
    sheet.sheet_properties.pageSetUpPr.fitToPage = True
    sheet.print_title_rows = "1:1"
    sheet.oddHeader.center.text = (
        "確認リスト（基準月 " + dict(info)["基準月"] + "）　注意: " + NOTICE
    )
    sheet.oddHeader.center.size = 8
    sheet.oddFooter.center.text = "&P / &N ページ　書き出し " + dict(info)["書き出し日時"]
    for ws in wb.worksheets:  # every cell of every sheet: text stays text, never a formula
        for row in ws.iter_rows():
            for cell in row:
                if cell.data_type == "f":
                    cell.data_type = "s"
    wb.save(path)


def _now() -> str:
    """Staff and the council read 日本時間: every time the center's commands record or show."""
    return datetime.now(TOKYO).isoformat(timespec="seconds")

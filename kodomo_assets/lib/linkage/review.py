"""The link-review workflow for the steward the city designates (照合の確認).

`kodomo link-review` writes a month's uncertain pairs (`link_review`) with how far each
compared field agrees, never the field itself; with `--all`, every link of the month for an
audit against an independent register extract. The steward returns 同一 / 別人 in the same
file, and `kodomo link-decisions` checks it and stores the decisions (lib/linkage/decisions.py).
Every export and every import appends a line to a chained log keyed with the storage key
(`logs/link_review_log.jsonl`), as the center's commands do to the access log. Both need
the approval in force for the month and today. Messages name files, lines and columns,
never a value.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import duckdb

from kodomo_assets.lib.center.export import TOKYO, ExportError, _write_atomic, in_force, inert
from kodomo_assets.lib.linkage import decisions as ld
from kodomo_assets.lib.linkage.allowed import approved_inputs
from kodomo_assets.lib.linkage.link import REASON_NOT_FOUND
from kodomo_assets.lib.linkage.link import STORE as LINK_STORE
from kodomo_assets.lib.platform.accounts import os_account
from kodomo_assets.lib.platform.chained_log import ChainedLog
from kodomo_assets.lib.platform.storage import KodomoStorage, StoreMissing
from kodomo_assets.lib.policy.approval import load_purposes
from kodomo_assets.lib.registry import load_registry

FIELDS = {"name_kana": "氏名カナ", "birth_date": "生年月日", "sex": "性別", "address": "住所"}
REVIEW_HEADERS = [
    "基準月",
    "学籍番号",
    "宛名番号",
    "理由",
    *(f"一致度（{v}）" for v in FIELDS.values()),
    "照合の重み",
    "一致確率",
    "判断",
]
ALL_HEADERS = ["基準月", "学籍番号", "宛名番号", "連携方法", "照合の重み"]
DECISION = "判断"
NOT_USED, NO_RECORD = "照合に使わない", "住民記録なし"
_MONTH = re.compile(r"\d{4}-(0[1-9]|1[0-2])")


@dataclass(frozen=True)
class Written:
    month: str
    rows: int
    path: Path


@dataclass(frozen=True)
class Recorded:
    month: str
    same: int
    different: int
    superseded: int  # earlier decisions of the month on the same pairs, replaced


def review_log(storage: KodomoStorage) -> ChainedLog:
    return ChainedLog(
        storage.log_path("link_review_log.jsonl"), storage.storage_mac_key("link-review-log")
    )


def _log(
    storage: KodomoStorage,
    action: str,
    month: str,
    rows: int,
    file: Path,
    purpose: str = "",
    **counts: int,
) -> None:
    review_log(storage).append(
        {
            "action": action,
            "user": os_account(),
            "time": _now(),
            "month": month,
            "purpose": purpose,
            "rows": rows,
            "format": "csv",
            "file": file.name,
            "path": str(file.resolve()),
            **counts,
        }
    )


def _now() -> str:
    return datetime.now(TOKYO).isoformat(timespec="seconds")


def _check(
    storage: KodomoStorage, month: str, out: Path | None = None, purpose: str | None = None
) -> None:
    if not _MONTH.fullmatch(month):
        raise ExportError(f"--month は YYYY-MM の形式で指定してください（{month!r}）", exit_code=2)
    if purpose is not None and purpose not in load_purposes():  # a code, never free text
        raise ExportError(
            "--purpose には利用目的コード（data/policy/purposes.csv）のいずれかを指定して"
            "ください: " + "、".join(load_purposes()),
            exit_code=2,
        )
    if out is not None and (
        out.suffix.lower() != ".csv" or not out.parent.is_dir() or out.is_dir()
    ):
        raise ExportError(
            f"--out には既存のフォルダの中の .csv ファイルを指定してください（{out.name}）",
            exit_code=2,
        )
    in_force(storage, month)


def _attach_links(storage: KodomoStorage, con: duckdb.DuckDBPyConnection, month: str) -> None:
    try:
        storage.attach(con, "lk", storage.zone_store("linkage", month, LINK_STORE))
    except StoreMissing as err:
        raise ExportError(
            f"基準月 {month} の連携結果がありません（linkage/pupil_links を先に実体化してください）: "
            f"{err}",
            exit_code=2,
        ) from None


def _open_inputs(
    storage: KodomoStorage, con: duckdb.DuckDBPyConnection, month: str
) -> frozenset[str]:
    """The month's linkage outputs as `lk`, and the views `pupils` and `residents` exactly as
    the linkage built them (the approval's fields only). Returns the compared fields."""
    approval = storage.approval().in_force(month, storage.today())
    registry = load_registry()
    _attach_links(storage, con, month)
    for ds in ("jumin", "gakurei"):
        dept = registry.datasets[ds].department.code
        try:
            storage.attach(con, dept, storage.department_store(dept, month))
        except StoreMissing as err:
            raise ExportError(
                f"基準月 {month} の部署別ストアを開けません: {err}", exit_code=2
            ) from None
    return approved_inputs(con, approval)


# --- agreement levels: how far a field agrees, never what it holds -------------------------


def _distance(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1]


def level(field: str, a: Any, b: Any) -> str:
    if a is None or b is None:
        return "両方空欄" if a is None and b is None else "片方空欄"
    if field == "name_kana":
        if a.replace(" ", "") == b.replace(" ", ""):
            return "一致"
        (sa, _, ga), (sb, _, gb) = a.partition(" "), b.partition(" ")
        if ga and gb and sa == sb:
            return "姓のみ一致"
        if ga and gb and ga == gb:
            return "名のみ一致"
        return (
            "近い（1〜2文字違い）"
            if _distance(a.replace(" ", ""), b.replace(" ", "")) <= 2
            else "不一致"
        )
    if field == "birth_date":
        if a == b:
            return "一致"
        if isinstance(a, date) and isinstance(b, date):
            if (a.year, a.month, a.day) == (b.year, b.day, b.month):
                return "月日の入れ替わり"
            if sum((a.year == b.year, a.month == b.month, a.day == b.day)) == 2:
                return "年・月・日のうち一つ違い"
        return "不一致"
    if field == "address" and a != b and a.split(" ")[0] == b.split(" ")[0]:
        return "建物・部屋番号以外が一致"
    return "一致" if a == b else "不一致"


def _review_rows(
    con: duckdb.DuckDBPyConnection, month: str, fields: frozenset[str]
) -> list[list[Any]]:
    cols = ", ".join(f"p.{f}, r.{f}" for f in FIELDS)
    rows = con.execute(f"""
        SELECT l.pupil_no, l.atena_no, l.reason, round(l.match_weight, 2), round(l.match_probability, 3),
               r.atena_no IS NOT NULL AS found, {cols}
        FROM lk.link_review l
        LEFT JOIN pupils p USING (pupil_no)
        LEFT JOIN (SELECT * FROM residents QUALIFY count(*) OVER (PARTITION BY atena_no) = 1) r
               ON r.atena_no = l.atena_no
        ORDER BY l.pupil_no, l.atena_no""").fetchall()
    out = []
    for pupil, atena, reason, weight, prob, found, *values in rows:
        levels = [
            NOT_USED
            if f not in fields
            else NO_RECORD
            if not found
            else level(f, values[2 * i], values[2 * i + 1])
            for i, f in enumerate(FIELDS)
        ]
        out.append([month, pupil, atena, reason, *levels, weight, prob, ""])
    return out


def export_review(
    storage: KodomoStorage, month: str, out: Path, purpose: str, every_link: bool = False
) -> Written:
    """The month's pairs for review (or, with `every_link`, every link) as a CSV for the
    steward, logged before the file appears."""
    purpose = purpose.strip()
    _check(storage, month, out, purpose)
    con = storage.connect()
    try:
        if every_link:
            _attach_links(storage, con, month)
            headers, rows = (
                ALL_HEADERS,
                [
                    [month, *r]
                    for r in con.execute(
                        "SELECT pupil_no, atena_no, method, round(match_weight, 2) FROM lk.pupil_link ORDER BY pupil_no"
                    ).fetchall()
                ],
            )
        else:
            headers, rows = (
                REVIEW_HEADERS,
                _review_rows(con, month, _open_inputs(storage, con, month)),
            )
    finally:
        con.close()

    def write(path: Path) -> None:
        with open(path, "w", encoding="utf-8-sig", newline="") as fh:  # BOM: Excel reads UTF-8
            writer = csv.writer(fh, lineterminator="\r\n")
            writer.writerow(headers)
            writer.writerows([inert(v) for v in r] for r in rows)

    action = "link-review-all" if every_link else "link-review"
    _write_atomic(out, write, log=lambda: _log(storage, action, month, len(rows), out, purpose))
    return Written(month, len(rows), out)


# --- decisions coming back -----------------------------------------------------------------


def _read_csv(source: Path) -> list[list[str]]:
    try:
        raw = source.read_bytes()
    except OSError:
        raise ExportError(f"{source.name}: ファイルを読めません", exit_code=2) from None
    for encoding in ("utf-8-sig", "cp932"):
        try:
            return list(csv.reader(io.StringIO(raw.decode(encoding), newline="")))
        except (UnicodeDecodeError, csv.Error):
            continue
    raise ExportError(f"{source.name}: UTF-8 とも CP932 とも読めません", exit_code=2)


def _norm(value: str) -> str:
    return unicodedata.normalize("NFKC", value).strip()


def read_decisions_file(
    source: Path, month: str, listed: dict[tuple[str, str], str]
) -> list[tuple[str, str, str]]:
    """(学籍番号, 宛名番号, 判断) of every decided line. Any problem refuses the whole file,
    each named by line and column, never by value."""
    rows = _read_csv(source)
    header = [_norm(h) for h in rows[0]] if rows else []
    missing = [h for h in ("学籍番号", "宛名番号", DECISION) if h not in header]
    if missing:
        raise ExportError(
            f"{source.name} 1行目: 見出しに {'・'.join(missing)} がありません", exit_code=2
        )
    col = {h: header.index(h) for h in header}

    def where(n: int, name: str) -> str:
        return f"{source.name} {n}行目 {col[name] + 1}列（{name}）"

    problems: list[str] = []
    seen: dict[tuple[str, str], tuple[str, int]] = {}  # (pupil, atena) -> (decision, line)
    same_pupil: dict[str, tuple[str, int]] = {}  # pupil -> (atena, line)
    same_resident: dict[str, tuple[str, int]] = {}  # atena -> (pupil, line)
    for n, row in enumerate(rows[1:], start=2):
        cell = {h: _norm(row[i]) if i < len(row) else "" for h, i in col.items()}
        decision = cell[DECISION]
        if not decision:
            continue  # not decided yet
        pupil, atena = cell["学籍番号"].lstrip("'"), cell["宛名番号"].lstrip("'")
        atena = (
            atena.zfill(10) if atena.isdigit() and len(atena) <= 10 else atena
        )  # Excel drops zeros
        problem = (
            (DECISION, "判断が 同一・別人 のいずれでもない")
            if decision not in ld.DECISIONS
            else ("基準月", f"基準月が {month} でない")
            if "基準月" in col and cell["基準月"] != month
            else ("宛名番号", "宛名番号が数字10桁でない")
            if not re.fullmatch(r"[0-9]{10}", atena)
            else ("学籍番号", f"この組は基準月 {month} の照合の確認対象ではない")
            if (pupil, atena) not in listed
            else ("宛名番号", "住民基本台帳にない宛名番号とは同一にできない")
            if decision == ld.SAME and listed[(pupil, atena)] == REASON_NOT_FOUND
            else (DECISION, f"同じ組の判断が {seen[(pupil, atena)][1]}行目と食い違う")
            if seen.get((pupil, atena), (decision,))[0] != decision
            else (
                "宛名番号",
                f"同じ児童生徒を {same_pupil[pupil][1]}行目で別の住民と同一としている",
            )
            if decision == ld.SAME and same_pupil.get(pupil, (atena,))[0] != atena
            else (
                "学籍番号",
                f"同じ住民を {same_resident[atena][1]}行目で別の児童生徒と同一としている",
            )
            if decision == ld.SAME and same_resident.get(atena, (pupil,))[0] != pupil
            else None
        )
        if problem:
            problems.append(f"{where(n, problem[0])}: {problem[1]}")
            continue
        seen.setdefault((pupil, atena), (decision, n))
        if decision == ld.SAME:
            same_pupil.setdefault(pupil, (atena, n))
            same_resident.setdefault(atena, (pupil, n))
    if not problems and not seen:
        raise ExportError(
            f"{source.name}: 判断（同一・別人）を記入した行がありません（何も記録していません）",
            exit_code=2,
        )
    if problems:
        raise ExportError(
            "判断のファイルを取り込みませんでした（何も記録していません）:\n" + "\n".join(problems),
            exit_code=2,
        )
    return sorted((p, a, d) for (p, a), (d, _) in seen.items())


def record_decisions(storage: KodomoStorage, month: str, source: Path) -> Recorded:
    """Check the returned file against the month's review list and store its decisions,
    with the fingerprints of both records, in the month's linkage zone; logged."""
    _check(storage, month)
    con = storage.connect()
    try:
        _open_inputs(storage, con, month)
        listed = {
            (p, a): reason
            for p, a, reason in con.execute(
                "SELECT pupil_no, atena_no, reason FROM lk.link_review WHERE atena_no IS NOT NULL"
            ).fetchall()
        }
        decided = read_decisions_file(source, month, listed)
        pupils, residents = ld.record_prints(
            con, ld.print_key(storage), {p for p, _, _ in decided}, {a for _, a, _ in decided}
        )
    finally:
        con.close()
    now, user = _now(), os_account()
    new = {
        (p, a): ld.Decision(p, a, d, pupils.get(p, ""), residents.get(a, ""), month, now, user)
        for p, a, d in decided
    }
    earlier = {(d.pupil_no, d.atena_no): d for d in ld.read_decisions(storage, month)}
    kept = [d for k, d in earlier.items() if k not in new]
    final = ld.store_path(storage, month)
    with storage.staged(final) as (con, stage):
        ld.write_decisions(
            con, sorted([*kept, *new.values()], key=lambda d: (d.pupil_no, d.atena_no))
        )
        same = sum(d.decision == ld.SAME for d in new.values())
        _log(
            storage,
            "link-decisions",
            month,
            len(new),
            source,
            same=same,
            different=len(new) - same,
            superseded=len(earlier) - len(kept),
        )
        storage.promote(con, stage, final)
    return Recorded(month, same, len(new) - same, len(earlier) - len(kept))

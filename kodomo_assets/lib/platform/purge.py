"""The retention purge outside Dagster: the last day each kind of a month's files may be
kept, the refusal of a month still within its 保存期間, what one month's purge forgets and
keeps, its record in the chained purge log and its message."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from kodomo_assets.lib.center.export import read_access_log
from kodomo_assets.lib.ingest.delivery import MONTH_FOLDER
from kodomo_assets.lib.linkage.review import review_log
from kodomo_assets.lib.partitions import month_end, shift
from kodomo_assets.lib.platform.chained_log import ChainedLog
from kodomo_assets.lib.platform.retention import INPUTS, LABELS, month_kinds
from kodomo_assets.lib.platform.storage import Forgotten, KodomoStorage
from kodomo_assets.lib.policy.approval import ApprovalPeriodError

EXPORT_FIELDS = ("time", "user", "action", "file", "path", "format", "rows", "purpose")


class PurgeRefused(ValueError):
    """The request names a malformed month or one with nothing past its 保存期間."""


def expiry(month: str, retention_months: int) -> date:
    """The last day a month's results may be kept: the end of the month `retention_months`
    after it."""
    return month_end(shift(month, retention_months))


def purge_log(storage: KodomoStorage) -> ChainedLog:
    """The pipeline's record of what it forgot: chained and keyed with the storage key."""
    return ChainedLog(storage.log_path("purge_log.jsonl"), storage.storage_mac_key("purge-log"))


def due(storage: KodomoStorage, months: Sequence[str], now: date) -> dict[str, dict[str, date]]:
    """Each requested month and, per kind of file, the last day it may be kept (the approval
    list's 保存期間: the approved items' shortest for the inputs, each output kind's own row).
    Refuses the whole request, before anything is deleted, when a month is malformed or has
    nothing past its 保存期間."""
    policy, expires, refused = storage.approval(), {}, []
    for month in months:
        if not MONTH_FOLDER.fullmatch(month):
            raise PurgeRefused(f"months に YYYY-MM でない値があります（{len(month)} 文字）")
        try:
            inputs = policy.for_month(month).retention_months
        except ApprovalPeriodError:
            inputs = 0  # no approval on record for the month: nothing allows keeping it
        expires[month] = {
            kind: expiry(month, inputs if kind == INPUTS else policy.retention(kind) or 0)
            for kind in LABELS
        }
        # what is still on disk decides: a kind forgotten earlier is not a reason to run again
        present = {k for k, files in month_kinds(storage, month).items() if files} or set(LABELS)
        if all(now <= last for k, last in expires[month].items() if k in present):
            refused.append(
                f"{month}（最も早い保存期限 "
                f"{min(v for k, v in expires[month].items() if k in present).isoformat()}）"
            )
    if refused:
        raise PurgeRefused(
            "保存期間内の月は消去しません: " + "、".join(refused) + "。何も消去していません。"
        )
    return expires


@dataclass
class MonthPurge:
    """One month of a purge: the kinds due and those kept (until when), and the files."""

    month: str
    due: set[str]
    kept: dict[str, str]
    last_day: date
    files: list[str]
    exports: list[dict[str, Any]]  # the month's exports: copies the center must destroy

    def entry(self, run_id: str, account: str, done: Forgotten) -> dict[str, Any]:
        """The purge log's record of what was forgotten."""
        return {
            "time": datetime.now(UTC).isoformat(timespec="seconds"),
            "account": account,
            "run_id": run_id,
            "month": self.month,
            "retention_ended": self.last_day.isoformat(),
            "forgotten": sorted(LABELS[k] for k in self.due),
            "kept_until": self.kept,
            "keys_destroyed": done["keys_destroyed"],
            "removed": done["removed"],
            "exports_to_destroy": self.exports,
        }

    def forgotten(self) -> str:
        return "・".join(LABELS[k] for k in sorted(self.due))

    def message(self, done: Forgotten, account: str, seq: int) -> str:
        return (
            f"{self.month}: 保存期限 {self.last_day.isoformat()} を過ぎたため、データ鍵 "
            f"{done['keys_destroyed']} 個を破棄し、ファイル {len(done['removed'])} 件を"
            f"削除しました（{self.forgotten()}。保存期間内で残したもの "
            f"{len(self.kept)} 種類。実行: {account}、記録 {seq} 行目。センターが廃棄すべき"
            f"書き出し {len(self.exports)} 件）"
        )


def month_purge(
    storage: KodomoStorage, month: str, last_days: dict[str, date], now: date
) -> MonthPurge:
    """What purging the month now forgets (the kinds past their last day still on disk)."""
    on_disk = month_kinds(storage, month)
    present = {k for k, fs in on_disk.items() if fs} or set(LABELS)
    due = {k for k, last in last_days.items() if last < now and k in present}
    kept = {LABELS[k]: last.isoformat() for k, last in last_days.items() if k in present - due}
    last_day = max(last for k, last in last_days.items() if k in due)
    files = [storage.label(p) for k in due for p in on_disk[k]]
    exports = [
        {k: e.get(k) for k in EXPORT_FIELDS}
        for e in [
            *read_access_log(storage, month),
            *(
                e
                for e in review_log(storage).entries()
                if e.get("month") == month and e.get("action") != "link-decisions"
            ),
        ]
    ]
    return MonthPurge(month, due, kept, last_day, files, exports)

"""Running every month without a developer: the schedule, the arrival sensor, the retention
purge of every store and zone, and a check that an approval is in force."""

import re
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from dagster import (
    AssetKey,
    AssetObservation,
    Config,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    Failure,
    MetadataValue,
    OpExecutionContext,
    RunRequest,
    ScheduleEvaluationContext,
    SensorEvaluationContext,
    SkipReason,
    job,
    op,
    schedule,
    sensor,
)

from kodomo_assets.lib.center.export import read_access_log
from kodomo_assets.lib.linkage.review import review_log
from kodomo_assets.lib.platform.accounts import os_account
from kodomo_assets.lib.platform.chained_log import ChainedLog
from kodomo_assets.lib.platform.retention import INPUTS, LABELS, forget_kinds, month_kinds
from kodomo_assets.lib.platform.storage import KodomoStorage
from kodomo_assets.lib.policy.approval import ApprovalPeriodError
from kodomo_assets.lib.registry import load_registry

TIMEZONE = "Asia/Tokyo"
MONTH_FOLDER = re.compile(r"\d{4}-\d{2}")
INBOX_KEY = AssetKey(["sources", "inbox_receipt"])


def previous_month(day: date) -> str:
    return f"{day.year - (day.month == 1)}-{(day.month - 2) % 12 + 1:02d}"


def month_end(month: str) -> date:
    y, m = (int(x) for x in month.split("-"))
    return date(y + m // 12, m % 12 + 1, 1) - timedelta(days=1)


def expiry(month: str, retention_months: int) -> date:
    """The last day a month's results may be kept: the end of the month `retention_months`
    after it."""
    y, m = (int(x) for x in month.split("-"))
    shifted = (y * 12 + m - 1) + retention_months
    return month_end(f"{shifted // 12}-{shifted % 12 + 1:02d}")


def expected_files() -> set[str]:
    return {ds.file for ds in load_registry().datasets.values()}


def monthly_schedule_for(job_def):
    @schedule(
        name="monthly_refresh_schedule",
        cron_schedule="0 6 2 * *",  # the 2nd, 06:00 JST: the departments export on the 1st
        execution_timezone=TIMEZONE,
        job=job_def,
        default_status=DefaultScheduleStatus.STOPPED,
        description="毎月2日 6:00（日本時間）に前月分（基準月 = 前月）の月次更新を実行する。",
    )
    def monthly_refresh_schedule(context: ScheduleEvaluationContext) -> RunRequest:
        month = previous_month(context.scheduled_execution_time.date())
        return RunRequest(run_key=f"schedule-{month}", partition_key=month)

    return monthly_refresh_schedule


def arrival_sensor_for(job_def):
    @sensor(
        name="inbox_arrival_sensor",
        job=job_def,
        minimum_interval_seconds=600,
        default_status=DefaultSensorStatus.STOPPED,
        description="受信箱の基準月フォルダに契約の全ファイルがそろったら、その月の月次更新を始める。"
        "そろっていない月は、未着のファイル名を理由に表示する。取込済みのファイルは受信箱から"
        "暗号化保管へ移っているので、届いたものとして数える。",
    )
    def inbox_arrival_sensor(context: SensorEvaluationContext, storage: KodomoStorage):
        inbox = storage.inbox_path
        datasets = list(load_registry().datasets.values())
        months = (
            sorted(p.name for p in inbox.iterdir() if p.is_dir() and MONTH_FOLDER.fullmatch(p.name))
            if inbox.is_dir()
            else []
        )
        waiting, requests = [], []
        for month in months:
            present = {p.name for p in (inbox / month).iterdir() if p.is_file()}
            archived = {
                ds.file
                for ds in datasets
                if storage.raw_archive(ds.department.code, month, ds.file).exists()
            }
            missing = sorted({ds.file for ds in datasets} - present - archived)
            new = sorted({ds.file for ds in datasets} & present)
            if missing:
                waiting.append(f"{month}: 未着 {', '.join(missing)}")
                continue
            if not new:
                continue  # everything ingested already: nothing new to run
            # the run key changes when a file is re-delivered, so a corrected month reruns
            stamp = max(int((inbox / month / f).stat().st_mtime) for f in new)
            requests.append(RunRequest(run_key=f"arrival-{month}-{stamp}", partition_key=month))
        if requests:
            yield from requests
        else:
            yield SkipReason("; ".join(waiting) or "受信箱に新しい基準月のファイルがありません")

    return inbox_arrival_sensor


class PurgeConfig(Config):
    months: list[str]  # the months to forget, e.g. ["2022-04"]: chosen by a person, never implied
    dry_run: bool = False


def purge_log(storage: KodomoStorage) -> ChainedLog:
    """The pipeline's record of what it forgot: chained and keyed with the storage key."""
    return ChainedLog(storage.log_path("purge_log.jsonl"), storage.storage_mac_key("purge-log"))


def _due(storage: KodomoStorage, months: Sequence[str], now: date) -> dict[str, dict[str, date]]:
    """Each requested month and, per kind of file, the last day it may be kept (the approval
    list's 保存期間: the approved items' shortest for the inputs, each output kind's own row).
    Refuses the whole request, before anything is deleted, when a month is malformed or has
    nothing past its 保存期間."""
    policy, expires, refused = storage.approval(), {}, []
    for month in months:
        if not MONTH_FOLDER.fullmatch(month):
            raise Failure(
                description=f"months に YYYY-MM でない値があります（{len(month)} 文字）",
                allow_retries=False,
            )
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
        raise Failure(
            description="保存期間内の月は消去しません: "
            + "、".join(refused)
            + "。何も消去していません。",
            allow_retries=False,
        )
    return expires


def purge_job_for(asset_keys: Sequence[AssetKey]):
    partitioned = sorted(asset_keys, key=lambda k: k.to_user_string())

    @op(
        description="指定した基準月のうち保存期間を過ぎたものを忘れる: まず月ごとのデータ鍵を破棄し"
        "（暗号化したストア・保管・各領域は、複製やバックアップも含めて読めなくなる）、"
        "次にファイルを削除する。種類ごとの保存期間（承認リストの（本事業の出力）の行）が"
        "残っているもの（確認結果・委員会報告書など）は残す。消去の記録を連鎖した"
        "ログに残し、その月の書き出しの一覧（センターが廃棄すべき複製）を載せる。"
    )
    def purge_months(
        context: OpExecutionContext, config: PurgeConfig, storage: KodomoStorage
    ) -> dict:
        now = storage.today()
        expires = _due(storage, config.months, now)
        log, account = purge_log(storage), os_account()
        summary: dict[str, Any] = {
            "months": [],
            "files": 0,
            "keys_destroyed": 0,
            "dry_run": config.dry_run,
        }
        for month, last_days in expires.items():
            on_disk = month_kinds(storage, month)
            present = {k for k, fs in on_disk.items() if fs} or set(LABELS)
            due = {k for k, last in last_days.items() if last < now and k in present}
            kept = {
                LABELS[k]: last.isoformat() for k, last in last_days.items() if k in present - due
            }
            last_day = max(last for k, last in last_days.items() if k in due)
            files = [storage.label(p) for k in due for p in on_disk[k]]
            exports = [
                {
                    k: e.get(k)
                    for k in ("time", "user", "action", "file", "path", "format", "rows", "purpose")
                }
                for e in [
                    *read_access_log(storage, month),
                    *(
                        e
                        for e in review_log(storage).entries()
                        if e.get("month") == month and e.get("action") != "link-decisions"
                    ),
                ]
            ]
            if config.dry_run:
                context.log.info(f"{month}: 消去の対象 {len(files)} 件（試行。消去していません）")
                summary["files"] += len(files)
                continue
            done = forget_kinds(storage, month, due)
            entry = log.append(
                {
                    "time": datetime.now(UTC).isoformat(timespec="seconds"),
                    "account": account,
                    "run_id": context.run_id,
                    "month": month,
                    "retention_ended": last_day.isoformat(),
                    "forgotten": sorted(LABELS[k] for k in due),
                    "kept_until": kept,
                    "keys_destroyed": done["keys_destroyed"],
                    "removed": done["removed"],
                    "exports_to_destroy": exports,
                }
            )
            summary["months"].append(month)
            summary["files"] += len(done["removed"])
            summary["keys_destroyed"] += int(done["keys_destroyed"])
            context.log.info(
                f"{month}: 保存期限 {last_day.isoformat()} を過ぎたため、データ鍵 "
                f"{done['keys_destroyed']} 個を破棄し、ファイル {len(done['removed'])} 件を"
                f"削除しました（{'・'.join(LABELS[k] for k in sorted(due))}。保存期間内で残したもの "
                f"{len(kept)} 種類。実行: {account}、記録 {entry['seq']} 行目。センターが廃棄すべき"
                f"書き出し {len(exports)} 件）"
            )
            for key in partitioned:
                context.log_event(
                    AssetObservation(
                        asset_key=key,
                        partition=month,
                        metadata={
                            "purged": MetadataValue.text(
                                f"保存期間経過により消去（{now.isoformat()}: {'・'.join(LABELS[k] for k in sorted(due))}）"
                            ),
                            "purge_record": entry["seq"],
                            "purged_by": account,
                        },
                    )
                )
        return summary

    @job(
        name="retention_purge",
        description="保存期間を過ぎた基準月を忘れる（月を run config の months で指定。データ鍵の破棄と"
        "ファイル削除、連鎖した消去記録）。月次更新の後、月に一度実行する。",
    )
    def retention_purge() -> None:
        purge_months()

    return retention_purge

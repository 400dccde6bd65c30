"""Running every month without a developer: the schedule, the arrival sensor, the retention
purge of the center zone, and a check that an approval is in force."""

import os
import re
import shutil
from datetime import date, datetime, timedelta

from dagster import (
    AssetCheckResult,
    AssetKey,
    Config,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    MetadataValue,
    OpExecutionContext,
    RunRequest,
    ScheduleEvaluationContext,
    SensorEvaluationContext,
    SkipReason,
    asset_check,
    job,
    op,
    schedule,
    sensor,
)

from kodomo_assets.lib import keys
from kodomo_assets.lib.center_store import open_center
from kodomo_assets.lib.paths import kodomo_home, kodomo_inbox
from kodomo_assets.lib.policy import ApprovalPeriodError, load_policy
from kodomo_assets.lib.registry import load_registry

TIMEZONE = "Asia/Tokyo"
MONTH_FOLDER = re.compile(r"\d{4}-\d{2}")
INBOX_KEY = AssetKey(["sources", "inbox_receipt"])


def today() -> date:
    """KODOMO_TODAY (YYYY-MM-DD) stands in for the calendar in tests and rehearsals."""
    text = os.environ.get("KODOMO_TODAY")
    return date.fromisoformat(text) if text else date.today()


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


def monthly_schedule_for(job_def):  # noqa: ANN001, ANN201 - built once the job exists
    @schedule(
        name="monthly_refresh_schedule",
        cron_schedule="0 6 2 * *",  # the 2nd, 06:00 JST: the departments export on the 1st
        execution_timezone=TIMEZONE,
        job=job_def,
        default_status=DefaultScheduleStatus.STOPPED,
        description="毎月2日 6:00（日本時間）に前月分（基準月 = 前月）の月次更新を実行する。",
    )
    def monthly_refresh_schedule(context: ScheduleEvaluationContext) -> RunRequest:
        when = context.scheduled_execution_time
        month = previous_month(when.date() if isinstance(when, datetime) else today())
        return RunRequest(run_key=f"schedule-{month}", partition_key=month)

    return monthly_refresh_schedule


def arrival_sensor_for(job_def):  # noqa: ANN001, ANN201
    @sensor(
        name="inbox_arrival_sensor",
        job=job_def,
        minimum_interval_seconds=600,
        default_status=DefaultSensorStatus.STOPPED,
        description="受信箱の基準月フォルダに契約の全ファイルがそろったら、その月の月次更新を始める。"
                    "そろっていない月は、未着のファイル名を理由に表示する。",
    )
    def inbox_arrival_sensor(context: SensorEvaluationContext):  # noqa: ANN202
        inbox, wanted = kodomo_inbox(), expected_files()
        months = sorted(p.name for p in inbox.iterdir() if p.is_dir() and MONTH_FOLDER.fullmatch(p.name)) \
            if inbox.is_dir() else []
        waiting, requests = [], []
        for month in months:
            present = {p.name for p in (inbox / month).iterdir() if p.is_file()}
            missing = sorted(wanted - present)
            if missing:
                waiting.append(f"{month}: 未着 {', '.join(missing)}")
                continue
            # the run key changes when a file is re-delivered, so a corrected month reruns
            stamp = max(int((inbox / month / f).stat().st_mtime) for f in wanted)
            requests.append(RunRequest(run_key=f"arrival-{month}-{stamp}", partition_key=month))
        if requests:
            yield from requests
        else:
            yield SkipReason("; ".join(waiting) or "受信箱に基準月フォルダがありません")

    return inbox_arrival_sensor


@asset_check(
    asset=INBOX_KEY,
    name="approval_period_in_force",
    description="今日が記録された承認期間のいずれかに含まれるか。期間が切れていれば失敗として表示する"
                "（新しい期間の承認を記録するまで月次更新は承認期間外の月を処理しない）。",
)
def approval_period_in_force() -> AssetCheckResult:
    now = today()
    approval = load_policy()
    month = f"{now.year}-{now.month:02d}"
    expired = [p.label() for p in approval.periods if p.end < now]
    try:
        approval.for_month(month)
        in_force = True
    except ApprovalPeriodError:
        in_force = False
    return AssetCheckResult(
        passed=in_force,
        metadata={"today": now.isoformat(), "expired_periods": MetadataValue.json(expired),
                  "periods": MetadataValue.json([p.label() for p in approval.periods])},
        description=None if in_force else f"{now.isoformat()} を含む承認期間がありません。期限切れ: "
                                          + ("、".join(expired) or "なし"),
    )


class PurgeConfig(Config):
    dry_run: bool = False


@op(description="センター領域の基準月フォルダのうち、承認リストの保存期間を過ぎたものを削除し、件数を記録する。")
def purge_center_zone(context: OpExecutionContext, config: PurgeConfig) -> dict:
    root, now = kodomo_home() / "zones" / "center", today()
    policy = load_policy()
    try:
        center_key = keys.load(keys.CENTER)
    except keys.KeyProblem:
        center_key = None  # files can still be deleted; rows are then not counted
    summary = {"months": 0, "files": 0, "rows": 0, "kept_months": 0}
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and MONTH_FOLDER.fullmatch(p.name)) \
            if root.is_dir() else []:
        month = folder.name
        try:
            months = policy.for_month(month).retention_months
        except ApprovalPeriodError:
            months = 0  # no approval on record for the month: nothing allows keeping it
        expires = expiry(month, months)
        if now <= expires:
            summary["kept_months"] += 1
            continue
        files = sorted(folder.glob("*.duckdb"))
        rows = sum(_rows(f, center_key) for f in files)
        if not config.dry_run:
            shutil.rmtree(folder)
        summary["months"] += 1
        summary["files"] += len(files)
        summary["rows"] += rows
        context.log.info(f"{month}: 保存期限 {expires.isoformat()} を過ぎたため、ファイル {len(files)} 件・"
                         f"{rows} 行を{'削除対象としました（試行）' if config.dry_run else '削除しました'}")
    context.log.info(f"センター領域の保存期間による削除: {summary}")
    return summary


def _rows(path, center_key: bytes | None) -> int:  # noqa: ANN001
    if center_key is None:
        return 0
    try:
        with open_center(path, center_key) as con:
            tables = [t for (t,) in con.execute("SELECT table_name FROM duckdb_tables() "
                                                "WHERE database_name = current_database()").fetchall()]
            return sum(con.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables)
    except PermissionError:
        return 0


@job(name="center_retention_purge",
     description="センター領域の保存期間切れデータを削除する（件数のみ記録）。毎月の更新後に実行する。")
def center_retention_purge() -> None:
    purge_center_zone()

"""Running every month without a developer: the monthly schedule and the arrival sensor."""

from collections.abc import Iterator

from dagster import (
    DefaultScheduleStatus,
    DefaultSensorStatus,
    RunRequest,
    ScheduleDefinition,
    ScheduleEvaluationContext,
    SensorDefinition,
    SensorEvaluationContext,
    SkipReason,
    schedule,
    sensor,
)

from kodomo_assets.lib.ingest.delivery import arrivals
from kodomo_assets.lib.partitions import month_of, previous_month
from kodomo_assets.lib.platform.storage import KodomoStorage

TIMEZONE = "Asia/Tokyo"


def monthly_schedule_for(job_def) -> ScheduleDefinition:
    @schedule(
        name="monthly_refresh_schedule",
        cron_schedule="0 6 2 * *",  # the 2nd, 06:00 JST: the departments export on the 1st
        execution_timezone=TIMEZONE,
        job=job_def,
        default_status=DefaultScheduleStatus.STOPPED,
        description="毎月2日 6:00（日本時間）に前月分（基準月 = 前月）の月次更新を実行する。",
    )
    def monthly_refresh_schedule(context: ScheduleEvaluationContext) -> RunRequest:
        month = previous_month(month_of(context.scheduled_execution_time.date()))
        return RunRequest(run_key=f"schedule-{month}", partition_key=month)

    return monthly_refresh_schedule


def arrival_sensor_for(job_def) -> SensorDefinition:
    @sensor(
        name="inbox_arrival_sensor",
        job=job_def,
        minimum_interval_seconds=600,
        default_status=DefaultSensorStatus.STOPPED,
        description="受信箱の基準月フォルダに契約の全ファイルがそろったら、その月の月次更新を始める。"
        "そろっていない月は、未着のファイル名を理由に表示する。取込済みのファイルは受信箱から"
        "暗号化保管へ移っているので、届いたものとして数える。",
    )
    def inbox_arrival_sensor(
        context: SensorEvaluationContext, storage: KodomoStorage
    ) -> Iterator[RunRequest | SkipReason]:
        ready, waiting = arrivals(storage)
        if ready:
            for month, stamp in ready:
                yield RunRequest(run_key=f"arrival-{month}-{stamp}", partition_key=month)
        else:
            yield SkipReason("; ".join(waiting) or "受信箱に新しい基準月のファイルがありません")

    return inbox_arrival_sensor

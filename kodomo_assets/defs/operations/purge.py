"""The retention purge of every store and zone: an op a person runs with the months to
forget, and its job (the plan, the log and the messages are lib/platform/purge.py's)."""

from collections.abc import Sequence
from typing import Any

from dagster import (
    AssetKey,
    AssetObservation,
    Config,
    Failure,
    JobDefinition,
    MetadataValue,
    OpExecutionContext,
    job,
    op,
)

from kodomo_assets.lib.platform import purge
from kodomo_assets.lib.platform.accounts import os_account
from kodomo_assets.lib.platform.purge import purge_log
from kodomo_assets.lib.platform.retention import forget_kinds
from kodomo_assets.lib.platform.storage import KodomoStorage


class PurgeConfig(Config):
    months: list[str]  # the months to forget, e.g. ["2022-04"]: chosen by a person, never implied
    dry_run: bool = False


def purge_job_for(asset_keys: Sequence[AssetKey]) -> JobDefinition:
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
        try:
            expires = purge.due(storage, config.months, now)
        except purge.PurgeRefused as err:
            raise Failure(description=str(err), allow_retries=False) from None
        log, account = purge_log(storage), os_account()
        summary: dict[str, Any] = {
            "months": [],
            "files": 0,
            "keys_destroyed": 0,
            "dry_run": config.dry_run,
        }
        for month, last_days in expires.items():
            plan = purge.month_purge(storage, month, last_days, now)
            if config.dry_run:
                context.log.info(
                    f"{month}: 消去の対象 {len(plan.files)} 件（試行。消去していません）"
                )
                summary["files"] += len(plan.files)
                continue
            done = forget_kinds(storage, month, plan.due)
            entry = log.append(plan.entry(context.run_id, account, done))
            summary["months"].append(month)
            summary["files"] += len(done["removed"])
            summary["keys_destroyed"] += int(done["keys_destroyed"])
            context.log.info(plan.message(done, account, entry["seq"]))
            for key in partitioned:
                context.log_event(
                    AssetObservation(
                        asset_key=key,
                        partition=month,
                        metadata={
                            "purged": MetadataValue.text(
                                f"保存期間経過により消去（{now.isoformat()}: {plan.forgotten()}）"
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

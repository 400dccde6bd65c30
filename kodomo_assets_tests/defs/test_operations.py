"""The monthly schedule, the arrival sensor, the retention purge and the approval check."""

import csv
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from dagster import (
    DagsterInstance,
    RunRequest,
    SkipReason,
    build_schedule_context,
    build_sensor_context,
    materialize,
)

from kodomo_assets.definitions import defs
from kodomo_assets.defs.operations import approval_period_in_force, expected_files, expiry
from kodomo_assets.defs.sources import inbox_receipt
from kodomo_assets.lib import keys
from kodomo_assets.lib.center_store import staged_center
from kodomo_assets.lib.paths import zone_store
from kodomo_assets.lib.policy import HEADER, policy_path
from kodomo_assets.lib.publish import promote

TOKYO = ZoneInfo("Asia/Tokyo")


def test_the_tick_of_2022_11_02_asks_for_2022_10() -> None:
    schedule = defs.resolve_schedule_def("monthly_refresh_schedule")
    assert schedule.execution_timezone == "Asia/Tokyo" and schedule.job_name == "monthly_refresh"
    repo = defs.get_repository_def()
    context = build_schedule_context(scheduled_execution_time=datetime(2022, 11, 2, 6, tzinfo=TOKYO),
                                     repository_def=repo)
    requests = schedule.evaluate_tick(context).run_requests
    assert [r.partition_key for r in requests] == ["2022-10"]
    january = build_schedule_context(scheduled_execution_time=datetime(2023, 1, 2, 6, tzinfo=TOKYO),
                                     repository_def=repo)
    assert [r.partition_key for r in schedule.evaluate_tick(january).run_requests] == ["2022-12"]


def _tick(instance: DagsterInstance) -> list:
    sensor = defs.resolve_sensor_def("inbox_arrival_sensor")
    return list(sensor(build_sensor_context(instance=instance, definitions=defs)) or [])


def test_the_sensor_fires_only_when_the_folder_is_complete(kodomo_env) -> None:
    inbox, _ = kodomo_env
    instance = DagsterInstance.ephemeral()
    files = sorted(expected_files())
    (inbox / "2022-10").mkdir()
    for name in files[:-1]:
        (inbox / "2022-10" / name).write_text("x")
    (out,) = _tick(instance)
    assert isinstance(out, SkipReason) and f"2022-10: 未着 {files[-1]}" in out.skip_message
    (inbox / "2022-10" / "memo.txt").write_text("x")  # an unlisted file completes nothing
    assert isinstance(_tick(instance)[0], SkipReason)
    (inbox / "2022-10" / files[-1]).write_text("x")
    (out,) = _tick(instance)
    assert isinstance(out, RunRequest) and out.partition_key == "2022-10"


def _center_month(month: str) -> Path:
    path = zone_store("center", month, "review_list")
    with staged_center(path, keys.load(keys.CENTER)) as (con, stage):
        con.execute("CREATE TABLE review_list AS SELECT range AS rank FROM range(25)")
        promote(con, stage, path)
    return path


def test_the_purge_deletes_exactly_what_is_past_retention(kodomo_env, monkeypatch) -> None:
    _, home = kodomo_env
    months = ["2022-04", "2022-09", "2022-10", "2023-01"]
    with pytest.warns(UserWarning):
        paths = {m: _center_month(m) for m in months}
    # FY2022 keeps results 12 months after their month: on 2023-10-01, April to September 2022
    # have expired (September's last day to keep is 2023-09-30); October 2022 has not
    assert expiry("2022-09", 12).isoformat() == "2023-09-30"
    monkeypatch.setenv("KODOMO_TODAY", "2023-10-01")
    instance = DagsterInstance.ephemeral()
    result = defs.resolve_job_def("center_retention_purge").execute_in_process(instance=instance)
    summary = result.output_for_node("purge_center_zone")
    assert summary == {"months": 2, "files": 2, "rows": 50, "kept_months": 2}
    assert [m for m, p in paths.items() if p.exists()] == ["2022-10", "2023-01"]
    logged = [r.user_message for r in instance.all_logs(result.run_id)]
    assert any("2022-04" in m and "ファイル 1 件・25 行を削除しました" in m for m in logged)


def test_an_expired_approval_is_a_failing_check(kodomo_env, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("KODOMO_TODAY", "2026-11-26")
    result = materialize([inbox_receipt, approval_period_in_force], partition_key="2022-10",
                         instance=DagsterInstance.ephemeral(), raise_on_error=False)
    (check,) = result.get_asset_check_evaluations()
    assert not check.passed and "2022-04-01〜2023-03-31" in str(check.metadata["expired_periods"].value)
    # a later period recorded under the Act puts it back in force
    rows = list(csv.DictReader(policy_path().read_text(encoding="utf-8-sig").splitlines()))
    later = [{**r, "番号": str(len(rows) + i + 1), "根拠": "個人情報保護法第69条第2項第2号・第3号",
              "承認期間開始": "2026-04-01", "承認期間終了": "2027-03-31"}
             for i, r in enumerate(r for r in rows if r["根拠"])]
    path = tmp_path / "approval.csv"
    with open(path, "w", encoding="utf-8-sig", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=HEADER)
        writer.writeheader()
        writer.writerows(rows + later)
    monkeypatch.setenv("KODOMO_POLICY", str(path))
    result = materialize([inbox_receipt, approval_period_in_force], partition_key="2022-10",
                         instance=DagsterInstance.ephemeral(), raise_on_error=False)
    assert result.get_asset_check_evaluations()[0].passed

"""The monthly schedule, the arrival sensor, the retention purge and the approval check."""

import csv
import json
import shutil
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import pytest
from dagster import (
    AssetKey,
    DagsterInstance,
    IdentityPartitionMapping,
    RunRequest,
    SkipReason,
    build_schedule_context,
    build_sensor_context,
)
from dagster._core.execution.asset_backfill import AssetBackfillData

from kodomo_assets.definitions import defs
from kodomo_assets.defs.linkage import pupil_links
from kodomo_assets.defs.operations import purge_log
from kodomo_assets.defs.sources import inbox_receipt, source_assets
from kodomo_assets.demo import generate
from kodomo_assets.lib.center.export import append_access_log
from kodomo_assets.lib.ingest.delivery import expected_files
from kodomo_assets.lib.partitions import monthly
from kodomo_assets.lib.platform.accounts import os_account
from kodomo_assets.lib.platform.keys import CenterPrivate, KeyProblem
from kodomo_assets.lib.platform.purge import expiry
from kodomo_assets.lib.platform.retention import month_kinds
from kodomo_assets.lib.platform.storage import KodomoStorage, StoreMissing
from kodomo_assets.lib.policy.approval import HEADER, OUTPUT_FILE, policy_path
from kodomo_assets.lib.registry import load_registry
from kodomo_assets_tests.conftest import at, configured
from kodomo_assets_tests.runs import failure_message, failures, purge, run, started

TOKYO = ZoneInfo("Asia/Tokyo")


def test_the_tick_of_2022_11_02_asks_for_2022_10() -> None:
    schedule = defs.resolve_schedule_def("monthly_refresh_schedule")
    assert schedule.execution_timezone == "Asia/Tokyo" and schedule.job_name == "monthly_refresh"
    repo = defs.get_repository_def()
    context = build_schedule_context(
        scheduled_execution_time=datetime(2022, 11, 2, 6, tzinfo=TOKYO), repository_def=repo
    )
    requests = schedule.evaluate_tick(context).run_requests
    assert [r.partition_key for r in requests] == ["2022-10"]
    january = build_schedule_context(
        scheduled_execution_time=datetime(2023, 1, 2, 6, tzinfo=TOKYO), repository_def=repo
    )
    assert [r.partition_key for r in schedule.evaluate_tick(january).run_requests] == ["2022-12"]


def _tick(instance: DagsterInstance, storage: KodomoStorage) -> list:
    sensor = defs.resolve_sensor_def("inbox_arrival_sensor")
    return list(
        sensor(build_sensor_context(instance=instance, resources={"storage": storage})) or []
    )


def test_the_sensor_fires_only_when_the_folder_is_complete(storage) -> None:
    inbox = storage.inbox_path
    instance = DagsterInstance.ephemeral()
    files = sorted(expected_files())
    (inbox / "2022-10").mkdir()
    for name in files[:-1]:
        (inbox / "2022-10" / name).write_text("x")
    (out,) = _tick(instance, storage)
    assert isinstance(out, SkipReason) and f"2022-10: 未着 {files[-1]}" in out.skip_message
    (inbox / "2022-10" / "memo.txt").write_text("x")  # an unlisted file completes nothing
    assert isinstance(_tick(instance, storage)[0], SkipReason)
    (inbox / "2022-10" / files[-1]).write_text("x")
    (out,) = _tick(instance, storage)
    assert isinstance(out, RunRequest) and out.partition_key == "2022-10"


def _archive(storage: KodomoStorage, month: str, names: set[str]) -> None:
    """What a successful ingest does with each export: sealed into the raw archive, gone
    from the inbox."""
    for ds in load_registry().datasets.values():
        if ds.file in names:
            storage.archive_export(ds.department.code, month, storage.inbox_path / month / ds.file)


def test_the_sensor_counts_archived_exports_and_asks_for_nothing_already_ingested(storage) -> None:
    """After an ingest the exports leave the inbox for their sealed copies: a month whose
    files are all archived is complete but has nothing new, so no run is asked for; a
    re-delivered file (a correction) asks for the month again."""
    inbox, instance, files = (
        storage.inbox_path,
        DagsterInstance.ephemeral(),
        sorted(expected_files()),
    )
    (inbox / "2022-10").mkdir()
    for name in files:
        (inbox / "2022-10" / name).write_text("x")
    _archive(storage, "2022-10", set(files[:-1]))  # all but one ingested: the rest still counts
    assert sorted(p.name for p in (inbox / "2022-10").iterdir()) == files[-1:]
    (out,) = _tick(instance, storage)
    assert isinstance(out, RunRequest) and out.partition_key == "2022-10"
    _archive(storage, "2022-10", {files[-1]})  # now every export is sealed, none in the inbox
    for ds in load_registry().datasets.values():
        assert storage.raw_archive(ds.department.code, "2022-10", ds.file).exists()
    assert list((inbox / "2022-10").iterdir()) == []
    (out,) = _tick(instance, storage)
    assert isinstance(out, SkipReason) and not isinstance(out, RunRequest)
    assert "未着" not in out.skip_message
    (inbox / "2022-10" / files[0]).write_text("y")  # a corrected export is delivered again
    (out,) = _tick(instance, storage)
    assert isinstance(out, RunRequest) and out.partition_key == "2022-10"


# -- the retention purge ---------------------------------------------------------------------

OLD, NEW = "2022-04", "2022-10"


def _generated(tmp_path: Path, month: str) -> Path:
    generate(tmp_path / "generated", residents=2000, months=[month], seed=5)
    return tmp_path / "generated" / month


def _files(home: Path) -> dict[str, bytes]:
    return {
        p.relative_to(home).as_posix(): p.read_bytes()
        for p in sorted(home.rglob("*"))
        if p.is_file()
    }


def _opens(storage: KodomoStorage, path: Path) -> int:
    """Open a store with the resource; the number of its tables."""
    with storage.open(path) as con:
        return con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database()"
        ).fetchone()[0]


@pytest.fixture
def two_months(storage: KodomoStorage, center: CenterPrivate, tmp_path: Path) -> KodomoStorage:
    """Real stores, raw archives and a linkage zone for April and October 2022 of a small
    city, a center review list for each (written as the pipeline writes one), an export of
    April's list in the center's access log, and April's committee report."""
    generated = tmp_path / "generated"
    generate(generated, residents=3000, months=[OLD, NEW], seed=5)
    for month in (OLD, NEW):
        shutil.copytree(generated / month, storage.inbox_path / month)
        result = run([inbox_receipt, *source_assets, pupil_links], month, storage)
        assert result.success, failures(result)
        final = storage.zone_store("center", month, "review_list")
        with storage.staged_for_center(final) as (con, stage):
            con.execute("CREATE TABLE review_list AS SELECT range AS rank FROM range(25)")
            storage.promote(con, stage, final)
    append_access_log(
        storage,
        center,
        action="export",
        month=OLD,
        rows=25,
        file="/secret/list.csv",
        purpose="個別確認",
        format="csv",
    )
    report = storage.report_path(OLD)
    report.parent.mkdir(parents=True)
    report.write_text("<html>集計のみ</html>", encoding="utf-8")
    return storage


def test_the_purge_refuses_a_month_within_retention_and_deletes_nothing(
    two_months, monkeypatch
) -> None:
    storage = two_months
    # FY2022 keeps results 12 months after their month: on 2023-10-01, April to September 2022
    # have expired (September's last day to keep is 2023-09-30); October 2022 has not
    assert expiry("2022-09", 12).isoformat() == "2023-09-30"
    assert expiry(NEW, 12).isoformat() == "2023-10-31"
    storage = at(storage, "2023-10-01")
    before = _files(storage.home_path)
    instance = DagsterInstance.ephemeral()
    for months in ([NEW], [OLD, NEW]):  # one month within retention refuses the whole request
        result = purge(storage, instance, months)
        assert not result.success
        message = failure_message(result)
        assert (
            "保存期間内の月は消去しません" in message
            and f"{NEW}（最も早い保存期限 2023-10-31）" in message
        )
        assert "何も消去していません" in message
        assert _files(storage.home_path) == before
    # a dry run lists and deletes nothing, and records no purge
    result = purge(storage, instance, [OLD], dry_run=True)
    assert result.success, failures(result)
    due = [
        f
        for kind in ("inputs", "scores", "review_list", "link_decisions")
        for f in month_kinds(storage, OLD)[kind]
    ]
    assert result.output_for_node("purge_months") == {
        "months": [],
        "files": len(due),
        "keys_destroyed": 0,
        "dry_run": True,
    }
    assert _files(storage.home_path) == before
    assert not purge_log(storage).path.exists()


def test_the_purge_forgets_a_month_past_retention_and_its_copies(
    two_months, center, monkeypatch, tmp_path
) -> None:
    storage = two_months
    home = storage.home_path
    every = storage.month_files(OLD)
    assert storage.inbox_path / OLD in every  # the emptied inbox folder goes too
    old_files = [p for p in every if p.is_relative_to(home)]
    relative = sorted(storage.label(p) for p in old_files)
    removed_files = sorted(
        storage.label(q)
        for p in old_files
        for q in ([q for q in p.rglob("*") if q.is_file()] if p.is_dir() else [p])
    )
    count = len(removed_files)
    # April's stores, raw archives, linkage zone and center zone are all there
    assert {r.split("/")[0] for r in relative} == {"stores", "zones"}
    assert any(r.startswith(f"stores/shimin/raw/{OLD}") for r in relative)
    assert f"zones/center/{OLD}" in relative and f"zones/linkage/{OLD}" in relative
    old_keys = storage.keytable.entries(OLD)
    new_files = {r: b for r, b in _files(home).items() if NEW in r}
    new_stores = sorted(home.glob(f"stores/*/{NEW}.duckdb"))
    assert len(new_stores) >= 3

    # a "backup" of April, taken before the purge
    backup = tmp_path / "backup"
    for path in old_files:
        target = backup / storage.relative(path)
        if path.is_dir():
            shutil.copytree(path, target)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)

    storage = at(storage, "2023-10-01")
    instance = DagsterInstance.ephemeral()
    result = purge(storage, instance, [OLD])
    assert result.success, failures(result)
    removed = storage.month_files(OLD)
    assert result.output_for_node("purge_months") == {
        "months": [OLD],
        "files": count,
        "keys_destroyed": len(old_keys),
        "dry_run": False,
    }

    # every April file is gone (its committee report, aggregates only, is kept for its own
    # 保存期間 of 60 months); its keys too
    assert removed == []
    assert not [r for r in _files(home) if OLD in r and r != f"reports/{OLD}/committee_report.html"]
    assert not [
        p for p in home.rglob(f"*{OLD}*") if p.is_dir() and p != storage.report_path(OLD).parent
    ]
    assert storage.report_path(OLD).exists()
    assert OLD not in storage.keytable.scopes() and storage.keytable.entries(OLD) == []
    # October is untouched, and still opens
    assert {r: b for r, b in _files(home).items() if NEW in r} == new_files
    for store in new_stores:
        assert _opens(storage, store) > 0
    with storage.open_as_center(storage.zone_store("center", NEW, "review_list"), center) as con:
        assert con.execute("SELECT count(*) FROM review_list").fetchone()[0] == 25

    # the backup copies no longer open: their data keys were destroyed (crypto-shredding)
    shutil.copytree(backup, home, dirs_exist_ok=True)
    store = storage.department_store("shimin", OLD)
    assert sorted(storage.label(p) for p in storage.month_files(OLD)) == relative
    assert store.exists() and storage.raw_archive("shimin", OLD, "jumin.csv").exists()
    with pytest.raises((KeyProblem, StoreMissing)):
        _opens(storage, store)
    con = storage.connect()
    with pytest.raises((KeyProblem, StoreMissing)):
        storage.attach(con, "old", store)
    con.close()
    with pytest.raises((KeyProblem, StoreMissing)):
        storage.unseal(storage.raw_archive("shimin", OLD, "jumin.csv"))
    with (
        pytest.raises((KeyProblem, StoreMissing)),
        storage.open_as_center(storage.zone_store("center", OLD, "review_list"), center),
    ):
        pass
    with pytest.raises(duckdb.Error):  # and without the resource it is ciphertext anyway
        duckdb.connect(str(store), read_only=True).execute("SELECT count(*) FROM jumin")

    # the purge log: a verified chained entry naming what was removed and what to destroy
    log = purge_log(storage)
    assert log.first_broken_line() is None
    (entry,) = log.entries()
    assert entry["month"] == OLD and entry["seq"] == 1 and entry["run_id"] == result.run_id
    assert entry["retention_ended"] == expiry(OLD, 12).isoformat() == "2023-04-30"
    assert entry["account"] == os_account()
    assert entry["keys_destroyed"] == len(old_keys)
    assert sorted(entry["removed"]) == removed_files  # every file, by name
    assert [e["file"] for e in entry["exports_to_destroy"]] == ["list.csv"]
    assert entry["exports_to_destroy"][0]["action"] == "export"
    assert (home / "logs" / "purge_log.jsonl").stat().st_mode & 0o777 == 0o600

    # the instance records that every source of April was forgotten
    observations = instance.fetch_observations(AssetKey(["sources", "jumin"]), limit=10).records
    assert [o.partition_key for o in observations] == [OLD]
    meta = observations[0].asset_observation.metadata
    assert "保存期間経過により消去" in meta["purged"].value and meta["purge_record"].value == 1
    for ds in load_registry().datasets:
        assert [
            o.partition_key
            for o in instance.fetch_observations(AssetKey(["sources", ds]), limit=10).records
        ] == [OLD], ds


def test_an_edited_or_deleted_purge_log_line_is_found(storage) -> None:
    log = purge_log(storage)
    for month in ("2022-04", "2022-05", "2022-06"):
        log.append(
            {"month": month, "keys_destroyed": 3, "removed": [f"stores/shimin/{month}.duckdb"]}
        )
    assert log.first_broken_line() is None
    lines = log.path.read_text(encoding="utf-8").splitlines(keepends=True)
    edited = json.loads(lines[1])
    edited["keys_destroyed"] = 0
    log.path.write_text(
        lines[0] + json.dumps(edited, ensure_ascii=False) + "\n" + lines[2], encoding="utf-8"
    )
    assert log.first_broken_line() == 2
    log.path.write_text(lines[0] + lines[2], encoding="utf-8")  # a line deleted
    assert log.first_broken_line() == 2
    log.path.write_text("".join(lines), encoding="utf-8")
    assert log.first_broken_line() is None
    # a line forged without the storage key does not verify either
    forged = {**json.loads(lines[2]), "seq": 4, "month": "2022-07"}
    log.path.write_text("".join(lines) + json.dumps(forged) + "\n", encoding="utf-8")
    assert log.first_broken_line() == 4


def test_an_expired_approval_refuses_the_month_by_a_blocking_check_before_reading(
    storage, monkeypatch, tmp_path
) -> None:
    """The FY2022 list ended 2023-03-31: on 2026-11-26 October 2022 is refused before
    anything is read, and the check records the refusal with both facts."""
    today = at(storage, "2026-11-26")
    shutil.copytree(_generated(tmp_path, "2022-10"), today.inbox_path / "2022-10")
    before = sorted(p.name for p in (today.inbox_path / "2022-10").iterdir())
    result = run([inbox_receipt, *source_assets], "2022-10", today)
    assert not result.success
    message = failure_message(result)
    assert "処理日 2026-11-26" in message and "2022-04-01〜2023-03-31" in message
    assert "諮問第65号" in message and "データは読んでいません" in message
    (check,) = result.get_asset_check_evaluations()
    assert check.check_name == "approval_period_in_force" and not check.passed and check.blocking
    assert check.metadata["data_month_in_period"].value is True
    assert check.metadata["processing_date_in_period"].value is False
    assert check.metadata["processing_date"].value == "2026-11-26"
    # nothing was read: every export is still in the inbox, no store was written
    assert sorted(p.name for p in (today.inbox_path / "2022-10").iterdir()) == before
    assert not list(today.home_path.glob("stores/*/2022-10.duckdb"))
    assert not [e for e in result.all_events if e.is_step_success]
    # a later period recorded under the Act (covering both dates) puts it back in force
    rows = list(csv.DictReader(policy_path().read_text(encoding="utf-8-sig").splitlines()))
    later = [
        {
            **r,
            "番号": str(len(rows) + i + 1),
            "根拠": "個人情報保護法第69条第2項第2号・第3号",
            "承認期間開始": "2022-04-01",
            "承認期間終了": "2027-03-31",
        }
        for i, r in enumerate(r for r in rows if r["根拠"] and r["ファイル"] != OUTPUT_FILE)
    ]
    path = tmp_path / "approval.csv"
    with open(path, "w", encoding="utf-8-sig", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=HEADER)
        writer.writeheader()
        writer.writerows(rows + later)
    result = run([inbox_receipt], "2022-10", configured(today, approval_file=str(path)))
    assert result.success, failures(result)
    assert result.get_asset_check_evaluations()[0].passed


def test_production_refuses_a_clock_at_start_up(storage) -> None:
    production = configured(storage, mode="production")
    result = run([inbox_receipt], "2022-10", production)
    refused = [e for e in result.all_events if e.event_type_value == "RESOURCE_INIT_FAILURE"]
    assert not result.success and refused and not started(result)
    assert "本番では処理日を変えられません" in str(refused[0].event_specific_data.error)


def test_a_purged_month_leaves_no_inbox_folder_and_is_not_reported_as_waiting(
    storage: KodomoStorage, monkeypatch
) -> None:
    """A failed delivery left in the inbox is plaintext too: the purge forgets it with the
    month, and the sensor does not then wait for the month forever."""
    folder = storage.inbox_path / "2022-04"
    folder.mkdir()
    for name in expected_files():
        (folder / name).write_text("x")
    _archive(storage, "2022-04", set(expected_files()) - {"jumin.csv"})  # jumin.csv failed
    storage = at(storage, "2023-10-01")
    assert purge(storage, DagsterInstance.ephemeral(), ["2022-04"]).success
    assert not folder.exists()
    (entry,) = purge_log(storage).entries()
    assert "受信箱/2022-04/jumin.csv" in entry["removed"]
    (out,) = _tick(DagsterInstance.ephemeral(), storage)
    assert isinstance(out, SkipReason) and "2022-04" not in out.skip_message


def _upstream(asset: AssetKey, upstream: AssetKey, month: str) -> list[str]:
    """The partitions of `upstream` that `asset`'s month waits for, as Dagster maps them."""
    mapping = (
        defs.resolve_assets_def(asset).get_partition_mapping(upstream) or IdentityPartitionMapping()
    )
    result = mapping.get_upstream_mapped_partitions_result_for_partitions(
        monthly.subset_with_partition_keys([month]), monthly, monthly
    )
    return sorted(result.partitions_subset.get_partition_keys())


def test_the_months_order_is_in_the_asset_graph() -> None:
    """A month's review list waits for the month before's list (a self-dependency), and so
    for that month's scores and results; this month's results answer the previous list. The
    first month waits for nothing of a month before, and a backfill of a range reaches no
    month past it (an offset dependency on another asset would drag the next month in)."""
    review, scores = AssetKey(["center", "review_list"]), AssetKey(["analysis", "risk_scores"])
    feedback, fairness = (
        AssetKey(["center", "verification_feedback"]),
        AssetKey(["analysis", "fairness_audit"]),
    )
    assert _upstream(review, review, "2022-10") == ["2022-09"]
    assert (
        _upstream(review, review, "2023-01") == ["2022-12"]
        and _upstream(review, review, "2022-04") == []
    )
    assert _upstream(review, scores, "2022-10") == ["2022-10"] and _upstream(
        review, feedback, "2022-10"
    ) == ["2022-10"]
    graph = defs.resolve_asset_graph()
    assert graph.get(review).parent_keys >= {review, scores, feedback}
    assert graph.get(fairness).parent_keys >= {review, feedback}
    assert graph.get(feedback).parent_keys == {AssetKey(["sources", "inbox_receipt"])}
    keys = list(defs.resolve_job_def("monthly_refresh").asset_layer.selected_asset_keys)
    target = AssetBackfillData.from_asset_partitions(
        asset_graph=graph,
        partition_names=["2022-09", "2022-10"],
        asset_selection=keys,
        dynamic_partitions_store=DagsterInstance.ephemeral(),
        backfill_start_timestamp=time.time(),
        all_partitions=False,
    ).target_subset
    assert {
        k: sorted(s.get_partition_keys()) for k, s in target.partitions_subsets_by_asset_key.items()
    } == {k: ["2022-09", "2022-10"] for k in keys}


def test_each_kind_of_output_is_kept_for_its_own_retention(two_months) -> None:
    """FY2022: inputs, scores, the review list and link decisions 12 months, verification
    results 36, reports 60. Each purge forgets what is past, keys first, and keeps the rest."""
    storage = two_months
    results = storage.zone_store("analysis", OLD, "verification_feedback")
    with storage.staged(results) as (con, stage):
        con.execute("CREATE TABLE verification AS SELECT 'tok' AS child_token, '該当' AS result")
        storage.promote(con, stage, results)
    report = storage.report_path(OLD)
    instance = DagsterInstance.ephemeral()

    first = at(storage, "2023-10-01")
    assert purge(first, instance, [OLD]).success
    assert results.exists() and report.exists()
    assert not storage.department_store("shimin", OLD).exists()
    assert not storage.zone_store("center", OLD, "review_list").exists()
    assert storage.keytable.entries(OLD) == [storage.relative(results).as_posix()]
    with first.open(results) as con:  # what is kept still opens
        assert con.execute("SELECT count(*) FROM verification").fetchone() == (1,)
    entry = purge_log(storage).entries()[-1]
    assert entry["kept_until"] == {"確認結果": "2025-04-30", "委員会報告書": "2027-04-30"}
    assert "確認リスト" in entry["forgotten"] and "確認結果" not in entry["forgotten"]

    assert not purge(at(storage, "2025-04-30"), instance, [OLD]).success  # nothing past yet
    assert purge(at(storage, "2025-05-01"), instance, [OLD]).success
    assert not results.exists() and report.exists() and OLD not in storage.keytable.scopes()
    assert purge(at(storage, "2027-05-01"), instance, [OLD]).success
    assert not report.exists() and not report.parent.exists()
    assert [e["forgotten"] for e in purge_log(storage).entries()][1:] == [
        ["確認結果"],
        ["委員会報告書"],
    ]

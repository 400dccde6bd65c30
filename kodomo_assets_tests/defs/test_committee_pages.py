"""The council's pages read what the Dagster instance recorded: late deliveries, failed
blocking checks, and the steward's notes, as 課題."""

from pathlib import Path

from dagster import DagsterInstance

from kodomo_assets.defs.committee import pages as P
from kodomo_assets.defs.sources import inbox_receipt
from kodomo_assets.lib.platform.storage import KodomoStorage
from kodomo_assets.lib.registry import load_registry
from kodomo_assets_tests.conftest import at
from kodomo_assets_tests.runs import run

MONTH = "2022-10"


def _deliver(storage: KodomoStorage, names: list[str]) -> None:
    folder = storage.inbox_path / MONTH
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_text("x", encoding="utf-8")


def test_a_file_that_came_after_the_first_receipt_is_a_late_delivery(
    storage: KodomoStorage,
) -> None:
    files = sorted(ds.file for ds in load_registry().datasets.values())
    instance = DagsterInstance.ephemeral()
    _deliver(storage, [f for f in files if f != "kaigo.csv"])
    assert run([inbox_receipt], MONTH, storage, instance).success
    _deliver(storage, ["kaigo.csv"])
    assert run([inbox_receipt], MONTH, storage, instance).success
    facts = P.gather(storage, instance, MONTH)
    assert facts.late == ["kaigo.csv"] and not facts.inbox["missing"]
    problems, refused = P.problems(storage, facts, gaps=[], silent=[])
    texts = [p.text for p in problems.problems]
    assert any(t.startswith("遅配: kaigo.csv") for t in texts) and refused == []


def test_a_refused_month_is_a_failed_check_and_a_problem(storage: KodomoStorage) -> None:
    """Under the FY2022 list, a run on 2026-11-29 is refused: the report's 課題 says which
    check failed, counted from the instance."""
    instance = DagsterInstance.ephemeral()
    _deliver(storage, ["jumin.csv"])
    assert not run([inbox_receipt], MONTH, at(storage, "2026-11-29"), instance).success
    facts = P.gather(storage, instance, MONTH)
    assert facts.refusals == {"sources/inbox_receipt の approval_period_in_force": 1}
    problems, _ = P.problems(
        storage, facts, gaps=[("ひとり親世帯", 0.2, True), ("町丁目", 0.3, False)], silent=[]
    )
    texts = [p.text for p in problems.problems]
    assert (
        "sources/inbox_receipt の approval_period_in_force が失敗（1 回）。その表は書き出していない"
        in texts
    )
    assert "ひとり親世帯: 均等化オッズの差 0.200 が目安 0.1 を超える" in texts
    assert any(t.startswith("町丁目: 均等化オッズの差が目安 0.1 を超えるが") for t in texts)
    assert problems.main(1) == [
        "sources/inbox_receipt の approval_period_in_force が失敗（1 回）。その表は書き出していない"
    ]


def test_steward_notes_reach_the_problems_and_personal_data_does_not(
    storage: KodomoStorage, tmp_path: Path
) -> None:
    notes = storage.home_path / "committee_notes" / f"{MONTH}.csv"
    notes.parent.mkdir(parents=True)
    notes.write_text(
        "区分,内容,対応\n確認,確認結果の返却が遅れがち,毎月10日までに返却\n確認,宛名番号0012345678の件,\n",
        encoding="utf-8",
    )
    facts = P.gather(storage, DagsterInstance.ephemeral(), MONTH)
    problems, refused = P.problems(storage, facts, gaps=[], silent=[])
    assert [p.text for p in problems.problems] == [
        "確認結果の返却が遅れがち — 対応: 毎月10日までに返却"
    ]
    assert refused == [
        "2022-10.csv 3行目: 宛名番号など10桁以上の番号の疑いがあるため載せません（個人情報を書かないでください）"
    ]

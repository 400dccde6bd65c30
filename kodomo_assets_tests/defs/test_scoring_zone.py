"""Risk scores and the center's review list through Dagster, on two generated months."""

import json
import os
import stat
from pathlib import Path

import duckdb
import joblib
import pytest
from dagster import DagsterInstance, materialize

from kodomo_assets.defs.analysis import linked_children
from kodomo_assets.defs.center import review_list
from kodomo_assets.defs.center.assets import NEW, RISEN, key_check
from kodomo_assets.defs.linkage import pupil_links
from kodomo_assets.defs.scoring import risk_scores
from kodomo_assets.defs.sources import inbox_receipt, source_assets
from kodomo_assets.demo import generate
from kodomo_assets.lib import keys
from kodomo_assets.lib.center_store import open_center
from kodomo_assets.lib.paths import department_store, zone_store
from kodomo_assets_tests.conftest import demo_env
from kodomo_assets_tests.runs import failure_message, run

MONTHS = ("2022-09", "2022-10")
ASSETS = [inbox_receipt, *source_assets, pupil_links, linked_children, risk_scores, review_list]
EVERY_KNOWN = {"ops": {"center__review_list": {"config": {"rise": -1.0}}}}


@pytest.fixture(scope="module")
def scored(tmp_path_factory: pytest.TempPathFactory):
    inbox = tmp_path_factory.mktemp("inbox")
    generate(inbox, residents=15000, months=list(MONTHS), seed=8)
    with demo_env(inbox, tmp_path_factory) as (home, secrets):
        instance = DagsterInstance.ephemeral()
        results = {m: materialize(ASSETS, partition_key=m, instance=instance, raise_on_error=False,
                                  run_config=EVERY_KNOWN if m == MONTHS[1] else None)
                   for m in MONTHS}
        yield results, instance, inbox, home, secrets


@pytest.fixture
def env(scored, monkeypatch):
    _, _, inbox, home, secrets = scored
    monkeypatch.setenv("KODOMO_HOME", str(home))
    monkeypatch.setenv("KODOMO_CENTER_KEY_FILE", str(secrets / "c.key"))
    return scored


def test_every_child_is_scored_with_a_reason_and_the_model_is_kept(env) -> None:
    results, *_ = env
    month = MONTHS[1]
    assert all(r.success for r in results.values())
    with duckdb.connect(str(zone_store("analysis", month, "linked_children")), read_only=True) as con:
        (children,) = con.execute("SELECT count(*) FROM linked_children").fetchone()
    with duckdb.connect(str(zone_store("analysis", month, "risk_scores")), read_only=True) as con:
        n, bad, no_reason, top = con.execute(
            "SELECT count(*), count(*) FILTER (score < 0 OR score > 1), "
            "count(*) FILTER (len(reasons) = 0), min(rank) FROM risk_scores").fetchone()
    assert n == children and bad == 0 and no_reason == 0 and top == 1
    folder = zone_store("analysis", month, "risk_scores").parent
    card = json.loads((folder / "model_card.json").read_text(encoding="utf-8"))
    assert card["month"] == month and card["positives"] > 10 and 0.5 < card["cv_auc"] <= 1
    assert "district_code" not in card["features"] and "foreign_resident" not in card["features"]
    assert joblib.load(folder / "model.joblib")["card"] == card
    checks = [c for r in results.values() for c in r.get_asset_check_evaluations()]
    assert checks and all(c.passed for c in checks)


def test_the_review_list_is_the_top_k_unknown_children_with_reasons(env) -> None:
    month = MONTHS[1]
    with duckdb.connect(str(zone_store("analysis", month, "risk_scores")), read_only=True) as con:
        (children,) = con.execute("SELECT count(*) FROM risk_scores").fetchone()
        expected = [r[0] for r in con.execute(
            "SELECT score FROM risk_scores WHERE NOT center_known ORDER BY score DESC").fetchall()]
    path = zone_store("center", month, "review_list")
    with open_center(path, keys.load(keys.CENTER)) as con:
        new = con.execute("SELECT rank, score, atena_no, reasons FROM review_list "
                          "WHERE section = ? ORDER BY rank", [NEW]).fetchall()
        risen = con.execute("SELECT count(*), count(*) FILTER (prev_score IS NULL) FROM review_list "
                            "WHERE section = ?", [RISEN]).fetchone()
        (stored_check,) = con.execute("SELECT key_check FROM zone_key_check").fetchone()
    k = round(0.02 * children)
    assert [r[0] for r in new] == list(range(1, k + 1))
    assert [r[1] for r in new] == pytest.approx(expected[:k])
    assert all(r[3] for r in new)  # every listed child has at least one reason
    with duckdb.connect(str(department_store("shimin", month)), read_only=True) as con:
        atena = {r[0] for r in con.execute("SELECT atena_no FROM jumin").fetchall()}
    assert {r[2] for r in new} <= atena
    # known children with a previous score make the second section (rise=-1 for the test)
    assert risen[0] > 0 and risen[1] == 0
    assert stored_check == key_check(keys.load(keys.CENTER))
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700


def test_no_personal_data_reaches_the_event_log(env) -> None:
    results, instance, inbox, *_ = env
    with open_center(zone_store("center", MONTHS[1], "review_list"), keys.load(keys.CENTER)) as con:
        atena = [r[0] for r in con.execute("SELECT atena_no FROM review_list").fetchall()]
    logged = json.dumps([repr(e) for r in results.values() for e in instance.all_logs(r.run_id)],
                        ensure_ascii=False)
    assert atena and not any(a in logged for a in atena)


def test_without_the_center_key_the_list_is_not_written(env, monkeypatch, tmp_path: Path) -> None:
    monkeypatch.delenv("KODOMO_DEMO")
    monkeypatch.setenv("KODOMO_CENTER_KEY_FILE", str(tmp_path / "absent.key"))
    monkeypatch.setenv("KODOMO_HOME", str(env[3]))
    before = zone_store("center", MONTHS[0], "review_list").stat().st_mtime_ns
    result = run([review_list], MONTHS[0])
    assert "センター鍵がありません" in failure_message(result)
    assert zone_store("center", MONTHS[0], "review_list").stat().st_mtime_ns == before


def test_every_asset_that_crosses_a_zone_reports_column_lineage(env) -> None:
    results, *_ = env
    lineage = {}
    for event in results[MONTHS[1]].get_asset_materialization_events():
        mat = event.event_specific_data.materialization
        if "dagster/column_lineage" in mat.metadata:
            lineage["/".join(mat.asset_key.path)] = mat.metadata["dagster/column_lineage"].value
    assert set(lineage) == {"linkage/pupil_links", "analysis/linked_children", "analysis/risk_scores",
                            "center/review_list"}
    review = lineage["center/review_list"].deps_by_column
    assert {d.asset_key.path[-1] for d in review["atena_no"]} == {"risk_scores", "jumin"}


def test_the_center_zone_is_encrypted_at_rest(env) -> None:
    path = zone_store("center", MONTHS[1], "review_list")
    with open_center(path, keys.load(keys.CENTER)) as con:
        atena = [r[0] for r in con.execute("SELECT atena_no FROM review_list").fetchall()]
    blob = path.read_bytes()
    assert atena and not any(a.encode() in blob for a in atena)
    with pytest.raises(duckdb.Error, match="encrypted"):
        duckdb.connect(str(path), read_only=True)
    with pytest.raises(PermissionError, match="センター鍵"), open_center(path, bytes(32)):
        pass

"""必要最小限の確認 through Dagster: the item_worth asset on a generated month, its own job."""

import json
import re
import shutil

import pandas as pd
import pytest
from dagster import AssetKey, DagsterInstance, materialize

from kodomo_assets.definitions import defs
from kodomo_assets.defs.analysis import linked_children
from kodomo_assets.defs.linkage import pupil_links
from kodomo_assets.defs.scoring.item_worth import KEY, TABLE, item_worth
from kodomo_assets.defs.sources import inbox_receipt, source_assets
from kodomo_assets.demo import generate
from kodomo_assets.lib.policy.pseudonym import TOKEN_PATTERN
from kodomo_assets.lib.scoring import item_worth as iw
from kodomo_assets_tests.conftest import APPROVE, demo_env, edited_approval
from kodomo_assets_tests.runs import failures, metadata, run

MONTH = "2022-10"
QUICK = {
    "ops": {"analysis__item_worth": {"config": {"folds": 2}}}
}  # the test's time, not the figures'


@pytest.fixture(scope="module")
def reviewed(tmp_path_factory: pytest.TempPathFactory):
    """One month up to the linked table, then the review twice: with the approval list as it
    is, and with one more item approved (施設名) that no column reads."""
    generated = tmp_path_factory.mktemp("generated")
    generate(generated, residents=15000, months=[MONTH], seed=8)
    inbox = tmp_path_factory.mktemp("inbox")
    shutil.copytree(generated / MONTH, inbox / MONTH)
    edited = edited_approval(tmp_path_factory.mktemp("policy"), "施設名", "hoiku.csv", **APPROVE)
    with demo_env(inbox, tmp_path_factory) as storage:
        instance = DagsterInstance.ephemeral()
        upstream = run(
            [inbox_receipt, *source_assets, pupil_links, linked_children], MONTH, storage, instance
        )
        assert upstream.success, failures(upstream)
        results, tables = [], []
        for policy in (None, edited):
            with pytest.MonkeyPatch.context() as mp:
                if policy:
                    mp.setenv("KODOMO_POLICY", str(policy))
                results.append(
                    materialize(
                        [item_worth],
                        partition_key=MONTH,
                        instance=instance,
                        resources={"storage": storage},
                        run_config=QUICK,
                        raise_on_error=False,
                    )
                )
            assert results[-1].success, failures(results[-1])
            with storage.open(storage.zone_store("analysis", MONTH, TABLE)) as con:
                tables.append(con.execute(f"SELECT * FROM {TABLE}").df())
        yield results, tables, instance, storage


def test_the_review_names_items_to_drop_and_items_to_keep(reviewed) -> None:
    results, (table, _), *_ = reviewed
    items = table[table["level"] == iw.ITEM].set_index(["dataset", "item"])
    verdicts = items["verdict"].value_counts()
    assert verdicts[iw.DROP] >= 1 and verdicts[iw.NEEDED] >= 1
    # a column that never varies on this month's data (教育扶助) costs exactly nothing
    welfare_aid = items.loc[("生活保護", "扶助種別")]
    assert welfare_aid["verdict"] == iw.DROP and welfare_aid["auc_drop"] == 0
    assert (
        items.loc[("住民基本台帳", "生年月日"), "verdict"] == iw.NEEDED
    )  # it defines the children
    # approved, read by no column: the council's second list
    assert items.loc[("学齢簿・就学援助", "学校名"), "verdict"] == iw.UNREAD
    assert items.loc[("学齢簿・就学援助", "宛名番号"), "verdict"] == iw.LINK_ONLY
    # every refitted row has its figures against the full model; no outcomes returned yet
    refit = table[table["auc"].notna()]
    assert ((refit["auc"] - (table.iloc[0]["auc"] - refit["auc_drop"])).abs() < 1e-12).all()
    assert table["ppv_verified"].isna().all() and (table["verified_outcomes"] == 0).all()
    checks = results[0].get_asset_check_evaluations()
    assert checks and all(c.passed for c in checks)


def test_the_same_seed_gives_the_same_figures(reviewed) -> None:
    _, (first, second), *_ = reviewed
    again = second[second["item"] != "施設名"].reset_index(drop=True)
    pd.testing.assert_frame_equal(first, again)


def test_an_approved_item_that_no_column_reads_is_reported(reviewed) -> None:
    results, (first, second), *_ = reviewed
    assert "施設名" not in set(first["item"])
    row = second[second["item"] == "施設名"].iloc[0]
    assert row["verdict"] == iw.UNREAD and row["dataset"] == "保育所等入所" and pd.isna(row["auc"])
    meta = metadata(results[1])["analysis/item_worth"]
    assert "保育所等入所: 施設名" in meta["unread"]
    assert (
        meta["verdicts"][iw.UNREAD]
        == metadata(results[0])["analysis/item_worth"]["verdicts"][iw.UNREAD] + 1
    )


def test_metadata_and_logs_hold_no_value_about_a_person(reviewed) -> None:
    results, (first, _), instance, storage = reviewed
    meta = metadata(results[0])["analysis/item_worth"]
    assert set(meta) == {
        "dagster/row_count",
        "verdicts",
        "auc_threshold",
        "precision_threshold",
        "noise_floor",
        "folds",
        "seed",
        "full_auc",
        "full_precision_at_k",
        "verified_outcomes",
        "drop_candidates",
        "unread",
        "hurts_most",
        "seconds",
        "materialized_by",
    }
    assert meta["auc_threshold"] == iw.AUC_THRESHOLD and meta["folds"] == 2
    assert sum(meta["verdicts"].values()) == (first["level"] == iw.ITEM).sum()
    with storage.open(storage.zone_store("analysis", MONTH, "linked_children")) as con:
        tokens = [r[0] for r in con.execute("SELECT child_token FROM linked_children").fetchall()]
    with storage.open(storage.department_store("shimin", MONTH)) as con:
        atena = [r[0] for r in con.execute("SELECT atena_no FROM jumin").fetchall()]
    logged = json.dumps(
        [repr(e) for r in results for e in instance.all_logs(r.run_id)], ensure_ascii=False
    )
    assert tokens and not re.search(TOKEN_PATTERN, repr(meta))
    assert not any(t in logged for t in tokens) and not any(a in logged for a in atena)


def test_the_review_has_its_own_job_and_stays_out_of_the_monthly_refresh() -> None:
    refresh = defs.resolve_job_def("monthly_refresh").asset_layer.selected_asset_keys
    review = defs.resolve_job_def("item_worth_review")
    assert KEY not in refresh and AssetKey(["analysis", "risk_scores"]) in refresh
    assert set(review.asset_layer.selected_asset_keys) == {KEY}
    assert "四半期" in review.description and "委員会" in review.description
    assert defs.resolve_schedule_def("monthly_refresh_schedule").job_name == "monthly_refresh"
    node = defs.resolve_asset_graph().get(KEY)
    assert node.tags["sensitive"] == "no" and node.tags["zone"] == "analysis"

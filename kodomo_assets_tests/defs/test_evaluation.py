"""The evaluation and the fairness audit through Dagster, on a generated demo month."""

import json
import re
import shutil
from pathlib import Path

import pytest
from dagster import DagsterInstance

from kodomo_assets.defs.analysis import linked_children
from kodomo_assets.defs.evaluation import evaluation, fairness_audit
from kodomo_assets.defs.linkage import pupil_links
from kodomo_assets.defs.scoring import risk_scores
from kodomo_assets.defs.sources import inbox_receipt, source_assets
from kodomo_assets.demo import generate
from kodomo_assets.lib.platform.storage import KodomoStorage
from kodomo_assets.lib.policy.pseudonym import TOKEN_PATTERN
from kodomo_assets.lib.scoring import evaluation as ev
from kodomo_assets.lib.scoring.indicators import load_indicators
from kodomo_assets_tests.conftest import copy_inbox, demo_env
from kodomo_assets_tests.runs import failures, metadata, run

MONTH = "2022-10"
ASSETS = [
    inbox_receipt,
    *source_assets,
    pupil_links,
    linked_children,
    risk_scores,
    evaluation,
    fairness_audit,
]
MINE = ("analysis/evaluation", "analysis/fairness_audit")


@pytest.fixture(scope="module")
def refreshed(tmp_path_factory: pytest.TempPathFactory):
    generated = tmp_path_factory.mktemp("generated")
    # 60k, not 12k: a 12k town gives the model 25 positives to learn from (CV AUC 0.54) and
    # the best single rule out-recalls it (0.27 against 0.19), which the evaluation reports
    # but which makes "the score beats the rules" untestable. At 60k it is 0.57 against 0.27.
    generate(generated, residents=60000, months=[MONTH], seed=5)
    inbox = copy_inbox(generated, tmp_path_factory.mktemp("inbox"))
    with demo_env(inbox, tmp_path_factory) as storage:
        instance = DagsterInstance.ephemeral()
        result = run(ASSETS, MONTH, storage, instance)
        yield result, instance, storage


def test_the_score_is_evaluated_against_the_planted_needs(refreshed) -> None:
    result, _, storage = refreshed
    assert result.success, failures(result)
    meta = metadata(result)["analysis/evaluation"]
    assert ev.NO_TRUTH not in meta["truth"]
    for name in (
        "auc",
        "precision_at_k",
        "recall_at_k",
        "baseline_auc",
        "baseline_precision_at_k",
        "baseline_recall_at_k",
        "brier",
        "ece",
    ):
        assert isinstance(meta[name], float) and 0 <= meta[name] <= 1, name
    assert meta["k"] == ev.review_k(meta["children_scored"])
    assert meta["planted_needs_unknown"] > 10
    assert meta["best_rule"] in {i.label for i in load_indicators()}
    assert meta["recall_at_k"] > meta["baseline_recall_at_k"]
    assert set(meta["recall_by_kind"]) <= set(ev.KIND_LABELS.values())
    with storage.open(storage.zone_store("analysis", MONTH, "evaluation")) as con:
        tables = {
            t
            for (t,) in con.execute(
                "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database()"
            ).fetchall()
        }
        assert tables == set(ev.EVALUATION_TABLES)
        assert con.execute("SELECT count(*) FROM calibration").fetchone() == (10,)
        assert con.execute("SELECT count(*) FILTER (best) FROM rules").fetchone() == (1,)
        (recall,) = con.execute("SELECT model FROM metrics WHERE metric = 'recall_at_k'").fetchone()
    assert recall == pytest.approx(meta["recall_at_k"], abs=1e-4)
    checks = [c for c in result.get_asset_check_evaluations() if "/".join(c.asset_key.path) in MINE]
    assert len(checks) == 6 and all(c.passed for c in checks)


def test_the_fairness_audit_covers_the_four_attributes(refreshed) -> None:
    result, _, storage = refreshed
    meta = metadata(result)["analysis/fairness_audit"]
    with storage.open(storage.zone_store("analysis", MONTH, "fairness_audit")) as con:
        gaps = con.execute("SELECT * FROM gaps").df()
        by_group = con.execute("SELECT * FROM by_group").df()
    assert gaps["attribute"].tolist() == list(ev.ATTRIBUTES)
    assert gaps["explanation"].str.len().gt(20).all()
    assert set(by_group["attribute"]) == set(ev.ATTRIBUTES)
    for attr in ev.ATTRIBUTES:
        row = gaps.set_index("attribute").loc[attr]
        if row["disclosable"]:
            assert meta[f"equalized_odds_gap_{attr}"] == pytest.approx(
                row["equalized_odds_gap"], abs=1e-4
            )
        else:  # a gap resting on counts of 1–9 is withheld, in the metadata as in the report
            assert f"equalized_odds_gap_{attr}" not in meta and "秘匿" in row["explanation"]
    assert all(t in meta["explanations"] for t in gaps["explanation"])
    rows = meta["by_group"].splitlines()[2:]  # a markdown table, small groups as "x"
    assert len(rows) == len(by_group)
    for row, (_, full) in zip(rows, by_group.iterrows(), strict=True):
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[1] == full["group"]
        assert (cells[2] == ev.SUPPRESSED) == bool(full["suppressed"])
        if full["suppressed"]:
            assert set(cells[5:]) == {"—"}


def test_no_child_token_reaches_metadata_or_logs(refreshed) -> None:
    result, instance, storage = refreshed
    with storage.open(storage.zone_store("analysis", MONTH, "risk_scores")) as con:
        tokens = [t for (t,) in con.execute("SELECT child_token FROM risk_scores").fetchall()]
    meta = metadata(result)
    text = json.dumps({k: meta[k] for k in MINE}, ensure_ascii=False, default=str)
    logs = json.dumps(
        [
            e.message
            for e in instance.all_logs(result.run_id)
            if e.step_key in ("analysis__evaluation", "analysis__fairness_audit")
        ],
        ensure_ascii=False,
    )
    assert len(tokens) > 1000
    assert not re.search(TOKEN_PATTERN, text) and not re.search(TOKEN_PATTERN, logs)
    assert not any(t in text or t in logs for t in tokens)


def _copy_home(storage: KodomoStorage, to: Path, inbox: Path) -> KodomoStorage:
    """The month's stores and zones with their key table (not the raw archives), under another
    home with the same keys and another inbox."""
    shutil.copytree(storage.home_path, to, ignore=shutil.ignore_patterns("raw", "tmp"))
    return KodomoStorage(
        home=str(to),
        inbox=str(inbox),
        storage_key_file=storage.storage_key_file,
        pseudonym_key_file=storage.pseudonym_key_file,
        center_public_key_file=storage.center_public_key_file,
        mode=storage.mode,
        clock=storage.clock,
    )


def test_without_truth_both_assets_say_so_and_give_no_figures(refreshed, tmp_path: Path) -> None:
    _, _, storage = refreshed
    city = tmp_path / "city"  # a real city: deliveries, no _truth
    (city / MONTH).mkdir(parents=True)
    (city / MONTH / "jumin.csv").write_text("x")
    later = tmp_path / "later"  # the demo's truth describes a later month
    (later / "2022-11").mkdir(parents=True)
    (later / "2022-11" / "jumin.csv").write_text("x")
    (later / "_truth").mkdir()
    (later / "_truth" / "needs.csv").write_text(
        "atena_no,pupil_no,kind,onset_month,known_to_center,confounder\n0000000001,,neglect,2022-07,0,0\n"
    )
    for inbox, says in ((city, "_truth"), (later, "2022-11")):
        elsewhere = _copy_home(storage, tmp_path / f"home-{inbox.name}", inbox)
        result = run([evaluation, fairness_audit], MONTH, elsewhere)
        assert result.success, failures(result)
        for key, meta in metadata(result).items():
            assert ev.NO_TRUTH in meta["truth"] and says in meta["truth"]
            assert not any(k.endswith(("recall_at_k", "_gap_single_parent")) for k in meta), key
        for name, tables in (
            ("evaluation", ev.EVALUATION_TABLES),
            ("fairness_audit", ev.FAIRNESS_TABLES),
        ):
            with elsewhere.open(elsewhere.zone_store("analysis", MONTH, name)) as con:
                # the truth's tables are empty; the district aggregates and the audit by verified
                # outcomes need no truth (none returned here: nothing checked)
                assert all(
                    con.execute(f"SELECT count(*) FROM {t}").fetchone() == (0,)
                    for t in tables
                    if t not in ("district_counts", "verified_by_group")
                )
                if name == "fairness_audit":
                    assert (
                        con.execute("SELECT sum(children) FROM district_counts").fetchone()[0] > 0
                    )
                    assert (
                        con.execute(
                            "SELECT count(*), sum(checked) FROM verified_by_group"
                        ).fetchone()[1]
                        == 0
                    )

"""The same inputs, keys and seed give the same linked table, scores and review list.

The chain up to `center/review_list` is materialised twice, into two homes (each on its
own copy of the inbox: an ingest takes the exports out of it), with the same keys folder
(storage, pseudonym and center keys); every output is compared row for row (scores exactly,
not approximately), and so is the model card beside the scores. The review list is read as
the center does, with its private key.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from kodomo_assets.defs.analysis import linked_children
from kodomo_assets.defs.center import review_list
from kodomo_assets.defs.linkage import pupil_links
from kodomo_assets.defs.scoring import risk_scores
from kodomo_assets.defs.sources import inbox_receipt, source_assets
from kodomo_assets.demo import generate
from kodomo_assets.lib.platform.keys import read_center_private
from kodomo_assets_tests.conftest import make_storage
from kodomo_assets_tests.runs import failures, run

MONTH = "2022-10"
ASSETS = [inbox_receipt, *source_assets, pupil_links, linked_children, risk_scores, review_list]


def refresh(generated: Path, base: Path, keys: Path) -> dict[str, object]:
    """Materialise the chain into a home under `base`, from a copy of the generated inbox;
    return every output as plain rows."""
    inbox = base / "inbox"
    shutil.copytree(generated, inbox)
    storage = make_storage(base / "home", inbox, keys)
    result = run(ASSETS, MONTH, storage)
    assert result.success, failures(result)
    out: dict[str, object] = {}
    with storage.open(storage.zone_store("analysis", MONTH, "linked_children")) as con:
        out["linked_columns"] = con.execute("DESCRIBE linked_children").fetchall()
        out["linked"] = con.execute("SELECT * FROM linked_children ORDER BY child_token").fetchall()
    with storage.open(storage.zone_store("analysis", MONTH, "risk_scores")) as con:
        out["scores"] = con.execute(
            "SELECT child_token, score, rank, reasons, indicators, facts_asof, known_to_center, "
            "center_known FROM risk_scores ORDER BY child_token"
        ).fetchall()
    card = json.loads(storage.zone_file("analysis", MONTH, "model_card.json").read_text())
    out["card"] = card
    center = read_center_private(keys / "center")
    with storage.open_as_center(storage.zone_store("center", MONTH, "review_list"), center) as con:
        out["review"] = con.execute("SELECT * FROM review_list ORDER BY section, rank").fetchall()
        out["review_columns"] = [r[0] for r in con.execute("DESCRIBE review_list").fetchall()]
    meta = {}
    for event in result.get_asset_materialization_events():
        mat = event.event_specific_data.materialization
        meta["/".join(mat.asset_key.path)] = {k: v.value for k, v in mat.metadata.items()}
    out["meta"] = meta
    return out


def test_same_inputs_keys_and_seed_give_identical_outputs(tmp_path: Path, keys: Path) -> None:
    generated = tmp_path / "generated"
    generate(generated, residents=15000, months=[MONTH], seed=4)
    first = refresh(generated, tmp_path / "a", keys)
    second = refresh(generated, tmp_path / "b", keys)

    # the runs did real work: a model with enough positives, a non-empty list
    meta = first["meta"]
    assert meta["analysis/risk_scores"]["training_positives"] >= 20
    n_children = len(first["linked"])
    assert n_children > 2000 and len(first["scores"]) == n_children
    new = [r for r in first["review"] if r[0] == first["review"][0][0]]
    assert len(new) == meta["center/review_list"]["k"] == round(0.02 * n_children)
    assert any(r[3] for r in first["scores"])  # reasons were written

    # identical, row for row
    assert first["linked_columns"] == second["linked_columns"]
    assert first["linked"] == second["linked"]
    assert first["scores"] == second["scores"]
    assert first["card"] == second["card"]
    assert first["review_columns"] == second["review_columns"]
    assert first["review"] == second["review"]
    # and the counts every asset reported
    for key in ("linkage/pupil_links", "analysis/risk_scores", "center/review_list"):
        for name in (
            "dagster/row_count",
            "holdout_precision",
            "holdout_recall",
            "cv_auc_known_to_center",
            "cv_brier",
            "indicators_fired",
            "k",
            "new_suggestions",
        ):
            if name in first["meta"][key]:
                assert first["meta"][key][name] == second["meta"][key][name], (key, name)

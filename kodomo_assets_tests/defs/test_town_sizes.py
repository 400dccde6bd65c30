"""Small towns: the list a town of 12,000 or 30,000 residents gets, against the demo truth.

With twenty to sixty known children the learned model ranks worse than the indicators it
already computes; risk_scores must see that on the town's own known children and rank by
the indicators (lib/ranking). 113,000 residents (the blend wins there) is measured by
scripts/benchmark.py: too slow for a test.
"""

import hashlib
import os

import pytest
from dagster import DagsterInstance

from kodomo_assets.defs.analysis import linked_children
from kodomo_assets.defs.evaluation import evaluation
from kodomo_assets.defs.linkage import pupil_links
from kodomo_assets.defs.scoring import risk_scores
from kodomo_assets.defs.sources import inbox_receipt, source_assets
from kodomo_assets.demo import generate
from kodomo_assets.lib.scoring import ranking
from kodomo_assets_tests.conftest import copy_inbox, make_keys, make_storage
from kodomo_assets_tests.runs import failures, metadata, run

MONTH = "2022-10"
MONTHS = [f"2022-{m:02d}" for m in range(4, 11)]  # half a year of history behind the month
ASSETS = [inbox_receipt, *source_assets, pupil_links, linked_children, risk_scores, evaluation]


@pytest.fixture(scope="module", params=[12_000, 30_000], ids=["12k", "30k"])
def town(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    generated = tmp_path_factory.mktemp("generated")
    generate(generated, residents=request.param, months=MONTHS, seed=42)
    inbox = copy_inbox(generated, tmp_path_factory.mktemp("inbox"))
    # one fixed pseudonym key: the tokens order the folds, so a random key moves a small
    # town's figures by a few children and its blend's bootstrap wins by 30 points
    secrets = tmp_path_factory.mktemp("secrets")
    fd = os.open(secrets / "pseudonym.key", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, (hashlib.sha256(b"test_town_sizes").hexdigest() + "\n").encode())
    os.close(fd)
    storage = make_storage(tmp_path_factory.mktemp("home"), inbox, make_keys(secrets))
    result = run(ASSETS, MONTH, storage, DagsterInstance.ephemeral())
    assert result.success, failures(result)
    meta = metadata(result)
    yield request.param, meta["analysis/risk_scores"], meta["analysis/evaluation"]


def test_a_small_town_ranks_by_its_indicators_and_says_why(town) -> None:
    residents, scores, _ = town
    assert scores["training_positives"] < 100  # the case this is about: few known children
    assert scores["ranking_mode"] == ranking.LABELS[ranking.INDICATORS]
    assert "指標優先とした" in scores["ranking_reason"]
    assert f"{scores['training_positives']} 人" in scores["ranking_reason"]


def test_the_list_is_no_worse_than_the_indicators_and_far_better_than_the_model_alone(town) -> None:
    residents, _, ev = town
    for figure in ("precision_at_k", "recall_at_k"):
        assert ev[figure] >= ev[f"indicators_first_{figure}"], figure
        assert ev[figure] >= ev[f"learned_{figure}"] + 0.1, figure  # about twice, measured
    # over seeds and keys (README): 0.40–0.60 / 0.55–0.70 at 12,000 residents, where one child
    # moves recall by 0.03, and 0.52–0.62 / 0.64–0.74 at 30,000
    assert ev["precision_at_k"] >= 0.4 and ev["recall_at_k"] >= 0.5


def test_no_child_rises_on_its_own_past_consultation(town) -> None:
    residents, scores, _ = town
    # training children are scored out of fold and the indicators never read the center's
    # columns: at 12,000 residents the listed share of children with a past consultation is
    # at most twice their share among all (the bound). At 30,000, 2 of 87 listed
    # children have one, each on indicators of its own: a share, not a rule, so reported only.
    assert 0 <= scores["past_consultation_share"] < 0.05
    if residents == 12_000:
        assert scores["past_consultation_share_listed"] <= 2 * scores["past_consultation_share"]

"""The Dagster UI as a steward sees it, in headless Chromium against a real `dagster dev`:
every asset group on the lineage page, a month materialized from the asset page, the gate
checks listed on the linked assets, and a screenshot."""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from dagster import AssetKey

from kodomo_assets.definitions import defs
from kodomo_assets.demo import generate
from kodomo_assets_tests.conftest import CHROMIUM_ARGS, make_keys, make_storage
from kodomo_assets_tests.ui_server import (
    DagsterDev,
    dev_environment,
    processes_mentioning,
    session_members,
    start_dagster_dev,
)

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

CHROMIUM = Path("/usr/bin/chromium")
MONTH = "2022-10"
STEWARD_ASSET = AssetKey(["sources", "jumin"])
CHECKED_ASSETS = [AssetKey(["linkage", "pupil_links"]), AssetKey(["analysis", "linked_children"])]
MONTHLY = sorted(defs.resolve_job_def("monthly_refresh").asset_layer.selected_asset_keys)
# On localhost the UI pops up "Join the Dagster community" a second after a page loads, over
# whatever is being clicked. A steward's browser remembers its "Skip" in localStorage; so does ours.
DISMISS_COMMUNITY_DIALOG = "window.localStorage.setItem('communityNux', JSON.stringify('1'))"
# The group names of the lineage page: its sidebar tree and the (collapsed) group boxes of the graph.
GROUPS_SHOWN = """() => [
  Array.from(document.querySelectorAll('[aria-label="asset_group"] + [title]')).map(e => e.title),
  Array.from(document.querySelectorAll('foreignObject.group [data-tooltip]'))
    .map(e => e.dataset.tooltip)]"""
TIMEOUT_MS = 30_000


@pytest.fixture
def dagster_ui(tmp_path: Path, request: pytest.FixtureRequest) -> DagsterDev:
    """`dagster dev` on a demo month, with its own inbox, home, keys and instance."""
    inbox, home, secrets, dagster_home = (
        tmp_path / n for n in ("inbox", "home", "secrets", "dagster_home")
    )
    generate(inbox, residents=3000, months=[MONTH], seed=3)
    # the keys provisioned beforehand, outside the home: the pipeline never creates them
    storage = make_storage(home, inbox, make_keys(secrets))
    env = dev_environment(storage, dagster_home, tmp_path / "tmp")
    server = start_dagster_dev(env, tmp_path / "dagster_dev.log")

    def stop() -> None:
        left = server.stop()
        print(
            f"dagster dev stopped by {server.stopped_with} in {server.stop_seconds:.1f}s"
            + "".join(f"\n  SIGKILL: {pid} {cmd[:120]}" for pid, cmd in server.killed)
        )
        assert not left, f"dagster processes left behind: {left}"
        assert not session_members(server.proc.pid)
        strays = processes_mentioning(str(dagster_home))
        assert not strays, f"processes of this test's instance still running: {strays}"

    request.addfinalizer(stop)
    loaded = server.wait_loaded(timeout=90)
    print(f"code location loaded in {loaded:.1f}s")
    return server


@pytest.fixture
def ui_page() -> Iterator[Page]:
    """A headless Chromium tab (Debian's browser: none can be downloaded here)."""
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: scripts/test.sh installs Debian's chromium package "
            "(browsers cannot be downloaded here)"
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail(
            "playwright is not installed: .venv/bin/pip install playwright "
            "(the Python package only; it drives Debian's chromium)"
        )
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1600, "height": 1000})
            context.set_default_timeout(TIMEOUT_MS)
            context.add_init_script(DISMISS_COMMUNITY_DIALOG)
            yield context.new_page()
        finally:
            browser.close()


@contextlib.contextmanager
def step(page: Page, name: str, tmp_path: Path, timings: dict[str, float]) -> Iterator[None]:
    """Time a step; on failure keep what the browser showed."""
    start = time.monotonic()
    try:
        yield
    except BaseException:
        with contextlib.suppress(Exception):
            stem = "failed-" + re.sub(r"\W+", "_", name)
            page.screenshot(path=tmp_path / f"{stem}.png", full_page=True)
            (tmp_path / f"{stem}.html").write_text(page.content())
        print(f"step {name!r} failed; page kept in {tmp_path}")
        raise
    finally:
        timings[name] = round(time.monotonic() - start, 1)


def asset_url(server: DagsterDev, key: AssetKey) -> str:
    return f"{server.url}/assets/{'/'.join(key.path)}"


def shown(locator: Locator) -> None:
    """Wait (generously: expect's own default is 5 s) until LOCATOR is visible."""
    from playwright.sync_api import expect

    expect(locator).to_be_visible(timeout=TIMEOUT_MS)


def test_a_steward_materializes_a_month_in_the_ui(
    ui_page: Page, dagster_ui: DagsterDev, tmp_path: Path
) -> None:
    server, page, timings = dagster_ui, ui_page, {}
    graph = defs.resolve_asset_graph()
    expected_groups = sorted({graph.get(k).group_name for k in graph.get_all_asset_keys()})

    # 1. The lineage page shows every asset group, in its sidebar and as boxes in the graph.
    with step(page, "groups", tmp_path, timings):
        page.goto(f"{server.url}/asset-groups")
        with contextlib.suppress(Exception):  # the assert below says what was missing
            page.wait_for_function(
                f"expected => ({GROUPS_SHOWN})().every(shown => "
                "expected.every(g => shown.includes(g)))",
                arg=expected_groups,
                timeout=TIMEOUT_MS,
            )
        sidebar, boxes = page.evaluate(GROUPS_SHOWN)
        assert sorted(set(sidebar)) == expected_groups, "lineage sidebar"
        assert sorted(set(boxes)) == expected_groups, "lineage graph"

    # 2. A steward materializes one month of an export from its asset page.
    with step(page, "launch", tmp_path, timings):
        page.goto(asset_url(server, STEWARD_ASSET))
        page.get_by_role("button").filter(has_text=re.compile(r"^Materialize…$")).click()
        # On a fresh instance the upstream inbox_receipt has never run: the UI asks first.
        confirm = page.get_by_role("button", name="Confirm", exact=True)
        partitions = page.get_by_placeholder(re.compile(r"^ex: "))
        confirm.or_(partitions).first.wait_for()
        if confirm.is_visible():
            confirm.click()
        partitions.fill(MONTH)
        partitions.press("Enter")
        shown(page.get_by_text("1 partition", exact=True))
        page.get_by_role("button", name="Launch 1 run", exact=True).click()
        # The toast "Launched run <id>" links to the run.
        view = page.locator('a[href*="/runs/"]').filter(has_text=re.compile(r"^View$"))
        run_id = view.first.get_attribute("href").rstrip("/").rsplit("/", 1)[1]

    with step(page, "run", tmp_path, timings):
        run = server.wait_run(run_id, timeout=120)
        assert run["status"] == "SUCCESS", f"run {run_id}: {run['status']}\n{server.log_tail()}"
        tags = {t["key"]: t["value"] for t in run["tags"]}
        assert tags.get("dagster/partition") == MONTH
        assert tags.get("dagster/from_ui") == "true"
        assert [a["path"] for a in run["assetSelection"]] == [STEWARD_ASSET.path]
        assert [r["runId"] for r in server.runs()] == [run_id], "the UI launched one run"

    # 3. The run page reports the success; keep a screenshot of it.
    with step(page, "screenshot", tmp_path, timings):
        page.goto(f"{server.url}/runs/{run_id}")
        shown(page.get_by_text("Success", exact=True).first)  # the run's status tag
        shown(page.get_by_text("Succeeded (1)", exact=True))  # the step list
        shot = tmp_path / "dagster_run.png"
        page.screenshot(path=shot)
        assert shot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
        assert shot.stat().st_size > 20_000, shot.stat().st_size

    # 4. The gate checks are listed on the linked assets' Checks tab before they ever run.
    for key in CHECKED_ASSETS:
        with step(page, f"checks {key.to_user_string()}", tmp_path, timings):
            expected = sorted(c.name for c in graph.get_check_keys_for_assets({key}))
            assert {"approved_columns", "no_denied_columns", "content_scan"} <= set(expected), (
                f"{key.to_user_string()} has checks {expected}"
            )
            page.goto(asset_url(server, key))
            page.get_by_role("tab", name="Checks", exact=True).click()
            shown(page.get_by_text(f"Checks ({len(expected)})", exact=True))
            for name in expected:  # a row of the check list (not evaluated yet)
                shown(page.get_by_title(name, exact=True).first)

    print("timings (s):", timings)


BACKFILL_MONTHS = ["2022-09", "2022-10"]
BACKFILLS_QUERY = """query { partitionBackfillsOrError { __typename
  ... on PartitionBackfills { results { id status isAssetBackfill } } } }"""
MATERIALIZED_QUERY = """query Mat($path: [String!]!, $partitions: [String!]) {
  assetOrError(assetKey: {path: $path}) { __typename
    ... on Asset { assetMaterializations(partitions: $partitions) { partition timestamp runId } } } }"""


@pytest.fixture
def two_months_ui(tmp_path: Path, request: pytest.FixtureRequest) -> DagsterDev:
    """`dagster dev` on two demo months (a town large enough for the score to train)."""
    inbox, home, secrets = (tmp_path / n for n in ("inbox", "home", "secrets"))
    generate(inbox, residents=9000, months=BACKFILL_MONTHS, seed=3)
    storage = make_storage(home, inbox, make_keys(secrets))
    server = start_dagster_dev(
        dev_environment(storage, tmp_path / "dagster_home", tmp_path / "tmp"),
        tmp_path / "dagster_dev.log",
    )
    request.addfinalizer(server.stop)
    server.wait_loaded(timeout=90)
    return server


def _materialized(server: DagsterDev, key: AssetKey) -> dict[str, float]:
    found = server.graphql(MATERIALIZED_QUERY, {"path": key.path, "partitions": BACKFILL_MONTHS})
    return {
        m["partition"]: float(m["timestamp"])
        for m in found["assetOrError"]["assetMaterializations"]
    }


def test_a_steward_backfills_two_months_in_order_from_the_ui(
    ui_page: Page, two_months_ui: DagsterDev, tmp_path: Path
) -> None:
    """README: the lineage page, the monthly refresh's assets (job:"monthly_refresh"),
    Materialize all…, a range of months, Launch backfill. Dagster backfills them as assets,
    and the order is the graph's: October's list only after September's list, scores and
    results, however the runs overlap; no month past the range is touched."""
    server, page, timings = two_months_ui, ui_page, {}
    with step(page, "launch backfill", tmp_path, timings):
        page.goto(f"{server.url}/asset-groups")
        search = page.get_by_label("Search and filter assets")
        search.focus()
        page.keyboard.type('job:"monthly_refresh"')
        page.keyboard.press("Enter")
        page.get_by_role("button").filter(has_text=re.compile(r"^Materialize all…$")).first.click()
        dialog = page.locator('[role="dialog"]').first
        shown(dialog.get_by_text(f"Launch runs to materialize {len(MONTHLY)} assets", exact=True))
        partitions = page.get_by_placeholder(re.compile(r"^ex: "))
        partitions.fill(f"[{BACKFILL_MONTHS[0]}...{BACKFILL_MONTHS[-1]}]")
        partitions.press("Enter")
        shown(dialog.get_by_text("2 partitions", exact=True))
        page.get_by_role("button", name="Launch backfill", exact=True).click()

    with step(page, "backfill", tmp_path, timings):
        deadline = time.monotonic() + 600
        backfill: dict = {}
        while time.monotonic() < deadline:
            found = server.graphql(BACKFILLS_QUERY)["partitionBackfillsOrError"]["results"]
            backfill = found[0] if found else {"status": "NOT YET"}  # the launch lands in a moment
            assert len(found) <= 1
            if backfill["status"] not in ("NOT YET", "REQUESTED", "CANCELING"):
                break
            time.sleep(5)
        assert backfill["status"] == "COMPLETED_SUCCESS", f"{backfill}\n{server.log_tail()}"
        assert backfill["isAssetBackfill"]

    done = {key: _materialized(server, key) for key in MONTHLY}
    assert all(sorted(d) == BACKFILL_MONTHS for d in done.values()), (
        "every asset, both months, no more"
    )
    review, scores = AssetKey(["center", "review_list"]), AssetKey(["analysis", "risk_scores"])
    feedback = AssetKey(["center", "verification_feedback"])
    september, october = BACKFILL_MONTHS
    assert done[review][october] > max(
        done[review][september],
        done[scores][september],
        done[feedback][october],
        done[scores][october],
    )
    assert not server.graphql(
        MATERIALIZED_QUERY, {"path": ["analysis", "item_worth"], "partitions": None}
    )["assetOrError"]["assetMaterializations"]  # not part of the refresh
    print("timings (s):", timings)

"""The committee's monthly report on a generated month: readable, aggregate only, offline."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from dagster import DagsterInstance

from kodomo_assets.defs.analysis import linked_children
from kodomo_assets.defs.center import review_list
from kodomo_assets.defs.committee import committee_report
from kodomo_assets.defs.evaluation import evaluation, fairness_audit
from kodomo_assets.defs.linkage import pupil_links
from kodomo_assets.defs.scoring import risk_scores
from kodomo_assets.defs.sources import inbox_receipt, source_assets
from kodomo_assets.demo import generate
from kodomo_assets.lib.export import access_log_path, export_review_list
from kodomo_assets.lib.lineage_diagram import draw
from kodomo_assets.lib.linked_table import load_spec, plan
from kodomo_assets.lib.platform.keys import read_center_private
from kodomo_assets.lib.policy import load_policy
from kodomo_assets.lib.registry import load_registry
from kodomo_assets_tests.conftest import copy_inbox, demo_env
from kodomo_assets_tests.runs import failures, run

MONTH = "2022-10"
ASSETS = [inbox_receipt, *source_assets, pupil_links, linked_children, risk_scores, review_list,
          evaluation, fairness_audit, committee_report]
PURPOSE = "ケース会議"  # a 利用目的コード; the report shows its 名称


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory):
    generated = tmp_path_factory.mktemp("generated")
    generate(generated, residents=20000, months=[MONTH], seed=12)
    inbox = copy_inbox(generated, tmp_path_factory.mktemp("inbox"))
    with demo_env(inbox, tmp_path_factory) as storage:
        instance = DagsterInstance.ephemeral()
        first = run(ASSETS, MONTH, storage, instance)
        assert first.success, failures(first)
        center = read_center_private(Path(storage.storage_key_file).parent / "center")
        export_review_list(storage, center, MONTH, tmp_path_factory.mktemp("out") / "list.csv", PURPOSE)
        again = run([committee_report], MONTH, storage, instance)
        assert again.success, failures(again)
        path = storage.report_path(MONTH)
        yield path.read_text(encoding="utf-8"), path, generated, storage


def _visible(html: str) -> str:
    """The page without its data URIs (images, the embedded font): base64 is not text."""
    return re.sub(r"data:[a-z/]+;base64,[A-Za-z0-9+/=]+", "", html)


def test_self_contained_and_offline(report) -> None:
    html, *_ = report
    assert "data:font/ttf;base64," in html and html.count("data:image/png;base64,") >= 3
    text = _visible(html).lower()
    for forbidden in ("http://", "https://", "<script", "@import", "<link", "src=\"/", "url(/"):
        assert forbidden not in text


def test_no_identifier_of_the_month_appears(report) -> None:
    html, _, generated, storage = report
    text = _visible(html)
    with storage.open(storage.department_store("shimin", MONTH)) as con:
        names, atena, addresses = (
            [r[0] for r in con.execute(f"SELECT DISTINCT {c} FROM jumin WHERE {c} IS NOT NULL").fetchall()]
            for c in ("name", "atena_no", "address"))
    raw = (generated / MONTH / "jumin.csv").read_bytes().decode("cp932", errors="replace")
    my_numbers = set(re.findall(r"(?<![0-9])[0-9]{12}(?![0-9])", raw))
    assert names and atena and addresses and my_numbers
    for value in (*names, *atena, *addresses, *my_numbers):
        assert value not in text, "an identifier reached the report"


def test_no_unsuppressed_count_below_ten(report) -> None:
    html, *_ = report
    cells = re.findall(r'<td class="n">([^<]*)</td>', html)
    assert len(cells) > 100
    for cell in cells:
        value = cell.strip().replace(",", "")
        assert value in ("x", "—", "0") or int(value) >= 10, cell
    assert "x" in cells  # the demo month does have small cells, and they are hidden
    # the linked table's column labels state caps ("世帯人数（6人以上は6）"), not counts
    text = _visible(html)
    for label in plan(load_spec(), load_policy().for_month(MONTH)).labels().values():
        text = text.replace(label, "")
    for sentence in re.findall(r"(?<![0-9.,])[1-9]\s*(?:人|件|世帯)", text):
        pytest.fail(f"a small count inside a sentence: {sentence}")


def test_the_diagram_is_drawn_from_the_registry_and_lists_every_dataset(report) -> None:
    html, *_ = report
    approval = load_policy().for_month(MONTH)
    diagram = draw(load_registry(), approval, plan(load_spec(), approval))
    alt = re.search(r'alt="データの流れ: ([^"]*)"', html).group(1)
    for ds in load_registry().datasets.values():
        assert any(ds.label in label for label in diagram.labels)
        assert ds.label in alt
    assert diagram.png.startswith(b"\x89PNG")


def test_a_reviewer_can_answer_from_the_report(report) -> None:
    html, *_ = report
    text = _visible(html)
    assert "諮問第65号" in text and "承認期間内" in text and "○" in text  # under which approval
    assert "連携テーブルの列と元の項目" in text  # which fields left which department
    assert "指標ごとの該当児童数" in text and "町丁目ごとの" in text  # how many flagged
    assert "ケース会議（個別ケース検討会議）" in text  # who looked at the list, and why
    assert "モデルカード" in text and "最良の単一ルール" in text


def test_the_report_opens_in_headless_chromium(report, tmp_path: Path) -> None:
    _, path, *_ = report
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    assert browser, "Debian's chromium is installed by scripts/test.sh"
    shot = tmp_path / "report.png"
    subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1280,2000",
         path.as_uri()],
        check=True, capture_output=True, timeout=120)
    assert shot.read_bytes().startswith(b"\x89PNG") and shot.stat().st_size > 50_000


def test_an_edited_access_log_line_shows_in_the_report_and_fails_its_check(report) -> None:
    """A steward who rewrites who exported the list: the signature no longer holds."""
    *_, storage = report
    log = access_log_path(storage)
    kept = log.read_bytes()
    try:
        first, *rest = kept.decode("utf-8").splitlines()
        entry = json.loads(first)
        log.write_text("\n".join([json.dumps({**entry, "user": "someone-else"}, ensure_ascii=False), *rest])
                       + "\n", encoding="utf-8")
        result = run([committee_report], MONTH, storage)
        (check,) = result.get_asset_check_evaluations()
        assert check.check_name == "records_intact" and not check.passed
        html = storage.report_path(MONTH).read_text(encoding="utf-8")
        assert "改ざんの疑い（1 行目以降）" in html
    finally:
        log.write_bytes(kept)
    result = run([committee_report], MONTH, storage)
    (check,) = result.get_asset_check_evaluations()
    assert check.passed and "検証済み" in storage.report_path(MONTH).read_text(encoding="utf-8")


def test_every_time_the_council_reads_is_in_japan_time(report) -> None:
    html, *_ = report
    times = re.findall(r"20[0-9]{2}-[0-9]{2}-[0-9]{2}T[0-9:]{8}([+-][0-9:]{5}|Z)?", _visible(html))
    assert times and set(times) == {"+09:00"}
    assert "日本時間" in html and "UTC" not in _visible(html)

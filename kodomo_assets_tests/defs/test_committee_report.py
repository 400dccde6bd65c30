"""The committee's monthly report on a generated month: readable, aggregate only, offline."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from dagster import DagsterInstance

from kodomo_assets.definitions import ASSETS
from kodomo_assets.defs.committee import committee_report
from kodomo_assets.demo import generate
from kodomo_assets.demo.center import check_list
from kodomo_assets.lib.center.export import access_log_path, export_review_list
from kodomo_assets.lib.platform.keys import read_center_private
from kodomo_assets.lib.policy.approval import load_policy
from kodomo_assets.lib.registry import load_registry
from kodomo_assets.lib.reporting import report as R
from kodomo_assets.lib.reporting.figures import figures_section
from kodomo_assets.lib.reporting.lineage_diagram import draw
from kodomo_assets.lib.scoring.linked_table import load_spec, plan
from kodomo_assets_tests.conftest import CHROMIUM_ARGS, at, copy_inbox, demo_env
from kodomo_assets_tests.runs import failures, run

MONTH, BEFORE = "2022-10", "2022-09"
NOTES = "区分,内容,対応\n連携,学齢簿の住所に番地の表記揺れが多い,学務課に表記の統一を依頼\n運用,090-1234-5678 の保護者から問合せ,\n"
PURPOSE = "ケース会議"  # a 利用目的コード; the report shows its 名称


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory):
    """Two months as in use: September's refresh, the (demo) center's results for its list,
    October's refresh, an export, a steward's notes, and October's report again."""
    generated = tmp_path_factory.mktemp("generated")
    generate(generated, residents=16000, months=[BEFORE, MONTH], seed=12)
    inbox = copy_inbox(generated, tmp_path_factory.mktemp("inbox"))
    with demo_env(inbox, tmp_path_factory) as storage:
        instance = DagsterInstance.ephemeral()
        center = read_center_private(Path(storage.storage_key_file).parent / "center")
        september = run(ASSETS, BEFORE, storage, instance)
        assert september.success, failures(september)
        assert check_list(storage, center, BEFORE, inbox / "_truth").rows > 0
        first = run(ASSETS, MONTH, storage, instance)  # October's run takes September's results
        assert first.success, failures(first)
        export_review_list(
            storage, center, MONTH, tmp_path_factory.mktemp("out") / "list.csv", PURPOSE
        )
        notes = storage.home_path / "committee_notes" / f"{MONTH}.csv"
        notes.parent.mkdir()
        notes.write_text(NOTES, encoding="utf-8")
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
    for forbidden in ("http://", "https://", "<script", "@import", "<link", 'src="/', "url(/"):
        assert forbidden not in text


def test_no_identifier_of_the_month_appears(report) -> None:
    html, _, generated, storage = report
    text = _visible(html)
    with storage.open(storage.department_store("shimin", MONTH)) as con:
        names, atena, addresses = (
            [
                r[0]
                for r in con.execute(
                    f"SELECT DISTINCT {c} FROM jumin WHERE {c} IS NOT NULL"
                ).fetchall()
            ]
            for c in ("name", "atena_no", "address")
        )
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


def _sections(text: str) -> list[str]:
    return re.findall(r"<h2>([^<]*)</h2>", text)


def test_the_first_page_answers_the_councils_questions_in_order(report) -> None:
    """Conclusions first, then each question of the minutes (2022-10-11) in its order."""
    html, *_ = report
    text = _visible(html)
    assert _sections(text)[:4] == [
        "要点（審議会の皆さまへ）",
        "1. 確認の結果（分析結果の検証）",
        "2. 傾向分析",
        "3. 課題",
    ]
    assert _sections(text)[-2:] == [
        "付録A 承認リスト（別紙 個人情報項目）",
        "付録B データの流れ（列の系譜）",
    ]
    first = text.split("<h2>1. 確認の結果")[0]
    lead = re.search(r'<ul class="lead">(.*?)</ul>', first, re.S).group(1)
    items = re.findall(r"<li>(.*?)</li>", lead)
    assert "11 種類のデータのうち 11 種類を処理した" in items[0] and "両方を含む" in items[0]
    assert (
        "示唆された児童" in items[1]
        and "センターが確認した児童" in items[2]
        and "陽性的中率" in items[2]
    )
    assert "順位付けは指標優先" in items[1]  # which order the list used (why: section 6)
    assert (
        items[3].startswith("主な課題")
        and "プッシュ型の支援" in items[4]
        and "要否も判定しない" in items[4]
    )
    asked = [
        "プッシュ型の支援",
        "子ども家庭支援センターだけ",
        "表に現れないケース",
        "千差万別",
        "目標と課題",
        "セキュリティ",
        "令和5年度以降",
        "地方税情報なしで",
    ]
    positions = [first.index(q) for q in asked]
    assert positions == sorted(positions)
    fingerprint = re.search(r"指紋 ([0-9a-f]{16})", first).group(1)  # from the configured key
    *_, storage = report
    assert storage.center_public().fingerprint == fingerprint


def test_the_report_shows_the_centers_checking_trends_and_problems(report) -> None:
    html, *_ = report
    text = _visible(html)
    verification = text.split("<h2>1. 確認の結果")[1].split("<h2>2.")[0]
    rows = re.findall(r"<tr><td>(2022-[01][0-9])</td>((?:<td[^>]*>[^<]*</td>)+)</tr>", verification)
    assert [m for m, _ in rows] == [BEFORE, MONTH]  # a row for every list so far
    assert (
        "指標ごとの陽性的中率" in verification and "群ごとの選ばれる率と陽性的中率" in verification
    )
    trends = text.split("<h2>2. 傾向分析")[1].split("<h2>3.")[0]
    assert "指標の重なり" in trends and "年齢・世帯の型ごと" in trends
    assert f"<th>{BEFORE}</th><th>{MONTH}</th>" in trends  # districts across both months
    problems = text.split("<h2>3. 課題")[1].split("<h2>4.")[0]
    assert "学齢簿の住所に番地の表記揺れが多い — 対応: 学務課に表記の統一を依頼" in problems
    assert "3行目: 電話番号の疑いがあるため載せません" in problems and "1234" not in problems
    assert "隔離" in problems  # the quarantine of the month, per department


def test_the_report_is_rerendered_after_the_period_and_says_so(report) -> None:
    """Re-rendering an aggregate report is never refused; it states both facts."""
    *_, storage = report
    later = at(storage, "2026-11-29")
    result = run([committee_report], MONTH, later)
    assert result.success, failures(result)
    text = _visible(storage.report_path(MONTH).read_text(encoding="utf-8"))
    assert "基準月 2022-10 は承認期間内" in text and "処理日 2026-11-29 は承認期間外" in text
    assert "2022-04-01〜2023-03-31" in text and "は終了" in text
    again = run([committee_report], MONTH, storage)
    assert again.success and "処理日 2022-11-02 は承認期間内" in storage.report_path(
        MONTH
    ).read_text(encoding="utf-8")


def test_a_reviewer_can_answer_from_the_report(report) -> None:
    html, *_ = report
    text = _visible(html)
    assert "諮問第65号" in text and "承認期間内" in text and "○" in text  # under which approval
    assert "連携テーブルの列と元の項目" in text  # which fields left which department
    assert "指標ごとの該当児童数" in text and "町丁目ごとの" in text  # how many flagged
    assert "ケース会議（個別ケース検討会議）" in text  # who looked at the list, and why
    assert "モデルカード" in text and "最良の単一ルール" in text
    model = text.split("<h2>6.")[1].split("<h2>7.")[0]
    assert "確認リストの順位付け" in model and "再標本化" in model and "指標優先" in model


def test_the_report_opens_in_headless_chromium(report, tmp_path: Path) -> None:
    _, path, *_ = report
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    assert browser, "Debian's chromium is installed by scripts/test.sh"
    shot = tmp_path / "report.png"
    subprocess.run(
        [
            browser,
            "--headless",
            *CHROMIUM_ARGS,
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--screenshot={shot}",
            "--window-size=1280,2000",
            path.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    assert shot.read_bytes().startswith(b"\x89PNG") and shot.stat().st_size > 50_000


def test_an_edited_access_log_line_shows_in_the_report_and_fails_its_check(report) -> None:
    """A steward who rewrites who exported the list: the signature no longer holds."""
    *_, storage = report
    log = access_log_path(storage)
    kept = log.read_bytes()
    try:
        first, *rest = kept.decode("utf-8").splitlines()
        entry = json.loads(first)
        log.write_text(
            "\n".join([json.dumps({**entry, "user": "someone-else"}, ensure_ascii=False), *rest])
            + "\n",
            encoding="utf-8",
        )
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


def test_the_listed_column_follows_the_lists_recorded_k_and_is_never_derived(report) -> None:
    """The report's 確認リスト掲載 counts come from the k the review list recorded; without
    it (no list yet) the column says — instead of a k of its own."""
    storage = report[3]

    def listed_column(k: int | None) -> list[str]:
        parts, _ = figures_section(storage, MONTH, {}, {}, k)
        return [row[2] for row in parts[0].rows]

    assert set(listed_column(None)) == {"—"}
    assert set(listed_column(1)) <= {"0", R.MASK}  # one child listed at most
    assert any(cell not in ("0", R.MASK) for cell in listed_column(10**6))

"""The linkage and analysis zones through Dagster: the full refresh, and every leak path.

Each leak test ends with nothing forbidden in the analysis zone and a message that says
what was refused and why.
"""

import csv
import io
import json
import shutil
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from dagster import DagsterInstance, ExecuteInProcessResult

from kodomo_assets.defs.analysis import linked_children
from kodomo_assets.defs.linkage import pupil_links
from kodomo_assets.defs.sources import inbox_receipt, source_assets
from kodomo_assets.demo import generate
from kodomo_assets.lib.linked_table import load_spec, plan
from kodomo_assets.lib.paths import department_store, zone_store
from kodomo_assets.lib.policy import load_policy
from kodomo_assets_tests.conftest import demo_env
from kodomo_assets_tests.lib.test_policy import APPROVE, _edited
from kodomo_assets_tests.runs import failures, metadata, run

MONTH = "2022-10"
ASSETS = [inbox_receipt, *source_assets, pupil_links, linked_children]
MY_NUMBER = "123456789018"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("inbox")
    generate(out, residents=12000, months=[MONTH], seed=5)
    return out


@pytest.fixture
def inbox(demo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private copy of the month's files, and a private home."""
    copy = tmp_path / "inbox"
    shutil.copytree(demo / MONTH, copy / MONTH)
    monkeypatch.setenv("KODOMO_INBOX", str(copy))
    monkeypatch.setenv("KODOMO_HOME", str(tmp_path / "home"))
    return copy


def refresh(month: str = MONTH) -> tuple[ExecuteInProcessResult, DagsterInstance]:
    instance = DagsterInstance.ephemeral()
    return run(ASSETS, month, instance), instance


def analysis_zone_is_clean(month: str = MONTH) -> None:
    folder = zone_store("analysis", month, "linked_children").parents[1]
    assert not any(p.is_file() for p in folder.rglob("*"))


def rewrite_gakurei(inbox: Path, edit) -> None:
    """Decode gakurei.csv as delivered, let `edit` change the parsed rows, write it back."""
    path = inbox / MONTH / "gakurei.csv"
    raw = path.read_bytes()
    encoding = "utf-8-sig" if raw.startswith(b"\xef\xbb\xbf") else "cp932"
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError:
        encoding, text = "utf-8", raw.decode("utf-8")
    rows = [r for r in csv.reader(io.StringIO(text)) if r]
    edit(rows)
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n").writerows(rows)
    path.write_bytes(buf.getvalue().encode(encoding))


# -- the full refresh -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def refreshed(demo: Path, tmp_path_factory: pytest.TempPathFactory):
    with demo_env(demo, tmp_path_factory) as (home, _):
        result, instance = refresh()
        yield result, instance, home


def test_the_full_refresh_publishes_one_row_per_child(refreshed, demo: Path, monkeypatch) -> None:
    result, _, home = refreshed
    assert result.success, failures(result)
    monkeypatch.setenv("KODOMO_HOME", str(home))
    truth = pd.read_parquet(demo / "_truth" / "persons.parquet")
    with duckdb.connect(str(department_store("shimin", MONTH)), read_only=True) as con:
        born = con.execute("SELECT birth_date FROM jumin").df().birth_date
    asof = pd.Timestamp("2022-10-31")
    born = born[born <= asof]
    age = asof.year - born.dt.year - ((born.dt.month * 100 + born.dt.day) > 1031)
    p = plan(load_spec(), load_policy().for_month(MONTH))
    with duckdb.connect(str(zone_store("analysis", MONTH, "linked_children")), read_only=True) as con:
        assert [t for (t,) in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()] == [
            "linked_children"]
        columns = [r[0] for r in con.execute("DESCRIBE linked_children").fetchall()]
        n, tokens = con.execute("SELECT count(*), count(DISTINCT child_token) FROM linked_children").fetchone()
        pupils = con.execute("SELECT count(*) FILTER (pupil) FROM linked_children").fetchone()[0]
    assert columns == p.columns
    assert n == tokens == int((age <= 17).sum())
    assert pupils > 0.95 * int(((truth.pupil_no != "") & truth.resident).sum())
    meta = metadata(result)["analysis/linked_children"]
    lineage = meta["dagster/column_lineage"].deps_by_column
    assert set(lineage) == set(columns)
    assert {d.asset_key.path[-1] for d in lineage["school"]} == {"gakurei", "pupil_links"}
    assert [d.column_name for d in lineage["child_token"]] == ["atena_no"]
    checks = result.get_asset_check_evaluations()
    assert len(checks) == 6 and all(c.passed for c in checks)


def test_link_quality_is_measured_and_meets_the_figures(refreshed) -> None:
    result, _, _ = refreshed
    meta = metadata(result)["linkage/pupil_links"]
    assert meta["holdout_pairs"] > 50
    assert meta["holdout_precision"] >= 0.995 and meta["holdout_recall"] >= 0.98
    assert meta["twins_cross_linked"] == 0
    assert meta["linked_probabilistically"] > 0
    assert meta["matching_fields"] == ["address", "birth_date", "name_kana", "sex"]


def test_the_analysis_zone_holds_pseudonyms_and_no_raw_identifier(refreshed, demo: Path,
                                                                  monkeypatch) -> None:
    result, instance, home = refreshed
    monkeypatch.setenv("KODOMO_HOME", str(home))
    truth = pd.read_parquet(demo / "_truth" / "persons.parquet")
    path = zone_store("analysis", MONTH, "linked_children")
    blob = path.read_bytes()
    for value in truth.atena_no[truth.atena_no != ""].sample(300, random_state=1):
        assert value.encode() not in blob
    logged = json.dumps([repr(e) for e in instance.all_logs(result.run_id)], ensure_ascii=False)
    for value in [*truth.atena_no.sample(100, random_state=2), *truth.kana.sample(100, random_state=3)]:
        assert not value or value not in logged


# -- leak paths ------------------------------------------------------------------------------

def test_an_extra_my_number_column_in_gakurei_is_dropped_at_the_door(inbox: Path) -> None:
    def add_column(rows: list[list[str]]) -> None:
        rows[0].append("個人番号")
        for r in rows[1:]:
            r.append(MY_NUMBER)

    rewrite_gakurei(inbox, add_column)
    result, instance = refresh()
    assert result.success, failures(result)
    assert metadata(result)["sources/gakurei"]["dropped_forbidden_columns"] == ["個人番号"]
    warnings = [e.message for e in instance.all_logs(result.run_id) if "禁止項目" in (e.message or "")]
    assert any("gakurei.csv" in w and "個人番号" in w for w in warnings)
    for store, table in ((department_store("gakumu", MONTH), "gakurei"),
                         (zone_store("analysis", MONTH, "linked_children"), "linked_children")):
        with duckdb.connect(str(store), read_only=True) as con:
            text = [r[0] for r in con.execute(f"DESCRIBE {table}").fetchall()]
            assert "my_number" not in text
            values = con.execute(f"SELECT * FROM {table}").fetchall()
        assert not any(MY_NUMBER in str(v) for row in values for v in row)


def test_my_numbers_inside_an_allowed_text_column_stop_the_linked_table(inbox: Path) -> None:
    def plant(rows: list[list[str]]) -> None:
        school, atena = rows[0].index("学校名"), rows[0].index("宛名番号")
        planted = [r for r in rows[1:] if r[atena].strip()][:5]
        for r in planted:
            r[school] = f"昭島市立東小学校 {MY_NUMBER}"

    rewrite_gakurei(inbox, plant)
    result, _ = refresh()
    message = failures(result)["analysis__linked_children"]
    assert "school" in message and "個人番号" in message and "5 件" in message
    assert MY_NUMBER not in message
    analysis_zone_is_clean()
    failed = {c.check_name for c in result.get_asset_check_evaluations() if not c.passed}
    assert failed == {"content_scan"}


def test_a_policy_approving_income_stops_every_asset(inbox: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("KODOMO_POLICY", str(_edited(tmp_path, "所得額", "teate.csv", **APPROVE)))
    result, _ = refresh()
    assert not result.get_asset_materialization_events()
    message = failures(result)["sources__inbox_receipt"]  # the first asset of the run
    assert "所得額" in message and "地方税法第22条" in message and "番号 " in message
    analysis_zone_is_clean()
    assert not department_store("kosodate", MONTH).exists()


def test_a_tax_file_in_the_inbox_stops_the_delivery(inbox: Path) -> None:
    (inbox / MONTH / "住民税課税台帳.csv").write_text("宛名番号,所得割額\n0000000001,1000\n")
    result, _ = refresh()
    message = failures(result)["sources__inbox_receipt"]
    assert "住民税課税台帳.csv" in message and "地方税法第22条" in message
    assert not result.get_asset_materialization_events()
    analysis_zone_is_clean()


def test_a_month_outside_the_approval_reads_nothing(inbox: Path) -> None:
    shutil.copytree(inbox / MONTH, inbox / "2023-05")
    result, _ = refresh("2023-05")
    message = failures(result)["sources__inbox_receipt"]
    assert "2023-05" in message and "2022-04-01〜2023-03-31" in message and "諮問第65号" in message
    assert not result.get_asset_materialization_events()
    assert not department_store("shimin", "2023-05").exists()
    analysis_zone_is_clean("2023-05")
    # a steward materialising one source alone meets the same refusal
    jumin = next(a for a in source_assets if a.key.path[-1] == "jumin")
    alone = run([jumin], "2023-05")
    assert "承認期間" in failures(alone)["sources__jumin"]
    assert not department_store("shimin", "2023-05").exists()

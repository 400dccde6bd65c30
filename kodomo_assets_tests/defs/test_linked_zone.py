"""The linkage and analysis zones through Dagster: the full refresh, and every leak path.

Each leak test ends with nothing forbidden in the analysis zone (read decrypted, through the
storage resource) and, where something was refused, a message that says what and why.
"""

import csv
import io
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from dagster import DagsterInstance, ExecuteInProcessResult

from kodomo_assets.defs.analysis import linked_children
from kodomo_assets.defs.linkage import pupil_links
from kodomo_assets.defs.sources import inbox_receipt, source_assets
from kodomo_assets.demo import generate
from kodomo_assets.lib.platform.storage import KodomoStorage
from kodomo_assets.lib.policy.anonymity import MAX_BELOW_K_SHARE, MAX_UNIQUE_SHARE
from kodomo_assets.lib.policy.approval import load_policy
from kodomo_assets.lib.registry import load_registry
from kodomo_assets.lib.scoring.linked_table import load_spec, plan
from kodomo_assets_tests.conftest import APPROVE, demo_env, edited_approval
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
def inbox(demo: Path, storage: KodomoStorage) -> Path:
    """A private copy of the month's files in this test's inbox (an ingest takes them out),
    beside this test's home."""
    shutil.copytree(demo / MONTH, storage.inbox_path / MONTH)
    return storage.inbox_path


def refresh(
    storage: KodomoStorage, month: str = MONTH
) -> tuple[ExecuteInProcessResult, DagsterInstance]:
    instance = DagsterInstance.ephemeral()
    return run(ASSETS, month, storage, instance), instance


def analysis_zone_is_clean(storage: KodomoStorage, month: str = MONTH) -> None:
    folder = storage.zone_store("analysis", month, "linked_children").parents[1]
    assert not any(p.is_file() for p in folder.rglob("*"))


def zone_text(storage: KodomoStorage, month: str = MONTH) -> str:
    """Every value of every table of the month's analysis zone, decrypted, as one text."""
    parts = []
    for path in sorted(storage.zone_store("analysis", month, "x").parent.glob("*.duckdb")):
        with storage.open(path) as con:
            for (table,) in con.execute(
                "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database()"
            ).fetchall():
                parts.append(repr(con.execute(f'SELECT * FROM "{table}"').fetchall()))
    assert parts
    return "\n".join(parts)


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
    inbox = tmp_path_factory.mktemp("refresh-inbox")
    shutil.copytree(demo / MONTH, inbox / MONTH)  # the ingest takes the exports out of the inbox
    with demo_env(inbox, tmp_path_factory) as storage:
        result, instance = refresh(storage)
        yield result, instance, storage


def test_the_full_refresh_publishes_one_row_per_child(refreshed, demo: Path) -> None:
    result, _, storage = refreshed
    assert result.success, failures(result)
    truth = pd.read_parquet(demo / "_truth" / "persons.parquet")
    with storage.open(storage.department_store("shimin", MONTH)) as con:
        born = con.execute("SELECT birth_date FROM jumin").df().birth_date
    asof = pd.Timestamp("2022-10-31")
    born = born[born <= asof]
    age = asof.year - born.dt.year - ((born.dt.month * 100 + born.dt.day) > 1031)
    p = plan(load_spec(), load_policy().for_month(MONTH))
    with storage.open(storage.zone_store("analysis", MONTH, "linked_children")) as con:
        assert [
            t
            for (t,) in con.execute(
                "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database()"
            ).fetchall()
        ] == ["linked_children"]
        columns = [r[0] for r in con.execute("DESCRIBE linked_children").fetchall()]
        n, tokens = con.execute(
            "SELECT count(*), count(DISTINCT child_token) FROM linked_children"
        ).fetchone()
        pupils = con.execute("SELECT count(*) FILTER (pupil) FROM linked_children").fetchone()[0]
        bands = {
            b
            for (b,) in con.execute(
                "SELECT DISTINCT residence_band FROM linked_children"
            ).fetchall()
        }
    assert columns == p.columns
    # the audit attributes are computed inside the audit steps only, never published
    assert "district_code" not in columns and "foreign_resident" not in columns
    assert bands <= {"1年未満", "1〜3年", "3年以上", None} and len(bands - {None}) == 3
    assert n == tokens == int((age <= 17).sum())
    assert pupils > 0.95 * int(((truth.pupil_no != "") & truth.resident).sum())
    meta = metadata(result)["analysis/linked_children"]
    lineage = meta["dagster/column_lineage"].deps_by_column
    assert set(lineage) == set(columns)
    assert {d.asset_key.path[-1] for d in lineage["school_aid"]} == {"gakurei", "pupil_links"}
    assert [d.column_name for d in lineage["child_token"]] == ["atena_no"]
    checks = result.get_asset_check_evaluations()
    assert len(checks) == 8 and all(c.passed for c in checks)  # gates, attack, approval


def test_the_linkage_attack_check_passed_with_its_figures(refreshed) -> None:
    result, _, _ = refreshed
    (check,) = [
        c
        for c in result.get_asset_check_evaluations()
        if c.check_name == "linkage_attack" and c.asset_key.path == ["analysis", "linked_children"]
    ]
    assert check.passed
    figures = {k: v.value for k, v in check.metadata.items()}
    assert figures["unique_match_share"] <= MAX_UNIQUE_SHARE == 0.01
    assert figures["below_k_share"] <= MAX_BELOW_K_SHARE == 0.05
    assert figures["children"] == metadata(result)["analysis/linked_children"]["dagster/row_count"]
    assert figures["k"] == 5 and figures["min_k"] >= 1
    assert {"age_years", "sex", "household_size", "residence_band"} <= set(
        figures["register_columns"]
    )
    assert "district_code" not in figures["register_columns"]
    meta = metadata(result)["analysis/linked_children"]
    assert meta["unique_match_share"] == pytest.approx(figures["unique_match_share"])
    assert meta["below_k_share"] == pytest.approx(figures["below_k_share"])


def test_link_quality_is_measured_and_meets_the_figures(refreshed) -> None:
    result, _, _ = refreshed
    meta = metadata(result)["linkage/pupil_links"]
    assert meta["holdout_pairs"] > 50
    assert meta["holdout_precision"] >= 0.995 and meta["holdout_recall"] >= 0.98
    assert meta["twins_cross_linked"] == 0
    assert meta["linked_probabilistically"] > 0
    assert meta["matching_fields"] == ["address", "birth_date", "name_kana", "sex"]


def test_the_analysis_zone_holds_pseudonyms_and_no_raw_identifier(refreshed, demo: Path) -> None:
    result, instance, storage = refreshed
    truth = pd.read_parquet(demo / "_truth" / "persons.parquet")
    path = storage.zone_store("analysis", MONTH, "linked_children")
    blob = path.read_bytes()
    atena = truth.atena_no[truth.atena_no != ""].sample(300, random_state=1)
    for value in atena:
        assert value.encode() not in blob
    text = zone_text(storage)  # decrypted: pseudonyms only
    assert not any(value in text for value in atena)
    logged = json.dumps([repr(e) for e in instance.all_logs(result.run_id)], ensure_ascii=False)
    for value in [
        *truth.atena_no.sample(100, random_state=2),
        *truth.kana.sample(100, random_state=3),
    ]:
        assert not value or value not in logged


# -- leak paths ------------------------------------------------------------------------------


def test_an_extra_my_number_column_in_gakurei_is_dropped_at_the_door(
    inbox: Path, storage: KodomoStorage
) -> None:
    def add_column(rows: list[list[str]]) -> None:
        rows[0].append("個人番号")
        for r in rows[1:]:
            r.append(MY_NUMBER)

    rewrite_gakurei(inbox, add_column)
    result, instance = refresh(storage)
    assert result.success, failures(result)
    # not a gakurei header of the contract: named by position and keyed tag, never quoted
    described = storage.describe_header(
        len(load_registry().datasets["gakurei"].columns), "個人番号"
    )
    assert metadata(result)["sources/gakurei"]["dropped_forbidden_columns"] == [described]
    warnings = [
        e.message for e in instance.all_logs(result.run_id) if "禁止項目" in (e.message or "")
    ]
    assert any("gakurei.csv" in w and described in w for w in warnings)
    for store, table in (
        (storage.department_store("gakumu", MONTH), "gakurei"),
        (storage.zone_store("analysis", MONTH, "linked_children"), "linked_children"),
    ):
        with storage.open(store) as con:
            text = [r[0] for r in con.execute(f"DESCRIBE {table}").fetchall()]
            assert "my_number" not in text
            values = con.execute(f"SELECT * FROM {table}").fetchall()
        assert not any(MY_NUMBER in str(v) for row in values for v in row)


def test_my_numbers_inside_an_unpublished_text_column_never_reach_the_analysis_zone(
    inbox: Path, storage: KodomoStorage
) -> None:
    planted_text = f"昭島市立東小学校 {MY_NUMBER}"

    def plant(rows: list[list[str]]) -> None:
        school, atena = rows[0].index("学校名"), rows[0].index("宛名番号")
        planted = [r for r in rows[1:] if r[atena].strip()][:5]
        for r in planted:
            r[school] = planted_text

    rewrite_gakurei(inbox, plant)
    result, instance = refresh(storage)
    # the content scan quarantines the five rows at the door, masked; the month refreshes
    assert result.success, failures(result)
    checks = result.get_asset_check_evaluations()
    assert checks and all(c.passed for c in checks)
    assert (
        metadata(result)["sources/gakurei"]["quarantine_by_reason"].get("学校名: 個人番号の疑い")
        == 5
    )
    with storage.open(storage.department_store("gakumu", MONTH)) as con:
        (stored,) = con.execute(
            "SELECT count(*) FROM gakurei WHERE school = ?", [planted_text]
        ).fetchone()
        (masked,) = con.execute(
            "SELECT count(*) FROM gakurei_quarantine WHERE school = '＊＊＊＊（個人番号の疑い）'"
        ).fetchone()
    assert (stored, masked) == (0, 5)
    text = zone_text(storage)
    spaced = " ".join([MY_NUMBER[:4], MY_NUMBER[4:8], MY_NUMBER[8:]])
    for form in (MY_NUMBER, planted_text, spaced, spaced.replace(" ", "-"), "昭島市立東小学校"):
        assert form not in text, form
    blob = b"".join(
        p.read_bytes() for p in storage.zone_store("analysis", MONTH, "x").parent.iterdir()
    )
    assert MY_NUMBER.encode() not in blob
    logged = json.dumps([repr(e) for e in instance.all_logs(result.run_id)], ensure_ascii=False)
    assert MY_NUMBER not in logged


def test_a_policy_approving_income_stops_every_asset(
    inbox: Path, storage: KodomoStorage, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv(
        "KODOMO_POLICY", str(edited_approval(tmp_path, "所得額", "teate.csv", **APPROVE))
    )
    result, _ = refresh(storage)
    assert not result.get_asset_materialization_events()
    message = failures(result)["sources__inbox_receipt"]  # the first asset of the run
    assert "所得額" in message and "地方税法第22条" in message and "番号 " in message
    analysis_zone_is_clean(storage)
    assert not storage.department_store("kosodate", MONTH).exists()


def test_a_tax_file_in_the_inbox_stops_the_delivery(inbox: Path, storage: KodomoStorage) -> None:
    (inbox / MONTH / "住民税課税台帳.csv").write_text("宛名番号,所得割額\n0000000001,1000\n")
    result, _ = refresh(storage)
    message = failures(result)["sources__inbox_receipt"]
    assert storage.name_tag("住民税課税台帳.csv") in message and "地方税法第22条" in message
    assert "課税台帳" not in message
    assert not result.get_asset_materialization_events()
    analysis_zone_is_clean(storage)


def test_a_month_outside_the_approval_reads_nothing(inbox: Path, storage: KodomoStorage) -> None:
    shutil.copytree(inbox / MONTH, inbox / "2023-05")
    result, _ = refresh(storage, "2023-05")
    message = failures(result)["sources__inbox_receipt"]
    assert "2023-05" in message and "2022-04-01〜2023-03-31" in message and "諮問第65号" in message
    assert not result.get_asset_materialization_events()
    assert not storage.department_store("shimin", "2023-05").exists()
    analysis_zone_is_clean(storage, "2023-05")
    # a steward materialising one source alone meets the same refusal
    jumin = next(a for a in source_assets if a.key.path[-1] == "jumin")
    alone = run([jumin], "2023-05", storage)
    assert "承認期間" in failures(alone)["sources__jumin"]
    assert not storage.department_store("shimin", "2023-05").exists()
    assert sorted(p.name for p in (inbox / "2023-05").iterdir()) == sorted(
        p.name for p in (inbox / MONTH).iterdir()
    )  # nothing was taken out of the inbox

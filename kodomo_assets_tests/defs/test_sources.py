"""The source assets through Dagster, on a generated month and on hand-made edge cases."""

import json
import os
import secrets
import shutil
import subprocess
from pathlib import Path

import pytest
from dagster import DagsterInstance

from kodomo_assets.definitions import defs
from kodomo_assets.defs.sources import inbox_receipt, source_assets
from kodomo_assets.demo import generate
from kodomo_assets.lib.platform.storage import KodomoStorage
from kodomo_assets.lib.registry import load_registry
from kodomo_assets_tests.conftest import JUMIN_HEADER, make_storage, pipeline_env
from kodomo_assets_tests.runs import failure_message, failures, metadata, run

MONTH = "2022-10"
REGISTRY = load_registry()


@pytest.fixture(scope="module")
def demo_inbox(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("inbox")
    counts = generate(out, residents=4000, months=["2022-09", MONTH], seed=11)
    return out, counts


def copied(demo_inbox: tuple[Path, dict], tmp_path: Path, keys: Path) -> KodomoStorage:
    """A storage on a copy of the generated month: an ingest takes the exports out of the inbox."""
    inbox = tmp_path / "inbox"
    shutil.copytree(demo_inbox[0] / MONTH, inbox / MONTH)
    return make_storage(tmp_path / "home", inbox, keys)


def test_all_eleven_sources_match_the_generator_counts(demo_inbox, tmp_path, keys) -> None:
    _, counts = demo_inbox
    storage = copied(demo_inbox, tmp_path, keys)
    result = run([inbox_receipt, *source_assets], MONTH, storage)
    assert result.success, failures(result)
    meta = {k.removeprefix("sources/"): v for k, v in metadata(result).items()}
    assert len(source_assets) == 11 and set(REGISTRY.datasets) <= set(meta)
    for name, ds in REGISTRY.datasets.items():
        expected = counts[MONTH][name]
        got = meta[name]
        assert got["rows_received"] == expected["rows_written"], name
        assert got["duplicates_removed"] == expected["exact_duplicates"], name
        assert got["quarantined"] == expected["bad_rows"], name
        assert got["dagster/row_count"] == expected["expected_valid_rows"], name
        with storage.open(storage.department_store(ds.department.code, MONTH)) as con:
            assert (
                con.execute(f"SELECT count(*) FROM {name}").fetchone()[0]
                == got["dagster/row_count"]
            )
            stored = {r[0] for r in con.execute(f"DESCRIBE {name}").fetchall()}
        assert not stored & {c.name for c in ds.columns if c.forbidden}, name
    with storage.open(storage.department_store("gakumu", MONTH)) as con:
        blank = con.execute("SELECT count(*) FROM gakurei WHERE atena_no IS NULL").fetchone()[0]
    assert blank == counts[MONTH]["gakurei"]["blank_atena"] > 0
    # the plaintext exports left the inbox; a rerun reads their sealed copies and agrees
    assert sorted(p.name for p in (storage.inbox_path / MONTH).iterdir()) == []
    again = metadata(run(source_assets, MONTH, storage))
    assert all(
        again[k]["dagster/row_count"] == v["dagster/row_count"]
        for k, v in meta.items()
        if k in again
    ) and {v["read_from"] for v in again.values()} == {"暗号化保管した前回の受信ファイル"}


def test_metadata_and_logs_carry_no_personal_data(demo_inbox, tmp_path, keys) -> None:
    storage = copied(demo_inbox, tmp_path, keys)
    instance = DagsterInstance.ephemeral()
    result = run(source_assets, MONTH, storage, instance)
    assert result.success, failures(result)
    with storage.open(storage.department_store("shimin", MONTH)) as con:
        names, atena, addresses = zip(
            *con.execute(
                "SELECT name, atena_no, address FROM jumin USING SAMPLE 200 ROWS"
            ).fetchall(),
            strict=True,
        )
    logged = json.dumps([repr(e) for e in instance.all_logs(result.run_id)], ensure_ascii=False)
    for value in (*names, *atena, *addresses):
        assert value not in logged


def test_missing_file_fails_only_its_asset(demo_inbox, tmp_path, keys) -> None:
    inbox, _ = demo_inbox
    partial = tmp_path / "inbox"
    (partial / MONTH).mkdir(parents=True)
    for name in ("jumin.csv", "kaigo.csv"):
        (partial / MONTH / name).write_bytes((inbox / MONTH / name).read_bytes())
    jumin, kaigo, yobo = (
        next(a for a in source_assets if a.key.path[-1] == n) for n in ("jumin", "kaigo", "yobo")
    )
    result = run([jumin, kaigo, yobo], MONTH, make_storage(tmp_path / "home", partial, keys))
    assert not result.success
    assert {
        k.path[-1] for k in (e.asset_key for e in result.get_asset_materialization_events())
    } == {"jumin", "kaigo"}
    message = failure_message(result)
    assert "yobo.csv" in message and MONTH in message


def test_tax_file_in_inbox_is_refused_and_never_read(storage) -> None:
    folder = storage.inbox_path / MONTH
    folder.mkdir()
    (folder / "kazei_2022.csv").write_text("宛名番号,所得割額\n0000000001,1000\n")
    (folder / "memo.txt").write_text("x")
    result = run([inbox_receipt], MONTH, storage)
    assert not result.success
    message = failure_message(result)
    assert storage.name_tag("kazei_2022.csv") in message and "地方税法第22条" in message
    assert "kazei_2022" not in message  # a file name may be personal data: a keyed tag only


def test_every_asset_is_described_owned_grouped_and_versioned() -> None:
    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.owners and node.group_name and node.code_version, key
        assert node.kinds and node.description, key
    partitions = defs.resolve_assets_def(["sources", "jumin"]).partitions_def
    assert partitions.get_first_partition_key() == "2022-04"


def test_unlisted_files_are_ignored_and_missing_ones_listed(storage) -> None:
    folder = storage.inbox_path / MONTH
    folder.mkdir()
    (folder / "memo.csv").write_text("a,b\n1,2\n")
    (folder / "jumin.csv").write_text("x\n")
    result = run([inbox_receipt], MONTH, storage)
    meta = metadata(result)["sources/inbox_receipt"]
    assert meta["received"] == 1
    assert meta["ignored_unlisted"] == 1 and "memo" not in str(meta)
    assert meta["ignored_unlisted_tags"] == [storage.name_tag("memo.csv")]
    assert len(meta["missing"]) == 10 and "jumin.csv" not in meta["missing"]


def test_a_symlink_in_the_inbox_is_never_followed(storage, tmp_path) -> None:
    """A clerk who can write into the month folder points jumin.csv at a file elsewhere."""
    folder = storage.inbox_path / MONTH
    folder.mkdir()
    elsewhere = tmp_path / "elsewhere.csv"
    elsewhere.write_text("宛名番号\n0000000001\n")
    (folder / "jumin.csv").symlink_to(elsewhere)
    jumin = next(a for a in source_assets if a.key.path[-1] == "jumin")
    result = run([jumin], MONTH, storage)
    assert "シンボリックリンク" in failure_message(result)
    assert not storage.department_store("shimin", MONTH).exists() and elsewhere.exists()


@pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("groupadd"), reason="needs root and groupadd"
)
def test_where_department_groups_exist_a_drop_must_carry_its_departments_group(storage) -> None:
    """scripts/accounts.sh gives each department a group; a 学務課 clerk who writes jumin.csv
    first (any clerk can create any name in the shared folder) is refused."""
    prefix = f"kt{secrets.token_hex(3)}-"
    subprocess.run(["groupadd", f"{prefix}shimin"], check=True)
    subprocess.run(["groupadd", f"{prefix}gakumu"], check=True)
    try:
        checked = storage.model_copy(update={"drop_group_prefix": prefix})
        drop = storage.inbox_path / "jumin.csv"
        drop.write_text("x\n")
        shutil.chown(drop, group=f"{prefix}gakumu")
        assert "以外のアカウント" in checked.drop_problem(drop, "shimin")
        shutil.chown(drop, group=f"{prefix}shimin")
        assert checked.drop_problem(drop, "shimin") is None
    finally:
        for g in ("shimin", "gakumu"):
            subprocess.run(["groupdel", f"{prefix}{g}"], check=False)


@pytest.mark.parametrize(
    "name",
    [
        "市民税_2022.csv",
        "住⺠税.csv",
        "tokubetsu_choshu.csv",
        "kazei.csv",
        "非課税世帯.csv",
        "住民稅.csv",
        "ＴＡＸ.csv",
    ],
)
def test_a_tax_file_under_any_name_is_refused_by_meaning(storage, name: str) -> None:
    folder = storage.inbox_path / MONTH
    folder.mkdir()
    (folder / name).write_text("宛名番号\n0000000001\n")
    message = failure_message(run([inbox_receipt], MONTH, storage))
    assert "地方税法第22条" in message and storage.name_tag(name) in message and name not in message


def test_the_steward_sees_the_names_behind_the_tags_on_their_terminal(
    storage, write_export, capsys, monkeypatch
) -> None:
    from kodomo_assets.cli import main

    write_export("jumin.csv", [JUMIN_HEADER + ",山田太郎さん要確認", "0000000001" + ",x" * 12])
    write_export("山田花子_相談メモ.csv", ["a", "b"])
    # in Dagster: positions and keyed tags, never the names
    jumin = next(a for a in source_assets if a.key.path[-1] == "jumin")
    instance = DagsterInstance.ephemeral()
    result = run([inbox_receipt, jumin], MONTH, storage, instance)
    logged = json.dumps([repr(e) for e in instance.all_logs(result.run_id)], ensure_ascii=False)
    recorded = logged + repr(metadata(result))
    assert "山田" not in recorded and storage.name_tag("山田花子_相談メモ.csv") in recorded
    # the steward's terminal, with the pipeline's settings, shows what the tags stand for
    (storage.inbox_path / MONTH / "jumin.csv").unlink(missing_ok=True)
    write_export("jumin.csv", [JUMIN_HEADER + ",山田太郎さん要確認", "0000000001" + ",x" * 12])
    for name, value in pipeline_env(storage).items():
        monkeypatch.setenv(name, value)
    assert main(["inspect-inbox", "--month", MONTH]) == 0
    out = capsys.readouterr().out
    assert (
        f"{storage.name_tag('山田花子_相談メモ.csv')}  契約外（読まない）" in out
        and "山田花子_相談メモ.csv" in out
    )
    assert f"13列目 識別 {storage.name_tag('山田太郎さん要確認')} 契約外: 山田太郎さん要確認" in out


def test_a_value_the_scan_hit_is_masked_in_the_sealed_copy_and_a_rerun_agrees(
    storage, write_export
) -> None:
    """The raw archive is a store too: the cell is masked there, and reading the sealed copy
    again gives the same quarantine, line for line and reason for reason."""
    planted = "東保育園 TEL 090-1234-5678"
    write_export(
        "hoiku.csv",
        [
            "宛名番号,施設名,入所状況,保育の必要性事由,入所年月日",
            "0000000001,東保育園,入所中,就労,R4.4.1",
            f'0000000002,"{planted}",入所中,就労,R4.4.1',
            "0000000003,西保育園,入所中,就労,R4.4.1",
        ],
    )
    hoiku = next(a for a in source_assets if a.key.path[-1] == "hoiku")
    first = metadata(run([hoiku], MONTH, storage))["sources/hoiku"]
    sealed = storage.archived_export("hoiku", MONTH, "hoiku.csv").decode("cp932")
    assert "090" not in sealed and "＊＊＊＊（電話番号の疑い）" in sealed and "西保育園" in sealed
    again = metadata(run([hoiku], MONTH, storage))["sources/hoiku"]
    assert again["read_from"] == "暗号化保管した前回の受信ファイル"
    for key in ("dagster/row_count", "quarantined", "quarantine_by_reason"):
        assert again[key] == first[key], key
    assert first["quarantine_by_reason"] == {"施設名: 電話番号の疑い": 1}
    with storage.open(storage.department_store("hoiku", MONTH)) as con:
        assert con.execute("SELECT line, facility FROM hoiku_quarantine").fetchall() == [
            (3, "＊＊＊＊（電話番号の疑い）")
        ]


def test_on_a_clean_generated_month_the_content_scan_quarantines_no_row(
    demo_inbox, tmp_path, keys
) -> None:
    meta = metadata(run(source_assets, MONTH, copied(demo_inbox, tmp_path, keys)))
    hits = {
        k: r
        for k, v in meta.items()
        for r in v["quarantine_by_reason"]
        if "疑い" in r or "範囲外" in r
    }
    assert len(meta) == 11 and hits == {}

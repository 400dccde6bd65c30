"""The link-review round trip: export the month's uncertain pairs, decide, and the next
months' linkage (the real asset) applies the decisions until a record changes.

One generated month is ingested as three months (2022-08..10), so nothing changes between
them but what a test plants: two pupils claiming one resident (both go to review as
duplicates), and in the last month a new address for one of them."""

import csv
import json
from datetime import date
from pathlib import Path

import pytest
from dagster import DagsterInstance

from kodomo_assets.defs.linkage import pupil_links
from kodomo_assets.demo import generate
from kodomo_assets.lib.center.export import ExportError
from kodomo_assets.lib.ingest.load import ingest
from kodomo_assets.lib.linkage.decisions import METHOD_CONFIRMED, read_decisions, store_path
from kodomo_assets.lib.linkage.link import REASON_DUPLICATE
from kodomo_assets.lib.linkage.review import (
    ALL_HEADERS,
    REVIEW_HEADERS,
    export_review,
    level,
    record_decisions,
    review_log,
)
from kodomo_assets.lib.platform.storage import KodomoStorage
from kodomo_assets.lib.registry import load_registry
from kodomo_assets_tests.conftest import at, demo_env
from kodomo_assets_tests.runs import failures, metadata, purge, run

MONTHS = ["2022-08", "2022-09", "2022-10"]
PURPOSE = "照合確認"


def _dept(dataset: str) -> str:
    return load_registry().datasets[dataset].department.code


def _plant(storage: KodomoStorage, month: str, pupil: str, twin: str, moved: bool) -> None:
    """`twin` takes `pupil`'s 宛名番号 and compared fields: both claim one resident."""
    with storage.open(storage.department_store(_dept("gakurei"), month), write=True) as con:
        con.execute(
            """UPDATE gakurei SET atena_no = p.atena_no, name_kana = p.name_kana,
                       birth_date = p.birth_date, sex = p.sex, address = p.address
                       FROM (SELECT * FROM gakurei WHERE pupil_no = ?) p WHERE gakurei.pupil_no = ?""",
            [pupil, twin],
        )
        if moved:
            con.execute(
                "UPDATE gakurei SET address = address || '別棟' WHERE pupil_no = ?", [pupil]
            )


@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory):
    generated = tmp_path_factory.mktemp("generated")
    generate(generated, residents=4000, months=[MONTHS[-1]], seed=11)
    with demo_env(tmp_path_factory.mktemp("inbox"), tmp_path_factory) as storage:
        registry = load_registry()
        for month in MONTHS:
            for name in ("jumin", "gakurei"):
                ds = registry.datasets[name]
                with storage.open(
                    storage.department_store(ds.department.code, month), write=True
                ) as con:
                    ingest(ds, month, generated / MONTHS[-1] / ds.file, con)
        con = storage.connect()
        try:  # two pupils whose records agree with their residents'
            storage.attach(con, "s", storage.department_store(_dept("jumin"), MONTHS[0]))
            storage.attach(con, "g", storage.department_store(_dept("gakurei"), MONTHS[0]))
            (pupil, atena, kana, born, address), (twin, *_) = con.execute("""
                SELECT g.pupil_no, g.atena_no, g.name_kana, CAST(g.birth_date AS VARCHAR), g.address
                FROM g.gakurei g JOIN s.jumin r USING (atena_no)
                WHERE g.name_kana = r.name_kana AND g.birth_date = r.birth_date
                ORDER BY g.pupil_no LIMIT 2""").fetchall()
        finally:
            con.close()
        for month in MONTHS:
            _plant(storage, month, pupil, twin, moved=month == MONTHS[-1])
        instance = DagsterInstance.ephemeral()
        yield {
            "storage": storage,
            "instance": instance,
            "pupil": pupil,
            "twin": twin,
            "atena": atena,
            "values": [kana, born, address],
            "out": tmp_path_factory.mktemp("steward"),
        }


def _link(city: dict, month: str):
    result = run([pupil_links], month, city["storage"], city["instance"])
    assert result.success, failures(result)
    return result, metadata(result)["linkage/pupil_links"]


def _read(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8-sig", newline="") as fh:
        return list(csv.DictReader(fh))


def _links(storage: KodomoStorage, month: str, table: str) -> dict[str, tuple]:
    with storage.open(storage.zone_store("linkage", month, "pupil_links")) as con:
        return {
            r[0]: r[1:]
            for r in con.execute(f"SELECT pupil_no, atena_no, * FROM {table}").fetchall()
        }


def _decide(path: Path, rows: list[dict[str, str]], decisions: dict[str, str]) -> Path:
    with open(path, "w", encoding="utf-8-sig", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=REVIEW_HEADERS, lineterminator="\r\n")
        writer.writeheader()
        writer.writerows({**r, "判断": decisions.get(r["学籍番号"], "")} for r in rows)
    return path


@pytest.fixture(scope="module")
def round_trip(city: dict) -> dict:
    storage, out = city["storage"], city["out"]
    city["first"] = _link(city, MONTHS[0])
    listed = out / "review.csv"
    city["export"] = export_review(storage, MONTHS[0], listed, PURPOSE)
    city["listed"] = _read(listed)
    rows = [r for r in city["listed"] if r["学籍番号"] in (city["pupil"], city["twin"])]
    city["recorded"] = record_decisions(
        storage,
        MONTHS[0],
        _decide(out / "decided.csv", rows, {city["pupil"]: "同一", city["twin"]: "別人"}),
    )
    city["second"] = _link(city, MONTHS[1])
    city["all"] = export_review(storage, MONTHS[1], out / "all.csv", "照合監査", every_link=True)
    city["third"] = _link(city, MONTHS[2])
    return city


def test_the_review_export_lists_the_pairs_with_agreement_levels_only(round_trip) -> None:
    c = round_trip
    rows = c["listed"]
    assert (
        list(rows[0]) == REVIEW_HEADERS
        and len(rows) == c["export"].rows == c["first"][1]["steward_review"]
    )
    planted = {r["学籍番号"]: r for r in rows if r["宛名番号"] == c["atena"]}
    assert set(planted) == {c["pupil"], c["twin"]}
    for r in planted.values():
        assert r["理由"] == REASON_DUPLICATE and r["判断"] == ""
        assert [r[f"一致度（{f}）"] for f in ("氏名カナ", "生年月日", "性別", "住所")] == [
            "一致"
        ] * 4
    text = (c["out"] / "review.csv").read_text(encoding="utf-8-sig")
    assert not any(v in text for v in c["values"])  # levels, never the fields themselves


def test_decisions_apply_next_month_and_a_changed_record_lapses_them(round_trip) -> None:
    c = round_trip
    storage = c["storage"]
    assert (c["recorded"].same, c["recorded"].different) == (1, 1)
    assert {d.decision for d in read_decisions(storage, MONTHS[0])} == {"同一", "別人"}
    # month 2: the confirmed pair links without review, the other pupil is neither linked nor listed
    links, review = (
        _links(storage, MONTHS[1], "pupil_link"),
        _links(storage, MONTHS[1], "link_review"),
    )
    assert (
        links[c["pupil"]][:2] == (c["atena"], c["pupil"]) and METHOD_CONFIRMED in links[c["pupil"]]
    )
    assert c["pupil"] not in review and c["twin"] not in review and c["twin"] not in links
    meta = c["second"][1]
    assert (
        meta["link_decisions_same"],
        meta["link_decisions_different"],
        meta["link_decisions_lapsed"],
        meta["linked_by_decision"],
    ) == (1, 1, 0, 1)
    assert meta["steward_review"] == c["first"][1]["steward_review"] - 2
    assert meta["unlinked"] == c["first"][1]["unlinked"] - 1
    # month 3: the confirmed pupil moved, so its decision lapsed and the pair is back for review
    links, review = (
        _links(storage, MONTHS[2], "pupil_link"),
        _links(storage, MONTHS[2], "link_review"),
    )
    assert c["pupil"] in review and c["pupil"] not in links
    assert c["twin"] not in review and c["twin"] not in links  # 別人: both records unchanged
    meta = c["third"][1]
    assert (
        meta["link_decisions_same"],
        meta["link_decisions_different"],
        meta["link_decisions_lapsed"],
        meta["linked_by_decision"],
    ) == (0, 1, 1, 0)


def test_all_exports_every_link_of_the_month(round_trip) -> None:
    c = round_trip
    rows = _read(c["out"] / "all.csv")
    links = _links(c["storage"], MONTHS[1], "pupil_link")
    assert list(rows[0]) == ALL_HEADERS and len(rows) == c["all"].rows == len(links)
    assert {r["学籍番号"]: (r["宛名番号"], r["連携方法"]) for r in rows} == {
        p: (v[0], v[3]) for p, v in links.items()
    }


def test_every_export_and_import_is_in_the_chained_log(round_trip) -> None:
    log = review_log(round_trip["storage"])
    entries = log.entries()
    assert [(e["action"], e["month"], e["purpose"]) for e in entries] == [
        ("link-review", MONTHS[0], PURPOSE),
        ("link-decisions", MONTHS[0], ""),
        ("link-review-all", MONTHS[1], "照合監査"),
    ]
    assert [e["rows"] for e in entries] == [round_trip["export"].rows, 2, round_trip["all"].rows]
    assert entries[1]["same"] == entries[1]["different"] == 1
    assert all(e["user"] and e["path"].endswith(e["file"]) for e in entries)
    assert log.first_broken_line() is None
    raw = log.path.read_text(encoding="utf-8")
    assert round_trip["pupil"] not in raw and round_trip["atena"] not in raw


def test_no_value_reaches_the_dagster_event_log(round_trip) -> None:
    c = round_trip
    logged = json.dumps(
        [
            repr(e)
            for r in (c["first"], c["second"], c["third"])
            for e in c["instance"].all_logs(r[0].run_id)
        ],
        ensure_ascii=False,
    )
    assert "link_decisions_lapsed" in logged  # the events were read
    for value in [*c["values"], c["pupil"], c["twin"], c["atena"]]:
        assert value not in logged


def _refused(c: dict, name: str, lines: list[list[str]]) -> str:
    path = c["out"] / name
    with open(path, "w", encoding="utf-8-sig", newline="") as fh:
        csv.writer(fh, lineterminator="\r\n").writerows([["学籍番号", "宛名番号", "判断"], *lines])
    before = read_decisions(c["storage"], MONTHS[0])
    with pytest.raises(ExportError) as err:
        record_decisions(c["storage"], MONTHS[0], path)
    assert read_decisions(c["storage"], MONTHS[0]) == before  # nothing recorded
    return str(err.value)


def test_a_bad_decision_file_is_refused_by_line_and_column_without_values(round_trip) -> None:
    c = round_trip
    pair = [c["twin"], c["atena"]]  # listed (a duplicate claim)
    unlisted = [c["pupil"], "0000000001"]
    message = _refused(
        c,
        "bad.csv",
        [
            [*pair, "たぶん"],
            [*unlisted, "同一"],
            [*pair, "同一"],
            [*pair, "別人"],
            [c["twin"], "12345678901", "別人"],
        ],
    )
    assert "bad.csv 2行目 3列（判断）: 判断が 同一・別人 のいずれでもない" in message
    assert (
        "bad.csv 3行目 1列（学籍番号）: この組は基準月 2022-08 の照合の確認対象ではない" in message
    )
    assert "bad.csv 5行目 3列（判断）: 同じ組の判断が 4行目と食い違う" in message
    assert "bad.csv 6行目 2列（宛名番号）: 宛名番号が数字10桁でない" in message
    assert "4行目" not in message.replace("4行目と", "")  # line 4 alone was fine
    assert not any(v in message for v in [*pair, *unlisted, "12345678901", "たぶん"])
    assert _refused(c, "empty.csv", [[*pair, ""]]) == (
        "empty.csv: 判断（同一・別人）を記入した行がありません（何も記録していません）"
    )


def test_a_missing_header_is_named(round_trip, tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("学籍番号,判断\r\n", encoding="utf-8")
    with pytest.raises(ExportError, match="x.csv 1行目: 見出しに 宛名番号 がありません"):
        record_decisions(round_trip["storage"], MONTHS[0], path)


def test_nothing_is_exported_or_decided_after_the_approval_ended(round_trip) -> None:
    c = round_trip
    late = at(c["storage"], "2023-04-02")
    before = len(review_log(c["storage"]).entries())
    for call in (
        lambda: export_review(late, MONTHS[0], c["out"] / "late.csv", PURPOSE),
        lambda: record_decisions(late, MONTHS[0], c["out"] / "decided.csv"),
    ):
        with pytest.raises(ExportError, match="2023-03-31") as err:
            call()
        assert err.value.exit_code == 2
    assert (
        not (c["out"] / "late.csv").exists() and len(review_log(c["storage"]).entries()) == before
    )


def test_the_purpose_is_a_code(round_trip) -> None:
    with pytest.raises(ExportError, match="利用目的コード"):
        export_review(
            round_trip["storage"], MONTHS[0], round_trip["out"] / "p.csv", "山田さんの確認"
        )


def test_decisions_are_stored_encrypted_in_the_linkage_zone(round_trip) -> None:
    path = store_path(round_trip["storage"], MONTHS[0])
    assert path.parent.parent.name == "linkage" and path.stat().st_mode & 0o777 == 0o600
    assert round_trip["pupil"].encode() not in path.read_bytes()


@pytest.mark.parametrize(
    ("field", "a", "b", "expected"),
    [
        ("name_kana", "ヤマダ タロウ", "ヤマダ タロウ", "一致"),
        ("name_kana", "ヤマダ タロウ", "ヤマダ ジロウ", "姓のみ一致"),
        ("name_kana", "ヤマダ タロウ", "ヤマタ タロー", "近い（1〜2文字違い）"),
        ("name_kana", "ヤマダ タロウ", None, "片方空欄"),
        ("birth_date", date(2012, 3, 4), date(2012, 4, 3), "月日の入れ替わり"),
        ("birth_date", date(2012, 3, 4), date(2013, 3, 4), "年・月・日のうち一つ違い"),
        ("address", "中神町1-2-3 101", "中神町1-2-3 202", "建物・部屋番号以外が一致"),
        ("sex", "1", "2", "不一致"),
    ],
)
def test_agreement_levels(field: str, a, b, expected: str) -> None:
    assert level(field, a, b) == expected


def test_the_cli_exports_and_records(round_trip, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    from kodomo_assets.cli import main
    from kodomo_assets.lib.policy.approval import DEMO_POLICY

    storage = round_trip["storage"]
    for name, value in {
        "KODOMO_HOME": storage.home,
        "KODOMO_STORAGE_KEY_FILE": storage.storage_key_file,
        "KODOMO_POLICY": str(DEMO_POLICY),
        "KODOMO_MODE": "demo",
    }.items():
        monkeypatch.setenv(name, value)
    out = round_trip["out"] / "cli.csv"
    assert main(["link-review", "--month", MONTHS[1], "--out", str(out), "--purpose", PURPOSE]) == 0
    assert len(_read(out)) == round_trip["second"][1]["steward_review"]
    assert main(["link-decisions", "--month", MONTHS[1], "--in", str(out)]) == 2  # nothing decided
    printed = capsys.readouterr()
    assert "判断（同一・別人）を記入した行がありません" in printed.err
    assert review_log(storage).entries()[-1]["action"] == "link-review"


def test_the_committee_report_reads_and_verifies_the_record(round_trip) -> None:
    from kodomo_assets.defs.committee.assets import records_status
    from kodomo_assets.lib.policy.approval import load_purposes
    from kodomo_assets.lib.reporting.history import link_records_table as _link_records_table

    storage = round_trip["storage"]
    table = _link_records_table(storage, MONTHS[0], load_purposes())
    assert [row[2] for row in table.rows] == ["確認対象の書き出し", "判断の取込"]
    assert table.rows[0][3] == "照合確認（照合の確認）"
    log = review_log(storage)
    ((name, broken, lines),) = [s for s in records_status(storage) if s[0].startswith("照合の記録")]
    assert broken is None and lines == len(log.entries())
    original = log.path.read_bytes()
    try:  # an edited line (fewer rows exported) is found
        log.path.write_bytes(original.replace(b'"rows": ', b'"rows": 1', 1))
        ((_, broken, _),) = [s for s in records_status(storage) if s[0].startswith("照合の記録")]
        assert broken == 1
    finally:
        log.path.write_bytes(original)


def test_the_purge_lists_the_exports_to_destroy(round_trip) -> None:
    """Last: it forgets the first month."""
    from kodomo_assets.defs.operations import purge_log

    storage = at(round_trip["storage"], "2023-10-01")
    result = purge(storage, DagsterInstance.ephemeral(), [MONTHS[0]])
    assert result.success, failures(result)
    (entry,) = purge_log(storage).entries()
    assert [(e["action"], e["file"]) for e in entry["exports_to_destroy"]] == [
        ("link-review", "review.csv")
    ]
    assert "照合の判断" in entry["forgotten"] and not store_path(storage, MONTHS[0]).exists()

"""A corpus of bad deliveries, each after a good one for the same dataset and month.

Every case first materialises a good export through Dagster, then the bad delivery, and
asserts the specific outcome: a Failure whose message names file, line and column (or
byte), or a counted quarantine with the right reason in `<dataset>_quarantine` and in the
asset metadata. Either way the department store is never half-written: a failed file
leaves every earlier table exactly as it was, a quarantine replaces the dataset's table and
its quarantine as one, and nothing but the (encrypted) store, the sealed copy of the last
ingested export and the month's key table is left behind (no staging file, no `.wal`, no
temp file, no extra table, no key for a file that does not exist).

A good ingest takes the export out of the inbox (sealed into the department's raw archive),
so the bad delivery is written into the month folder the good one left: a delivered file
wins over the archive. A failed file stays in the inbox and the archive keeps the good
export; a file that is read (with quarantined rows) leaves the inbox and is sealed in place
of the earlier one. Stores are read through the storage resource (they are encrypted).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from dagster import ExecuteInProcessResult

from kodomo_assets.defs.sources import inbox_receipt, source_assets
from kodomo_assets.lib.ingest.decode import ALLOWED
from kodomo_assets.lib.ingest.load import HEADER_ONLY
from kodomo_assets.lib.platform.storage import KodomoStorage
from kodomo_assets.lib.registry import Dataset, load_registry
from kodomo_assets_tests.runs import failures, metadata, run, started

MONTH = "2022-10"
REGISTRY = load_registry()
ASSET = {a.key.path[-1]: a for a in source_assets}


def header(dataset: str) -> str:
    """The export's real header, as the registry (and source-exports.md) fixes it."""
    return ",".join(c.header for c in REGISTRY.datasets[dataset].columns)


JUMIN = [
    "0000000001,0000000009,123456789018,髙橋 太郎,ﾀｶﾊｼ ﾀﾛｳ,令和元年5月1日,1,世帯主,東京都昭島市東町1丁目,0120,日本人,R4.10.11",
    "0000000002,0000000009,,髙橋 花子,たかはし はなこ,H28/4/1,女,妻,東京都昭島市東町1丁目,0120,日本人,R4.10.11",
]
SHUKKETSU = ["1001,R4.10,20,3,0,0,1,無,風邪", "1002,2022-10,20,0,1,0,0,無,"]
YOBO = ["0000000001,10,9", "0000000002,8,8"]
GOOD = {"jumin": JUMIN, "shukketsu": SHUKKETSU, "yobo": YOBO}


def jumin_row(atena: str, **changes: str) -> str:
    """A third resident, with some fields replaced (by header)."""
    values = dict(zip(header("jumin").split(","), JUMIN[0].split(","), strict=True))
    values.update({"宛名番号": atena, "氏名": "山﨑 次郎", "氏名カナ": "ﾔﾏｻﾞｷ ｼﾞﾛｳ"}, **changes)
    return ",".join(values.values())


def csv_bytes(
    dataset: str, rows: list[str], encoding: str = "cp932", head: str | None = None
) -> bytes:
    lines = [head if head is not None else header(dataset), *rows]
    return "".join(f"{line}\r\n" for line in lines).encode(encoding)


@dataclass
class Case:
    dataset: str
    # writes the bad delivery into the month folder (the storage: for what is not the inbox)
    deliver: Callable[[Path, KodomoStorage], None]
    # a failing file: the exact message after the file's path (or made from the storage)
    failure: str | Callable[[KodomoStorage], str] | None = None
    # a quarantine: stored keys (first key column), quarantine {line: reasons}, extra metadata
    stored: list[str] | None = None
    quarantine: dict[int, list[str]] = field(default_factory=dict)
    metadata: dict[str, object] = field(default_factory=dict)
    with_receipt: bool = False  # materialise inbox_receipt in the same run
    receipt_failure: tuple[str, ...] | None = None  # parts of inbox_receipt's message
    missing: list[str] | None = None  # inbox_receipt's `missing` metadata


def file(dataset: str, data: bytes) -> Callable[[Path, KodomoStorage], None]:
    def deliver(folder: Path, storage: KodomoStorage) -> None:
        (folder / REGISTRY.datasets[dataset].file).write_bytes(data)

    return deliver


def latin1_row(atena: str) -> bytes:
    """A jumin row whose address carries Latin-1 bytes: 0xE9 followed by a space is no
    CP932 character (0x20 is no trail byte) and no UTF-8 either."""
    return jumin_row(atena).encode("cp932").replace("東町".encode("cp932"), b"Caf\xe9 ") + b"\r\n"


LATIN1_BYTE = latin1_row("0000000003").index(b"\xe9") + 1  # 1-based, within its line


def remove_all(folder: Path, storage: KodomoStorage) -> None:
    """Nothing delivered: the month folder empty, and no sealed copy of an earlier delivery
    to rerun from either (an empty folder beside the archive is a rerun: see the test below)."""
    for p in folder.iterdir():
        p.unlink()
    for ds in REGISTRY.datasets.values():
        storage.raw_archive(ds.department.code, MONTH, ds.file).unlink(missing_ok=True)


def tax_file_and_new_jumin(folder: Path, storage: KodomoStorage | None = None) -> None:
    (folder / "kazei.csv").write_bytes("宛名番号,所得割額\r\n0000000001,1000\r\n".encode("cp932"))
    # a changed, valid jumin.csv beside it: it must not be read either
    (folder / "jumin.csv").write_bytes(csv_bytes("jumin", [JUMIN[0]]))


def truncated(folder: Path, storage: KodomoStorage) -> None:
    text = csv_bytes("jumin", JUMIN) + jumin_row("0000000003").encode("cp932")[:40]
    (folder / "jumin.csv").write_bytes(text)  # the last line cut off, without its line end


NO_ATENA = ",".join(h for h in header("jumin").split(",") if h != "宛名番号")
COLUMN_COUNT = "列数が見出しと異なる ({} 列、見出しは 12 列)"

CASES: dict[str, Case] = {
    # -- the file fails: the last good store stays --------------------------------------
    "utf16": Case(
        "jumin",
        file("jumin", csv_bytes("jumin", JUMIN, encoding="utf-16")),
        failure=f" 1行目: UTF-16 は受け付けられません: {ALLOWED} で出力してください",
    ),
    "euc_jp": Case(
        "jumin",
        file("jumin", csv_bytes("jumin", [JUMIN[0].replace("髙", "高")], encoding="euc_jp")),
        # 宛名 is B0 B8 CC BE in EUC-JP, read as half-width kana in CP932; byte 8
        # (E6 of 号) is a CP932 lead byte followed by a comma, no character
        failure=f" 1行目: 8 バイト目が {ALLOWED} として読めません",
    ),
    "zero_bytes": Case(
        "jumin", file("jumin", b""), failure=" 1行目: 0 バイトの空ファイルです (見出し行が必要)"
    ),
    "header_only": Case(
        "jumin",
        file("jumin", csv_bytes("jumin", []) + b"\r\n\r\n"),
        failure=f" 2行目: {HEADER_ONLY}",
    ),
    "missing_key_column": Case(
        "jumin",
        file("jumin", csv_bytes("jumin", [r.split(",", 1)[1] for r in JUMIN], head=NO_ATENA)),
        failure=" 1行目 列「宛名番号」: 必須の列がありません",
    ),
    "missing_count_column": Case(
        "shukketsu",
        file(
            "shukketsu",
            csv_bytes(
                "shukketsu",
                [r.replace(",20,", ",", 1) for r in SHUKKETSU],
                head=header("shukketsu").replace("授業日数,", ""),
            ),
        ),
        failure=" 1行目 列「授業日数」: 必須の列がありません",
    ),
    "tax_column": Case(
        "jumin",
        file(
            "jumin",
            csv_bytes("jumin", [r + ",1000" for r in JUMIN], head=header("jumin") + ",住民税額"),
        ),
        # named by position and keyed tag: a header may be personal data
        failure=lambda s: (
            f" 1行目 列「{s.describe_header(12, '住民税額')}」: "
            "地方税情報と見られる列があるため受け取りを拒否しました (地方税法第22条)"
        ),
    ),
    "duplicate_header": Case(
        "yobo",
        file(
            "yobo", csv_bytes("yobo", [r + ",1" for r in YOBO], head=header("yobo") + ",接種済数")
        ),
        failure=" 1行目 列「接種済数」: 見出しが重複しています",
    ),
    "empty_month_folder": Case(
        "jumin",
        remove_all,
        with_receipt=True,
        failure=": 基準月 2022-10 の jumin.csv (住民基本台帳, 市民課) が届いていません",
        missing=sorted(d.file for d in REGISTRY.datasets.values()),
    ),
    "tax_file_in_folder": Case(
        "jumin",
        tax_file_and_new_jumin,
        with_receipt=True,
        receipt_failure=(
            "2022-10: 地方税情報と見られるファイル 1 件（識別 ",
            "地方税法第22条",
            "ファイルは読んでいません",
        ),
    ),
    # -- the file is read; bad rows are quarantined and counted ----------------------------
    "extra_unknown_column": Case(
        "jumin",
        file(
            "jumin",
            csv_bytes("jumin", [r + ",x" for r in JUMIN], head=header("jumin") + ",予備項目"),
        ),
        stored=["0000000001", "0000000002"],
        # an unknown header may be personal data: its position and a keyed tag, never the name
        metadata={
            "ignored_unknown_columns": lambda s: [s.describe_header(12, "予備項目")],
            "dropped_forbidden_columns": ["個人番号"],
        },
    ),
    "truncated_last_line": Case(
        "jumin",
        truncated,
        stored=["0000000001", "0000000002"],
        quarantine={4: [COLUMN_COUNT.format(4)]},
    ),
    "unbalanced_quote": Case(
        "jumin",
        file(
            "jumin",
            csv_bytes("jumin", [*JUMIN, jumin_row("0000000003", 住所='"東京都昭島市,東町')]),
        ),
        stored=["0000000001", "0000000002"],
        quarantine={4: ['引用符 " の対応が取れていない行']},
    ),
    "stray_cr_inside_a_line": Case(
        "jumin",
        file(
            "jumin",
            csv_bytes(
                "jumin", [JUMIN[0], jumin_row("0000000003", 住所="東京都\r昭島市"), JUMIN[1]]
            ),
        ),
        stored=["0000000001", "0000000002"],
        quarantine={3: ["行の途中に改行文字 (CR) がある行"]},
    ),
    "conflicting_keys": Case(
        "jumin",
        file(
            "jumin",
            csv_bytes(
                "jumin",
                [*JUMIN, jumin_row("0000000003"), jumin_row("0000000003", 性別="2"), JUMIN[1]],
            ),
        ),
        stored=["0000000001", "0000000002"],
        quarantine={
            4: ["宛名番号: キーが重複し内容が矛盾"],
            5: ["宛名番号: キーが重複し内容が矛盾"],
        },
        metadata={"duplicates_removed": 1, "rows_received": 5},
    ),
    "impossible_date_r4_2_30": Case(
        "jumin",
        file("jumin", csv_bytes("jumin", [*JUMIN, jumin_row("0000000003", 生年月日="R4.2.30")])),
        stored=["0000000001", "0000000002"],
        quarantine={4: ["生年月日: 存在しない日付"]},
    ),
    "impossible_date_heisei_32": Case(
        "jumin",
        file(
            "jumin",
            csv_bytes(
                "jumin", [jumin_row("0000000003", 住民となった年月日="平成32年4月1日"), *JUMIN]
            ),
        ),
        stored=["0000000001", "0000000002"],
        quarantine={2: ["住民となった年月日: 平成の期間外の日付"]},
    ),
    "negative_count": Case(
        "yobo",
        file("yobo", csv_bytes("yobo", [*YOBO, "0000000003,-1,0"])),
        stored=["0000000001", "0000000002"],
        quarantine={4: ["定期接種対象数: 0以上の整数でない"]},
    ),
    "non_numeric_count": Case(
        "shukketsu",
        file(
            "shukketsu",
            csv_bytes(
                "shukketsu", [*SHUKKETSU, "1003,R4.10,20,三,0,0,0,無,", "1004,R4.10,20,1,x,0,0,無,"]
            ),
        ),
        stored=["1001", "1002"],
        quarantine={4: ["欠席日数: 0以上の整数でない"], 5: ["遅刻回数: 0以上の整数でない"]},
    ),
    "absences_over_school_days": Case(
        "shukketsu",
        file("shukketsu", csv_bytes("shukketsu", [*SHUKKETSU, "1003,R4.10,20,21,0,0,0,無,"])),
        stored=["1001", "1002"],
        quarantine={4: ["欠席日数: 欠席日数が授業日数を超えています"]},
    ),
    "atena_with_letters": Case(
        "jumin",
        file("jumin", csv_bytes("jumin", [*JUMIN, jumin_row("00000A0003")])),
        stored=["0000000001", "0000000002"],
        quarantine={4: ["宛名番号: 数字以外を含む"]},
    ),
    "latin1_bytes_in_a_row": Case(
        "jumin",
        file("jumin", csv_bytes("jumin", JUMIN) + latin1_row("0000000003")),
        stored=["0000000001", "0000000002"],
        quarantine={4: [f"{LATIN1_BYTE} バイト目が cp932 として読めない"]},
    ),
    "latin1_bytes_in_the_only_row": Case(
        "jumin",
        file("jumin", csv_bytes("jumin", []) + latin1_row("0000000003")),
        stored=[],
        quarantine={2: [f"{LATIN1_BYTE} バイト目が cp932 として読めない"]},
    ),
}


# -- helpers ---------------------------------------------------------------------------------


def snapshot(storage: KodomoStorage, store: Path) -> dict[str, tuple[int, str]]:
    """Every table of the store: row count and a hash of its rows in a stable order."""
    with storage.open(store) as con:
        tables = [
            t
            for (t,) in con.execute(
                "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() "
                "ORDER BY table_name"
            ).fetchall()
        ]
        out = {}
        for t in tables:
            rows = con.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall()
            out[t] = (len(rows), hashlib.sha256(repr(rows).encode()).hexdigest())
    return out


def kept(relative: Path) -> bool:
    """What a month's ingest keeps under KODOMO_HOME: the department store, the sealed copy
    of the ingested export, and the month's key table (and its lock file)."""
    parts = relative.parts
    return (
        (len(parts) == 3 and relative.match(f"stores/*/{MONTH}.duckdb"))
        or (len(parts) == 5 and relative.match(f"stores/*/raw/{MONTH}/*.csv.sealed"))
        or relative.as_posix() in (f"keytable/{MONTH}.json", f"keytable/.{MONTH}.lock")
    )


def leftovers(storage: KodomoStorage) -> list[str]:
    """Anything under KODOMO_HOME but the stores, their sealed exports and the key table, and
    any stored file without its key (one nobody could open again)."""
    home = storage.home_path
    files = [p.relative_to(home) for p in home.rglob("*") if p.is_file()]
    extra = sorted(str(p) for p in files if not kept(p))
    keyed = set(storage.keytable.entries(MONTH))
    return extra + sorted(
        f"file without a key: {p}"
        for p in files
        if kept(p) and p.parts[0] == "stores" and p.as_posix() not in keyed
    )


def good_bytes(dataset: str) -> bytes:
    return csv_bytes(dataset, GOOD[dataset])


# -- the corpus ------------------------------------------------------------------------------


FAILING = [name for name, case in CASES.items() if case.stored is None]
QUARANTINING = [name for name, case in CASES.items() if case.stored is not None]


@dataclass
class Delivery:
    """The bad delivery after a good one, as run, with the state the good one left."""

    case: Case
    folder: Path
    store: Path
    before: dict[str, tuple[int, str]]  # the store after the good delivery
    delivered: bytes | None  # the bad file as delivered (None: nothing in its place)
    result: ExecuteInProcessResult
    failed: dict[str, str]
    meta: dict[str, dict]  # by asset name without "sources/"

    @property
    def ds(self) -> Dataset:
        return REGISTRY.datasets[self.case.dataset]

    @property
    def step(self) -> str:
        return f"sources__{self.case.dataset}"


def bad_after_good(
    name: str, storage: KodomoStorage, write_export: Callable[..., Path]
) -> Delivery:
    """Materialise the good export (read, sealed into the raw archive, gone from the inbox),
    then the case's bad delivery into the month folder the good one left."""
    case = CASES[name]
    ds = REGISTRY.datasets[case.dataset]
    dept = ds.department.code
    asset = ASSET[case.dataset]
    store = storage.department_store(dept, MONTH)
    folder = storage.inbox_path / MONTH

    # the good delivery: read, then sealed into the raw archive and gone from the inbox
    write_export(ds.file, [header(case.dataset), *GOOD[case.dataset]])
    good = run([asset], MONTH, storage)
    assert good.success, failures(good)
    assert metadata(good)[f"sources/{case.dataset}"]["dagster/row_count"] == 2
    before = snapshot(storage, store)
    assert before[case.dataset][0] == 2 and before[f"{case.dataset}_quarantine"][0] == 0
    assert not (folder / ds.file).exists()
    assert storage.archived_export(dept, MONTH, ds.file) == good_bytes(case.dataset)
    assert leftovers(storage) == []

    # the bad delivery, into the month folder the good one left
    case.deliver(folder, storage)
    delivered = (folder / ds.file).read_bytes() if (folder / ds.file).exists() else None
    result = run([inbox_receipt, asset] if case.with_receipt else [asset], MONTH, storage)
    meta = {k.removeprefix("sources/"): v for k, v in metadata(result).items()}
    return Delivery(case, folder, store, before, delivered, result, failures(result), meta)


@pytest.mark.parametrize("name", FAILING)
def test_a_bad_file_after_a_good_one_fails_and_leaves_the_last_good_state(
    name: str, storage: KodomoStorage, write_export: Callable[..., Path]
) -> None:
    d = bad_after_good(name, storage, write_export)
    case, ds, failed, step = d.case, d.ds, d.failed, d.step
    assert not d.result.success
    assert case.dataset not in d.meta
    if case.failure is not None:  # the message names the file, then line and column
        expected = case.failure(storage) if callable(case.failure) else case.failure
        assert f"{d.folder / ds.file}{expected}" in failed[step], failed[step]
    if case.receipt_failure is not None:
        assert set(failed) == {"sources__inbox_receipt"}
        for part in case.receipt_failure:
            assert part in failed["sources__inbox_receipt"]
        assert started(d.result) == ["sources__inbox_receipt"]  # the source never ran
    else:
        assert set(failed) == {step}
    if case.missing is not None:
        assert d.meta["inbox_receipt"]["missing"] == case.missing
    # the last good state, table for table, and nothing half-written beside it
    assert snapshot(storage, d.store) == d.before
    if d.delivered is not None:  # a failed file stays in the inbox; the archive keeps the good one
        assert (d.folder / ds.file).read_bytes() == d.delivered
        assert storage.archived_export(ds.department.code, MONTH, ds.file) == good_bytes(
            case.dataset
        )
    assert leftovers(storage) == []


@pytest.mark.parametrize("name", QUARANTINING)
def test_a_bad_row_after_a_good_one_is_quarantined_and_counted(
    name: str, storage: KodomoStorage, write_export: Callable[..., Path]
) -> None:
    d = bad_after_good(name, storage, write_export)
    case, ds = d.case, d.ds
    assert case.stored is not None
    assert d.result.success, d.failed
    got = d.meta[case.dataset]
    reasons: dict[str, int] = {}
    for why in case.quarantine.values():
        for r in why:
            reasons[r] = reasons.get(r, 0) + 1
    assert got["dagster/row_count"] == len(case.stored)
    assert got["quarantined"] == len(case.quarantine)
    assert got["quarantine_by_reason"] == reasons
    assert got["read_from"] == "受信箱"  # the new delivery won over the archive
    for key, value in case.metadata.items():
        assert got[key] == (value(storage) if callable(value) else value), key
    key = ds.key[0]
    with storage.open(d.store) as con:
        assert [
            k
            for (k,) in con.execute(
                f"SELECT {key} FROM {case.dataset} ORDER BY source_line"
            ).fetchall()
        ] == case.stored
        quarantined = dict(
            con.execute(
                f"SELECT line, reasons FROM {case.dataset}_quarantine ORDER BY line"
            ).fetchall()
        )
    assert quarantined == case.quarantine
    after = snapshot(storage, d.store)
    # the same tables, the dataset's pair replaced together
    assert set(after) == set(d.before)
    assert after[case.dataset][0] == len(case.stored)
    assert after[f"{case.dataset}_quarantine"][0] == len(case.quarantine)
    # the read file left the inbox, sealed in place of the good one
    assert not (d.folder / ds.file).exists()
    assert storage.archived_export(ds.department.code, MONTH, ds.file) == d.delivered
    assert leftovers(storage) == []


def test_an_empty_month_folder_after_a_good_one_reruns_from_the_sealed_copy(
    storage: KodomoStorage, write_export
) -> None:
    """The folder a good delivery emptied is no missing delivery: the receipt counts the
    export as already ingested and the source reads its sealed copy to the same store."""
    write_export("jumin.csv", [header("jumin"), *JUMIN])
    assert run([inbox_receipt, ASSET["jumin"]], MONTH, storage).success
    store = storage.department_store("shimin", MONTH)
    before = snapshot(storage, store)
    assert list((storage.inbox_path / MONTH).iterdir()) == []
    again = run([inbox_receipt, ASSET["jumin"]], MONTH, storage)
    assert again.success, failures(again)
    meta = metadata(again)
    assert meta["sources/inbox_receipt"]["received"] == 0
    assert meta["sources/inbox_receipt"]["already_ingested"] == 1
    assert "jumin.csv" not in meta["sources/inbox_receipt"]["missing"]
    assert meta["sources/jumin"]["read_from"] == "暗号化保管した前回の受信ファイル"
    assert snapshot(storage, store) == before
    assert leftovers(storage) == []


def test_the_corpus_bytes_really_are_outside_the_allowed_encodings() -> None:
    euc = csv_bytes("jumin", [], encoding="euc_jp")
    for data in (euc, latin1_row("0000000003")):
        for codec in ("utf-8", "cp932"):
            with pytest.raises(UnicodeDecodeError):
                data.decode(codec)
    with pytest.raises(UnicodeDecodeError) as err:
        euc.decode("cp932")
    assert err.value.start + 1 == 8


def test_the_utf16_failure_names_the_file_and_line_in_the_step_failure(
    storage, write_export
) -> None:
    """The Failure is Dagster's, not a crash: no retry, and the description is the message."""
    write_export("jumin.csv", [header("jumin"), *JUMIN], encoding="utf-16")
    result = run([ASSET["jumin"]], MONTH, storage)
    event = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    error = event.event_specific_data.error
    assert error.cls_name == "Failure"
    assert "jumin.csv 1行目" in error.message and "UTF-16" in error.message
    assert (storage.inbox_path / MONTH / "jumin.csv").exists()  # a failed file stays in the inbox


def test_a_tax_file_stops_every_source_of_the_delivery(storage, write_export) -> None:
    """kazei.csv in the folder: inbox_receipt fails naming it, no source asset runs, and the
    stores (and sealed exports) from the earlier good delivery stay as they were."""
    folder = storage.inbox_path / MONTH
    for dataset in GOOD:
        write_export(REGISTRY.datasets[dataset].file, [header(dataset), *GOOD[dataset]])
    assets = [ASSET[d] for d in GOOD]
    good = run([inbox_receipt, *assets], MONTH, storage)
    assert good.success, failures(good)
    stores = {
        d: storage.department_store(REGISTRY.datasets[d].department.code, MONTH) for d in GOOD
    }
    before = {d: snapshot(storage, s) for d, s in stores.items()}
    tax_file_and_new_jumin(folder)
    result = run([inbox_receipt, *assets], MONTH, storage)
    failed = failures(result)
    assert set(failed) == {"sources__inbox_receipt"}
    assert storage.name_tag("kazei.csv") in failed["sources__inbox_receipt"]
    assert "kazei" not in failed["sources__inbox_receipt"]
    assert "地方税法第22条" in failed["sources__inbox_receipt"]
    assert not result.get_asset_materialization_events()
    assert started(result) == ["sources__inbox_receipt"]  # no source step even started
    assert {d: snapshot(storage, s) for d, s in stores.items()} == before
    for dataset in GOOD:
        ds = REGISTRY.datasets[dataset]
        assert storage.archived_export(ds.department.code, MONTH, ds.file) == good_bytes(dataset)
    # nothing was read, so nothing left the inbox: neither the tax file nor the new jumin.csv
    assert sorted(p.name for p in folder.iterdir()) == ["jumin.csv", "kazei.csv"]
    assert leftovers(storage) == []

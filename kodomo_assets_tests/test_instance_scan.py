"""After a full demo run through the CLI, Dagster's own storage holds no personal data: the
event log, run storage, schedule storage and compute logs under DAGSTER_HOME are scanned for
the month's names, 宛名番号, My Numbers and addresses. And KODOMO_HOME is closed at rest:
0600 files in 0700 folders, no DuckDB file that opens without its key, and no plaintext
export left in the inbox."""

import csv
import io
import re
import shutil
import stat
import unicodedata
from pathlib import Path

import duckdb

from kodomo_assets.demo import generate
from kodomo_assets.lib.platform.storage import load_crypto
from kodomo_assets_tests.conftest import make_keys, make_storage
from kodomo_assets_tests.runs import refresh_process

MONTH = "2022-10"
ROOT = Path(__file__).resolve().parents[1]
JUMIN_COLUMNS = {
    "宛名番号": "atena",
    "個人番号": "my_number",
    "氏名": "name",
    "氏名カナ": "kana",
    "住所": "address",
}


def planted(jumin_csv: Path) -> dict[str, set[str]]:
    """The personal values of the delivered register, as delivered and as stored (NFKC)."""
    raw = jumin_csv.read_bytes().decode("cp932", errors="replace")
    rows = csv.reader(io.StringIO(raw))
    header = next(rows)
    where = {JUMIN_COLUMNS[h]: i for i, h in enumerate(header) if h in JUMIN_COLUMNS}
    out: dict[str, set[str]] = {k: set() for k in JUMIN_COLUMNS.values()}
    for row in rows:
        if len(row) != len(header):
            continue  # a malformed line the generator planted: quarantined, never stored
        for kind, i in where.items():
            value = row[i].strip()
            if value:
                out[kind] |= {value, unicodedata.normalize("NFKC", value)}
    # My Numbers also as the regular expression finds them in the raw file
    out["my_number"] |= set(re.findall(r"(?<![0-9])[0-9]{12}(?![0-9])", raw))
    return out


def by_surname(names: set[str]) -> dict[str, set[str]]:
    """Full names grouped by their surname (before the first space): a file is searched for
    the few hundred surnames first, and for full names only where a surname occurs."""
    index: dict[str, set[str]] = {}
    for name in names:
        index.setdefault(re.split(r"[ \u3000]", name, maxsplit=1)[0], set()).add(name)
    return index


def names_in(text: str, index: dict[str, set[str]]) -> list[str]:
    return [n for sur, names in index.items() if sur in text for n in names if n in text]


def test_dagster_storage_holds_no_personal_data(tmp_path: Path) -> None:
    generated, inbox, dagster_home = (
        tmp_path / "generated",
        tmp_path / "inbox",
        tmp_path / "dagster_home",
    )
    generate(generated, residents=12000, months=[MONTH], seed=21)
    shutil.copytree(generated / MONTH, inbox / MONTH)
    # read before the run: an ingest takes the exports out of the inbox
    values = planted(inbox / MONTH / "jumin.csv")
    storage = make_storage(tmp_path / "home", inbox, make_keys(tmp_path / "secrets"))
    dagster_home.mkdir()
    shutil.copy(ROOT / "dagster_home" / "dagster.yaml", dagster_home)
    run = refresh_process(storage, dagster_home, MONTH)
    assert "RUN_SUCCESS" in run.stdout + run.stderr, run.stderr[-3000:]

    # the values as stored too (the register, read through the storage resource)
    with storage.open(storage.department_store("shimin", MONTH)) as con:
        for column, kind in (
            ("name", "name"),
            ("atena_no", "atena"),
            ("address", "address"),
            ("name_kana", "kana"),
        ):
            values[kind] |= {
                r[0]
                for r in con.execute(
                    f"SELECT DISTINCT {column} FROM jumin WHERE {column} IS NOT NULL"
                ).fetchall()
            }
    atena = {a for a in values["atena"] if re.fullmatch(r"[0-9]{10}", a)}
    my_numbers = {n for n in values["my_number"] if re.fullmatch(r"[0-9]{12}", n)}
    assert len(atena) > 10000 and my_numbers and len(values["name"]) > 10000

    files = [p for p in dagster_home.rglob("*") if p.is_file()]
    blob = b"\n".join(p.read_bytes() for p in files).decode("utf-8", errors="replace")
    assert (
        "ASSET_MATERIALIZATION" in blob and "dagster/column_lineage" in blob
    )  # the event log was read
    digits = set(re.findall(r"(?<![0-9])[0-9]{10}(?![0-9])", blob)) | set(
        re.findall(r"(?<![0-9])[0-9]{12}(?![0-9])", blob)
    )
    assert not digits & atena, "a 宛名番号 reached Dagster's storage"
    assert not digits & my_numbers, "a My Number reached Dagster's storage"
    for value in (*values["name"], *values["address"], *values["kana"]):
        assert value not in blob, "a name or address reached Dagster's storage"

    # no plaintext export is left in the inbox: each was sealed into its raw archive
    assert list((inbox / MONTH).iterdir()) == []
    home = storage.home_path
    sealed = list(home.glob(f"stores/*/raw/{MONTH}/*.csv.sealed"))
    assert len(sealed) == 11

    # 0600 files in 0700 folders, everything under KODOMO_HOME (and KODOMO_HOME itself)
    modes = {p: stat.S_IMODE(p.lstat().st_mode) for p in [home, *home.rglob("*")]}
    assert len(modes) > 30
    assert {str(p): oct(m) for p, m in modes.items() if p.is_dir() and m != 0o700} == {}
    assert {str(p): oct(m) for p, m in modes.items() if p.is_file() and m != 0o600} == {}
    assert not [p for p in modes if not p.is_dir() and not p.is_file()]  # no links, no sockets

    # no DuckDB file opens without its key, neither directly nor attached
    stores = sorted(home.rglob("*.duckdb"))
    assert len(stores) >= 10 and any("zones" in p.parts for p in stores)
    for path in stores:
        try:
            con = duckdb.connect(str(path), read_only=True)
        except duckdb.Error:
            pass
        else:
            con.close()
            raise AssertionError(f"{path} opens without a key")
        con = duckdb.connect()
        load_crypto(con)  # even with the crypto module loaded, no key: no data
        try:
            con.execute(f"ATTACH '{path}' AS plain (READ_ONLY)")
        except duckdb.Error:
            pass
        else:
            raise AssertionError(f"{path} attaches without a key")
        finally:
            con.close()

    # nothing under KODOMO_HOME holds a name, 宛名番号 or My Number in the clear: the stores
    # and archives are encrypted, the plain files (model card, report, logs) aggregates
    index = by_surname(values["name"] | values["kana"])
    assert len(index) < len(values["name"]) / 10  # the grouping does save work
    for path in (p for p in modes if p.is_file()):
        text = path.read_bytes().decode("utf-8", errors="replace")
        found = set(re.findall(r"(?<![0-9])[0-9]{10}(?![0-9])", text)) | set(
            re.findall(r"(?<![0-9])[0-9]{12}(?![0-9])", text)
        )
        assert not found & (atena | my_numbers), (
            f"{path.relative_to(home)}: an identifier in the clear"
        )
        assert not names_in(text, index), f"{path.relative_to(home)} holds a name"

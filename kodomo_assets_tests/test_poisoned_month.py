"""A poisoned month, as a careless department would deliver it: My Numbers, phone numbers and
amounts of money in every written form, typed into 学校名, 施設名 and 住所, and a My Number in
a count. The month refreshes to the end; the poisoned rows are quarantined with masked
values; and no planted value, in any form, is in any store, sealed export, zone, quarantine
table, report, nor in Dagster's event log, run storage or compute logs."""

import csv
import io
import random
import shutil
import unicodedata
from pathlib import Path

import pytest

from kodomo_assets.demo import generate
from kodomo_assets.lib.platform.storage import KodomoStorage
from kodomo_assets.lib.policy.content import is_my_number
from kodomo_assets_tests.conftest import make_keys, make_storage
from kodomo_assets_tests.runs import refresh_process

MONTH = "2022-10"
ROOT = Path(__file__).resolve().parents[1]
KANJI = "〇一二三四五六七八九"


def my_number(rng: random.Random) -> str:
    while True:
        candidate = f"{rng.randrange(10**12):012d}"
        if is_my_number(candidate) and candidate[0] != "0":
            return candidate


def forms(rng: random.Random) -> list[tuple[str, list[str]]]:
    """(the value as typed, the strings that must never be found afterwards)."""
    out = []
    for write in (
        lambda n: f"{n[:4]} {n[4:8]} {n[8:]}",
        lambda n: f"{n[:4]}-{n[4:8]}-{n[8:]}",
        lambda n: "".join(KANJI[int(d)] for d in n),
        lambda n: f"番号{n[:3]},{n[3:6]},{n[6:9]},{n[9:]}",
    ):
        n = my_number(rng)
        out.append((write(n), [n]))
    for write in (
        lambda a, b: f"090 {a} {b}",
        lambda a, b: unicodedata.normalize("NFKC", f"090-{a}-{b}").translate(
            str.maketrans("0123456789-", "０１２３４５６７８９ー")
        ),
        lambda a, b: f"+81-90-{a}-{b}",
        lambda a, b: f"(042){a[1:]}-{b}",
    ):
        a, b = f"{rng.randrange(1000, 10000)}", f"{rng.randrange(1000, 10000)}"
        typed = write(a, b)
        digits = "".join(ch for ch in unicodedata.normalize("NFKC", typed) if ch.isdigit())
        out.append((typed, [digits[-8:] if digits.startswith("81") else digits]))
    amount = f"{rng.randrange(2_000_000, 9_000_000)}"
    out.append((f"所得{amount}円", [amount]))
    return out


def poison(path: Path, header: str, values: list[str], every: int = 7) -> int:
    """Put the values into column `header` of every `every`-th data row; returns how many."""
    data = path.read_bytes()
    encoding = "utf-8-sig" if data.startswith(b"\xef\xbb\xbf") else "cp932"
    try:
        data.decode("utf-8")
        encoding = "utf-8-sig" if encoding == "utf-8-sig" else "utf-8"
    except UnicodeDecodeError:
        pass
    # surrogateescape: the generator's deliberately broken bytes go back as they came
    text = data.decode(encoding, errors="surrogateescape")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    col = rows[0].index(header)
    data = [i for i, r in enumerate(rows) if i and len(r) == len(rows[0])]
    targets = data[3::every][: len(values)]
    for i, value in zip(targets, values, strict=False):
        rows[i][col] = value
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(rows)
    path.write_bytes(out.getvalue().encode(encoding, errors="surrogateescape"))
    return len(targets)


def everything_stored(storage: KodomoStorage) -> str:
    """Every value of every table of every DuckDB file, and every sealed file, decrypted."""
    parts = []
    for path in sorted(storage.home_path.rglob("*.duckdb")):
        if path.parts[-3:-2] == ("center",):
            continue  # encrypted to the center: read below with the center's key
        with storage.open(path) as con:
            for (t,) in con.execute(
                "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database()"
            ).fetchall():
                parts += [str(r) for r in con.execute(f'SELECT * FROM "{t}"').fetchall()]
    for path in sorted(storage.home_path.rglob("*.sealed")):
        if path.suffixes[-2:] == [".csv", ".sealed"] or path.name.endswith(".json.sealed"):
            parts.append(storage.unseal(path).decode("cp932", errors="replace"))
    for path in sorted(storage.home_path.rglob("*")):
        if path.is_file() and path.suffix in (".html", ".json", ".jsonl"):
            parts.append(path.read_text(encoding="utf-8", errors="replace"))
    return "\n".join(parts)


@pytest.fixture(scope="module")
def poisoned(tmp_path_factory: pytest.TempPathFactory):
    base = tmp_path_factory.mktemp("poisoned")
    generate(base / "generated", residents=9000, months=[MONTH], seed=31)
    inbox = base / "inbox"
    shutil.copytree(base / "generated" / MONTH, inbox / MONTH)
    rng = random.Random(5)
    planted = {"gakurei": forms(rng), "hoiku": forms(rng), "jumin": forms(rng)}
    counts = {
        ds: poison(inbox / MONTH / f"{ds}.csv", header, [typed for typed, _ in planted[ds]])
        for ds, header in (("gakurei", "学校名"), ("hoiku", "施設名"), ("jumin", "住所"))
    }
    count_number = my_number(rng)
    counts["yobo"] = poison(inbox / MONTH / "yobo.csv", "定期接種対象数", [count_number])
    storage = make_storage(base / "home", inbox, make_keys(base / "secrets"))
    dagster_home = base / "dagster_home"
    dagster_home.mkdir()
    shutil.copy(ROOT / "dagster_home" / "dagster.yaml", dagster_home)
    done = refresh_process(storage, dagster_home, MONTH)
    secrets = {
        s
        for ds in planted.values()
        for typed, found in ds
        for s in (typed, unicodedata.normalize("NFKC", typed), *found)
    } | {count_number}
    return storage, dagster_home, done, counts, secrets


def test_the_poisoned_month_refreshes_to_the_end(poisoned) -> None:
    *_, done, counts, _ = poisoned
    out = done.stdout + done.stderr
    assert done.returncode == 0 and "RUN_SUCCESS" in out, out[-3000:]
    assert counts == {"gakurei": 9, "hoiku": 9, "jumin": 9, "yobo": 1}


def test_the_poisoned_rows_are_quarantined_with_masked_values(poisoned) -> None:
    storage, *_ = poisoned
    for dept, table, column, n in (
        ("gakumu", "gakurei", "school", 9),
        ("hoiku", "hoiku", "facility", 9),
        ("shimin", "jumin", "address", 9),
        ("kenko", "yobo", "doses_due", 1),
    ):
        with storage.open(storage.department_store(dept, MONTH)) as con:
            masked = con.execute(
                f"SELECT count(*) FROM {table}_quarantine WHERE starts_with({column}, '＊＊＊＊（')"
            ).fetchone()[0]
        assert masked == n, table


def test_no_planted_value_in_any_form_is_anywhere(poisoned) -> None:
    storage, dagster_home, done, _, secrets = poisoned
    stored = everything_stored(storage)
    assert len(stored) > 100_000  # the scan really read the stores
    found = sorted(s for s in secrets if s in stored)
    assert not found, found
    for path in dagster_home.rglob("*"):  # event log, run storage, compute logs
        if path.is_file():
            text = path.read_bytes().decode("utf-8", errors="replace")
            hits = sorted(s for s in secrets if s in text)
            assert not hits, (path.relative_to(dagster_home), hits)
    out = done.stdout + done.stderr
    assert not [s for s in secrets if s in out]

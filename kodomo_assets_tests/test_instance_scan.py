"""After a full demo run through the CLI, Dagster's own storage holds no personal data: the
event log, run storage, schedule storage and compute logs under DAGSTER_HOME are scanned for
the month's names, 宛名番号, My Numbers and addresses."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb

from kodomo_assets.demo import generate
from kodomo_assets.lib.paths import department_store

MONTH = "2022-10"
ROOT = Path(__file__).resolve().parents[1]


def test_dagster_storage_holds_no_personal_data(tmp_path: Path, monkeypatch) -> None:
    inbox, home, dagster_home = tmp_path / "inbox", tmp_path / "home", tmp_path / "dagster_home"
    dagster_home.mkdir()
    shutil.copy(ROOT / "dagster_home" / "dagster.yaml", dagster_home)
    generate(inbox, residents=12000, months=[MONTH], seed=21)
    env = {**os.environ, "KODOMO_INBOX": str(inbox), "KODOMO_HOME": str(home),
           "DAGSTER_HOME": str(dagster_home)}
    dagster = Path(sys.executable).parent / "dagster"
    run = subprocess.run([str(dagster), "job", "execute", "-m", "kodomo_assets", "-j", "monthly_refresh",
                          "--tags", f'{{"dagster/partition": "{MONTH}"}}'],
                         env=env, capture_output=True, text=True, timeout=600)
    assert "RUN_SUCCESS" in run.stdout + run.stderr, run.stderr[-3000:]

    monkeypatch.setenv("KODOMO_HOME", str(home))
    with duckdb.connect(str(department_store("shimin", MONTH)), read_only=True) as con:
        names, atena, addresses, kana = (
            {r[0] for r in con.execute(f"SELECT DISTINCT {c} FROM jumin WHERE {c} IS NOT NULL").fetchall()}
            for c in ("name", "atena_no", "address", "name_kana"))
    raw = (inbox / MONTH / "jumin.csv").read_bytes().decode("cp932", errors="replace")
    my_numbers = set(re.findall(r"(?<![0-9])[0-9]{12}(?![0-9])", raw))
    assert len(atena) > 10000 and my_numbers

    files = [p for p in dagster_home.rglob("*") if p.is_file()]
    blob = b"\n".join(p.read_bytes() for p in files).decode("utf-8", errors="replace")
    assert "ASSET_MATERIALIZATION" in blob and "dagster/column_lineage" in blob  # the event log was read
    digits = set(re.findall(r"(?<![0-9])[0-9]{10}(?![0-9])", blob)) | set(
        re.findall(r"(?<![0-9])[0-9]{12}(?![0-9])", blob))
    assert not digits & atena, "a 宛名番号 reached Dagster's storage"
    assert not digits & my_numbers, "a My Number reached Dagster's storage"
    for value in (*names, *addresses, *kana):
        assert value not in blob, "a name or address reached Dagster's storage"

"""Center-only re-identification, end to end: the monthly refresh runs with the pipeline's
keys and the center's public keys only; that environment cannot read or export the review
list; the center's keys can, and its verification comes back signed, as pseudonyms."""

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kodomo_assets.demo import generate
from kodomo_assets.lib.center.export import read_access_log, verify_access_log
from kodomo_assets.lib.paths import REPO_ROOT
from kodomo_assets.lib.platform.keys import KeyProblem, read_center_private
from kodomo_assets.lib.platform.storage import KodomoStorage, StoreMissing
from kodomo_assets.lib.policy.approval import DEMO_POLICY
from kodomo_assets_tests.conftest import make_keys, make_storage, pipeline_env
from kodomo_assets_tests.runs import refresh_process

MONTH = "2022-10"
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def refreshed(tmp_path_factory: pytest.TempPathFactory) -> tuple[KodomoStorage, Path, Path]:
    base = tmp_path_factory.mktemp("center_only")
    generate(base / "inbox", residents=9000, months=["2022-09", MONTH], seed=21)
    keys = make_keys(base / "secrets")
    storage = make_storage(base / "home", base / "inbox", keys)
    dagster_home = base / "dagster_home"
    dagster_home.mkdir()
    shutil.copy(REPO_ROOT / "dagster_home" / "dagster.yaml", dagster_home)
    # the pipeline's environment: no KODOMO_CENTER_KEY_DIR, nothing of the center's private keys
    done = refresh_process(storage, dagster_home, MONTH, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return storage, keys, base


def kodomo(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("KODOMO_")}
    return subprocess.run(
        [str(BIN / "kodomo"), *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_pipeline_cannot_read_or_export_what_it_wrote(refreshed, tmp_path: Path) -> None:
    storage, keys, _ = refreshed
    listed = storage.zone_store("center", MONTH, "review_list")
    assert listed.exists()
    with pytest.raises((KeyProblem, StoreMissing)):
        storage.open(listed).__enter__()
    out = tmp_path / "list.csv"
    # the pipeline's environment has no private key: the export is refused
    refused = kodomo(
        ["review-list", "--month", MONTH, "--out", str(out), "--purpose", "個別確認"],
        pipeline_env(storage),
    )
    assert refused.returncode != 0 and not out.exists()
    # nor does pointing it at the public key's folder help: the private keys are not there
    public_only = tmp_path / "public_only"
    public_only.mkdir()
    shutil.copy(keys / "center" / "center_public.json", public_only)
    refused = kodomo(
        ["review-list", "--month", MONTH, "--out", str(out), "--purpose", "個別確認"],
        {**pipeline_env(storage), "KODOMO_CENTER_KEY_DIR": str(public_only)},
    )
    assert refused.returncode == 2 and "秘密鍵" in refused.stderr and not out.exists()


def test_the_center_exports_and_returns_verification_as_signed_pseudonyms(
    refreshed, tmp_path: Path
) -> None:
    storage, keys, base = refreshed
    center = {
        "KODOMO_HOME": storage.home,
        "KODOMO_INBOX": storage.inbox,
        "KODOMO_CENTER_KEY_DIR": str(keys / "center"),
        "KODOMO_POLICY": str(DEMO_POLICY),
        "KODOMO_MODE": "demo",
    }
    out = tmp_path / "list.csv"
    done = kodomo(
        ["review-list", "--month", MONTH, "--out", str(out), "--purpose", "個別確認"], center
    )
    assert done.returncode == 0, done.stderr
    rows = list(csv.reader(out.read_text(encoding="utf-8-sig").splitlines()))[1:]
    assert rows and all(len(r[2]) == 10 for r in rows)
    kakunin = tmp_path / "kakunin.csv"
    kakunin.write_text(
        "宛名番号,基準月,確認結果\n"
        + "".join(
            f"{r[2]},{MONTH},{'該当' if i % 2 == 0 else '非該当'}\n" for i, r in enumerate(rows[:4])
        ),
        encoding="utf-8",
    )
    done = kodomo(["feedback-import", "--month", MONTH, "--file", str(kakunin)], center)
    assert done.returncode == 0, done.stderr
    signed = storage.inbox_path / MONTH / "kakunin_signed.json"
    assert not any(r[2] in signed.read_text(encoding="utf-8") for r in rows)
    log = read_access_log(storage, MONTH)
    assert [e["action"] for e in log] == ["export", "import"]
    assert verify_access_log(storage, read_center_private(keys / "center").public()) is None

    # the pipeline, with the public key only, verifies the file and computes the PPV
    from kodomo_assets.defs.center.feedback import verification_feedback
    from kodomo_assets_tests.runs import metadata, run

    result = run([verification_feedback], "2022-11", storage)  # the next month's run takes them
    (meta,) = metadata(result).values()
    assert meta["outcomes"] == {"該当": 2, "非該当": 2, "既知": 0} and meta["ppv_overall"] == 0.5
    assert not signed.exists()  # sealed into the center's raw archive once read

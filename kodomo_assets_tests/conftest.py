import csv
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from kodomo_assets.lib.platform.keys import (
    CenterPrivate,
    center_keygen,
    create_secret,
    read_center_private,
)
from kodomo_assets.lib.platform.storage import KodomoStorage, restrict_umask
from kodomo_assets.lib.policy.approval import DEMO_POLICY, HEADER, policy_path

# headless Chromium offline (Debian's package): no background networking, no updates, no
# sync; the report's test and the UI's browser test share these
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
JUMIN_HEADER = (
    "宛名番号,世帯番号,個人番号,氏名,氏名カナ,生年月日,性別,続柄,住所,町丁目コード,"
    "住民種別,住民となった年月日"
)

restrict_umask()  # as the code location does: every file a test run writes is 0600


def make_keys(folder: Path) -> Path:
    """The pipeline's secrets and the center's key pairs, outside any KODOMO_HOME."""
    create_secret(folder / "storage.key")
    create_secret(folder / "pseudonym.key")
    if not (folder / "center" / "center_public.json").exists():
        center_keygen(folder / "center", passphrase=None)
    return folder


# The tests process FY2022 months under the council's FY2022 list, so their date of
# processing is inside that period: the resource's clock, which production refuses.
TEST_CLOCK = "2022-11-02"


def make_storage(home: Path, inbox: Path, keys: Path, clock: str = TEST_CLOCK) -> KodomoStorage:
    """The storage resource as the code location configures it, on this test's folders."""
    return KodomoStorage(
        home=str(home),
        inbox=str(inbox),
        storage_key_file=str(keys / "storage.key"),
        pseudonym_key_file=str(keys / "pseudonym.key"),
        center_public_key_file=str(keys / "center" / "center_public.json"),
        mode="test",
        clock=clock,
    )


def configured(storage: KodomoStorage, **changes: str) -> KodomoStorage:
    """The same resource with some settings changed. Built anew: Dagster initialises a
    resource from its configuration, which a pydantic copy would not change."""
    fields = {name: getattr(storage, name) for name in KodomoStorage.model_fields}
    return KodomoStorage(**{**fields, **changes})


def at(storage: KodomoStorage, clock: str) -> KodomoStorage:
    """The same resource on another date of processing."""
    return configured(storage, clock=clock)


def pipeline_env(storage: KodomoStorage) -> dict[str, str]:
    """The environment variables of the code location's resources, for a CLI run."""
    return {
        "KODOMO_HOME": storage.home,
        "KODOMO_INBOX": storage.inbox,
        "KODOMO_STORAGE_KEY_FILE": storage.storage_key_file,
        "KODOMO_KEY_FILE": storage.pseudonym_key_file,
        "KODOMO_CENTER_PUBLIC_KEY_FILE": storage.center_public_key_file,
        # a subprocess runs the real code location, on the real calendar: the demo approval
        "KODOMO_POLICY": str(DEMO_POLICY),
        "KODOMO_MODE": "demo",
    }


def copy_inbox(generated: Path, inbox: Path) -> Path:
    """A copy of generated month folders (and the demo truth) for one home: an ingest takes
    the exports out of the inbox, so two homes never share one."""
    shutil.copytree(generated, inbox, dirs_exist_ok=True)
    return inbox


# -- the approval list, edited for one test ---------------------------------------------------

FY2022 = "昭島市個人情報保護条例第13条第2項第6号"

# the changes that approve a row for analysis under FY2022 (for `edited_approval`)
APPROVE = {
    "目的外利用": "○",
    "利用区分": "分析",
    "根拠": FY2022,
    "承認期間開始": "2022-04-01",
    "承認期間終了": "2023-03-31",
    "保存期間（月）": "12",
}


def approval_rows() -> list[dict[str, str]]:
    """The rows of the approval list in use (data/policy/approval.csv unless KODOMO_POLICY)."""
    with open(policy_path(), encoding="utf-8-sig", newline="") as fh:
        return list(csv.DictReader(fh))


def write_approval(path: Path, rows: list[dict[str, str]]) -> Path:
    """An approval list of these rows, as the committee's file is written (UTF-8 with BOM)."""
    with open(path, "w", encoding="utf-8-sig", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=HEADER)
        w.writeheader()
        w.writerows(rows)
    return path


def edited_approval(folder: Path, header: str, file: str, **changes: str) -> Path:
    """`folder`/approval.csv: the approval list with the row of one export column changed."""
    rows = approval_rows()
    row = next(r for r in rows if r["項目"] == header and r["ファイル"] == file)
    row.update(changes)
    return write_approval(folder / "approval.csv", rows)


def withdrawn_approval(folder: Path, header: str, file: str, **changes: str) -> Path:
    """`folder`/approval.csv with one export column's approval withdrawn: no 利用区分, basis
    or period (plus `changes`, e.g. 提供="" or 目的外利用="")."""
    cleared = {"利用区分": "", "根拠": "", "承認期間開始": "", "承認期間終了": ""}
    return edited_approval(folder, header, file, **cleared, **changes)


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    """Every test gets its own keys, outside KODOMO_HOME, never the developer's own."""
    return make_keys(tmp_path / "secrets")


@pytest.fixture
def kodomo_env(tmp_path: Path) -> tuple[Path, Path]:
    """A private inbox and home for one test."""
    inbox, home = tmp_path / "inbox", tmp_path / "home"
    inbox.mkdir()
    return inbox, home


@pytest.fixture
def storage(kodomo_env: tuple[Path, Path], keys: Path) -> KodomoStorage:
    inbox, home = kodomo_env
    return make_storage(home, inbox, keys)


@pytest.fixture
def center(keys: Path) -> CenterPrivate:
    """The center's private keys: only the center's own commands hold them."""
    return read_center_private(keys / "center")


@pytest.fixture
def center_env(storage: KodomoStorage, keys: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The environment of a center worker's terminal (for the `kodomo` CLI)."""
    monkeypatch.setenv("KODOMO_HOME", storage.home)
    monkeypatch.setenv("KODOMO_INBOX", storage.inbox)
    monkeypatch.setenv("KODOMO_CENTER_KEY_DIR", str(keys / "center"))
    # the CLI runs on the real calendar: the demo approval, as a fresh clone's demo does
    monkeypatch.setenv("KODOMO_POLICY", str(DEMO_POLICY))
    monkeypatch.setenv("KODOMO_MODE", "demo")
    return keys / "center"


@pytest.fixture
def write_export(kodomo_env: tuple[Path, Path]) -> Callable[..., Path]:
    inbox, _ = kodomo_env

    def write(
        name: str,
        lines: list[str],
        month: str = "2022-10",
        encoding: str = "cp932",
        newline: str = "\r\n",
    ) -> Path:
        path = inbox / month / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes((newline.join(lines) + newline).encode(encoding))
        return path

    return write


@contextmanager
def demo_env(inbox: Path, factory: pytest.TempPathFactory) -> Iterator[KodomoStorage]:
    """For module-scoped runs: a fresh home and keys outside it, the given inbox."""
    home, secrets = factory.mktemp("home"), factory.mktemp("secrets")
    yield make_storage(home, inbox, make_keys(secrets))

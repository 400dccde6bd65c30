"""An export's delivery outside Dagster: what a source asset declares about it (its code
version, its 要配慮 tag), what it reports after a read (the sealed copy's redaction, the
warnings), and which months' inbox folders hold a complete, new delivery."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import asdict

from kodomo_assets.lib.ingest.decode import redact as redact_cells
from kodomo_assets.lib.ingest.load import IngestResult
from kodomo_assets.lib.platform.storage import KodomoStorage
from kodomo_assets.lib.policy.approval import PolicyError, load_policy
from kodomo_assets.lib.registry import Dataset, load_registry

# Bump when the reading logic changes; the registry entry's hash covers data changes.
INGEST_VERSION = "2"
MONTH_FOLDER = re.compile(r"\d{4}-\d{2}")


def code_version(ds: Dataset) -> str:
    digest = hashlib.sha256(json.dumps(asdict(ds), ensure_ascii=False, sort_keys=True).encode())
    return f"{INGEST_VERSION}-{digest.hexdigest()[:10]}"


def sensitive_tag(dataset: str) -> str:
    """要配慮 per the approval list on file (any period): a tag the committee can filter on.
    A broken approval list must not take the code location down; the assets refuse to run."""
    try:
        items = load_policy().items
    except (PolicyError, FileNotFoundError):
        return "unknown"
    return "yes" if any(i.sensitive for i in items if i.dataset == dataset) else "no"


def redaction(r: IngestResult) -> Callable[[bytes], bytes] | None:
    """What the sealed copy replaces: the cells the content scan hit, if any."""
    return (lambda data: redact_cells(data, r.encoding, r.redactions)) if r.redactions else None


def read_warnings(file: str, r: IngestResult, readable: bool) -> list[str]:
    """The read's warnings for the run's log: counts and headers, never a value."""
    out = []
    if readable:
        out.append(
            f"{file}: 受信ファイルが他の利用者にも読める権限で置かれていました"
            "（取込後に受信箱から削除済み。部署の umask を 027 にしてください）"
        )
    if r.dropped_forbidden_columns:
        out.append(
            f"{file}: 禁止項目 {'、'.join(r.dropped_forbidden_columns)} は"
            "法令上利用できないため読み込まずに除外しました"
        )
    if r.quarantined:
        out.append(f"{file}: {r.quarantined} 行を隔離しました（理由別件数はメタデータ）")
    return out


def expected_files() -> set[str]:
    return {ds.file for ds in load_registry().datasets.values()}


def arrivals(storage: KodomoStorage) -> tuple[list[tuple[str, int]], list[str]]:
    """Each inbox month whose contract files are all there (in the inbox, or sealed after an
    earlier ingest) with at least one new, and the newest file's time; the months still
    waiting, with the files missing."""
    inbox = storage.inbox_path
    datasets = list(load_registry().datasets.values())
    months = (
        sorted(p.name for p in inbox.iterdir() if p.is_dir() and MONTH_FOLDER.fullmatch(p.name))
        if inbox.is_dir()
        else []
    )
    waiting, ready = [], []
    for month in months:
        present = {p.name for p in (inbox / month).iterdir() if p.is_file()}
        archived = {
            ds.file
            for ds in datasets
            if storage.raw_archive(ds.department.code, month, ds.file).exists()
        }
        missing = sorted({ds.file for ds in datasets} - present - archived)
        new = sorted({ds.file for ds in datasets} & present)
        if missing:
            waiting.append(f"{month}: 未着 {', '.join(missing)}")
            continue
        if not new:
            continue  # everything ingested already: nothing new to run
        # the run key changes when a file is re-delivered, so a corrected month reruns
        ready.append((month, max(int((inbox / month / f).stat().st_mtime) for f in new)))
    return ready, waiting

"""保存期間 per kind of output: which files of a month each kind is, and forgetting a kind.

The approval list gives each kind its own retention (data/policy/approval.csv, the rows of
（本事業の出力）); the month's inputs (department stores, raw archives, the linked table, the
inbox folder) follow the approved items' shortest retention. A kind is forgotten as a month
is: its data keys destroyed first, then its files deleted.
"""

from __future__ import annotations

import glob
import shutil
from pathlib import Path

from kodomo_assets.lib.platform.storage import Forgotten, KodomoStorage

INPUTS = "inputs"
# file patterns under KODOMO_HOME, {m} the month
PATTERNS = {
    "scores": (
        "zones/analysis/{m}/risk_scores.duckdb*",
        "zones/analysis/{m}/model*",
        "zones/analysis/{m}/evaluation.duckdb*",
        "zones/analysis/{m}/fairness_audit.duckdb*",
        "zones/analysis/{m}/item_worth.duckdb*",
    ),
    "review_list": ("zones/center/{m}/*",),
    "verification": (
        "zones/analysis/{m}/verification_feedback.duckdb*",
        "stores/*/raw/{m}/kakunin*",
    ),
    "link_decisions": ("zones/linkage/{m}/*",),
    "reports": ("reports/{m}/*",),
}
LABELS = {
    INPUTS: "受信データ・部署別ストア・連携テーブル",
    "scores": "リスクスコア",
    "review_list": "確認リスト",
    "verification": "確認結果",
    "link_decisions": "照合の判断",
    "reports": "委員会報告書",
}


def _files(paths: list[Path]) -> list[Path]:
    out: list[Path] = []
    for p in paths:
        out += (
            sorted(q for q in p.rglob("*") if q.is_file())
            if p.is_dir()
            else [p]
            if p.exists()
            else []
        )
    return out


def _prune(folder: Path, home: Path) -> None:
    """Remove folders the deletion left empty, up to KODOMO_HOME's top folders."""
    while (
        folder != home and folder.parent != home and folder.is_dir() and not any(folder.iterdir())
    ):
        folder.rmdir()
        folder = folder.parent


def month_kinds(storage: KodomoStorage, month: str) -> dict[str, list[Path]]:
    """Every file of the month, by kind; whatever no output kind claims is an input."""
    home = storage.home_path
    kinds = {
        kind: sorted({Path(f) for pat in pats for f in glob.glob(str(home / pat.format(m=month)))})
        for kind, pats in PATTERNS.items()
    }
    claimed = {f for fs in kinds.values() for f in fs}
    every = _files(storage.month_files(month))
    return {
        INPUTS: [f for f in every if f not in claimed],
        **{k: _files(v) for k, v in kinds.items()},
    }


def forget_kinds(storage: KodomoStorage, month: str, kinds: set[str]) -> Forgotten:
    """Forget some kinds of a month's files: keys first, then the files. All kinds at once
    is the whole month: its key table goes (storage.forget_month) and the report folder."""
    files = month_kinds(storage, month)
    if kinds >= set(files):
        done = storage.forget_month(month)
        report = storage.report_path(month).parent
        if report.is_dir():
            done["removed"] += [storage.label(p) for p in _files([report])]
            shutil.rmtree(report)
        return done
    chosen = [f for k in sorted(kinds) for f in files[k]]
    names = {
        storage.relative(f).as_posix()
        for f in chosen
        if f.resolve().is_relative_to(storage.home_path)
    }
    keys = storage.keytable.forget_entries(month, names)
    if not storage.keytable.entries(month):
        storage.keytable.forget(month)  # nothing of the month is left under a key
    for f in chosen:
        f.unlink(missing_ok=True)
        _prune(f.parent, storage.home_path)
    if INPUTS in kinds and (storage.inbox_path / month).is_dir():
        shutil.rmtree(storage.inbox_path / month)
    return {"month": month, "keys_destroyed": keys, "removed": [storage.label(f) for f in chosen]}

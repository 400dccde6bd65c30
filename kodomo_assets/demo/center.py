"""The demo's center: it checks part of a month's review list against the demo truth and
returns the results, through the same commands the center's staff use (`kodomo review-list`
then `kodomo feedback-import`). Needs the center's private key, as they do: the pipeline
never runs it."""

from __future__ import annotations

import csv
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from kodomo_assets.lib.center.export import ImportResult, export_review_list, import_feedback
from kodomo_assets.lib.center.review_list import NEW
from kodomo_assets.lib.platform.keys import CenterPrivate
from kodomo_assets.lib.platform.storage import KodomoStorage

CONFIRMED, NOT_CONFIRMED = "該当", "非該当"


def planted(truth: Path) -> set[str]:
    """宛名番号 of every child with a planted need (a confounder only looks like one)."""
    needs = pd.read_csv(truth / "needs.csv", dtype=str, keep_default_na=False)
    return set(needs.loc[needs["confounder"].astype(int) == 0, "atena_no"])


def check_list(
    storage: KodomoStorage,
    private: CenterPrivate,
    month: str,
    truth: Path,
    share: float = 0.8,
    seed: int = 0,
) -> ImportResult:
    """Check `share` of the month's new suggestions, top ranks first, as staff work down the
    list: 該当 when the child has a planted need, else 非該当. The plain files live in a
    private temporary folder and are gone when this returns."""
    needs = planted(truth)
    with tempfile.TemporaryDirectory(prefix="kodomo-center-") as folder:
        listed = Path(folder) / "list.csv"
        export_review_list(storage, private, month, listed, "個別確認")
        with open(listed, encoding="utf-8-sig", newline="") as fh:
            rows = [r for r in csv.DictReader(fh) if r["区分"] == NEW]
        rows.sort(key=lambda r: int(r["順位"]))
        checked = rows[: int(np.ceil(share * len(rows)))]
        kakunin = Path(folder) / "kakunin.csv"
        with open(kakunin, "w", encoding="utf-8", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["宛名番号", "基準月", "確認結果"])
            for r in checked:
                w.writerow(
                    [r["宛名番号"], month, CONFIRMED if r["宛名番号"] in needs else NOT_CONFIRMED]
                )
        return import_feedback(storage, private, month, kakunin)

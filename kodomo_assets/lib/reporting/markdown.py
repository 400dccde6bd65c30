"""A frame as a markdown table, for Dagster's metadata: missing values as a dash, whole counts
as integers, rates with three decimals."""

from __future__ import annotations

import numpy as np
import pandas as pd


def _cell(v: object) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return "—"
    if isinstance(v, float):
        return str(int(v)) if v > 1 and v.is_integer() else f"{v:.3f}"  # counts, rates
    return str(v)


def table(frame: pd.DataFrame) -> str:
    lines = ["| " + " | ".join(frame.columns) + " |", "|" + "---|" * len(frame.columns)]
    lines += [
        "| " + " | ".join(_cell(v) for v in row) + " |" for row in frame.itertuples(index=False)
    ]
    return "\n".join(lines)

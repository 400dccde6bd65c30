"""The explainable indicators (data/registry/indicators.yaml), compiled to one SQL query.

Rules read a view of the linked table without the center's own columns, so an indicator
can never restate the label the learned score is trained on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

from kodomo_assets.lib.ingest.typing_sql import q
from kodomo_assets.lib.paths import DATA_DIR
from kodomo_assets.lib.registry import load_registry


@dataclass(frozen=True)
class Indicator:
    name: str
    label: str
    description: str
    rule: str
    reason: str
    asof: str


@cache
def load_indicators(path: Path | None = None) -> tuple[Indicator, ...]:
    path = path or DATA_DIR / "registry" / "indicators.yaml"
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    params = {k: str(v) for k, v in doc["thresholds"].items()}
    out = []
    for raw in doc["indicators"]:
        fields = {k: raw[k] for k in ("rule", "reason", "asof")}
        try:
            fields = {
                k: v.replace("{asof}", "{_asof}").format(**params, _asof="{asof}")
                for k, v in fields.items()
            }
        except KeyError as err:
            raise ValueError(f"indicators.yaml の {raw['name']}: 未定義のしきい値 {err}") from None
        out.append(
            Indicator(
                name=raw["name"], label=raw["label"], description=raw["description"], **fields
            )
        )
    if len({i.name for i in out}) != len(out):
        raise ValueError("indicators.yaml: 指標名が重複しています")
    return tuple(out)


def compile_sql(indicators: tuple[Indicator, ...], source: str, asof: str) -> str:
    """One row per child: a boolean column per indicator, and the fired ones' names,
    reasons and as-of dates as lists in indicator order."""
    fired = {i.name: f"coalesce(({i.rule}), false)" for i in indicators}

    reasons = {i.name: i.reason.format(asof=asof) for i in indicators}
    dates = {i.name: i.asof.format(asof=asof) for i in indicators}
    cols = [f"{fired[i.name]} AS ind_{i.name}" for i in indicators]
    cols.append(_names(indicators, fired))
    cols.append(
        "list_filter(["
        + ", ".join(f"CASE WHEN {fired[i.name]} THEN {reasons[i.name]} END" for i in indicators)
        + "], v -> v IS NOT NULL) AS indicator_reasons"
    )
    cols.append(
        "list_filter(["
        + ", ".join(
            f"CASE WHEN {fired[i.name]} THEN {q(i.label + ': ')} || strftime(({dates[i.name]})::DATE, '%Y-%m-%d') END"
            for i in indicators
        )
        + "], v -> v IS NOT NULL) AS indicator_asof"
    )
    return f"SELECT child_token, {', '.join(cols)} FROM {source}"


def _names(indicators: tuple[Indicator, ...], fired: dict[str, str]) -> str:
    items = ", ".join(f"CASE WHEN {fired[i.name]} THEN {q(i.name)} END" for i in indicators)
    return f"list_filter([{items}], v -> v IS NOT NULL) AS indicators"


def sources(indicator: Indicator, lineage: dict[str, list[tuple[str, str]]]) -> list[str]:
    """The departments whose data the indicator's rule and reason read (学務課, 介護保険課 …):
    whom center staff ask when they verify it. `lineage`: the linked table's column lineage."""
    registry = load_registry()
    text = indicator.rule + " " + indicator.reason
    datasets = {
        ds
        for column, deps in lineage.items()
        if re.search(rf"\b{re.escape(column)}\b", text)
        for ds, _ in deps
    }
    return sorted({registry.datasets[ds].department.label for ds in datasets})

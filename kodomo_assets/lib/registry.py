"""The declarative dataset registry (data/registry/datasets.yaml), loaded and validated."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import yaml

from kodomo_assets.lib.paths import DATA_DIR
from kodomo_assets.lib.policy.statutory import is_denied_header

COLUMN_TYPES = {"id", "text", "kana", "date", "year_month", "int", "enum", "enum_list"}
MARKERS = {None, "id", "forbidden"}


class RegistryError(ValueError):
    pass


@dataclass(frozen=True)
class Column:
    header: str
    name: str
    type: str | None = None
    marker: str | None = None
    required: bool = False
    width: int | None = None
    values: dict[str, str] = field(default_factory=dict)
    basis: str | None = None
    max: int | None = None  # an int's declared range is 0..max

    @property
    def scanned(self) -> bool:
        """Free text a person typed: scanned value by value at the door (lib/policy/content.py).
        IDs, dates, codes and counts have their own format rules instead."""
        return not self.forbidden and self.type in ("text", "kana")

    @property
    def forbidden(self) -> bool:
        return self.marker == "forbidden"

    @property
    def stored_type(self) -> str:
        """The type of a stored column: only a 禁止 column has none (the registry checks)."""
        if self.type is None:
            raise RegistryError(f"列 {self.name} には type がない（禁止の列は保存しない）")
        return self.type


@dataclass(frozen=True)
class Check:
    rule: str
    column: str
    reason: str


@dataclass(frozen=True)
class Department:
    code: str
    label: str
    owner: str


@dataclass(frozen=True)
class Dataset:
    name: str
    file: str
    label: str
    description: str
    department: Department
    key: tuple[str, ...]
    columns: tuple[Column, ...]
    checks: tuple[Check, ...] = ()

    @property
    def stored_columns(self) -> tuple[Column, ...]:
        """Columns kept in the department store: everything but 禁止."""
        return tuple(c for c in self.columns if not c.forbidden)

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


@dataclass(frozen=True)
class Registry:
    departments: dict[str, Department]
    datasets: dict[str, Dataset]


def _column(raw: dict, where: str, key: tuple[str, ...]) -> Column:
    values = raw.get("values") or {}
    if isinstance(values, list):
        values = {v: v for v in values}
    col = Column(
        header=raw["header"],
        name=raw["name"],
        type=raw.get("type"),
        marker=raw.get("marker"),
        # A blank is an unknown value (source-exports.md), never a bad one, except in the
        # key columns that identify the row.
        required=raw["name"] in key,
        width=raw.get("width"),
        values={str(k): str(v) for k, v in values.items()},
        basis=raw.get("basis"),
        max=raw.get("max"),
    )
    if col.marker not in MARKERS:
        raise RegistryError(f"{where}: 不明な marker {col.marker!r}")
    if not col.forbidden and col.type not in COLUMN_TYPES:
        raise RegistryError(f"{where}: 不明な type {col.type!r}")
    if col.type in {"enum", "enum_list"} and not col.values:
        raise RegistryError(f"{where}: enum には values が必要です")
    if col.type == "int" and not isinstance(col.max, int):
        # a 12-digit number typed into a count must stop at the door, never at a later CAST
        raise RegistryError(f"{where}: 数の列には範囲 (max) が必要です")
    if is_denied_header(col.header) and not col.forbidden:
        raise RegistryError(f"{where}: 法令上利用できない項目は forbidden としてください")
    return col


def parse_registry(doc: dict) -> Registry:
    departments = {
        code: Department(code=code, label=d["label"], owner=d["owner"])
        for code, d in doc["departments"].items()
    }
    datasets: dict[str, Dataset] = {}
    for name, d in doc["datasets"].items():
        key = tuple(d["key"])
        columns = tuple(_column(c, f"datasets.{name}.{c.get('header')}", key) for c in d["columns"])
        names = [c.name for c in columns]
        if len(set(names)) != len(names) or len({c.header for c in columns}) != len(columns):
            raise RegistryError(f"datasets.{name}: 列名または見出しが重複しています")
        if d["department"] not in departments:
            raise RegistryError(f"datasets.{name}: 不明な所管課 {d['department']!r}")
        if not set(key) <= set(names):
            raise RegistryError(f"datasets.{name}: key が列にありません")
        checks = tuple(Check(**c) for c in d.get("checks", []))
        datasets[name] = Dataset(
            name=name,
            file=d["file"],
            label=d["label"],
            description=d["description"],
            department=departments[d["department"]],
            key=key,
            columns=columns,
            checks=checks,
        )
    return Registry(departments=departments, datasets=datasets)


@cache
def load_registry(path: Path | None = None) -> Registry:
    path = path or DATA_DIR / "registry" / "datasets.yaml"
    with open(path, encoding="utf-8") as fh:
        return parse_registry(yaml.safe_load(fh))

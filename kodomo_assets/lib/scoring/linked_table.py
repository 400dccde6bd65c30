"""The linked table's columns (data/registry/linked_table.yaml), planned against the month's
approval and compiled to one DuckDB query.

Allow-list by construction: a column is built only when every input is approved for 分析,
and its SQL reads a subquery that selects nothing but those inputs and the join key. A
column whose SQL reaches for anything else fails to bind; it cannot leak.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import yaml

from kodomo_assets.lib.partitions import month_end
from kodomo_assets.lib.paths import DATA_DIR
from kodomo_assets.lib.policy.approval import MonthApproval
from kodomo_assets.lib.registry import load_registry

TABLE = "linked_children"  # the table analysis/linked_children publishes
TOKENS = {
    "child_token": ("jumin", "atena_no", "児童の仮名（HMAC-SHA256、用途: child）"),
    "household_token": ("jumin", "household_no", "世帯の仮名（HMAC-SHA256、用途: household）"),
}
SCOPES = {"child", "household", "others", "derived"}
KEYS = {
    "name",
    "label",
    "type",
    "scope",
    "dataset",
    "inputs",
    "expr",
    "default",
    "from",
    "audit_only",
    "model",
    "register",
    "suppress",
}


class LinkedTableError(ValueError):
    pass


@dataclass(frozen=True)
class Feature:
    name: str
    label: str
    type: str
    scope: str
    expr: str
    dataset: str | None = None
    inputs: tuple[str, ...] = ()
    default: str | None = None
    derived_from: tuple[str, ...] = ()
    audit_only: bool = False
    model: bool = True
    register: bool = False  # derivable from the resident register: a quasi-identifier
    suppress: int | None = None  # order of local suppression (None: never suppressed)


@dataclass(frozen=True)
class Spec:
    base_dataset: str
    base_inputs: tuple[str, ...]
    max_age: int
    sources: dict[str, tuple[str, str | None]]  # dataset -> (person column, via link)
    features: tuple[Feature, ...]


@dataclass
class Plan:
    """What the month's approval lets the table hold, and why the rest is left out."""

    spec: Spec
    features: list[Feature]
    omitted: dict[str, str] = field(default_factory=dict)  # column -> reason (Japanese)
    lineage: dict[str, list[tuple[str, str]]] = field(default_factory=dict)

    @property
    def published(self) -> list[Feature]:
        """The analysis table's columns: audit-only attributes never reach it."""
        return [f for f in self.features if not f.audit_only]

    @property
    def columns(self) -> list[str]:
        return [*TOKENS, *(f.name for f in self.published)]

    @property
    def quasi_identifiers(self) -> list[str]:
        return [f.name for f in self.published if f.register]

    @property
    def never_suppressed(self) -> list[str]:
        return [f.name for f in self.published if f.register and f.suppress is None]

    def suppression_order(self) -> list[list[str]]:
        """Groups of quasi-identifiers, in the order they are set to unknown."""
        ranks = sorted(
            {f.suppress for f in self.published if f.register and f.suppress is not None}
        )
        return [[f.name for f in self.published if f.register and f.suppress == r] for r in ranks]

    def subset(self, names: set[str]) -> Plan:
        """The same plan restricted to some columns (they must carry their derivations)."""
        chosen = [f for f in self.features if f.name in names]
        lacking = {d for f in chosen for d in f.derived_from} - names
        if lacking:
            raise LinkedTableError(f"列 {sorted(lacking)} がないと作れない列があります")
        return Plan(
            spec=self.spec,
            features=chosen,
            omitted={},
            lineage={n: v for n, v in self.lineage.items() if n in names or n in TOKENS},
        )

    @property
    def audit(self) -> Plan:
        """The audit-only attributes, computed from the register inside an audit step."""
        return self.subset({f.name for f in self.features if f.audit_only})

    def labels(self) -> dict[str, str]:
        return {**{k: v[2] for k, v in TOKENS.items()}, **{f.name: f.label for f in self.features}}

    def types(self) -> dict[str, str]:
        return {**dict.fromkeys(TOKENS, "VARCHAR"), **{f.name: f.type for f in self.features}}


@cache
def load_spec(path: Path | None = None) -> Spec:
    path = path or DATA_DIR / "registry" / "linked_table.yaml"
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    registry = load_registry()
    features: list[Feature] = []
    for raw in doc["columns"]:
        unknown_keys = set(raw) - KEYS
        if unknown_keys:  # e.g. a label with an unquoted comma, split by YAML into two keys
            raise LinkedTableError(
                f"linked_table.yaml の列 {raw.get('name')}: 不明な項目 {sorted(map(str, unknown_keys))}"
            )
        f = Feature(
            name=raw["name"],
            label=raw["label"],
            type=raw["type"],
            scope=raw["scope"],
            expr=raw["expr"],
            dataset=raw.get("dataset"),
            inputs=tuple(raw.get("inputs", ())),
            default=raw.get("default"),
            derived_from=tuple(raw.get("from", ())),
            audit_only=bool(raw.get("audit_only", False)),
            model=bool(raw.get("model", True)),
            register=bool(raw.get("register", False)),
            suppress=raw.get("suppress"),
        )
        where = f"linked_table.yaml の列 {f.name}"
        if f.scope not in SCOPES:
            raise LinkedTableError(f"{where}: scope は {sorted(SCOPES)} のいずれかです")
        if f.scope != "derived":
            ds = registry.datasets.get(f.dataset or "")
            if ds is None or f.dataset not in doc["sources"]:
                raise LinkedTableError(f"{where}: 不明なデータセット {f.dataset!r}")
            unknown = set(f.inputs) - {c.name for c in ds.columns}
            if unknown:
                raise LinkedTableError(f"{where}: {f.dataset} にない列 {sorted(unknown)}")
        known = {g.name for g in features}
        if not set(f.derived_from) <= known:
            raise LinkedTableError(f"{where}: from は先に定義した列だけを参照できます")
        if f.suppress is not None and not f.register:
            raise LinkedTableError(f"{where}: suppress は register の列にだけ指定できます")
        by_name = {g.name: g for g in features}
        if f.register and not (
            f.dataset == doc["base"]["dataset"]
            or (f.scope == "derived" and all(by_name[d].register for d in f.derived_from))
        ):
            # the linkage attack reads these columns as the register gives them
            raise LinkedTableError(f"{where}: register の列は住民基本台帳だけから作ります")
        features.append(f)
    names = [*TOKENS, *(f.name for f in features)]
    if len(set(names)) != len(names):
        raise LinkedTableError("linked_table.yaml: 列名が重複しています")
    sources = {k: (v["person"], v.get("via")) for k, v in doc["sources"].items()}
    return Spec(
        base_dataset=doc["base"]["dataset"],
        base_inputs=tuple(doc["base"]["inputs"]),
        max_age=int(doc["base"]["max_age"]),
        sources=sources,
        features=tuple(features),
    )


def _header(dataset: str, column: str) -> str:
    ds = load_registry().datasets[dataset]
    return f"{ds.label}の{ds.column(column).header}"


def plan(spec: Spec, approval: MonthApproval) -> Plan:
    base, keys = spec.base_dataset, ("atena_no", "household_no")
    missing = [c for c in keys if not approval.allows(base, c, "key")] + [
        c for c in spec.base_inputs if c not in keys and not approval.allows(base, c, "analysis")
    ]
    if missing:
        raise LinkedTableError(
            "連携テーブルの基礎（児童と世帯の特定）に必要な項目が承認されていません: "
            + "、".join(_header(base, c) for c in missing)
        )
    out = Plan(spec=spec, features=[])
    for name, (ds, col, _) in TOKENS.items():
        out.lineage[name] = [(ds, col)]
    for f in spec.features:
        if f.scope == "derived":
            lacking = [d for d in f.derived_from if d not in out.lineage]
            if lacking:
                out.omitted[f.name] = f"元になる列 {', '.join(lacking)} がないため作成しない"
                continue
            out.lineage[f.name] = sorted({src for d in f.derived_from for src in out.lineage[d]})
            out.features.append(f)
            continue
        assert f.dataset is not None  # load_spec: every feature but a derived one has a dataset
        person, via = spec.sources[f.dataset]
        need_keys = [(f.dataset, person)] + (
            [("gakurei", "pupil_no"), ("gakurei", "atena_no")] if via else []
        )
        unapproved = [_header(d, c) for d, c in need_keys if not approval.allows(d, c, "key")]
        unapproved += [
            _header(f.dataset, c) for c in f.inputs if not approval.allows(f.dataset, c, "analysis")
        ]
        if unapproved:
            out.omitted[f.name] = "未承認の項目: " + "、".join(unapproved)
            continue
        typed = load_registry().datasets[f.dataset]
        free = [
            _header(f.dataset, c) for c in f.inputs if typed.column(c).scanned and not f.audit_only
        ]
        if free:  # no free text passes into the analysis zone, approved or not
            out.omitted[f.name] = "自由記述の項目（値の定義域がない）: " + "、".join(free)
            continue
        src = [(f.dataset, c) for c in f.inputs] or [(f.dataset, person)]
        if f.scope != "child":
            src.append((base, "household_no"))
        out.lineage[f.name] = sorted(set(src))
        out.features.append(f)
    return out


def month_sql(month: str) -> dict[str, str]:
    return {"asof": f"DATE '{month_end(month)}'", "month_start": f"DATE '{month}-01'"}


def compile_sql(
    p: Plan,
    month: str,
    tables: dict[str, str],
    link: str,
    *,
    table: str = TABLE,
    tokens: Sequence[str] = ("child", "household"),
    temp: bool = False,
    audit: bool = False,
) -> list[str]:
    """Statements that create TEMP tables child (and member, when a column reads the
    household) and the table `table` (by default the published columns; `audit=True`: the
    audit-only ones). `tables` maps each dataset to its qualified table (e.g.
    'shimin.jumin'); `link` is the qualified pupil link table of the linkage zone. `tokens`:
    the pseudonyms to compute (the others are NULL)."""
    ph = month_sql(month)
    asof = ph["asof"]
    base = tables[p.spec.base_dataset]
    features = [f for f in p.features if f.audit_only == audit]
    token_sql = ", ".join(
        f"pseudonym_{kind}({col}) AS {kind}_token"
        if kind in tokens
        else f"NULL::VARCHAR AS {kind}_token"
        for kind, col in (("child", "atena_no"), ("household", "household_no"))
    )
    stmts = [
        f"CREATE OR REPLACE TEMP MACRO months_ago(ym) AS "
        f"(year({asof}) * 12 + month({asof})) - (CAST(substr(ym, 1, 4) AS INTEGER) * 12 "
        f"+ CAST(substr(ym, 6, 2) AS INTEGER))",
        # pseudonyms in the plain scan of the register, where DuckDB hands the UDF full
        # vectors (after the joins it calls it for a few hundred rows at a time: 4× slower)
        f"CREATE OR REPLACE TEMP TABLE child AS SELECT atena_no, household_no, relation, "
        f"date_sub('year', birth_date, {asof}) AS age, {token_sql} FROM {base} "
        f"WHERE birth_date <= {asof} AND date_sub('year', birth_date, {asof}) <= {p.spec.max_age}",
    ]
    if any(f.scope in ("household", "others") for f in features):
        stmts.append(
            f"CREATE OR REPLACE TEMP TABLE member AS SELECT atena_no, household_no, "
            f"date_sub('year', birth_date, {asof}) AS age FROM {base} "
            f"WHERE household_no IN (SELECT household_no FROM child)"
        )
    groups: dict[tuple[str, str], list[Feature]] = {}
    for f in features:
        if f.scope != "derived":
            assert f.dataset is not None  # load_spec: every feature but a derived one has one
            groups.setdefault((f.dataset, f.scope), []).append(f)
    ctes, joins = [], []
    for i, ((ds, scope), feats) in enumerate(groups.items()):
        person, via = p.spec.sources[ds]
        cols = sorted({person, *(c for f in feats for c in f.inputs)})
        src = f"(SELECT {', '.join(cols)} FROM {tables[ds]}) x"
        who = "c" if scope == "child" else "m"
        frm = (
            "child c"
            if scope == "child"
            else (
                "child c JOIN member m ON m.household_no = c.household_no"
                + (" AND m.atena_no <> c.atena_no" if scope == "others" else "")
            )
        )
        if via:
            frm += f" JOIN {link} l ON l.atena_no = {who}.atena_no JOIN {src} ON x.{person} = l.pupil_no"
        else:
            frm += f" JOIN {src} ON x.{person} = {who}.atena_no"
        aggs = ", ".join(f"{f.expr.format(**ph)} AS {f.name}" for f in feats)
        ctes.append(f"g{i} AS (SELECT c.atena_no AS _child, {aggs} FROM {frm} GROUP BY c.atena_no)")
        joins.append(f"LEFT JOIN g{i} ON g{i}._child = c.atena_no")
    cols = [
        f"CAST({f'coalesce({f.name}, {f.default})' if f.default else f.name} AS {f.type}) AS {f.name}"
        for f in features
        if f.scope != "derived"
    ]
    inner = (
        "SELECT c.child_token, c.household_token"
        + "".join(f", {c}" for c in cols)
        + f" FROM child c {' '.join(joins)}"
    )
    if ctes:
        inner = "WITH " + ", ".join(ctes) + " " + inner
    for f in features:  # each derived column one layer out, so later ones can use it
        if f.scope == "derived":
            inner = f"SELECT *, CAST({f.expr.format(**ph)} AS {f.type}) AS {f.name} FROM ({inner})"
    names = [*TOKENS, *(f.name for f in features)]
    kind = "TEMP TABLE" if temp else "TABLE"
    stmts.append(
        f"CREATE OR REPLACE {kind} {table} AS SELECT {', '.join(names)} "
        f"FROM ({inner}) ORDER BY child_token"
    )
    return stmts


def describe(p: Plan) -> dict[str, str]:
    """Japanese description of each column with its sources, for the catalogue and report."""
    reg = load_registry()
    return {
        name: p.labels()[name]
        + "（元: "
        + "、".join(
            f"{reg.datasets[d].label}.{reg.datasets[d].column(c).header}"
            for d, c in p.lineage[name]
        )
        + "）"
        for name in p.columns
    }

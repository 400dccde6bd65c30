"""The approval list (別紙 個人情報項目, data/policy/approval.csv), loaded and enforced.

The committee reviews that one file; everything the pipeline may read past ingestion is
generated from it. Statutory limits (lib/statutory.py) are checked on load, so a policy
that approves 個人番号, a tax-derived value, free text or a direct identifier for analysis
never loads.
"""

from __future__ import annotations

import csv
import os
import unicodedata
from dataclasses import dataclass
from datetime import date
from functools import cache
from pathlib import Path

from kodomo_assets.lib.paths import DATA_DIR
from kodomo_assets.lib.registry import Registry, load_registry
from kodomo_assets.lib.statutory import denial_basis, is_direct_identifier

HEADER = ("番号", "保有課", "情報名", "ファイル", "項目", "要配慮", "目的外利用", "提供", "利用区分",
          "利用目的", "根拠", "承認期間開始", "承認期間終了", "保存期間（月）")
USES = {"連携キー": "key", "照合": "match", "分析": "analysis"}
MARKS = {"○": True, "": False}
_CODED = {"番号", "要配慮", "目的外利用", "提供", "利用区分", "承認期間開始", "承認期間終了",
          "保存期間（月）"}


class PolicyError(ValueError):
    """The approval list itself is wrong or asks for something the law forbids."""


class ApprovalPeriodError(PermissionError):
    """A month no approval period covers: nothing may be read for it."""


@dataclass(frozen=True)
class Period:
    start: date
    end: date
    basis: str

    def covers(self, month: str) -> bool:
        y, m = (int(x) for x in month.split("-"))
        last = date(y + m // 12, m % 12 + 1, 1).toordinal() - 1
        return self.start <= date(y, m, 1) and last <= self.end.toordinal()

    def label(self) -> str:
        return f"{self.start.isoformat()}〜{self.end.isoformat()}（根拠: {self.basis}）"


@dataclass(frozen=True)
class Item:
    no: int
    department: str
    info: str
    dataset: str
    column: str
    header: str
    sensitive: bool
    out_of_purpose: bool
    provision: bool
    uses: frozenset[str]
    purpose: str
    period: Period | None
    retention_months: int | None = None  # how long re-identifiable results may be kept

    @property
    def approved(self) -> bool:
        return self.out_of_purpose or self.provision


@dataclass(frozen=True)
class MonthApproval:
    """What may be used for one reference month."""

    month: str
    periods: tuple[Period, ...]
    items: tuple[Item, ...]

    def columns(self, dataset: str, use: str) -> frozenset[str]:
        return frozenset(i.column for i in self.items if i.dataset == dataset and use in i.uses)

    def allows(self, dataset: str, column: str, use: str) -> bool:
        return column in self.columns(dataset, use)

    @property
    def retention_months(self) -> int:
        """The shortest retention among the month's approved items: results built from
        all of them may be kept no longer than the strictest allows."""
        return min((i.retention_months for i in self.items if i.retention_months is not None), default=0)


@dataclass(frozen=True)
class Approval:
    items: tuple[Item, ...]
    path: str

    @property
    def periods(self) -> tuple[Period, ...]:
        return tuple(dict.fromkeys(i.period for i in self.items if i.period))

    def for_month(self, month: str) -> MonthApproval:
        """Raise before anything is read when no approval period covers the month."""
        covering = tuple(p for p in self.periods if p.covers(month))
        if not covering:
            on_record = "、".join(p.label() for p in self.periods) or "なし"
            raise ApprovalPeriodError(
                f"基準月 {month} はどの承認期間にも含まれないため、処理を行いません（データは読んでいません）。"
                f"記録されている承認期間: {on_record}。新たな期間の利用には、承認の記録を "
                f"{Path(self.path).name} に追加してください。"
            )
        items = tuple(i for i in self.items if i.approved and i.period in covering)
        return MonthApproval(month=month, periods=covering, items=items)


def _date(text: str, where: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise PolicyError(f"{where}: 承認期間の日付 {text!r} を読めません（YYYY-MM-DD）") from None


def _item(row: dict[str, str], registry: Registry, where: str) -> Item:
    file, header = row["ファイル"], row["項目"]
    ds = next((d for d in registry.datasets.values() if d.file == file), None)
    col = next((c for c in ds.columns if c.header == header), None) if ds else None
    if col is None:
        raise PolicyError(f"{where}: {file} の項目 {header} はデータセット台帳にありません")
    marks = {}
    for name in ("要配慮", "目的外利用", "提供"):
        if row[name] not in MARKS:
            raise PolicyError(f"{where}: {name} 欄は ○ か空欄です（{row[name]!r}）")
        marks[name] = MARKS[row[name]]
    uses = frozenset(USES[u] for u in row["利用区分"].split("・") if u in USES)
    if len(uses) != len([u for u in row["利用区分"].split("・") if u]):
        raise PolicyError(f"{where}: 利用区分は 連携キー・照合・分析 の組合せです（{row['利用区分']!r}）")
    item = Item(
        no=int(row["番号"]), department=row["保有課"], info=row["情報名"], dataset=ds.name,
        column=col.name, header=header, sensitive=marks["要配慮"], out_of_purpose=marks["目的外利用"],
        provision=marks["提供"], uses=uses, purpose=row["利用目的"], period=None,
    )
    if not item.approved:
        return item
    label = f"{where}（{file} の {header}）"
    law = denial_basis(header) or (col.basis if col.forbidden else None)
    if law:
        raise PolicyError(f"{label}: この項目は{law}により利用できないため、承認できません。"
                          "○ を外してください。")
    if (col.marker == "id" or is_direct_identifier(header)) and uses - {"match"}:
        raise PolicyError(f"{label}: 直接識別子は照合にのみ使えます。連携キー・分析には承認できません。")
    if "key" in uses and col.type != "id":
        raise PolicyError(f"{label}: 連携キーにできるのは番号の項目だけです")
    if not uses or not row["根拠"] or not row["承認期間開始"] or not row["承認期間終了"]:
        raise PolicyError(f"{label}: ○ の項目には利用区分・根拠・承認期間が必要です")
    if not row["保存期間（月）"].isdigit():
        raise PolicyError(f"{label}: ○ の項目には保存期間（月、整数）が必要です")
    start, end = _date(row["承認期間開始"], label), _date(row["承認期間終了"], label)
    if end < start:
        raise PolicyError(f"{label}: 承認期間の終了が開始より前です")
    return Item(**{**item.__dict__, "period": Period(start, end, row["根拠"]),
                   "retention_months": int(row["保存期間（月）"])})


def parse_policy(path: Path, registry: Registry | None = None) -> Approval:
    registry = registry or load_registry()
    with open(path, encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        if tuple(reader.fieldnames or ()) != HEADER:
            raise PolicyError(f"{path.name}: 見出し行は {','.join(HEADER)} です")
        items = []
        for line, raw in enumerate(reader, start=2):
            # Marks and dates are normalised (〇 and full-width digits); wording is kept as written.
            row = {k: (unicodedata.normalize("NFKC", v or "").replace("〇", "○") if k in _CODED
                       else v or "").strip() for k, v in raw.items()}
            items.append(_item(row, registry, f"{path.name} {line}行目（番号 {row['番号']}）"))
    seen: set[tuple[str, str, Period | None]] = set()
    for i in items:
        if (i.dataset, i.column, i.period) in seen:
            raise PolicyError(f"{path.name}: 番号 {i.no} は同じ期間の同じ項目の重複です")
        seen.add((i.dataset, i.column, i.period))
    return Approval(items=tuple(items), path=str(path))


def policy_path() -> Path:
    """KODOMO_POLICY names another approval file (a later period, or a test)."""
    return Path(os.environ.get("KODOMO_POLICY") or DATA_DIR / "policy" / "approval.csv")


@cache
def _load(path: Path, mtime_ns: int) -> Approval:
    return parse_policy(path)


def load_policy(path: Path | None = None) -> Approval:
    """Parsed once per file version: an edited approval list takes effect on the next run."""
    path = (path or policy_path()).resolve()
    return _load(path, path.stat().st_mtime_ns)


def purposes_path() -> Path:
    return DATA_DIR / "policy" / "purposes.csv"


@cache
def load_purposes() -> dict[str, str]:
    """利用目的コード -> 名称: the only purposes an export may state. Free text is on the
    statutory deny-list on the center's side as elsewhere."""
    with open(purposes_path(), encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.DictReader(fh))
    codes = {r["コード"].strip(): r["名称"].strip() for r in rows if r.get("コード", "").strip()}
    if not codes:
        raise PolicyError(f"{purposes_path().name}: 利用目的コードがありません")
    return codes


@cache
def load_verification_methods() -> dict[str, str]:
    """確認の区分 -> 名称: how staff checked a child (a code, never free text)."""
    path = DATA_DIR / "policy" / "verification_methods.csv"
    with open(path, encoding="utf-8-sig", newline="") as fh:
        codes = {r["コード"].strip(): r["名称"].strip() for r in csv.DictReader(fh) if r.get("コード", "").strip()}
    if not codes:
        raise PolicyError(f"{path.name}: 確認の区分がありません")
    return codes

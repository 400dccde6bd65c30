"""The approval list (別紙 個人情報項目, data/policy/approval.csv), loaded and enforced.

The committee reviews that one file; everything the pipeline may read past ingestion is
generated from it. Statutory limits (lib/policy/statutory.py) are checked on load, so a policy
that approves 個人番号, a tax-derived value, free text or a direct identifier for analysis
never loads.
"""

from __future__ import annotations

import csv
import os
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo

from kodomo_assets.lib.partitions import month_end
from kodomo_assets.lib.paths import DATA_DIR
from kodomo_assets.lib.policy.statutory import denial_basis, is_direct_identifier
from kodomo_assets.lib.registry import Registry, load_registry

HEADER = (
    "番号",
    "保有課",
    "情報名",
    "ファイル",
    "項目",
    "要配慮",
    "目的外利用",
    "提供",
    "利用区分",
    "利用目的",
    "根拠",
    "承認期間開始",
    "承認期間終了",
    "保存期間（月）",
)
USES = {"連携キー": "key", "照合": "match", "分析": "analysis"}
MARKS = {"○": True, "": False}
_CODED = {
    "番号",
    "要配慮",
    "目的外利用",
    "提供",
    "利用区分",
    "承認期間開始",
    "承認期間終了",
    "保存期間（月）",
}


class PolicyError(ValueError):
    """The approval list itself is wrong or asks for something the law forbids."""


class ApprovalPeriodError(PermissionError):
    """A month, or a processing date, no approval period covers: nothing may be read."""


# Every row of a demo approval says so: a demo list can never pass for the council's.
DEMO_MARK = "デモ用・架空の承認"
# Rows for what the project itself produces: how long each kind of output may be kept.
OUTPUT_FILE = "（本事業の出力）"
OUTPUT_KINDS = {
    "リスクスコア": "scores",
    "確認リスト": "review_list",
    "確認結果": "verification",
    "照合の判断": "link_decisions",
    "委員会報告書": "reports",
}


@dataclass(frozen=True)
class Period:
    start: date
    end: date
    basis: str

    def covers(self, month: str) -> bool:
        return self.start <= date.fromisoformat(f"{month}-01") and month_end(month) <= self.end

    def covers_day(self, day: date) -> bool:
        return self.start <= day <= self.end

    def label(self) -> str:
        return f"{self.start.isoformat()}〜{self.end.isoformat()}（根拠: {self.basis}）"


@dataclass(frozen=True)
class OutputRetention:
    """保存期間 of one kind of output (scores, the review list, ...), from its own row."""

    no: int
    kind: str  # a value of OUTPUT_KINDS
    label: str
    retention_months: int
    basis: str


@dataclass(frozen=True)
class Standing:
    """The two facts the report states: is the data month inside a period, and is the date
    of processing."""

    month: str
    today: date
    month_periods: tuple[Period, ...]
    today_periods: tuple[Period, ...]

    @property
    def month_covered(self) -> bool:
        return bool(self.month_periods)

    @property
    def today_covered(self) -> bool:
        return any(p in self.today_periods for p in self.month_periods)


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
        return min(
            (i.retention_months for i in self.items if i.retention_months is not None), default=0
        )


@dataclass(frozen=True)
class Approval:
    items: tuple[Item, ...]
    path: str
    outputs: tuple[OutputRetention, ...] = ()

    @property
    def periods(self) -> tuple[Period, ...]:
        return tuple(dict.fromkeys(i.period for i in self.items if i.period))

    @property
    def demo(self) -> bool:
        """A demo approval: every approved row's basis carries DEMO_MARK (parse_policy refuses
        a list that mixes demo and real rows)."""
        return any(DEMO_MARK in p.basis for p in self.periods)

    def retention(self, kind: str) -> int | None:
        return next((o.retention_months for o in self.outputs if o.kind == kind), None)

    def standing(self, month: str, today: date) -> Standing:
        return Standing(
            month,
            today,
            tuple(p for p in self.periods if p.covers(month)),
            tuple(p for p in self.periods if p.covers_day(today)),
        )

    def as_recorded(self, month: str) -> MonthApproval:
        """The month's approval whatever today's date: an aggregate report is re-rendered
        after its period has ended. Empty when no period ever covered the month."""
        try:
            return self.for_month(month)
        except ApprovalPeriodError:
            return MonthApproval(month=month, periods=(), items=())

    def in_force(self, month: str, today: date) -> MonthApproval:
        """The month's approval, when one period covers both the data month and the date of
        processing; otherwise raise before anything is read, naming the periods, their basis
        and the date."""
        approval = self.for_month(month)
        standing = self.standing(month, today)
        if not standing.today_covered:
            raise ApprovalPeriodError(
                f"処理日 {today.isoformat()} は基準月 {month} を含む承認期間の外にあるため、処理を行いません"
                f"（データは読んでいません）。承認期間: {'、'.join(p.label() for p in approval.periods)}。"
                f"期間が終わった承認で処理を続けることはできません。新たな承認の記録を "
                f"{Path(self.path).name} に追加してください。"
            )
        return approval

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


def _output(row: dict[str, str], where: str) -> OutputRetention:
    if row["項目"] not in OUTPUT_KINDS:
        raise PolicyError(
            f"{where}: 出力の種類は {'・'.join(OUTPUT_KINDS)} のいずれかです（{row['項目']!r}）"
        )
    if not row["保存期間（月）"].isdigit() or not row["根拠"]:
        raise PolicyError(f"{where}: 出力の行には根拠と保存期間（月、整数）が必要です")
    return OutputRetention(
        no=int(row["番号"]),
        kind=OUTPUT_KINDS[row["項目"]],
        label=row["項目"],
        retention_months=int(row["保存期間（月）"]),
        basis=row["根拠"],
    )


def _item(row: dict[str, str], registry: Registry, where: str) -> Item:
    file, header = row["ファイル"], row["項目"]
    ds = next((d for d in registry.datasets.values() if d.file == file), None)
    col = next((c for c in ds.columns if c.header == header), None) if ds else None
    if ds is None or col is None:
        raise PolicyError(f"{where}: {file} の項目 {header} はデータセット台帳にありません")
    marks = {}
    for name in ("要配慮", "目的外利用", "提供"):
        if row[name] not in MARKS:
            raise PolicyError(f"{where}: {name} 欄は ○ か空欄です（{row[name]!r}）")
        marks[name] = MARKS[row[name]]
    uses = frozenset(USES[u] for u in row["利用区分"].split("・") if u in USES)
    if len(uses) != len([u for u in row["利用区分"].split("・") if u]):
        raise PolicyError(
            f"{where}: 利用区分は 連携キー・照合・分析 の組合せです（{row['利用区分']!r}）"
        )
    item = Item(
        no=int(row["番号"]),
        department=row["保有課"],
        info=row["情報名"],
        dataset=ds.name,
        column=col.name,
        header=header,
        sensitive=marks["要配慮"],
        out_of_purpose=marks["目的外利用"],
        provision=marks["提供"],
        uses=uses,
        purpose=row["利用目的"],
        period=None,
    )
    if not item.approved:
        return item
    label = f"{where}（{file} の {header}）"
    law = denial_basis(header) or (col.basis if col.forbidden else None)
    if law:
        raise PolicyError(
            f"{label}: この項目は{law}により利用できないため、承認できません。○ を外してください。"
        )
    if (col.marker == "id" or is_direct_identifier(header)) and uses - {"match"}:
        raise PolicyError(
            f"{label}: 直接識別子は照合にのみ使えます。連携キー・分析には承認できません。"
        )
    if "key" in uses and col.type != "id":
        raise PolicyError(f"{label}: 連携キーにできるのは番号の項目だけです")
    if not uses or not row["根拠"] or not row["承認期間開始"] or not row["承認期間終了"]:
        raise PolicyError(f"{label}: ○ の項目には利用区分・根拠・承認期間が必要です")
    if not row["保存期間（月）"].isdigit():
        raise PolicyError(f"{label}: ○ の項目には保存期間（月、整数）が必要です")
    start, end = _date(row["承認期間開始"], label), _date(row["承認期間終了"], label)
    if end < start:
        raise PolicyError(f"{label}: 承認期間の終了が開始より前です")
    return Item(
        **{
            **item.__dict__,
            "period": Period(start, end, row["根拠"]),
            "retention_months": int(row["保存期間（月）"]),
        }
    )


def parse_policy(path: Path, registry: Registry | None = None) -> Approval:
    registry = registry or load_registry()
    with open(path, encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        if tuple(reader.fieldnames or ()) != HEADER:
            raise PolicyError(f"{path.name}: 見出し行は {','.join(HEADER)} です")
        items, outputs = [], []
        for line, raw in enumerate(reader, start=2):
            # Marks and dates are normalised (〇 and full-width digits); wording is kept as written.
            row = {
                k: (
                    unicodedata.normalize("NFKC", v or "").replace("〇", "○")
                    if k in _CODED
                    else v or ""
                ).strip()
                for k, v in raw.items()
            }
            where = f"{path.name} {line}行目（番号 {row['番号']}）"
            if row["ファイル"] == OUTPUT_FILE:
                outputs.append(_output(row, where))
            else:
                items.append(_item(row, registry, where))
    seen: set[tuple[str, str, Period | None]] = set()
    for i in items:
        if (i.dataset, i.column, i.period) in seen:
            raise PolicyError(f"{path.name}: 番号 {i.no} は同じ期間の同じ項目の重複です")
        seen.add((i.dataset, i.column, i.period))
    bases = [i.period.basis for i in items if i.period] + [o.basis for o in outputs]
    if any(DEMO_MARK in b for b in bases) and not all(DEMO_MARK in b for b in bases):
        raise PolicyError(f"{path.name}: {DEMO_MARK} の行と実際の承認の行が混在しています")
    missing = sorted(set(OUTPUT_KINDS.values()) - {o.kind for o in outputs})
    if len(outputs) != len({o.kind for o in outputs}) or missing:
        raise PolicyError(
            f"{path.name}: 出力（{'・'.join(OUTPUT_KINDS)}）の保存期間の行は種類ごとに"
            "ちょうど1行必要です"
        )
    return Approval(items=tuple(items), path=str(path), outputs=tuple(outputs))


DEFAULT_POLICY = DATA_DIR / "policy" / "approval.csv"  # the council's FY2022 list
DEMO_POLICY = DATA_DIR / "policy" / "demo_approval.csv"


def policy_path() -> Path:
    """KODOMO_POLICY names another approval file (a later period, the demo, or a test)."""
    return Path(os.environ.get("KODOMO_POLICY") or DEFAULT_POLICY)


@cache
def _load(path: Path, mtime_ns: int) -> Approval:
    return parse_policy(path)


def load_policy(path: Path | None = None) -> Approval:
    """Parsed once per file version: an edited approval list takes effect on the next run."""
    path = (path or policy_path()).resolve()
    return _load(path, path.stat().st_mtime_ns)


MODES = ("production", "demo", "test")


def read_clock(clock: str) -> date:
    """The date in Japan (the approval's dates are Japanese dates), or the test's clock."""
    if clock:
        return date.fromisoformat(clock)
    return datetime.now(ZoneInfo("Asia/Tokyo")).date()


def clock_problem(mode: str, clock: str, approval: Approval) -> str | None:
    """Why the settings may not run, or None."""
    if mode not in MODES:
        return f"mode は {'・'.join(MODES)} のいずれかです（{mode!r}）"
    if clock and mode == "production":
        return (
            "本番では処理日を変えられません（clock の指定は試験用です）: 承認期間の判定は"
            "実際の日付で行います"
        )
    if clock:
        try:
            date.fromisoformat(clock)
        except ValueError:
            return f"clock は YYYY-MM-DD です（{len(clock)} 文字）"
    if approval.demo and mode == "production":
        return f"{Path(approval.path).name} は{DEMO_MARK}です。本番では使えません"
    if mode == "demo" and not approval.demo:
        return f"デモでは{DEMO_MARK}（{DEMO_POLICY.name}）を使います。{Path(approval.path).name} は実際の承認です"
    return None


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
        codes = {
            r["コード"].strip(): r["名称"].strip()
            for r in csv.DictReader(fh)
            if r.get("コード", "").strip()
        }
    if not codes:
        raise PolicyError(f"{path.name}: 確認の区分がありません")
    return codes

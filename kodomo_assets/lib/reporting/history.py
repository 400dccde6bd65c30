"""Section 8 of the report, 実行と閲覧の記録: the month's runs and each asset's latest
materialization (as the Dagster instance recorded them, read in defs/committee/pages.py),
the review list's exports, the link reviews, and whether each chained record verifies."""

from __future__ import annotations

from kodomo_assets.lib.center.export import AccessLogError, read_access_log
from kodomo_assets.lib.linkage.review import review_log
from kodomo_assets.lib.platform.accounts import os_account
from kodomo_assets.lib.platform.storage import KodomoStorage
from kodomo_assets.lib.policy.approval import load_purposes
from kodomo_assets.lib.reporting import report as R

LINK_ACTIONS = {
    "link-review": "確認対象の書き出し",
    "link-review-all": "全件の書き出し（監査）",
    "link-decisions": "判断の取込",
}


def _purpose(code: str, purposes: dict[str, str]) -> str:
    return f"{code}（{purposes.get(code, '不明なコード')}）"


def history_section(
    storage: KodomoStorage,
    month: str,
    runs: list[list[str]],
    latest: list[list[str]],
    status: list[tuple[str, int | None, int]],
) -> list:
    purposes = load_purposes()
    try:
        entries = read_access_log(storage, month)
    except AccessLogError:
        entries = []  # a line that is not a record: the chain check below names it
    access = [
        [e["time"], e["user"], _purpose(e["purpose"], purposes), R.small(e["rows"]), e["format"]]
        for e in entries
    ]
    return [
        R.Table(
            "実行の記録（この基準月）",
            ["実行", "ジョブ", "状態", "開始（日本時間）", "起動者"],
            runs,
            note=f"報告書を作成したユーザー: {os_account()}。起動者は実行のタグ（user）から。",
        ),
        R.Table(
            "資産ごとの最新の実体化（誰が・いつ）",
            ["資産", "日時（日本時間）", "実行", "実行ユーザー"],
            latest,
        ),
        R.Table(
            "確認リストの書き出し記録（アクセス記録）",
            ["日時", "ユーザー", "利用目的", "行数", "形式"],
            access or [["—", "—", "書き出しなし", "—", "—"]],
            counts={3},
        ),
        link_records_table(storage, month, purposes),
        records_table(status),
    ]


def link_records_table(storage: KodomoStorage, month: str, purposes: dict[str, str]) -> R.Table:
    """照合の確認: each export (the uncertain pairs, or every link) and each import of decisions."""
    rows = [
        [
            e.get("time"),
            e.get("user"),
            LINK_ACTIONS.get(str(e.get("action")), "不明"),
            _purpose(e["purpose"], purposes) if e.get("purpose") else "—",
            R.small(e.get("rows")),
        ]
        for e in review_log(storage).entries()
        if e.get("month") == month
    ]
    return R.Table(
        "照合の確認の記録（書き出しと判断）",
        ["日時", "ユーザー", "内容", "利用目的", "行数"],
        rows or [["—", "—", "記録なし", "—", "—"]],
        counts={4},
    )


def records_table(status: list[tuple[str, int | None, int]]) -> R.Table:
    """Each chained record (name, first line that does not verify or None, lines)."""
    return R.Table(
        "記録の検証（改ざんの有無）",
        ["記録", "行数", "結果"],
        [
            [name, str(n), "検証済み" if broken is None else f"改ざんの疑い（{broken} 行目以降）"]
            for name, broken, n in status
        ],
        note="行の削除・書き換え・挿入・なりすましは、署名または連鎖が合わなくなるため検出される。",
    )

"""委員会報告書: the privacy committee's monthly report, built from aggregates only."""

import json
import math
import os
from datetime import datetime
from functools import cache
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from dagster import (
    AssetCheckResult,
    AssetExecutionContext,
    AssetKey,
    AssetRecordsFilter,
    DagsterInstance,
    MaterializeResult,
    MetadataValue,
    RunsFilter,
)

from kodomo_assets.defs.analysis.assets import KEY as LINKED_KEY
from kodomo_assets.defs.center.assets import FEEDBACK_KEY
from kodomo_assets.defs.center.assets import KEY as REVIEW_KEY
from kodomo_assets.defs.committee import pages as P
from kodomo_assets.defs.evaluation.assets import EVALUATION_KEY, FAIRNESS_KEY
from kodomo_assets.defs.linkage.assets import KEY as LINK_KEY
from kodomo_assets.defs.operations import purge_log
from kodomo_assets.defs.scoring.assets import KEY as SCORES_KEY
from kodomo_assets.defs.sources.assets import source_key
from kodomo_assets.defs.zone import zone_asset
from kodomo_assets.lib.center.export import (
    TOKYO,
    AccessLogError,
    access_log_path,
    read_access_log,
    verify_access_log,
)
from kodomo_assets.lib.linkage.review import review_log
from kodomo_assets.lib.platform.accounts import os_account
from kodomo_assets.lib.platform.rows import one_row
from kodomo_assets.lib.platform.storage import KodomoStorage
from kodomo_assets.lib.policy.approval import Approval, MonthApproval, load_purposes
from kodomo_assets.lib.registry import load_registry
from kodomo_assets.lib.reporting import council as C
from kodomo_assets.lib.reporting import report as R
from kodomo_assets.lib.reporting.lineage_diagram import draw
from kodomo_assets.lib.reporting.suppression import mask_text, share_text, visible
from kodomo_assets.lib.scoring.indicators import load_indicators
from kodomo_assets.lib.scoring.linked_table import describe, load_spec, plan

KEY = AssetKey(["committee", "report"])
RECORDS_CHECK = "records_intact"


def _meta(instance: DagsterInstance, key: AssetKey, month: str) -> dict:
    records = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=key, asset_partitions=[month]), limit=1
    ).records
    if not records:
        return {}
    mat = records[0].event_log_entry.asset_materialization
    assert mat is not None  # the records are materializations
    return {k: v.value for k, v in mat.metadata.items()}


def _approval_section(policy: Approval, month: str) -> list:
    rows = []
    for i in policy.items:
        mark = lambda b: "○" if b else ""  # noqa: E731
        uses = "・".join(
            {"key": "連携キー", "match": "照合", "analysis": "分析"}[u] for u in sorted(i.uses)
        )
        period = f"{i.period.start}〜{i.period.end}" if i.period else ""
        rows.append(
            [
                str(i.no),
                i.department,
                i.info,
                i.header,
                mark(i.sensitive),
                mark(i.out_of_purpose),
                mark(i.provision),
                uses,
                i.purpose,
                i.period.basis if i.period else "",
                period,
                f"{i.retention_months}か月" if i.retention_months is not None else "",
                mark(bool(i.period and i.period.covers(month))),
            ]
        )
    return [
        R.Table(
            "別紙 個人情報項目（data/policy/approval.csv）",
            [
                "番号",
                "保有課",
                "情報名",
                "項目",
                "要配慮",
                "目的外利用",
                "提供",
                "利用区分",
                "利用目的",
                "根拠",
                "承認期間",
                "保存期間",
                "今月",
            ],
            rows,
        )
    ]


def _lineage_section(approval: MonthApproval) -> list:
    registry = load_registry()
    p = plan(load_spec(), approval)
    diagram = draw(registry, approval, p)
    per_ds = []
    for ds in registry.datasets.values():
        used = sorted({n for n in p.columns if any(d == ds.name for d, _ in p.lineage[n])})
        sensitive = [i.header for i in approval.items if i.dataset == ds.name and i.sensitive]
        per_ds.append(
            [ds.department.label, ds.label, ds.file, str(len(used)), "、".join(sensitive) or "—"]
        )
    text = describe(p)
    return [
        R.image(R.png_bytes(diagram.png), "データの流れ: " + "、".join(diagram.labels)),
        R.Table(
            "データセットごとの連携（連携テーブルの列数と要配慮の承認項目）",
            ["保有課", "情報名", "ファイル", "連携テーブルの列", "要配慮の項目"],
            per_ds,
        ),
        R.Table(
            "連携テーブルの列と元の項目（列の系譜）",
            ["列", "内容と元の項目"],
            [[n, text[n]] for n in p.columns],
        ),
    ]


def _figures_section(
    context: AssetExecutionContext, storage: KodomoStorage, month: str
) -> tuple[list, dict]:
    inst, reg = context.instance, load_registry()
    names, grid = [], []
    for ds in reg.datasets.values():
        m = _meta(inst, source_key(ds.name), month)
        if m:
            names.append(ds.label)
            grid.append([m["dagster/row_count"], m["quarantined"], m["duplicates_removed"]])
    parts: list = []
    if grid:
        t = R.suppressed_grid(names, ["保存", "隔離", "重複除去"], np.array(grid))
        t.caption, t.header[-1] = "受信と取込（行数。受信 = 保存 + 隔離 + 重複除去）", "受信"
        parts.append(t)
    link = _meta(inst, LINK_KEY, month)
    if link:
        checked = link.get("linked_by_atena_no_checked") or 0  # absent before issue 15
        decided = link.get("linked_by_decision") or 0  # absent before the link-review workflow
        linked = link["linked_by_atena_no"] + checked + link["linked_probabilistically"] + decided
        t = R.suppressed_grid(
            ["児童生徒"],
            [
                "宛名番号で連携",
                "宛名番号を照合で確認して連携",
                "確率的照合で連携",
                "職員の確認で連携",
                "未連携（確認待ち含む）",
            ],
            np.array(
                [
                    [
                        link["linked_by_atena_no"],
                        checked,
                        link["linked_probabilistically"],
                        decided,
                        link["unlinked"],
                    ]
                ]
            ),
        )
        t.caption = "学齢簿と住民基本台帳の連携"
        # a rate is shown only when its numerator and its rest are both 0 or ≥ 10
        pairs = link.get("holdout_pairs") or 0
        recall, precision = link.get("holdout_recall"), link.get("holdout_precision")
        correct = round((recall or 0) * pairs)
        predicted = round(correct / precision) if precision else 0
        t.note = (
            f"連携率 {share_text(linked, link['pupils'])}。確認待ち {R.small(link['steward_review'])} 件。"
            f"既知の宛名番号の一部を伏せた検証: 適合率 {share_text(correct, predicted, '{:.3f}')}、"
            f"再現率 {share_text(correct, pairs, '{:.3f}')}、双子の取り違え {R.small(link['twins_cross_linked'])} 件"
            "（率は、分子とその残りがともに0か10以上のときだけ示す）。"
        )
        parts.append(t)
    scores = storage.zone_store("analysis", month, "risk_scores")
    figures: dict = {}
    if scores.exists():
        with storage.connect() as con:
            storage.attach(con, "s", scores)
            (n_children,) = one_row(con.execute("SELECT count(*) FROM s.risk_scores"))
            k = max(1, round(0.02 * n_children))
            con.execute(f"""CREATE TEMP TABLE t AS SELECT s.*,
                (NOT s.center_known AND row_number() OVER (PARTITION BY s.center_known
                 ORDER BY s.rank) <= {k}) AS listed FROM s.risk_scores s""")
            rows = []
            for i in load_indicators():
                fired, listed = one_row(
                    con.execute(
                        "SELECT count(*) FILTER (list_contains(indicators, ?)), "
                        "count(*) FILTER (listed AND list_contains(indicators, ?)) FROM t",
                        [i.label, i.label],
                    )
                )
                # 該当 − うち掲載 is a count too: both parts 0 or ≥ 10, or the part is hidden
                rows.append(
                    [i.label, R.small(fired), R.small(listed) if visible(listed, fired) else R.MASK]
                )
            parts.append(
                R.Table(
                    "指標ごとの該当児童数（全児童／確認リスト掲載）",
                    ["指標", "該当", "うち掲載"],
                    rows,
                    counts={1, 2},
                    note="一人が複数の指標に該当しうるため合計は示さない。",
                )
            )
            # districts never sit in the analysis table: the fairness audit's aggregates
            audit = storage.zone_store("analysis", month, "fairness_audit")
            districts = []
            if audit.exists():
                storage.attach(con, "fa", audit)
                districts = con.execute(
                    "SELECT district_code, children, flagged, listed "
                    "FROM fa.district_counts ORDER BY 1"
                ).fetchall()
            if districts:
                labels, children = [d[0] for d in districts], [d[1] for d in districts]
                cols = [R.suppressed_column(labels, children)] + [
                    R.suppressed_column(labels, [d[c] for d in districts], wholes=children)
                    for c in (2, 3)
                ]
                parts.append(
                    R.Table(
                        "町丁目ごとの児童数・指標該当・確認リスト掲載（新規の示唆）",
                        ["町丁目コード", "児童", "指標に該当", "確認リスト掲載"],
                        [[a[0], a[1], b[1], c[1]] for a, b, c in zip(*cols, strict=True)],
                        counts={1, 2, 3},
                        note="各列で1〜9は x、合計から逆算できないよう二次秘匿。児童数との差が1〜9になる値も x。",
                    )
                )
            figures["scores"] = con.execute("SELECT score FROM t").fetchnumpy()["score"]
            figures["n_children"], figures["k"] = n_children, k
    return parts, figures


def _evaluation_rows(rows: list[tuple], positives: int | None) -> list[list[str]]:
    """The evaluation against the demo truth, so that no figure gives a small count back:
    precision is found ÷ selected and recall found ÷ needs, each shown only when the count
    and its rest are 0 or ≥ 10; found is hidden on the same rule; AUC, Brier and ECE are
    not shares of a count."""
    by = {m: (d, *values) for m, d, *values in rows}
    out = []
    for metric, (label, *values) in by.items():
        cells = []
        for i, v in enumerate(values):
            found, selected = by["found"][1 + i], by["selected"][1 + i]
            if v is None or (isinstance(v, float) and math.isnan(v)):
                cells.append("—")
            elif metric == "precision_at_k":
                cells.append(share_text(round(found), round(selected), "{:.3f}"))
            elif metric == "recall_at_k":
                cells.append(share_text(round(found), positives, "{:.3f}") if positives else R.MASK)
            elif metric == "found":
                shown = visible(round(v), round(selected)) and (
                    not positives or visible(round(v), positives)
                )
                cells.append(R.small(round(v)) if shown else R.MASK)
            elif metric == "selected":
                cells.append(R.small(round(v)))
            else:
                cells.append(f"{v:.3f}")
        out.append([label, *cells])
    return out


@cache
def _term_labels(approval: MonthApproval) -> dict[str, str]:
    return {
        **plan(load_spec(), approval).labels(),
        **{f"ind_{i.name}": i.label for i in load_indicators()},
    }


def _feature_label(term: str, approval: MonthApproval) -> str:
    """A model input in Japanese: the linked-table column's label, or the indicator's."""
    labels = _term_labels(approval)
    name = term.split("=", 1)[0]
    return labels.get(name, name).split("（")[0]


def _ranking_text(ranking: dict | None) -> str:
    """Which order the list used and why (lib/ranking), or a dash for a card from before."""
    return f"{ranking['label']}。{ranking['reason_for_committee']}" if ranking else "—"


def _model_section(
    context: AssetExecutionContext, storage: KodomoStorage, month: str, figures: dict
) -> list:
    parts: list = []
    card_path = storage.zone_file("analysis", month, "model_card.json")
    if card_path.exists():
        card = json.loads(card_path.read_text(encoding="utf-8"))
        parts.append(
            R.Table(
                "モデルカード",
                ["項目", "内容"],
                [
                    ["基準月", card["month"]],
                    ["学習の正解", "子ども家庭支援センターの相談または要対協登録（既知の児童）"],
                    [
                        "学習した児童",
                        f"{card['training_rows']:,}（正例 {R.small(card['positives'])}）",
                    ],
                    ["交差検証 AUC（既知の判別）", f"{card['cv_auc']:.3f}"],
                    ["Brier", f"{card['cv_brier']:.4f}"],
                    [
                        "特徴量",
                        f"{len(card['features'])} 個（外国人住民・町丁目は使わない）: "
                        + "、".join(
                            dict.fromkeys(
                                _feature_label(f, storage.approval().as_recorded(month))
                                for f in card["features"]
                            )
                        ),
                    ],
                    ["較正", card["params"].get("calibration", "")],
                    ["確認リストの順位付け", _ranking_text(card.get("ranking"))],
                    [
                        "過去に相談歴のある児童の割合（未把握の児童全体／リストの上位 k 人）",
                        f"{card['past_share']:.1%}／{card['past_share_listed']:.1%}（学習に使った児童のスコアは交差検証の"
                        "分割の外から求めるため、自分の正解で順位が上がらない）"
                        if card.get("past_share") is not None
                        else "—",
                    ],
                ],
            )
        )
    ev = storage.zone_store("analysis", month, "evaluation")
    if ev.exists():
        with storage.open(ev) as con:
            rows = con.execute(
                "SELECT metric, description, model, indicators_first, learned, baseline "
                "FROM metrics"
            ).fetchall()
            cal = con.execute(
                "SELECT mean_score, label_rate, n FROM calibration ORDER BY bin"
            ).fetchall()
        if rows:
            positives = _meta(context.instance, EVALUATION_KEY, month).get("planted_needs_unknown")
            parts.append(
                R.Table(
                    "デモの正解データに対する評価（合成データのみ。実データには正解がなく、精度は"
                    "1. の確認結果で示す。センターが把握していない児童）",
                    ["指標", "確認リスト", "指標優先", "学習モデルのみ", "最良の単一ルール"],
                    _evaluation_rows(rows, positives),
                    note="率は、分子とその残りがともに0か10以上のときだけ示す（x は秘匿）。",
                )
            )
        # a bin's known share is drawn only when its known children and the rest are 0 or ≥ 10
        shown = [(sc, r) for sc, r, n in cal if n >= 10 and visible(round(r * n), n)]
        if shown:
            fig, ax = plt.subplots(figsize=(4.5, 4))
            ax.plot(
                [0, max(s for s, _ in shown)], [0, max(s for s, _ in shown)], "--", color="#999"
            )
            ax.plot([s for s, _ in shown], [r for _, r in shown], "o-")
            (
                ax.set_xlabel("予測スコアの平均"),
                ax.set_ylabel("既知の割合"),
                ax.set_title("較正（10区分）"),
            )
            parts.append(R.image(R.png(fig), "較正のグラフ"))
    fair = storage.zone_store("analysis", month, "fairness_audit")
    if fair.exists():
        with storage.open(fair) as con:
            gaps = con.execute(
                "SELECT label, equalized_odds_gap, disclosable, explanation FROM gaps"
            ).fetchall()
        parts.append(
            R.Table(
                "公平性の確認（Equalized odds の差）",
                ["属性", "差", "説明"],
                [
                    [
                        a,
                        R.MASK
                        if g is not None and not ok
                        else f"{g:.3f}"
                        if g is not None
                        else "—",
                        mask_text(e),
                    ]
                    for a, g, ok, e in gaps
                ],
            )
        )
    if "scores" in figures:
        fig, ax = plt.subplots(figsize=(6, 3.5))
        counts, edges = np.histogram(figures["scores"], bins=20, range=(0, 1))
        heights = np.where(counts >= 10, counts, 0)  # bins of 1–9 children are not drawn
        ax.bar(edges[:-1], heights, width=0.05, align="edge", color="#669")
        ax.set_yscale("symlog")
        ax.set_xlabel("較正済みスコア")
        ax.set_ylabel("児童数")
        ax.set_title("スコアの分布（10人未満の区分は表示しない）")
        parts.append(R.image(R.png(fig), "スコアの分布"))
    return parts


def _trend_section(storage: KodomoStorage) -> list:
    """Children flagged per indicator over the months with scores."""
    folder = storage.home_path / "zones" / "analysis"
    months = (
        sorted(p.name for p in folder.iterdir() if (p / "risk_scores.duckdb").exists())
        if folder.exists()
        else []
    )
    if not months:
        return []
    labels = [i.label for i in load_indicators()]
    series = np.full((len(labels), len(months)), np.nan)
    for j, m in enumerate(months):
        with storage.open(folder / m / "risk_scores.duckdb") as con:
            for i, label in enumerate(labels):
                (n,) = one_row(
                    con.execute(
                        "SELECT count(*) FILTER (list_contains(indicators, ?)) FROM risk_scores",
                        [label],
                    )
                )
                series[i, j] = n if n >= 10 or n == 0 else np.nan  # small counts left out
    fig, ax = plt.subplots(figsize=(8, 4))
    for i, label in enumerate(labels):
        ax.plot(months, series[i], marker="o", label=label)
    ax.set_ylabel("該当児童数"), ax.set_title("指標ごとの該当児童数の推移（10人未満は表示しない）")
    ax.legend(fontsize=6, loc="center left", bbox_to_anchor=(1, 0.5))
    return [R.image(R.png(fig), "指標ごとの該当児童数の推移")]


def records_status(storage: KodomoStorage) -> list[tuple[str, int | None, int]]:
    """Each chained record, the first line that does not verify (None: all do) and its lines:
    the center's access log (signed with the center's key, checked with its public key) and
    the pipeline's purge record and the link-review record (keyed with the storage key)."""
    access, purges, links = access_log_path(storage), purge_log(storage), review_log(storage)

    def lines(p: Path) -> int:
        return sum(1 for ln in p.read_bytes().split(b"\n") if ln.strip()) if p.exists() else 0

    return [
        (
            "アクセス記録（書き出し・確認結果の取込。センターの署名と連鎖）",
            verify_access_log(storage, storage.center_public()),
            lines(access),
        ),
        (
            "消去の記録（保存期間による削除。連鎖と鍵付きハッシュ）",
            purges.first_broken_line(),
            lines(purges.path),
        ),
        (
            "照合の記録（照合の確認の書き出し・判断の取込。連鎖と鍵付きハッシュ）",
            links.first_broken_line(),
            lines(links.path),
        ),
    ]


def _records_table(status: list[tuple[str, int | None, int]]) -> R.Table:
    return R.Table(
        "記録の検証（改ざんの有無）",
        ["記録", "行数", "結果"],
        [
            [name, str(n), "検証済み" if broken is None else f"改ざんの疑い（{broken} 行目以降）"]
            for name, broken, n in status
        ],
        note="行の削除・書き換え・挿入・なりすましは、署名または連鎖が合わなくなるため検出される。",
    )


def _history_section(storage: KodomoStorage, instance: DagsterInstance, month: str) -> list:
    runs = instance.get_run_records(RunsFilter(tags={"dagster/partition": month}), limit=30)
    rows = [
        [
            r.dagster_run.run_id[:8],
            r.dagster_run.job_name,
            r.dagster_run.status.value,
            r.start_time
            and datetime.fromtimestamp(r.start_time, TOKYO).isoformat(timespec="seconds"),
            r.dagster_run.tags.get("user") or r.dagster_run.tags.get("dagster/user") or "—",
        ]
        for r in runs
    ]
    assets: list[list[object]] = []
    for key in (
        *(source_key(d) for d in load_registry().datasets),
        LINK_KEY,
        LINKED_KEY,
        SCORES_KEY,
        REVIEW_KEY,
        EVALUATION_KEY,
        FAIRNESS_KEY,
    ):
        recs = instance.fetch_materializations(
            AssetRecordsFilter(asset_key=key, asset_partitions=[month]), limit=1
        ).records
        if not recs:
            assets.append(["/".join(key.path), "—", "—", "—"])
            continue
        mat = recs[0].event_log_entry.asset_materialization
        assert mat is not None  # the records are materializations
        meta = mat.metadata
        by = meta["materialized_by"].value if "materialized_by" in meta else "—"
        when = datetime.fromtimestamp(recs[0].timestamp, TOKYO).isoformat(timespec="seconds")
        assets.append(["/".join(key.path), when, recs[0].run_id[:8], by])
    purposes = load_purposes()
    try:
        entries = read_access_log(storage, month)
    except AccessLogError:
        entries = []  # a line that is not a record: the chain check below names it
    access = [
        [
            e["time"],
            e["user"],
            f"{e['purpose']}（{purposes.get(e['purpose'], '不明なコード')}）",
            R.small(e["rows"]),
            e["format"],
        ]
        for e in entries
    ]
    return [
        R.Table(
            "実行の記録（この基準月）",
            ["実行", "ジョブ", "状態", "開始（日本時間）", "起動者"],
            rows,
            note=f"報告書を作成したユーザー: {os_account()}。起動者は実行のタグ（user）から。",
        ),
        R.Table(
            "資産ごとの最新の実体化（誰が・いつ）",
            ["資産", "日時（日本時間）", "実行", "実行ユーザー"],
            assets,
        ),
        R.Table(
            "確認リストの書き出し記録（アクセス記録）",
            ["日時", "ユーザー", "利用目的", "行数", "形式"],
            access or [["—", "—", "書き出しなし", "—", "—"]],
            counts={3},
        ),
        _link_records_table(storage, month, purposes),
        _records_table(records_status(storage)),
    ]


def _link_records_table(storage: KodomoStorage, month: str, purposes: dict[str, str]) -> R.Table:
    """照合の確認: each export (the uncertain pairs, or every link) and each import of decisions."""
    names = {
        "link-review": "確認対象の書き出し",
        "link-review-all": "全件の書き出し（監査）",
        "link-decisions": "判断の取込",
    }
    rows = [
        [
            e.get("time"),
            e.get("user"),
            names.get(e.get("action", ""), "不明"),
            f"{e['purpose']}（{purposes.get(e['purpose'], '不明なコード')}）"
            if e.get("purpose")
            else "—",
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


def _trend_pages(
    storage: KodomoStorage, con, month: str, verified: list[str]
) -> tuple[list, list[str]]:
    """傾向分析: co-occurrence among confirmed children, rates by age band and household,
    districts across months, and indicators that never fire or are never confirmed."""
    labels = [i.label for i in load_indicators()]
    parts: list = [C.co_occurrence(con, labels)] if verified else []
    scores = storage.zone_store("analysis", month, SCORES_KEY.path[-1])
    linked = storage.zone_store("analysis", month, LINKED_KEY.path[-1])
    if scores.exists() and linked.exists():
        storage.attach(con, "ts", scores)
        storage.attach(con, "tl", linked)
        columns = {r[0] for r in con.execute("DESCRIBE tl.linked_children").fetchall()}
        single = "l.single_parent" if "single_parent" in columns else "NULL::BOOLEAN"
        age = "l.age_years" if "age_years" in columns else "NULL::INTEGER"
        con.execute(f"""CREATE OR REPLACE TEMP TABLE kids AS SELECT s.child_token, {age} AS age_years,
                        {single} AS single_parent, len(s.indicators) > 0 AS flagged, s.center_known
                        FROM ts.risk_scores s LEFT JOIN tl.linked_children l USING (child_token)""")
        parts.append(C.rates_by_group(con))
    series, fired = {}, dict.fromkeys(labels, 0)
    for m in (m for m in storage.months_on_disk() if m <= month):
        audit = storage.zone_store("analysis", m, "fairness_audit")
        if audit.exists():
            with storage.open(audit) as a:
                series[m] = a.execute(
                    "SELECT district_code, children, flagged FROM district_counts"
                ).fetchall()
        past = storage.zone_store("analysis", m, SCORES_KEY.path[-1])
        if past.exists():
            with storage.open(past) as sc:
                for label, n in sc.execute(
                    "SELECT i, count(*) FROM (SELECT unnest(indicators) AS i "
                    "FROM risk_scores) GROUP BY i"
                ).fetchall():
                    fired[label] = fired.get(label, 0) + n
    if series:
        parts.append(C.district_trend(series))
    confirmed = dict(
        con.execute(
            "SELECT i, count(*) FROM (SELECT unnest(indicators) AS i FROM verified "
            "WHERE result = '該当') GROUP BY i"
        ).fetchall()
    )
    silent = C.silent_indicators(fired, confirmed)
    parts += [R.paragraph(t) for t in silent]
    return parts, silent


def _worth_pages(storage: KodomoStorage, month: str) -> list:
    """必要最小限: the newest item-worth review up to this month (its own job, quarterly)."""
    done = [
        m
        for m in storage.months_on_disk()
        if m <= month and storage.zone_store("analysis", m, "item_worth").exists()
    ]
    if not done:
        return [
            R.paragraph(
                "データ項目の効き目の確認（item_worth_review ジョブ。四半期ごと、または委員会の求めに"
                "応じて実行）は、まだ実行されていない。"
            )
        ]
    with storage.open(storage.zone_store("analysis", done[-1], "item_worth")) as con:
        frame = con.execute("SELECT * FROM item_worth").df()
    return C.worth_tables(frame, done[-1])


@zone_asset(
    KEY,
    zone="committee",
    sensitive=False,
    kinds={"html"},
    code_version="2",
    deps=[SCORES_KEY, REVIEW_KEY, FEEDBACK_KEY, EVALUATION_KEY, FAIRNESS_KEY, LINK_KEY],
    gated=False,
    checks=[
        (
            RECORDS_CHECK,
            "アクセス記録（センターの署名）と消去の記録の連鎖がすべて検証できる。"
            "行の削除・書き換え・なりすましがあれば失敗し、報告書に改ざんの疑いとして載せる。",
        )
    ],
    description=(
        "委員会報告書: 個人情報保護運営審議会が毎月確認する自己完結の HTML（外部のフォント・"
        "スクリプト・通信なし）。1ページ目に、基準月と処理日が承認期間内か、示唆した児童の数と"
        "センターが確認した数・該当の割合、主な課題、システムがしないこと、審議会での質問への答え、"
        "誰がどの領域を開けるかを載せる。続いて確認の結果（陽性的中率）、傾向分析、課題、データ項目の"
        "効き目、今月の数字、モデル・評価・公平性、実行と閲覧の記録、付録に承認リストと列の系譜。"
        "件数はすべて 1〜9 を x とし、二次秘匿を行う。承認期間の後でも集計の再作成は拒まない。"
    ),
)
def committee_report(context: AssetExecutionContext, storage: KodomoStorage) -> MaterializeResult:
    month = context.partition_key
    # never refused: an aggregate report may be re-rendered after the period; it states
    # whether the data month and today's date are inside it
    approval = storage.approval()
    standing = approval.standing(month, storage.today())
    facts = P.gather(storage, context.instance, month)
    figures_parts, figures = _figures_section(context, storage, month)
    gaps = []
    fair = storage.zone_store("analysis", month, "fairness_audit")
    with storage.connect() as con:
        verified_months = C.attach_verified(storage, con, month)
        verified = C.checked_totals(con)
        verification = P.verification_pages(con, facts)
        if fair.exists():
            storage.attach(con, "fa", fair)
            gaps = con.execute(
                "SELECT label, equalized_odds_gap, disclosable FROM fa.gaps"
            ).fetchall()
            groups = con.execute(
                'SELECT attribute, "group", children, listed, checked, confirmed '
                "FROM fa.verified_by_group"
            ).fetchall()
            verification.append(C.verified_groups_table(groups))
        trends, silent = _trend_pages(storage, con, month, verified_months)
    issues, refused_notes = P.problems(storage, facts, gaps, silent)
    fired = {i.label: 0 for i in load_indicators()}
    fired |= _meta(context.instance, SCORES_KEY, month).get("indicators_fired") or {}
    report = R.Report(
        month=month,
        generated_at=datetime.now(TOKYO).isoformat(timespec="seconds") + "（日本時間）",
        standing=R.standing_lines(standing),
        demo=approval.demo,
        sections=[
            (
                "要点（審議会の皆さまへ）",
                P.first_page(
                    storage,
                    facts,
                    approval,
                    standing,
                    verified,
                    fired,
                    issues.main(),
                    figures.get("n_children"),
                ),
            ),
            ("1. 確認の結果（分析結果の検証）", verification),
            (
                "2. 傾向分析",
                trends or [R.paragraph("確認結果がまだないため、重なりの分析はない。")],
            ),
            ("3. 課題", [issues.table(), *(R.paragraph(t) for t in refused_notes)]),
            ("4. データ項目の効き目（必要最小限）", _worth_pages(storage, month)),
            ("5. 今月の数字", figures_parts),
            ("6. モデルカード・評価・公平性", _model_section(context, storage, month, figures)),
            ("7. 指標の推移", _trend_section(storage)),
            ("8. 実行と閲覧の記録", _history_section(storage, context.instance, month)),
            ("付録A 承認リスト（別紙 個人情報項目）", _approval_section(approval, month)),
            ("付録B データの流れ（列の系譜）", _lineage_section(approval.as_recorded(month))),
        ],
    )
    html = R.render(report)
    path = storage.report_path(month)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(html, encoding="utf-8")
    os.replace(tmp, path)
    status = records_status(storage)
    broken = [f"{name}: {line} 行目" for name, line, _ in status if line is not None]
    return MaterializeResult(
        metadata={
            "report": MetadataValue.path(str(path)),
            "bytes": len(html.encode()),
            "sections": len(report.sections),
        },
        check_results=[
            AssetCheckResult(
                check_name=RECORDS_CHECK,
                passed=not broken,
                description="改ざんの疑い: " + "、".join(broken) if broken else None,
                metadata={
                    name: ("検証済み" if line is None else f"改ざんの疑い（{line} 行目）")
                    for name, line, _ in status
                },
            )
        ],
    )

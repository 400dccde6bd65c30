"""委員会報告書: the privacy committee's monthly report, built from aggregates only."""

import os
from datetime import datetime
from pathlib import Path

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
from kodomo_assets.lib.center.export import TOKYO, access_log_path, verify_access_log
from kodomo_assets.lib.linkage.review import review_log
from kodomo_assets.lib.platform.storage import KodomoStorage
from kodomo_assets.lib.registry import load_registry
from kodomo_assets.lib.reporting import council as C
from kodomo_assets.lib.reporting import report as R
from kodomo_assets.lib.reporting.appendix import approval_section, lineage_section
from kodomo_assets.lib.reporting.figures import figures_section
from kodomo_assets.lib.reporting.history import history_section
from kodomo_assets.lib.reporting.model_pages import model_section
from kodomo_assets.lib.reporting.trends import indicator_trend, trend_pages
from kodomo_assets.lib.scoring.indicators import load_indicators

KEY = AssetKey(["committee", "report"])
RECORDS_CHECK = "records_intact"


def _meta(instance: DagsterInstance, key: AssetKey, month: str) -> dict:
    records = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=key, asset_partitions=[month]), limit=1
    ).records
    if not records:
        return {}
    mat = records[0].event_log_entry.asset_materialization
    return {k: v.value for k, v in mat.metadata.items()}


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


def _runs(instance: DagsterInstance, month: str) -> list[list[str]]:
    runs = instance.get_run_records(RunsFilter(tags={"dagster/partition": month}), limit=30)
    return [
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


def _latest(instance: DagsterInstance, month: str) -> list[list[str]]:
    assets = []
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
        meta = recs[0].event_log_entry.asset_materialization.metadata
        by = meta["materialized_by"].value if "materialized_by" in meta else "—"
        when = datetime.fromtimestamp(recs[0].timestamp, TOKYO).isoformat(timespec="seconds")
        assets.append(["/".join(key.path), when, recs[0].run_id[:8], by])
    return assets


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
    figures_parts, figures = figures_section(storage, month, facts.sources, facts.link)
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
        trends, silent = trend_pages(storage, con, month, verified_months)
    issues, refused_notes = P.problems(storage, facts, gaps, silent)
    fired = {i.label: 0 for i in load_indicators()}
    fired |= _meta(context.instance, SCORES_KEY, month).get("indicators_fired") or {}
    positives = _meta(context.instance, EVALUATION_KEY, month).get("planted_needs_unknown")
    runs, latest = _runs(context.instance, month), _latest(context.instance, month)
    status = records_status(storage)  # shown in section 8, and this asset's check
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
            (
                "6. モデルカード・評価・公平性",
                model_section(storage, month, figures, positives),
            ),
            ("7. 指標の推移", indicator_trend(storage)),
            ("8. 実行と閲覧の記録", history_section(storage, month, runs, latest, status)),
            ("付録A 承認リスト（別紙 個人情報項目）", approval_section(approval, month)),
            ("付録B データの流れ（列の系譜）", lineage_section(approval.as_recorded(month))),
        ],
    )
    html = R.render(report)
    path = storage.report_path(month)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(html, encoding="utf-8")
    os.replace(tmp, path)
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

"""委員会報告書: the privacy committee's monthly report, built from aggregates only.

Thin wiring: gather what the Dagster instance recorded (pages.py), build and render the
report in lib/reporting/monthly.py, and check the chained records the report shows."""

from pathlib import Path

from dagster import (
    AssetCheckResult,
    AssetExecutionContext,
    AssetKey,
    MaterializeResult,
    MetadataValue,
)

from kodomo_assets.defs.center.assets import FEEDBACK_KEY
from kodomo_assets.defs.center.assets import KEY as REVIEW_KEY
from kodomo_assets.defs.committee import pages as P
from kodomo_assets.defs.evaluation.assets import EVALUATION_KEY, FAIRNESS_KEY
from kodomo_assets.defs.linkage.assets import KEY as LINK_KEY
from kodomo_assets.defs.operations import purge_log
from kodomo_assets.defs.scoring.assets import KEY as SCORES_KEY
from kodomo_assets.defs.zone import zone_asset
from kodomo_assets.lib.center.export import access_log_path, verify_access_log
from kodomo_assets.lib.linkage.review import review_log
from kodomo_assets.lib.platform.storage import KodomoStorage
from kodomo_assets.lib.reporting import report as R
from kodomo_assets.lib.reporting.monthly import monthly_report, write_report

KEY = AssetKey(["committee", "report"])
RECORDS_CHECK = "records_intact"


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
    status = records_status(storage)  # shown in the report's section 8, and this asset's check
    report = monthly_report(storage, P.gather(storage, context.instance, month), status)
    html = R.render(report)
    path = storage.report_path(month)
    write_report(path, html)
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

"""評価と公平性の確認: the score against the demo generator's planted needs (analysis zone).

Thin wiring: the figures come from lib/scoring (evaluation*.py); here one DuckDB file per asset
goes through the zone gate. A month without truth (a real city, or an older month of the demo)
materializes with 正解データなし and no figures. Metadata and logs hold aggregates only."""

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
from dagster import AssetExecutionContext, AssetKey, Failure, MaterializeResult, MetadataValue

from kodomo_assets.defs.analysis.assets import KEY as LINKED_KEY
from kodomo_assets.defs.analysis.assets import TABLE as LINKED_TABLE
from kodomo_assets.defs.analysis.assets import audit_attributes
from kodomo_assets.defs.approval import approval_for
from kodomo_assets.defs.center.assets import FEEDBACK_KEY
from kodomo_assets.defs.center.assets import KEY as REVIEW_KEY
from kodomo_assets.defs.scoring.assets import KEY as SCORES_KEY
from kodomo_assets.defs.scoring.assets import TABLE as SCORES_TABLE
from kodomo_assets.defs.sources.assets import source_key
from kodomo_assets.defs.zone import check_results, zone_asset
from kodomo_assets.lib.paths import REGISTRY, content_version
from kodomo_assets.lib.platform.keys import KeyProblem
from kodomo_assets.lib.platform.storage import KodomoStorage, keep_only
from kodomo_assets.lib.policy.gate import inspect_table
from kodomo_assets.lib.scoring import evaluation as ev
from kodomo_assets.lib.scoring import evaluation_store as store
from kodomo_assets.lib.scoring import evaluation_summary as summary

EVALUATION_KEY = AssetKey(["analysis", "evaluation"])
FAIRNESS_KEY = AssetKey(["analysis", "fairness_audit"])
# the indicators are the baseline, the lib is the method: either changing is a new version
CODE_VERSION = content_version("1", REGISTRY / "indicators.yaml", Path(ev.__file__))
Computed = tuple[store.Frames, dict, list[str]]  # tables to write, metadata, log lines


def _planted(storage: KodomoStorage, truth: Path | None) -> pd.DataFrame | None:
    try:
        return store.planted(storage, truth)
    except KeyProblem as err:
        raise Failure(description=str(err), allow_retries=False) from None


def _against_truth(
    context: AssetExecutionContext,
    storage: KodomoStorage,
    table: str,
    schemas: dict[str, dict[str, str]],
    compute: Callable[[store.Staged], Computed],
) -> Iterator:
    """What both assets do: the approval, the month's truth (or why none), `compute` in a staged
    store with the scores attached, the gate (its results yielded before a refusal), the
    promotion, then the logs and the metadata (refused if anything is shaped like a token)."""
    started = time.perf_counter()
    month = context.partition_key
    approval_for(storage, month)
    truth, status = ev.truth_for(storage.inbox_path, month)
    final = storage.zone_store("analysis", month, table)
    with storage.staged(final) as (con, stage):
        storage.attach(con, "scores", storage.zone_store("analysis", month, SCORES_TABLE))
        frames, metadata, lines = compute(store.Staged(storage, con, month, truth, status))
        store.fill(con, schemas, frames)
        reports = [inspect_table(con, name, approved=list(c)) for name, c in schemas.items()]
        results = check_results(reports)
        failed = [r for r in reports if not r.passed]
        if failed:
            yield from results
            raise Failure(description=" / ".join(r.message() for r in failed), allow_retries=False)
        keep_only(con, list(schemas))
        storage.promote(con, stage, final)
    for line in lines:
        context.log.info(line)
    metadata["seconds"] = round(time.perf_counter() - started, 1)
    if summary.token_shaped(metadata):
        raise Failure(
            description="メタデータに仮名の形の値が含まれるため記録しません", allow_retries=False
        )
    # plain values as Dagster reads them (text, int, float, json); the tables as markdown
    tables = {k: MetadataValue.md(metadata[k]) for k in summary.MARKDOWN if k in metadata}
    yield MaterializeResult(metadata=metadata | tables, check_results=results)


@zone_asset(
    EVALUATION_KEY,
    zone="analysis",
    sensitive=False,
    kinds={"duckdb", "scikitlearn"},
    code_version=CODE_VERSION,
    deps=[SCORES_KEY],
    description=(
        "スコアの評価（分析領域。デモデータのみ）: デモデータの生成器が埋め込んだ支援の必要"
        "（受信フォルダの _truth/needs.csv、最新の月だけに当てはまる）を正解として、センターが現在"
        "把握していない児童について、AUC、確認リストと同じ上位 k 人（全児童の2%）の適合率・再現率、"
        "必要の種類ごとの再現率を求める。較正は学習の正解（センター把握）に対する Brier スコアと"
        "10区間の信頼性表（同じ区間の埋め込まれた必要の割合を併記）。比較の基準として、各指標を"
        "単独で使ったリスト（該当児童、k 人を超えれば仮名順に k 人）を評価し、再現率が最も高い指標と"
        "並べる。正解のない月（実際の自治体を含む）は「正解データなし」として数値を出さない。"
    ),
)
def evaluation(context: AssetExecutionContext, storage: KodomoStorage):
    yield from _against_truth(
        context, storage, store.EVALUATION_TABLE, ev.EVALUATION_TABLES, _evaluate
    )


def _evaluate(s: store.Staged) -> Computed:
    scores = store.scored(s.con, SCORES_TABLE)
    planted = _planted(s.storage, s.truth)
    result = None if planted is None else store.evaluated(scores, planted)
    metadata, lines = summary.evaluation(s.month, s.status, len(scores), result)
    return store.evaluation_frames(result), metadata, lines


@zone_asset(
    FAIRNESS_KEY,
    zone="analysis",
    sensitive=False,
    kinds={"duckdb", "scikitlearn"},
    code_version=CODE_VERSION,
    # the results so far: this month's, and (through the list's own chain) every earlier one
    deps=[SCORES_KEY, LINKED_KEY, source_key("jumin"), FEEDBACK_KEY, REVIEW_KEY],
    description=(
        "公平性の確認（分析領域。デモデータのみ）: センターが現在把握していない児童について、"
        "確認リストの上位 k 人に入ることを予測、埋め込まれた支援の必要を正解として、ひとり親世帯・"
        "外国人住民・町丁目・手当・保護の受給（生活保護または児童扶養手当）の群ごとに、選ばれる率・"
        "TPR・FPR を fairlearn の MetricFrame で求め、児童を復元抽出するブートストラップで95%区間を"
        "付ける。属性ごとに均等化オッズの差（fairlearn）を求め、0.1 を超えれば、群の大きさ・基準率・"
        "区間の幅と、偶然で生じる差の大きさから日本語で説明する。10人未満の群はメタデータで秘匿する。"
        "正解のない月は「正解データなし」として数値を出さない。確認結果（センターの署名付き、仮名のみ）が"
        "あれば、正解のない実データでも、群ごとの選ばれる率と陽性的中率を求める。"
    ),
)
def fairness_audit(context: AssetExecutionContext, storage: KodomoStorage):
    yield from _against_truth(context, storage, store.FAIRNESS_TABLE, ev.FAIRNESS_TABLES, _audit)


def _audit(s: store.Staged) -> Computed:
    s.storage.attach(s.con, "linked", s.storage.zone_store("analysis", s.month, LINKED_TABLE))
    # district and foreign residence never sit in the analysis table: computed here from
    # the register, in this step only, and published as group aggregates
    attributes = audit_attributes(s.storage, s.con, s.month, approval_for(s.storage, s.month))
    planted = _planted(s.storage, s.truth)
    audited = store.audited(s, attributes, planted, (SCORES_TABLE, LINKED_TABLE))
    return audited.frames, *summary.audit(s.month, s.status, audited)

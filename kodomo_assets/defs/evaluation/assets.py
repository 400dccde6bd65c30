"""評価と公平性の確認: the score against the demo generator's planted needs (analysis zone).

Thin wiring: read the month's scores (and the audit attributes), compute in
lib/scoring/evaluation.py, write one DuckDB file per asset through the zone gate. A month without
truth (a real city, or an older month of the demo) materializes with 正解データなし and no
figures. Metadata and logs hold aggregates only.
"""

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
from dagster import (
    AssetExecutionContext,
    AssetKey,
    Failure,
    MaterializeResult,
    MetadataValue,
)

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
from kodomo_assets.lib.policy.pseudonym import TOKEN_PATTERN, token
from kodomo_assets.lib.reporting.council import attach_verified
from kodomo_assets.lib.scoring import evaluation as ev
from kodomo_assets.lib.scoring.indicators import load_indicators

EVALUATION_KEY = AssetKey(["analysis", "evaluation"])
FAIRNESS_KEY = AssetKey(["analysis", "fairness_audit"])
EVALUATION_TABLE, FAIRNESS_TABLE = "evaluation", "fairness_audit"
# the indicators are the baseline, the lib is the method: either changing is a new version
CODE_VERSION = content_version("1", REGISTRY / "indicators.yaml", Path(ev.__file__))
AUDIT_COLUMNS = ["single_parent", "foreign_resident", "district_code", *ev.ON_AID_INPUTS]
_TOKEN = re.compile(TOKEN_PATTERN)


def _planted(storage: KodomoStorage, truth: Path) -> pd.DataFrame:
    try:
        key = storage.pseudonym_key()
    except KeyProblem as err:
        raise Failure(description=str(err), allow_retries=False) from None
    return ev.planted_needs(truth, lambda atena_no: token(key, "child", atena_no))


@contextmanager
def _against_truth(
    storage: KodomoStorage, month: str, table: str
) -> Iterator[tuple[duckdb.DuckDBPyConnection, Path, Path, Path | None, str]]:
    """What both assets start from: the approval, the month's planted truth (or why there
    is none) and a staged store for `table` with the month's scores attached."""
    approval_for(storage, month)
    truth, status = ev.truth_for(storage.inbox_path, month)
    final = storage.zone_store("analysis", month, table)
    with storage.staged(final) as (con, stage):
        storage.attach(con, "scores", storage.zone_store("analysis", month, SCORES_TABLE))
        yield con, stage, final, truth, status


def _publish(
    storage: KodomoStorage,
    con: duckdb.DuckDBPyConnection,
    stage: Path,
    final: Path,
    schemas: dict[str, dict[str, str]],
    frames: dict[str, pd.DataFrame],
):
    """Create the fixed tables, fill them, gate them and promote the file; yields the check
    results before a refusal, returns them otherwise."""
    for name, columns in schemas.items():
        ddl = ", ".join(f'"{c}" {t}' for c, t in columns.items())
        con.execute(f"CREATE TABLE {name} ({ddl})")
        frame = frames.get(name)
        if frame is not None and not frame.empty:
            con.register("frame", frame[list(columns)])
            con.execute(f"INSERT INTO {name} SELECT * FROM frame")
            con.unregister("frame")
    reports = [
        inspect_table(con, name, approved=list(columns)) for name, columns in schemas.items()
    ]
    results = check_results(reports)
    failed = [r for r in reports if not r.passed]
    if failed:
        yield from results
        raise Failure(description=" / ".join(r.message() for r in failed), allow_retries=False)
    keep_only(con, list(schemas))
    storage.promote(con, stage, final)
    return results


def _clean(metadata: dict) -> dict:
    """Refuse to publish metadata that holds anything shaped like a child_token."""
    if _TOKEN.search(repr({k: getattr(v, "value", v) for k, v in metadata.items()})):
        raise Failure(
            description="メタデータに仮名の形の値が含まれるため記録しません", allow_retries=False
        )
    return metadata


def _float(value: float) -> MetadataValue | None:
    return None if value is None or np.isnan(value) else MetadataValue.float(round(float(value), 4))


def _figures(values: dict[str, float]) -> dict:
    return {k: v for k, v in ((k, _float(v)) for k, v in values.items()) if v is not None}


def _md(frame: pd.DataFrame) -> MetadataValue:
    def cell(v: object) -> str:
        if v is None or (isinstance(v, float) and np.isnan(v)):
            return "—"
        if isinstance(v, float):
            return str(int(v)) if v > 1 and v.is_integer() else f"{v:.3f}"  # counts, rates
        return str(v)

    lines = ["| " + " | ".join(frame.columns) + " |", "|" + "---|" * len(frame.columns)]
    lines += [
        "| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)
    ]
    return MetadataValue.md("\n".join(lines))


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
    started = time.perf_counter()
    month = context.partition_key
    with _against_truth(storage, month, EVALUATION_TABLE) as (con, stage, final, truth, status):
        scores = con.execute(
            "SELECT child_token, score, rank, known_to_center, center_known, indicators "
            f"FROM scores.{SCORES_TABLE}"
        ).df()
        k = ev.review_k(len(scores))
        result = None
        if truth is not None:
            result = ev.evaluate(
                scores, _planted(storage, truth), [(i.name, i.label) for i in load_indicators()]
            )
        frames = (
            {}
            if result is None
            else {
                "metrics": result.metrics,
                "recall_by_kind": result.by_kind,
                "calibration": result.calibration,
                "rules": result.rules,
            }
        )
        results = yield from _publish(storage, con, stage, final, ev.EVALUATION_TABLES, frames)
    metadata: dict = {"truth": MetadataValue.text(status), "k": k, "children_scored": len(scores)}
    if result is None:
        context.log.info(f"{month}: {status}")
    else:
        m = result.metrics.set_index("metric")
        metadata |= result.counts | _figures(
            {
                "auc": m.at["auc", "model"],
                "precision_at_k": m.at["precision_at_k", "model"],
                "recall_at_k": m.at["recall_at_k", "model"],
                "baseline_auc": m.at["auc", "baseline"],
                "baseline_precision_at_k": m.at["precision_at_k", "baseline"],
                "baseline_recall_at_k": m.at["recall_at_k", "baseline"],
                "indicators_first_precision_at_k": m.at["precision_at_k", "indicators_first"],
                "indicators_first_recall_at_k": m.at["recall_at_k", "indicators_first"],
                "learned_precision_at_k": m.at["precision_at_k", "learned"],
                "learned_recall_at_k": m.at["recall_at_k", "learned"],
                "brier": result.brier,
                "ece": result.ece,
            }
        )
        metadata["best_rule"] = MetadataValue.text(result.best_rule or "なし")
        metadata["model_vs_baseline"] = _md(
            result.metrics.rename(
                columns={
                    "metric": "指標",
                    "model": "確認リスト",
                    "baseline": f"基準（{result.best_rule}）",
                    "indicators_first": "指標優先",
                    "learned": "学習モデルのみ",
                    "description": "説明",
                }
            )[["説明", "確認リスト", "指標優先", "学習モデルのみ", f"基準（{result.best_rule}）"]]
        )
        metadata["recall_by_kind"] = MetadataValue.json(
            {
                r.label: {
                    "positives": int(r.positives),
                    "model": round(float(r.model_recall), 4),
                    "baseline": round(float(r.baseline_recall), 4),
                }
                for r in result.by_kind.itertuples()
            }
        )
        metadata["rules"] = _md(
            result.rules[
                ["label", "flagged", "selected", "found", "precision_at_k", "recall_at_k", "best"]
            ].rename(
                columns={
                    "label": "指標",
                    "flagged": "該当",
                    "selected": "リスト",
                    "found": "必要あり",
                    "precision_at_k": "適合率",
                    "recall_at_k": "再現率",
                    "best": "最良",
                }
            )
        )
        context.log.info(
            f"{month}: k={k}、スコアの再現率 {m.at['recall_at_k', 'model']:.3f}、"
            f"最良の単独指標（{result.best_rule}）{m.at['recall_at_k', 'baseline']:.3f}"
        )
    metadata["seconds"] = round(time.perf_counter() - started, 1)
    yield MaterializeResult(metadata=_clean(metadata), check_results=results)


def _district_counts(con: duckdb.DuckDBPyConnection, k: int) -> pd.DataFrame:
    """Children, children with an indicator, and new suggestions on the review list per
    district: the committee's district table, aggregates only (small cells are suppressed
    where the report shows them)."""
    return con.execute(f"""
        WITH t AS (SELECT s.indicators, a.district_code,
                          NOT s.center_known AND row_number() OVER (
                              PARTITION BY s.center_known ORDER BY s.rank) <= {k} AS listed
                   FROM scores.{SCORES_TABLE} s LEFT JOIN audit_attributes a USING (child_token))
        SELECT coalesce(district_code, '不明') AS district_code, count(*) AS children,
               count(*) FILTER (len(indicators) > 0) AS flagged, count(*) FILTER (listed) AS listed
        FROM t GROUP BY 1 ORDER BY 1""").df()


def _verified_by_group(
    storage: KodomoStorage,
    con: duckdb.DuckDBPyConnection,
    month: str,
    unknown: pd.DataFrame,
    k: int,
) -> pd.DataFrame:
    """Selection rate and PPV by group from the center's verified outcomes (pseudonyms)."""
    attach_verified(storage, con, month)
    outcomes = dict(
        con.execute(
            "SELECT child_token, bool_or(result = '該当') FROM verified "
            "WHERE result IN ('該当', '非該当') GROUP BY 1"
        ).fetchall()
    )
    tokens = unknown["child_token"].to_numpy()
    listed = ev.first_k(unknown["rank"].to_numpy(), k)
    checked = np.array([t in outcomes for t in tokens])
    confirmed = np.array([bool(outcomes.get(t)) for t in tokens])
    return ev.verified_by_group(ev.attribute_groups(unknown), listed, checked, confirmed)


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
    started = time.perf_counter()
    month = context.partition_key
    with _against_truth(storage, month, FAIRNESS_TABLE) as (con, stage, final, truth, status):
        storage.attach(con, "linked", storage.zone_store("analysis", month, LINKED_TABLE))
        # district and foreign residence never sit in the analysis table: computed here from
        # the register, in this step only, and published as group aggregates
        audited = audit_attributes(storage, con, month, approval_for(storage, month))
        present = {r[0] for r in con.execute(f"DESCRIBE linked.{LINKED_TABLE}").fetchall()}
        cols = "".join(f", l.{c}" for c in AUDIT_COLUMNS if c in present and c not in audited)
        cols += "".join(
            f", a.{c}" for c in AUDIT_COLUMNS if c in audited
        )  # unapproved: not audited
        frame = con.execute(
            f"SELECT s.child_token, s.score, s.rank, s.center_known{cols} FROM scores.{SCORES_TABLE} s "
            f"LEFT JOIN linked.{LINKED_TABLE} l USING (child_token) "
            "LEFT JOIN audit_attributes a USING (child_token)"
        ).df()
        k = ev.review_k(len(frame))
        unknown = frame[~frame["center_known"].astype(bool)].reset_index(drop=True)
        by_group = gaps = None
        if truth is not None:
            planted = _planted(storage, truth)
            listed = ev.first_k(unknown["rank"].to_numpy(), k)
            need = unknown["child_token"].isin(planted["child_token"]).to_numpy()
            by_group, gaps = ev.audit(ev.attribute_groups(unknown), need, listed)
        frames = {} if gaps is None else {"by_group": by_group, "gaps": gaps}
        frames["district_counts"] = _district_counts(con, k) if "district_code" in audited else None
        frames["verified_by_group"] = _verified_by_group(storage, con, month, unknown, k)
        results = yield from _publish(storage, con, stage, final, ev.FAIRNESS_TABLES, frames)
    metadata: dict = {"truth": MetadataValue.text(status), "k": k, "unknown_children": len(unknown)}
    if gaps is None:
        context.log.info(f"{month}: {status}")
    else:
        assert by_group is not None  # the audit gives both
        for r in gaps.itertuples():
            if r.disclosable is True:  # a gap from small counts would give a count back
                metadata |= _figures(
                    {
                        f"equalized_odds_gap_{r.attribute}": r.equalized_odds_gap,
                        f"tpr_gap_{r.attribute}": r.tpr_gap,
                        f"fpr_gap_{r.attribute}": r.fpr_gap,
                    }
                )
        metadata["explanations"] = MetadataValue.md(
            "\n".join(f"- {t}" for t in gaps["explanation"])
        )
        metadata["groups_suppressed"] = int(by_group["suppressed"].sum())
        shown = pd.DataFrame(ev.suppressed_view(by_group))
        for col in ("selection_rate_ci", "tpr_ci", "fpr_ci"):
            shown[col] = [None if ci is None else f"{ci[0]:.3f}–{ci[1]:.3f}" for ci in shown[col]]
        metadata["by_group"] = _md(
            shown.rename(
                columns={
                    "attribute": "属性",
                    "group": "群",
                    "n": "人数",
                    "positives": "必要あり",
                    "selected": "リスト",
                    "selection_rate": "選ばれる率",
                    "selection_rate_ci": "95%区間",
                    "tpr": "TPR",
                    "tpr_ci": "TPRの95%区間",
                    "fpr": "FPR",
                    "fpr_ci": "FPRの95%区間",
                }
            )
        )
        for r in gaps.itertuples():
            context.log.info(r.explanation)
    metadata["seconds"] = round(time.perf_counter() - started, 1)
    yield MaterializeResult(metadata=_clean(metadata), check_results=results)

"""必要最小限の確認: what each approved item is worth to the score (analysis zone). Thin
wiring: the month's linked table and indicators read as analysis/risk_scores reads them, the
refits in lib/scoring/item_worth.py, one aggregate table through the zone gate. Its own job
(item_worth_review), never the monthly refresh: it refits the model once per item."""

import re
import time
from pathlib import Path

import duckdb
import pandas as pd
from dagster import (
    AssetExecutionContext,
    AssetKey,
    Config,
    Failure,
    MaterializeResult,
    MetadataValue,
)

from kodomo_assets.defs.analysis.assets import KEY as LINKED_KEY
from kodomo_assets.defs.approval import approval_for
from kodomo_assets.defs.center.assets import FEEDBACK_KEY
from kodomo_assets.defs.lineage import materialized_by
from kodomo_assets.defs.scoring.assets import REGISTRY_FILES, SEED, month_input
from kodomo_assets.defs.zone import publish_gated, zone_asset
from kodomo_assets.lib.center.feedback import STORE as FEEDBACK_STORE
from kodomo_assets.lib.partitions import months_before
from kodomo_assets.lib.paths import content_version
from kodomo_assets.lib.platform.storage import KodomoStorage
from kodomo_assets.lib.policy.gate import inspect_table
from kodomo_assets.lib.policy.pseudonym import TOKEN_PATTERN
from kodomo_assets.lib.scoring import item_worth as iw
from kodomo_assets.lib.scoring import model as scoring
from kodomo_assets.lib.scoring.linked_table import load_spec, plan

KEY = AssetKey(["analysis", "item_worth"])
TABLE = "item_worth"
CODE_VERSION = content_version("1", *REGISTRY_FILES, Path(iw.__file__), Path(scoring.__file__))
VERIFIED_MONTHS = 12  # outcomes returned within a year (one approval period, one pseudonym key)


class ItemWorthConfig(Config):
    folds: int = iw.FOLDS  # fewer: a quicker, noisier look


def _verified(storage: KodomoStorage, con: duckdb.DuckDBPyConnection, month: str) -> pd.DataFrame:
    """Results and indicator labels of the outcomes the center returned over the year (the
    latest delivery per child and list month); the pseudonyms stay in SQL."""
    parts = []
    for n, m in enumerate([month, *months_before(month, VERIFIED_MONTHS - 1)]):
        path = storage.zone_store("analysis", m, FEEDBACK_STORE)
        if path.exists():
            storage.attach(con, f"fb{n}", path)
            parts.append(
                f"SELECT {n} AS age, child_token, list_month, result, indicators FROM fb{n}.verification"
            )
    if not parts:
        return pd.DataFrame({"result": [], "indicators": []})
    return con.execute(
        f"SELECT result, indicators FROM ({' UNION ALL '.join(parts)}) QUALIFY "
        "row_number() OVER (PARTITION BY child_token, list_month ORDER BY age) = 1"
    ).df()


@zone_asset(
    KEY,
    zone="analysis",
    sensitive=False,
    kinds={"duckdb", "scikitlearn"},
    code_version=CODE_VERSION,
    deps=[LINKED_KEY, FEEDBACK_KEY],
    description=(
        "項目の必要性（必要最小限の確認。分析領域、集計のみ）: 別紙の承認項目ごとと部署のデータセットごとに、"
        "その項目を読む連携テーブルの列（と、それらの列を読む指標）を除いてモデルを学習し直し、"
        "5分割交差検証の AUC と上位 k 人（全児童の2%）の適合率を、全項目のモデルと比べる（同じ学習標本・"
        f"分割・設定・乱数の種）。AUC の低下が {iw.AUC_THRESHOLD} 未満かつ適合率の低下が "
        f"{iw.PRECISION_THRESHOLD} 未満の項目を「{iw.DROP}」、どちらかの低下が基準と、情報のない乱数の列を"
        f"加えたときの変化（対照、{iw.NOISE_DRAWS} 回）をともに超える項目を「{iw.NEEDED}」、その間を"
        f"「{iw.UNSURE}」とし、承認されているがどの列も読まない項目、連携・照合のみの項目を別に示す。"
        "センターの確認結果が "
        f"{iw.MIN_OUTCOMES} 件以上あれば、その項目を読む指標で挙がった児童の陽性的中率も付ける。"
        "項目ごとに学習し直すため月次更新には含めず、ジョブ item_worth_review で四半期ごと、または"
        "委員会の求めに応じて実行する。"
    ),
)
def item_worth(context: AssetExecutionContext, config: ItemWorthConfig, storage: KodomoStorage):
    started = time.perf_counter()
    month = context.partition_key
    approval = approval_for(storage, month)
    p = plan(load_spec(), approval)
    if not {"consultations_total", "council_registered"} <= set(p.columns):
        raise Failure(
            description="学習の正解（センターの相談記録）が承認されていません", allow_retries=False
        )
    final = storage.zone_store("analysis", month, TABLE)
    with storage.staged(final) as (con, stage):
        m = month_input(storage, con, p, month)  # as risk_scores starts
        inputs = iw.Inputs(
            frame=m.frame,
            features=scoring.model_features(p),
            indicators=tuple(m.indicators),
            asof=m.asof,
            asof_sql=m.asof_sql,
            y=m.y,
            plan=p,
            approval=approval,
            shown=m.shown,
        )
        verified = _verified(storage, con, month)
        table = iw.item_worth(inputs, SEED, verified, config.folds)
        ddl = ", ".join(f"{c} {t}" for c, t in iw.SCHEMA.items())
        con.execute(f"CREATE TABLE {TABLE} ({ddl})")
        con.register("worth", table)
        con.execute(f"INSERT INTO {TABLE} SELECT * FROM worth")
        con.unregister("worth")
        report = inspect_table(con, TABLE, approved=list(iw.SCHEMA))
        results = yield from publish_gated(storage, con, stage, final, report, [TABLE])
    full, floor = table.iloc[0], iw.noise_floor(table)
    metadata: dict = {
        "dagster/row_count": len(table),
        "verdicts": MetadataValue.json(iw.summary(table)),
        "auc_threshold": MetadataValue.float(iw.AUC_THRESHOLD),
        "precision_threshold": MetadataValue.float(iw.PRECISION_THRESHOLD),
        "noise_floor": MetadataValue.json(
            {"auc": round(floor[0], 4), "precision_at_k": round(floor[1], 4)}
        ),
        "folds": config.folds,
        "seed": SEED,
        "full_auc": MetadataValue.float(round(float(full["auc"]), 4)),
        "full_precision_at_k": MetadataValue.float(round(float(full["precision_at_k"]), 4)),
        "verified_outcomes": int(full["verified_outcomes"]),
        "drop_candidates": MetadataValue.json(iw.listed(table, iw.DROP)),
        "unread": MetadataValue.json(iw.listed(table, iw.UNREAD)),
        "hurts_most": MetadataValue.md(iw.hurts_most(table)),
        "seconds": round(time.perf_counter() - started, 1),
        "materialized_by": materialized_by(),
    }
    if re.search(TOKEN_PATTERN, repr({k: getattr(v, "value", v) for k, v in metadata.items()})):
        raise Failure(
            description="メタデータに仮名の形の値が含まれるため記録しません", allow_retries=False
        )
    context.log.info(f"{month}: {iw.summary(table)}、{metadata['seconds']} 秒")
    yield MaterializeResult(metadata=metadata, check_results=results)

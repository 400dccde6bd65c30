"""The code location: every asset of the monthly refresh, its schedule and sensor, the
retention purge, and the item-worth review (its own job: it refits the model per item)."""

from dagster import AssetSelection, Definitions, define_asset_job, in_process_executor

from kodomo_assets.defs.analysis import linked_children
from kodomo_assets.defs.center import review_list, verification_feedback
from kodomo_assets.defs.committee import committee_report
from kodomo_assets.defs.evaluation import evaluation, fairness_audit
from kodomo_assets.defs.linkage import pupil_links
from kodomo_assets.defs.operations import (
    arrival_sensor_for,
    monthly_schedule_for,
    purge_job_for,
)
from kodomo_assets.defs.resources import resources
from kodomo_assets.defs.scoring import risk_scores
from kodomo_assets.defs.scoring.item_worth import item_worth
from kodomo_assets.defs.sources import inbox_receipt, source_assets

# the monthly refresh's assets; item_worth refits the model once per item, so it is left out
# (imported from its module: defs.scoring cannot export it, it imports defs.center)
ASSETS = [
    inbox_receipt,
    *source_assets,
    pupil_links,
    linked_children,
    risk_scores,
    review_list,
    verification_feedback,
    evaluation,
    fairness_audit,
    committee_report,
]

monthly_refresh = define_asset_job(
    "monthly_refresh",
    selection=AssetSelection.all() - AssetSelection.assets(item_worth),
    description="月次更新: 全部署の受信ファイルを取り込み、以降の全資産を更新する（項目の必要性の確認は除く）。",
)

item_worth_review = define_asset_job(
    "item_worth_review",
    selection=AssetSelection.assets(item_worth),
    description="必要最小限の確認。四半期ごと、または委員会の求めに応じて実行（承認項目ごとにモデルを学習し直す）。",
)

# In-process: steps share one process, so no two processes ever write one DuckDB file.
defs = Definitions(
    assets=[*ASSETS, item_worth],
    jobs=[
        monthly_refresh,
        item_worth_review,
        purge_job_for([k for a in [*ASSETS, item_worth] for k in a.keys]),
    ],
    schedules=[monthly_schedule_for(monthly_refresh)],
    sensors=[arrival_sensor_for(monthly_refresh)],
    resources=resources,
    executor=in_process_executor,
)

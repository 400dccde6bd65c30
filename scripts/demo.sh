#!/usr/bin/env bash
# Fresh machine -> demo data -> the full monthly refresh of every asset for one month.
# Usage: scripts/demo.sh [MONTH] [RESIDENTS]   (defaults: 2022-10, 113000 = 昭島市)
set -euo pipefail
cd "$(dirname "$0")/.."
month="${1:-2022-10}"
residents="${2:-113000}"
bash scripts/setup.sh
export DAGSTER_HOME="$PWD/dagster_home"                  # telemetry off (dagster.yaml)
export KODOMO_INBOX="${KODOMO_INBOX:-$PWD/.kodomo_inbox}"
export KODOMO_HOME="${KODOMO_HOME:-$PWD/.kodomo_home}"
export KODOMO_DEMO="${KODOMO_DEMO:-1}"                   # creates a demo pseudonym key (0600)
if [ ! -d "$KODOMO_INBOX/$month" ]; then
  .venv/bin/kodomo demo-data --out "$KODOMO_INBOX" --residents "$residents" --months "2022-04..$month" --seed 42
fi
# the main job; `dagster asset materialize -m kodomo_assets --select '*' --partition "$month"`
# does the same
.venv/bin/dagster job execute -m kodomo_assets -j monthly_refresh --tags "{\"dagster/partition\": \"$month\"}"
echo
echo "月次更新 $month 完了。出力:"
echo "  部署別ストア (DuckDB): $KODOMO_HOME/stores/<部署>/$month.duckdb"
echo "  連携領域:             $KODOMO_HOME/zones/linkage/$month/pupil_links.duckdb"
echo "  分析領域 (連携テーブル): $KODOMO_HOME/zones/analysis/$month/linked_children.duckdb"
echo "  委員会報告書:         $KODOMO_HOME/reports/$month/committee_report.html"
echo "  確認リスト (センター):  $KODOMO_HOME/zones/center/$month/review_list.duckdb（書き出し: .venv/bin/kodomo review-list --month $month --out list.xlsx --purpose ...）"
echo "  受信データ (デモ):     $KODOMO_INBOX/$month/   正解データ: $KODOMO_INBOX/_truth/"
echo "  実行履歴 (Dagster):    $DAGSTER_HOME  (UI: DAGSTER_HOME=$DAGSTER_HOME .venv/bin/dagster dev)"

#!/usr/bin/env bash
# Fresh machine -> demo keys and data -> the monthly refresh of every month from 2022-04 to
# MONTH, in order, with the (demo) center's verification results between months.
# Usage: scripts/demo.sh [MONTH] [RESIDENTS]   (defaults: 2022-10, 113000 = 昭島市)
set -euo pipefail
cd "$(dirname "$0")/.."
month="${1:-2022-10}"
first="2022-04"
residents="${2:-113000}"
bash scripts/setup.sh
export DAGSTER_HOME="$PWD/dagster_home"                  # telemetry off (dagster.yaml)
export KODOMO_INBOX="${KODOMO_INBOX:-$PWD/.kodomo_inbox}"
export KODOMO_HOME="${KODOMO_HOME:-$PWD/.kodomo_home}"
# Demo keys (storage, pseudonym, the center's two key pairs), created once with a warning,
# outside KODOMO_HOME. The pipeline's variables go to .kodomo_demo.env (for `dagster dev`);
# the center's private key folder is never among them.
keys="${KODOMO_DEMO_KEYS:-${XDG_CONFIG_HOME:-$HOME/.config}/kodomo_assets/demo}"
.venv/bin/kodomo demo-keys --out "$keys" > .kodomo_demo.env
printf 'KODOMO_INBOX=%s\nKODOMO_HOME=%s\n' "$KODOMO_INBOX" "$KODOMO_HOME" >> .kodomo_demo.env
# The demo never moves the date: it runs under its own approval list, every row of which
# says デモ用・架空の承認, whose period and 保存期間 cover the demo's months and today.
printf 'KODOMO_POLICY=%s\nKODOMO_MODE=demo\n' "$PWD/data/policy/demo_approval.csv" >> .kodomo_demo.env
set -a; . ./.kodomo_demo.env; set +a
# an ingested export leaves the inbox for its sealed archive: regenerate only when neither is there
if [ ! -f "$KODOMO_INBOX/$month/jumin.csv" ] && [ ! -f "$KODOMO_HOME/stores/shimin/raw/$month/jumin.csv.sealed" ]; then
  rm -rf "$KODOMO_INBOX"
  .venv/bin/kodomo demo-data --out "$KODOMO_INBOX" --residents "$residents" --months "$first..$month" --seed 42
fi
# Month by month, in order, as in use: the monthly refresh of the month, then the center checks
# the top of that month's list and returns signed results (the demo's center answers from the
# demo truth, through the same commands the center's staff run), which the next month's run
# takes (center/verification_feedback) before its list. `dagster asset materialize -m
# kodomo_assets --select '*' --partition "$m"` does the same as the job; README: the same
# months as one backfill from the UI.
months="$(.venv/bin/python -c "from kodomo_assets.demo import month_range; print(' '.join(month_range('$first..$month')))")"
for m in $months; do
  echo "== 基準月 $m"
  .venv/bin/dagster job execute -m kodomo_assets -j monthly_refresh --tags "{\"dagster/partition\": \"$m\"}"
  KODOMO_CENTER_KEY_DIR="$keys/center" .venv/bin/kodomo demo-center --month "$m"
done
# What each approved item is worth (its own job: it refits the score per item), then the last
# month's report again so that its section 4 has the review.
.venv/bin/dagster job execute -m kodomo_assets -j item_worth_review --tags "{\"dagster/partition\": \"$month\"}"
.venv/bin/dagster asset materialize -m kodomo_assets --select committee/report --partition "$month"
echo
echo "月次更新 $month 完了。出力（いずれも暗号化。権限 0600／フォルダ 0700）:"
echo "  部署別ストア (DuckDB): $KODOMO_HOME/stores/<部署>/$month.duckdb（受信ファイルは stores/<部署>/raw/$month/ に暗号化保管）"
echo "  連携領域:             $KODOMO_HOME/zones/linkage/$month/pupil_links.duckdb"
echo "  分析領域 (連携テーブル): $KODOMO_HOME/zones/analysis/$month/linked_children.duckdb"
echo "  委員会報告書:         $KODOMO_HOME/reports/$month/committee_report.html"
echo "  確認リスト (センター):  $KODOMO_HOME/zones/center/$month/review_list.duckdb（センターの公開鍵宛てに暗号化）"
echo "    書き出し（センターの秘密鍵が必要）: KODOMO_HOME=$KODOMO_HOME KODOMO_CENTER_KEY_DIR=$keys/center .venv/bin/kodomo review-list --month $month --out list.xlsx --purpose 個別確認"
echo "  鍵 (デモ用):          $keys  （KODOMO_HOME の外）"
echo "  正解データ (デモ):     $KODOMO_INBOX/_truth/"
echo "  実行履歴 (Dagster):    $DAGSTER_HOME  (UI: set -a; . ./.kodomo_demo.env; set +a; DAGSTER_HOME=$DAGSTER_HOME .venv/bin/dagster dev)"

#!/usr/bin/env bash
# Fresh machine -> demo keys and data -> the full monthly refresh of every asset for one month.
# Usage: scripts/demo.sh [MONTH] [RESIDENTS]   (defaults: 2022-10, 113000 = 昭島市)
set -euo pipefail
cd "$(dirname "$0")/.."
month="${1:-2022-10}"
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
set -a; . ./.kodomo_demo.env; set +a
# an ingested export leaves the inbox for its sealed archive: regenerate only when neither is there
if [ ! -f "$KODOMO_INBOX/$month/jumin.csv" ] && [ ! -f "$KODOMO_HOME/stores/shimin/raw/$month/jumin.csv.sealed" ]; then
  rm -rf "$KODOMO_INBOX"
  .venv/bin/kodomo demo-data --out "$KODOMO_INBOX" --residents "$residents" --months "2022-04..$month" --seed 42
fi
# the main job; `dagster asset materialize -m kodomo_assets --select '*' --partition "$month"`
# does the same
.venv/bin/dagster job execute -m kodomo_assets -j monthly_refresh --tags "{\"dagster/partition\": \"$month\"}"
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

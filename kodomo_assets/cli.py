"""The `kodomo` command. Subcommands register themselves in `_parser`; each imports its
own (possibly heavy) modules lazily, so `kodomo --help` stays fast."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def _demo_data(args: argparse.Namespace) -> int:
    from kodomo_assets.demo import generate, month_range

    started = time.perf_counter()
    counts = generate(Path(args.out), residents=args.residents, months=month_range(args.months),
                      seed=args.seed)
    rows = sum(c["rows_written"] for month in counts.values() for c in month.values())
    print(json.dumps({"out": str(args.out), "months": list(counts), "rows_written": rows,
                      "seconds": round(time.perf_counter() - started, 1)}, ensure_ascii=False))
    return 0


def _review_list(args: argparse.Namespace) -> int:
    from kodomo_assets.lib.export import ExportError, export_review_list

    try:
        result = export_review_list(args.month, Path(args.out), args.purpose)
    except ExportError as err:
        print(f"エラー: {err}", file=sys.stderr)
        return err.exit_code
    print(result.notice, file=sys.stderr)
    # one line, counts and file only: never a row of the list
    print(f"確認リスト {result.month}: {result.rows} 行を {result.path} に書き出しました"
          f"（{result.format}、アクセス記録に追記済み）")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kodomo", description="子ども・家庭データ連携基盤のツール")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo-data", help="合成の月次エクスポート (11 ファイル/月) と正解データを書き出す")
    demo.add_argument("--out", required=True, help="出力先フォルダ (月別フォルダと _truth/ を作る)")
    demo.add_argument("--residents", type=int, default=113_000, help="住民数 (既定: 昭島市規模 113000)")
    demo.add_argument("--months", default="2022-04..2022-10", help="基準月の範囲 YYYY-MM..YYYY-MM")
    demo.add_argument("--seed", type=int, default=42)
    demo.set_defaults(func=_demo_data)
    review = sub.add_parser(
        "review-list", help="確認リスト（センター領域）を CSV / Excel に書き出す（センター鍵が必要、記録が残る）")
    review.add_argument("--month", required=True, help="基準月 YYYY-MM")
    review.add_argument("--out", required=True, help="出力ファイル (.csv は BOM 付き UTF-8、.xlsx は Excel)")
    review.add_argument("--purpose", required=True, help="利用目的（アクセス記録に残る。空欄不可）")
    review.set_defaults(func=_review_list)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())

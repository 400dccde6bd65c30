"""The `kodomo` command. Subcommands register themselves in `_parser`; each imports its
own (possibly heavy) modules lazily, so `kodomo --help` stays fast.

This is the one place outside Dagster that reads settings from the environment: the same
variables the code location's resources are configured with (README, 鍵と口座).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

CENTER_KEY_DIR = "KODOMO_CENTER_KEY_DIR"


def _refuse(err: Exception, code: int = 2) -> int:
    """A refused command: one line on stderr (the messages never quote a row), and its code."""
    print(f"エラー: {err}", file=sys.stderr)
    return getattr(err, "exit_code", code)


def _refusable(handler: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """A command whose refusals (ExportError, raised anywhere below it) end as one line on
    stderr and their exit code. lib.center.export is imported when the command runs, not at --help."""

    @functools.wraps(handler)
    def run(args: argparse.Namespace) -> int:
        from kodomo_assets.lib.center.export import ExportError

        try:
            return handler(args)
        except ExportError as err:
            return _refuse(err)

    return run


def _env(name: str) -> str:
    value = os.environ.get(name, "")
    if not value:
        raise SystemExit(f"エラー: 環境変数 {name} を設定してください")
    return value


def _storage(storage_key: bool = False):
    """The storage resource from the same variables as the code location's: only the home
    and inbox for the center's commands, the storage key too for the steward's."""
    from kodomo_assets.lib.platform.storage import KodomoStorage, restrict_umask

    restrict_umask()
    return KodomoStorage(
        home=_env("KODOMO_HOME"),
        inbox=os.environ.get("KODOMO_INBOX", ""),
        storage_key_file=_env("KODOMO_STORAGE_KEY_FILE") if storage_key else "",
        pseudonym_key_file="",
        center_public_key_file="",
        approval_file=os.environ.get("KODOMO_POLICY", ""),
        mode=os.environ.get("KODOMO_MODE", "production"),
    )


def _center_private(storage):
    from kodomo_assets.lib.center.export import ExportError
    from kodomo_assets.lib.platform.keys import KeyProblem, read_center_private

    try:
        return read_center_private(Path(_env(CENTER_KEY_DIR)), storage.home_path)
    except KeyProblem as err:
        raise ExportError(f"センターの秘密鍵を読めません: {err}", exit_code=2) from None


def _demo_data(args: argparse.Namespace) -> int:
    from kodomo_assets.demo import generate, month_range

    started = time.perf_counter()
    counts = generate(
        Path(args.out),
        residents=args.residents,
        months=month_range(args.months),
        seed=args.seed,
        known_share=args.known_share,
    )
    rows = sum(c["rows_written"] for month in counts.values() for c in month.values())
    print(
        json.dumps(
            {
                "out": str(args.out),
                "months": list(counts),
                "rows_written": rows,
                "seconds": round(time.perf_counter() - started, 1),
            },
            ensure_ascii=False,
        )
    )
    return 0


def _demo_keys(args: argparse.Namespace) -> int:
    from kodomo_assets.lib.platform.keys import center_keygen, create_secret

    folder = Path(args.out).resolve()
    os.umask(0o077)
    made = [name for name in ("storage.key", "pseudonym.key") if create_secret(folder / name)]
    center = folder / "center"
    if not (center / "center_public.json").exists():
        center_keygen(center, passphrase=None)
        made.append("center/")
    if made:
        print(
            f"警告: デモ用の鍵を作成しました: {folder}（{', '.join(made)}。権限 0600、センターの秘密鍵は"
            "パスフレーズなし）。本番では鍵を管理者が用意し、センターの秘密鍵はセンターだけが"
            "持ちます（README「鍵と口座」）。",
            file=sys.stderr,
        )
    # the pipeline's environment, then the center's (which the pipeline never gets)
    print(f"KODOMO_STORAGE_KEY_FILE={folder / 'storage.key'}")
    print(f"KODOMO_KEY_FILE={folder / 'pseudonym.key'}")
    print(f"KODOMO_CENTER_PUBLIC_KEY_FILE={center / 'center_public.json'}")
    if args.center:
        print(f"{CENTER_KEY_DIR}={center}")
    return 0


def _center_keygen(args: argparse.Namespace) -> int:
    from kodomo_assets.lib.platform.keys import PASSPHRASE_ENV, KeyProblem, center_keygen

    os.umask(0o077)
    passphrase = os.environ.get(PASSPHRASE_ENV)
    if not passphrase and not args.no_passphrase:
        import getpass

        passphrase = getpass.getpass("センター秘密鍵のパスフレーズ: ")
        if passphrase != getpass.getpass("もう一度: "):
            print("エラー: パスフレーズが一致しません", file=sys.stderr)
            return 2
    try:
        files = center_keygen(
            Path(args.out), passphrase or None, Path(args.previous) if args.previous else None
        )
    except KeyProblem as err:
        return _refuse(err)
    print(
        f"センターの鍵を作成しました: 秘密鍵（センターのみ） {files['center_encryption.pem']}、"
        f"{files['center_signing.pem']}／公開鍵（パイプラインへ渡す） {files['center_public.json']}"
    )
    return 0


def _inspect_inbox(args: argparse.Namespace) -> int:
    """The steward's terminal only: the names behind the tags in the run's metadata. Nothing
    of this goes into Dagster."""
    from kodomo_assets.defs.sources.inbox import inspect_inbox
    from kodomo_assets.lib.ingest.decode import SourceFileError, read_header
    from kodomo_assets.lib.policy.statutory import is_denied_header, is_tax_like
    from kodomo_assets.lib.registry import load_registry

    _env("KODOMO_INBOX")
    storage = _storage(storage_key=True)
    found = inspect_inbox(storage, args.month)
    by_file = {ds.file: ds for ds in load_registry().datasets.values()}
    status = {
        **dict.fromkeys(found["received"], "受信"),
        **dict.fromkeys(found["ignored"], "契約外（読まない）"),
        **dict.fromkeys(found["refused_tax"], "地方税情報（拒否）"),
    }
    for name, what in sorted(status.items()):
        print(f"{storage.name_tag(name)}  {what:<12} {name}")
        ds = by_file.get(name)
        if ds is None:
            continue
        known = {c.header for c in ds.columns}
        try:
            headers = read_header(storage.inbox_path / args.month / name).headers
        except SourceFileError as err:
            print(f"          読めません: {err}")
            continue
        for i, header in enumerate(headers):
            if header not in known:
                kind = (
                    "地方税情報"
                    if is_tax_like(header)
                    else "禁止"
                    if is_denied_header(header)
                    else "契約外"
                )
                print(f"          {i + 1}列目 識別 {storage.name_tag(header)} {kind}: {header}")
    for name in found["missing"]:
        print(f"{'':8}  未着         {name}")
    return 0


def _rotate_storage_key(args: argparse.Namespace) -> int:
    """The pipeline's account, with no run in progress: re-wrap every data key."""
    from kodomo_assets.lib.platform.keys import KeyProblem, read_secret

    storage = _storage(storage_key=True)
    try:
        new = read_secret(Path(args.new_key_file), "新しい保存用の鍵", storage.home_path)
        count = storage.keytable.rewrap(new)
    except KeyProblem as err:
        return _refuse(err)
    print(
        f"データ鍵 {count} 個を新しい保存用の鍵で包み直しました。KODOMO_STORAGE_KEY_FILE を "
        f"{args.new_key_file} に切り替え、古い鍵を破棄してください。"
    )
    return 0


@_refusable
def _review_list(args: argparse.Namespace) -> int:
    from kodomo_assets.lib.center.export import export_review_list

    storage = _storage()
    result = export_review_list(
        storage, _center_private(storage), args.month, Path(args.out), args.purpose
    )
    print(result.notice, file=sys.stderr)
    # one line, counts and file only: never a row of the list
    print(
        f"確認リスト {result.month}: {result.rows} 行を {result.path} に書き出しました"
        f"（{result.format}、アクセス記録に追記済み）"
    )
    return 0


@_refusable
def _feedback_import(args: argparse.Namespace) -> int:
    from kodomo_assets.lib.center.export import import_feedback

    storage = _storage()
    _env("KODOMO_INBOX")
    result = import_feedback(storage, _center_private(storage), args.month, Path(args.file))
    for where, reason in result.refused:  # the center's own terminal: places and reasons only
        place = f"{where}行目" if isinstance(where, int) else where
        print(f"{args.file} {place}: {reason}（取り込みませんでした）", file=sys.stderr)
    print(
        f"確認結果 {result.month}: {result.rows} 件に署名して {result.path} に置きました"
        f"（除外 {len(result.refused)} 件、アクセス記録に追記済み）"
    )
    return 0


@_refusable
def _link_review(args: argparse.Namespace) -> int:
    """The designated steward, as the pipeline's account: the pairs to decide, or every link."""
    from kodomo_assets.lib.linkage.review import export_review

    result = export_review(
        _storage(storage_key=True), args.month, Path(args.out), args.purpose, every_link=args.all
    )
    what = "連携の全件" if args.all else "照合の確認対象"
    print(
        f"{what} {result.month}: {result.rows} 行を {result.path} に書き出しました（照合の記録に追記済み）。"
        "使い終えたら削除してください。"
    )
    return 0


@_refusable
def _link_decisions(args: argparse.Namespace) -> int:
    from kodomo_assets.lib.linkage.review import record_decisions

    result = record_decisions(_storage(storage_key=True), args.month, Path(args.file))
    print(
        f"照合の判断 {result.month}: 同一 {result.same} 件・別人 {result.different} 件を記録しました"
        f"（置き換えた以前の判断 {result.superseded} 件、照合の記録に追記済み）。翌月以降の連携に適用されます。"
    )
    return 0


@_refusable
def _demo_center(args: argparse.Namespace) -> int:
    from kodomo_assets.demo.center import check_list

    storage = _storage()
    truth = Path(_env("KODOMO_INBOX")) / "_truth"
    result = check_list(storage, _center_private(storage), args.month, truth, share=args.share)
    print(
        f"デモのセンター: 確認リスト {result.month} の {result.rows} 人の確認結果（正解データから）に署名して"
        f" {result.path} に置きました"
    )
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kodomo", description="子ども・家庭データ連携基盤のツール"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo-data", help="合成の月次エクスポート (11 ファイル/月) と正解データを書き出す"
    )
    demo.add_argument("--out", required=True, help="出力先フォルダ (月別フォルダと _truth/ を作る)")
    demo.add_argument(
        "--residents", type=int, default=113_000, help="住民数 (既定: 昭島市規模 113000)"
    )
    demo.add_argument("--months", default="2022-04..2022-10", help="基準月の範囲 YYYY-MM..YYYY-MM")
    demo.add_argument("--seed", type=int, default=42)
    demo.add_argument(
        "--known-share",
        type=float,
        default=None,
        help="センターの記録（相談・要対協）がある児童の割合 (例 0.05。既定: 統計に合わせた約 1.4%%)",
    )
    demo.set_defaults(func=_demo_data)
    keys = sub.add_parser(
        "demo-keys", help="デモ用の鍵一式を作り（既存は再利用）、環境変数の行を出力する"
    )
    keys.add_argument("--out", required=True, help="鍵の置き場所（KODOMO_HOME の外）")
    keys.add_argument(
        "--center", action="store_true", help=f"センターの秘密鍵の場所 {CENTER_KEY_DIR} も出力する"
    )
    keys.set_defaults(func=_demo_keys)
    keygen = sub.add_parser(
        "center-keygen", help="センターの鍵ペア（暗号化 X25519・署名 Ed25519）を作る"
    )
    keygen.add_argument(
        "--out", required=True, help="秘密鍵と公開鍵を書き出すフォルダ（センターのみが読める場所）"
    )
    keygen.add_argument(
        "--no-passphrase", action="store_true", help="秘密鍵をパスフレーズなしで保存する（試験用）"
    )
    keygen.add_argument(
        "--previous", help="置き換える鍵ペアの center_public.json（以前の署名を検証できるよう残す）"
    )
    keygen.set_defaults(func=_center_keygen)
    inspect = sub.add_parser(
        "inspect-inbox",
        help="受信箱の基準月フォルダのファイル名と見出しを、識別（メタデータのタグ）と並べて端末に表示する",
    )
    inspect.add_argument("--month", required=True, help="基準月 YYYY-MM")
    inspect.set_defaults(func=_inspect_inbox)
    rotate = sub.add_parser(
        "rotate-storage-key", help="保存用の鍵を替える（全データ鍵を新しい鍵で包み直す）"
    )
    rotate.add_argument(
        "--new-key-file", required=True, help="新しい鍵のファイル（0600、KODOMO_HOME の外）"
    )
    rotate.set_defaults(func=_rotate_storage_key)
    review = sub.add_parser(
        "review-list",
        help="確認リスト（センター領域）を CSV / Excel に書き出す（センターの秘密鍵が必要、記録が残る）",
    )
    review.add_argument("--month", required=True, help="基準月 YYYY-MM")
    review.add_argument(
        "--out", required=True, help="出力ファイル (.csv は BOM 付き UTF-8、.xlsx は Excel)"
    )
    review.add_argument(
        "--purpose",
        required=True,
        help="利用目的コード（data/policy/purposes.csv、例: 個別確認。アクセス記録に残る）",
    )
    review.set_defaults(func=_review_list)
    imp = sub.add_parser(
        "feedback-import",
        help="確認結果（書き出した確認リストの Excel に記入したもの、または 宛名番号,基準月,確認結果 の CSV）を"
        "仮名に置き換え、署名して受信箱に置く",
    )
    imp.add_argument("--month", required=True, help="提出する基準月 YYYY-MM（受信箱のフォルダ）")
    imp.add_argument(
        "--file", required=True, help="確認結果を記入した .xlsx、または CSV (CP932 または UTF-8)"
    )
    imp.set_defaults(func=_feedback_import)
    link = sub.add_parser(
        "link-review",
        help="照合の確認対象（不確実な組と項目ごとの一致度。値は出さない）を CSV に書き出す"
        "（--all は連携の全件。保存用の鍵が必要、記録が残る）",
    )
    link.add_argument("--month", required=True, help="基準月 YYYY-MM")
    link.add_argument("--out", required=True, help="出力ファイル (.csv、BOM 付き UTF-8)")
    link.add_argument(
        "--purpose", required=True, help="利用目的コード（data/policy/purposes.csv、例: 照合確認）"
    )
    link.add_argument(
        "--all",
        action="store_true",
        help="確認対象ではなく、その月の連携をすべて書き出す（監査用）",
    )
    link.set_defaults(func=_link_review)
    decide = sub.add_parser(
        "link-decisions",
        help="link-review の CSV に記入した判断（同一・別人）を確かめて記録する（翌月以降の連携に適用）",
    )
    decide.add_argument("--month", required=True, help="書き出した照合の確認対象の基準月 YYYY-MM")
    decide.add_argument(
        "--in", dest="file", required=True, help="判断の列を記入した CSV (UTF-8 または CP932)"
    )
    decide.set_defaults(func=_link_decisions)
    center = sub.add_parser(
        "demo-center",
        help="デモ用: センターの職員の代わりに、確認リストの上位を正解データで確認し、確認結果を"
        "署名して受信箱に置く（review-list と feedback-import と同じ処理。センターの秘密鍵が必要）",
    )
    center.add_argument("--month", required=True, help="確認する確認リストの基準月 YYYY-MM")
    center.add_argument(
        "--share", type=float, default=0.8, help="確認する割合（新規の示唆の上位から。既定 0.8）"
    )
    center.set_defaults(func=_demo_center)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())

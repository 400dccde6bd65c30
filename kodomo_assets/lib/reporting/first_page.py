"""The report's first page (要点): the conclusions, then each question the council's members
asked with the answer from this month's records, and who can open which zone."""

from __future__ import annotations

from kodomo_assets.lib.platform.storage import KodomoStorage
from kodomo_assets.lib.policy.approval import Approval, Standing
from kodomo_assets.lib.registry import load_registry
from kodomo_assets.lib.reporting import report as R
from kodomo_assets.lib.reporting.pages import Month
from kodomo_assets.lib.reporting.suppression import share_text


def zone_access(storage: KodomoStorage) -> R.Table:
    """Who can open which zone, read from the storage resource's configuration and the
    registry, not written by hand."""
    registry = load_registry()
    departments = "、".join(dict.fromkeys(ds.department.label for ds in registry.datasets.values()))
    try:
        center = f"センターの公開鍵（指紋 {storage.center_public().fingerprint}）宛てに暗号化"
    except Exception:
        center = "センターの公開鍵宛てに暗号化（公開鍵が設定されていない）"
    key = "保存用の鍵（KODOMO_STORAGE_KEY_FILE。パイプラインの口座だけが読める）"
    prefix = storage.drop_group_prefix
    return R.Table(
        "誰がどの領域を開けるか（設定から）",
        ["領域", "中身", "開ける鍵・権限"],
        [
            [
                "受信箱",
                f"各課の月次エクスポート（{departments}）",
                f"各課の職員はグループ {prefix}<課> で自課のファイルを置くだけ。読むのはパイプラインのみ",
            ],
            ["部署別ストア", "課ごと・月ごとの DuckDB（暗号化）", key],
            ["連携領域", "学齢簿と住民基本台帳の照合（宛名番号を含む）", key],
            [
                "分析領域",
                "仮名と、承認された項目を粗くした列のみ",
                key + "。宛名番号・氏名は置かない",
            ],
            [
                "センター領域",
                "確認リスト（宛名番号に戻したもの）",
                center + "。更新処理は書けても読めず、開けるのはセンターの秘密鍵だけ",
            ],
            ["委員会報告書", "集計値のみ（1〜9 は x）", "審議会・担当者"],
        ],
    )


def first_page(
    storage: KodomoStorage,
    facts: Month,
    approval: Approval,
    standing: Standing,
    verified: tuple[int, int, int],
    fired: dict[str, int],
    main_problems: list[str],
    children: int | None,
) -> list:
    """One screen, conclusions first, then each question the members asked (minutes of
    2022-10-11, in their order) with the answer from this month's records."""
    checked, confirmed, not_confirmed = verified
    listed_now = facts.review.get("new_suggestions")
    listed_all = sum(facts.listed.values())
    received = len(facts.sources)
    expected = len(load_registry().datasets)
    in_period = standing.month_covered and standing.today_covered
    processed = (
        f"基準月 {facts.month} の {expected} 種類のデータのうち {received} 種類を処理した。"
        if received
        else f"基準月 {facts.month} の取込の記録が、この Dagster インスタンスにない。"
    )
    so_far = (
        f"これまでの確認リスト {len(facts.listed)} か月分 {R.small(listed_all)} 人のうち、"
        if facts.listed
        else "これまでに返った確認結果で、"
    )
    conclusions = [
        processed
        + (
            "承認期間は基準月と処理日の両方を含む。"
            if in_period
            else "処理日が承認期間の外にあるため、この月の処理・書き出しは行わない（この報告は集計の再作成）。"
        ),
        f"支援の必要性が示唆された児童（確認リストの新規の示唆）: 今月 {R.small(listed_now)} 人"
        + (f"（全児童 {children:,} 人の約2%）" if children else "")
        + "。"
        + (f"順位付けは{facts.ranking}（選んだ理由は 6）。" if facts.ranking else ""),
        f"{so_far}センターが確認した児童 {R.small(checked)} 人。確認で該当となった割合（陽性的中率）は "
        f"{share_text(confirmed, confirmed + not_confirmed, '{:.0%}')}。",
        "主な課題: "
        + ("／".join(main_problems) if main_problems else "記録された課題はない")
        + "。",
        "このシステムがしないこと: 本人・家庭への連絡や訪問などの働きかけ（プッシュ型の支援）は行わず、"
        "支援の要否も判定しない。結果は、子ども家庭支援センターの職員が一人ずつ確認するための示唆に限る。",
    ]
    exports = [e for e in facts.exports if e.get("action") == "export"]
    economic = [
        i.header
        for i in approval.as_recorded(facts.month).items
        if "analysis" in i.uses and "経済" in i.purpose
    ]
    young = {k: v for k, v in fired.items() if "ヤングケアラー" in k or "介護" in k}
    qa = [
        [
            "プッシュ型の支援はどう行うのか／個別の支援は含まないのか",
            "このシステムは働きかけを行わない。確認リストの書き出しは利用目的コード付きで記録され、今月 "
            f"{len(exports)} 件（{'、'.join(sorted({e['purpose'] for e in exports})) or 'なし'}）。",
            "8",
        ],
        [
            "個人情報を使うのは子ども家庭支援センターだけか",
            "宛名番号に戻した確認リストはセンターの鍵でしか開けない（下の表）。分析は仮名で行う。",
            "下の表",
        ],
        [
            "表に現れないケースをどう把握するのか",
            "各課のデータを結び付けた指標で示す。今月の該当: "
            + ("、".join(f"{k} {R.small(v)} 人" for k, v in young.items()) or "—")
            + " など。",
            "2・5",
        ],
        [
            "家庭の状況は千差万別で、分析は難しいのではないか",
            f"結果は示唆であり、センターが検証している。確認済み {R.small(checked)} 人、該当の割合 "
            f"{share_text(confirmed, confirmed + not_confirmed, '{:.0%}')}（指標別・スコア帯別は 1）。",
            "1・2",
        ],
        [
            "実証の目標と課題は何か",
            "課題を毎月集めて報告する（3）。今月の主な課題は上のとおり。",
            "3",
        ],
        [
            "セキュリティは万全か",
            "全ストア・領域を暗号化し、月ごとの鍵を保存期間の後に破棄する。書き出し・消去の記録は改ざん検出付き"
            "（8）。各資産の表はゲートの検査に通ったものだけを書く"
            + (
                f"（今月の失敗 {sum(facts.refusals.values())} 回）。"
                if facts.refusals
                else "（今月の失敗なし）。"
            ),
            "3・8",
        ],
        [
            "令和5年度以降、承認はどう扱われるか",
            "；".join(text for text, _ in R.standing_lines(standing))
            + "。期間外の月は処理しない。",
            "付録A",
        ],
        [
            "地方税情報なしで経済状況をどう把握するか",
            "手当・保護・就学援助の受給から読み取る（承認項目: "
            + "、".join(economic)
            + "）。地方税情報のファイル・列は"
            "受け取らず、取込時に除く。",
            "付録A",
        ],
    ]
    return [
        R.paragraph_list(conclusions),
        R.Table(
            "審議会（令和4年10月11日）でのご質問と、この報告での答え",
            ["ご質問", "答え", "詳しくは"],
            qa,
        ),
        zone_access(storage),
    ]

"""The council's pages of the report: the first page (the members' questions, answered from
the month's records), the verification evidence, 傾向分析 and 課題. What the Dagster instance
recorded is read here; the tables themselves are built in lib/reporting/council.py."""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from dagster import AssetKey, AssetRecordsFilter, DagsterEventType, DagsterInstance, RunsFilter

from kodomo_assets.defs.center.assets import KEY as REVIEW_KEY
from kodomo_assets.defs.linkage.assets import KEY as LINK_KEY
from kodomo_assets.defs.scoring.assets import KEY as SCORES_KEY
from kodomo_assets.defs.sources.assets import source_key
from kodomo_assets.defs.sources.inbox import KEY as INBOX_KEY
from kodomo_assets.lib.center.export import read_access_log
from kodomo_assets.lib.center.feedback import BANDS
from kodomo_assets.lib.platform.storage import KodomoStorage
from kodomo_assets.lib.policy.approval import Approval, Standing
from kodomo_assets.lib.registry import load_registry
from kodomo_assets.lib.reporting import council as C
from kodomo_assets.lib.reporting import report as R
from kodomo_assets.lib.reporting.suppression import share_text
from kodomo_assets.lib.scoring.indicators import load_indicators

FAIRNESS_BOUND = 0.1  # the audit's bound on the equalized-odds gap (lib/scoring/evaluation.py)


def meta(instance: DagsterInstance, key: AssetKey, month: str) -> dict:
    records = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=key, asset_partitions=[month]), limit=1
    ).records
    if not records:
        return {}
    mat = records[0].event_log_entry.asset_materialization
    assert mat is not None  # the records are materializations
    return {k: v.value for k, v in mat.metadata.items()}


def failed_checks(instance: DagsterInstance, month: str) -> dict[str, int]:
    """Blocking checks that failed in the month's runs (a gate refusal stops the asset's
    table from being written), counted by asset and check."""
    out: dict[str, int] = {}
    for record in instance.get_run_records(RunsFilter(tags={"dagster/partition": month}), limit=50):
        for entry in instance.all_logs(
            record.dagster_run.run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION
        ):
            evaluation = entry.get_dagster_event().asset_check_evaluation_data
            if not evaluation.passed:
                name = f"{evaluation.asset_key.to_user_string()} の {evaluation.check_name}"
                out[name] = out.get(name, 0) + 1
    return out


def late_files(instance: DagsterInstance, month: str) -> list[str]:
    """Files an earlier receipt of the month found missing: they arrived late (the latest
    receipt says what is missing still)."""
    records = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=INBOX_KEY, asset_partitions=[month]), limit=20
    ).records
    late: set[str] = set()
    for record in records[1:]:  # newest first: every receipt before the latest
        mat = record.event_log_entry.asset_materialization
        assert mat is not None  # the records are materializations
        missing = mat.metadata.get("missing")
        late |= set(cast("list[str]", missing.value) if missing is not None else [])
    return sorted(late)


@dataclass
class Month:
    """What the month's records say, gathered once for every page."""

    month: str
    sources: dict[str, dict]  # dataset label -> source asset metadata
    inbox: dict
    link: dict
    review: dict
    listed: dict[str, int]  # list month -> new suggestions, for every month with a list
    refusals: dict[str, int]
    exports: list[dict]
    late: list[str]
    ranking: str = ""  # the list's order this month (lib/ranking's label), "" before scoring


def gather(storage: KodomoStorage, instance: DagsterInstance, month: str) -> Month:
    registry = load_registry()
    sources = {
        ds.label: m
        for ds in registry.datasets.values()
        if (m := meta(instance, source_key(ds.name), month))
    }
    listed = {
        m: int(r["new_suggestions"])
        for m in storage.months_on_disk()
        if m <= month
        if (r := meta(instance, REVIEW_KEY, m)) and "new_suggestions" in r
    }
    return Month(
        month,
        sources,
        meta(instance, INBOX_KEY, month),
        meta(instance, LINK_KEY, month),
        meta(instance, REVIEW_KEY, month),
        listed,
        failed_checks(instance, month),
        read_access_log(storage, month),
        late_files(instance, month),
        str(meta(instance, SCORES_KEY, month).get("ranking_mode", "")),
    )


def problems(
    storage: KodomoStorage,
    facts: Month,
    gaps: list[tuple[str, float | None, bool]],
    silent: list[str],
) -> tuple[C.MonthProblems, list[str]]:
    """課題 from what the pipeline saw, then the steward's notes (refusals by line)."""
    out = C.MonthProblems()
    C.quarantine_problems(out, facts.sources)
    missing = facts.inbox.get("missing") or []
    if missing:
        out.add("受信", f"未着のファイル {len(missing)} 件: {'、'.join(missing)}", weight=1.0)
    late = [f for f in facts.late if f not in missing]
    if late:
        out.add(
            "受信",
            f"遅配: {'、'.join(late)}（先の取込のときには未着で、後から届いた）",
            weight=0.45,
        )
    link = facts.link
    if link:
        out.add(
            "連携",
            f"学齢簿の児童生徒 {R.small(link.get('pupils'))} 人のうち未連携 {R.small(link.get('unlinked'))} 人、"
            f"照合の確認待ち {R.small(link.get('steward_review'))} 件",
            weight=0.5 if (link.get("unlinked") or 0) > 0.01 * (link.get("pupils") or 0) else 0.05,
        )
    for name, n in facts.refusals.items():
        out.add("ゲート", f"{name} が失敗（{n} 回）。その表は書き出していない", weight=0.9)
    over = [(label, gap, ok) for label, gap, ok in gaps if gap is not None and gap > FAIRNESS_BOUND]
    for label, gap, _ in (g for g in over if g[2]):
        out.add(
            "公平性",
            f"{label}: 均等化オッズの差 {gap:.3f} が目安 {FAIRNESS_BOUND} を超える",
            weight=0.8,
        )
    hidden = [label for label, _, ok in over if not ok]
    if hidden:
        out.add(
            "公平性",
            f"{'、'.join(hidden)}: 均等化オッズの差が目安 {FAIRNESS_BOUND} を超えるが、群が小さく"
            "値は示せない（偶然の差かどうかは 6 の説明）",
            weight=0.3,
        )
    for sentence in silent:
        out.add("指標", sentence, weight=0.35)
    notes, refused = C.read_notes(storage.home_path / "committee_notes" / f"{facts.month}.csv")
    for kind, text, action in notes:
        out.add(f"{kind}（担当者）", text + (f" — 対応: {action}" if action else ""), weight=0.6)
    return out, refused


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


def verification_pages(con, facts: Month) -> list:
    labels = [i.label for i in load_indicators()]
    months = (
        [C.by_month(con, facts.listed)]
        if facts.listed
        else [
            R.paragraph(
                "確認リストの実体化の記録（Dagster のインスタンス）がないため、基準月ごとの確認状況は示さない。"
            )
        ]
    )
    return [*months, *C.ppv_tables(con, labels, [b[0] for b in BANDS])]

"""Section 6 of the report, モデルカード・評価・公平性: the model card, the evaluation against
the demo truth with its calibration, the fairness audit's gaps and the scores' distribution."""

from __future__ import annotations

import json
import math
from functools import cache

from kodomo_assets.lib.platform.storage import KodomoStorage
from kodomo_assets.lib.policy.approval import MonthApproval
from kodomo_assets.lib.reporting import plots
from kodomo_assets.lib.reporting import report as R
from kodomo_assets.lib.reporting.suppression import mask_text, share_text, visible
from kodomo_assets.lib.scoring.evaluation_store import EVALUATION_TABLE, FAIRNESS_TABLE
from kodomo_assets.lib.scoring.indicators import load_indicators
from kodomo_assets.lib.scoring.linked_table import load_spec, plan


def model_section(storage: KodomoStorage, month: str, figures: dict, positives: int | None) -> list:
    """`figures`: the month's scores from section 5; `positives`: the planted needs among the
    children the center does not know (the evaluation's metadata, None without truth)."""
    parts: list = []
    card_path = storage.zone_file("analysis", month, "model_card.json")
    if card_path.exists():
        card = json.loads(card_path.read_text(encoding="utf-8"))
        parts.append(_card_table(card, storage.approval().as_recorded(month)))
    evaluated = storage.zone_store("analysis", month, EVALUATION_TABLE)
    if evaluated.exists():
        with storage.open(evaluated) as con:
            rows = con.execute(
                "SELECT metric, description, model, indicators_first, learned, baseline "
                "FROM metrics"
            ).fetchall()
            cal = con.execute(
                "SELECT mean_score, label_rate, n FROM calibration ORDER BY bin"
            ).fetchall()
        if rows:
            parts.append(
                R.Table(
                    "デモの正解データに対する評価（合成データのみ。実データには正解がなく、精度は"
                    "1. の確認結果で示す。センターが把握していない児童）",
                    ["指標", "確認リスト", "指標優先", "学習モデルのみ", "最良の単一ルール"],
                    evaluation_rows(rows, positives),
                    note="率は、分子とその残りがともに0か10以上のときだけ示す（x は秘匿）。",
                )
            )
        # a bin's known share is drawn only when its known children and the rest are 0 or ≥ 10
        shown = [(sc, r) for sc, r, n in cal if n >= 10 and visible(round(r * n), n)]
        if shown:
            parts.append(plots.calibration(shown))
    fair = storage.zone_store("analysis", month, FAIRNESS_TABLE)
    if fair.exists():
        with storage.open(fair) as con:
            gaps = con.execute(
                "SELECT label, equalized_odds_gap, disclosable, explanation FROM gaps"
            ).fetchall()
        parts.append(
            R.Table(
                "公平性の確認（Equalized odds の差）",
                ["属性", "差", "説明"],
                [[a, _gap_text(g, ok), mask_text(e)] for a, g, ok, e in gaps],
            )
        )
    if "scores" in figures:
        parts.append(plots.score_histogram(figures["scores"]))
    return parts


def _gap_text(gap: float | None, disclosable: bool) -> str:
    if gap is None:
        return "—"
    return f"{gap:.3f}" if disclosable else R.MASK


def _card_table(card: dict, approval: MonthApproval) -> R.Table:
    features = "、".join(dict.fromkeys(feature_label(f, approval) for f in card["features"]))
    return R.Table(
        "モデルカード",
        ["項目", "内容"],
        [
            ["基準月", card["month"]],
            ["学習の正解", "子ども家庭支援センターの相談または要対協登録（既知の児童）"],
            ["学習した児童", f"{card['training_rows']:,}（正例 {R.small(card['positives'])}）"],
            ["交差検証 AUC（既知の判別）", f"{card['cv_auc']:.3f}"],
            ["Brier", f"{card['cv_brier']:.4f}"],
            ["特徴量", f"{len(card['features'])} 個（外国人住民・町丁目は使わない）: " + features],
            ["較正", card["params"].get("calibration", "")],
            ["確認リストの順位付け", ranking_text(card.get("ranking"))],
            [
                "過去に相談歴のある児童の割合（未把握の児童全体／リストの上位 k 人）",
                f"{card['past_share']:.1%}／{card['past_share_listed']:.1%}（学習に使った児童のスコアは交差検証の"
                "分割の外から求めるため、自分の正解で順位が上がらない）"
                if card.get("past_share") is not None
                else "—",
            ],
        ],
    )


def evaluation_rows(rows: list[tuple], positives: int | None) -> list[list[str]]:
    """The evaluation against the demo truth, so that no figure gives a small count back:
    precision is found ÷ selected and recall found ÷ needs, each shown only when the count
    and its rest are 0 or ≥ 10; found is hidden on the same rule; AUC, Brier and ECE are
    not shares of a count."""
    by = {m: (d, *values) for m, d, *values in rows}
    out = []
    for metric, (label, *values) in by.items():
        cells = []
        for i, v in enumerate(values):
            found, selected = by["found"][1 + i], by["selected"][1 + i]
            if v is None or (isinstance(v, float) and math.isnan(v)):
                cells.append("—")
            elif metric == "precision_at_k":
                cells.append(share_text(round(found), round(selected), "{:.3f}"))
            elif metric == "recall_at_k":
                cells.append(share_text(round(found), positives, "{:.3f}") if positives else R.MASK)
            elif metric == "found":
                shown = visible(round(v), round(selected)) and (
                    not positives or visible(round(v), positives)
                )
                cells.append(R.small(round(v)) if shown else R.MASK)
            elif metric == "selected":
                cells.append(R.small(round(v)))
            else:
                cells.append(f"{v:.3f}")
        out.append([label, *cells])
    return out


@cache
def _term_labels(approval: MonthApproval) -> dict[str, str]:
    return {
        **plan(load_spec(), approval).labels(),
        **{f"ind_{i.name}": i.label for i in load_indicators()},
    }


def feature_label(term: str, approval: MonthApproval) -> str:
    """A model input in Japanese: the linked-table column's label, or the indicator's."""
    labels = _term_labels(approval)
    name = term.split("=", 1)[0]
    return labels.get(name, name).split("（")[0]


def ranking_text(ranking: dict | None) -> str:
    """Which order the list used and why (lib/ranking), or a dash for a card from before."""
    return f"{ranking['label']}。{ranking['reason_for_committee']}" if ranking else "—"

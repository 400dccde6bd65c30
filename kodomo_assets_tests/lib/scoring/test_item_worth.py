"""必要最小限: what each approved item is worth, on the real plan and a synthetic month."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kodomo_assets.lib.policy.approval import MonthApproval, load_policy, parse_policy
from kodomo_assets.lib.scoring import item_worth as iw
from kodomo_assets.lib.scoring import model as scoring
from kodomo_assets.lib.scoring.indicators import Indicator, load_indicators
from kodomo_assets.lib.scoring.linked_table import load_spec, month_sql, plan
from kodomo_assets_tests.conftest import withdrawn_approval

MONTH = "2022-10"
ASOF_SQL = month_sql(MONTH)["asof"]


def _by_item(approval: MonthApproval) -> dict[tuple[str, str | None], iw.Unit]:
    p = plan(load_spec(), approval)
    return {(u.dataset, u.item): u for u in iw.units(p, approval)}


def test_each_approved_item_is_classified_from_the_lineage() -> None:
    units = _by_item(load_policy().for_month(MONTH))
    # approved for 分析, read by no column of the linked table (別紙 item to reconsider)
    assert units[("gakurei", "学校名")].verdict == iw.UNREAD
    assert units[("gakurei", "学年")].verdict == iw.UNREAD
    # keys and 照合 are reported, never refitted
    assert units[("jumin", "宛名番号")].verdict == iw.LINK_ONLY
    assert units[("gakurei", "氏名カナ")].verdict == iw.LINK_ONLY
    # the audit attributes and the center's records are not model inputs
    assert units[("jumin", "町丁目コード")].verdict == iw.AUDIT
    assert units[("soudan", "相談種別")].verdict == iw.LABEL
    assert units[("soudan", None)].verdict == iw.LABEL
    # an analysed item takes every column whose lineage reads it, derived ones included
    assert set(units[("jumin", "続柄")].columns) == {"parents_in_household", "single_parent"}
    assert units[("jumin", "続柄")].note == iw.BASE_NOTE  # the register's base inputs stay
    assert units[("seiho", "扶助種別")].columns == ("welfare_education_aid",)
    # a dataset goes with its presence (在籍), the register with its analysed items only
    assert "pupil" in units[("gakurei", None)].columns
    assert "household_size" not in units[("jumin", None)].columns
    assert units[("shukketsu", "欠席日数")].verdict is None


def test_an_item_left_unread_by_an_edited_approval_is_reported(tmp_path: Path) -> None:
    """Without 手当種別 no allowance column can be built: 支給状況 and 認定年月日 stay
    approved but nothing reads them."""
    approval = parse_policy(
        withdrawn_approval(
            tmp_path, "手当種別", "teate.csv", 目的外利用="", **{"保存期間（月）": ""}
        )
    ).for_month(MONTH)
    units = _by_item(approval)
    assert ("teate", "手当種別") not in units
    assert units[("teate", "支給状況")].verdict == iw.UNREAD
    assert units[("teate", "認定年月日")].verdict == iw.UNREAD
    assert ("teate", None) not in units  # nothing of the dataset reaches the table


def test_an_indicator_goes_with_the_columns_it_reads() -> None:
    p = plan(load_spec(), load_policy().for_month(MONTH))
    types = {c: t for c, t in p.types().items() if c in p.columns}
    gone = iw.indicators_without(load_indicators(), types, ["school_aid"], ASOF_SQL)
    assert gone == {"poverty_support_gap", "fee_arrears_without_aid"}
    assert iw.indicators_without(load_indicators(), types, ["sex"], ASOF_SQL) == set()


def test_precision_at_k_counts_a_sampled_negative_for_those_it_stands_for() -> None:
    score = np.array([0.9, 0.8, 0.7, 0.1])
    y = np.array([1, 0, 1, 0])
    assert iw.precision_at_k(score, y, np.ones(4), 2) == 0.5
    # the negative at 0.8 stands for 3 children: the top 2 are it and the first positive
    assert iw.precision_at_k(score, y, np.array([1.0, 3.0, 1.0, 3.0]), 4) == 0.25


def test_ppv_needs_ten_outcomes() -> None:
    verified = pd.DataFrame(
        {"result": ["該当"] * 6 + ["非該当"] * 3 + ["既知"] * 4, "indicators": [["指標A"]] * 13}
    )
    assert iw.ppv(verified, {"指標A"}) == (9, None)
    more = pd.concat(
        [verified, pd.DataFrame({"result": ["非該当"], "indicators": [["指標A", "指標B"]]})]
    )
    assert iw.ppv(more, {"指標B", "指標A"}) == (10, 0.6)
    assert iw.ppv(more, {"指標C"}) == (0, None)
    assert iw.ppv(None, {"指標A"}) == (0, None)


WELFARE = Indicator("on_welfare", "生活保護の指標", "説明", "welfare", "'生活保護'", "{asof}")


def _synthetic_month(n: int = 1500, seed: int = 3) -> iw.Inputs:
    """The register, the center, allowances and welfare only; the label follows welfare,
    and 扶助種別 feeds a column that never varies."""
    whole = load_policy().for_month(MONTH)
    approval = MonthApproval(
        MONTH,
        whole.periods,
        tuple(i for i in whole.items if i.dataset in ("jumin", "soudan", "teate", "seiho")),
    )
    p = plan(load_spec(), approval)
    rng = np.random.default_rng(seed)
    make = {
        "INTEGER": lambda: rng.integers(0, 5, n),
        "DOUBLE": lambda: rng.random(n),
        "BOOLEAN": lambda: rng.random(n) < 0.2,
        "VARCHAR": lambda: rng.choice(["甲", "乙", "丙"], n),
        "DATE": lambda: pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 900, n), "D"),
    }
    frame = pd.DataFrame(
        {c: make[t]() if t in make else None for c, t in p.types().items() if c in p.columns}
    )
    frame["child_token"] = [f"t{i:05d}" for i in range(n)]
    welfare = rng.random(n) < 0.12
    frame["welfare"], frame["welfare_education_aid"] = welfare, False
    frame["welfare_since"] = frame["welfare_since"].where(welfare)
    known = (welfare & (rng.random(n) < 0.5)) | (rng.random(n) < 0.005)
    frame["consultations_total"], frame["council_registered"] = known.astype(int), False
    frame["ind_on_welfare"] = welfare
    hidden = iw.label_columns(p)
    y = ((frame["consultations_total"] > 0) | frame["council_registered"]).to_numpy(int)
    return iw.Inputs(
        frame=frame,
        features=scoring.model_features(p),
        indicators=(WELFARE,),
        asof=pd.Timestamp("2022-10-31"),
        asof_sql=ASOF_SQL,
        y=y,
        plan=p,
        approval=approval,
        shown=[c for c in p.columns if c not in hidden],
    )


@pytest.fixture(scope="module")
def synthetic() -> tuple[iw.Inputs, pd.DataFrame]:
    inputs = _synthetic_month()
    verified = pd.DataFrame(
        {"result": ["該当"] * 9 + ["非該当"] * 3, "indicators": [["生活保護の指標"]] * 12}
    )
    return inputs, iw.item_worth(inputs, seed=11, verified=verified, folds=3)


def test_an_item_the_label_follows_is_needed_and_a_constant_one_can_go(synthetic) -> None:
    _, table = synthetic
    items = table[table["level"] == iw.ITEM].set_index("item")
    welfare = items.loc["保護開始日"]
    assert welfare["verdict"] == iw.NEEDED and welfare["auc_drop"] > 0.1
    assert welfare["indicators_removed"] == ["生活保護の指標"]
    assert welfare["verified_outcomes"] == 12 and welfare["ppv_verified"] == 0.75
    constant = items.loc["扶助種別"]  # its one column never varies: nothing lost
    assert (
        constant["verdict"] == iw.DROP
        and constant["auc_drop"] == 0
        and constant["precision_drop"] == 0
    )
    assert np.isnan(constant["ppv_verified"]) and constant["verified_outcomes"] == 0
    # the register's base inputs are never candidates, whatever they cost
    assert items.loc["生年月日", "verdict"] == iw.NEEDED
    # the controls (a column of noise) set how large a drop must be to count
    controls = table[table["level"] == iw.CONTROL]
    assert len(controls) == iw.NOISE_DRAWS and iw.noise_floor(table)[0] < welfare["auc_drop"]
    assert items.sort_values("harm_rank").iloc[0]["dataset"] == "生活保護"
    full = table.iloc[0]
    assert full["verdict"] == iw.BASELINE and 0.5 < full["auc"] <= 1
    assert list(table.columns) == list(iw.SCHEMA)
    assert set(table["verdict"]) <= {*iw.VERDICTS, iw.BASELINE, iw.CONTROL_VERDICT}


def test_the_same_seed_gives_the_same_figures(synthetic) -> None:
    inputs, table = synthetic
    verified = pd.DataFrame(
        {"result": ["該当"] * 9 + ["非該当"] * 3, "indicators": [["生活保護の指標"]] * 12}
    )
    again = iw.item_worth(inputs, seed=11, verified=verified, folds=3)
    pd.testing.assert_frame_equal(table, again)

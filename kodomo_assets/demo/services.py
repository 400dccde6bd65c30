"""Each department's base state for every person or household (before needs are planted).

Rates, each with the statistic it comes from (statistics.md unless marked U):
- care: P(any certification | 65+) = 0.19, P(要介護4–5 | 65+) = 0.040 (介護保険事業状況報告 FY2022)
- disability cards per child: 愛の手帳 (療育) 0.0185, 身体 0.0051 (福祉行政報告例 FY2023)
- 生活保護: 1.62% of persons (被保護者調査), children in 保護 ≈1% (U)
- 児童扶養手当: ≈0.6 of single-parent households (福祉行政報告例 / ひとり親世帯等調査)
- 特別児童扶養手当: ≈0.013 of children (福祉行政報告例)
- nursery use: age 0 0.175, 1–2 0.56, 3–5 0.575 (保育所等関連状況取りまとめ R4.4.1)
- missed checkups: 0.039 / 0.037 / 0.043 (地域保健・健康増進事業報告 FY2022)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kodomo_assets.demo import dates as D
from kodomo_assets.demo import households as H
from kodomo_assets.demo.population import NEVER, Population

NO_MONTH = 10**6  # "never" on the absolute-month scale

# Routine vaccinations: age in months at which each dose falls due (Hib, 肺炎球菌, B型肝炎,
# ロタ, 四種混合, BCG, MR 1-2期, 水痘, 日本脳炎 1-2期, DT 2期).
DOSE_MONTHS = np.sort(
    np.array(
        [
            2,
            3,
            4,
            12,
            2,
            3,
            4,
            12,
            2,
            3,
            8,
            2,
            3,
            3,
            4,
            5,
            13,
            5,
            12,
            66,
            12,
            18,
            36,
            37,
            48,
            108,
            132,
        ]
    )
)
CHECKUP_WINDOW = ((3, 6), (18, 24), (36, 42))  # months of age
CHECKUP_MISS = (0.039, 0.037, 0.043)


def affine_ids(serial: np.ndarray, digits: int, salt: int) -> np.ndarray:
    """Unique pseudo-random numbers of exactly `digits` digits for distinct serials."""
    span = 9 * 10 ** (digits - 1)
    mult = 7_919 if span % 7_919 else 7_927  # coprime with 2, 3 and 5, hence with span
    return 10 ** (digits - 1) + (mult * 104_729 * serial + salt) % span


@dataclass
class Care:
    level: np.ndarray  # -1 none, 0 非該当, 1..7 要支援1..要介護5
    service: np.ndarray  # uses home-care services
    units: np.ndarray  # typical monthly units
    start0: np.ndarray  # abs month of a certification start
    dur: np.ndarray  # certification length in months
    level2: np.ndarray  # level from change_am on (planted)
    service2: np.ndarray
    change_am: np.ndarray
    insured: np.ndarray


@dataclass
class Cards:
    pid: np.ndarray
    kind: np.ndarray  # 0 身体, 1 愛の手帳, 2 精神
    grade: np.ndarray  # index into codes.CARD_GRADE
    welfare: np.ndarray  # 障害福祉サービス利用
    child_svc: np.ndarray  # 障害児通所支援利用
    diag: np.ndarray
    from_am: np.ndarray
    to_am: np.ndarray


@dataclass
class Money:
    cb_status: np.ndarray  # household: 児童手当 payment code
    cb_lost: np.ndarray  # household: 特例給付 ends 2022-10 (資格喪失 from then)
    cb_income: np.ndarray
    jifu: np.ndarray  # household receives 児童扶養手当
    jifu_status: np.ndarray
    jifu_grant: np.ndarray  # day
    jifu_income: np.ndarray
    grant_lag: np.ndarray  # person: days from birth/arrival to 認定
    special: np.ndarray  # person: 特別児童扶養手当
    special_status: np.ndarray
    account: np.ndarray  # person: bank account (7 digits)
    seiho_start: np.ndarray  # household day (NEVER: none)
    seiho_end: np.ndarray  # household day (NEVER: ongoing)
    seiho_bits: np.ndarray  # household static aid kinds (生活/住宅/医療 bits)
    seiho_case: np.ndarray
    aid_u: np.ndarray  # household uniform for 就学援助
    arrears_u: np.ndarray  # household uniform for 学校徴収金滞納
    no_aid: np.ndarray  # household: planted, no 就学援助 whatever the means
    arrears_from: np.ndarray  # household: planted arrears from this absolute month


@dataclass
class ChildHealth:
    nursery_u: np.ndarray
    facility: np.ndarray
    reason: np.ndarray
    nursery_force: np.ndarray  # -1 none, 0 no nursery, 1 waiting (待機), 2 enrolled
    nursery_force_from: np.ndarray  # day the forced state starts
    checkup_u: np.ndarray  # (persons, 3) attendance draw
    checkup_day_u: np.ndarray
    checkup_skip_after: np.ndarray  # day: windows ending after it are missed (neglect)
    vacc_class: np.ndarray  # 0 complete, 1 a dose or two late, 2 patchy
    vacc_freeze: np.ndarray  # day after which no more doses (neglect), NEVER otherwise


def base_care(rng: np.random.Generator, pop: Population, ref: int) -> Care:
    n = pop.size
    age = D.age_years(pop.p["birth"], ref)
    # certification rises steeply with age; scaled below so that the 65+ mean is 0.19
    band = np.interp(
        age,
        [40, 64.9, 65, 70, 75, 80, 85, 90, 95],
        [0.002, 0.004, 0.03, 0.06, 0.13, 0.27, 0.5, 0.72, 0.85],
    )
    old = (age >= 65) & pop.p["resident"]
    scale = 0.19 / band[old].mean() if old.any() else 1.0
    band = np.where(old, band * scale, np.where(age >= 40, band, 0))
    certified = rng.random(n) < band
    # 要支援1..要介護5 shares from 第4-1表 FY2022: 要介護4–5 are 21% of certifications (4.0% of 65+)
    level = np.where(
        certified, 1 + rng.choice(7, n, p=[0.14, 0.14, 0.21, 0.17, 0.13, 0.125, 0.085]), -1
    )
    level = np.where(~certified & (age >= 65) & (rng.random(n) < 0.01), 0, level)  # applied, 非該当
    use = np.array([0, 0.55, 0.6, 0.8, 0.82, 0.8, 0.72, 0.68])[np.maximum(level, 0)]
    service = (level > 0) & (rng.random(n) < use)
    limit = np.array([0, 5032, 10531, 16765, 19705, 27048, 30938, 36217])[np.maximum(level, 0)]
    units = np.where(service, limit * rng.uniform(0.35, 0.95, n), 0)
    dur = rng.choice([12, 24, 36], n, p=[0.3, 0.4, 0.3])
    start0 = D.abs_month(np.array([ref]))[0] - rng.integers(0, dur)
    return Care(
        level=level.astype("int8"),
        service=service,
        units=units,
        start0=start0,
        dur=dur,
        level2=level.astype("int8"),
        service2=service,
        change_am=np.full(n, NO_MONTH),
        insured=affine_ids(np.arange(n), 10, int(rng.integers(0, 10**9))),
    )


def base_cards(rng: np.random.Generator, pop: Population, ref: int) -> Cards:
    age = D.age_years(pop.p["birth"], ref)
    n = pop.size
    rows = []
    # per-age rates: children from 福祉行政報告例 FY2023; adults U (身体 4.78M of whom ≈72% are 65+)
    rates = ((0.0051, 0.018, 0.095), (0.0185, 0.0065, 0.001), (0.002, 0.012, 0.004))
    grade_p = ((0.26, 0.15, 0.17, 0.27, 0.06, 0.09), (0.05, 0.2, 0.3, 0.45), (0.1, 0.6, 0.3))
    offset = (0, 6, 0)
    band = np.where(age < 18, 0, np.where(age < 65, 1, 2))
    for kind in range(3):
        has = rng.random(n) < np.array(rates[kind])[band]
        pid = np.flatnonzero(has)
        grade = offset[kind] + rng.choice(len(grade_p[kind]), len(pid), p=grade_p[kind])
        child = age[pid] < 18
        welfare = rng.random(len(pid)) < np.where(child, 0.15, (0.25, 0.6, 0.4)[kind])
        child_svc = child & (rng.random(len(pid)) < 0.7)
        rows.append((pid, np.full(len(pid), kind), grade, welfare, child_svc))
    pid, kinds, grade, welfare, child_svc = (np.concatenate(c) for c in zip(*rows, strict=True))
    m = len(pid)
    return Cards(
        pid=pid,
        kind=kinds,
        grade=grade,
        welfare=welfare,
        child_svc=child_svc,
        diag=rng.integers(0, 99, m),
        from_am=np.zeros(m, "int64"),
        to_am=np.full(m, NO_MONTH),
    )


def base_money(rng: np.random.Generator, pop: Population, ref: int) -> Money:
    h, p = pop.h, pop.p
    nh, n = len(h["kind"]), pop.size
    cb = rng.choice(4, nh, p=[0.86, 0.11, 0.02, 0.01])
    lost = (cb == 1) & (rng.random(nh) < 0.35)
    single = h["single_parent"]
    jifu = single & (rng.random(nh) < 0.6)
    jifu_status = rng.choice(3, nh, p=[0.45, 0.5, 0.05])
    income_full = rng.uniform(0, 870_000, nh)
    income = np.choose(
        jifu_status,
        [income_full, rng.uniform(870_000, 2_300_000, nh), rng.uniform(2_300_000, 3_600_000, nh)],
    )
    cb_income = np.where(
        cb == 1, rng.uniform(9_600_000, 15_000_000, nh), rng.lognormal(15.1, 0.45, nh)
    )
    # the household became single-parent at some point before; movers are certified after arrival
    since = h["since"]
    jifu_grant = np.maximum(since + rng.integers(20, 60, nh), ref - rng.integers(30, 3650, nh))
    # 生活保護 by household type, tuned to 1.62% of persons (被保護者調査) and ≈1% of children
    sh_rate = np.array([0.025, 0.068, 0.005, 0.011, 0, 0.022])[h["kind"]]
    sh_rate = np.where(single, 0.085, np.where(h["kind"] == H.FAMILY, 0.0035, sh_rate))
    on = rng.random(nh) < sh_rate
    start = np.where(on, np.maximum(since + 30, ref - rng.integers(30, 4000, nh)), NEVER)
    closed = on & (rng.random(nh) < 0.08)
    end = np.where(closed, ref + rng.integers(-150, 200, nh), NEVER)
    bits = 1 | np.where(rng.random(nh) < 0.85, 4, 0) | np.where(rng.random(nh) < 0.8, 8, 0)
    age = D.age_years(p["birth"], ref)
    special = (age < 18) & (rng.random(n) < 0.003)  # diagnosed children without a card
    return Money(
        cb_status=cb,
        cb_lost=lost,
        cb_income=cb_income,
        jifu=jifu,
        jifu_status=jifu_status,
        jifu_grant=jifu_grant,
        jifu_income=income,
        grant_lag=rng.integers(8, 40, n),
        special=special,
        special_status=np.where(rng.random(n) < 0.9, 0, 2),
        account=affine_ids(np.arange(n), 7, int(rng.integers(0, 10**6))),
        seiho_start=start,
        seiho_end=end,
        seiho_bits=bits,
        seiho_case=affine_ids(np.arange(nh), 6, int(rng.integers(0, 10**5))),
        aid_u=rng.random(nh),
        arrears_u=rng.random(nh),
        no_aid=np.zeros(nh, bool),
        arrears_from=np.full(nh, NO_MONTH),
    )


def mark_special(rng: np.random.Generator, money: Money, cards: Cards) -> None:
    """特別児童扶養手当 for most children with a heavy card (愛の手帳 1–3度, 身体 1–3級, 精神 1–2級)."""
    heavy = np.isin(cards.grade, [0, 1, 2, 6, 7, 8]) & ((cards.kind != 2) | (cards.grade < 2))
    money.special[cards.pid[heavy & (rng.random(len(heavy)) < 0.6)]] = True


def base_child_health(
    rng: np.random.Generator, pop: Population, places_near: np.ndarray
) -> ChildHealth:
    n = pop.size
    h = pop.h
    hh = pop.p["hh0"]
    single = h["single_parent"][hh]
    reason = np.where(
        single,
        rng.choice(8, n, p=[0.8, 0, 0.02, 0.01, 0.13, 0.02, 0.01, 0.01]),
        rng.choice(8, n, p=[0.88, 0.03, 0.02, 0.02, 0.03, 0.01, 0.003, 0.007]),
    )
    district = h["district"][hh]
    facility = places_near[district, rng.integers(0, places_near.shape[1], n)]
    return ChildHealth(
        nursery_u=rng.random(n),
        facility=facility,
        reason=reason,
        nursery_force=np.full(n, -1),
        nursery_force_from=np.full(n, NEVER),
        checkup_u=rng.random((n, 3)),
        checkup_day_u=rng.random((n, 3)),
        checkup_skip_after=np.full(n, NEVER),
        vacc_class=rng.choice(3, n, p=[0.88, 0.1, 0.02]),
        vacc_freeze=np.full(n, NEVER),
    )


NURSERY_RATE = np.array([0.175, 0.175, 0.56, 0.56, 0.575, 0.575, 0.575])  # class age -1..5


def nursery_state(
    ch: ChildHealth, who: np.ndarray, birth: np.ndarray, start: np.ndarray, am: int, me: int
) -> tuple[np.ndarray, np.ndarray]:
    """(status code or -1, enrolment day) for persons `who` at a month end: 0 入所中, 1 待機, 2 退所."""
    fy = int(D.fiscal_year(am))
    cls = fy - D.school_cohort(birth) - 1  # 0歳児クラス = aged 0 on 1 April
    ok = (cls >= -1) & (cls <= 5) & (me - birth >= 57)
    rate = NURSERY_RATE[np.clip(cls + 1, 0, 6)]
    u = ch.nursery_u[who]
    first_cls = np.where(u < NURSERY_RATE[0], -1, np.where(u < NURSERY_RATE[2], 1, 3))
    cohort = D.school_cohort(birth)
    april = D.month_start((cohort + first_cls + 1) * 12 + 3)
    enrol = np.where(first_cls == -1, D.add_months(birth, 3 + (u * 100).astype(int) % 9), april)
    enrol = np.maximum(enrol, D.month_start(D.abs_month(start) + 2))  # movers enrol after arriving
    status = np.where(ok & (u < rate) & (enrol <= me), 0, -1)
    waiting = ok & (cls <= 2) & (u >= rate) & (u < rate + 0.02)
    left = ok & (cls >= 3) & (u >= rate) & (u < rate + 0.02)
    status = np.where(waiting, 1, np.where(left, 2, status))
    enrol = np.where(left, D.month_start((cohort + 2) * 12 + 3), enrol)
    f, since = ch.nursery_force[who], ch.nursery_force_from[who]
    forced = (f >= 0) & (since <= me) & ok
    # a forced place starts at the natural date when there is one, else when first possible
    earliest = np.maximum(
        np.maximum(since, D.add_months(birth, 3)), D.month_start(D.abs_month(start) + 1)
    )
    enrol = np.where(forced & (f == 2) & (status != 0), earliest, enrol)
    status = np.where(forced, np.choose(np.maximum(f, 0), [-1, 1, 0]), status)
    status = np.where((status == 0) & (enrol > me), -1, status)
    enrol = np.where(status == 1, D.NONE, enrol)
    return status, enrol

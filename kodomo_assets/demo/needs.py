"""Hidden needs planted on children, confounders that mimic them, and the consultation
records (相談記録) of the 子ども家庭支援センター.

≈2.3% of children get one need (kind + onset month); ≈35% of them are known to the
center (they have 相談記録), so ≈1.5% of children have an unknown need. Ordinary cases
for other children bring the children with a record to ≈1.3–1.6% (要対協 stock 1–1.5%,
statistics.md, U). Signals show only through the exports and build up after the onset.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from kodomo_assets.demo import codes as C
from kodomo_assets.demo import dates as D
from kodomo_assets.demo.population import NEVER, Population
from kodomo_assets.demo.school import School, grade_at
from kodomo_assets.demo.services import (
    CHECKUP_WINDOW,
    NO_MONTH,
    Cards,
    Care,
    ChildHealth,
    Money,
)

NEED_RATE, KNOWN = 0.023, 0.35
KINDS = (
    "young_carer_elder",
    "isolated_parenting",
    "neglect",
    "young_carer_disability_sibling",
    "poverty_gap",
    "non_attendance",
)
SHARES = (0.13, 0.10, 0.12, 0.14, 0.24, 0.27)
ORDINARY_CASES = 0.006  # children with a record but no planted need


def ordinary_share(known_share: float | None) -> float:
    """Children with a record but no planted need, for a wanted share of children with a
    center record (None: the calibrated ≈1.4%). The known needs stay NEED_RATE × KNOWN, so
    a larger share adds ordinary cases only: a city whose center records more, not a city
    with more need."""
    if known_share is None:
        return ORDINARY_CASES
    if not 0 < known_share < 0.5:
        raise ValueError(f"known_share must be a share of children below 0.5: {known_share}")
    return max(0.0, known_share - NEED_RATE * KNOWN)


@dataclass
class Cases:
    pid: np.ndarray
    number: np.ndarray
    received: np.ndarray
    kind: np.ndarray
    council: np.ndarray
    closed: np.ndarray  # day, NEVER while open
    note: np.ndarray


class _Ctx:
    """Who lives with whom in the last month, among people resident throughout."""

    def __init__(self, pop: Population, school: School, months: list[int]):
        self.pop, self.school, self.months = pop, school, months
        self.me = int(pop.month_end[-1])
        self.stay = pop.present.all(axis=0)
        self.age = D.age_years(pop.p["birth"], self.me)
        self.hh = pop.hh_at(self.me)
        members = np.flatnonzero(self.stay)
        order = np.lexsort((-self.age[members], self.hh[members]))
        self.sorted = members[order]
        hh_sorted = self.hh[self.sorted]
        self.first = np.searchsorted(hh_sorted, np.arange(len(pop.h["kind"])))
        self.last = np.searchsorted(hh_sorted, np.arange(len(pop.h["kind"])), side="right")
        self.row = school.index(np.arange(pop.size))
        self.pupil = self.stay & (self.row >= 0)
        self.pupil &= school.on_roll[-1, np.maximum(self.row, 0)]
        self.used = np.zeros(len(pop.h["kind"]), bool)

    def members(self, h: int) -> np.ndarray:
        return self.sorted[self.first[h] : self.last[h]]

    def per_household(self, mask: np.ndarray) -> np.ndarray:
        """Number of members satisfying mask, per household."""
        sel = np.flatnonzero(mask & self.stay)
        return np.bincount(self.hh[sel], minlength=len(self.used))

    def grid_from(self, am: int) -> int:
        return int(am - self.school.grid[0])


def _onsets(rng: np.random.Generator, n: int, months: list[int]) -> np.ndarray:
    inside = rng.random(n) < 0.65
    last = max(months[-1] - 1, months[0])
    return np.where(inside, rng.integers(months[0], last + 1, n), months[0] - rng.integers(1, 9, n))


def plant(
    rng: np.random.Generator,
    pop: Population,
    school: School,
    months: list[int],
    care: Care,
    cards: Cards,
    money: Money,
    child: ChildHealth,
    known_share: float | None = None,
) -> tuple[pd.DataFrame, Cases]:
    ctx = _Ctx(pop, school, months)
    kids = ctx.stay & (ctx.age < 18)
    n_children = int((pop.present[-1] & (ctx.age < 18)).sum())
    target = np.floor(np.array(SHARES) * NEED_RATE * n_children + rng.random(len(SHARES))).astype(
        int
    )
    rows: list[dict] = []
    planters: dict[str, Callable[..., list]] = {
        "young_carer_elder": _young_carer_elder,
        "isolated_parenting": _isolated_parenting,
        "neglect": _neglect,
        "young_carer_disability_sibling": _carer_disability,
        "poverty_gap": _poverty_gap,
        "non_attendance": _non_attendance,
    }
    short = 0
    for kind, k in zip(KINDS, target, strict=True):
        k = int(k) + (short if kind == "non_attendance" else 0)
        got = planters[kind](rng, ctx, k, care=care, cards=cards, money=money, child=child)
        short += k - len(got)
        rows += [{"pid": pid, "kind": kind, "onset": onset} for pid, onset in got]
    needs = pd.DataFrame(rows, columns=["pid", "kind", "onset"])
    needs["known"] = rng.random(len(needs)) < KNOWN
    needs["confounder"] = False
    conf = _confounders(rng, ctx, care, cards, needs)
    _services_for_heavy_care(ctx, care, needs)
    cases = _cases(rng, ctx, needs, kids, cards, ordinary_share(known_share))
    return pd.concat([needs, conf], ignore_index=True), cases


def _pick(rng: np.random.Generator, cand: np.ndarray, k: int, ctx: _Ctx) -> np.ndarray:
    """Up to k candidates from distinct, still unused households."""
    cand = cand[~ctx.used[ctx.hh[cand]]]
    cand = rng.permutation(cand)
    _, first = np.unique(ctx.hh[cand], return_index=True)
    chosen = cand[np.sort(first)][:k]
    ctx.used[ctx.hh[chosen]] = True
    return chosen


def _attendance(
    ctx: _Ctx,
    pid: int,
    onset: int,
    absent: float,
    step: float,
    cap: float,
    late: float = 0.0,
    early: float = 0.0,
    notes: int = 0,
) -> None:
    r = ctx.row[pid]
    if r < 0:
        return
    s0 = ctx.grid_from(onset)
    k = np.arange(len(ctx.school.grid)) - s0
    on = k >= 0
    s = ctx.school
    s.add_abs[r] += np.where(on, np.minimum(cap, absent + step * k), 0)
    s.add_late[r] += np.where(on, np.minimum(4.0, late * (1 + k)), 0)
    s.add_early[r] += np.where(on, early, 0)
    if notes:
        s.notes[r] = np.where(on, notes, s.notes[r])


def _young_carer_elder(rng, ctx: _Ctx, k: int, care: Care, child: ChildHealth, **_) -> list:
    old = ctx.stay & (ctx.age >= 65)
    has_elder = ctx.per_household(old) > 0
    cand = np.flatnonzero(ctx.pupil & (ctx.age >= 10) & (ctx.age <= 15) & has_elder[ctx.hh])
    out = []
    for pid, onset in zip(_pick(rng, cand, k, ctx), _onsets(rng, k, ctx.months), strict=False):
        m = ctx.members(ctx.hh[pid])
        elder = m[ctx.age[m] >= 65][0]
        care.level[elder] = (
            care.level[elder] if 1 <= care.level[elder] <= 5 else rng.choice([-1, 3, 4])
        )
        care.service[elder] = care.level[elder] > 0
        care.units[elder] = 9000.0 if care.level[elder] > 0 else 0.0
        care.level2[elder], care.service2[elder], care.change_am[elder] = (
            rng.choice([6, 7]),
            False,
            onset,
        )
        for sib in m[(ctx.age[m] < 6) & (m != pid)]:  # working parents: the toddler is in care
            child.nursery_force[sib], child.nursery_force_from[sib], child.reason[sib] = 2, 0, 0
        _attendance(ctx, pid, onset, 0.04, 0.05, 0.35, late=0.8, early=0.5, notes=2)
        out.append((pid, onset))
    return out


def _carer_disability(rng, ctx: _Ctx, k: int, cards: Cards, **_) -> list:
    kids = ctx.stay & (ctx.age < 18)
    two_kids = ctx.per_household(kids) >= 2
    cand = np.flatnonzero(ctx.pupil & (ctx.age >= 10) & (ctx.age <= 15) & two_kids[ctx.hh])
    out, new = [], []
    for pid, onset in zip(_pick(rng, cand, k, ctx), _onsets(rng, k, ctx.months), strict=False):
        m = ctx.members(ctx.hh[pid])
        sibs = m[(ctx.age[m] < 18) & (m != pid)]
        parents = m[(ctx.age[m] >= 18) & (ctx.age[m] < 65)]
        # a parent with 精神 2級, or the youngest sibling with 愛の手帳 2–3度, without services
        who, kind, grade = (
            (parents[0], 2, 1)
            if rng.random() < 0.3 and len(parents)
            else (sibs[-1], 1, int(rng.choice([7, 8])))
        )
        own = np.flatnonzero((cards.pid == who) & (cards.kind == kind))
        if len(own):
            _split_card(cards, own[0], onset)  # services stop at the onset
        else:
            new.append((who, kind, grade, onset))
        _attendance(ctx, pid, onset, 0.03, 0.04, 0.3, late=0.6, early=0.3, notes=2)
        out.append((pid, onset))
    if new:
        pids, kinds, grades, onsets = (np.array(c) for c in zip(*new, strict=True))
        _append_cards(cards, pids, kinds, grades, onsets)
    return out


def _split_card(cards: Cards, i: int, onset: int) -> None:
    """Card i keeps its services until onset; a copy without services runs from onset."""
    _append_cards(
        cards,
        cards.pid[i : i + 1],
        cards.kind[i : i + 1],
        cards.grade[i : i + 1],
        np.array([onset]),
        diag=cards.diag[i : i + 1],
        to_am=cards.to_am[i : i + 1],
    )
    cards.to_am[i] = onset


def _append_cards(cards: Cards, pid, kind, grade, from_am, diag=None, to_am=None) -> None:
    n = len(pid)
    add = {
        "pid": pid,
        "kind": kind,
        "grade": grade,
        "welfare": np.zeros(n, bool),
        "child_svc": np.zeros(n, bool),
        "diag": np.arange(n) if diag is None else diag,
        "from_am": from_am,
        "to_am": np.full(n, NO_MONTH) if to_am is None else to_am,
    }
    for k, v in add.items():
        setattr(cards, k, np.concatenate([getattr(cards, k), v]))


def _poverty_gap(rng, ctx: _Ctx, k: int, money: Money, **_) -> list:
    single = ctx.pop.h["single_parent"]
    cand = np.flatnonzero(ctx.pupil & (ctx.age >= 6) & (ctx.age <= 15))
    weight_single = single[ctx.hh[cand]]
    cand = np.r_[cand[weight_single], cand[~weight_single][: max(1, len(cand) // 50)]]
    out = []
    for pid, onset in zip(_pick(rng, cand, k, ctx), _onsets(rng, k, ctx.months), strict=False):
        h = ctx.hh[pid]
        day = int(D.month_start(onset)) + int(rng.integers(0, 28))
        if single[h]:
            money.jifu[h], money.jifu_status[h], money.jifu_grant[h] = True, 0, day
            money.seiho_start[h] = NEVER
        else:
            money.seiho_start[h], money.seiho_end[h] = day, NEVER
        money.no_aid[h] = True  # no 就学援助 for any pupil of the household
        if rng.random() < 0.7:  # fees fall into arrears a month after the money trouble starts
            money.arrears_from[h] = onset + 1
        _attendance(ctx, pid, onset, 0.015, 0.005, 0.04)
        out.append((pid, onset))
    return out


def _neglect(rng, ctx: _Ctx, k: int, child: ChildHealth, **_) -> list:
    birth = ctx.pop.p["birth"]
    months_old = D.age_months(birth, ctx.me)
    arrived_before = ctx.pop.p["arrived"] <= D.add_months(birth, 3)
    cand = np.flatnonzero(ctx.stay & (months_old >= 7) & (months_old < 48) & arrived_before)
    out = []
    for pid in _pick(rng, cand, k, ctx):
        # the latest checkup window that closed before the last month's end
        ends = [int(D.add_months(birth[pid : pid + 1], w[1])[0]) for w in CHECKUP_WINDOW]
        starts = [int(D.add_months(birth[pid : pid + 1], w[0])[0]) for w in CHECKUP_WINDOW]
        last = max(i for i in range(3) if ends[i] <= ctx.me)
        onset_day = starts[last] - int(rng.integers(0, 30))
        onset = int(D.abs_month(np.array([onset_day]))[0])
        child.checkup_skip_after[pid] = onset_day
        child.vacc_freeze[pid] = onset_day
        child.nursery_force[pid], child.nursery_force_from[pid] = 0, 0
        m = ctx.members(ctx.hh[pid])
        for sib in m[ctx.pupil[m]]:
            r = ctx.row[sib]
            on = np.arange(len(ctx.school.grid)) >= ctx.grid_from(onset)
            ctx.school.add_nurse[r] += np.where(on, 2.0, 0)
            ctx.school.add_late[r] += np.where(on, 1.0, 0)
        out.append((pid, onset))
    return out


def _non_attendance(rng, ctx: _Ctx, k: int, **_) -> list:
    s = ctx.school
    cand = np.flatnonzero(ctx.pupil & ~s.chronic[np.maximum(ctx.row, 0)])
    junior = grade_at(ctx.pop.p["birth"][cand], ctx.months[-1]) >= 7
    cand = np.r_[cand[junior], cand[junior], cand[junior], cand[~junior]]  # junior high ≈3×
    out = []
    for pid, onset in zip(
        _pick(rng, np.unique(rng.permutation(cand)[: 4 * k + 10]), k, ctx),
        _onsets(rng, k, ctx.months),
        strict=False,
    ):
        _attendance(ctx, pid, onset, 0.10, 0.12, 0.85, late=0.2, notes=1)
        r, s0 = ctx.row[pid], ctx.grid_from(onset)
        idx = np.arange(len(s.grid))
        s.add_nurse[r] += np.where((idx >= s0 - 2) & (idx <= s0), 2.5, 0)
        if rng.random() < 0.35 and 0 <= s0 - 1 < len(s.grid):
            s.bully[r, s0 - 1] = True
        out.append((pid, onset))
    return out


def _isolated_parenting(rng, ctx: _Ctx, k: int, money: Money, child: ChildHealth, **_) -> list:
    birth = ctx.pop.p["birth"]
    months_old = D.age_months(birth, ctx.me)
    single = ctx.pop.h["single_parent"][ctx.hh]
    cand = np.flatnonzero(ctx.stay & single & (months_old >= 1) & (months_old < 36))
    out = []
    for pid in _pick(rng, cand, k, ctx):
        born = int(D.abs_month(birth[pid : pid + 1])[0])
        onset = max(born + 2, int(_onsets(rng, 1, ctx.months)[0]))
        onset = min(onset, max(ctx.months[-1] - 1, born))
        h = ctx.hh[pid]
        day = int(D.month_start(onset))
        money.jifu[h], money.jifu_status[h] = True, int(rng.choice([0, 1]))
        money.jifu_grant[h] = min(int(money.jifu_grant[h]), day)
        money.seiho_start[h] = NEVER
        child.nursery_force[pid] = int(rng.choice([0, 1]))  # no nursery, or waiting for one
        child.nursery_force_from[pid] = day
        out.append((pid, onset))
    return out


def _confounders(rng, ctx: _Ctx, care: Care, cards: Cards, needs: pd.DataFrame) -> pd.DataFrame:
    """Look-alikes without a need: heavy care WITH services, illness absences of children
    with disability services, rising absences that mean nothing, bullying without withdrawal."""
    rows = []
    s = ctx.school
    n_kids = int((ctx.stay & (ctx.age < 18)).sum())
    taken = np.zeros(ctx.pop.size, bool)
    taken[needs["pid"].to_numpy(int)] = True
    old = ctx.stay & (ctx.age >= 65)
    has_elder = ctx.per_household(old) > 0
    cand = np.flatnonzero(ctx.pupil & (ctx.age >= 10) & has_elder[ctx.hh] & ~taken)
    for pid in _pick(rng, cand, max(1, round(n_kids * 0.003)), ctx):
        m = ctx.members(ctx.hh[pid])
        elder = m[ctx.age[m] >= 65][0]
        care.level[elder] = care.level2[elder] = rng.choice([6, 7])
        care.service[elder] = care.service2[elder] = True
        care.units[elder] = 25_000.0
        rows.append((pid, "elder_care_with_services", ctx.months[0]))
    pupils = np.flatnonzero(ctx.pupil & ~taken)
    with_services = np.unique(cards.pid[cards.child_svc])
    ill = pupils[np.isin(pupils, with_services)]
    ill = ill[rng.random(len(ill)) < 0.15]
    g = len(s.grid)
    for pid in ill:
        start = int(rng.integers(0, g))
        span = int(rng.integers(1, 4))
        r = ctx.row[pid]
        s.add_abs[r, start : start + span] += rng.uniform(0.5, 0.9)
        s.notes[r, start : start + span] = 3
        rows.append((pid, "illness_absence", int(s.grid[start])))
    noise = rng.permutation(pupils[~np.isin(pupils, ill)])
    n_noise = max(1, round(len(pupils) * 0.006))
    for pid in noise[:n_noise]:
        onset = int(ctx.months[-1] - rng.integers(1, 4))
        _attendance(ctx, pid, onset, 0.05, 0.07, 0.35)
        rows.append((pid, "rising_absence_noise", onset))
    for pid in noise[n_noise : 2 * n_noise]:
        cols = rng.choice(g, size=min(2, g), replace=False)
        s.bully[ctx.row[pid], cols] = True
        rows.append((pid, "bullying_no_withdrawal", int(s.grid[cols.min()])))
    chronic = s.pid[s.chronic & ~s.juto]
    rows += [(pid, "chronic_absence", int(s.grid[0])) for pid in chronic if not taken[pid]]
    out = pd.DataFrame(rows, columns=["pid", "kind", "onset"])
    out["known"] = False
    out["confounder"] = True
    return out


def _services_for_heavy_care(ctx: _Ctx, care: Care, needs: pd.DataFrame) -> None:
    """Base data: an elder at 要介護4–5 living with a child uses home care; only the planted
    young carers' elders go without, so the pattern is a signal, not noise."""
    kids = ctx.per_household(ctx.stay & (ctx.age < 18)) > 0
    planted = np.zeros(ctx.pop.size, bool)
    for pid in needs.loc[needs["kind"] == "young_carer_elder", "pid"]:
        planted[ctx.members(ctx.hh[pid])] = True
    heavy = (care.level >= 6) & kids[ctx.hh] & ~planted
    care.service[heavy] = care.service2[heavy] = True
    care.units[heavy] = np.maximum(care.units[heavy], 15_000.0)


def _cases(
    rng, ctx: _Ctx, needs: pd.DataFrame, kids: np.ndarray, cards: Cards, ordinary: float
) -> Cases:
    me = ctx.me
    kind_of = {
        "young_carer_elder": C.YOUNG_CARER,
        "young_carer_disability_sibling": C.YOUNG_CARER,
        "poverty_gap": C.CARE_OTHER,
        "neglect": C.ABUSE,
        "non_attendance": C.UPBRINGING,
        "isolated_parenting": C.HEALTH,
    }
    council_p = {
        "neglect": (0.6, 0.4, 0, 0),
        "young_carer_elder": (0, 0.5, 0, 0.5),
        "young_carer_disability_sibling": (0, 0.5, 0, 0.5),
        "isolated_parenting": (0, 0.6, 0, 0.4),
        "poverty_gap": (0, 0.3, 0, 0.7),
        "non_attendance": (0, 0.3, 0, 0.7),
    }
    known = needs[needs["known"]]
    rows = []
    for pid, kind, onset in zip(known["pid"], known["kind"], known["onset"], strict=True):
        received = min(int(D.month_start(onset)) + int(rng.integers(0, 45)), me - 1)
        c = kind_of[kind] if rng.random() < 0.75 else C.CARE_OTHER
        closed = received + int(rng.integers(30, 200)) if rng.random() < 0.15 else NEVER
        rows.append(
            (pid, received, c, rng.choice(4, p=council_p[kind]), closed if closed <= me else NEVER)
        )
    # ordinary cases: children without a planted need
    pool = np.flatnonzero(kids & ~np.isin(np.arange(ctx.pop.size), needs["pid"].to_numpy(int)))
    n_ord = round(ordinary * int(kids.sum()))
    disabled = np.isin(pool, cards.pid)
    chosen = rng.choice(pool, min(n_ord, len(pool)), replace=False) if len(pool) else pool
    mix = [C.CARE_OTHER, C.HEALTH, C.DISABILITY, C.UPBRINGING, C.DELINQUENCY, C.ABUSE, C.OTHER]
    for pid in chosen:
        c = (
            C.DISABILITY
            if disabled[np.searchsorted(pool, pid)] and rng.random() < 0.6
            else int(rng.choice(mix, p=[0.28, 0.16, 0.08, 0.22, 0.06, 0.12, 0.08]))
        )
        if c == C.DELINQUENCY and ctx.age[pid] < 12:
            c = C.UPBRINGING
        for _ in range(1 + (rng.random() < 0.2)):
            received = me - int(rng.integers(1, 3 * 365))
            received = max(received, int(ctx.pop.p["birth"][pid]) + 30)
            closed = received + int(rng.integers(30, 500)) if rng.random() < 0.55 else NEVER
            council = rng.choice(4, p=(0.5, 0.3, 0, 0.2) if c == C.ABUSE else (0.05, 0.2, 0, 0.75))
            rows.append((pid, received, c, council, closed if closed <= me else NEVER))
    # 特定妊婦: a few expectant mothers registered with the council
    women = np.flatnonzero(ctx.stay & (ctx.pop.p["sex"] == 2) & (ctx.age >= 17) & (ctx.age <= 40))
    for pid in rng.choice(
        women, min(len(women), max(1, round(kids.sum() * 0.0008))), replace=False
    ):
        rows.append((pid, me - int(rng.integers(10, 200)), C.HEALTH, 2, NEVER))
    pid, received_on, kind, council, closed_on = (
        np.array(c, dtype="int64") for c in zip(*rows, strict=True)
    )
    order = np.argsort(received_on, kind="stable")
    fy = D.fiscal_year(D.abs_month(received_on[order]))
    number = np.empty(len(order), "int64")
    number[order] = fy * 1_000_000 + np.arange(1, len(order) + 1)
    return Cases(
        pid=pid,
        number=number,
        received=received_on,
        kind=kind,
        council=council,
        closed=closed_on,
        note=rng.integers(0, len(C.CONSULT_NOTES), len(pid)),
    )


def truth_table(needs: pd.DataFrame, pop: Population, school: School) -> pd.DataFrame:
    row = school.index(needs["pid"].to_numpy(int))
    out = pd.DataFrame(
        {
            "atena_no": [f"{a:010d}" for a in pop.p["atena"][needs["pid"].to_numpy(int)]],
            "pupil_no": [f"{school.number[r]}" if r >= 0 else "" for r in row],
            "kind": needs["kind"].to_numpy(),
            "onset_month": [f"{m // 12}-{m % 12 + 1:02d}" for m in needs["onset"].to_numpy(int)],
            "known_to_center": needs["known"].astype(int).to_numpy(),
            "confounder": needs["confounder"].astype(int).to_numpy(),
        }
    )
    return out.sort_values(["confounder", "kind", "atena_no"], kind="stable").reset_index(drop=True)

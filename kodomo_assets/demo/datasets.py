"""The 11 exports as typed records: one row per record version, visible in months
[_mf, _mt). Records are built month by month and consecutive identical months merged, so
each version is rendered once however many months show it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from kodomo_assets.demo import codes as C
from kodomo_assets.demo import dates as D
from kodomo_assets.demo import households as H
from kodomo_assets.demo.needs import Cases
from kodomo_assets.demo.places import Places
from kodomo_assets.demo.population import Population
from kodomo_assets.demo.school import School
from kodomo_assets.demo.services import (
    CHECKUP_MISS,
    CHECKUP_WINDOW,
    DOSE_MONTHS,
    Cards,
    Care,
    ChildHealth,
    Money,
    nursery_state,
)
from kodomo_assets.demo.variants import Variants, school_address

AID_TARGET = 0.155 * 0.9325  # 準要保護 share of pupils in Tokyo (就学援助実施状況等調査 FY2022)
# register order inside a household: 世帯主, spouse, parents, children, 子の妻, 孫, others
REL_ORDER = np.array([0, 1, 1, 3, 2, 2, 6, 6, 5, 7, 7, 7, 7, 4, 9, 8])


@dataclass
class World:
    pop: Population
    places: Places
    months: list[int]
    care: Care
    cards: Cards
    money: Money
    child: ChildHealth
    school: School
    cases: Cases
    rng: np.random.Generator
    variants: Variants

    def release(self, *parts: str) -> None:
        """Drop inputs that no later export needs."""
        for k in parts:
            setattr(self, k, None)

    def month(self, m: int) -> tuple[int, int, np.ndarray]:
        return self.months[m], int(self.pop.month_end[m]), self.pop.present[m]


def collapse(frames: list[dict[str, np.ndarray]], key: list[str]) -> pd.DataFrame:
    """Merge a record's consecutive identical months into one row with _mf/_mt. Works column
    by column on numpy arrays (a stable lexsort, as sort_values), so the months' rows are
    never copied whole."""
    cols = [c for c in frames[0] if c != "_m"]

    def joined(c: str) -> np.ndarray:
        return np.concatenate([f[c] for f in frames])

    m = joined("_m")
    order = np.lexsort([m, *(joined(k) for k in reversed(key))])
    m = m[order]
    same = np.ones(len(m), bool)
    same[:1] = False
    for c in cols:
        v = joined(c)[order]
        same[1:] &= v[1:] == v[:-1]
    same[1:] &= m[1:] == m[:-1] + 1
    group = np.cumsum(~same) - 1
    first = np.flatnonzero(~same)
    out = {c: joined(c)[order[first]] for c in cols}
    out["_mf"] = m[first]
    out["_mt"] = np.bincount(group, weights=None, minlength=len(first)) + m[first]
    return pd.DataFrame(out, copy=False)


def _frame(m: int, **cols) -> dict[str, np.ndarray]:
    n = next(len(v) for v in cols.values() if np.ndim(v))
    out = {k: v if np.ndim(v) else np.full(n, v) for k, v in cols.items()}
    out["_m"] = np.full(n, m)
    return out


def _heads(pop: Population, pres: np.ndarray, hh: np.ndarray, rel: np.ndarray) -> np.ndarray:
    head = np.full(len(pop.h["kind"]), -1)
    idx = np.flatnonzero(pres & (rel == H.HEAD))
    head[hh[idx]] = idx
    return head


def _with(who: np.ndarray, pres: np.ndarray, hh: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """ref[who] where that person is present in the same household, else -1."""
    r = ref[who]
    ok = (r >= 0) & pres[np.maximum(r, 0)] & (hh[np.maximum(r, 0)] == hh[who])
    return np.where(ok, r, -1)


def _guardian(pop: Population, who: np.ndarray, pres, hh, rel) -> np.ndarray:
    mother = _with(who, pres, hh, pop.p["mother"])
    father = _with(who, pres, hh, pop.p["father"])
    head = _heads(pop, pres, hh, rel)[hh[who]]
    return np.where(
        mother >= 0, mother, np.where(father >= 0, father, np.where(head >= 0, head, who))
    )


def jumin(w: World) -> pd.DataFrame:
    """One row per person and address version (before/after a move inside the city), in
    register order. Sorted with one lexsort and gathered column by column: the register
    is the largest export, so no whole-frame concat or sort copies."""
    pop, p = w.pop, w.pop.p
    present = pop.present
    me = pop.month_end
    parts = []
    for v in (0, 1):
        vis = present & ((me[:, None] >= p["chg"][None, :]) == bool(v))
        who = np.flatnonzero(vis.any(axis=0))
        mf = vis[:, who].argmax(axis=0)
        parts.append((v, who, mf, mf + vis[:, who].sum(axis=0)))
        del vis

    def col(get) -> np.ndarray:
        return np.concatenate([get(v, who, mf, mt) for v, who, mf, mt in parts])

    hh = col(lambda v, who, mf, mt: p["hh1" if v else "hh0"][who])
    rel = col(lambda v, who, mf, mt: p["rel1" if v else "rel0"][who])
    atena = col(lambda v, who, mf, mt: p["atena"][who])
    mf = col(lambda v, who, mf, mt: mf)
    order = np.lexsort((mf, atena, REL_ORDER[rel], pop.h["number"][hh]))  # = stable sort_values
    out = {"atena": atena[order], "hh_no": pop.h["number"][hh[order]]}
    for k in ("mynumber", "sur", "giv", "birth", "sex"):
        out[k] = col(lambda v, who, mf, mt, k=k: p[k][who])[order]
    if w.variants.register_given:  # a middle name the 学齢簿 drops
        middle = np.array(sorted(w.variants.register_given))
        person = col(lambda v, who, mf, mt: who)[order]
        hit = np.flatnonzero(np.isin(person, middle))
        out["giv"][hit] = [w.variants.register_given[int(x)] for x in person[hit]]
        del person
    out["rel"], out["hh"] = rel[order], hh[order]
    out["district"] = pop.h["district"][out["hh"]]
    out["foreign"] = col(lambda v, who, mf, mt: p["foreign"][who])[order].astype(int)
    out["registered"] = col(lambda v, who, mf, mt: p["chg" if v else "start"][who])[order]
    out["_mf"], out["_mt"] = mf[order], col(lambda v, who, mf, mt: mt)[order]
    return pd.DataFrame(out, copy=False)  # the arrays are fresh: no second copy


def soudan(w: World) -> pd.DataFrame:
    c, frames = w.cases, []
    for m in range(len(w.months)):
        _, me, pres = w.month(m)
        sel = np.flatnonzero((c.received <= me) & pres[c.pid])
        closed = c.closed[sel] <= me
        frames.append(
            _frame(
                m,
                number=c.number[sel],
                atena=w.pop.p["atena"][c.pid[sel]],
                received=c.received[sel],
                kind=c.kind[sel],
                council=c.council[sel],
                status=closed.astype(int),
                closed=np.where(closed, c.closed[sel], D.NONE),
                note=c.note[sel],
            )
        )
    return collapse(frames, ["number"])


def teate(w: World) -> pd.DataFrame:
    pop, p, money = w.pop, w.pop.p, w.money
    frames = []
    lost_from = 2022 * 12 + 9  # 特例給付 ends for incomes over the cap from 2022-10
    for m in range(len(w.months)):
        am, me, pres = w.month(m)
        hh, rel = pop.hh_at(me), pop.rel_at(me)
        grade = int(D.fiscal_year(am)) - D.school_cohort(p["birth"]) - 6
        arrived = np.maximum(p["birth"], p["arrived"])
        parts = []
        # 児童手当: every child to the end of 中学3年
        kid = np.flatnonzero(pres & (grade <= 9) & (p["birth"] <= me))
        grant = arrived[kid] + money.grant_lag[kid]
        kid, grant = kid[grant <= me], grant[grant <= me]
        status = money.cb_status[hh[kid]]
        status = np.where(money.cb_lost[hh[kid]] & (am >= lost_from), 3, status)
        parts.append(
            (kid, 0, status, grant, money.cb_income[hh[kid]], _recipient(pop, kid, pres, hh, rel))
        )
        # 児童扶養手当: single-parent households, children to the March after 18
        h = pop.h
        jk = np.flatnonzero(pres & (grade <= 12) & money.jifu[hh] & h["single_parent"][hh])
        grant = np.maximum(money.jifu_grant[hh[jk]], arrived[jk] + money.grant_lag[jk])
        jk, grant = jk[grant <= me], grant[grant <= me]
        parts.append(
            (
                jk,
                1,
                money.jifu_status[hh[jk]],
                grant,
                money.jifu_income[hh[jk]],
                _recipient(pop, jk, pres, hh, rel),
            )
        )
        # 特別児童扶養手当: disabled children under 20
        sk = np.flatnonzero(pres & (grade <= 14) & money.special)
        grant = np.maximum(p["birth"][sk] + 400, arrived[sk] + 60) + money.grant_lag[sk]
        sk, grant = sk[grant <= me], grant[grant <= me]
        parts.append(
            (
                sk,
                2,
                money.special_status[sk],
                grant,
                money.cb_income[hh[sk]],
                _recipient(pop, sk, pres, hh, rel),
            )
        )
        for kid, kind, status, grant, income, recipient in parts:
            frames.append(
                _frame(
                    m,
                    recipient=p["atena"][recipient],
                    child=p["atena"][kid],
                    kind=kind,
                    status=status,
                    granted=grant,
                    income=(income // 1000 * 1000).astype("int64"),
                    account=money.account[recipient],
                )
            )
    return collapse(frames, ["child", "kind"])


def _recipient(pop: Population, kid, pres, hh, rel) -> np.ndarray:
    father = _with(kid, pres, hh, pop.p["father"])
    mother = _with(kid, pres, hh, pop.p["mother"])
    head = _heads(pop, pres, hh, rel)[hh[kid]]
    return np.where(
        father >= 0, father, np.where(mother >= 0, mother, np.where(head >= 0, head, kid))
    )


def seiho(w: World) -> pd.DataFrame:
    pop, money, frames = w.pop, w.money, []
    for m in range(len(w.months)):
        am, me, pres = w.month(m)
        hh = pop.hh_at(me)
        start, end = money.seiho_start[hh], money.seiho_end[hh]
        on = pres & (start <= me) & ((end > me) | (me - end < 365)) & (pop.p["start"] <= end)
        who = np.flatnonzero(on)
        pupils = w.school.pid[w.school.on_roll[m] & ~w.school.juto]
        care = (w.care.level > 0) & pres
        bits = money.seiho_bits[hh[who]].copy()
        bits |= np.where(np.isin(hh[who], hh[pupils]), 2, 0)
        bits |= np.where(np.isin(hh[who], hh[care]), 16, 0)
        frames.append(
            _frame(
                m,
                case=money.seiho_case[hh[who]],
                atena=pop.p["atena"][who],
                hh_no=pop.h["number"][hh[who]],
                start=start[who],
                end=np.where(end[who] <= me, end[who], D.NONE),
                aid=bits,
            )
        )
    return collapse(frames, ["atena"])


def kaigo(w: World) -> pd.DataFrame:
    c, pop, rng, frames = w.care, w.pop, w.rng, []
    for m in range(len(w.months)):
        am, me, pres = w.month(m)
        changed = am >= c.change_am
        level = np.where(changed, c.level2, c.level)
        who = np.flatnonzero(pres & (level >= 0))
        lv, ch = level[who], changed[who]
        service = np.where(ch, c.service2[who], c.service[who]) & (lv > 0)
        start0 = np.where(ch, c.change_am[who], c.start0[who])
        dur = np.where(ch, 12, c.dur[who])
        cs = start0 + (am - start0) // dur * dur
        units = np.where(
            service,
            np.where(ch & service, 20_000, c.units[who]) * rng.uniform(0.85, 1.15, len(who)),
            0,
        )
        frames.append(
            _frame(
                m,
                insured=c.insured[who],
                atena=pop.p["atena"][who],
                level=lv,
                valid_from=np.where(lv > 0, D.month_start(cs), D.NONE),
                valid_to=np.where(lv > 0, D.month_end(cs + dur - 1), D.NONE),
                service=np.where(service, 0, 1),
                units=units.astype("int64"),
            )
        )
    return collapse(frames, ["atena"])


def shogai(w: World) -> pd.DataFrame:
    c, pop, frames = w.cards, w.pop, []
    offsets = np.cumsum([0] + [len(d) for d in C.DIAGNOSES])[:-1]
    for m in range(len(w.months)):
        am, me, pres = w.month(m)
        sel = np.flatnonzero(pres[c.pid] & (c.from_am <= am) & (am < c.to_am))
        pid = c.pid[sel]
        child = D.age_years(pop.p["birth"][pid], me) < 18
        kind = c.kind[sel]
        diag = offsets[kind] + c.diag[sel] % np.array([len(d) for d in C.DIAGNOSES])[kind]
        frames.append(
            _frame(
                m,
                atena=pop.p["atena"][pid],
                kind=kind,
                grade=c.grade[sel],
                welfare=np.where(c.welfare[sel], 0, 1),
                child_svc=np.where(c.child_svc[sel] & child, 0, 1),
                diag=diag,
            )
        )
    return collapse(frames, ["atena", "kind"])


def boshi(w: World) -> pd.DataFrame:
    pop, ch, p, frames = w.pop, w.child, w.pop.p, []
    birth, start = p["birth"], p["arrived"]
    young = np.flatnonzero((birth > pop.month_end[0] - 7 * 366) & p["resident"])
    b, s = birth[young], start[young]
    statuses: list[np.ndarray] = []
    visibles: list[np.ndarray] = []
    days: list[np.ndarray] = []
    for i, (lo, hi) in enumerate(CHECKUP_WINDOW):
        w0, w1 = D.add_months(b, lo), D.add_months(b, hi)
        missed = (ch.checkup_skip_after[young] <= w1) | (ch.checkup_u[young, i] < CHECKUP_MISS[i])
        outside = s > w1  # moved in after the checkup age: 対象外
        open_from = np.maximum(w0, s)
        attend = open_from + (
            ch.checkup_day_u[young, i] * np.maximum(w1 - open_from - 1, 0)
        ).astype("int64")
        st = np.where(outside, 2, np.where(missed, 1, 0))
        statuses.append(st)
        visibles.append(np.where(st == 2, s, np.where(st == 1, w1, attend)))
        days.append(np.where(st == 0, attend, D.NONE))
    status, visible, day = np.stack(statuses), np.stack(visibles), np.stack(days)
    for m in range(len(w.months)):
        am, me, pres = w.month(m)
        under6 = me < D.add_months(b, 72)
        for i in range(3):
            sel = np.flatnonzero(pres[young] & under6 & (visible[i] <= me))
            frames.append(
                _frame(
                    m,
                    atena=p["atena"][young[sel]],
                    checkup=i,
                    status=status[i, sel],
                    day=day[i, sel],
                    findings=np.where(status[i, sel] == 0, young[sel] % len(C.FINDINGS), -1),
                )
            )
    return collapse(frames, ["atena", "checkup"])


def yobo(w: World) -> pd.DataFrame:
    ch, p, frames = w.child, w.pop.p, []
    for m in range(len(w.months)):
        am, me, pres = w.month(m)
        who = np.flatnonzero(pres & (p["birth"] <= me) & (D.age_years(p["birth"], me) < 13))
        age_m = D.age_months(p["birth"][who], me)
        due = np.searchsorted(DOSE_MONTHS, age_m, side="right")
        cls = ch.vacc_class[who]
        miss = np.where(
            cls == 0, 0, np.where(cls == 1, np.minimum(due, 1 + (due >= 14)), np.round(due * 0.35))
        )
        given = due - miss.astype(int)
        freeze = ch.vacc_freeze[who]
        frozen_due = np.searchsorted(
            DOSE_MONTHS, D.age_months(p["birth"][who], np.minimum(freeze, me)), side="right"
        )
        given = np.where(freeze < me, np.minimum(given, np.maximum(frozen_due - 2, 0)), given)
        frames.append(_frame(m, atena=p["atena"][who], due=due, given=given))
    return collapse(frames, ["atena"])


def hoiku(w: World) -> pd.DataFrame:
    ch, p, frames = w.child, w.pop.p, []
    for m in range(len(w.months)):
        am, me, pres = w.month(m)
        young = np.flatnonzero(pres & (p["birth"] > me - 7 * 366))
        status, enrol = nursery_state(ch, young, p["birth"][young], p["arrived"][young], am, me)
        ok = status >= 0
        who = young[ok]
        frames.append(
            _frame(
                m,
                atena=p["atena"][who],
                facility=ch.facility[who],
                status=status[ok],
                reason=ch.reason[who],
                enrolled=enrol[ok],
            )
        )
    return collapse(frames, ["atena"])


def gakurei(w: World) -> pd.DataFrame:
    pop, s, money, p, frames = w.pop, w.school, w.money, w.pop.p, []
    p_other = None
    for m in range(len(w.months)):
        am, me, pres = w.month(m)
        hh_all, rel = pop.hh_at(me), pop.rel_at(me)
        r = np.flatnonzero(s.on_roll[m])
        pid = s.pid[r]
        hh = hh_all[pid]
        seiho = (money.seiho_start[hh] <= me) & (money.seiho_end[hh] > me)
        jifu = money.jifu[hh] & pop.h["single_parent"][hh]
        p_jifu = np.where(money.jifu_status[hh] == 0, 0.97, 0.6)
        if p_other is None:  # tune the other households' chance once, to hit the Tokyo share
            fixed = seiho | jifu | money.no_aid[hh] | s.juto[r]
            expected = (p_jifu * (jifu & ~seiho & ~money.no_aid[hh])).sum()
            p_other = float(
                np.clip((AID_TARGET * len(r) - expected) / max((~fixed).sum(), 1), 0, 1)
            )
        p_aid = np.where(jifu, p_jifu, p_other)
        aid = np.where(seiho, 0, np.where(money.aid_u[hh] < p_aid, 1, 2))
        aid = np.where(money.no_aid[hh] | s.juto[r], 2, aid)
        arrears = (am >= money.arrears_from[hh]) | (
            money.arrears_u[hh] < np.where(aid < 2, 0.05, 0.015)
        )
        guardian = _guardian(pop, pid, pres, hh_all, rel)
        g_sur = np.where(s.juto[r], s.guardian_sur[r], p["sur"][guardian])
        g_giv = np.where(s.juto[r], s.guardian_giv[r], p["giv"][guardian])
        addr = pop.h["address"][hh]
        form = w.variants.address_form[r]
        for i in np.flatnonzero(form):
            addr[i] = school_address(addr[i], int(form[i]))
        frames.append(
            _frame(
                m,
                number=s.number[r],
                atena=np.where(s.blank[r], -1, p["atena"][pid]),
                sur=p["sur"][pid],
                giv=p["giv"][pid],
                kana=w.variants.kana[r],
                birth=w.variants.birth[r],
                sex=p["sex"][pid],
                hh=hh,
                addr=addr,
                school=s.school[m, r],
                grade=s.grade[m, r],
                aid=aid,
                arrears=np.where(arrears, 0, 1),
                g_sur=g_sur,
                g_giv=g_giv,
            )
        )
    return collapse(frames, ["number"])


def shukketsu(w: World) -> pd.DataFrame:
    s = w.school
    months = np.array(w.months)
    n, g = s.days.shape
    fy_m, fy_s = D.fiscal_year(months), D.fiscal_year(s.grid)
    # visible in month m: on the roll, the grid month not later, same 年度
    vis = (
        s.on_roll[:, :, None]
        & (months[:, None, None] >= s.grid[None, None, :])
        & (fy_m[:, None, None] == fy_s[None, None, :])
    )
    count = vis.sum(axis=0)
    mf = vis.argmax(axis=0)
    r, c = np.nonzero(count)
    order = np.lexsort((c, s.number[r]))
    r, c = r[order], c[order]
    return pd.DataFrame(
        {
            "number": s.number[r],
            "month": s.grid[c],
            "days": s.days[r, c],
            "absent": s.absent[r, c],
            "late": s.late[r, c],
            "early": s.early[r, c],
            "nurse": s.nurse[r, c],
            "bullied": np.where(s.bullied[r, c], 0, 1),
            "note": s.note[r, c],
            "_mf": mf[r, c],
            "_mt": mf[r, c] + count[r, c],
        },
        copy=False,
    )


BUILDERS = {
    "jumin": jumin,
    "soudan": soudan,
    "teate": teate,
    "seiho": seiho,
    "kaigo": kaigo,
    "shogai": shogai,
    "boshi": boshi,
    "yobo": yobo,
    "hoiku": hoiku,
    "gakurei": gakurei,
    "shukketsu": shukketsu,
}

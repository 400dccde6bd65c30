"""Pupils (学齢簿) and their monthly attendance.

Rates: 不登校 (30+ days a year) elementary 0.021, junior high 0.067 (問題行動・不登校調査
FY2023); いじめ認知 0.058 per pupil-year (same survey), spread over months. The chronic
non-attenders below are most of those; planted needs and noise add the rest.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from kodomo_assets.demo import dates as D
from kodomo_assets.demo import names as N
from kodomo_assets.demo import population as PO
from kodomo_assets.demo.codes import ABSENCE_NOTES
from kodomo_assets.demo.places import CITY, Places, addresses
from kodomo_assets.demo.services import affine_ids

# typical public-school days by calendar month (Tokyo; August is summer break)
SCHOOL_DAYS = {4: 18, 5: 19, 6: 21, 7: 14, 8: 0, 9: 20, 10: 21, 11: 19, 12: 16, 1: 17, 2: 18, 3: 16}
CHRONIC = (0.009, 0.04)  # elementary, junior high: stable high absence from April
BLANK_ATENA = 0.024  # resident pupils whose 宛名番号 was never entered (plus 住登外 below)
NOT_REGISTERED = 0.006  # 住登外 pupils (区域外就学, DV evacuees) as a share of pupils
NEIGHBOURS = ("東京都立川市", "東京都福生市", "東京都八王子市")
_UNSIMULATED = np.zeros((0, 0), "int64")


@dataclass
class School:
    pid: np.ndarray  # every person on the roll in some month (住登外 included)
    number: np.ndarray  # 学籍番号
    blank: np.ndarray  # 宛名番号 left blank in 学齢簿
    juto: np.ndarray  # not resident (住登外)
    guardian_sur: np.ndarray  # for 住登外 pupils
    guardian_giv: np.ndarray
    on_roll: np.ndarray  # (months, pupils)
    grade: np.ndarray  # (months, pupils) 1..9
    school: np.ndarray  # (months, pupils) index into places.school_names
    grid: np.ndarray  # absolute months of the attendance grid (April of the first 年度 on)
    chronic: np.ndarray
    add_abs: np.ndarray  # (pupils, grid) planted additions
    add_late: np.ndarray
    add_early: np.ndarray
    add_nurse: np.ndarray
    bully: np.ndarray  # forced bullying recognition
    notes: np.ndarray  # which absence-notes set applies
    # filled by simulate(), (pupils, grid); empty until then
    days: np.ndarray = field(default_factory=lambda: _UNSIMULATED.copy())
    absent: np.ndarray = field(default_factory=lambda: _UNSIMULATED.copy())
    late: np.ndarray = field(default_factory=lambda: _UNSIMULATED.copy())
    early: np.ndarray = field(default_factory=lambda: _UNSIMULATED.copy())
    nurse: np.ndarray = field(default_factory=lambda: _UNSIMULATED.copy())
    bullied: np.ndarray = field(default_factory=lambda: _UNSIMULATED.copy())
    note: np.ndarray = field(default_factory=lambda: _UNSIMULATED.copy())

    def index(self, pids: np.ndarray) -> np.ndarray:
        """Row of each pid in the pupil arrays (-1 when not a pupil)."""
        pos = np.searchsorted(self.pid, pids)
        pos = np.minimum(pos, len(self.pid) - 1)
        return np.where(self.pid[pos] == pids, pos, -1)


def grade_at(birth: np.ndarray, am: int) -> np.ndarray:
    return int(D.fiscal_year(am)) - D.school_cohort(birth) - 6


def build(
    rng: np.random.Generator, pop: PO.Population, places: Places, months: list[int]
) -> School:
    p = pop.p
    grades = np.stack([grade_at(p["birth"], am) for am in months])
    roll = pop.present & (grades >= 1) & (grades <= 9)
    resident = np.flatnonzero(roll.any(axis=0))
    # 住登外 pupils: on the roll every month, in no other department's data
    n_juto = max(1, round(len(resident) * NOT_REGISTERED))
    fy0 = int(D.fiscal_year(months[0]))
    cohort = fy0 - 6 - rng.integers(1, 10, n_juto)
    birth = D.month_start(cohort * 12 + 3) + 1 + np.floor(rng.random(n_juto) * 365).astype("int64")
    sex = rng.integers(1, 3, n_juto)
    district = rng.integers(0, len(places.code), n_juto)
    addr = addresses(rng, places.town, district, np.zeros(n_juto, bool))
    outside = rng.random(n_juto) < 0.4
    addr = np.where(
        outside,
        np.array([a.replace(CITY, NEIGHBOURS[i % 3]) for i, a in enumerate(addr)], dtype=object),
        addr,
    )
    sur = rng.integers(0, len(N.SURNAMES), n_juto)
    juto = PO.add_nonresidents(pop, rng, birth, sex, district, addr, sur)
    grades = np.stack([grade_at(pop.p["birth"], am) for am in months])
    pid = np.r_[resident, juto]
    on_roll = pop.present[:, pid] & (grades[:, pid] >= 1) & (grades[:, pid] <= 9)
    on_roll[:, len(resident) :] = (grades[:, juto] >= 1) & (grades[:, juto] <= 9)
    g = grades[:, pid]
    district_m = np.stack([pop.h["district"][pop.hh_at(me)[pid]] for me in pop.month_end])
    school = np.where(g <= 6, places.elementary[district_m], places.junior[district_m])
    n = len(pid)
    grid = np.arange(int(D.fiscal_year(months[0])) * 12 + 3, months[-1] + 1)
    junior = g[-1] >= 7
    chronic = rng.random(n) < np.where(junior, CHRONIC[1], CHRONIC[0])
    blank = np.r_[rng.random(len(resident)) < BLANK_ATENA, np.ones(n_juto, bool)]
    zeros = np.zeros((n, len(grid)))
    return School(
        pid=pid,
        number=affine_ids(np.arange(n), 8, int(rng.integers(0, 10**7))),
        blank=blank,
        juto=np.r_[np.zeros(len(resident), bool), np.ones(n_juto, bool)],
        guardian_sur=np.r_[np.full(len(resident), -1), sur],
        guardian_giv=np.r_[
            np.full(len(resident), -1),
            PO.given_names(
                rng,
                np.where(rng.random(n_juto) < 0.8, 2, 1),
                birth - 33 * 365,
                np.zeros(n_juto, bool),
            ),
        ],
        on_roll=on_roll,
        grade=g,
        school=school,
        grid=grid,
        chronic=chronic,
        add_abs=zeros.copy(),
        add_late=zeros.copy(),
        add_early=zeros.copy(),
        add_nurse=zeros.copy(),
        bully=np.zeros((n, len(grid)), bool),
        notes=np.zeros((n, len(grid)), "int8"),
    )


def simulate(rng: np.random.Generator, s: School, months: list[int], n_schools: int) -> None:
    """Monthly counts per pupil: a personal baseline plus whatever needs.py planted."""
    n, g = s.add_abs.shape
    cal = np.array([SCHOOL_DAYS[am % 12 + 1] for am in s.grid])
    jitter = rng.integers(-1, 2, (n_schools, g))
    per_school = np.where(cal > 0, np.maximum(cal + jitter, 0), 0)
    # before the first reference month the pupil's school is the one of that month
    mi = np.clip(np.searchsorted(months, s.grid), 0, len(months) - 1)
    s.days = per_school[s.school[mi].T, np.arange(g)]
    base = np.minimum(rng.gamma(1.5, 0.025 / 1.5, n), 0.3)
    base = np.where(s.chronic, rng.uniform(0.35, 0.95, n), base)
    p_abs = np.clip(base[:, None] + s.add_abs, 0, 0.97)
    s.absent = rng.binomial(s.days, p_abs)
    at_school = s.days - s.absent
    scale = s.days / 20

    def counts(mean: float, shape: float, add: np.ndarray) -> np.ndarray:
        lam = rng.gamma(shape, mean / shape, int(n))[:, None] * scale + add * (s.days > 0)
        return np.minimum(rng.poisson(np.maximum(lam, 0)), at_school)

    s.late = counts(0.35, 0.4, s.add_late)
    s.early = counts(0.15, 0.4, s.add_early)
    nurse_add = np.where(s.chronic[:, None], -10.0, s.add_nurse)
    s.nurse = counts(0.5, 0.5, nurse_add)
    # いじめ認知 0.058 per pupil-year (≈0.0048 a month)
    s.bullied = ((rng.random((n, g)) < 0.0048) | s.bully) & (s.days > 0)
    sets = np.where(s.chronic[:, None] & (s.notes == 0), 1, s.notes)
    sizes = np.array([len(x) for x in ABSENCE_NOTES])
    offsets = np.cumsum(sizes) - sizes
    pick = offsets[sets] + (rng.random((n, g)) * sizes[sets]).astype(int)
    s.note = np.where(s.absent > 0, pick, -1)

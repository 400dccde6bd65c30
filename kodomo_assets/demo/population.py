"""One resident population evolving month by month: births, deaths, moves in and out,
and young adults leaving home. Every person ever resident in the period keeps one row,
so 宛名番号 is stable and a month's register is a mask, not a copy."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kodomo_assets.demo import dates as D
from kodomo_assets.demo import households as H
from kodomo_assets.demo import names as N
from kodomo_assets.demo.places import Places, addresses

NEVER = 10**7  # a day far beyond any horizon
# Annual rates (not in statistics.md; 人口動態統計 2022 and 住民基本台帳人口移動報告, U):
BIRTHS = 0.0068  # births per resident per year (Tokyo ≈ 7‰)
DEATHS = 0.0105  # deaths per resident per year (national 11.7‰, younger Tama cities lower)
MOVE_IN = 0.048  # persons moving in per resident per year, arriving as households
SPLITS = 0.05  # yearly chance that an adult child aged 19–34 sets up their own household

# surname and given-name tables, foreign names appended after the Japanese ones
SUR_KANJI = np.array([s[0] for s in N.SURNAMES] + N.FOREIGN_SURNAMES, dtype=object)
SUR_KANA = np.array([s[1] for s in N.SURNAMES] + N.FOREIGN_SURNAMES, dtype=object)
_SUR_P = np.array([s[2] for s in N.SURNAMES]) / sum(s[2] for s in N.SURNAMES)
_SEGMENTS = [
    *N.MALE,
    *N.FEMALE,
    [(k, k) for k in N.FOREIGN_MALE],
    [(k, k) for k in N.FOREIGN_FEMALE],
]
_DRAWN = [g for seg in _SEGMENTS for g in seg]
# foreign given names with a middle name, as the register holds some (demo/variants.py):
# after every drawn name, so no draw changes; MIDDLE_GIVEN_START + k * len(MIDDLE_NAMES) + m
# is MIDDLE_NAMES[m] before foreign given name k
FOREIGN_GIVEN_START = len(_DRAWN) - len(N.FOREIGN_MALE) - len(N.FOREIGN_FEMALE)
MIDDLE_GIVEN_START = len(_DRAWN)
_MIDDLE = [
    (f"{m}\u3000{g}",) * 2 for g in N.FOREIGN_MALE + N.FOREIGN_FEMALE for m in N.MIDDLE_NAMES
]
GIVEN_KANJI = np.array([g[0] for g in _DRAWN + _MIDDLE], dtype=object)
GIVEN_KANA = np.array([g[1] for g in _DRAWN + _MIDDLE], dtype=object)
_SEG_START = np.cumsum([0] + [len(s) for s in _SEGMENTS])[:-1]
_SEG_LEN = np.array([len(s) for s in _SEGMENTS])

# start: registered at the current address (住民となった年月日); arrived: came to the city
PERSON_FIELDS = (
    "atena",
    "mynumber",
    "birth",
    "sex",
    "sur",
    "giv",
    "foreign",
    "resident",
    "hh0",
    "hh1",
    "rel0",
    "rel1",
    "chg",
    "start",
    "arrived",
    "end",
    "mother",
    "father",
    "spouse",
)
HH_FIELDS = ("number", "district", "address", "kind", "single_parent", "foreign", "since")


@dataclass
class Population:
    p: dict[str, np.ndarray]
    h: dict[str, np.ndarray]
    month_end: np.ndarray  # day of each reference month's end
    present: np.ndarray  # (months, persons) resident on the month's last day

    @property
    def size(self) -> int:
        return len(self.p["birth"])

    def hh_at(self, day: int) -> np.ndarray:
        return np.where(day >= self.p["chg"], self.p["hh1"], self.p["hh0"])

    def rel_at(self, day: int) -> np.ndarray:
        return np.where(day >= self.p["chg"], self.p["rel1"], self.p["rel0"])

    def name(self, idx: np.ndarray | slice = slice(None)) -> tuple[np.ndarray, np.ndarray]:
        sur, giv = self.p["sur"][idx], self.p["giv"][idx]
        return (
            SUR_KANJI[sur] + "\u3000" + GIVEN_KANJI[giv],
            SUR_KANA[sur] + "\u3000" + GIVEN_KANA[giv],
        )


def my_numbers(serial: np.ndarray, salt: int) -> np.ndarray:
    """Unique 12-digit My Numbers: 11 digits from a bijection of the person's serial number
    (an affine map modulo 9·10^10 with a multiplier coprime to it), then the check digit."""
    body = 10**10 + (48_271_364_917 * serial + salt) % (9 * 10**10)
    return body * 10 + check_digit(body)


def check_digit(body: np.ndarray) -> np.ndarray:
    """The official rule: weights 2..7,2..6 on the 11 digits from the right;
    check = 11 - (sum mod 11), and 0 when that is 10 or 11."""
    total = np.zeros(len(body), "int64")
    rest = body.copy()
    for n in range(1, 12):
        q = n + 1 if n <= 6 else n - 5
        total += (rest % 10) * q
        rest //= 10
    c = 11 - total % 11
    return np.where(c >= 10, 0, c)


class _Builder:
    """Accumulates people and households and assigns their numbers in registration order."""

    def __init__(self, rng: np.random.Generator, places: Places):
        self.rng, self.places = rng, places
        self.p = {k: np.empty(0, "int64") for k in PERSON_FIELDS}
        self.h = {k: np.empty(0, "int64") for k in HH_FIELDS}
        self.h["address"] = np.empty(0, object)
        self.next_atena, self.next_hh = 1_000_000, 300_000_000
        self.salt = int(rng.integers(0, 9 * 10**10))

    def _append(self, table: dict, cols: dict) -> None:
        for k, v in cols.items():
            table[k] = np.concatenate([table[k], v])

    def new_households(
        self,
        n: int,
        kind: np.ndarray,
        single_parent: np.ndarray,
        foreign: np.ndarray,
        since: np.ndarray,
    ) -> np.ndarray:
        rng = self.rng
        w = self.places.weight / self.places.weight.sum()
        district = rng.choice(len(w), n, p=w)
        single = (kind == H.SINGLE_YOUNG) | (kind == H.SINGLE_OLD)
        number = self.next_hh + np.cumsum(rng.integers(1, 40, n))
        self.next_hh = int(number[-1]) if n else self.next_hh
        base = len(self.h["number"])
        self._append(
            self.h,
            {
                "number": number,
                "district": district,
                "address": addresses(rng, self.places.town, district, single),
                "kind": kind,
                "single_parent": single_parent,
                "foreign": foreign,
                "since": since,
            },
        )
        return np.arange(base, base + n)

    def add_batch(self, batch: H.Batch, arrive: np.ndarray | None) -> np.ndarray:
        """Add a generated batch; `arrive` (per household) overrides the address date."""
        since = batch.since if arrive is None else arrive
        hh = self.new_households(
            len(batch.kind), batch.kind, batch.single_parent, batch.foreign, since
        )
        c = batch.columns()
        order = np.lexsort((c["rel"], c["hh"]))
        remap = np.empty(len(order), "int64")
        remap[order] = np.arange(len(order))
        c = {k: v[order] for k, v in c.items()}
        for k in ("mother", "father", "spouse"):
            c[k] = np.where(c[k] >= 0, remap[np.maximum(c[k], 0)], -1)
        sur = np.where(
            batch.foreign,
            len(N.SURNAMES) + self.rng.integers(0, len(N.FOREIGN_SURNAMES), len(batch.kind)),
            self.rng.choice(len(_SUR_P), len(batch.kind), p=_SUR_P),
        )
        # lodgers keep their own surname
        own = self.rng.choice(len(_SUR_P), len(c["hh"]), p=_SUR_P)
        person_sur = np.where(c["rel"] == H.LODGER, own, sur[c["hh"]])
        return self.add_people(
            hh=hh[c["hh"]],
            birth=c["birth"],
            sex=c["sex"],
            rel=c["rel"],
            sur=person_sur,
            foreign=batch.foreign[c["hh"]],
            start=np.maximum(since[c["hh"]], c["birth"]),
            mother=c["mother"],
            father=c["father"],
            spouse=c["spouse"],
        )

    def add_people(
        self,
        *,
        hh,
        birth,
        sex,
        rel,
        sur,
        foreign,
        start,
        mother,
        father,
        spouse,
        relative: bool = True,
    ) -> np.ndarray:
        n = len(hh)
        base = len(self.p["birth"])
        ref = (lambda a: np.where(a >= 0, a + base, -1)) if relative else (lambda a: a)
        atena = self.next_atena + np.cumsum(self.rng.integers(1, 90, n))
        self.next_atena = int(atena[-1]) if n else self.next_atena
        self._append(
            self.p,
            {
                "atena": atena,
                "mynumber": my_numbers(np.arange(base, base + n), self.salt),
                "birth": birth,
                "sex": sex,
                "sur": sur,
                "giv": given_names(self.rng, sex, birth, foreign),
                "foreign": foreign,
                "resident": np.ones(n, bool),
                "hh0": hh,
                "hh1": hh,
                "rel0": rel,
                "rel1": rel,
                "chg": np.full(n, NEVER),
                "start": start,
                "arrived": start,
                "end": np.full(n, NEVER),
                "mother": ref(mother),
                "father": ref(father),
                "spouse": ref(spouse),
            },
        )
        idx = np.arange(base, base + n)
        _separate_twins(self.p, idx)
        return idx


def given_names(
    rng: np.random.Generator, sex: np.ndarray, birth: np.ndarray, foreign: np.ndarray
) -> np.ndarray:
    era = np.searchsorted([D.day(d) for d in N.ERA_BREAKS], birth, side="right")
    seg = np.where(foreign, 6 + (sex == 2), era + 3 * (sex == 2))
    # popular names recur: a mild Zipf draw within the segment
    pos = np.floor(rng.random(len(sex)) ** 1.6 * _SEG_LEN[seg]).astype("int64")
    return _SEG_START[seg] + pos


def _separate_twins(p: dict, idx: np.ndarray) -> None:
    """Twins share household, birth date and surname, never the given name."""
    mother, birth, giv = p["mother"][idx], p["birth"][idx], p["giv"][idx]
    order = np.lexsort((birth, mother))
    m, b = mother[order], birth[order]
    same = np.flatnonzero((m[1:] == m[:-1]) & (b[1:] == b[:-1]) & (m[1:] >= 0)) + 1
    for i in same:  # a few per 100k residents
        a, c = idx[order[i - 1]], idx[order[i]]
        if p["giv"][a] == p["giv"][c]:
            seg = np.searchsorted(_SEG_START, giv[order[i]], side="right") - 1
            p["giv"][c] = _SEG_START[seg] + (p["giv"][c] - _SEG_START[seg] + 1) % _SEG_LEN[seg]


def weighted_sample(rng: np.random.Generator, w: np.ndarray, k: int) -> np.ndarray:
    """k indices without replacement, P ∝ w (Efraimidis–Spirakis keys)."""
    pos = np.flatnonzero(w > 0)
    k = min(k, len(pos))
    if k == 0:
        return pos[:0]
    keys = rng.exponential(1.0, len(pos)) / w[pos]
    return np.sort(pos[np.argpartition(keys, k - 1)[:k]])


def build(
    rng: np.random.Generator, places: Places, residents: int, months: list[int]
) -> Population:
    first = int(D.month_start(months[0]))
    b = _Builder(rng, places)
    # draw households until their members reach the requested head count
    n_hh = int(residents / 2.05 * 1.05) + 10
    batch = H.generate(rng, n_hh, first - 1, H.STOCK_MIX)
    sizes = np.bincount(np.concatenate(batch.hh), minlength=n_hh)
    keep = min(int(np.searchsorted(np.cumsum(sizes), residents) + 1), n_hh)
    first_idx = b.add_batch(_head(batch, keep), None)
    # most residents' later address dates are moves inside the city; ≈20% came from outside
    outside = rng.random(len(first_idx)) < 0.2
    b.p["arrived"][first_idx] = np.where(outside, b.p["start"][first_idx], b.p["birth"][first_idx])
    month_end = D.month_end(np.array(months))
    for am in months:
        _evolve(rng, b, int(D.month_start(am)), int(D.month_end(am)))
    p = b.p
    present = np.stack(
        [(p["start"] <= me) & (p["end"] > me) & p["resident"].astype(bool) for me in month_end]
    )
    _cp932_surnames(rng, p, present)
    for k in ("sex", "rel0", "rel1"):
        p[k] = p[k].astype("int8")
    for k in ("foreign", "resident"):
        p[k] = p[k].astype(bool)
    b.h["single_parent"] = b.h["single_parent"].astype(bool)
    b.h["foreign"] = b.h["foreign"].astype(bool)
    return Population(p=p, h=b.h, month_end=month_end, present=present)


def _cp932_surnames(rng: np.random.Generator, p: dict, present: np.ndarray) -> None:
    """Make sure 髙橋 and 山﨑 (CP932-only spellings) occur every month, however small the
    sample: give them to two Japanese households whose members all stay throughout."""
    stay = present.all(axis=0) & (p["foreign"] == 0) & (p["chg"] == NEVER)
    size = np.bincount(p["hh0"])
    staying = np.bincount(p["hh0"][stay], minlength=len(size))
    full = np.flatnonzero((staying == size) & (size > 0))
    for h, name in zip(
        rng.choice(full, min(2, len(full)), replace=False), ("髙橋", "山﨑"), strict=False
    ):
        members = (p["hh0"] == h) & (p["rel0"] != H.LODGER)
        p["sur"][members] = int(np.flatnonzero(name == SUR_KANJI)[0])


def _head(batch: H.Batch, keep: int) -> H.Batch:
    """The first `keep` households of a batch."""
    c = batch.columns()
    sel = c["hh"] < keep
    remap = np.cumsum(sel) - 1
    out = H.Batch(
        kind=batch.kind[:keep],
        single_parent=batch.single_parent[:keep],
        foreign=batch.foreign[:keep],
        since=batch.since[:keep],
    )
    for k in ("hh", "birth", "sex", "rel"):
        getattr(out, k).append(c[k][sel])
    for k in ("mother", "father", "spouse"):
        getattr(out, k).append(np.where(c[k] >= 0, remap[np.maximum(c[k], 0)], -1)[sel])
    out.count = int(sel.sum())
    return out


def _evolve(rng: np.random.Generator, b: _Builder, ms: int, me: int) -> None:
    p = b.p
    days = me - ms + 1
    alive = (p["start"] <= ms) & (p["end"] > ms) & (p["resident"] > 0)
    n = int(alive.sum())
    hh_now = np.where(ms >= p["chg"], p["hh1"], p["hh0"])
    rel_now = np.where(ms >= p["chg"], p["rel1"], p["rel0"])
    age = (ms - p["birth"]) / H.YEAR
    # deaths: Gompertz hazard, mortality doubling every ≈7.4 years of age
    dead = weighted_sample(
        rng, np.where(alive, np.exp(0.094 * age), 0), rng.poisson(n * DEATHS / 12)
    )
    p["end"][dead] = ms + rng.integers(0, days, len(dead))
    # households moving out, all current members on one day
    members = np.bincount(hh_now[alive], minlength=len(b.h["kind"]))
    mob = np.array(H.MOBILITY)[b.h["kind"]]
    leaving = np.flatnonzero((members > 0) & (rng.random(len(mob)) < mob))
    out_day = np.full(len(mob), NEVER)
    out_day[leaving] = ms + rng.integers(0, days, len(leaving))
    go = alive & (out_day[hh_now] < NEVER)
    p["end"][go] = np.minimum(p["end"][go], out_day[hh_now[go]])
    # adult children setting up their own household in the city
    eligible = alive & ~go & (rel_now == H.CHILD) & (age >= 19) & (age < 35) & (p["chg"] == NEVER)
    split = np.flatnonzero(eligible & (rng.random(len(age)) < SPLITS / 12))
    if len(split):
        day = ms + rng.integers(0, days, len(split))
        hh = b.new_households(
            len(split),
            np.full(len(split), H.SINGLE_YOUNG),
            np.zeros(len(split), bool),
            p["foreign"][split],
            day,
        )
        p["hh1"][split], p["rel1"][split], p["chg"][split] = hh, H.HEAD, day
    _births(rng, b, alive & ~go, hh_now, rel_now, age, ms, days, n)
    # households moving in during the month
    batch = H.generate(
        rng, max(int(rng.poisson(n * MOVE_IN / 12 / 1.7)), 0), ms, H.MOVER_MIX, movers=True
    )
    if len(batch.kind):
        b.add_batch(batch, ms + rng.integers(0, days, len(batch.kind)))


def _births(rng, b: _Builder, alive, hh_now, rel_now, age, ms: int, days: int, n: int) -> None:
    p = b.p
    spouse = p["spouse"]
    with_spouse = (
        (spouse >= 0) & alive[np.maximum(spouse, 0)] & (hh_now[np.maximum(spouse, 0)] == hh_now)
    )
    last_birth = np.full(len(age), -NEVER)
    kids = np.flatnonzero(p["mother"] >= 0)
    np.maximum.at(last_birth, p["mother"][kids], p["birth"][kids])
    asfr = np.interp(age, [19, 22, 27, 32, 37, 42, 45], [0, 0.25, 0.8, 1.0, 0.55, 0.12, 0])
    can = (
        alive
        & (p["sex"] == 2)
        & with_spouse
        & (ms - last_birth > 400)
        & np.isin(rel_now, [H.HEAD, H.WIFE, H.CHILD_WIFE])
    )
    mothers = weighted_sample(rng, np.where(can, asfr, 0), rng.poisson(n * BIRTHS / 12))
    twins = mothers[rng.random(len(mothers)) < 0.011]
    mothers = np.sort(np.r_[mothers, twins])
    if not len(mothers):
        return
    birth = ms + rng.integers(0, days, len(mothers))
    birth[1:] = np.where(mothers[1:] == mothers[:-1], birth[:-1], birth[1:])
    hh = hh_now[mothers]
    rel = np.where(rel_now[mothers] == H.CHILD_WIFE, H.GRANDCHILD, H.CHILD)
    b.add_people(
        hh=hh,
        birth=birth,
        sex=np.where(rng.random(len(mothers)) < 0.512, 1, 2),
        rel=rel,
        sur=p["sur"][mothers],
        foreign=p["foreign"][mothers],
        start=birth,
        mother=mothers,
        father=spouse[mothers],
        spouse=np.full(len(mothers), -1),
        relative=False,
    )


def add_nonresidents(
    pop: Population,
    rng: np.random.Generator,
    birth: np.ndarray,
    sex: np.ndarray,
    district: np.ndarray,
    address: np.ndarray,
    sur: np.ndarray,
) -> np.ndarray:
    """Persons known to one department only (住登外 pupils and their guardians): they get
    numbers and names but are never resident, so no register month shows them."""
    n = len(birth)
    h, p = pop.h, pop.p
    hh = len(h["kind"]) + np.arange(n)
    for k, v in (
        ("number", np.zeros(n, "int64")),
        ("district", district),
        ("address", address),
        ("kind", np.full(n, H.MIXED)),
        ("single_parent", np.zeros(n, bool)),
        ("foreign", np.zeros(n, bool)),
        ("since", np.zeros(n, "int64")),
    ):
        h[k] = np.concatenate([h[k], v])
    base = pop.size
    foreign = sur >= len(N.SURNAMES)
    cols = {
        "atena": np.zeros(n, "int64"),
        "mynumber": np.zeros(n, "int64"),
        "birth": birth,
        "sex": sex,
        "sur": sur,
        "giv": given_names(rng, sex, birth, foreign),
        "foreign": foreign,
        "resident": np.zeros(n, bool),
        "hh0": hh,
        "hh1": hh,
        "rel0": np.zeros(n, "int8"),
        "rel1": np.zeros(n, "int8"),
        "chg": np.full(n, NEVER),
        "start": np.zeros(n, "int64"),
        "arrived": np.zeros(n, "int64"),
        "end": np.full(n, NEVER),
        "mother": np.full(n, -1),
        "father": np.full(n, -1),
        "spouse": np.full(n, -1),
    }
    for k, v in cols.items():
        p[k] = np.concatenate([p[k], v.astype(p[k].dtype)])
    pop.present = np.concatenate([pop.present, np.zeros((len(pop.present), n), bool)], axis=1)
    return np.arange(base, base + n)

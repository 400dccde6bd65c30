"""Vectorised household generator: one call makes n households and their members.

Targets for the resident population (statistics.md): ≈2.05 persons per household (住基
世帯数, U), ≈14% aged 0–17, ≈27% aged 65+ (Tokyo Tama; 人口推計 gives 29% nationally),
1/2/3+ children per child household 0.49/0.38/0.13 (国民生活基礎調査 2022), single
parents ≈10% of child households with mother:father ≈ 8:1 (全国ひとり親世帯等調査), three
generations ≈11% of child households (国民生活基礎調査 2022), foreign residents ≈3.2%
(在留外国人統計). The type mix below was tuned by measuring those shares.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

YEAR = 365.25
# 続柄 codes: indices into codes.REL
HEAD, WIFE, HUSBAND, CHILD, FATHER, MOTHER, GRANDFATHER, GRANDMOTHER, GRANDCHILD = range(9)
OLDER_BROTHER, OLDER_SISTER, YOUNGER_BROTHER, YOUNGER_SISTER, CHILD_WIFE, LODGER, OTHER = range(
    9, 16
)

SINGLE_YOUNG, SINGLE_OLD, COUPLE_YOUNG, COUPLE_OLD, FAMILY, MIXED = range(6)
# household-type shares: the resident stock, and households moving in (younger, smaller)
STOCK_MIX = (0.27, 0.185, 0.08, 0.14, 0.29, 0.035)
MOVER_MIX = (0.50, 0.03, 0.16, 0.02, 0.25, 0.04)
# foreign share by household type, tuned to 3.2% of persons (在留外国人統計)
_FOREIGN = (0.085, 0.004, 0.07, 0.003, 0.025, 0.09)
# monthly probability that a household moves out; young singles move most (転出 ≈4.8%/yr, U)
MOBILITY = (0.0105, 0.0012, 0.0075, 0.0009, 0.0032, 0.007)


@dataclass
class Batch:
    """Households and members from one generator call; indices are local to the batch."""

    kind: np.ndarray
    single_parent: np.ndarray
    foreign: np.ndarray
    since: np.ndarray  # day the household registered at its address
    hh: list[np.ndarray] = field(default_factory=list)
    birth: list[np.ndarray] = field(default_factory=list)
    sex: list[np.ndarray] = field(default_factory=list)
    rel: list[np.ndarray] = field(default_factory=list)
    mother: list[np.ndarray] = field(default_factory=list)
    father: list[np.ndarray] = field(default_factory=list)
    spouse: list[np.ndarray] = field(default_factory=list)
    count: int = 0

    def add(
        self, hh: np.ndarray, birth: np.ndarray, sex: np.ndarray | int, rel: np.ndarray | int
    ) -> np.ndarray:
        n = len(hh)
        self.hh.append(hh)
        self.birth.append(np.asarray(birth, dtype="int64"))
        self.sex.append(np.broadcast_to(np.asarray(sex, dtype="int8"), (n,)).copy())
        self.rel.append(np.broadcast_to(np.asarray(rel, dtype="int8"), (n,)).copy())
        for ref in (self.mother, self.father, self.spouse):
            ref.append(np.full(n, -1, dtype="int64"))
        idx = np.arange(self.count, self.count + n)
        self.count += n
        return idx

    def link(self, attr: str, who: np.ndarray, target: np.ndarray) -> None:
        arr = np.concatenate(getattr(self, attr))
        arr[who] = target
        setattr(self, attr, [arr])

    def columns(self) -> dict[str, np.ndarray]:
        return {
            k: np.concatenate(getattr(self, k))
            for k in ("hh", "birth", "sex", "rel", "mother", "father", "spouse")
        }


def _ages(rng: np.random.Generator, n: int, bands: list[tuple[int, int, float]]) -> np.ndarray:
    w = np.array([b[2] * (b[1] - b[0]) for b in bands])
    pick = rng.choice(len(bands), n, p=w / w.sum())
    lo = np.array([b[0] for b in bands])[pick]
    hi = np.array([b[1] for b in bands])[pick]
    return lo + rng.random(n) * (hi - lo)


def _born(ref: int, age: np.ndarray) -> np.ndarray:
    return (ref - np.floor(age * YEAR)).astype("int64")


def generate(
    rng: np.random.Generator, n: int, ref: int, mix: tuple[float, ...], movers: bool = False
) -> Batch:
    kind = rng.choice(6, n, p=np.array(mix) / sum(mix))
    b = Batch(
        kind=kind,
        single_parent=np.zeros(n, bool),
        foreign=rng.random(n) < np.array(_FOREIGN)[kind],
        since=np.zeros(n, "int64"),
    )
    hh_ids = np.arange(n)
    head_age = np.zeros(n)
    for k, fn in (
        (SINGLE_YOUNG, _single_young),
        (SINGLE_OLD, _single_old),
        (COUPLE_YOUNG, _couple_young),
        (COUPLE_OLD, _couple_old),
        (MIXED, _mixed),
    ):
        sel = hh_ids[kind == k]
        head_age[sel] = fn(rng, b, sel, ref)
    fam = hh_ids[kind == FAMILY]
    head_age[fam] = _families(rng, b, fam, ref, movers)
    # years at this address: movers arrive in the month (set by the caller)
    tau = np.array([4.0, 20.0, 5.0, 20.0, 9.0, 6.0])[kind]
    stay = np.minimum(rng.exponential(tau), np.maximum(head_age - 18, 0.1))
    b.since = _born(ref, stay)
    return b


def _single_young(rng, b: Batch, sel, ref) -> np.ndarray:
    age = _ages(
        rng, len(sel), [(18, 20, 0.6), (20, 30, 1.6), (30, 40, 1.2), (40, 50, 1.0), (50, 65, 0.9)]
    )
    b.add(sel, _born(ref, age), np.where(rng.random(len(sel)) < 0.56, 1, 2), HEAD)
    return age


def _single_old(rng, b: Batch, sel, ref) -> np.ndarray:
    age = _ages(
        rng,
        len(sel),
        [
            (65, 70, 0.8),
            (70, 75, 1.0),
            (75, 80, 1.0),
            (80, 85, 0.95),
            (85, 90, 0.7),
            (90, 95, 0.35),
            (95, 100, 0.1),
            (100, 104, 0.02),
        ],
    )
    b.add(sel, _born(ref, age), np.where(rng.random(len(sel)) < 0.35, 1, 2), HEAD)
    return age


def _couple(rng, b: Batch, sel, ref, age) -> None:
    h = b.add(sel, _born(ref, age), 1, HEAD)
    wife_age = np.maximum(age - rng.normal(2.0, 3.0, len(sel)), 18.5)
    w = b.add(sel, _born(ref, wife_age), 2, WIFE)
    b.link("spouse", np.r_[h, w], np.r_[w, h])


def _couple_young(rng, b: Batch, sel, ref) -> np.ndarray:
    age = _ages(rng, len(sel), [(22, 30, 1.0), (30, 40, 1.0), (40, 50, 0.6), (50, 65, 1.3)])
    _couple(rng, b, sel, ref, age)
    return age


def _couple_old(rng, b: Batch, sel, ref) -> np.ndarray:
    age = _ages(
        rng,
        len(sel),
        [(65, 70, 1.0), (70, 75, 1.2), (75, 80, 1.0), (80, 85, 0.7), (85, 90, 0.35), (90, 96, 0.1)],
    )
    _couple(rng, b, sel, ref, age)
    return age


def _mixed(rng, b: Batch, sel, ref) -> np.ndarray:
    """Siblings, shared houses, a young adult with a grandparent, a head with a relative."""
    n = len(sel)
    variant = rng.choice(4, n, p=[0.5, 0.25, 0.15, 0.1])
    age = np.where(
        variant == 0,
        35 + rng.random(n) * 45,
        np.where(
            variant == 1,
            20 + rng.random(n) * 25,
            np.where(variant == 2, 18 + rng.random(n) * 8, 40 + rng.random(n) * 40),
        ),
    )
    sex = np.where(rng.random(n) < 0.5, 1, 2)
    b.add(sel, _born(ref, age), sex, HEAD)
    other_age = np.where(
        variant == 0,
        np.maximum(age + rng.uniform(-8, 8, n), 18.2),
        np.where(
            variant == 1,
            np.maximum(age + rng.uniform(-5, 5, n), 18.2),
            np.where(variant == 2, 72 + rng.random(n) * 18, 60 + rng.random(n) * 30),
        ),
    )
    other_sex = np.where(rng.random(n) < 0.5, 1, 2)
    older = other_age > age
    sibling = np.where(
        older,
        np.where(other_sex == 1, OLDER_BROTHER, OLDER_SISTER),
        np.where(other_sex == 1, YOUNGER_BROTHER, YOUNGER_SISTER),
    )
    grand = np.where(other_sex == 1, GRANDFATHER, GRANDMOTHER)
    rel = np.choose(variant, [sibling, np.full(n, LODGER), grand, np.full(n, OTHER)])
    b.add(sel, _born(ref, other_age), other_sex, rel)
    extra = sel[(variant == 1) & (rng.random(n) < 0.3)]
    b.add(
        extra,
        _born(ref, 20 + rng.random(len(extra)) * 20),
        np.where(rng.random(len(extra)) < 0.5, 1, 2),
        LODGER,
    )
    return age


def _families(rng, b: Batch, sel, ref, movers: bool) -> np.ndarray:
    """Parents, children (some already adult) and sometimes grandparents."""
    n = len(sel)
    minor = rng.random(n) < (0.8 if movers else 0.53)
    oldest = np.where(
        minor,
        rng.random(n) ** 0.92 * (12 if movers else 18),
        18 + rng.exponential(9.0, n).clip(0, 32),
    )
    kids = rng.choice([1, 2, 3, 4], n, p=[0.37, 0.45, 0.15, 0.03])
    single = rng.random(n) < np.where(minor, 0.085, 0.2)
    single_father = single & (rng.random(n) < 1 / 9)
    b.single_parent[sel] = single
    births = [_born(ref, oldest)]
    valid = [np.ones(n, bool)]
    mab = np.clip(rng.normal(30.0, 4.3, n), 18, 42)
    mother_birth = (births[0] - mab * YEAR).astype("int64")
    for j in range(1, 4):
        twin = rng.random(n) < 0.011  # ≈1% of deliveries are multiple births (人口動態統計, U)
        gap = np.where(twin, 0, rng.uniform(1.1, 5.0, n) * YEAR).astype("int64")
        bj = births[-1] + gap
        valid.append(valid[-1] & (kids > j) & (bj < ref) & (bj - mother_birth < 46 * YEAR))
        births.append(bj)
    father_birth = np.minimum(
        mother_birth - (rng.normal(2.0, 3.0, n) * YEAR).astype("int64"), births[0] - int(19 * YEAR)
    )
    has_mother = ~single | ~single_father
    has_father = ~single | single_father
    father_head = has_father & (~has_mother | (rng.random(n) < 0.92))
    side_is_father = has_father & (single | father_head)  # the head's (or gp's child's) side
    # three generations: ≈11% of child households; grandparents are the side parent's parents
    gp = np.where(
        rng.random(n) < np.where(minor, 0.12, 0.05), rng.choice([1, 2], n, p=[0.45, 0.55]), 0
    )
    side_birth = np.where(side_is_father, father_birth, mother_birth)
    gp_birth = side_birth - (rng.normal(29.0, 4.0, n).clip(20, 42) * YEAR).astype("int64")
    gp = np.where(gp_birth > ref - 101 * YEAR, gp, 0)
    gp_head = (gp > 0) & (rng.random(n) < 0.45)
    # 婿 (子の夫) is not a listed 続柄, so a son-in-law under a grandparent head is その他
    f_rel = np.where(
        gp_head, np.where(side_is_father, CHILD, OTHER), np.where(father_head, HEAD, HUSBAND)
    )
    m_rel = np.where(
        gp_head, np.where(side_is_father, CHILD_WIFE, CHILD), np.where(father_head, WIFE, HEAD)
    )
    f_idx = b.add(sel[has_father], father_birth[has_father], 1, f_rel[has_father])
    m_idx = b.add(sel[has_mother], mother_birth[has_mother], 2, m_rel[has_mother])
    father_of = np.full(n, -1, "int64")
    mother_of = np.full(n, -1, "int64")
    father_of[has_father] = f_idx
    mother_of[has_mother] = m_idx
    both = has_father & has_mother
    b.link(
        "spouse", np.r_[father_of[both], mother_of[both]], np.r_[mother_of[both], father_of[both]]
    )
    kid_rel = np.where(gp_head, GRANDCHILD, CHILD)
    for bj, ok in zip(births, valid, strict=True):
        k = b.add(sel[ok], bj[ok], np.where(rng.random(ok.sum()) < 0.512, 1, 2), kid_rel[ok])
        b.link("mother", k, mother_of[ok])
        b.link("father", k, father_of[ok])
    gf = gp == 2
    gm = (gp == 2) | ((gp == 1) & (rng.random(n) < 0.75))
    gf |= (gp == 1) & ~gm
    gm_birth = gp_birth + (rng.normal(2.5, 3.0, n) * YEAR).astype("int64")
    gf_rel = np.where(gp_head, HEAD, FATHER)
    gm_rel = np.where(gp_head, np.where(gf, WIFE, HEAD), MOTHER)
    gfi = b.add(sel[gf], gp_birth[gf], 1, gf_rel[gf])
    gmi = b.add(sel[gm], gm_birth[gm], 2, gm_rel[gm])
    gf_of = np.full(n, -1, "int64")
    gm_of = np.full(n, -1, "int64")
    gf_of[gf], gm_of[gm] = gfi, gmi
    pair = gf & gm
    b.link("spouse", np.r_[gf_of[pair], gm_of[pair]], np.r_[gm_of[pair], gf_of[pair]])
    # the parent on the grandparents' side is their child
    side_parent = np.where(side_is_father, father_of, mother_of)
    has_gp = gp > 0
    b.link("father", side_parent[has_gp & gf], gf_of[has_gp & gf])
    b.link("mother", side_parent[has_gp & gm], gm_of[has_gp & gm])
    return np.where(has_father, (ref - father_birth) / YEAR, (ref - mother_birth) / YEAR)

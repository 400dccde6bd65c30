"""Districts (町丁目), their school districts, nursery facilities and street addresses.

Counts scale with the population: Akishima (≈113k) has about 60 町丁目, 13 public
elementary and 6 junior-high schools (statistics.md, 学校基本調査; U).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kodomo_assets.demo import names as N

CITY = "東京都昭島市"
_SCALE = 113_000


@dataclass
class Places:
    code: np.ndarray  # district code strings, e.g. "0121"
    town: np.ndarray  # "東町1丁目" (object)
    weight: np.ndarray  # share of households
    elementary: np.ndarray  # school index per district
    junior: np.ndarray
    school_names: np.ndarray  # elementary then junior-high names (object)
    n_elementary: int
    facilities: np.ndarray  # nursery names (object)
    district_facility: np.ndarray  # (districts, 3) nearby facility indices


def make_places(rng: np.random.Generator, residents: int) -> Places:
    scale = residents / _SCALE
    n_districts = max(6, round(60 * scale))
    towns = [p + t for p in N.TOWN_PREFIXES for t in N.TOWNS]
    codes: list[str] = []
    labels: list[str] = []
    t = 0
    while len(codes) < n_districts:
        chome = int(rng.integers(0, 6))  # 0: a town without 丁目 (番地 addresses)
        for c in [0] if chome == 0 else range(1, chome + 1):
            codes.append(f"{t + 1:03d}{c}")
            labels.append(_town(towns, t) + (f"{c}丁目" if c else ""))
        t += 1
    codes, labels = codes[:n_districts], labels[:n_districts]
    n_el = max(2, round(13 * scale))
    n_jh = max(1, round(6 * scale))
    # contiguous blocks of districts form each school district, one school per block
    elementary = np.arange(n_districts) * n_el // n_districts
    junior = np.arange(n_districts) * n_jh // n_districts
    school_names = np.array(
        [f"昭島市立{_ordinal(N.ELEMENTARY, i)}小学校" for i in range(n_el)]
        + [f"昭島市立{_ordinal(N.JUNIOR_HIGH, i)}中学校" for i in range(n_jh)],
        dtype=object,
    )
    n_fac = max(4, round(40 * scale))
    facilities = np.array([_facility(rng, i) for i in range(n_fac)], dtype=object)
    near = (np.arange(n_districts)[:, None] * n_fac // n_districts + np.arange(3)[None, :]) % n_fac
    kabu = np.arange(0, n_fac, 4)  # every district has a ㈱ (株式会社) nursery nearby
    near[:, 0] = kabu[np.arange(n_districts) % len(kabu)]
    return Places(
        code=np.array(codes, dtype=object),
        town=np.array(labels, dtype=object),
        weight=rng.gamma(3.0, 1.0, n_districts) / 3.0,
        elementary=elementary,
        junior=junior + n_el,
        school_names=school_names,
        n_elementary=n_el,
        facilities=facilities,
        district_facility=near,
    )


def _town(towns: list[str], t: int) -> str:
    """Town names run out near 2.2M residents; bigger cities get ward-prefixed repeats
    (their 町丁目コード then has 5 digits)."""
    if t < len(towns):
        return towns[t]
    ward = t // len(towns) - 1
    lap = "" if ward < len(_WARDS) else str(ward // len(_WARDS) + 1)
    return f"{_WARDS[ward % len(_WARDS)]}{lap}区{towns[t % len(towns)]}"


_WARDS = ("中央", "北", "南", "東", "西", "博多", "早良", "城南")


def _ordinal(base: list[str], i: int) -> str:
    return base[i % len(base)] + N.ORDINALS[(i // len(base)) % len(N.ORDINALS)]


def _facility(rng: np.random.Generator, i: int) -> str:
    name = N.NURSERIES[i % len(N.NURSERIES)] + (
        "" if i < len(N.NURSERIES) else str(i // len(N.NURSERIES) + 1)
    )
    kind = i % 4  # every operator type is present from four facilities on; ㈱ comes first
    if kind == 0:
        return f"㈱{name}保育園"
    if kind == 1:
        return f"昭島市立{name}保育園"
    if kind == 2:
        return f"社会福祉法人{N.NURSERIES[(i + 5) % len(N.NURSERIES)]}会 {name}保育園"
    return f"学校法人{name}学園 認定こども園{name}"


def addresses(
    rng: np.random.Generator, town: np.ndarray, district: np.ndarray, single: np.ndarray
) -> np.ndarray:
    """One address per household. Some buildings carry ① or ～ (CP932 specials), and a few
    separate the room with a comma, which forces CSV quoting."""
    n = len(district)
    label = town[district]
    has_chome = np.char.endswith(label.astype(str), "丁目")
    num = _NUMBERS
    banchi = rng.integers(1, 31, n)
    go = rng.integers(1, 26, n)
    out = np.where(
        has_chome,
        CITY + label + num[banchi] + "番" + num[go] + "号",
        CITY + label + num[banchi * 37 % 997 + 1] + "番地" + num[go],
    )
    building = np.flatnonzero(rng.random(n) < np.where(single, 0.7, 0.3))
    k = len(building)
    style = rng.integers(0, 10, k)
    bname = np.array(N.BUILDINGS, dtype=object)[rng.integers(0, len(N.BUILDINGS), k)]
    room = num[rng.integers(1, 5, k) * 100 + rng.integers(1, 9, k)]
    first = rng.integers(1, 4, k)
    circ = np.array(list(N.CIRCLED), dtype=object)[rng.integers(0, len(N.CIRCLED), k)]
    suffix = " " + bname + " " + room + "号室"
    for sel, text in (  # コーポ① 201号室 / 1～3号棟 305 / a comma that forces quoting
        (style < 3, lambda i: " " + bname[i] + circ[i] + " " + room[i] + "号室"),
        (
            (style >= 3) & (style < 5),
            lambda i: (
                " " + bname[i] + " " + num[first[i]] + "～" + num[first[i] + 2] + "号棟 " + room[i]
            ),
        ),
        ((style >= 5) & (style < 7), lambda i: " " + bname[i] + "," + room[i] + "号室"),
    ):
        idx = np.flatnonzero(sel)
        suffix[idx] = text(idx)
    out[building] = out[building] + suffix
    return out


_NUMBERS = np.array([str(i) for i in range(1000)], dtype=object)

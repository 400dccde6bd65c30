"""Synthetic monthly exports of the 11 departments (shared/spec/source-exports.md) for one
evolving population, with planted needs, confounders, format realities and injected bad
rows. Ground truth goes to OUT/_truth/, which the pipeline never reads.

    generate(Path("demo"), residents=113_000, months=month_range("2022-04..2022-10"), seed=42)
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from kodomo_assets.demo import codes as C
from kodomo_assets.demo import dates as D
from kodomo_assets.demo import needs as NE
from kodomo_assets.demo import population as PO
from kodomo_assets.demo import school as SC
from kodomo_assets.demo import services as SV
from kodomo_assets.demo.datasets import BUILDERS, World
from kodomo_assets.demo.places import make_places
from kodomo_assets.demo.specs import build_specs
from kodomo_assets.demo.writer import write_months

__all__ = ["DATASETS", "generate", "month_range"]

DATASETS = tuple(BUILDERS)
TRUTH = "_truth"


def month_range(text: str) -> list[str]:
    """'2022-04..2022-10' or '2022-04,2022-05' -> ['2022-04', ...]."""
    if ".." in text:
        a, b = (_abs(t) for t in text.split(".."))
        if b < a:
            raise ValueError(f"month range runs backwards: {text}")
        return [f"{m // 12}-{m % 12 + 1:02d}" for m in range(a, b + 1)]
    return [f"{m // 12}-{m % 12 + 1:02d}" for m in sorted({_abs(t) for t in text.split(",")})]


def _abs(month: str) -> int:
    y, m = month.strip().split("-")
    if not (len(y) == 4 and 1 <= int(m) <= 12):
        raise ValueError(f"not a YYYY-MM month: {month}")
    return int(y) * 12 + int(m) - 1


def generate(out: Path, residents: int, months: list[str], seed: int) -> dict:
    """Write OUT/<month>/<dataset>.csv and OUT/_truth/; return the counts of counts.json."""
    out = Path(out)
    am = sorted({_abs(m) for m in months})
    names = [f"{m // 12}-{m % 12 + 1:02d}" for m in am]

    def rng(stream: int) -> np.random.Generator:
        return np.random.default_rng([seed, stream])

    places = make_places(rng(1), residents)
    pop = PO.build(rng(2), places, residents, am)
    school = SC.build(rng(3), pop, places, am)
    before = int(D.month_start(am[0])) - 1
    care = SV.base_care(rng(4), pop, before)
    cards = SV.base_cards(rng(5), pop, before)
    money = SV.base_money(rng(6), pop, before)
    SV.mark_special(rng(7), money, cards)
    child = SV.base_child_health(rng(8), pop, places.district_facility)
    needs, cases = NE.plant(rng(9), pop, school, am, care, cards, money, child)
    SC.simulate(rng(10), school, am, len(places.school_names))
    world = World(pop=pop, places=places, months=am, care=care, cards=cards, money=money, child=child,
                  school=school, cases=cases, rng=rng(11))
    specs = build_specs(places)
    # trailing blank lines: a few files a month, at least one
    tr = rng(12)
    trailing = (tr.random((len(am), len(DATASETS))) < 0.25) * tr.integers(1, 3, (len(am), len(DATASETS)))
    trailing[np.arange(len(am)), tr.integers(0, len(DATASETS), len(am))] = 1
    counts: dict[str, dict] = {m: {} for m in names}
    with ThreadPoolExecutor(max_workers=1) as io:  # disk writes overlap the next rendering
        pending = []
        for i, name in enumerate(DATASETS):
            frame = BUILDERS[name](world)
            per_month = write_months(out, specs[name], frame, names, seed, i, pop.h["address"],
                                     [int(t) for t in trailing[:, i]],
                                     lambda *a: pending.append(io.submit(*a)))
            for month, c in per_month.items():
                counts[month][name] = c
            del frame
        for job in pending:
            job.result()  # surface any write error
    truth = out / TRUTH
    truth.mkdir(parents=True, exist_ok=True)
    _persons(pop, school, places).to_parquet(truth / "persons.parquet", index=False)
    NE.truth_table(needs, pop, school).to_csv(truth / "needs.csv", index=False)
    (truth / "counts.json").write_text(json.dumps(counts, ensure_ascii=False, indent=1), encoding="utf-8")
    return counts


def _persons(pop: PO.Population, school: SC.School, places) -> pd.DataFrame:
    """Everyone in the last month's register, plus pupils known only to the school."""
    p, me = pop.p, int(pop.month_end[-1])
    row = school.index(np.arange(pop.size))
    on_roll = np.zeros(pop.size, bool)
    on_roll[school.pid[school.on_roll[-1]]] = True
    who = np.flatnonzero(pop.present[-1] | (on_roll & ~p["resident"]))
    hh, rel = pop.hh_at(me)[who], pop.rel_at(me)[who]
    name, kana = pop.name(who)
    r = row[who]
    pupil = on_roll[who]

    def atena(idx: np.ndarray) -> list[str]:
        return [f"{p['atena'][i]:010d}" if i >= 0 and p["resident"][i] else "" for i in idx]

    return pd.DataFrame({
        "atena_no": atena(who), "household_no": [f"{x:010d}" if x else "" for x in pop.h["number"][hh]],
        "name": name, "kana": kana, "birth_date": p["birth"][who].astype("M8[D]"), "sex": p["sex"][who],
        "relation": np.array(C.REL, dtype=object)[rel], "district_code": places.code[pop.h["district"][hh]],
        "address": pop.h["address"][hh], "foreign": p["foreign"][who], "resident": p["resident"][who],
        "pupil_no": [str(school.number[x]) if ok else "" for x, ok in zip(r, pupil, strict=True)],
        "blank_atena_in_gakurei": np.where(pupil, school.blank[np.maximum(r, 0)], False),
        "school": np.where(pupil, places.school_names[school.school[-1, np.maximum(r, 0)]], ""),
        "grade": np.where(pupil, np.array(C.SCHOOL_GRADE, dtype=object)[school.grade[-1, np.maximum(r, 0)].clip(0, 9)], ""),
        "mother_atena_no": atena(p["mother"][who]), "father_atena_no": atena(p["father"][who]),
        "single_parent_household": pop.h["single_parent"][hh],
    })

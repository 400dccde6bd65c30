"""Synthetic monthly exports of the 11 departments (shared/spec/source-exports.md) for one
evolving population, with planted needs, confounders, format realities and injected bad
rows. Ground truth goes to OUT/_truth/, which the pipeline never reads.

    generate(Path("demo"), residents=113_000, months=month_range("2022-04..2022-10"), seed=42)
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np

from kodomo_assets.demo import dates as D
from kodomo_assets.demo import needs as NE
from kodomo_assets.demo import population as PO
from kodomo_assets.demo import school as SC
from kodomo_assets.demo import services as SV
from kodomo_assets.demo import variants as VA
from kodomo_assets.demo.datasets import BUILDERS, World
from kodomo_assets.demo.places import make_places
from kodomo_assets.demo.specs import build_specs
from kodomo_assets.demo.truth import write_persons
from kodomo_assets.demo.writer import write_months

__all__ = ["DATASETS", "generate", "month_range"]

DATASETS = tuple(BUILDERS)
TRUTH = "_truth"
MAX_QUEUED = 4  # file blocks waiting for the writer thread (each up to ~20 MB)
# Exports that need care, money or child health go first, so those arrays (a third of the
# world) are freed before the register and persons.parquet, the two largest outputs. Only
# kaigo draws from the world's rng and every file has its own rng, so the order is free.
BUILD_ORDER = (
    "kaigo",
    "seiho",
    "teate",
    "gakurei",
    "boshi",
    "yobo",
    "hoiku",
    "soudan",
    "shogai",
    "shukketsu",
    "jumin",
)
RELEASE_AFTER = "hoiku"


def _libc_trim() -> Callable[[int], int] | None:
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None


_MALLOC_TRIM = _libc_trim()


def _trim() -> None:
    """Give freed heap pages back to the OS between stages. glibc keeps the pages of
    freed mid-sized numpy temporaries, so without this each stage's leftovers add up
    to several hundred MB of resident memory at a million residents."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


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


def generate(
    out: Path, residents: int, months: list[str], seed: int, known_share: float | None = None
) -> dict:
    """Write OUT/<month>/<dataset>.csv and OUT/_truth/; return the counts of counts.json.
    known_share: the share of children with a center record (None: the calibrated ≈1.4%)."""
    out = Path(out)
    am = sorted({_abs(m) for m in months})
    names = [f"{m // 12}-{m % 12 + 1:02d}" for m in am]

    def rng(stream: int) -> np.random.Generator:
        return np.random.default_rng([seed, stream])

    places = make_places(rng(1), residents)
    pop = PO.build(rng(2), places, residents, am)
    _trim()
    school = SC.build(rng(3), pop, places, am)
    before = int(D.month_start(am[0])) - 1
    care = SV.base_care(rng(4), pop, before)
    cards = SV.base_cards(rng(5), pop, before)
    money = SV.base_money(rng(6), pop, before)
    SV.mark_special(rng(7), money, cards)
    child = SV.base_child_health(rng(8), pop, places.district_facility)
    needs, cases = NE.plant(rng(9), pop, school, am, care, cards, money, child, known_share)
    SC.simulate(rng(10), school, am, len(places.school_names))
    variants = VA.plant(rng(13), pop, school)  # a stream of its own: every other draw unchanged
    _trim()
    world = World(
        pop=pop,
        places=places,
        months=am,
        care=care,
        cards=cards,
        money=money,
        child=child,
        school=school,
        cases=cases,
        rng=rng(11),
        variants=variants,
    )
    del care, cards, money, child  # the world holds them until their last export
    counts = _write_exports(out, world, build_specs(places), names, seed, rng(12))
    truth = out / TRUTH
    truth.mkdir(parents=True, exist_ok=True)
    write_persons(truth / "persons.parquet", pop, school, places)
    _trim()
    NE.truth_table(needs, pop, school).to_csv(truth / "needs.csv", index=False)
    VA.truth_table(variants, school).to_csv(truth / VA.TRUTH_FILE, index=False)
    (truth / "counts.json").write_text(
        json.dumps(counts, ensure_ascii=False, indent=1), encoding="utf-8"
    )
    return counts


def _write_exports(
    out: Path, world: World, specs: dict, names: list[str], seed: int, tr: np.random.Generator
) -> dict[str, dict]:
    """All exports of all months; returns counts.json's content, datasets in DATASETS order."""
    # trailing blank lines: a few files a month, at least one
    n = len(names)
    trailing = (tr.random((n, len(DATASETS))) < 0.25) * tr.integers(1, 3, (n, len(DATASETS)))
    trailing[np.arange(n), tr.integers(0, len(DATASETS), n)] = 1
    counts: dict[str, dict] = {}
    with ThreadPoolExecutor(max_workers=1) as io:  # disk writes overlap the next rendering
        pending: deque[Future] = deque()

        def submit(*job) -> None:
            pending.append(io.submit(*job))
            while len(pending) > MAX_QUEUED or (pending and pending[0].done()):
                pending.popleft().result()  # bounds the bytes waiting; surfaces write errors

        for name in BUILD_ORDER:
            i = DATASETS.index(name)
            frame = BUILDERS[name](world)
            counts[name] = write_months(
                out,
                specs[name],
                frame,
                names,
                seed,
                i,
                world.pop.h["address"],
                [int(t) for t in trailing[:, i]],
                submit,
            )
            del frame
            if name == RELEASE_AFTER:
                world.release("care", "money", "child")
            _trim()
        while pending:
            pending.popleft().result()
    return {m: {name: counts[name][m] for name in DATASETS} for m in names}

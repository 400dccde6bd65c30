"""persons.parquet: the ground-truth register of the last month, for evaluating the
pipeline. Written without ever holding every row as Python strings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from kodomo_assets.demo import codes as C
from kodomo_assets.demo import population as PO
from kodomo_assets.demo import school as SC
from kodomo_assets.demo.places import Places

ROW_GROUP = 1024 * 1024  # pyarrow's default row group length: write_table() output, group by group
PERSONS_CHUNK = 100_000


def write_persons(path: Path, pop: PO.Population, school: SC.School, places: Places) -> None:
    """Everyone in the last month's register, plus pupils known only to the school. Built
    in chunks held as Arrow columns (not millions of Python strings) and written a row
    group at a time, with the same bytes as DataFrame.to_parquet(index=False) of the whole."""
    p = pop.p
    on_roll = np.zeros(pop.size, bool)
    on_roll[school.pid[school.on_roll[-1]]] = True
    who = np.flatnonzero(pop.present[-1] | (on_roll & ~p["resident"]))
    row = school.index(who)
    hh, rel = pop.hh_at(int(pop.month_end[-1]))[who], pop.rel_at(int(pop.month_end[-1]))[who]

    def table(lo: int, hi: int) -> pa.Table:
        sel = slice(lo, hi)
        frame = _persons(
            pop, school, places, who[sel], hh[sel], rel[sel], row[sel], on_roll[who[sel]]
        )
        return pa.Table.from_pandas(frame, preserve_index=False)

    writer = None
    for g in range(0, max(len(who), 1), ROW_GROUP):
        hi = min(len(who), g + ROW_GROUP)
        parts = [
            table(lo, min(hi, lo + PERSONS_CHUNK)) for lo in range(g, max(hi, g + 1), PERSONS_CHUNK)
        ]
        schema = parts[0].schema
        columns = [[a for t in parts for a in t.column(i).chunks] for i in range(len(schema))]
        del parts
        for i, chunks in enumerate(columns):  # contiguous columns (chunked ones encode differently)
            columns[i] = pa.concat_arrays(chunks)
            chunks.clear()
        writer = writer or pq.ParquetWriter(path, schema, compression="snappy")
        writer.write_table(pa.Table.from_arrays(columns, schema=schema))
        del columns
    assert writer is not None  # the loop above runs at least once
    writer.close()


def _persons(
    pop: PO.Population,
    school: SC.School,
    places: Places,
    who: np.ndarray,
    hh: np.ndarray,
    rel: np.ndarray,
    r: np.ndarray,
    pupil: np.ndarray,
) -> pd.DataFrame:
    p = pop.p
    name, kana = pop.name(who)

    def atena(idx: np.ndarray) -> list[str]:
        return [f"{p['atena'][i]:010d}" if i >= 0 and p["resident"][i] else "" for i in idx]

    return pd.DataFrame(
        {
            "atena_no": atena(who),
            "household_no": [f"{x:010d}" if x else "" for x in pop.h["number"][hh]],
            "name": name,
            "kana": kana,
            "birth_date": p["birth"][who].astype("M8[D]"),
            "sex": p["sex"][who],
            "relation": np.array(C.REL, dtype=object)[rel],
            "district_code": places.code[pop.h["district"][hh]],
            "address": pop.h["address"][hh],
            "foreign": p["foreign"][who],
            "resident": p["resident"][who],
            "pupil_no": [
                str(school.number[x]) if ok else "" for x, ok in zip(r, pupil, strict=True)
            ],
            "blank_atena_in_gakurei": np.where(pupil, school.blank[np.maximum(r, 0)], False),
            "school": np.where(pupil, places.school_names[school.school[-1, np.maximum(r, 0)]], ""),
            "grade": np.where(
                pupil,
                np.array(C.SCHOOL_GRADE, dtype=object)[
                    school.grade[-1, np.maximum(r, 0)].clip(0, 9)
                ],
                "",
            ),
            "mother_atena_no": atena(p["mother"][who]),
            "father_atena_no": atena(p["father"][who]),
            "single_parent_household": pop.h["single_parent"][hh],
        }
    )

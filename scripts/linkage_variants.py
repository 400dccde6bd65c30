"""Measure the pupil linkage on a generated month against the demo truth (issue 15).

Generates a city (or reuses OUT when it already holds one), ingests its register and
学齢簿 with the pipeline's reader, links them with lib/linkage/link.py and prints, as JSON,
the linkage's own figures and lib/linkage/truth.py's: precision and recall of the
automatic links for blank-ID pupils, overall and per spelling-variant kind. With
--blank-variants every pupil with a variant also has its 宛名番号 blanked, so each kind is
measured on many pupils through the probabilistic pass. Not a test: quote its output.

    .venv/bin/python scripts/linkage_variants.py --residents 113000 --out /tmp/city113k
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kodomo_assets.demo import generate
from kodomo_assets.lib.ingest.load import ingest
from kodomo_assets.lib.linkage.link import link_pupils, prepare_inputs
from kodomo_assets.lib.linkage.truth import linkage_against_truth
from kodomo_assets.lib.registry import load_registry


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--residents", type=int, default=113_000)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--month", default="2022-10")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--blank-variants", action="store_true")
    args = ap.parse_args()
    inbox = args.out / "inbox"
    if not (inbox / "_truth" / "persons.parquet").is_file():
        generate(inbox, residents=args.residents, months=[args.month], seed=args.seed)
    registry = load_registry()
    for name in ("jumin", "gakurei"):
        store = args.out / f"{name}.duckdb"
        if not store.is_file():
            ds = registry.datasets[name]
            with duckdb.connect(str(store)) as con:
                ingest(ds, args.month, inbox / args.month / ds.file, con)
    con = duckdb.connect()
    con.execute(f"ATTACH '{args.out / 'jumin.duckdb'}' AS shimin (READ_ONLY)")
    con.execute(f"ATTACH '{args.out / 'gakurei.duckdb'}' AS gakumu (READ_ONLY)")
    source = "gakumu.gakurei"
    if args.blank_variants:
        con.execute(
            f"""CREATE TEMP TABLE gakurei AS SELECT * REPLACE (
            CASE WHEN pupil_no IN (SELECT pupil_no FROM read_csv(?, all_varchar = true)) THEN NULL
                 ELSE atena_no END AS atena_no) FROM {source}""",
            [str(inbox / "_truth" / "pupil_variants.csv")],
        )
        source = "temp.gakurei"
    prepare_inputs(con, "shimin.jumin", source)
    result = link_pupils(con, seed=args.seed)
    print(
        json.dumps(
            {
                "linkage": {k: v for k, v in asdict(result).items() if k != "m_probabilities"},
                "truth": linkage_against_truth(con, inbox / "_truth"),
            },
            ensure_ascii=False,
            indent=1,
        )
    )


if __name__ == "__main__":
    main()

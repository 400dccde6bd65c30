"""Benchmark: generate demo cities and run the monthly refresh job through Dagster.

Per size: the generator, then the real `monthly_refresh` job in one process (as the
schedule runs it: every asset, in process), measured with wait4 for wall time and peak
RSS. The run's own step timings (Dagster's event log) split it into the source assets,
linkage plus the linked table, and scoring (risk scores, review list, feedback,
evaluation, fairness audit, committee report); what is left is Dagster's start-up and
run bookkeeping. Then the bare DuckDB pass over the same files (scripts/bare_pass.py),
the floor for the data-movement stages (sources + linked), and their ratio to it. The
list's accuracy against the demo truth (precision/recall at k, beside the indicators-first
order, and the ranking mode lib/ranking chose). Over
all sizes, the scaling exponent of the refresh (slope of log time on log residents).
With --item-worth, then the item_worth_review job for the same month (必要最小限: one
refit of the model per approved item; on demand or quarterly, never in the refresh), its
wall time and peak RSS measured the same way.
Not a test: run it by hand on an idle machine and quote its output.

    .venv/bin/python scripts/benchmark.py [--sizes 12000,30000,113000,1600000] [--item-worth]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
LINKED_STEPS = ("linkage__pupil_links", "analysis__linked_children")


def output(cmd: list[str], env: dict[str, str]) -> str:
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{proc.stderr[-3000:]}")
    return proc.stdout


def job_command(job: str, month: str) -> list[str]:
    """`dagster job execute` of one of the code location's jobs for one month."""
    tags = json.dumps({"dagster/partition": month})
    return [
        str(BIN / "dagster"),
        "job",
        "execute",
        "-m",
        "kodomo_assets",
        "-j",
        job,
        "--tags",
        tags,
    ]


def run_measured(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one child process, from wait4."""
    start = time.perf_counter()
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=log)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        if os.waitstatus_to_exitcode(status) != 0:
            log.seek(0)
            raise SystemExit(
                f"failed: {' '.join(cmd)}\n{log.read().decode(errors='replace')[-3000:]}"
            )
    return wall, usage.ru_maxrss / 1024


def step_seconds(home: Path) -> dict[str, float]:
    """Step key -> seconds, for the last run in this Dagster instance."""
    from dagster import DagsterInstance

    with DagsterInstance.from_config(str(home)) as instance:
        run_id = instance.get_runs(limit=1)[0].run_id
        return {
            s.step_key: s.end_time - s.start_time
            for s in instance.get_run_step_stats(run_id)
            if s.start_time and s.end_time
        }


def accuracy(home: Path) -> str:
    """The review list against the demo truth (analysis/evaluation's metadata): precision and
    recall at k of the list, of the indicators-first order beside it, and the mode that ran."""
    from dagster import AssetKey, DagsterInstance

    with DagsterInstance.from_config(str(home)) as instance:

        def meta(*path: str) -> dict:
            event = instance.get_latest_materialization_event(AssetKey(list(path)))
            return (
                {k: v.value for k, v in event.asset_materialization.metadata.items()}
                if event
                else {}
            )

        ev, scores = meta("analysis", "evaluation"), meta("analysis", "risk_scores")
    if "precision_at_k" not in ev:
        return f" {'—':>11} {'—':>11} {'—':>6}"
    mode = {"指標優先": "ind", "学習モデル": "model", "指標と学習モデルの合成": "blend"}.get(
        str(scores.get("ranking_mode", "")).split("（")[0], "?"
    )
    return (
        f" {ev['precision_at_k']:.3f}/{ev['recall_at_k']:.3f}"
        f" {ev['indicators_first_precision_at_k']:.3f}/{ev['indicators_first_recall_at_k']:.3f} {mode:>6}"
    )


def exponent(points: list[tuple[int, float]]) -> float:
    x = [math.log(n) for n, _ in points]
    y = [math.log(t) for _, t in points]
    mx, my = sum(x) / len(x), sum(y) / len(y)
    return sum((a - mx) * (b - my) for a, b in zip(x, y, strict=True)) / sum(
        (a - mx) ** 2 for a in x
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    # a small town, the median municipality, 昭島市, 福岡市 (10,000,000: --sizes)
    parser.add_argument("--sizes", default="12000,30000,113000,1600000")
    parser.add_argument("--month", default="2022-10")
    parser.add_argument("--seed", type=int, default=7, help="the generator's seed")
    parser.add_argument(
        "--known-shares",
        default="default",
        help="children with a center record, per run: default (≈1.4%%) and/or shares, e.g. default,0.05",
    )
    parser.add_argument(
        "--keys",
        type=Path,
        default=None,
        help="reuse these demo keys (kodomo demo-keys): the same pseudonyms run to run",
    )
    parser.add_argument("--work", type=Path, default=None, help="keep data here (default: temp)")
    parser.add_argument(
        "--item-worth",
        action="store_true",
        help="also run the item_worth_review job after the refresh (off by default)",
    )
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="kodomo-bench-"))
    header = (
        f"{'residents':>10} {'known':>6} {'generate s':>10} {'gen MB':>7} {'refresh s':>9} {'peak MB':>8} "
        f"{'sources s':>9} {'linked s':>8} {'scoring s':>9} {'dagster s':>9} {'bare s':>7} "
        f"{'move/bare':>9} {'list P/R':>11} {'ind.1st P/R':>11} {'mode':>6}"
        + (f" {'worth s':>8} {'worth MB':>8}" if args.item_worth else "")
    )
    print(header, flush=True)
    totals: list[tuple[int, float]] = []
    try:
        shares = [None if x == "default" else float(x) for x in args.known_shares.split(",")]
        for size, share in ((int(n), k) for n in args.sizes.split(",") for k in shares):
            base = work / (f"{size}" if share is None else f"{size}-{share}")
            shutil.rmtree(base, ignore_errors=True)
            home = base / "dagster_home"
            home.mkdir(parents=True)
            shutil.copy(ROOT / "dagster_home" / "dagster.yaml", home)
            env = {
                **os.environ,
                "DAGSTER_HOME": str(home),
                "KODOMO_INBOX": str(base / "inbox"),
                "KODOMO_HOME": str(base / "home"),
                # generated months of 2022 processed today: the demo's fictitious approval
                "KODOMO_POLICY": str(ROOT / "data" / "policy" / "demo_approval.csv"),
                "KODOMO_MODE": "demo",
            }
            # the pipeline's keys and the center's public keys only, as in production
            keys = output(
                [str(BIN / "kodomo"), "demo-keys", "--out", str(args.keys or base / "secrets")], env
            )
            env |= dict(line.split("=", 1) for line in keys.splitlines() if "=" in line)
            gen = run_measured(
                [
                    str(BIN / "kodomo"),
                    "demo-data",
                    "--out",
                    str(base / "inbox"),
                    "--residents",
                    str(size),
                    "--months",
                    # seven months up to city scale; above it the month alone (memory)
                    f"2022-04..{args.month}"
                    if size <= 2_000_000
                    else f"{args.month}..{args.month}",
                    "--seed",
                    str(args.seed),
                ]
                + ([] if share is None else ["--known-share", str(share)]),
                env,
            )
            # the bare pass first: the refresh takes the exports out of the inbox
            out = output(
                [
                    sys.executable,
                    str(ROOT / "scripts" / "bare_pass.py"),
                    "--inbox",
                    str(base / "inbox"),
                    "--month",
                    args.month,
                ],
                env,
            )
            bare = float(re.search(r"total ([0-9.]+) s", out).group(1))
            refresh = run_measured(
                job_command("monthly_refresh", args.month),
                env,
            )
            steps = step_seconds(home)
            worth = ""
            if args.item_worth:  # after step_seconds: that reads the last run, the refresh
                w = run_measured(
                    job_command("item_worth_review", args.month),
                    env,
                )
                worth = f" {w[0]:>8.1f} {w[1]:>8.0f}"
            sources = sum(v for k, v in steps.items() if k.startswith("sources__"))
            linked = sum(steps.get(k, 0.0) for k in LINKED_STEPS)
            scoring = sum(steps.values()) - sources - linked
            if share is None:  # the scaling exponent over the calibrated cities only
                totals.append((size, refresh[0]))
            print(
                f"{size:>10} {'—' if share is None else f'{share:.1%}':>6} {gen[0]:>10.1f} {gen[1]:>7.0f} {refresh[0]:>9.1f} {refresh[1]:>8.0f} "
                f"{sources:>9.1f} {linked:>8.1f} {scoring:>9.1f} "
                f"{refresh[0] - sum(steps.values()):>9.1f} {bare:>7.1f} "
                f"{(sources + linked) / bare:>9.1f}{accuracy(home)}{worth}",
                flush=True,
            )
            if args.work is None:
                shutil.rmtree(base, ignore_errors=True)
        for (n0, t0), (n1, t1) in zip(totals, totals[1:], strict=False):
            print(
                f"scaling {n0:,} → {n1:,} residents: k = {math.log(t1 / t0) / math.log(n1 / n0):.2f}"
            )
        if len(totals) > 1:
            print(
                f"scaling exponent of the refresh (time ∝ residents^k, all sizes): "
                f"k = {exponent(totals):.2f}"
            )
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

"""Benchmark: generate demo cities and materialize the monthly refresh through Dagster.

Prints wall time and peak RSS per size for generation, for the source assets, for
linkage plus the linked table, and for scoring (risk scores, review list, evaluation and
fairness audit, feedback, committee report); each step is its own child process, measured
with wait4. Then the refresh total (sources + linked + scoring), the bare DuckDB pass over
the same files (scripts/bare_pass.py, the floor for the data-movement stages) and, over
all sizes, the scaling exponent of the refresh time (slope of log time on log residents).
Not a test: run it by hand and quote its output.

    .venv/bin/python scripts/benchmark.py --sizes 113000,1600000
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCORING = ("analysis/risk_scores", "center/review_list", "center/verification_feedback",
           "analysis/evaluation", "analysis/fairness_audit", "committee/report")
BIN = Path(sys.executable).parent


def run(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one child process."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        err = proc.stderr.read().decode(errors="replace")[-3000:]
        raise SystemExit(f"failed: {' '.join(cmd)}\n{err}")
    return wall, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="113000,1600000,10000000")
    parser.add_argument("--month", default="2022-10")
    parser.add_argument("--work", type=Path, default=None, help="keep data here (default: temp)")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="kodomo-bench-"))
    sys.path.insert(0, str(ROOT))
    from kodomo_assets.lib.registry import load_registry

    sources = ",".join(["sources/inbox_receipt", *(f"sources/{d}" for d in load_registry().datasets)])
    linked = "linkage/pupil_links,analysis/linked_children"
    scored = ",".join(SCORING)
    print(f"{'residents':>10} {'generate s':>10} {'gen MB':>7} {'sources s':>9} {'src MB':>7} "
          f"{'linked s':>8} {'linked MB':>9} {'scoring s':>9} {'score MB':>8} {'total s':>8} "
          f"{'peak MB':>8} {'bare s':>7} {'move/bare':>9}")
    totals: list[tuple[int, float]] = []
    try:
        for size in (int(s) for s in args.sizes.split(",")):
            base = work / str(size)
            shutil.rmtree(base, ignore_errors=True)
            home = base / "dagster_home"
            home.mkdir(parents=True)
            shutil.copy(ROOT / "dagster_home" / "dagster.yaml", home)
            env = {**os.environ, "DAGSTER_HOME": str(home), "KODOMO_INBOX": str(base / "inbox"),
                   "KODOMO_HOME": str(base / "home"), "KODOMO_DEMO": "1",
                   "KODOMO_KEY_FILE": str(base / "secrets" / "pseudonym.key"),
                   "KODOMO_CENTER_KEY_FILE": str(base / "secrets" / "center.key")}
            gen = run([str(BIN / "kodomo"), "demo-data", "--out", str(base / "inbox"),
                       "--residents", str(size), "--months",
                       # seven months up to city scale; above it the month alone (memory)
                       f"2022-04..{args.month}" if size <= 2_000_000 else f"{args.month}..{args.month}",
                       "--seed", "7"], env)
            src, lnk, sco = (run([str(BIN / "dagster"), "asset", "materialize", "-m",
                                  "kodomo_assets", "--select", sel, "--partition", args.month], env)
                             for sel in (sources, linked, scored))
            bare = run([sys.executable, str(ROOT / "scripts" / "bare_pass.py"), "--inbox",
                        str(base / "inbox"), "--month", args.month], env)
            total = src[0] + lnk[0] + sco[0]
            totals.append((size, total))
            print(f"{size:>10} {gen[0]:>10.1f} {gen[1]:>7.0f} {src[0]:>9.1f} {src[1]:>7.0f} "
                  f"{lnk[0]:>8.1f} {lnk[1]:>9.0f} {sco[0]:>9.1f} {sco[1]:>8.0f} {total:>8.1f} "
                  f"{max(src[1], lnk[1], sco[1]):>8.0f} {bare[0]:>7.1f} "
                  f"{(src[0] + lnk[0]) / bare[0]:>9.1f}", flush=True)
            if args.work is None:
                shutil.rmtree(base, ignore_errors=True)
        if len(totals) > 1:
            x = [math.log(n) for n, _ in totals]
            y = [math.log(t) for _, t in totals]
            mx, my = sum(x) / len(x), sum(y) / len(y)
            slope = sum((a - mx) * (b - my) for a, b in zip(x, y, strict=True)) / sum((a - mx) ** 2 for a in x)
            print(f"scaling exponent of the refresh (time ∝ residents^k): k = {slope:.2f}")
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

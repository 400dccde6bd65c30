"""Benchmark: generate demo cities and materialize the monthly refresh through Dagster.

Prints wall time and peak RSS per size for generation and for the refresh (each measured
on its own child process with wait4). Not a test: run it by hand and quote its output.

    .venv/bin/python scripts/benchmark.py --sizes 113000,1600000
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
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
    parser.add_argument("--sizes", default="113000,1600000")
    parser.add_argument("--month", default="2022-10")
    parser.add_argument("--select", default="*", help="Dagster asset selection")
    parser.add_argument("--work", type=Path, default=None, help="keep data here (default: temp)")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="kodomo-bench-"))
    print(f"{'residents':>10} {'generate s':>10} {'gen MB':>7} {'refresh s':>9} {'refresh MB':>10}")
    try:
        for size in (int(s) for s in args.sizes.split(",")):
            base = work / str(size)
            shutil.rmtree(base, ignore_errors=True)
            home = base / "dagster_home"
            home.mkdir(parents=True)
            shutil.copy(ROOT / "dagster_home" / "dagster.yaml", home)
            env = {**os.environ, "DAGSTER_HOME": str(home), "KODOMO_INBOX": str(base / "inbox"),
                   "KODOMO_HOME": str(base / "home")}
            gen = run([str(BIN / "kodomo"), "demo-data", "--out", str(base / "inbox"),
                       "--residents", str(size), "--months", f"2022-04..{args.month}",
                       "--seed", "7"], env)
            ref = run([str(BIN / "dagster"), "asset", "materialize", "-m", "kodomo_assets",
                       "--select", args.select, "--partition", args.month], env)
            print(f"{size:>10} {gen[0]:>10.1f} {gen[1]:>7.0f} {ref[0]:>9.1f} {ref[1]:>10.0f}",
                  flush=True)
            if args.work is None:
                shutil.rmtree(base, ignore_errors=True)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

"""How long the BoTorch planner takes to ask, against the observations it has, quiet and busy.

A lab host is rarely quiet: a workcell host runs RE Managers, Redis and a database beside the
planner. For 10 to 500 observations (random experiments of the twin, none a hit; see
:func:`planner_efficiency.told_planner`) it times a warm ask for one proposal (median of 3 from
the same state), with the planner's ``threads`` option at 1 (the default) and at the machine's
core count, first on a quiet machine and then with as many busy processes as cores (pure
Python loops, the way a loaded host's other work competes for the cores). The first ask of a
campaign (the candidate pool, the twin memo, the first fit) is printed apart.

    python benchmarks/ask_time.py [--observations 10 50 100 200 500]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from planner_efficiency import median_ask_s, told_planner


def _spin() -> None:
    while True:
        sum(i * i for i in range(10_000))


@contextmanager
def busy(processes: int) -> Iterator[None]:
    """``processes`` processes keeping a core busy each, for the block."""
    spinners = [multiprocessing.Process(target=_spin, daemon=True) for _ in range(processes)]
    for p in spinners:
        p.start()
    time.sleep(0.5)
    try:
        yield
    finally:
        for p in spinners:
            p.terminate()
            p.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--observations", type=int, nargs="+", default=[10, 50, 100, 200, 500])
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    threads = sorted({1, cores})
    planners = {}
    print(f"BoTorch ask (q = 1), seconds; {cores} cores; busy: {cores} spinning processes")
    print(f"{'observations':>12} {'first':>7}", end="")
    for load in ("quiet", "busy"):
        for t in threads:
            print(f" {f'{load} {t} thr':>13}", end="")
    print()
    for n in args.observations:
        rng = np.random.default_rng(n)
        start = time.perf_counter()
        for t in threads:
            planners[t] = told_planner(n, rng, threads=t)
        first = (time.perf_counter() - start) / len(threads)
        row = [median_ask_s(planners[t]) for t in threads]
        with busy(cores):
            row += [median_ask_s(planners[t]) for t in threads]
        print(f"{n:>12} {first:>7.2f}" + "".join(f" {v:>13.2f}" for v in row), flush=True)


if __name__ == "__main__":
    main()

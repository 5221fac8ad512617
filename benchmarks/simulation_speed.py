"""Throughput of the simulated lab: full simulate + measure + analyse evaluations per second.

Each evaluation validates one set of hot-injection conditions, runs the outcome model with
run-to-run noise, renders 601-point absorption and PL spectra, adds instrument noise and
extracts the observables. Vectorised over a batch (how planner benchmarks call it) and one at a
time (how a device calls it).

    python benchmarks/simulation_speed.py [--batch 2000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from models.parameters import LIGANDS
from models.simulation import simulate


def random_conditions(rng: np.random.Generator, n: int) -> list[dict[str, float | str]]:
    ligands = sorted(LIGANDS)
    return [
        {
            "br_pb_ratio": float(rng.uniform(2.0, 30.0)),
            "temperature_c": float(rng.uniform(60.0, 200.0)),
            "ligand": ligands[int(rng.integers(len(ligands)))],
            "time_s": float(rng.uniform(1.0, 600.0)),
        }
        for _ in range(n)
    ]


def best_rate(run, n: int, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return n / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    rows = random_conditions(rng, args.batch)
    vectorised = best_rate(lambda: simulate("hot_injection", rows, rng), args.batch, args.repeats)
    few = rows[:200]
    single = best_rate(
        lambda: [simulate("hot_injection", r, rng) for r in few], len(few), args.repeats
    )
    print(f"vectorised (batch {args.batch}): {vectorised:,.0f} evaluations/s (target >= 2,000)")
    print(f"one at a time:            {single:,.0f} evaluations/s")


if __name__ == "__main__":
    main()

"""Speed of the simulated lab's devices under a real RunEngine, against ophyd.sim.

Runs ``bp.scan([detector], motor, ...)`` over N points twice, with documents going to a no-op
callback:

- QDLab: the optical cell (a full 601-point absorption + PL acquisition and analysis per point)
  against the reactor temperature on the fast virtual clock;
- ophyd.sim: ``det`` against ``motor``.

It prints points/s for both and their ratio (target: QDLab at least half as fast).

    python benchmarks/device_scan_speed.py [--points 1000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import time

import bluesky.plans as bp
from bluesky import RunEngine
from ophyd.sim import det, motor

from devices import build_lab


def best_time(RE: RunEngine, make_plan, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        plan = make_plan()
        start = time.perf_counter()
        RE(plan)
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    n = args.points
    RE = RunEngine({})
    RE.subscribe(lambda name, doc: None)
    lab = build_lab()
    ours = best_time(
        RE, lambda: bp.scan([lab.cell], lab.reactor.temperature, 100, 150, n), args.repeats
    )
    theirs = best_time(RE, lambda: bp.scan([det], motor, -1, 1, n), args.repeats)
    print(f"{n}-point scan, best of {args.repeats}")
    print(f"  QDLab cell vs reactor temperature: {ours:6.2f} s  ({n / ours:,.0f} points/s)")
    print(f"  ophyd.sim det vs motor:            {theirs:6.2f} s  ({n / theirs:,.0f} points/s)")
    print(f"  speed ratio QDLab / ophyd.sim: {theirs / ours:.2f} (target >= 0.5)")
    print(f"  virtual time the scan took in the lab: {lab.clock.elapsed() / 3600:.1f} h")


if __name__ == "__main__":
    main()

"""Throughput of a whole closed-loop campaign on the simulated lab, against a bare RunEngine.

Runs a 50-experiment random-planner hot-injection campaign (fast virtual clock, SQLite storage
of every document, observables read back and analysed, proposals stored) and, in the same
process, a bare loop of 50 ``bp.count`` runs on ``ophyd.sim`` devices with no storage. Prints
simulated experiments/s and the ratio (target: at least 20 experiments/s).

    python benchmarks/campaign_throughput.py [--experiments 50]
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import bluesky.plans as bp
import yaml
from bluesky import RunEngine
from ophyd.sim import det, motor

from db import Database
from orchestrator.campaign.config import parse_campaign
from orchestrator.campaign.runner import CampaignRunner

ROOT = Path(__file__).resolve().parents[1]


def _config(n: int, lab: Path) -> dict:
    return {
        "name": "throughput",
        "lab": str(lab),
        "route": "hot_injection",
        "target": {"pl_peak_nm": 470.0, "tolerance_nm": 0.01},
        "space": {
            "br_pb_ratio": [2, 30],
            "temperature_c": [90, 200],
            "ligand": ["oa_olam", "oa_olam_acid_rich", "olpa", "alkylammonium_br"],
            "time_s": [1, 120],
        },
        "planner": {"kind": "random"},
        "budget": n,
        "seed": 0,
        "stop_on_target": False,
    }


def _big_deck_lab(tmp: Path) -> Path:
    """The simulated lab with reservoirs ten times larger, so 1,000 experiments fit."""
    lab = yaml.safe_load((ROOT / "configs" / "labs" / "sim.yaml").read_text())
    for item in lab["robot"]["deck"].values():
        if item["kind"] in ("reservoir", "waste"):
            item["capacity_ul"] *= 10
            item["volume_ul"] = item.get("volume_ul", 0) * 10
    path = tmp / "big-deck.yaml"
    path.write_text(yaml.safe_dump(lab))
    return path


def _timed_campaign(n: int, lab: Path, db_path: Path) -> tuple[Any, list[float], float]:
    """Run an n-experiment campaign; return its summary, the wall time after each experiment
    and the lab time it covered (h)."""
    runner = CampaignRunner(
        Database(f"sqlite:///{db_path}"), parse_campaign(_config(n, lab), "", ROOT)
    )
    stamps: list[float] = []
    runner.on_progress = lambda done, budget, best: stamps.append(time.perf_counter())
    start = time.perf_counter()
    summary = runner.run()
    return summary, [t - start for t in stamps], runner.executor.lab.clock.elapsed() / 3600


def _rate(stamps: list[float], first: int, last: int) -> float:
    """Experiments per second from experiment ``first`` to ``last`` (1-based, inclusive)."""
    begin = stamps[first - 2] if first > 1 else 0.0
    return (last - first + 1) / (stamps[last - 1] - begin)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiments", type=int, default=50)
    parser.add_argument(
        "--long", type=int, default=1000, help="experiments of the long campaign (0: skip it)"
    )
    args = parser.parse_args()
    n = args.experiments
    logging.getLogger("bluesky").setLevel(logging.CRITICAL)
    with tempfile.TemporaryDirectory() as tmp:
        summary, stamps, lab_hours = _timed_campaign(
            n, ROOT / "configs" / "labs" / "sim.yaml", Path(tmp) / "bench.db"
        )
        campaign_s = stamps[-1]
        long_rates = None
        if args.long:
            big = _big_deck_lab(Path(tmp))
            _, long_stamps, _ = _timed_campaign(args.long, big, Path(tmp) / "long.db")
            m = args.long
            long_rates = (
                _rate(long_stamps, 1, 100),
                _rate(long_stamps, m - 99, m),
                long_stamps[-1],
            )
    RE = RunEngine({})
    RE.subscribe(lambda name, doc: None)
    start = time.perf_counter()
    for _ in range(n):
        RE(bp.count([det, motor]))
    bare_s = time.perf_counter() - start
    print(f"{summary.experiments}-experiment random campaign, SQLite, fast virtual clock")
    print(
        f"  campaign:        {summary.experiments / campaign_s:7.1f} experiments/s "
        f"({campaign_s:.2f} s; {lab_hours:.1f} h of lab time)  target >= 20"
    )
    print(f"  bare RunEngine:  {n / bare_s:7.1f} bp.count runs/s on ophyd.sim, no storage")
    print(f"  ratio campaign / bare loop: {(summary.experiments / campaign_s) / (n / bare_s):.2f}")
    if long_rates is not None:
        first, last, total = long_rates
        m = args.long
        print(f"{m}-experiment campaign (reservoirs x10), {total:.0f} s in all")
        print(f"  experiments 1-100:      {first:7.1f} experiments/s")
        print(
            f"  experiments {m - 99}-{m}: {last:7.1f} experiments/s  "
            f"(last / first: {last / first:.2f})"
        )


if __name__ == "__main__":
    main()

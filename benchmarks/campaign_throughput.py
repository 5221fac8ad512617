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

import bluesky.plans as bp
from bluesky import RunEngine
from ophyd.sim import det, motor

from db import Database
from orchestrator.campaign import CampaignRunner
from orchestrator.config import parse_campaign

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiments", type=int, default=50)
    args = parser.parse_args()
    n = args.experiments
    logging.getLogger("bluesky").setLevel(logging.CRITICAL)
    config = {
        "name": "throughput",
        "lab": str(ROOT / "configs" / "labs" / "sim.yaml"),
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
    loaded = parse_campaign(config, "", ROOT)
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(f"sqlite:///{Path(tmp) / 'bench.db'}")
        runner = CampaignRunner(db, loaded)
        start = time.perf_counter()
        summary = runner.run()
        campaign_s = time.perf_counter() - start
        lab_hours = runner.lab.clock.elapsed() / 3600
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


if __name__ == "__main__":
    main()

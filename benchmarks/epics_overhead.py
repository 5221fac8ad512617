"""What Channel Access costs: the same campaign in process and over EPICS.

Starts ``qdlab ioc`` (maximum speed-up) on a free loopback port, runs an N-experiment
random-planner hot-injection campaign with ``configs/labs/sim-epics.yaml`` and the same campaign
on the in-process simulated lab (``configs/labs/sim.yaml``), each into its own SQLite file, and
prints experiments/s of both, their ratio (target: CA at least 0.25x in-process), the CA
requests per experiment, and whether the observables agree bit for bit.

    python benchmarks/epics_overhead.py [--experiments 30]
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.campaign_throughput import _config  # noqa: E402
from tests.conftest import IOC, _free_port, epics_loopback_env  # noqa: E402


def _run(n: int, lab: str, tmp: Path) -> tuple[float, list]:
    from db import Database
    from orchestrator.campaign.config import parse_campaign
    from orchestrator.campaign.runner import CampaignRunner

    db = Database(f"sqlite:///{tmp / (lab + '.db')}")
    config = _config(n, ROOT / "configs" / "labs" / lab)
    runner = CampaignRunner(db, parse_campaign(config, yaml.safe_dump(config), ROOT))
    start = time.perf_counter()
    summary = runner.run()
    elapsed = time.perf_counter() - start
    rows = db.experiments(summary.campaign_id)
    return n / elapsed, [(r.status, r.observables) for r in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiments", type=int, default=30)
    args = parser.parse_args()
    logging.getLogger("bluesky").setLevel(logging.CRITICAL)
    os.environ.update(epics_loopback_env(_free_port()))
    ioc = IOC(speedup="max").start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            over_ca, ca_rows = _run(args.experiments, "sim-epics.yaml", Path(tmp))
            local, local_rows = _run(args.experiments, "sim.yaml", Path(tmp))
    finally:
        ioc.stop()
    print(f"{args.experiments}-experiment hot-injection campaign, random planner, SQLite")
    print(f"  in process (configs/labs/sim.yaml):        {local:6.1f} experiments/s")
    print(f"  over Channel Access (qdlab ioc, max speed): {over_ca:6.1f} experiments/s")
    print(f"  ratio CA / in process: {over_ca / local:.2f}x (target >= 0.25x)")
    print(f"  observables identical: {ca_rows == local_rows}")


if __name__ == "__main__":
    main()

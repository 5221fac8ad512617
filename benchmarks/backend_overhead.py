"""What each backend costs: the same campaign in process, over EPICS, over SiLA 2 and with the
robot driven through PyLabRobot.

Starts ``qdlab ioc`` and ``qdlab sila serve`` (maximum speed-up) on free loopback ports, runs an
N-experiment random-planner hot-injection campaign with ``configs/labs/sim-epics.yaml``,
``sim-sila2.yaml``, ``sim-pylabrobot.yaml`` and the in-process simulated lab
(``configs/labs/sim.yaml``), each into its own SQLite file, and prints experiments/s of each,
their ratio to in process (target: Channel Access and SiLA 2 at least 0.25x), and whether the
observables agree bit for bit with the in-process campaign's. Another run maps the
reactor's heater onto an ordinary hotplate IOC (tests/iocs/hotplate.py: an ao/ai pair ramping
at 500 °C/s, settled when the readback holds within 0.5 °C) beside ``qdlab ioc``: what waiting
on a readback costs. (Its chemistry is not comparable: the twin behind ``qdlab ioc`` never sees
the hotplate's heat.) The space's temperatures stop at the hotplate's 150 °C limit.

    python benchmarks/backend_overhead.py [--experiments 30]
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
from tests.conftest import (  # noqa: E402
    IOC,
    OrdinaryIOC,
    SilaServerProcess,
    _free_port,
    epics_loopback_env,
)


def _run(n: int, lab: Path, tmp: Path) -> tuple[float, list]:
    from db import Database
    from orchestrator.campaign.config import parse_campaign
    from orchestrator.campaign.runner import CampaignRunner

    db = Database(f"sqlite:///{tmp / (lab.stem + '.db')}")
    config = _config(n, lab)
    config["space"]["temperature_c"] = [90, 150]
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
    ports = [_free_port(), _free_port()]
    os.environ.update(epics_loopback_env(ports[0], ports[1:]))
    labs = ROOT / "configs" / "labs"
    ioc = IOC(speedup="max").start()
    hotplate = OrdinaryIOC("hotplate", "TEMP:RBV", ports[1]).start()
    sila = SilaServerProcess(speedup="max").start()
    try:
        hotplate.put("RATE", 500.0)
        with tempfile.TemporaryDirectory() as tmp:
            mapped = Path(tmp) / "hotplate.yaml"
            heater = {"setpoint": hotplate.pv("TEMP:SP"), "readback": hotplate.pv("TEMP:RBV"),
                      "tolerance": 0.5, "hold_s": 0.0}  # fmt: skip
            mapped.write_text(yaml.safe_dump({
                "base": str(labs / "sim-epics.yaml"), "name": "hotplate",
                "reactor": {"max_temperature_c": 150},
                "epics": {"mapped": {"reactor:heater": heater}},
            }))  # fmt: skip
            n, tmp_dir = args.experiments, Path(tmp)
            over_ca, ca_rows = _run(n, labs / "sim-epics.yaml", tmp_dir)
            settle, _ = _run(n, mapped, tmp_dir)
            over_sila, sila_rows = _run(n, sila.lab_config(tmp_dir), tmp_dir)
            plr, plr_rows = _run(n, labs / "sim-pylabrobot.yaml", tmp_dir)
            local, local_rows = _run(n, labs / "sim.yaml", tmp_dir)
    finally:
        sila.stop()
        hotplate.stop()
        ioc.stop()
    print(f"{args.experiments}-experiment hot-injection campaign, random planner, SQLite")
    print(f"  in process (configs/labs/sim.yaml):            {local:6.1f} experiments/s")
    for label, rate, rows in (
        ("over Channel Access (qdlab ioc, max speed)", over_ca, ca_rows),
        ("over SiLA 2 (qdlab sila serve, max speed)", over_sila, sila_rows),
        ("robot through PyLabRobot (chatterbox)", plr, plr_rows),
    ):
        print(f"  {label + ':':47s}{rate:6.1f} experiments/s  {rate / local:.2f}x in process, "
              f"observables identical: {rows == local_rows}")  # fmt: skip
    print("  (target: Channel Access and SiLA 2 >= 0.25x in process)")
    print(f"  heater on an ordinary IOC (readback settle):   {settle:6.1f} experiments/s")


if __name__ == "__main__":
    main()

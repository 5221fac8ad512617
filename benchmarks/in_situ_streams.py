"""What in-situ streams cost: documents/s, bytes stored per experiment, campaign throughput
and database growth, with ~100-point in-situ streams against today's single measurement.

Runs the same random hot-injection campaign (growth times 195-205 s, fast virtual clock,
SQLite storage of every document) on the simulated lab (``configs/labs/sim.yaml``: primary,
baseline and temperature-monitor streams) and on the lab with a dip probe read every 2 s
(``configs/labs/sim-insitu.yaml``: ~100 in-situ spectra per experiment on top). Prints, per
lab, experiments/s, documents/s, documents and bytes per experiment and the database for 1,000
experiments, and what one in-situ reading costs.

    python benchmarks/in_situ_streams.py [--experiments 20]
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import create_engine, text

from benchmarks.campaign_throughput import ROOT, _big_deck_lab, _config
from db import Database
from orchestrator.campaign.config import parse_campaign
from orchestrator.campaign.runner import CampaignRunner

LABS = {
    "one measurement": ROOT / "configs" / "labs" / "sim.yaml",
    "in situ every 2 s": ROOT / "configs" / "labs" / "sim-insitu.yaml",
}


@dataclass
class Cost:
    """One campaign's figures."""

    experiments: int
    seconds: float
    documents: int
    in_situ_events: int
    bytes: int

    @property
    def per_experiment(self) -> tuple[float, float, float]:
        """(documents, in-situ readings, bytes) per experiment."""
        n = self.experiments
        return self.documents / n, self.in_situ_events / n, self.bytes / n


def _with_probe_of(lab: Path, big: Path, tmp: Path) -> Path:
    """``lab``'s probe settings on the big-deck copy of the simulated lab."""
    if lab.name == "sim.yaml":
        return big
    path = tmp / f"big-{lab.name}"
    path.write_text(lab.read_text().replace("base: sim.yaml", f"base: {big}"))
    return path


def run(lab: Path, n: int, tmp: Path) -> Cost:
    """Run the campaign on ``lab`` into a fresh SQLite file; measure it."""
    db_path = tmp / f"{lab.stem}.db"
    config = _config(n, lab)
    config["space"]["time_s"] = [195, 205]
    runner = CampaignRunner(Database(f"sqlite:///{db_path}"), parse_campaign(config, "", ROOT))
    start = time.perf_counter()
    summary = runner.run()
    seconds = time.perf_counter() - start
    engine = create_engine(f"sqlite:///{db_path}")
    with engine.connect() as conn:
        documents = conn.execute(text("SELECT count(*) FROM documents")).scalar_one()
        in_situ = conn.execute(
            text("SELECT count(*) FROM spectra WHERE stream = 'insitu'")
        ).scalar_one()
        conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
    engine.dispose()
    size = sum(p.stat().st_size for p in tmp.glob(f"{db_path.name}*"))
    return Cost(summary.experiments, seconds, documents, in_situ // 2, size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiments", type=int, default=20)
    args = parser.parse_args()
    logging.getLogger("bluesky").setLevel(logging.CRITICAL)
    costs = {}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        big = _big_deck_lab(tmp)
        for label, lab in LABS.items():
            costs[label] = run(_with_probe_of(lab, big, tmp), args.experiments, tmp)
    print(f"{args.experiments}-experiment random hot-injection campaigns, growth 195-205 s, SQLite")
    print(
        f"  {'':18s} {'exp/s':>7s} {'docs/s':>8s} {'docs/exp':>9s} {'in situ/exp':>12s} "
        f"{'MB/exp':>8s} {'GB per 1,000 exp':>17s}"
    )
    for label, c in costs.items():
        docs, in_situ, size = c.per_experiment
        print(
            f"  {label:18s} {c.experiments / c.seconds:7.2f} {c.documents / c.seconds:8.0f} "
            f"{docs:9.0f} {in_situ:12.0f} {size / 1e6:8.2f} {size * 1000 / 1e9:17.2f}"
        )
    plain, probed = costs.values()
    extra_s = probed.seconds / probed.experiments - plain.seconds / plain.experiments
    per_reading_ms = 1e3 * extra_s / max(probed.per_experiment[1], 1.0)
    print(
        f"  each in-situ reading adds {per_reading_ms:.0f} ms of computer time (simulated "
        "spectra, bluesky's events, analysis, storage) to an experiment of ~4 min lab time"
    )
    print("  (the campaign without a probe, against the code before in-situ streams:")
    print("   benchmarks/campaign_throughput.py; target: within 2x)")


if __name__ == "__main__":
    main()

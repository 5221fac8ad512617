"""What writing every run to tiled costs a campaign, per experiment.

Starts ``tiled serve catalog --temp`` on a free loopback port (the server QDLab's tests use),
then runs the same N hot-injection syntheses (the in-process simulated lab, a RunEngine
writing to a SQLite database as a campaign's does, a second of planning between two) four
ways, each into its own database: without tiled; with bluesky's ``TiledWriter`` subscribed as
it comes (a request per document: what ``--tiled`` did before); with QDLab's
:class:`db.tiled.TiledSink` publishing each run in one go when it stops (an IPython session);
and with the sink publishing on its own thread while the next experiment runs (a campaign).

It prints the seconds per experiment the RunEngine spends (what the next experiment waits
for), how long after the last experiment the background sink's last runs were in the catalog,
and checks that every run is there with its spectra as a 2-D float array.

    python benchmarks/tiled_cost.py [--experiments 12]
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
THINK_S = 1.0
"""Between two experiments a campaign asks its planner (the BoTorch ask: ~0.5-1 s)."""
sys.path.insert(0, str(ROOT))

from tests.conftest import TILED_SERVER_PYTHON, TiledServer  # noqa: E402


def _run(n: int, workdir: Path, label: str, sink: Any = None) -> tuple[float, float, list[str]]:
    """Seconds per experiment of ``n`` syntheses (the RunEngine's, the experiments wait on
    them), seconds waiting for the sink's last runs at the end, and the run uids."""
    import numpy as np

    from db import Database
    from devices import build_lab
    from orchestrator.execution.engine import new_run_engine
    from orchestrator.execution.plans import hot_injection_synthesis

    lab = build_lab(seed=0)
    RE = new_run_engine(Database(f"sqlite:///{workdir / label}.db"), sigint=False)
    if sink is not None:
        RE.subscribe(sink)
    rng = np.random.default_rng(0)
    uids = []
    started = time.perf_counter()
    for i in range(n):
        lab.reseed(0, i)
        conditions = {
            "br_pb_ratio": float(rng.uniform(2, 30)),
            "temperature_c": float(rng.uniform(100, 190)),
            "ligand": "oa_olam",
            "time_s": float(rng.uniform(5, 60)),
        }
        uids.extend(RE(hot_injection_synthesis(lab, conditions)))
        time.sleep(THINK_S)  # the planner asks for the next experiment meanwhile
    ran = time.perf_counter() - started - n * THINK_S
    started = time.perf_counter()
    close = getattr(sink, "close", None)
    if close is not None:
        left = close()
        assert not left, f"{len(left)} runs not published"
    return ran / n, time.perf_counter() - started, uids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--experiments", type=int, default=12)
    args = parser.parse_args()
    if not TILED_SERVER_PYTHON.exists():
        sys.exit("the tiled server is not installed (make install puts it in .venv)")
    logging.disable(logging.WARNING)
    from bluesky.callbacks.tiled_writer import TiledWriter

    from db.tiled import TiledSink, connect

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        server = TiledServer(workdir).start()
        os.environ["TILED_API_KEY"] = server.key
        try:
            n = args.experiments
            alone, _, _ = _run(n, workdir, "alone")
            per_document = TiledWriter(connect(server.url), batch_size=1)
            per_doc, _, _ = _run(n, workdir, "per-document", per_document)
            at_stop, _, _ = _run(n, workdir, "at-stop", TiledSink(server.url))
            sink = TiledSink(server.url, background=True)
            background, drain, uids = _run(n, workdir, "background", sink)
            catalog = connect(server.url)
            for uid in uids:
                spectra = catalog[uid]["primary"].read()["cell_pl"]
                assert spectra.dtype == "float64" and spectra.ndim == 2, spectra.dtype
        finally:
            server.stop()
    print(f"{n} hot-injection syntheses (in-process simulated lab, SQLite), {THINK_S:g} s of "
          "planning between two; tiled on loopback. Seconds per experiment the RunEngine "
          "spends, which the next experiment waits for:")  # fmt: skip
    print(f"  without tiled:                            {alone:6.3f} s")
    for label, value in (
        ("TiledWriter, a request per document:", per_doc),
        ("TiledSink, each run at its stop (IPython):", at_stop),
        ("TiledSink in the background (campaigns):", background),
    ):
        print(f"  {label:42s}{value:6.3f} s  (tiled adds {value - alone:+.3f} s)")
    print(
        f"  the background sink's last runs were in the catalog {drain:.2f} s after the "
        f"last experiment; all {len(uids)} runs there, spectra as 2-D float arrays"
    )


if __name__ == "__main__":
    main()

"""Dashboard latency: the campaign page and its data endpoint for 100 and 1,000 experiments.

Records real random-planner campaigns of 100 and 1,000 hot-injection experiments on the
simulated lab (SQLite; ``--postgres URL`` for PostgreSQL too), serves ``qdlab dashboard`` over
them with uvicorn on loopback, and times what a browser fetches when it opens the campaign page:
the HTML, and ``/api/campaigns/{id}`` (every experiment and the latest spectra), each the median
of 20 requests; then, in Debian's Chromium (Playwright), the time from opening the page until
every experiment is in its table and the plots are drawn (median of 5, the browser's cache warm
as a returning user's). Target: under 1 s for 1,000 experiments.

    python benchmarks/dashboard_load.py [--postgres postgresql+psycopg://...]
"""

from __future__ import annotations

import argparse
import logging
import socket
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import uvicorn

from db import Database
from orchestrator.campaign.config import parse_campaign
from orchestrator.campaign.runner import CampaignRunner
from orchestrator.dashboard import create_app

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from campaign_throughput import _big_deck_lab, _config  # noqa: E402

SIZES = (100, 1000)


def _record(url: str, lab: Path) -> dict[int, int]:
    """Campaign id per size, recorded into the database at ``url``."""
    db = Database(url)
    ids = {}
    for n in SIZES:
        start = time.perf_counter()
        ids[n] = CampaignRunner(db, parse_campaign(_config(n, lab), "", ROOT)).run().campaign_id
        print(f"  recorded {n} experiments in {time.perf_counter() - start:.0f} s", flush=True)
    return ids


def _serve(url: str) -> tuple[str, uvicorn.Server]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(create_app(url), host="127.0.0.1", port=port, log_level="warning")
    )
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}", server


def _median_s(address: str, path: str, repeats: int = 20) -> tuple[float, int]:
    times, size = [], 0
    for _ in range(repeats):
        start = time.perf_counter()
        size = len(urllib.request.urlopen(address + path).read())
        times.append(time.perf_counter() - start)
    return statistics.median(times), size


def _browser_s(address: str, paths: dict[int, str], repeats: int = 5) -> dict[int, float]:
    """Seconds from ``goto`` to a full table and drawn plots, per campaign size (None: no
    Chromium here)."""
    import shutil

    chromium = shutil.which("chromium")
    if chromium is None:
        return {}
    from playwright.sync_api import sync_playwright

    sys.path.insert(0, str(ROOT))
    from tests.conftest import CHROMIUM_ARGS

    out = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = browser.new_page()
        for n, path in paths.items():
            times = []
            for _ in range(repeats + 1):  # the first visit fills the cache
                start = time.perf_counter()
                page.goto(address + path)
                page.wait_for_function(
                    f"document.querySelectorAll('#experiments tr').length >= {n}"
                    " && document.querySelector('#explored .main-svg') !== null"
                )
                times.append(time.perf_counter() - start)
            out[n] = statistics.median(times[1:])
        browser.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", help="also measure on this PostgreSQL database URL")
    args = parser.parse_args()
    logging.getLogger("bluesky").setLevel(logging.CRITICAL)
    with tempfile.TemporaryDirectory() as tmp:
        lab = _big_deck_lab(Path(tmp))
        backends = [("SQLite", f"sqlite:///{Path(tmp) / 'dashboard.db'}")]
        if args.postgres:
            backends.append(("PostgreSQL", args.postgres))
        rows = []
        for label, url in backends:
            ids = _record(url, lab)
            address, server = _serve(url)
            shown = _browser_s(address, {n: f"/campaigns/{cid}" for n, cid in ids.items()})
            for n, cid in ids.items():
                page, _ = _median_s(address, f"/campaigns/{cid}")
                data, size = _median_s(address, f"/api/campaigns/{cid}")
                rows.append((label, n, page, data, size, shown.get(n)))
            server.should_exit = True
        print(
            f"{'database':<11} {'experiments':>11} {'page s':>8} {'data s':>8} {'data KB':>8} "
            f"{'in browser s':>13}"
        )
        for label, n, page, data, size, browser in rows:
            drawn = "no chromium" if browser is None else f"{browser:.3f}"
            print(f"{label:<11} {n:>11} {page:>8.3f} {data:>8.3f} {size / 1024:>8.0f} {drawn:>13}")
    print("target: the 1,000-experiment campaign page complete in the browser in under 1 s")


if __name__ == "__main__":
    main()

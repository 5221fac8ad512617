"""Dashboard latency: the campaign page and its data endpoint for 100 and 1,000 experiments.

Records real random-planner campaigns of 100 and 1,000 hot-injection experiments on the
simulated lab (SQLite; ``--postgres URL`` for PostgreSQL too), serves ``qdlab dashboard`` over
them with uvicorn on loopback, and times what a browser fetches when it opens the campaign page:
the HTML, and ``/api/campaigns/{id}`` (every experiment and the latest spectra), each the median
of 20 requests; then, in Debian's Chromium (Playwright), the time from opening the page until
every experiment is in its table and the plots are drawn (median of 5, the browser's cache warm
as a returning user's). Target: under 1 s for 1,000 experiments.

Then ``--viewers N`` (default 20) pages polling the 1,000-experiment campaign every second, as
open dashboards do, while an experiment is stored every 2 s: the response times' median and
99th percentile, with the pages' conditional requests (``If-None-Match``: a poll that finds
nothing new is a 304) and without (every poll fetches the whole campaign). Target: p99 < 1 s.

    python benchmarks/dashboard_load.py [--postgres postgresql+psycopg://...] [--viewers 20]
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
import urllib.error
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
        # (the wait below is a script evaluated in the page, which its CSP would refuse)
        page = browser.new_page(bypass_csp=True)
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


def _viewers(
    address: str, db: Database, cid: int, viewers: int, conditional: bool, seconds: float = 20.0
) -> tuple[int, float, float]:
    """(requests, median s, p99 s) of ``viewers`` pages polling campaign ``cid`` every second
    for ``seconds`` while an experiment is stored every 2 s."""
    times: list[float] = []
    lock = threading.Lock()
    stop = time.monotonic() + seconds
    conditions = db.experiments(cid)[0].conditions

    def viewer() -> None:
        etag = None
        while time.monotonic() < stop:
            tick = time.monotonic()
            headers = {"If-None-Match": etag} if conditional and etag else {}
            request = urllib.request.Request(f"{address}/api/campaigns/{cid}", headers=headers)
            try:
                with urllib.request.urlopen(request) as response:
                    response.read()
                    etag = response.headers.get("ETag")
            except urllib.error.HTTPError as exc:  # 304: nothing new
                if exc.code != 304:
                    raise
            with lock:
                times.append(time.monotonic() - tick)
            time.sleep(max(0.0, 1.0 - (time.monotonic() - tick)))

    def writer() -> None:
        while time.monotonic() < stop:
            db.add_experiment(cid, None, conditions, planner_name="load", planner_version="1")
            time.sleep(2.0)

    threads = [threading.Thread(target=viewer) for _ in range(viewers)]
    threads.append(threading.Thread(target=writer))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    times.sort()
    return len(times), statistics.median(times), times[int(0.99 * (len(times) - 1))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", help="also measure on this PostgreSQL database URL")
    parser.add_argument("--viewers", type=int, default=20, help="pages polling at once")
    args = parser.parse_args()
    logging.getLogger("bluesky").setLevel(logging.CRITICAL)
    with tempfile.TemporaryDirectory() as tmp:
        lab = _big_deck_lab(Path(tmp))
        backends = [("SQLite", f"sqlite:///{Path(tmp) / 'dashboard.db'}")]
        if args.postgres:
            backends.append(("PostgreSQL", args.postgres))
        rows, polled = [], []
        for label, url in backends:
            ids = _record(url, lab)
            address, server = _serve(url)
            shown = _browser_s(address, {n: f"/campaigns/{cid}" for n, cid in ids.items()})
            for n, cid in ids.items():
                page, _ = _median_s(address, f"/campaigns/{cid}")
                data, size = _median_s(address, f"/api/campaigns/{cid}")
                rows.append((label, n, page, data, size, shown.get(n)))
            for conditional in (True, False):
                measured = _viewers(address, Database(url), ids[1000], args.viewers, conditional)
                polled.append((label, conditional, *measured))
            server.should_exit = True
        print(
            f"{'database':<11} {'experiments':>11} {'page s':>8} {'data s':>8} {'data KB':>8} "
            f"{'in browser s':>13}"
        )
        for label, n, page, data, size, browser in rows:
            drawn = "no chromium" if browser is None else f"{browser:.3f}"
            print(f"{label:<11} {n:>11} {page:>8.3f} {data:>8.3f} {size / 1024:>8.0f} {drawn:>13}")
    print("target: the 1,000-experiment campaign page complete in the browser in under 1 s")
    print(
        f"\n{args.viewers} pages polling the 1,000-experiment campaign every second (an experiment"
    )
    print("stored every 2 s)")
    print(f"{'database':<11} {'conditional':>11} {'requests':>9} {'p50 s':>7} {'p99 s':>7}")
    for label, conditional, n, p50, p99 in polled:
        said = "yes" if conditional else "no"
        print(f"{label:<11} {said:>11} {n:>9} {p50:>7.3f} {p99:>7.3f}")
    print("target: p99 < 1 s with the pages' conditional requests")


if __name__ == "__main__":
    main()

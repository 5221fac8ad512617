"""Sample efficiency of the planners: experiments to the first hit of a target, head to head.

Runs complete campaigns through the campaign runner on the simulated lab (fast virtual clock,
SQLite in memory) for hot-injection targets 465, 475, 490 and 505 nm (tolerance 1 nm, budget 30,
stop at the first hit) and 5 seeds, for the planners ``botorch``, ``random``, ``sobol`` and the
peers Ax and BayBE (``benchmarks/peers.py``; ``pip install -e '.[bench]'``, skipped with a note if
missing). Prints one table: per planner the median and interquartile range of experiments to the
first hit (a miss counts as budget + 1), the success rate within budget, and the median time of
an ``ask`` that used the model (initial-design asks excluded). Then the BoTorch planner's
proposal latency with 10, 25 and 50 observations, for q = 1 and q = 4.

With ``--materials`` it runs the red and green materials instead: 650 nm CsPbI3, 530 nm
FAPbBr3, and 500 nm with the material left open (CsPbBr3 or FAPbBr3 both reach it), 5 seeds
each, and prints the same columns per material (planners ``botorch,random`` unless named).

    python benchmarks/planner_efficiency.py [--quick] [--materials] [--planners botorch,...]
"""

from __future__ import annotations

import argparse
import copy
import logging
import sys
import time
from pathlib import Path

import numpy as np

from db import Database
from orchestrator.campaign import CampaignRunner
from orchestrator.config import parse_campaign
from planners import make_planner

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

TARGETS = (465.0, 475.0, 490.0, 505.0)
SEEDS = (0, 1, 2, 3, 4)
BUDGET = 30
SPACE = {
    "br_pb_ratio": [2, 30],
    "temperature_c": [90, 200],
    "ligand": ["oa_olam", "oa_olam_acid_rich", "olpa", "alkylammonium_br"],
    "time_s": [1, 120],
}

MATERIAL_CASES: tuple[tuple[str, float, dict], ...] = (
    ("CsPbI3", 650.0, {**SPACE, "material": ["CsPbI3"], "temperature_c": [120, 200]}),
    ("FAPbBr3", 530.0, {**SPACE, "material": ["FAPbBr3"], "temperature_c": [60, 200]}),
    ("open", 500.0, {**SPACE, "material": ["CsPbBr3", "FAPbBr3"]}),
)
"""(label, target PL nm, space) of ``--materials``: the configs' spaces (configs/campaigns)."""


def run_one(
    kind: str, target: float, seed: int, space: dict = SPACE
) -> tuple[int | None, list[float]]:
    """(first hit, ask latencies) of one campaign."""
    config = {
        "name": f"{kind}-{target:g}-{seed}",
        "lab": str(ROOT / "configs" / "labs" / "sim.yaml"),
        "route": "hot_injection",
        "target": {"pl_peak_nm": target, "tolerance_nm": 1.0},
        "space": space,
        "planner": {"kind": "random"},
        "budget": BUDGET,
        "seed": seed,
    }
    loaded = parse_campaign(config, "", ROOT)
    if kind in ("ax", "baybe"):
        from peers import PEERS

        planner = PEERS[kind](loaded.space, loaded.target, seed)
    else:
        planner = make_planner(kind, loaded.space, loaded.target, seed, route="hot_injection")
    latencies: list[float] = []
    ask = planner.ask

    def timed_ask(n: int = 1):
        start = time.perf_counter()
        out = ask(n)
        latencies.append(time.perf_counter() - start)
        return out

    planner.ask = timed_ask  # type: ignore[method-assign]
    runner = CampaignRunner(
        Database("sqlite://"), loaded, planner=planner, max_consecutive_failures=BUDGET + 1
    )
    return runner.run().first_hit_experiment, latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 targets x 2 seeds")
    parser.add_argument("--materials", action="store_true", help="red and green materials")
    parser.add_argument("--planners", default=None, help="comma-separated planner kinds")
    args = parser.parse_args()
    logging.getLogger("bluesky").setLevel(logging.CRITICAL)
    seeds = SEEDS[:2] if args.quick else SEEDS
    default = "botorch,random" if args.materials else "botorch,random,sobol,ax,baybe"
    kinds = [k.strip() for k in (args.planners or default).split(",") if k.strip()]
    if args.materials:
        for label, target, space in MATERIAL_CASES:
            rows = compare(kinds, [(target, space)], seeds)
            print(
                f"\n{label}: {target:g} nm (tolerance 1 nm), material {space['material']}, ", end=""
            )
            table(rows, seeds)
        return
    targets = (470.0, 490.0) if args.quick else TARGETS
    rows = compare(kinds, [(t, SPACE) for t in targets], seeds)
    print(f"\ntargets {', '.join(f'{t:g}' for t in targets)} nm (tolerance 1 nm), ", end="")
    table(rows, seeds)
    if "botorch" in kinds:
        latency_table()


def compare(
    kinds: list[str], cases: list[tuple[float, dict]], seeds: tuple[int, ...]
) -> list[tuple[str, tuple[list, list] | None]]:
    """Per planner: first hits and ask latencies over every (target, space) and seed."""
    rows: list[tuple[str, tuple[list, list] | None]] = []
    for kind in kinds:
        if kind in ("ax", "baybe"):
            try:
                __import__("ax" if kind == "ax" else "baybe")
            except ImportError:
                rows.append((kind, None))
                print(f"{kind}: not installed (pip install -e '.[bench]'), skipped", flush=True)
                continue
        hits, lat = [], []
        start = time.perf_counter()
        for target, space in cases:
            for seed in seeds:
                hit, latencies = run_one(kind, target, seed, space)
                hits.append(hit)
                lat.extend(latencies)
        print(
            f"{kind}: {len(hits)} campaigns in {time.perf_counter() - start:.0f} s "
            f"(first hits {hits})",
            flush=True,
        )
        rows.append((kind, (hits, lat)))
    return rows


def table(rows: list[tuple[str, tuple[list, list] | None]], seeds: tuple[int, ...]) -> None:
    """Median and IQR of experiments to the first hit, success rate, median model ask."""
    print(f"seeds {list(seeds)}, budget {BUDGET}, stop at the first hit")
    header = f"{'planner':<9} {'median to hit':>13} {'IQR':>11} {'success':>8} {'median ask s':>13}"
    print(header)
    print("-" * len(header))
    for kind, result in rows:
        if result is None:
            print(f"{kind:<9} {'not installed':>13}")
            continue
        hits, lat = result
        counted = np.array([h if h is not None else BUDGET + 1 for h in hits], dtype=float)
        q1, med, q3 = np.percentile(counted, [25, 50, 75])
        success = np.mean([h is not None for h in hits])
        model_asks = [x for x in lat if x > 0.02] or [0.0]
        print(
            f"{kind:<9} {med:>13.1f} {f'{q1:.1f}-{q3:.1f}':>11} {success:>8.0%} "
            f"{np.median(model_asks):>13.3f}"
        )


def latency_table() -> None:
    """BoTorch proposal latency against the number of observations, q = 1 and q = 4."""
    from models.simulation import simulate
    from planners import Observation

    loaded = parse_campaign(
        {
            "name": "latency",
            "lab": str(ROOT / "configs" / "labs" / "sim.yaml"),
            "route": "hot_injection",
            "target": {"pl_peak_nm": 475.0, "tolerance_nm": 1.0},
            "space": SPACE,
            "planner": {"kind": "botorch"},
            "budget": 60,
            "seed": 0,
        },
        "",
        ROOT,
    )
    rng = np.random.default_rng(0)
    print()
    print("botorch proposal latency (s), median of 3 asks")
    print(f"{'observations':>12} {'q = 1':>8} {'q = 4':>8}")
    for n in (10, 25, 50):
        planner = make_planner("botorch", loaded.space, loaded.target, 0, route="hot_injection")
        conditions = loaded.space.from_unit(rng.random((n, loaded.space.dim)))
        batch = simulate("hot_injection", conditions, rng)
        planner.tell(
            [
                Observation(c, {k: float(v[i]) for k, v in batch.observables.items()})
                for i, c in enumerate(conditions)
            ]
        )
        # the first ask of a campaign builds the candidate pool and the first fit: not timed
        (first,) = planner.ask(1)
        planner.cancel(first.conditions)
        times = {}
        for q in (1, 4):
            runs = []
            for _ in range(3):
                state = copy.deepcopy(planner)  # the same n observations every time
                start = time.perf_counter()
                state.ask(q)
                runs.append(time.perf_counter() - start)
            times[q] = float(np.median(runs))
        print(f"{n:>12} {times[1]:>8.2f} {times[4]:>8.2f}")


if __name__ == "__main__":
    main()

"""Sample efficiency of the planners: experiments to the first hit of a target, head to head.

Runs complete campaigns through the campaign runner on the simulated lab (fast virtual clock,
SQLite in memory) for hot-injection targets 465, 475, 490 and 505 nm (tolerance 1 nm, budget 30,
stop at the first hit) and 5 seeds, for the planners ``botorch``, ``random``, ``sobol`` and the
peers Ax and BayBE (``planners/peers.py``; ``pip install -e '.[peers]'``, skipped with a note if
missing). Prints one table: per planner the median and interquartile range of experiments to the
first hit (a miss counts as budget + 1), the success rate within budget, and the median time of
an ``ask`` that used the model (initial-design asks excluded). Then the BoTorch planner's
proposal latency with 10, 25 and 50 observations, for q = 1 and q = 4.

With ``--materials`` it runs the red and green materials instead: 650 nm CsPbI3, 530 nm
FAPbBr3, and 500 nm with the material left open (CsPbBr3 or FAPbBr3 both reach it), 5 seeds
each, and prints the same columns per material (planners ``botorch,random`` unless named).

With ``--family`` it runs the chemistries of ``benchmarks/chemistry_family.py``, which differ
from the twin the BoTorch planner's prior is built on, and the twin itself, through the same
runner as user outcome models: two cube targets per member (their reachable 30 % and 70 %
quantiles), 5 seeds, planners ``botorch,baybe`` unless named. It prints a line per member and
planner, then each planner's median over the whole family.

With ``--calibration`` it checks the BoTorch planner's predictive uncertainty: campaigns that
go on after the first hit (``stop_on_target: false``, 30 experiments, targets 465 and 490 nm,
seeds 0-2, on the twin and on two members of the family), and the share of measurements that
fell inside the 68 % and 95 % intervals the planner predicted for them when it proposed them.

With ``--quality`` it asks for more than the wavelength: 470 and 490 nm cubes with the narrowest
line (``minimize: [pl_fwhm_nm]``; Ax and BayBE each get that composite goal in their documented
way, see ``planners/peers.py``), and counts experiments until a hit whose FWHM is within 1 nm of
the narrowest FWHM the route reaches at that wavelength (found offline by dense sampling of the
twin's noiseless outcome), over 20 experiments a campaign.

With ``--generated tuning`` or ``--generated validation`` it runs the chemistries drawn by
``benchmarks/chemistry_generator.py`` (``--members N`` of the set, 100 by default): one
campaign per member towards a cube colour the member reaches, the same for every planner
(``botorch,baybe`` unless named). Develop on the tuning set; report the validation set.

    python benchmarks/planner_efficiency.py [--quick] [--materials] [--family] [--calibration]
                                            [--quality] [--generated SET [--members N]]
                                            [--planners ...]
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from db import Database
from db.records import ExperimentStatus
from orchestrator.campaign.config import parse_campaign
from orchestrator.campaign.runner import CampaignRunner
from planners import make_planner

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))  # the family's outcome models, by module path

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
    kind: str,
    target_nm: float,
    seed: int,
    space: dict = SPACE,
    outcome_model: str | None = None,
    db: Database | None = None,
    **changes: object,
) -> tuple[int | None, list[float]]:
    """(first hit, ask latencies) of one campaign (on ``outcome_model``'s chemistry if given;
    ``changes`` replace keys of the campaign config)."""
    config = {
        "name": f"{kind}-{target_nm:g}-{seed}",
        "lab": str(ROOT / "configs" / "labs" / "sim.yaml"),
        "route": "hot_injection",
        "target": {"pl_peak_nm": target_nm, "tolerance_nm": 1.0},
        "space": space,
        "planner": {"kind": "random"},
        "budget": BUDGET,
        "seed": seed,
    }
    if outcome_model is not None:
        config["simulator"] = {"outcome_model": outcome_model}
    loaded = parse_campaign({**config, **changes}, "", ROOT)
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
        db or Database("sqlite://"), loaded, planner=planner, max_consecutive_failures=BUDGET + 1
    )
    return runner.run().first_hit_experiment, latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 targets x 2 seeds")
    parser.add_argument("--materials", action="store_true", help="red and green materials")
    parser.add_argument("--family", action="store_true", help="chemistries unlike the twin")
    parser.add_argument("--calibration", action="store_true", help="predictive uncertainty")
    parser.add_argument("--quality", action="store_true", help="hits with the narrowest line")
    parser.add_argument("--planners", default=None, help="comma-separated planner kinds")
    parser.add_argument(
        "--generated",
        choices=("tuning", "validation"),
        help="chemistries of benchmarks/chemistry_generator.py: its tuning or validation set",
    )
    parser.add_argument("--members", type=int, default=100, help="with --generated: how many")
    args = parser.parse_args()
    logging.getLogger("bluesky").setLevel(logging.CRITICAL)
    seeds = SEEDS[:2] if args.quick else SEEDS
    default = (
        "botorch,random"
        if args.materials
        else "botorch,baybe"
        if args.family or args.generated
        else "botorch,random,sobol,ax,baybe"
    )
    kinds = [k.strip() for k in (args.planners or default).split(",") if k.strip()]
    if args.family:
        family(kinds, seeds)
        return
    if args.generated:
        generated(kinds, args.generated, args.members)
        return
    if args.calibration:
        calibration(seeds[:3])
        return
    if args.quality:
        quality(kinds, seeds)
        return
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


def family(kinds: list[str], seeds: tuple[int, ...]) -> None:
    """Every member of the chemistry family (and the twin), two targets each: a line per
    member and planner, then each planner's median over the family's members."""
    from chemistry_family import FAMILY, reachable_targets, twin

    members = {**FAMILY, "twin": twin}
    overall: dict[str, list] = {k: [] for k in kinds}
    lines = []
    for name, outcome in members.items():
        targets = reachable_targets(outcome, SPACE)
        print(f"\n{name}: targets {targets}", flush=True)
        rows = compare(kinds, [(t, SPACE) for t in targets], seeds, f"chemistry_family:{name}")
        for kind, result in rows:
            if result is not None:
                if name != "twin":
                    overall[kind].extend(result[0])
                lines.append((name, kind, result))
    print(
        f"\nfamily: {len(FAMILY)} chemistries unlike the twin, and the twin; 2 targets each, ",
        end="",
    )
    print(f"seeds {list(seeds)}, budget {BUDGET}, tolerance 1 nm, cubes")
    header = f"{'member':<21} {'planner':<8} {'median':>7} {'IQR':>10} {'success':>8} {'ask s':>6}"
    print(header)
    print("-" * len(header))
    for name, kind, (hits, lat) in lines:
        med, q1, q3, success, ask = _figures(hits, lat)
        iqr = f"{q1:.1f}-{q3:.1f}"
        print(f"{name:<21} {kind:<8} {med:>7.1f} {iqr:>10} {success:>8.0%} {ask:>6.2f}")
    print("-" * len(header))
    for kind, hits in overall.items():
        if hits:
            med, q1, q3, success, _ = _figures(hits, [])
            iqr = f"{q1:.1f}-{q3:.1f}"
            print(f"{'family (not twin)':<21} {kind:<8} {med:>7.1f} {iqr:>10} {success:>8.0%}")


QUALITY_BUDGET = 20


def narrowest_fwhm(target_nm: float, space: dict = SPACE) -> float:
    """The narrowest PL line of cubes within 1 nm of ``target_nm`` the twin's noiseless outcome
    gives in ``space``: a dense Sobol sample, then three rounds of local refinement."""
    from scipy.stats import qmc

    from models.analysis import platelet_like
    from models.simulation import simulate
    from planners import SearchSpace

    search = SearchSpace.from_config(space)
    rng = np.random.default_rng(0)
    u = qmc.Sobol(search.dim, seed=5).random(16384)
    best = np.inf
    for _ in range(4):
        batch = simulate("hot_injection", search.from_unit(u))
        obs = batch.observables
        ok = (np.abs(obs["pl_peak_nm"] - target_nm) <= 1.0) & ~platelet_like(
            obs["pl_peak_nm"], obs["pl_fwhm_nm"], obs["abs_peak_nm"]
        )
        fwhm = np.where(ok, obs["pl_fwhm_nm"], np.inf)
        best = min(best, float(fwhm.min()))
        keep = u[np.argsort(fwhm)[:64]]
        u = np.clip(np.repeat(keep, 64, axis=0) + rng.normal(0, 0.02, (64 * 64, search.dim)), 0, 1)
    return best


def quality(kinds: list[str], seeds: tuple[int, ...]) -> None:
    """Experiments until a hit whose FWHM is within 1 nm of the narrowest reachable there."""
    from planners import Target

    results: dict[str, list] = {k: [] for k in kinds}
    lines = []
    for target_nm in (470.0, 490.0):
        best = narrowest_fwhm(target_nm)
        lines.append(f"{target_nm:g} nm: the narrowest cube line is {best:.1f} nm")
        target = Target("pl_peak_nm", target_nm, 1.0, ("pl_fwhm_nm",))
        goal = {"pl_peak_nm": target_nm, "tolerance_nm": 1.0, "minimize": ["pl_fwhm_nm"]}
        for kind in kinds:
            for seed in seeds:
                db = Database("sqlite://")
                run_one(
                    kind, target_nm, seed, SPACE, None, db,
                    target=goal, budget=QUALITY_BUDGET, stop_on_target=False,
                )  # fmt: skip
                found = next(
                    (
                        r.number
                        for r in db.experiments(1)
                        if r.status == ExperimentStatus.DONE
                        and target.hit(r.observables, r.conditions)
                        and r.observables["pl_fwhm_nm"] <= best + 1.0
                    ),
                    None,
                )
                results[kind].append(found)
            print(f"{kind} {target_nm:g} nm: {results[kind][-len(seeds) :]}", flush=True)
    print()
    print("\n".join(lines))
    print(
        f"quality: experiments to a hit within 1 nm of the narrowest FWHM there, "
        f"targets 470, 490 nm, seeds {list(seeds)}, {QUALITY_BUDGET} experiments a campaign"
    )
    header = f"{'planner':<9} {'median':>7} {'IQR':>11} {'success':>8}"
    print(header)
    print("-" * len(header))
    for kind, hits in results.items():
        counted = np.array([h if h is not None else QUALITY_BUDGET + 1 for h in hits], float)
        q1, med, q3 = np.percentile(counted, [25, 50, 75])
        success = np.mean([h is not None for h in hits])
        print(f"{kind:<9} {med:>7.1f} {f'{q1:.1f}-{q3:.1f}':>11} {success:>8.0%}")


def calibration(seeds: tuple[int, ...]) -> None:
    """Coverage of the BoTorch planner's predicted 68 % and 95 % intervals on new measurements."""
    cases = {"twin": None, "noisy_batches": "chemistry_family:noisy_batches"}
    cases["inverted_temperature"] = "chemistry_family:inverted_temperature"
    print("botorch predictive calibration: campaigns on after the first hit, 30 experiments")
    header = f"{'chemistry':<21} {'predictions':>11} {'in 68 %':>8} {'in 95 %':>8} {'distinct':>9}"
    print(header)
    print("-" * len(header))
    for name, model in cases.items():
        inside1 = inside2 = total = distinct = runs = 0
        for target in (465.0, 490.0):
            for seed in seeds:
                db = Database("sqlite://")
                run_one("botorch", target, seed, SPACE, model, db, stop_on_target=False)
                rows = db.experiments(1)
                distinct += len({json.dumps(r.conditions, sort_keys=True) for r in rows})
                runs += len(rows)
                for r in rows:
                    y = (r.observables or {}).get("pl_peak_nm")
                    m, sd = r.predicted_mean, r.predicted_std
                    if (
                        None in (y, m, sd)
                        or not np.isfinite(y)
                        or r.status != ExperimentStatus.DONE
                    ):
                        continue
                    total += 1
                    inside1 += abs(y - m) <= sd
                    inside2 += abs(y - m) <= 1.96 * sd
        n = max(total, 1)
        print(
            f"{name:<21} {total:>11} {inside1 / n:>8.0%} {inside2 / n:>8.0%}"
            f" {distinct / max(runs, 1):>9.0%}"
        )
    print("nominal: 68 % and 95 % (target: within 10 points); distinct: conditions not repeated")


def _figures(hits: list, lat: list) -> tuple[float, float, float, float, float]:
    """(median, q1, q3 of experiments to the first hit, a miss counting budget + 1; success
    rate; median model ask, initial-design asks excluded)."""
    counted = np.array([h if h is not None else BUDGET + 1 for h in hits], dtype=float)
    q1, med, q3 = np.percentile(counted, [25, 50, 75])
    success = float(np.mean([h is not None for h in hits]))
    model_asks = [x for x in lat if x > 0.02] or [0.0]
    return float(med), float(q1), float(q3), success, float(np.median(model_asks))


def _installed(kind: str) -> bool:
    """Whether planner ``kind`` can run here (a peer's package may be missing: said once)."""
    if kind in ("ax", "baybe"):
        try:
            __import__("ax" if kind == "ax" else "baybe")
        except ImportError:
            print(f"{kind}: not installed (pip install -e '.[peers]'), skipped", flush=True)
            return False
    return True


def generated(kinds: list[str], which: str, members: int) -> None:
    """Chemistries of ``benchmarks/chemistry_generator.py``: the first ``members`` of the
    tuning or validation set, one campaign each towards a cube colour it reaches (a quantile
    drawn for the member between its reachable 20 % and 80 %), the member's seed as the
    campaign's; the same members and targets for every planner."""
    from chemistry_family import reachable_targets
    from chemistry_generator import TUNING, VALIDATION, draw

    chosen = list(TUNING if which == "tuning" else VALIDATION)[:members]
    cases = []
    for seed in chosen:
        quantile = float(np.random.default_rng([seed, 7]).uniform(0.2, 0.8))
        (target,) = reachable_targets(draw(seed), SPACE, n=512, quantiles=(quantile,))
        cases.append((seed, target))
    jobs = [(t, SPACE, seed, f"chemistry_generator:member_{seed}") for seed, t in cases]
    rows = run_jobs(kinds, jobs)
    print(
        f"\n{which} set: members {chosen[0]}-{chosen[-1]} ({len(chosen)}), one reachable cube "
        "target each, tolerance 1 nm, ",
        end="",
    )
    table(rows, None)


def compare(
    kinds: list[str],
    cases: list[tuple[float, dict]],
    seeds: tuple[int, ...],
    outcome_model: str | None = None,
) -> list[tuple[str, tuple[list, list] | None]]:
    """Per planner: first hits and ask latencies over every (target, space) and seed."""
    jobs = [(target, space, seed, outcome_model) for target, space in cases for seed in seeds]
    return run_jobs(kinds, jobs)


def run_jobs(
    kinds: list[str], jobs: list[tuple[float, dict, int, str | None]]
) -> list[tuple[str, tuple[list, list] | None]]:
    """Per planner: first hits and ask latencies of the campaigns ``jobs`` (target, space,
    seed, outcome model), in order; a peer that is not installed is None."""
    rows: list[tuple[str, tuple[list, list] | None]] = []
    for kind in kinds:
        if not _installed(kind):
            rows.append((kind, None))
            continue
        hits, lat = [], []
        start = time.perf_counter()
        for target, space, seed, outcome_model in jobs:
            hit, latencies = run_one(kind, target, seed, space, outcome_model)
            hits.append(hit)
            lat.extend(latencies)
        print(
            f"{kind}: {len(hits)} campaigns in {time.perf_counter() - start:.0f} s "
            f"(first hits {hits})",
            flush=True,
        )
        rows.append((kind, (hits, lat)))
    return rows


def table(rows: list[tuple[str, tuple[list, list] | None]], seeds: tuple[int, ...] | None) -> None:
    """Median and IQR of experiments to the first hit, success rate, median model ask."""
    said = "" if seeds is None else f"seeds {list(seeds)}, "
    print(f"{said}budget {BUDGET}, stop at the first hit")
    header = f"{'planner':<9} {'median to hit':>13} {'IQR':>11} {'success':>8} {'median ask s':>13}"
    print(header)
    print("-" * len(header))
    for kind, result in rows:
        if result is None:
            print(f"{kind:<9} {'not installed':>13}")
            continue
        med, q1, q3, success, ask = _figures(*result)
        print(f"{kind:<9} {med:>13.1f} {f'{q1:.1f}-{q3:.1f}':>11} {success:>8.0%} {ask:>13.3f}")


def told_planner(n: int, rng: np.random.Generator, **options: Any) -> Any:
    """A BoTorch planner (475 nm, hot injection) told ``n`` random experiments of the twin,
    none a hit, with its first ask (the candidate pool, the twin memo, the first fit) done."""
    from models.simulation import simulate
    from planners import Observation

    config = {
        "name": "latency",
        "lab": str(ROOT / "configs" / "labs" / "sim.yaml"),
        "route": "hot_injection",
        "target": {"pl_peak_nm": 475.0, "tolerance_nm": 1.0},
        "space": SPACE,
        "planner": {"kind": "botorch", **options},
        "budget": 500,
        "seed": 0,
    }
    loaded = parse_campaign(config, "", ROOT)
    planner = make_planner(
        "botorch", loaded.space, loaded.target, 0, options=options, route="hot_injection"
    )
    conditions = loaded.space.from_unit(rng.random((n, loaded.space.dim)))
    batch = simulate("hot_injection", conditions, rng)
    told = [
        Observation(c, {k: float(v[i]) for k, v in batch.observables.items()})
        for i, c in enumerate(conditions)
    ]
    # no hit among them: a hit is confirmed by a replicate, not by the model (not timed here)
    planner.tell([o for o in told if not loaded.target.hit(o.observables, o.conditions)])
    (first,) = planner.ask(1)
    planner.cancel(first.conditions)
    return planner


def median_ask_s(planner: Any, q: int = 1, repeats: int = 3) -> float:
    """The median seconds of ``repeats`` asks for ``q`` from the same state."""
    runs = []
    for _ in range(repeats):
        state = copy.deepcopy(planner)  # the same observations every time
        start = time.perf_counter()
        state.ask(q)
        runs.append(time.perf_counter() - start)
    return float(np.median(runs))


def latency_table() -> None:
    """BoTorch proposal latency against the number of observations, q = 1 and q = 4."""
    rng = np.random.default_rng(0)
    print()
    print("botorch proposal latency (s), median of 3 asks")
    print(f"{'observations':>12} {'q = 1':>8} {'q = 4':>8}")
    for n in (10, 25, 50):
        planner = told_planner(n, rng)
        print(f"{n:>12} {median_ask_s(planner, 1):>8.2f} {median_ask_s(planner, 4):>8.2f}")


if __name__ == "__main__":
    main()

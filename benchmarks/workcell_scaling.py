"""Workcell scaling: one campaign dispatched to 1, 2 and 4 workcells on this machine.

Each workcell is ``qdlab workcell serve`` (an RE Manager and its worker, its queue in a
throwaway ``redis-server``) serving the simulated lab at a speed-up that makes one hot-injection
experiment take a few seconds of wall time; the campaign's agent (``qdlab campaign run``) keeps
every workcell busy, ``queue_ahead`` experiments waiting behind the running one. Printed, for
the same number of experiments on each number of workcells:

- ``wall s``: the whole ``qdlab campaign run`` command, from launch (a few seconds of imports
  and connections that do not shrink with more workcells) to exit, and its speed-up over one
  workcell;
- ``span s``: from the first experiment's start to the last one's end, and its speed-up;
- ``work``: the experiments' run time per second of span, over one workcell's: the speed-up
  for the same work (BoTorch chooses other conditions, whose runs last longer or shorter, as
  the results arrive in another order; the random planner runs the same experiments);
- ``first hit``: the experiment at which the target was first hit with asynchronous dispatch
  (the busy workcells' conditions are the planner's pending points), against one workcell, on
  the default target (470 nm, BoTorch);
- ``run s``: the mean wall time of one experiment's run; ``busy``: the share of the wall time
  the workcells spent running experiments.

    python benchmarks/workcell_scaling.py [--experiments 40] [--workcells 1 2 4] [--speedup 100]
                                          [--planner botorch|random|sobol] [--queue-ahead 1]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from db import Database  # noqa: E402
from tests.conftest import RedisServer, WorkcellServer, qdlab  # noqa: E402

CAMPAIGN = ROOT / "configs" / "campaigns" / "blue_470_botorch.yaml"


def run(
    n_workcells: int, experiments: int, speedup: str, planner: str, seed: int, queue_ahead: int
) -> dict:
    """One campaign of ``experiments`` on ``n_workcells`` fresh workcells."""
    with tempfile.TemporaryDirectory(prefix="qdlab-scaling-") as tmp:
        tmp_path = Path(tmp)
        url = f"sqlite:///{tmp_path / 'lab.db'}"
        redis = RedisServer(tmp_path).start()
        names = [chr(ord("A") + i) for i in range(n_workcells)]
        servers = [WorkcellServer(n, url, redis.address, speedup) for n in names]
        try:
            for s in servers:
                s.start()
            config = yaml.safe_load(CAMPAIGN.read_text())
            config.update(
                lab=str(ROOT / "configs" / "labs" / "sim.yaml"),
                budget=experiments,
                seed=seed,
                stop_on_target=False,
                workcells=[{"name": n} for n in names],
                queue_ahead=queue_ahead,
            )
            if planner != "botorch":
                config["planner"] = {"kind": planner}
            path = tmp_path / "campaign.yaml"
            path.write_text(yaml.safe_dump(config))
            t0 = time.perf_counter()
            out = qdlab("campaign", "run", str(path), "--db", url, "--json", timeout=3600)
            wall = time.perf_counter() - t0
            if out.returncode != 0:
                raise SystemExit(f"campaign on {n_workcells} workcell(s) failed: {out.stderr}")
            summary = json.loads(out.stdout)
            db = Database(url)
            rows = db.experiments(summary["campaign_id"])
            per_workcell = {n: sum(r.workcell == n for r in rows) for n in names}
            runs = [r for r in db.runs(summary["campaign_id"]) if r["complete"]]
            run_s = [r["stop_time"] - r["start_time"] for r in runs]
        finally:
            for s in servers:
                s.stop()
            redis.stop()
    return {
        "workcells": n_workcells,
        "wall_s": wall,
        "experiments": summary["experiments"],
        "first_hit": summary["first_hit_experiment"],
        "per_workcell": per_workcell,
        "run_s": sum(run_s) / max(len(run_s), 1),
        "busy": sum(run_s) / (n_workcells * wall),
        "span_s": max(r["stop_time"] for r in runs) - min(r["start_time"] for r in runs),
        "run_total_s": sum(run_s),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiments", type=int, default=40)
    parser.add_argument("--workcells", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--speedup", default="100", help="lab seconds per wall-clock second")
    parser.add_argument("--planner", default="botorch", choices=["botorch", "random", "sobol"])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--queue-ahead", type=int, default=1, help="experiments waiting behind the running one"
    )
    args = parser.parse_args()

    print(
        f"workcell scaling: {args.experiments} hot-injection experiments, simulated lab at "
        f"speed-up {args.speedup}, planner {args.planner}, queue_ahead {args.queue_ahead}, "
        f"target 470 ± 1 nm"
    )
    print(
        f"{'workcells':>9} {'wall s':>7} {'speed-up':>8} {'span s':>7} {'speed-up':>8} "
        f"{'work':>6} {'first hit':>9} {'run s':>6} {'busy':>5}  per workcell"
    )
    base: dict[str, float] = {}
    for n in args.workcells:
        r = run(n, args.experiments, args.speedup, args.planner, args.seed, args.queue_ahead)
        r["rate"] = r["run_total_s"] / r["span_s"]
        for key in ("wall_s", "span_s"):  # without a 1-workcell run: the ideal
            base.setdefault(key, r[key] * (1 if n == 1 else n))
        base.setdefault("rate", r["rate"] / (1 if n == 1 else n))
        hit = "-" if r["first_hit"] is None else f"#{r['first_hit']}"
        print(
            f"{n:>9} {r['wall_s']:>7.1f} {base['wall_s'] / r['wall_s']:>7.2f}x "
            f"{r['span_s']:>7.1f} {base['span_s'] / r['span_s']:>7.2f}x "
            f"{r['rate'] / base['rate']:>5.2f}x {hit:>9} {r['run_s']:>6.2f} {r['busy']:>5.0%}  "
            + ", ".join(f"{k}: {v}" for k, v in r["per_workcell"].items()),
            flush=True,
        )


if __name__ == "__main__":
    main()

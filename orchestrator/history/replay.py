"""Replay, playback and backtest of recorded campaigns.

- :func:`replay_campaign` re-executes a campaign's recorded experiments, in order and with their
  recorded conditions, as a new campaign linked to the original (``replay_of``), with the same
  plans on the simulated lab (its own stored lab config, or another one, or another outcome
  model), and compares recorded and replayed observables. The simulated lab reseeds per
  experiment from (campaign seed, index), so replaying a simulated campaign with the same model
  reproduces it exactly.
- :func:`playback_documents` runs the same plans on devices whose optical cell serves the
  recorded readings in order instead of physics: plans, analysis and planners meet real recorded
  data with no hardware, and the documents come out equal to the originals apart from uids and
  timestamps.
- :func:`backtest` lets a planner choose only among a campaign's recorded experiments (it sees
  their recorded outcomes) and counts the experiments it needs to reach the target, beside the
  original order and random orders.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from db import Database, DatabaseError
from db.records import ExperimentStatus
from devices import build_lab
from devices.config import ConfigError, LabConfig, load_lab_config
from orchestrator.campaign.config import LoadedCampaign, loaded_from_stored
from planners import Observation, Planner, Proposal, SearchSpace, Target, make_planner

__all__ = ["RecordedPlanner", "ReplayResult", "backtest", "playback_documents", "replay_campaign"]

COMPARED = ("pl_peak_nm", "pl_fwhm_nm", "abs_peak_nm")


class RecordedPlanner(Planner):
    """Proposes a fixed list of conditions, in order (what a replay runs)."""

    name = "replay"
    version = "1"

    def __init__(
        self,
        space: SearchSpace,
        target: Target,
        conditions: Sequence[Mapping[str, Any]],
        seed: int | None = None,
    ) -> None:
        super().__init__(space, target, seed)
        self._queue = [dict(c) for c in conditions]
        self._next = 0

    def _propose(self, n: int) -> list[Proposal]:
        batch = self._queue[self._next : self._next + n]
        self._next += len(batch)
        return [
            self._proposal(c, provenance={"replayed_index": self._next - len(batch) + i})
            for i, c in enumerate(batch)
        ]


@dataclass(frozen=True)
class ReplayResult:
    """Recorded vs replayed observables of every experiment, and their summary."""

    original_id: int
    replay_id: int
    rows: list[dict[str, Any]]

    def summary(self) -> dict[str, Any]:
        """RMSE and max |error| of each compared observable over experiments measured twice."""
        out: dict[str, Any] = {
            "replay_campaign_id": self.replay_id,
            "original_campaign_id": self.original_id,
            "experiments": len(self.rows),
        }
        for key in COMPARED:
            diffs = np.array(
                [
                    r[f"{key}_replayed"] - r[f"{key}_recorded"]
                    for r in self.rows
                    if r[f"{key}_replayed"] is not None and r[f"{key}_recorded"] is not None
                ]
            )
            short = key.replace("_nm", "")
            out[f"{short}_rmse_nm"] = float(np.sqrt(np.mean(diffs**2))) if diffs.size else None
            out[f"{short}_max_error_nm"] = float(np.abs(diffs).max()) if diffs.size else None
        return out


def _stored(db: Database, campaign_id: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    campaign = db.campaign(campaign_id)
    rows = db.experiments(campaign_id)
    if not any(r.status == ExperimentStatus.DONE for r in rows):
        raise DatabaseError(f"campaign {campaign_id} has no completed experiments to replay")
    return campaign, rows


def _replay_setup(
    campaign: dict[str, Any], n: int, lab_path: str | None, outcome_model: str | None
) -> LoadedCampaign:
    loaded = loaded_from_stored(campaign["config"], campaign["name"], outcome_model)
    if lab_path is None:
        loaded.check_code()
    lab: LabConfig = load_lab_config(lab_path) if lab_path else loaded.lab
    route = loaded.config.route
    if route == "flow" and lab.flow is None:
        raise ConfigError(
            f"lab {lab_path}: has no flow reactor; campaign {campaign['id']} used the flow route"
        )
    sim = lab.simulator.model_copy(update={"seed": loaded.config.seed})
    if outcome_model is not None:
        from models.simulation import load_outcome_model

        load_outcome_model(outcome_model)  # fails early, with the path, if it does not import
        sim = sim.model_copy(
            update={"outcome_models": {**sim.outcome_models, route: outcome_model}}
        )
    elif lab_path is None:
        sim = loaded.lab.simulator
    cfg = loaded.config.model_copy(
        update={
            "name": f"replay of {campaign['name']}",
            "budget": n,
            "stop_on_target": False,
            "batch_size": 1,
        }
    )
    return LoadedCampaign(
        cfg, lab.model_copy(update={"simulator": sim}), "", loaded.space, loaded.target
    )


def replay_campaign(
    db: Database, campaign_id: int, lab_path: str | None = None, outcome_model: str | None = None
) -> ReplayResult:
    """Re-run campaign ``campaign_id`` (see the module docstring)."""
    from orchestrator.campaign.runner import CampaignRunner

    campaign, rows = _stored(db, campaign_id)
    loaded = _replay_setup(campaign, len(rows), lab_path, outcome_model)
    planner = RecordedPlanner(loaded.space, loaded.target, [r.conditions for r in rows])
    runner = CampaignRunner(
        db, loaded, planner=planner, replay_of=campaign_id, max_consecutive_failures=len(rows) + 1
    )
    runner.run()
    replayed = db.experiments(runner.campaign_id)
    out = []
    for rec, rep in zip(rows, replayed, strict=True):
        row: dict[str, Any] = {
            "index": rec.index,
            "conditions": rec.conditions,
            "recorded_status": rec.status,
            "replayed_status": rep.status,
        }
        for key in COMPARED:
            for label, r in (("recorded", rec), ("replayed", rep)):
                v = (r.observables or {}).get(key)
                row[f"{key}_{label}"] = v if v is not None and math.isfinite(v) else None
        out.append(row)
    return ReplayResult(campaign_id, runner.campaign_id, out)


def parity_plot(result: ReplayResult, out_dir: str | Path) -> Path:
    """Recorded vs replayed PL peak, FWHM and absorption peak, one panel each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, 3, figsize=(12, 4), dpi=110)
    for ax, key in zip(axes, COMPARED, strict=True):
        pairs = np.array(
            [
                (r[f"{key}_recorded"], r[f"{key}_replayed"])
                for r in result.rows
                if r[f"{key}_recorded"] is not None and r[f"{key}_replayed"] is not None
            ]
        ).reshape(-1, 2)
        if len(pairs):
            lo, hi = pairs.min(), pairs.max()
            ax.plot([lo, hi], [lo, hi], "k--", lw=1, label="y = x")
            ax.scatter(pairs[:, 0], pairs[:, 1], s=18)
        ax.set(xlabel=f"recorded {key}", ylabel=f"replayed {key}", title=key)
        ax.legend(fontsize=8)
    fig.suptitle(f"Replay {result.replay_id} of campaign {result.original_id}")
    fig.tight_layout()
    path = out / "parity.png"
    fig.savefig(path)
    plt.close(fig)
    return path


# -- playback ---------------------------------------------------------------------------------
def playback_documents(db: Database, campaign_id: int) -> list[tuple[str, dict[str, Any]]]:
    """Run a campaign's experiments again through the same plans on playback devices (the cell
    serves the recorded readings in order: a run's in-situ readings, then its measurement) and
    return the documents they emit."""
    from bluesky import RunEngine

    from orchestrator.execution.plans import IN_SITU_STREAM, PLANS

    campaign, _ = _stored(db, campaign_id)
    loaded = loaded_from_stored(campaign["config"], campaign["name"])
    loaded.check_code()
    lab = build_lab(loaded.lab)
    starts, readings = [], []
    for run in db.runs(campaign_id):
        docs = db.run_documents(run["uid"])
        streams = {d["uid"]: d.get("name") for n, d in docs if n == "descriptor"}
        cell = [
            {k: v for k, v in d["data"].items() if k.startswith("cell_")}
            for n, d in docs
            if n == "event" and streams.get(d["descriptor"]) in ("primary", IN_SITU_STREAM)
        ]
        if not run["complete"] or not cell:
            continue
        starts.append(docs[0][1])
        readings.extend(cell)
    lab.cell.play(readings)
    RE = RunEngine({})
    RE.record_interruptions = True  # as campaigns record them (orchestrator.execution.safety)
    emitted: list[tuple[str, dict[str, Any]]] = []
    RE.subscribe(lambda name, doc: emitted.append((name, doc)))
    md_keys = (
        "campaign_id",
        "campaign_name",
        "experiment_id",
        "experiment_index",
        "target",
        "operator",
    )
    for start in starts:
        lab.reseed(loaded.config.seed, start.get("experiment_index", 0))
        plan = PLANS[start["route"]]
        kwargs = {key: start[key] for key in ("reactor", "steps") if key in start}
        RE(plan(lab, start["conditions"], md={k: start[k] for k in md_keys if k in start},
                **kwargs))  # fmt: skip
    return emitted


# -- backtest ---------------------------------------------------------------------------------
def _nearest(
    space: SearchSpace,
    conditions: Mapping[str, Any],
    pool: Sequence[Mapping[str, Any]],
    used: set[int],
) -> int:
    unused = [i for i in range(len(pool)) if i not in used]
    return min(unused, key=lambda i: space.distance(pool[i], conditions))


def backtest(
    db: Database,
    campaign_id: int,
    planner: str,
    seeds: Sequence[int],
    options: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Experiments a planner needs, choosing only among the recorded ones (see module doc).

    The goal is a recorded hit (within tolerance of the target, of the shape it asks for), or,
    if none was, one of that shape within tolerance of the campaign's best of it.
    """
    campaign, rows = _stored(db, campaign_id)
    loaded = loaded_from_stored(campaign["config"], campaign["name"])
    target, space = loaded.target, loaded.space
    done = [r for r in rows if r.status == ExperimentStatus.DONE and r.observables]
    pool = [r.conditions for r in done]
    errors = np.array([target.error(r.observables) for r in done])
    shaped = np.array([target.shape_ok(r.observables, r.conditions) for r in done], bool)
    hits = (errors <= target.tolerance) & shaped  # a platelet sample is no cube hit
    closest = errors[shaped].min() if shaped.any() else np.inf
    goal = hits if hits.any() else shaped & (errors <= closest + target.tolerance)
    goal_text = (
        "within tolerance of the target"
        if hits.any()
        else "as good as the best recorded experiment, within tolerance"
    )
    opts = dict(options or {})
    if planner == "botorch":
        opts.setdefault("candidates", pool)
    per_seed = []
    for seed in seeds:
        p = make_planner(planner, space, target, seed, opts, loaded.config.route)
        used: set[int] = set()
        found = None
        for step in range(1, len(pool) + 1):
            (proposal,) = p.ask(1)
            j = _nearest(space, proposal.conditions, pool, used)
            used.add(j)
            p.cancel(proposal.conditions)
            p.tell([Observation(pool[j], done[j].observables)])
            if goal[j]:
                found = step
                break
        per_seed.append(found)
    original = next((i + 1 for i, g in enumerate(goal) if g), None)
    rng = np.random.default_rng(0)
    random_order = [int(np.argmax(goal[rng.permutation(len(pool))])) + 1 for _ in range(500)]
    return {
        "campaign_id": campaign_id,
        "planner": planner,
        "pool": len(pool),
        "goal": goal_text,
        "experiments_to_goal": per_seed,
        "median": float(np.median([s if s is not None else len(pool) + 1 for s in per_seed])),
        "original_order": original,
        "random_order_median": float(np.median(random_order)),
    }

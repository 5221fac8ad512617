"""What a resumed campaign starts from: its stored config (with a larger budget, if given),
and the history its planner is rebuilt from."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from db import Database
from db.records import Experiment
from devices.config import ConfigError
from orchestrator.campaign.config import MAX_BUDGET
from orchestrator.campaign.lifecycle import CampaignStatus, ExperimentStatus
from orchestrator.execution.executor import stored_run
from orchestrator.execution.observe import runs_read_in_situ, trajectory_from_documents
from planners import Observation

__all__ = ["PlannerHistory", "finished", "planner_history", "resumed_config", "vetoed_observation"]


def resumed_config(campaign: Experiment, budget: int | None) -> Mapping[str, Any]:
    """A stored campaign's config to resume with: as stored, or with ``budget`` (a completed
    campaign then runs on to that many experiments even if it had reached its target).
    :class:`ConfigError` for a completed campaign without a larger budget, or a budget not
    above the experiments already run."""
    stored = campaign["config"]
    completed = campaign["status"] == CampaignStatus.COMPLETED
    cid, done = campaign["id"], campaign["experiments"]
    if budget is None:
        if completed:
            raise ConfigError(
                f"campaign {cid} is completed ({campaign['status_reason']}); "
                f"`qdlab campaign resume {cid} --budget N` runs it on to N experiments"
            )
        return stored
    if not done < budget <= MAX_BUDGET:
        raise ConfigError(
            f"--budget: {budget} must be above the {done} experiments campaign {cid} has run "
            f"and at most {MAX_BUDGET}"
        )
    extended = {**stored["campaign"], "budget": budget}
    if completed:
        extended["stop_on_target"] = False  # asked for more: don't stop at the hit
    return {**stored, "campaign": extended}


def vetoed_observation(row: Experiment) -> Observation:
    """What the planner is told of a proposal a person rejected (never proposed again)."""
    reason = row.failure_reason or "rejected"
    return Observation(row.conditions, failed=True, reason=reason, vetoed=True)


@dataclass
class PlannerHistory:
    """What :meth:`planners.Planner.restore` takes, and the experiments it tells of."""

    batches: list[list[Mapping[str, Any]]] = field(default_factory=list)
    observations: list[Observation] = field(default_factory=list)
    provenance: list[Mapping[str, Any]] = field(default_factory=list)
    told: set[int] = field(default_factory=set)


def planner_history(rows: Sequence[Experiment], db: Database | None = None) -> PlannerHistory:
    """The planner's history from a campaign's experiments: its proposals by batch (a person's
    experiment was never asked for), and what it learnt (measurements, failures, vetoes).
    With ``db``, each measurement carries the in-situ trajectory of its stored run, as it was
    told when it ran (only the runs the database says were read in situ are read back)."""
    history = PlannerHistory()
    batches: dict[int, list[Experiment]] = {}
    for r in rows:
        if not r.by_hand:
            batches.setdefault(int(r.provenance.get("batch", r.index)), []).append(r)
            history.provenance.append(r.provenance)
    history.batches = [[r.conditions for r in b] for _, b in sorted(batches.items())]
    read = runs_read_in_situ(db, rows) if db is not None else set()
    for r in rows:
        if r.status == ExperimentStatus.DONE and r.observables:
            trajectory = ()
            if r.run_uid in read:
                trajectory = tuple(trajectory_from_documents(db.run_documents(r.run_uid)))
            history.observations.append(
                Observation(r.conditions, r.observables, trajectory=trajectory)
            )
        elif r.status == ExperimentStatus.FAILED:
            reason = r.failure_reason
            history.observations.append(Observation(r.conditions, failed=True, reason=reason))
        elif r.status == ExperimentStatus.REJECTED:
            history.observations.append(vetoed_observation(r))
        else:
            continue
        history.told.add(r.id)
    return history


def finished(db: Database, rows: Sequence[Experiment]) -> list[Experiment]:
    """The experiments that ran to an end, in order, with those whose driver was killed after
    their run was stored (they are recorded, not run again)."""
    return [r for r in rows if not r.status.open or stored_run(db, r.id) is not None]

"""How campaigns and their targets read in the terminal and in reports (one wording everywhere).

Experiments are numbered from 1 wherever a person reads them (tables, summaries, CSV, reports);
the database's ``index`` column counts from 0.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from db.records import CampaignStatus, Experiment, ExperimentStatus
from orchestrator.campaign.config import TARGET_OBSERVABLES, LoadedCampaign
from planners import Target

if TYPE_CHECKING:  # SQLAlchemy: not at the CLI's start-up
    from db import Database

__all__ = [
    "CampaignSummary",
    "Progress",
    "describe_summary",
    "pareto_front",
    "pareto_text",
    "summarize",
    "target_text",
]

_LABELS = {"pl_peak_nm": "PL", "edge_length_nm": "edge length"}


def target_text(target: Mapping[str, Any]) -> str:
    """``PL 470 ± 1 nm cubes, min pl_fwhm_nm`` for a stored target (a ``TargetSpec`` dump;
    one stored before targets had a shape is of cubes, the default)."""
    tol = target.get("tolerance_nm", 1.0)
    key = next((k for k in _LABELS if target.get(k) is not None), None)
    text = f"{_LABELS[key]} {target[key]:g} ± {tol:g} nm" if key else "no target"
    shape = target.get("shape", "cubes")
    if shape != "any":
        text += f" {shape}"
    if target.get("layers") is not None:
        text += f" ({target['layers']} monolayers)"
    extras = [f"min {k}" for k in target.get("minimize") or []]
    extras += [f"max {k}" for k in target.get("maximize") or []]
    if target.get("pareto"):
        extras.append("Pareto " + " vs ".join(f"{v} {k}" for k, v in target["pareto"].items()))
    return ", ".join([text, *extras])


def pareto_front(rows: list[Experiment], target: Target) -> list[dict[str, Any]]:
    """The hits on the Pareto front of a ``pareto`` target, from ``Database.experiments`` rows:
    ``{experiment, pl_peak_nm, pl_fwhm_nm, plqy_est}`` each, narrowest line first (none for
    another target)."""
    if not target.pareto:
        return []
    done = [r for r in rows if r.status == ExperimentStatus.DONE and r.observables]
    front = target.pareto_set([(r.observables, r.conditions) for r in done])
    points = [
        {"experiment": done[i].number}
        | {k: float(done[i].observables[k]) for k in ("pl_peak_nm", "pl_fwhm_nm", "plqy_est")}
        for i in front
    ]
    return sorted(points, key=lambda p: p["pl_fwhm_nm"])


def pareto_text(point: Mapping[str, Any]) -> str:
    """``#18: PL 469.57 nm, FWHM 22.3 nm, PLQY 0.70`` for a point of :func:`pareto_front`."""
    return (
        f"#{point['experiment']}: PL {point['pl_peak_nm']:.2f} nm, "
        f"FWHM {point['pl_fwhm_nm']:.1f} nm, PLQY {point['plqy_est']:.2f}"
    )


def _fmt(value: Any, digits: int = 2) -> str:
    return value if isinstance(value, str) else f"{value:.{digits}f}"


def describe_summary(summary: CampaignSummary, target: Mapping[str, Any]) -> list[str]:
    """The lines ``qdlab campaign run`` prints at the end: status, and the best experiment with
    the target's own observable (and FWHM when measured)."""
    hit = (
        f"target reached at experiment {summary.first_hit_experiment}"
        if summary.reached_target
        else "target not reached"
    )
    lines = [
        f"campaign {summary.campaign_id}: {summary.status} after {summary.experiments} "
        f"experiments, {hit} ({target_text(target)})"
    ]
    if summary.best:
        best = summary.best
        obs = best["observables"]
        key = next(k for k in _LABELS if target.get(k) is not None)
        shown = [f"{_LABELS[key]} {_fmt(obs.get(TARGET_OBSERVABLES[key]))} nm"]
        if key != "pl_peak_nm" and obs.get("pl_peak_nm") is not None:
            shown.append(f"PL {obs['pl_peak_nm']:.2f} nm")
        if obs.get("pl_fwhm_nm") is not None:
            shown.append(f"FWHM {obs['pl_fwhm_nm']:.1f} nm")
        conditions = ", ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
            for k, v in best["conditions"].items()
        )
        lines.append(f"best: experiment {best['experiment']}, {', '.join(shown)}; {conditions}")
    if summary.pareto_set is not None:
        front = summary.pareto_set
        listed = "; ".join(pareto_text(p) for p in front) or "no hit yet"
        lines.append(f"Pareto set ({len(front)} of the hits): {listed}")
    if summary.status == CampaignStatus.PAUSED:
        lines.append(f"[yellow]paused:[/yellow] {summary.reason}")
    return lines


@dataclass(frozen=True)
class CampaignSummary:
    """How a campaign ended (what ``qdlab campaign run --json`` prints)."""

    campaign_id: int
    status: CampaignStatus
    experiments: int
    reached_target: bool
    first_hit_experiment: int | None
    best: dict[str, Any] | None
    reason: str | None = None
    pareto_set: list[dict[str, Any]] | None = None
    """The hits on the front of a ``target.pareto`` campaign (None for another target)."""

    def to_json(self) -> str:
        """One line of JSON."""
        return json.dumps(
            {
                "campaign_id": self.campaign_id,
                "status": self.status,
                "experiments": self.experiments,
                "reached_target": self.reached_target,
                "first_hit_experiment": self.first_hit_experiment,
                "best": self.best,
                "reason": self.reason,
                "pareto_set": self.pareto_set,
            },
            allow_nan=False,
            default=str,
        )


def summarize(db: Database, campaign_id: int, loaded: LoadedCampaign) -> CampaignSummary:
    """The summary of a stored campaign."""
    campaign = db.campaign(campaign_id)
    target = loaded.target
    rows = db.experiments(campaign_id)
    done = [r for r in rows if r.status == ExperimentStatus.DONE and r.observables]
    hits = [r for r in done if target.hit(r.observables, r.conditions)]
    best_row = min(done, key=lambda r: target.rank(r.observables, r.conditions), default=None)
    best = None
    if best_row is not None:
        best = {
            "experiment": best_row.number,
            "conditions": best_row.conditions,
            "observables": {
                k: (v if v is None or math.isfinite(v) else None)
                for k, v in best_row.observables.items()
                if isinstance(v, float | int) or v is None
            },
            "error": target.error(best_row.observables),
        }
    return CampaignSummary(
        campaign_id=campaign_id,
        status=campaign["status"],
        experiments=_counted(rows),
        reached_target=bool(hits),
        first_hit_experiment=hits[0].number if hits else None,
        best=best,
        reason=campaign["status_reason"],
        pareto_set=pareto_front(rows, target) if target.pareto else None,
    )


def _counted(rows: list[Experiment]) -> int:
    """Experiments that count against the budget: all but the rejected (they never ran)."""
    return sum(r.status != ExperimentStatus.REJECTED for r in rows)


class Progress:
    """What the loop needs to know after every experiment, kept up to date in memory: reading
    the whole campaign back after each experiment would make long campaigns ever slower."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.experiments = 0
        self.measured = 0  # experiments that gave a measurement
        self.best_error = math.inf
        self.first_hit: int | None = None  # 1-based, as users count

    def restore(self, rows: list[Experiment]) -> None:
        """Start from a stored campaign's experiments."""
        self.experiments = _counted(rows)
        for r in rows:
            if r.status == ExperimentStatus.DONE and r.observables:
                self.observe(r.index, r.observables, r.conditions)

    def observe(
        self, index: int, observables: Mapping[str, Any], conditions: Mapping[str, Any]
    ) -> None:
        """A new measurement of experiment ``index`` (0-based)."""
        self.measured += 1
        if self.target.shape_ok(observables, conditions):  # best of the shape asked for
            self.best_error = min(self.best_error, self.target.error(observables))
        if self.target.hit(observables, conditions):
            self.first_hit = min(self.first_hit or index + 1, index + 1)

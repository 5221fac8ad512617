"""The typed rows the database returns (:class:`Experiment`), and the statuses an experiment and
a campaign can have, as stored.

Both are :class:`~enum.StrEnum`: a member is its stored string, so rows, JSON and the
dashboard's wire format carry plain text. Which status may follow which, and who moves them,
is :mod:`orchestrator.campaign.lifecycle`'s to say; the database only stores them (and moves a
row only from a status the caller expects: see :meth:`db.Database.set_experiment_status`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

__all__ = ["AuditEntry", "CampaignStatus", "Experiment", "ExperimentStatus", "UserRecord"]


class ExperimentStatus(StrEnum):
    """Where an experiment is in its life (see ``docs/architecture.md`` for the diagram)."""

    AWAITING_APPROVAL = "awaiting_approval"
    """Proposed by the planner, waiting for a person (``approval: required``)."""
    PROPOSED = "proposed"
    """Ready to run: the next free executor slot takes it."""
    QUEUED = "queued"
    """In a workcell's queue (``workcell`` says which), not started."""
    RUNNING = "running"
    """Its plan runs (or ran, and its outcome is not recorded yet)."""
    DONE = "done"
    """Measured; its observables are stored."""
    FAILED = "failed"
    """Ended without a measurement; ``failure_reason`` says why."""
    REJECTED = "rejected"
    """Never ran: a person vetoed it, or it was withdrawn; it spends no budget."""

    @property
    def open(self) -> bool:
        """Whether the campaign's loop still has to act on it (all but done and failed)."""
        return self not in (ExperimentStatus.DONE, ExperimentStatus.FAILED)

    @property
    def in_flight(self) -> bool:
        """Whether an executor has it (queued or running)."""
        return self in (ExperimentStatus.QUEUED, ExperimentStatus.RUNNING)


class CampaignStatus(StrEnum):
    """Where a campaign is."""

    CREATED = "created"
    RUNNING = "running"
    PAUSING = "pausing"
    """A person asked a running campaign to pause; its driver pauses it once the experiments
    under way have finished."""
    PAUSED = "paused"
    COMPLETED = "completed"


@dataclass(frozen=True)
class Experiment:
    """One experiment of a campaign as stored: what was proposed (and by what), where it is in
    its life, and what was measured."""

    id: int
    campaign_id: int
    index: int
    """Its place in the campaign, from 0 (people count from 1: :attr:`number`)."""
    status: ExperimentStatus
    conditions: dict[str, Any]
    failure_reason: str | None
    """Why it failed, was rejected or was given back (None when nothing went wrong)."""
    planner_name: str
    planner_version: str
    seed: int | None
    acquisition_value: float | None
    predicted_mean: float | None
    predicted_std: float | None
    provenance: dict[str, Any]
    """What produced it (planner stage, model state; ``source: human`` for a person's)."""
    observables: dict[str, Any] | None
    """What was measured (None until it is done)."""
    run_uid: str | None
    """The run its observables come from."""
    workcell: str | None
    """Where it was dispatched (None in process)."""

    @property
    def number(self) -> int:
        """Its number as people count (``index + 1``), as ``qdlab campaign show`` lists it."""
        return self.index + 1

    @property
    def shape(self) -> str | None:
        """``cubes`` or ``platelets``, as its measured spectra tell
        (:func:`models.analysis.is_platelet_like`); None before it was measured."""
        from models.analysis import is_platelet_like

        obs = self.observables or {}
        if self.status != ExperimentStatus.DONE or obs.get("pl_peak_nm") is None:
            return None
        return "platelets" if is_platelet_like(obs, self.conditions) else "cubes"

    @property
    def chosen_by(self) -> str:
        """Who chose it: its planner, or the person or agent who added it (``human ada``)."""
        by = self.provenance.get("by")
        return f"{self.planner_name} {by}" if by else self.planner_name

    @property
    def by_hand(self) -> bool:
        """Whether a person or an outside agent added it (the campaign's planner did not ask
        for it)."""
        return self.provenance.get("source") in ("human", "agent")


@dataclass(frozen=True)
class UserRecord:
    """A person or agent who acts on the lab (the key's hash is never handed out)."""

    name: str
    role: str
    created_at: datetime
    disabled: bool


@dataclass(frozen=True)
class AuditEntry:
    """Who did what, when: one write by a user (``experiment_number`` counts from 1)."""

    at: datetime
    user: str
    role: str
    action: str
    campaign_id: int | None
    experiment_number: int | None
    detail: str

    def line(self) -> str:
        """One line as ``campaign show`` and the report print it."""
        what = self.action + (f" #{self.experiment_number}" if self.experiment_number else "")
        detail = f": {self.detail}" if self.detail else ""
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.user} ({self.role}) {what}{detail}"

"""An experiment's life and a campaign's: the statuses, the moves allowed between them, and the
only code that makes those moves.

Everything else asks: the campaign loop (:mod:`orchestrator.campaign.runner`) calls
:func:`dispatch`, :func:`start`, :func:`finish`, :func:`fail`, :func:`give_back` and
:func:`withdraw` as its executor reports; people (:mod:`orchestrator.campaign.approval`, the CLI
and the dashboard) call :func:`approve`, :func:`reject`, :func:`add_by_hand` and
:func:`request_pause`. Each move is one conditional update in the database (only from a status
the table below allows), so two processes can never both move the same experiment; a move the
table refuses raises :class:`TransitionError` naming what the experiment is now. A driver's
moves carry its lease's fence (:class:`db.Fence`): made by a driver that lost its lease, they
raise :class:`db.LeaseLost` and change nothing.

The moves, and who makes them:

- awaiting_approval -> proposed (:func:`approve`, a person) or rejected (:func:`reject`, a
  person; or the loop once the target is reached);
- proposed -> running (:func:`dispatch` in process), queued (:func:`dispatch` to a workcell),
  or rejected (:func:`withdraw`: the target was reached before it started);
- queued -> running (:func:`start`), done / failed (it ran between two looks), proposed
  (:func:`give_back`: taken back from the queue when the campaign pauses) or rejected
  (:func:`withdraw`);
- running -> done (:func:`finish`), failed (:func:`fail`) or proposed (:func:`give_back`:
  interrupted before its measurement, its worker died);
- done, failed and rejected are final.

``docs/architecture.md`` draws the same diagram with who triggers each move.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NoReturn

from db import Database, Fence
from db.records import CampaignStatus, ExperimentStatus
from planners import Proposal

__all__ = [
    "AGENT",
    "CAMPAIGN_TRANSITIONS",
    "HUMAN",
    "TRANSITIONS",
    "CampaignStatus",
    "ExperimentStatus",
    "TransitionError",
    "add_by_hand",
    "approve",
    "dispatch",
    "end_campaign",
    "fail",
    "finish",
    "give_back",
    "mark_resuming",
    "propose",
    "reject",
    "request_pause",
    "start",
    "start_campaign",
    "withdraw",
]

S = ExperimentStatus
C = CampaignStatus

TRANSITIONS: Mapping[ExperimentStatus, frozenset[ExperimentStatus]] = {
    S.AWAITING_APPROVAL: frozenset({S.PROPOSED, S.REJECTED}),
    S.PROPOSED: frozenset({S.QUEUED, S.RUNNING, S.REJECTED}),
    # a queued experiment may finish between two looks at its queue: done or failed directly
    S.QUEUED: frozenset({S.RUNNING, S.DONE, S.FAILED, S.PROPOSED, S.REJECTED}),
    S.RUNNING: frozenset({S.DONE, S.FAILED, S.PROPOSED}),
    S.DONE: frozenset(),
    S.FAILED: frozenset(),
    S.REJECTED: frozenset(),
}
"""Which status may follow which."""

CAMPAIGN_TRANSITIONS: Mapping[CampaignStatus, frozenset[CampaignStatus]] = {
    C.CREATED: frozenset({C.RUNNING, C.PAUSING, C.PAUSED}),
    C.RUNNING: frozenset({C.RUNNING, C.PAUSING, C.PAUSED, C.COMPLETED}),
    C.PAUSING: frozenset({C.RUNNING, C.PAUSING, C.PAUSED}),
    C.PAUSED: frozenset({C.RUNNING}),
    # a completed campaign runs on when given a larger budget
    C.COMPLETED: frozenset({C.RUNNING}),
}
"""Which campaign status may follow which (a driver that starts always sets running: a
campaign whose driver died mid-run is still marked running)."""

HUMAN = "human"
AGENT = "agent"
"""The source of an experiment a propose-only user (an outside program) added."""
"""The planner name and provenance ``source`` of an experiment a person added."""


class TransitionError(RuntimeError):
    """A move the lifecycle does not allow from the status the experiment (or campaign) is in
    now: another process moved it meanwhile."""


def _move(
    db: Database,
    experiment_id: int,
    sources: frozenset[ExperimentStatus],
    to: ExperimentStatus,
    reason: str | None = None,
    workcell: str | None = None,
    fence: Fence | None = None,
) -> None:
    """Move an experiment from one of ``sources`` to ``to``, or raise :class:`TransitionError`
    naming what it is now (:class:`~db.LeaseLost` if ``fence`` no longer holds)."""
    assert all(to in TRANSITIONS[s] for s in sources), (sources, to)
    moved = db.set_experiment_status(
        experiment_id, to, reason, workcell=workcell, expected=sources, fence=fence
    )
    if not moved:
        _refuse(db, experiment_id, to)


def _refuse(db: Database, experiment_id: int, to: ExperimentStatus) -> NoReturn:
    now = db.experiment(experiment_id).status
    raise TransitionError(f"experiment {experiment_id} cannot become {to}: it is {now}")


_UNDER_WAY = frozenset({S.QUEUED, S.RUNNING})


# -- the campaign loop ------------------------------------------------------------------------
def propose(
    db: Database,
    campaign_id: int,
    proposal: Proposal,
    batch: int,
    approval_required: bool,
    fence: Fence | None = None,
) -> int:
    """Store a planner's proposal (with what produced it) as the campaign's next experiment:
    awaiting approval, or ready to run. Return its id."""
    return db.add_experiment(
        campaign_id,
        None,
        proposal.conditions,
        planner_name=proposal.planner_name,
        planner_version=proposal.planner_version,
        seed=proposal.seed,
        acquisition_value=proposal.acquisition_value,
        predicted_mean=proposal.predicted_mean,
        predicted_std=proposal.predicted_std,
        provenance={**proposal.provenance, "batch": batch},
        status=S.AWAITING_APPROVAL if approval_required else S.PROPOSED,
        fence=fence,
    )


def dispatch(
    db: Database,
    experiment_id: int,
    to: ExperimentStatus,
    workcell: str | None,
    fence: Fence | None = None,
) -> None:
    """A ready experiment goes to an executor: ``queued`` on a workcell (recorded *before* the
    item is added, so a driver killed in between finds it, or finds it missing), or
    ``running`` in process."""
    _move(db, experiment_id, frozenset({S.PROPOSED}), to, workcell=workcell, fence=fence)


def start(
    db: Database, experiment_id: int, workcell: str | None, fence: Fence | None = None
) -> None:
    """A queued experiment's plan started."""
    _move(db, experiment_id, frozenset({S.QUEUED}), S.RUNNING, workcell=workcell, fence=fence)


def finish(
    db: Database,
    experiment_id: int,
    observables: Mapping[str, Any],
    run_uid: str | None,
    fence: Fence | None = None,
) -> None:
    """Its measurement is stored with its observables: done."""
    if not db.add_observation(
        experiment_id, observables, run_uid, expected=_UNDER_WAY, fence=fence
    ):
        _refuse(db, experiment_id, S.DONE)


def fail(db: Database, experiment_id: int, reason: str, fence: Fence | None = None) -> None:
    """It ended without a measurement, for ``reason``."""
    _move(db, experiment_id, _UNDER_WAY, S.FAILED, reason, fence=fence)


def give_back(db: Database, experiment_id: int, reason: str, fence: Fence | None = None) -> None:
    """It did not run to the end and runs again (the campaign paused, its worker died, the
    user interrupted it before its measurement, the database went away)."""
    _move(db, experiment_id, _UNDER_WAY, S.PROPOSED, reason, fence=fence)


def withdraw(db: Database, experiment_id: int, reason: str, fence: Fence | None = None) -> bool:
    """It never runs and spends no budget (the target was reached before it started); False if
    it started or was decided meanwhile."""
    waiting = frozenset({S.PROPOSED, S.QUEUED})
    return db.set_experiment_status(
        experiment_id, S.REJECTED, reason, expected=waiting, fence=fence
    )


def start_campaign(db: Database, campaign_id: int, fence: Fence | None = None) -> None:
    """A driver took the campaign: running."""
    _move_campaign(db, campaign_id, C.RUNNING, None, fence)


def mark_resuming(db: Database, campaign_id: int) -> None:
    """A person asked a paused campaign to resume (its driver starts in a moment): running,
    only from paused, so two requests cannot start two drivers."""
    _move_campaign(db, campaign_id, C.RUNNING, "resuming", sources=[C.PAUSED])


def end_campaign(
    db: Database,
    campaign_id: int,
    status: CampaignStatus,
    reason: str,
    fence: Fence | None = None,
) -> None:
    """The driver stops: ``paused`` (resumable) or ``completed``, with the reason."""
    _move_campaign(db, campaign_id, status, reason, fence)


def _move_campaign(
    db: Database,
    campaign_id: int,
    to: CampaignStatus,
    reason: str | None,
    fence: Fence | None = None,
    sources: Sequence[CampaignStatus] | None = None,
) -> None:
    """Move a campaign to ``to`` from ``sources`` (default: every status the table allows it
    from), or raise :class:`TransitionError` naming what it is now."""
    if sources is None:
        sources = [s for s, targets in CAMPAIGN_TRANSITIONS.items() if to in targets]
    if not db.set_campaign_status(campaign_id, to, reason, expected=sources, fence=fence):
        now = db.campaign(campaign_id)["status"]
        raise TransitionError(f"campaign {campaign_id} cannot become {to}: it is {now}")


# -- people -----------------------------------------------------------------------------------
def approve(db: Database, campaign_id: int, indices: Sequence[int] | None) -> list[int]:
    """Proposals awaiting approval (0-based ``indices``; None: all) become ready to run;
    return the indices that moved (one decided meanwhile does not)."""
    return db.decide(campaign_id, indices, S.PROPOSED)


def reject(
    db: Database,
    campaign_id: int,
    indices: Sequence[int] | None,
    reason: str,
    fence: Fence | None = None,
) -> list[int]:
    """Proposals awaiting approval never run (the planner is told of them as vetoes); return
    the indices that moved."""
    return db.decide(campaign_id, indices, S.REJECTED, reason, fence=fence)


def add_by_hand(
    db: Database,
    campaign_id: int,
    conditions: Mapping[str, Any],
    note: str | None,
    by: str | None = None,
    waits: bool = False,
) -> int:
    """An experiment chosen outside the campaign's planner, by user ``by``; return its id. A
    person's runs without approval (a person chose it); one that ``waits`` (an agent's, a
    propose-only user's) awaits a person's approval."""
    return db.add_experiment(
        campaign_id,
        None,
        conditions,
        planner_name=AGENT if waits else HUMAN,
        planner_version="1",
        provenance={
            "source": AGENT if waits else HUMAN,
            **({"by": by} if by else {}),
            **({"note": note} if note else {}),
        },
        status=S.AWAITING_APPROVAL if waits else S.PROPOSED,
    )


def request_pause(db: Database, campaign_id: int, reason: str, driven: bool) -> CampaignStatus:
    """A person asks a campaign to pause: ``pausing`` while a driver runs it (it pauses once
    the experiments under way finished), ``paused`` at once when nobody drives it."""
    status = C.PAUSING if driven else C.PAUSED
    _move_campaign(db, campaign_id, status, reason)
    return status

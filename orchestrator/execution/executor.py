"""The :class:`Executor` protocol the campaign loop dispatches experiments to, and what an
executor reports back.

An executor runs experiments somewhere (in this process, on workcells); the loop never knows
where. Each step the loop asks it to :meth:`~Executor.poll` the experiments it has (those the
database records as queued or running on it) and records what it reports; it asks
:meth:`~Executor.slots` where new experiments can go, moves each one it dispatches through the
lifecycle to :attr:`~Executor.dispatched` and hands it over with :meth:`~Executor.submit`; when
the campaign pauses or reaches its target it takes back what has not started with
:meth:`~Executor.withdraw`. Executors change no status themselves: they report, the loop
records (:mod:`orchestrator.campaign.lifecycle`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from bluesky.utils import FailedStatus

from db import Database
from db.lease import CampaignLease
from db.records import Experiment, ExperimentStatus

__all__ = [
    "Executor",
    "Failed",
    "Faulted",
    "Finished",
    "GivenBack",
    "Outcome",
    "Started",
    "cause",
    "failure_reason",
    "stored_run",
]


@dataclass(frozen=True)
class Started:
    """The experiment's plan started on ``workcell``."""

    experiment_id: int
    workcell: str | None


@dataclass(frozen=True)
class Finished:
    """Its run ended successfully and is stored: its measurement is in run ``run_uid``."""

    experiment_id: int
    run_uid: str


@dataclass(frozen=True)
class Failed:
    """It ended without a measurement. ``safety``: a safety abort (the campaign pauses; it is
    no lab fault that counts towards the failures in a row)."""

    experiment_id: int
    reason: str
    safety: bool = False


@dataclass(frozen=True)
class Faulted:
    """An instrument failed under it (stopped answering): no result of the chemistry. It runs
    again; the planner learns nothing from it and no budget is spent."""

    experiment_id: int
    reason: str


@dataclass(frozen=True)
class GivenBack:
    """It did not run to the end and should run again (interrupted before its measurement,
    its worker died, taken back from a queue)."""

    experiment_id: int
    reason: str


Outcome = Started | Finished | Failed | Faulted | GivenBack


class Executor(Protocol):
    """Somewhere experiments run (see the module docstring)."""

    dispatched: ExperimentStatus
    """The status of an experiment handed to this executor (queued on a workcell, running in
    process)."""

    def prepare(self, finished: Sequence[Experiment], lease: CampaignLease | None) -> None:
        """Before the loop starts: the experiments finished earlier, in order (a simulated lab
        in process replays them to reach the state they left it in), and the driver's lease
        (nothing moves once it is lost)."""

    def poll(self, in_flight: Sequence[Experiment]) -> list[Outcome]:
        """What became of ``in_flight`` (the campaign's experiments queued or running on this
        executor), in order; an executor in process runs one of them to its end here."""

    def slots(self, in_flight: Sequence[Experiment]) -> list[str | None]:
        """Where new experiments can go now, one entry per free place, emptiest first (a
        workcell's name; None in process)."""

    def submit(self, experiment: Experiment, where: str | None) -> None:
        """Hand over an experiment already recorded as :attr:`dispatched` on ``where``."""

    def withdraw(self) -> list[int]:
        """Take back the experiments waiting that have not started; return their ids (one
        that started meanwhile runs to its end)."""

    def not_started(self, in_flight: Sequence[Experiment]) -> list[int]:
        """Of ``in_flight``, the experiments handed over whose run never started and never will
        without this driver (Ctrl-C between experiments in process); a queue's items wait in
        their queue, to be followed on resume."""

    def restart_stalled(self) -> None:
        """Start queues that stand still with the campaign's experiments in them."""

    def out_of_reach(self, wait_s: float) -> str | None:
        """Why the campaign cannot go on, when no place it runs experiments has answered for
        ``wait_s`` seconds (each workcell's queue or its Redis down); else None."""

    def close(self) -> None:
        """Release connections, threads and the lab."""


def cause(exc: BaseException) -> BaseException:
    """What ended an experiment: the exception inside a failed Status, else ``exc``."""
    if isinstance(exc, FailedStatus) and exc.args:
        status = exc.args[0]
        inner = status.exception() if hasattr(status, "exception") else None
        if inner is not None:
            return inner
    return exc


def failure_reason(exc: BaseException) -> str:
    """An experiment's failure reason from the exception that ended it (a failed Status says
    what failed inside it)."""
    exc = cause(exc)
    text = str(exc).strip() or type(exc).__name__
    return f"{type(exc).__name__}: {text}"


def stored_run(db: Database, experiment_id: int) -> str | None:
    """The last successful, complete run of an experiment whose measurement was not rejected,
    if one is stored (a driver killed after the run was stored finishes the experiment instead
    of repeating it)."""
    runs = [
        r
        for r in db.runs(experiment_id=experiment_id)
        if r["complete"] and r["exit_status"] == "success" and not r["rejected"]
    ]
    return runs[-1]["uid"] if runs else None

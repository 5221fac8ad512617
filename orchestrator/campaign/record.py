"""The loop's record step: what an executor reports is stored through the lifecycle and only
then told to the planner; what the stop rules need (failures in a row, a safety abort, an
instrument fault, the best so far) is kept here.

An instrument fault (an instrument that stopped answering, a reading no sample can give) is no
result of the chemistry: its experiment is given back (it runs again and spends no budget), a
rejected run stays in the record marked so, and the planner is told nothing."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

from db import Database, Fence
from db.lease import CampaignLease
from db.records import Experiment, ExperimentStatus
from orchestrator.campaign import lifecycle
from orchestrator.campaign.restore import vetoed_observation
from orchestrator.campaign.summary import Progress
from orchestrator.execution.executor import (
    Failed,
    Faulted,
    Finished,
    GivenBack,
    Outcome,
    Started,
    failure_reason,
)
from orchestrator.execution.observe import (
    InstrumentFault,
    MeasurementRejected,
    observables_from_documents,
    trajectory_from_documents,
)
from planners import Observation, Planner, Target

__all__ = ["InstrumentTrouble", "Recorder", "ran_otherwise"]


class InstrumentTrouble(NamedTuple):
    """Instrument faults in a row: the last one's reason, whether the instrument may recover by
    itself (it stopped answering) or not (it read what no sample can give), and since when
    (``time.monotonic()``)."""

    reason: str
    may_recover: bool
    since: float


def ran_otherwise(start: Mapping[str, Any], experiment: Experiment) -> str | None:
    """How a run's start document shows it did not run ``experiment`` as proposed (None when
    it did): another experiment id, or a condition of another value."""
    if start.get("experiment_id") != experiment.id:
        return (
            f"run {start.get('uid', '?')} is of experiment {start.get('experiment_id')!r}, not "
            f"{experiment.id}"
        )
    ran = start.get("conditions") or {}
    for key, proposed in experiment.conditions.items():
        got = ran.get(key)
        numbers = all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in (got, proposed)
        )
        if not (got == proposed or (numbers and math.isclose(got, proposed, rel_tol=1e-9))):
            return f"run {start.get('uid', '?')} ran {key} = {got!r}, not the proposed {proposed!r}"
    return None


class Recorder:
    """Records a campaign's outcomes and tells its planner (see the module docstring).

    Parameters
    ----------
    db, planner, target
        Where outcomes are stored, who is told, what counts as a hit.
    report
        Called after every recorded outcome (the progress bar).
    """

    def __init__(
        self, db: Database, planner: Planner, target: Target, report: Callable[[], None]
    ) -> None:
        self.db, self.planner, self._report = db, planner, report
        self.progress = Progress(target)
        self.told: set[int] = set()  # experiments whose outcome the planner knows
        self.failures_in_a_row = 0
        self.last_failure: str | None = None
        self.safety_stop: str | None = None  # a safety abort: the campaign pauses
        self.lease: CampaignLease | None = None  # the driver's lease, while it holds one
        self.fault: InstrumentTrouble | None = None  # instrument faults since the last result

    @property
    def fence(self) -> Fence | None:
        """What the driver's writes carry: its lease's fence (see :mod:`db.lease`)."""
        return None if self.lease is None else self.lease.fence

    def outcomes(self, outcomes: Sequence[Outcome], in_flight: Sequence[Experiment]) -> None:
        """Record what the executor reports about ``in_flight``, in order."""
        by_id = {r.id: r for r in in_flight}
        for outcome in outcomes:
            experiment = by_id[outcome.experiment_id]
            match outcome:
                case Started(workcell=workcell):
                    lifecycle.start(self.db, experiment.id, workcell, self.fence)
                case Finished(run_uid=uid):
                    self.measured(experiment, uid)
                case Failed(reason=reason, safety=safety):
                    if safety:
                        self.safety_stop = reason
                    self.failed(experiment, reason, count=not safety)
                case Faulted(reason=reason):
                    self.faulted(experiment, reason, may_recover=True)
                case GivenBack(reason=reason):
                    lifecycle.give_back(self.db, experiment.id, reason, self.fence)

    def measured(self, experiment: Experiment, uid: str) -> None:
        """Extract an experiment's observables from its stored run (read back from the
        database), store them, then tell the planner; a rejected measurement is a failure, and
        so is a run whose own start document shows it ran another experiment or other
        conditions than proposed (a queue item forged or swapped by another client)."""
        documents = self.db.run_documents(uid)
        start = next((doc for name, doc in documents if name == "start"), {})
        other = ran_otherwise(start, experiment)
        if other is not None:
            self.failed(experiment, f"not recorded: {other}", count=False)
            return
        try:
            observables = observables_from_documents(documents)
        except MeasurementRejected as exc:
            self.failed(experiment, failure_reason(exc))
            return
        except InstrumentFault as exc:
            self.db.reject_run(uid, str(exc), self.fence)
            self.faulted(experiment, str(exc), may_recover=False)
            return
        lifecycle.finish(self.db, experiment.id, observables, uid, self.fence)
        trajectory = tuple(trajectory_from_documents(documents))
        self.planner.tell([Observation(experiment.conditions, observables, trajectory=trajectory)])
        self.told.add(experiment.id)
        self.progress.observe(experiment.index, observables, experiment.conditions)
        self.failures_in_a_row = 0
        self.fault = None
        self._report()

    def faulted(self, experiment: Experiment, reason: str, may_recover: bool) -> None:
        """An instrument failed under an experiment: it runs again (see the module docstring).
        ``may_recover``: the instrument may answer again soon (the loop waits for it a while);
        else (an impossible reading) the campaign pauses at once."""
        lifecycle.give_back(
            self.db, experiment.id, f"instrument fault: {reason}; runs again", self.fence
        )
        if self.fault is None:
            self.fault = InstrumentTrouble(reason, may_recover, time.monotonic())
        else:
            self.fault = InstrumentTrouble(reason, may_recover, self.fault.since)

    def failed(self, experiment: Experiment, reason: str, count: bool = True) -> None:
        """Record that an experiment failed, and why; tell the planner. ``count``: it counts
        towards the failures in a row that pause the campaign."""
        lifecycle.fail(self.db, experiment.id, reason, self.fence)
        self.planner.tell([Observation(experiment.conditions, failed=True, reason=reason)])
        self.told.add(experiment.id)
        self.last_failure = reason
        self.fault = None
        if count:
            self.failures_in_a_row += 1
        self._report()

    def why_pause(self, max_failures: int, instrument_wait_s: float, resume: str) -> str | None:
        """Why the campaign must pause from what was recorded (an instrument fault, one that
        does not answer for ``instrument_wait_s``, a safety abort, ``max_failures`` failures in
        a row), if it must; ``resume`` is how to go on."""
        fault = self.fault
        if fault is not None and not fault.may_recover:
            return f"instrument fault: {fault.reason}; fix the instrument, then {resume}"
        if fault is not None and time.monotonic() - fault.since > instrument_wait_s:
            return (
                f"an instrument did not answer for {instrument_wait_s:g} s (last: "
                f"{fault.reason}); fix it, then {resume}"
            )
        if self.safety_stop is not None:
            return f"{self.safety_stop}; make the lab safe, then {resume}"
        if self.failures_in_a_row >= max_failures:
            return (
                f"{max_failures} experiments failed in a row (last: {self.last_failure}); fix "
                f"the lab, then {resume}"
            )
        return None

    def nothing_measured(self, resume: str) -> str:
        """Why a campaign whose budget is spent without a single measurement pauses."""
        return (
            "the budget is spent and no experiment gave a measurement (last failure: "
            f"{self.last_failure}); fix the lab, then {resume} with `--budget N`"
        )

    def vetoes(self, rows: Sequence[Experiment]) -> None:
        """Tell the planner of proposals a person rejected since it was last told."""
        vetoed = [
            r for r in rows if r.status == ExperimentStatus.REJECTED and r.id not in self.told
        ]
        if vetoed:
            self.planner.tell([vetoed_observation(r) for r in vetoed])
            self.told.update(r.id for r in vetoed)

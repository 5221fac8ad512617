"""The loop's record step: what an executor reports is stored through the lifecycle and only
then told to the planner; what the stop rules need (failures in a row, a safety abort, the
best so far) is kept here."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from db import Database
from db.records import Experiment, ExperimentStatus
from orchestrator.campaign import lifecycle
from orchestrator.campaign.restore import vetoed_observation
from orchestrator.campaign.summary import Progress
from orchestrator.execution.executor import (
    Failed,
    Finished,
    GivenBack,
    Outcome,
    Started,
    failure_reason,
)
from orchestrator.execution.observe import MeasurementRejected, observables_from_documents
from planners import Observation, Planner, Target

__all__ = ["Recorder"]


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

    def outcomes(self, outcomes: Sequence[Outcome], in_flight: Sequence[Experiment]) -> None:
        """Record what the executor reports about ``in_flight``, in order."""
        by_id = {r.id: r for r in in_flight}
        for outcome in outcomes:
            experiment = by_id[outcome.experiment_id]
            match outcome:
                case Started(workcell=workcell):
                    lifecycle.start(self.db, experiment.id, workcell)
                case Finished(run_uid=uid):
                    self.measured(experiment, uid)
                case Failed(reason=reason, safety=safety):
                    if safety:
                        self.safety_stop = reason
                    self.failed(experiment, reason, count=not safety)
                case GivenBack(reason=reason):
                    lifecycle.give_back(self.db, experiment.id, reason)

    def measured(self, experiment: Experiment, uid: str) -> None:
        """Extract an experiment's observables from its stored run (read back from the
        database), store them, then tell the planner; a rejected measurement is a failure."""
        try:
            observables = observables_from_documents(self.db.run_documents(uid))
        except MeasurementRejected as exc:
            self.failed(experiment, failure_reason(exc))
            return
        lifecycle.finish(self.db, experiment.id, observables, uid)
        self.planner.tell([Observation(experiment.conditions, observables)])
        self.told.add(experiment.id)
        self.progress.observe(experiment.index, observables, experiment.conditions)
        self.failures_in_a_row = 0
        self._report()

    def failed(self, experiment: Experiment, reason: str, count: bool = True) -> None:
        """Record that an experiment failed, and why; tell the planner. ``count``: it counts
        towards the failures in a row that pause the campaign."""
        lifecycle.fail(self.db, experiment.id, reason)
        self.planner.tell([Observation(experiment.conditions, failed=True, reason=reason)])
        self.told.add(experiment.id)
        self.last_failure = reason
        if count:
            self.failures_in_a_row += 1
        self._report()

    def vetoes(self, rows: Sequence[Experiment]) -> None:
        """Tell the planner of proposals a person rejected since it was last told."""
        vetoed = [
            r for r in rows if r.status == ExperimentStatus.REJECTED and r.id not in self.told
        ]
        if vetoed:
            self.planner.tell([vetoed_observation(r) for r in vetoed])
            self.told.update(r.id for r in vetoed)

"""Experiments run here, one at a time, on this process's lab and RunEngine."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from bluesky import RunEngine
from bluesky.utils import FailedStatus, RunEngineInterrupted
from sqlalchemy.exc import DBAPIError

from db import Database, LeaseLost
from db.lease import CampaignLease
from db.records import Experiment, ExperimentStatus
from db.tiled import TiledSink
from devices import Lab
from devices.base import InstrumentUnreachable
from orchestrator.execution.engine import LabRunEngine, new_run_engine
from orchestrator.execution.executor import (
    Failed,
    Faulted,
    Finished,
    GivenBack,
    Outcome,
    cause,
    failure_reason,
    stored_run,
)
from orchestrator.execution.observe import measurements
from orchestrator.execution.plans import PLANS
from orchestrator.execution.safety import SafetyAbort, SafetyWatch

__all__ = ["INTERRUPTED", "LocalExecutor"]

INTERRUPTED = "interrupted; runs again on resume"
"""Why an experiment interrupted before its measurement was given back."""


class LocalExecutor:
    """The :class:`~orchestrator.execution.executor.Executor` of an in-process campaign: one
    experiment at a time, run to its end by :meth:`poll` on this process's RunEngine.

    Parameters
    ----------
    db
        The campaign database (the RunEngine writes every document there).
    lab
        The lab the plans run on.
    route
        The synthesis route (which plan runs an experiment).
    seed
        The campaign's seed: a simulated lab draws each experiment's randomness from (seed,
        experiment index), so a resumed campaign measures what an uninterrupted one would.
    run_md
        The start metadata of an experiment's run (which campaign and experiment it is).
    on_sigint
        Told of Ctrl-C (the campaign stops after the experiment).
    tiled
        Also write every run to this tiled catalog.
    """

    dispatched = ExperimentStatus.RUNNING

    def __init__(
        self,
        db: Database,
        lab: Lab,
        route: str,
        seed: int | None,
        run_md: Callable[[Experiment], Mapping[str, Any]],
        on_sigint: Callable[[], None],
        tiled: TiledSink | None = None,
        plan_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        self.db, self.lab, self.route, self.seed = db, lab, route, seed
        self.plan_kwargs = dict(plan_kwargs or {})
        self._run_md, self._on_sigint, self._tiled = run_md, on_sigint, tiled
        self.safety: SafetyWatch | None = None  # watching from prepare() to close()
        self.RE: LabRunEngine | None = None
        self._lease: CampaignLease | None = None
        self._fresh = True  # no experiment has run on this lab yet

    def _new_run_engine(self) -> LabRunEngine:
        return new_run_engine(
            self.db,
            tiled=self._tiled,
            safety=self.safety,
            on_sigint=self._on_sigint,
            lease=self._lease,
        )

    def prepare(self, finished: Sequence[Experiment], lease: CampaignLease | None) -> None:
        """Start the lab's safety watch and a RunEngine under the driver's lease; bring a new
        simulated lab to the state the finished experiments left the twin in.

        The twin carries state from one experiment to the next (the reactor's temperature, the
        reagents left, the cell's dark and reference frames, the wells used). A resumed
        campaign runs its finished experiments again, in order, on its new simulated lab, on a
        fast clock and with nothing recorded; each experiment draws its randomness from
        (seed, index), so the lab ends where the interrupted campaign's lab was, and what
        follows matches the uninterrupted campaign. An EPICS lab's IOCs kept their state.
        """
        self._lease = lease
        if self.safety is None:
            self.safety = SafetyWatch(self.lab, self.lab.config.safety)
        self.RE = self._new_run_engine()
        if not (self._fresh and finished) or self.lab.world is None:
            return
        self._fresh = False
        engine = RunEngine({}, context_managers=[])
        plan = PLANS[self.route]
        with self.lab.clock.fast():
            for r in finished:
                self.lab.reseed(self.seed, r.index)
                try:
                    engine(plan(self.lab, r.conditions, **self.plan_kwargs))
                except Exception:  # it fails again as it failed then
                    if engine.state != "idle":
                        engine.halt()

    def slots(self, in_flight: Sequence[Experiment]) -> list[str | None]:
        """One place while nothing runs."""
        return [] if in_flight else [None]

    def submit(self, experiment: Experiment, where: str | None) -> None:
        """Nothing to hand over: :meth:`poll` runs what the database records as running."""

    def poll(self, in_flight: Sequence[Experiment]) -> list[Outcome]:
        """Run the first experiment in flight to its end (finishing one whose run a killed
        driver had already stored); report how it ended.

        A database that goes away mid-run raises :class:`sqlalchemy.exc.DBAPIError` after a
        fresh RunEngine replaced this one: the experiment is still recorded as running and
        runs again at the next poll.
        """
        if not in_flight:
            return []
        experiment = in_flight[0]
        self._fresh = False
        try:
            return [self._run(experiment)]
        except DBAPIError:
            if self.RE.state != "idle":
                self.RE.halt()
            self.RE = self._new_run_engine()  # its writer gets a fresh connection
            raise

    def _run(self, experiment: Experiment) -> Outcome:
        eid = experiment.id
        uid = stored_run(self.db, eid)  # killed after its run was stored: finish, don't repeat
        try:
            if uid is None:
                self.lab.reseed(self.seed, experiment.index)
                plan = PLANS[self.route](
                    self.lab, experiment.conditions, md=self._run_md(experiment), **self.plan_kwargs
                )
                uid = self._run_plan(plan, eid)
        except KeyboardInterrupt:
            self._on_sigint()
            return GivenBack(eid, INTERRUPTED)
        except LeaseLost:  # another driver took over: nothing of this one is recorded
            raise
        except SafetyAbort as exc:
            return Failed(eid, str(exc), safety=True)
        except (FailedStatus, RuntimeError, TimeoutError, ValueError) as exc:
            if isinstance(cause(exc), InstrumentUnreachable):  # the instrument, not the chemistry
                return Faulted(eid, failure_reason(exc))
            return Failed(eid, failure_reason(exc))
        return GivenBack(eid, INTERRUPTED) if uid is None else Finished(eid, uid)

    def _run_plan(self, plan: Any, experiment_id: int) -> str | None:
        """Run one synthesis; on Ctrl-C return the run if its measurement is stored (the
        RunEngine paused at the checkpoint after it), else abort the run and return None."""
        try:
            uids = self.RE(plan)  # a Ctrl-C after the plan's last checkpoint sets the flag
            return uids[-1] if isinstance(uids, tuple | list) else uids
        except RunEngineInterrupted:
            self._on_sigint()
            if self.RE.state == "idle":  # it could not pause there and aborted the run itself
                return None
            runs = [r for r in self.db.runs(experiment_id=experiment_id) if not r["complete"]]
            measured = bool(runs) and bool(measurements(self.db.run_documents(runs[-1]["uid"])))
            if measured:
                self.RE.stop()  # the sample is measured and stored: close the run as done
                return runs[-1]["uid"]
            # a move the pause stopped fails its Status as the run is abandoned: that is the
            # interruption, not the experiment's failure
            with contextlib.suppress(FailedStatus, RuntimeError):
                self.RE.abort(reason="interrupted by the user before the measurement")
            return None

    def withdraw(self) -> list[int]:
        """Nothing waits here: an experiment runs as soon as it is dispatched."""
        return []

    def not_started(self, in_flight: Sequence[Experiment]) -> list[int]:
        """Those dispatched that :meth:`poll` has not started (no run of theirs is stored)."""
        return [r.id for r in in_flight if not self.db.runs(experiment_id=r.id)]

    def restart_stalled(self) -> None:
        """No queue to restart."""

    def out_of_reach(self, wait_s: float) -> str | None:
        """None: the lab is in this process (an instrument that stops answering is an
        instrument fault of its experiment)."""
        return None

    def close(self) -> None:
        """Stop the safety watch."""
        if self.safety is not None:
            self.safety.close()
            self.safety = None

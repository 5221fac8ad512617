"""The closed loop: one decision loop over an executor.

One :class:`CampaignRunner` drives one campaign. Each step of its loop:

1. **sync**: read the campaign's open experiments back (a person may have approved, rejected
   or added some) and tell the planner of new vetoes;
2. **follow**: ask the executor what became of the experiments it has (an executor in process
   runs one of them to its end here) and **record** each outcome: a measurement's observables
   are extracted from the documents *read back from the database*, stored, and only then told
   to the planner; a failure is stored with its reason and told as a failure;
3. **stop?**: pause (a person asked, a safety abort, failures in a row) once nothing runs, or
   complete (target reached with ``stop_on_target``, or the budget spent);
4. **dispatch**: hand ready experiments to the executor's free slots; **propose** new ones
   (stored, with their provenance, *before* they run) when slots remain.

The loop knows only the :class:`~orchestrator.execution.executor.Executor` protocol: in
process (:class:`~orchestrator.execution.local.LocalExecutor`) is the one-workcell case of
the same loop as workcells (:class:`~orchestrator.execution.queue.QueueExecutor`, chosen by
the config's ``workcells``). Every status change goes through
:mod:`orchestrator.campaign.lifecycle`.

Ctrl-C pauses the campaign after the run under way (aborted, and run again on resume, if its
measurement was not taken yet). :meth:`CampaignRunner.resume` rebuilds the planner from the
stored history, so a campaign killed at any point ends with every experiment exactly once.
With ``approval: required`` proposals wait as ``awaiting_approval`` until a person approves
them (:mod:`orchestrator.campaign.approval`).
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy.exc import DBAPIError

from db import Database, Fence
from db.lease import CampaignLease, lease_ttl_s
from db.outage import is_disconnect, wait_for_database
from db.outage import reconnect_window_s as _reconnect_window_s
from db.records import Experiment
from db.settings import seconds
from db.tiled import TiledSink
from devices import Lab, build_lab
from devices.world import twin_of
from models.parameters import get_route
from orchestrator.campaign import lifecycle
from orchestrator.campaign.config import LoadedCampaign, loaded_from_stored
from orchestrator.campaign.lifecycle import CampaignStatus, ExperimentStatus
from orchestrator.campaign.people import Action, Actor, acting_user, authorize
from orchestrator.campaign.record import Recorder
from orchestrator.campaign.restore import (
    finished,
    planner_history,
    resumed_config,
)
from orchestrator.campaign.summary import CampaignSummary, summarize
from orchestrator.campaign.warm_start import warm_start_observations
from orchestrator.execution.executor import (
    Executor,
    Faulted,
    GivenBack,
    Started,
)
from orchestrator.execution.local import INTERRUPTED, LocalExecutor
from orchestrator.execution.queue import QueueExecutor, connect_workcells
from orchestrator.execution.workcell import Workcell
from planners import Planner, make_planner

__all__ = [
    "MAX_CONSECUTIVE_FAILURES",
    "CampaignInterrupted",
    "CampaignRunner",
    "CampaignSummary",
    "summarize",
]

log = logging.getLogger(__name__)

MAX_CONSECUTIVE_FAILURES = 3
TARGET_REACHED = "withdrawn: the target was reached"
BUDGET_SPENT = "withdrawn: the budget of {} was spent by the experiments that ran"
TAKEN_BACK = "taken back from the queue: the campaign paused"


class CampaignInterrupted(Exception):
    """The user interrupted the campaign (Ctrl-C); it is paused and can be resumed."""


class CampaignRunner:
    """Runs (or resumes) one campaign (see the module docstring).

    Parameters
    ----------
    db
        Where everything is stored.
    loaded
        The validated campaign (:func:`orchestrator.campaign.config.load_campaign`).
    campaign_id
        An existing campaign to continue; ``None`` creates a new one.
    on_progress
        Called after every experiment with (experiments so far, budget, best error so far).
    planner
        A planner to use instead of the config's (benchmarks, backtests).
    max_consecutive_failures
        Failures in a row that pause the campaign (a lab fault is likely).
    replay_of
        The campaign this one replays (stored as the link).
    reconnect_window_s
        How long to keep trying a database that went away before stopping.
    tiled
        Also write every run to the tiled catalog at this URL (:class:`db.tiled.TiledSink`;
        runs on workcells are written by the workcells' own ``--tiled``).
    actor
        Who runs it (default: :func:`~orchestrator.campaign.people.acting_user`, from
        ``$QDLAB_API_KEY``); their role must allow running campaigns. Recorded in the audit,
        in every run's start document (``operator``) and as the workcell queue items' user.
    """

    def __init__(
        self,
        db: Database,
        loaded: LoadedCampaign,
        campaign_id: int | None = None,
        on_progress: Callable[[int, int, float], None] | None = None,
        planner: Planner | None = None,
        max_consecutive_failures: int = MAX_CONSECUTIVE_FAILURES,
        replay_of: int | None = None,
        reconnect_window_s: float | None = None,
        tiled: str | None = None,
        actor: Actor | None = None,
    ) -> None:
        loaded.check_code()
        self.actor = authorize(actor or acting_user(db), Action.RUN, "run campaigns")
        self.db, self.loaded, self.config = db, loaded, loaded.config
        self.on_progress = on_progress
        # everything that can refuse the campaign happens before its row is written
        self.reconnect_window_s = (
            reconnect_window_s if reconnect_window_s is not None else _reconnect_window_s()
        )
        self.lease_ttl_s = lease_ttl_s()
        self.instrument_wait_s = seconds("QDLAB_INSTRUMENT_WAIT_S", 60.0, 0.0, 86_400.0)
        """How long an instrument that stopped answering is waited for before the campaign
        pauses (``$QDLAB_INSTRUMENT_WAIT_S``)."""
        sink = self._tiled = None if tiled is None else TiledSink(tiled, background=True)
        workcells = connect_workcells(self.config.workcells or [], db, self.actor.name)
        lab = None if workcells else build_lab(loaded.lab)
        self.planner: Planner = planner or make_planner(
            self.config.planner.kind,
            loaded.space,
            loaded.target,
            self.config.seed,
            self.config.planner.options,
            self.config.route,
            twin_of(loaded.lab),
        )
        if self.config.trajectory_answers_time:
            self.planner.trajectory_answers = get_route(self.config.route).growth_time
        started = campaign_id is None
        if campaign_id is None:
            campaign_id = db.create_campaign(
                loaded.config.name,
                loaded.config.route,
                {
                    "campaign": loaded.config.model_dump(mode="json"),
                    "lab": loaded.lab.model_dump(mode="json"),
                },
                loaded.text,
                loaded.target_record(),
                replay_of=replay_of,
            )
        self.campaign_id = campaign_id
        db.record_audit(
            self.actor.name, self.actor.role, "run" if started else "resume", campaign_id
        )
        self.executor = self._executor(workcells, lab, sink)
        self.max_consecutive_failures = max_consecutive_failures
        self.lease: CampaignLease | None = None
        self.poll_s = 0.2  # how often the loop looks again when nothing happened
        self.recorder = Recorder(db, self.planner, loaded.target, self._report)
        self._pause_requested = False  # Ctrl-C
        self._pausing: str | None = None  # why it pauses: no new experiment starts
        self._kept_revision = -1  # the planner's revision its kept snapshot is of
        self._next_index = 0  # the campaign's next free experiment index, as last synced

    def _executor(
        self, workcells: list[Workcell], lab: Lab | None, sink: TiledSink | None
    ) -> Executor:
        """Where the experiments run: on the campaign's workcells, or in process."""
        cfg = self.config
        if lab is not None:
            return LocalExecutor(
                self.db, lab, cfg.route, cfg.seed, self._run_md, self._on_sigint, sink,
                plan_kwargs=cfg.plan_kwargs,
            )  # fmt: skip
        return QueueExecutor(
            self.db,
            workcells,
            self.db.campaign(self.campaign_id)["uid"],
            cfg.route,
            cfg.seed,
            self._run_md,
            queue_ahead=cfg.queue_ahead,
            requeue_on_worker_death=cfg.on_worker_death == "requeue",
            plan_kwargs=cfg.plan_kwargs,
        )

    @classmethod
    def resume(
        cls,
        db: Database,
        campaign_id: int,
        budget: int | None = None,
        outcome_model: str | None = None,
        planner_class: str | None = None,
        **kwargs: Any,
    ) -> CampaignRunner:
        """Continue a stored campaign with the config and lab it was started with.

        ``budget`` extends (or sets) the campaign's budget, also of a completed campaign, which
        then runs on to that many experiments even if it had reached its target.
        ``outcome_model`` names the user code to simulate with, ``planner_class`` the user's
        planner of a campaign that ran with one: a stored config's is never imported (see
        :func:`orchestrator.campaign.config.loaded_from_stored`).

        Raises
        ------
        devices.config.ConfigError
            The campaign is completed and no larger ``budget`` is given, or ``budget`` is not
            above the experiments already run.
        """
        campaign = db.campaign(campaign_id)
        stored = resumed_config(campaign, budget)
        loaded = loaded_from_stored(stored, campaign["name"], outcome_model, planner_class)
        loaded.check_code()
        if planner_class is not None:
            loaded.import_code()
        if stored is not campaign["config"]:
            db.set_campaign_config(campaign_id, stored)
        return cls(db, loaded, campaign_id=campaign_id, **kwargs)

    # -- driving --------------------------------------------------------------------------
    def run(self) -> CampaignSummary:
        """Run until the target is met, the budget is spent, or the campaign pauses.

        Raises
        ------
        db.lease.LeaseHeld
            Another process drives this campaign.
        CampaignInterrupted
            Ctrl-C: the campaign is paused.
        DatabaseUnavailable
            The database stayed unreachable beyond the reconnect window.
        """
        try:
            with _ctrl_c_recorded(self._on_sigint):
                if self.lease is not None:
                    return self._drive()
                with self.claim():
                    return self._drive()
        finally:
            self.executor.close()
            self._publish_left()

    def _publish_left(self) -> None:
        """Wait for the tiled catalog to take the campaign's last runs; say which it did not."""
        if self._tiled is None:
            return
        left = self._tiled.close()
        if left:
            log.warning(
                "tiled %s: %d run(s) not written (the catalog did not take them); QDLab's "
                "database has them: `qdlab campaign publish %d --tiled %s` writes them",
                self._tiled.uri, len(left), self.campaign_id, self._tiled.uri,
            )  # fmt: skip

    @contextmanager
    def claim(self) -> Iterator[CampaignLease]:
        """Hold the campaign's lease (see :mod:`db.lease`) for the duration of the block;
        :class:`~db.lease.LeaseHeld` at once if another process drives the campaign."""
        with CampaignLease(self.db, self.campaign_id, self.lease_ttl_s) as lease:
            self.lease = self.recorder.lease = lease
            try:
                yield lease
            finally:
                self.lease = self.recorder.lease = None

    @property
    def _fence(self) -> Fence | None:
        """What this driver's writes carry: its lease's fence (see :mod:`db.lease`)."""
        return self.recorder.fence

    def _on_sigint(self) -> None:
        self._pause_requested = True

    def _honour_ctrl_c(self) -> None:
        if self._pause_requested:
            raise CampaignInterrupted

    def _drive(self) -> CampaignSummary:
        cid = self.campaign_id
        self.recorder.safety_stop = self.recorder.fault = self._pausing = None
        self._restore()
        lifecycle.start_campaign(self.db, cid, self._fence)
        try:
            while True:
                try:
                    summary = self._step()
                    self._keep_planner()
                except DBAPIError as exc:
                    self._wait_out(exc)
                    continue
                if summary is not None:
                    return summary
        except (KeyboardInterrupt, CampaignInterrupted):
            self._keep_planner()
            in_flight = [r for r in self.db.open_experiments(cid)[0] if r.status.in_flight]
            for eid in self.executor.not_started(in_flight):  # interrupted between experiments
                lifecycle.give_back(self.db, eid, INTERRUPTED, self._fence)
            lifecycle.end_campaign(
                self.db,
                cid,
                CampaignStatus.PAUSED,
                f"interrupted by the user; `qdlab campaign resume {cid}` continues",
                self._fence,
            )
            raise CampaignInterrupted(f"campaign {cid} paused") from None

    def _wait_out(self, exc: DBAPIError) -> None:
        """Wait for a database that went away to come back (re-raise what is not an outage);
        :class:`~db.outage.DatabaseUnavailable` beyond the reconnect window. What was under
        way is still recorded as such and is followed (or run again) at the next step."""
        if not is_disconnect(exc, self.db):
            raise exc
        wait_for_database(
            self.db,
            exc,
            self.reconnect_window_s,
            f"campaign {self.campaign_id} stopped; `qdlab campaign resume "
            f"{self.campaign_id}` continues once the database is back",
        )

    # -- the loop -------------------------------------------------------------------------
    def _step(self) -> CampaignSummary | None:
        """One round of sync -> follow -> record -> stop? -> dispatch -> propose; the summary
        once the campaign pauses or completes."""
        self._check_lease()
        self._honour_ctrl_c()
        rows = self._sync()
        in_flight = [r for r in rows if r.status.in_flight]
        outcomes = self.executor.poll(in_flight)
        self.recorder.outcomes(outcomes, in_flight)
        self._honour_ctrl_c()
        ended = {o.experiment_id for o in outcomes if not isinstance(o, Started)}
        still = [r for r in in_flight if r.id not in ended]
        out_of_reach = self.executor.out_of_reach(self.instrument_wait_s)
        if out_of_reach is not None:  # what is under way there stays, followed on resume
            return self._end(
                CampaignStatus.PAUSED,
                f"{out_of_reach}; its experiments stay there: once it answers, `qdlab campaign "
                f"resume {self.campaign_id}` follows them",
            )
        self._pausing = self._pausing or self._stop_reason()
        if self._pausing is not None:
            return self._wind_down(still)
        if any(isinstance(o, GivenBack | Faulted) for o in outcomes):
            return None  # they are ready to run again: the next step sees them so
        if self.recorder.fault is not None:  # an instrument stopped answering: give it a moment
            time.sleep(1.0)
        self.executor.restart_stalled()
        runnable = [r for r in rows if r.status == ExperimentStatus.PROPOSED]
        awaiting = sum(r.status == ExperimentStatus.AWAITING_APPROVAL for r in rows)
        done = self._done_reason()
        if done is not None:
            runnable, awaiting = self._withdraw_unneeded(runnable, awaiting)
        if done is not None and not (still or runnable or awaiting):
            if not self.recorder.progress.measured:  # a lab that measured nothing is not done
                why = self.recorder.nothing_measured(f"`qdlab campaign resume {self.campaign_id}`")
                return self._end(CampaignStatus.PAUSED, why)
            return self._end(CampaignStatus.COMPLETED, done)
        slots = self.executor.slots(still)
        dispatched = list(zip(runnable, slots, strict=False))
        for experiment, where in dispatched:
            self._dispatch(experiment, where)
        free = slots[len(dispatched) :]
        if done is None and free:
            # a batch in process; on workcells one per free place, less those awaiting; the
            # budget left is shared with those awaiting (they count once approved)
            n = max(len(free), self.config.batch_size) - awaiting
            n = min(n, self.config.budget - self.recorder.progress.experiments - awaiting)
            for eid, where in zip(self._propose(max(n, 0)), free, strict=False):
                experiment = self.db.experiment(eid)
                if experiment.status == ExperimentStatus.PROPOSED:  # not awaiting approval
                    self._dispatch(experiment, where)
            if n > 0:
                return None
        if not (outcomes or dispatched):
            time.sleep(self.poll_s)  # nothing happened: a person or a workcell acts next
        return None

    def _keep_planner(self) -> None:
        """Keep the planner's snapshot of itself with the campaign once it has moved (a
        planner that keeps none is rebuilt on resume by asking again)."""
        if self.planner.revision != self._kept_revision:
            state = self.planner.snapshot()
            if state is not None:
                self.db.save_planner_state(self.campaign_id, self.planner.name, state, self._fence)
            self._kept_revision = self.planner.revision

    def _sync(self) -> list[Experiment]:
        """Read the campaign's open experiments back (a person may have approved, rejected or
        added some); tell the planner of new vetoes; return the open experiments."""
        rows, counted, self._next_index = self.db.open_experiments(self.campaign_id)
        self.recorder.progress.experiments = counted
        self.recorder.vetoes(rows)
        return [r for r in rows if r.status != ExperimentStatus.REJECTED]

    def _check_lease(self) -> None:
        """:class:`~db.LeaseLost` if another process took the campaign over (this driver may
        have been frozen past its lease)."""
        if self.lease is not None:
            self.lease.ensure()

    def _stop_reason(self) -> str | None:
        """Why the campaign must pause now (a person asked, an instrument fault, a safety
        abort, failures in a row), if it must."""
        cid = self.campaign_id
        resume = f"`qdlab campaign resume {cid}`"
        campaign = self.db.campaign(cid)
        if campaign["status"] == CampaignStatus.PAUSING:  # `qdlab campaign pause`, dashboard
            return f"{campaign['status_reason']}; `qdlab campaign resume {cid}` continues"
        return self.recorder.why_pause(
            self.max_consecutive_failures, self.instrument_wait_s, resume
        )

    def _wind_down(self, still: Sequence[Experiment]) -> CampaignSummary | None:
        """Pausing: nothing new starts; what waits in a queue is taken back (it runs on
        resume); the campaign pauses once the experiments under way have finished."""
        if not still:
            return self._end(CampaignStatus.PAUSED, self._pausing or "")
        for eid in self.executor.withdraw():
            lifecycle.give_back(self.db, eid, TAKEN_BACK, self._fence)
        time.sleep(self.poll_s)
        return None

    def _done_reason(self) -> str | None:
        """Why the campaign is complete (target reached, budget spent), if it is."""
        progress, cfg = self.recorder.progress, self.config
        if cfg.stop_on_target and progress.first_hit is not None:
            return f"target reached at experiment {progress.first_hit}"
        if progress.experiments >= cfg.budget:
            return f"budget of {cfg.budget} spent"
        return None

    def _withdraw_unneeded(
        self, runnable: list[Experiment], awaiting: int
    ) -> tuple[list[Experiment], int]:
        """The campaign is done: proposals awaiting approval will never run (withdrawn saying
        why: the target, or the budget spent by what ran); at the target (with
        ``stop_on_target``) the planner's proposals that have not started are not worth the
        reagents either, and spend no budget. An experiment a person added still runs. Return
        what is left to run and to wait for."""
        at_target = self.config.stop_on_target and self.recorder.progress.first_hit is not None
        reason = TARGET_REACHED if at_target else BUDGET_SPENT.format(self.config.budget)
        if at_target:
            for eid in self.executor.withdraw():
                lifecycle.withdraw(self.db, eid, reason, self._fence)
            planned = [r for r in runnable if not r.by_hand]
            for r in planned:
                lifecycle.withdraw(self.db, r.id, reason, self._fence)
            runnable = [r for r in runnable if r not in planned]
        if awaiting:
            lifecycle.reject(self.db, self.campaign_id, None, reason, self._fence)
        return runnable, 0

    def _dispatch(self, experiment: Experiment, where: str | None) -> None:
        """Hand a ready experiment to the executor, recorded as where it goes first (a driver
        killed in between finds it there, or finds it missing)."""
        lifecycle.dispatch(self.db, experiment.id, self.executor.dispatched, where, self._fence)
        self.executor.submit(experiment, where)

    def _end(self, status: CampaignStatus, reason: str) -> CampaignSummary:
        lifecycle.end_campaign(self.db, self.campaign_id, status, reason, self._fence)
        return summarize(self.db, self.campaign_id, self.loaded)

    def _propose(self, n: int) -> list[int]:
        """Ask the planner for ``n`` proposals and store them, as ready to run or, with
        ``approval: required``, as awaiting a person's approval; return their ids."""
        if n <= 0:
            return []
        batch = self._next_index  # as read by this step's sync: its proposals' batch
        required = self.config.approval == "required"
        ids = []
        for proposal in self.planner.ask(n):
            eid = lifecycle.propose(
                self.db, self.campaign_id, proposal, batch, required, self._fence
            )
            ids.append(eid)
            if not required:  # one awaiting approval counts once approved
                self.recorder.progress.experiments += 1
        return ids

    def _run_md(self, experiment: Experiment) -> dict[str, Any]:
        """Start metadata of an experiment's run: which campaign and experiment it is."""
        return {
            "campaign_id": self.campaign_id,
            "campaign_name": self.config.name,
            "experiment_id": experiment.id,
            "experiment_index": experiment.index,
            "target": self.loaded.target_record(),
            "operator": self.actor.name,
        }

    def _report(self) -> None:
        if self.on_progress is not None:
            p = self.recorder.progress
            self.on_progress(p.experiments, self.config.budget, p.best_error)

    # -- resuming -------------------------------------------------------------------------
    def _restore(self) -> None:
        """Rebuild the planner from the stored history and let the executor prepare for
        what ran (see :mod:`orchestrator.campaign.restore`)."""
        rows = self.db.experiments(self.campaign_id)
        history = planner_history(rows, self.db)
        self.recorder.told.update(history.told)
        self.recorder.progress.restore(rows)
        self.executor.prepare(finished(self.db, rows), self.lease)
        if self.config.planner.options.get("warm_start"):
            self.planner.tell(
                warm_start_observations(
                    self.db, self.config.route, self.loaded.space, skip_campaign=self.campaign_id
                )
            )
        snapshot = self.db.planner_state(self.campaign_id, self.planner.name)
        kept = {"snapshot": snapshot} if snapshot is not None else {}  # a user's restore() may
        # predate snapshots: it is only given one when its planner kept one
        self.planner.restore(history.batches, history.observations, history.provenance, **kept)


@contextmanager
def _ctrl_c_recorded(on_sigint: Callable[[], None]) -> Iterator[None]:
    """Between experiments too, Ctrl-C only records the request, which the loop honours at its
    next step: a KeyboardInterrupt raised at an arbitrary point (in a ``__del__``, a callback)
    can be swallowed, and the campaign would run on."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, lambda signum, frame: on_sigint())
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)

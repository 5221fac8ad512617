"""The closed loop: ask the planner, run the experiment, persist, observe, tell, repeat.

One :class:`CampaignRunner` drives one campaign on one lab:

1. the planner proposes conditions; each proposal is stored as an experiment (with its
   provenance) *before* it runs;
2. the synthesis plan runs as one bluesky run; a :class:`~db.DocumentWriter` persists every
   document as it is emitted;
3. the observables are extracted from the documents *read back from the database*, stored, and
   only then told to the planner;
4. the loop stops when a measurement lands within tolerance of the target (``stop_on_target``)
   or the budget is spent.

A failed experiment (a device fault, a rejected measurement) is recorded with its reason and
told to the planner as a failure, not as a measurement; after three failures in a row the
campaign pauses with the last reason. Ctrl-C pauses the RunEngine, aborts the run (it stays in
the record as aborted) and pauses the campaign. :meth:`CampaignRunner.resume` rebuilds the
planner from the stored history and re-runs any experiment that had not finished, so a campaign
killed at any point ends with every experiment exactly once.

With ``workcells`` in its config the runner is the campaign's agent instead of its RunEngine: it
dispatches each experiment to an idle workcell (an RE Manager, :mod:`orchestrator.execution.workcell`) as
a queue item, refills a workcell as soon as its experiment finishes, and finds its experiments
again by id after a crash (see ``docs/workcells.md``). With ``approval: required`` proposals
wait, stored as ``awaiting_approval``, until a person approves them; rejected ones are told to
the planner as vetoes; hand-added ones run as they come (:mod:`orchestrator.campaign.approval`).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from bluesky import RunEngine
from bluesky.utils import FailedStatus, RunEngineInterrupted, SigintHandler
from sqlalchemy.exc import DBAPIError

from db import Database, DocumentWriter
from db.lease import CampaignLease, LeaseHeld
from db.outage import RECONNECT_WINDOW_S, is_disconnect, wait_for_database
from db.tiled import TiledSink
from devices import Lab, build_lab
from devices.config import ConfigError
from devices.world import twin_of
from orchestrator.campaign.approval import PAUSING
from orchestrator.campaign.config import MAX_BUDGET, LoadedCampaign, loaded_from_stored
from orchestrator.campaign.summary import pareto_front
from orchestrator.execution.observe import MeasurementRejected, observables_from_documents
from orchestrator.execution.plans import PLANS
from orchestrator.execution.safety import SAFETY_ABORT, SafetyAbort, SafetyWatch
from orchestrator.execution.workcell import PLAN_OF_ROUTE, ItemState, Workcell, WorkcellError
from planners import Observation, Planner, Target, make_planner

__all__ = ["MAX_CONSECUTIVE_FAILURES", "CampaignInterrupted", "CampaignRunner", "CampaignSummary"]

MAX_CONSECUTIVE_FAILURES = 3


class _RecordingSigintHandler(SigintHandler):
    """bluesky's Ctrl-C handling (pause at the next checkpoint), plus a note to the campaign.

    bluesky passes the pause request to the RunEngine from a helper thread; a Ctrl-C in the
    last moments of a plan is dropped once the plan ends. Recording it here, in the signal
    handler itself, lets the campaign stop after the experiment instead of going on.
    """

    def __init__(self, engine: RunEngine, on_sigint: Callable[[], None]) -> None:
        super().__init__(engine)
        self._on_sigint = on_sigint

    def __enter__(self) -> _RecordingSigintHandler:
        super().__enter__()
        pause_handler = signal.getsignal(signal.SIGINT)

        def handler(signum: int, frame: Any) -> None:
            self._on_sigint()
            pause_handler(signum, frame)

        signal.signal(signal.SIGINT, handler)
        return self


class CampaignInterrupted(Exception):
    """The user interrupted the campaign (Ctrl-C); it is paused and can be resumed."""


@dataclass(frozen=True)
class CampaignSummary:
    """How a campaign ended (what ``qdlab campaign run --json`` prints)."""

    campaign_id: int
    status: str
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


def _failure_reason(exc: BaseException) -> str:
    if isinstance(exc, FailedStatus) and exc.args:
        status = exc.args[0]
        inner = status.exception() if hasattr(status, "exception") else None
        if inner is not None:
            exc = inner
    text = str(exc).strip() or type(exc).__name__
    return f"{type(exc).__name__}: {text}"


def summarize(db: Database, campaign_id: int, loaded: LoadedCampaign) -> CampaignSummary:
    """The summary of a stored campaign."""
    campaign = db.campaign(campaign_id)
    target = loaded.target
    rows = db.experiments(campaign_id)
    done = [r for r in rows if r["status"] == "done" and r["observables"]]
    hits = [r for r in done if target.hit(r["observables"], r["conditions"])]
    best_row = min(done, key=lambda r: target.rank(r["observables"], r["conditions"]), default=None)
    best = None
    if best_row is not None:
        best = {
            "experiment": best_row["index"] + 1,
            "conditions": best_row["conditions"],
            "observables": {
                k: (v if v is None or math.isfinite(v) else None)
                for k, v in best_row["observables"].items()
                if isinstance(v, float | int) or v is None
            },
            "error": target.error(best_row["observables"]),
        }
    return CampaignSummary(
        campaign_id=campaign_id,
        status=campaign["status"],
        experiments=sum(r["status"] != "rejected" for r in rows),  # a rejected one never ran
        reached_target=bool(hits),
        first_hit_experiment=hits[0]["index"] + 1 if hits else None,
        best=best,
        reason=campaign["status_reason"],
        pareto_set=pareto_front(rows, target) if target.pareto else None,
    )


class CampaignRunner:
    """Runs (or resumes) one campaign (see the module docstring).

    Parameters
    ----------
    db
        Where everything is stored.
    loaded
        The validated campaign (:func:`orchestrator.config.load_campaign`).
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
        reconnect_window_s: float = RECONNECT_WINDOW_S,
        tiled: str | None = None,
    ) -> None:
        loaded.check_code()
        self.tiled = None if tiled is None else TiledSink(tiled)  # refused before any row
        self.db = db
        self.loaded = loaded
        self.config = loaded.config
        self.on_progress = on_progress
        # everything that can refuse the campaign happens before its row is written
        self.workcells: list[Workcell] = connect_workcells(self.config.workcells or [], db)
        self.lab: Lab | None = None if self.workcells else build_lab(loaded.lab)
        self.planner: Planner = planner or make_planner(
            self.config.planner.kind,
            loaded.space,
            loaded.target,
            self.config.seed,
            self.config.planner.options,
            self.config.route,
            twin_of(loaded.lab),
        )
        if campaign_id is None:
            stored = {
                "campaign": loaded.config.model_dump(mode="json"),
                "lab": loaded.lab.model_dump(mode="json"),
            }
            campaign_id = db.create_campaign(
                loaded.config.name,
                loaded.config.route,
                stored,
                loaded.text,
                loaded.target_record(),
                replay_of=replay_of,
            )
        self.campaign_id = campaign_id
        self.safety: SafetyWatch | None = None  # watching while run() drives the campaign
        self.RE = self._new_run_engine()
        self._consecutive_failures = 0
        self._pause_requested = False
        self._lab_is_fresh = True  # no experiment has run on this runner's lab yet
        self._safety_stop: str | None = None  # a safety abort: the campaign pauses
        self.max_consecutive_failures = max_consecutive_failures
        self.reconnect_window_s = reconnect_window_s
        self.lease: CampaignLease | None = None
        self._progress = _Progress(loaded.target)
        self._told: set[int] = set()  # experiments whose outcome the planner knows
        self._last_failure: str | None = None
        self.poll_s = 0.2  # how often an agent looks at its workcells and the approvals

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
        :func:`orchestrator.config.loaded_from_stored`).

        Raises
        ------
        devices.config.ConfigError
            The campaign is completed and no larger ``budget`` is given, or ``budget`` is not
            above the experiments already run.
        """
        campaign = db.campaign(campaign_id)
        stored = campaign["config"]
        done = campaign["experiments"]
        if budget is not None:
            if not done < budget <= MAX_BUDGET:
                raise ConfigError(
                    f"--budget: {budget} must be above the {done} experiments campaign "
                    f"{campaign_id} has run and at most {MAX_BUDGET}"
                )
            extended = {**stored["campaign"], "budget": budget}
            if campaign["status"] == "completed":
                extended["stop_on_target"] = False  # asked for more: don't stop at the hit
            stored = {**stored, "campaign": extended}
        elif campaign["status"] == "completed":
            raise ConfigError(
                f"campaign {campaign_id} is completed ({campaign['status_reason']}); "
                f"`qdlab campaign resume {campaign_id} --budget N` runs it on to N experiments"
            )
        loaded = loaded_from_stored(stored, campaign["name"], outcome_model, planner_class)
        loaded.check_code()
        if planner_class is not None:
            loaded.import_code()
        if stored is not campaign["config"]:
            db.set_campaign_config(campaign_id, stored)
        return cls(db, loaded, campaign_id=campaign_id, **kwargs)

    # -- the loop -------------------------------------------------------------------------
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
        if self.lab is not None:
            self.safety = SafetyWatch(self.lab, self.loaded.lab.safety)
            self.safety.install(self.RE)
        try:
            with self._ctrl_c_pauses():
                if self.lease is not None:
                    return self._drive()
                with self.claim():
                    return self._drive()
        finally:
            if self.safety is not None:
                self.safety.close()
                self.safety = None
            for workcell in self.workcells:
                workcell.close()

    @contextmanager
    def _ctrl_c_pauses(self) -> Iterator[None]:
        """Between experiments too, Ctrl-C only records the request, which the loop honours
        at its next step: a KeyboardInterrupt raised at an arbitrary point (in a ``__del__``,
        a callback) can be swallowed, and the campaign would run on."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = signal.signal(signal.SIGINT, lambda signum, frame: self._on_sigint())
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)

    def _honour_ctrl_c(self) -> None:
        if self._pause_requested:
            raise CampaignInterrupted

    @contextmanager
    def claim(self) -> Iterator[CampaignLease]:
        """Hold the campaign's lease (see :mod:`db.lease`) for the duration of the block;
        :class:`~db.lease.LeaseHeld` at once if another process drives the campaign."""
        with CampaignLease(self.db, self.campaign_id) as lease:
            self.lease = lease
            try:
                yield lease
            finally:
                self.lease = None

    def _drive(self) -> CampaignSummary:
        db, cid = self.db, self.campaign_id
        self._safety_stop = None
        self._restore()
        db.set_campaign_status(cid, "running")
        try:
            if self.workcells:
                return self._drive_workcells()
            return self._drive_in_process()
        except (KeyboardInterrupt, CampaignInterrupted):
            db.set_campaign_status(
                cid, "paused", f"interrupted by the user; `qdlab campaign resume {cid}` continues"
            )
            raise CampaignInterrupted(f"campaign {cid} paused") from None

    def _drive_in_process(self) -> CampaignSummary:
        """Run the runnable experiments here, one after the other; propose a batch when none
        is left; wait while proposals await approval."""
        return self._loop(self._in_process_step)

    def _loop(self, step: Callable[[], CampaignSummary | None]) -> CampaignSummary:
        """Repeat ``step`` until it returns the campaign's summary, riding out database
        outages (see :func:`wait_for_database`) between steps."""
        while True:
            try:
                summary = step()
            except DBAPIError as exc:
                self._wait_out(exc)
                continue
            if summary is not None:
                return summary

    def _wait_out(self, exc: DBAPIError) -> None:
        """Wait for a database that went away to come back (re-raise what is not an outage);
        :class:`~db.outage.DatabaseUnavailable` beyond the reconnect window."""
        if not is_disconnect(exc, self.db):
            raise exc
        wait_for_database(
            self.db,
            exc,
            self.reconnect_window_s,
            f"campaign {self.campaign_id} stopped; `qdlab campaign resume "
            f"{self.campaign_id}` continues once the database is back",
        )

    def _in_process_step(self) -> CampaignSummary | None:
        cfg = self.config
        self._honour_ctrl_c()
        rows = self._sync()
        todo = [r for r in rows if r["status"] in ("proposed", "running", "queued")]
        if not todo and any(r["status"] == "awaiting_approval" for r in rows):
            self._check_lease()
            stop = self._stop_reason(None)
            if stop is not None:
                return self._end("paused", stop)
            time.sleep(self.poll_s)
            return None
        for experiment in todo:
            self._check_lease()
            self._honour_ctrl_c()
            reason = self._run_experiment_retrying(experiment)
            stop = self._stop_reason(reason)
            if stop is not None:
                return self._end("paused", stop)
        if todo:
            return None  # a person may have added experiments meanwhile
        done = self._done_reason()
        if done is not None:
            return self._end("completed", done)
        self._propose(min(cfg.batch_size, cfg.budget - self._progress.experiments))
        return None

    def _check_lease(self) -> None:
        if self.lease is not None and self.lease.lost.is_set():
            raise LeaseHeld(
                f"campaign {self.campaign_id}: another process took over its lease; stopping"
            )

    def _stop_reason(self, last_failure: str | None) -> str | None:
        """Why the campaign must pause now (a safety abort, failures in a row, a person asked),
        if it must."""
        cid = self.campaign_id
        campaign = self.db.campaign(cid)
        if campaign["status"] == PAUSING:  # `qdlab campaign pause` or the dashboard
            return f"{campaign['status_reason']}; `qdlab campaign resume {cid}` continues"
        if self._safety_stop is not None:
            return f"{self._safety_stop}; make the lab safe, then `qdlab campaign resume {cid}`"
        if self._consecutive_failures >= self.max_consecutive_failures:
            return (
                f"{self.max_consecutive_failures} experiments failed in a row (last: "
                f"{last_failure}); fix the lab, then `qdlab campaign resume {cid}`"
            )
        return None

    def _done_reason(self) -> str | None:
        """Why the campaign is complete (target reached, budget spent), if it is."""
        progress, cfg = self._progress, self.config
        if cfg.stop_on_target and progress.first_hit is not None:
            return f"target reached at experiment {progress.first_hit}"
        if progress.experiments >= cfg.budget:
            return f"budget of {cfg.budget} spent"
        return None

    def _end(self, status: str, reason: str) -> CampaignSummary:
        self.db.set_campaign_status(self.campaign_id, status, reason)
        return summarize(self.db, self.campaign_id, self.loaded)

    def _sync(self) -> list[dict[str, Any]]:
        """Read the campaign's open experiments back (a person may have approved, rejected or
        added some); tell the planner of new vetoes; return the open experiments."""
        rows, counted, _ = self.db.open_experiments(self.campaign_id)
        self._progress.experiments = counted
        vetoed = [r for r in rows if r["status"] == "rejected" and r["id"] not in self._told]
        if vetoed:
            self.planner.tell([_vetoed(r) for r in vetoed])
            self._told.update(r["id"] for r in vetoed)
        return [r for r in rows if r["status"] != "rejected"]

    # -- workcells ------------------------------------------------------------------------
    def _drive_workcells(self) -> CampaignSummary:
        """The campaign as an agent: keep every workcell busy with one experiment, refill a
        workcell as soon as its experiment finishes (the busy ones' conditions are the
        planner's pending points), and find, by experiment id, what an earlier agent queued."""
        self._uid = self.db.campaign(self.campaign_id)["uid"]
        self._unseen: dict[int, int] = {}  # experiment -> polls in a row no workcell knew it
        self._pausing: str | None = None  # why it pauses: no new experiment starts
        self._restart: set[str] = set()  # workcells whose queue holds ours but stands still
        return self._loop(self._workcell_step)

    def _workcell_step(self) -> CampaignSummary | None:
        cfg, cid = self.config, self.campaign_id
        self._check_lease()
        self._honour_ctrl_c()
        rows = self._sync()
        snapshots = {w.name: _snapshot(w, self._uid) for w in self.workcells}
        load = {w.name: 0 for w in self.workcells}  # experiments queued or running on each
        for r in rows:
            if r["status"] not in ("queued", "running"):
                continue
            workcell = self._workcell(r["workcell"])
            snapshot = snapshots.get(r["workcell"])
            # unreachable for now: its experiment stays where it is
            if snapshot is None or self._follow(r, workcell, snapshot):
                load[workcell.name] += 1
        self._pausing = self._pausing or self._stop_reason(self._last_failure)
        for name in self._restart if self._pausing is None else ():
            self._workcell(name).start(snapshots[name][0])
        self._restart.clear()
        if self._pausing is not None:  # pause once the experiments under way finished
            if not any(load.values()):
                return self._end("paused", self._pausing)
            self._withdraw_queued(
                snapshots, "proposed", "taken back from the queue: the campaign paused"
            )
            time.sleep(self.poll_s)
            return None
        runnable = [r for r in rows if r["status"] == "proposed"]
        awaiting = sum(r["status"] == "awaiting_approval" for r in rows)
        done = self._done_reason()
        if done is not None and self._progress.first_hit is not None:
            if cfg.stop_on_target:  # what has not started is not worth the reagents
                self._withdraw_queued(snapshots, "rejected", "withdrawn: the target was reached")
                runnable = []
            if awaiting:
                self.db.decide(cid, None, "rejected", "withdrawn: the target was reached")
                awaiting = 0
        if done is not None and not (any(load.values()) or runnable or awaiting):
            return self._end("completed", done)
        # a slot is a place in a workcell's queue; the emptiest workcells are filled first
        depth = 1 + cfg.queue_ahead
        slots = sorted(
            (load[w.name] + k, i, w)
            for i, w in enumerate(self.workcells)
            if _ready(snapshots.get(w.name))
            for k in range(depth - load[w.name])
        )
        free = [w for *_, w in slots]
        for workcell, r in zip(free, runnable, strict=False):
            self._submit(workcell, r)
        free = free[len(runnable) :]
        n = min(len(free) - awaiting, cfg.budget - self._progress.experiments)
        if done is None and n > 0:
            for workcell, eid in zip(free, self._propose(n), strict=False):
                experiment = self.db.experiment(eid)
                if experiment["status"] == "proposed":  # not awaiting approval
                    self._submit(workcell, experiment)
        else:
            time.sleep(self.poll_s)
        return None

    def _withdraw_queued(
        self, snapshots: Mapping[str, tuple[dict, dict] | None], status: str, why: str
    ) -> None:
        """Take back the campaign's experiments waiting in the workcells' queues: ``proposed``
        again when the campaign pauses (they run when it resumes), ``rejected`` once the target
        is reached (spending no budget, as the proposals awaiting approval then). One that
        started meanwhile runs to its end."""
        for workcell in self.workcells:
            snapshot = snapshots.get(workcell.name)
            for eid, states in (snapshot[1] if snapshot else {}).items():
                if states[-1].where == "queued" and workcell.remove(states[-1].item_uid):
                    self.db.set_experiment_status(eid, status, why)

    def _workcell(self, name: str | None) -> Workcell:
        for w in self.workcells:
            if w.name == name:
                return w
        raise WorkcellError(
            f"campaign {self.campaign_id}: an experiment is on workcell {name!r}, which the "
            "campaign's `workcells` no longer lists"
        )

    def _submit(self, workcell: Workcell, experiment: dict[str, Any]) -> None:
        """Queue an experiment on a workcell: recorded as queued there *before* the item is
        added, so an agent killed in between finds it (or finds it missing) on resume."""
        self.db.set_experiment_status(experiment["id"], "queued", workcell=workcell.name)
        md = {
            **self._run_md(experiment),
            "campaign_uid": self._uid,  # ids repeat across databases; a queue may outlive one
            "seed": self.config.seed,  # a simulated workcell reseeds its twin by it
        }
        with contextlib.suppress(Exception):  # not added: found missing, and queued again
            workcell.submit(PLAN_OF_ROUTE[self.config.route], experiment["conditions"], md)

    def _follow(
        self,
        experiment: dict[str, Any],
        workcell: Workcell,
        snapshot: tuple[dict, dict],
    ) -> bool:
        """Bring a queued or running experiment's record up to date with its queue item;
        return whether it still occupies its workcell."""
        status, items = snapshot
        states = items.get(experiment["id"], [])
        eid = experiment["id"]
        if not states:  # the queue lost it (a Redis restart), or it was never added
            return self._follow_lost(experiment, workcell, status)
        self._unseen.pop(eid, None)
        last = states[-1]
        if last.where == "running":
            if experiment["status"] != "running":
                self.db.set_experiment_status(eid, "running", workcell=workcell.name)
            return True
        ended = [s for s in states if s.where == "finished"]
        requeue = self.config.on_worker_death == "requeue"
        if last.where == "queued":
            # put back by the queue server: after its worker died, or an operator aborted it
            if ended and not (ended[-1].worker_died and requeue):
                workcell.remove(last.item_uid)  # don't rerun it
                self._fail_on(workcell, experiment, ended[-1])
                return False
            self._restart.add(workcell.name)  # a stopped queue, or put back: started after
            return True  # every item of the workcell was followed (one to remove comes first)
        if last.exit_status == "completed":
            uid = last.run_uids[-1] if last.run_uids else self._stored_run(eid)
            if uid is None:
                self._fail_on_workcell(workcell, experiment, "the plan stored no run")
            else:
                self._record(experiment, uid)
            return False
        if last.worker_died and requeue:
            self.db.set_experiment_status(eid, "proposed", last.reason(workcell.name))
            return False
        self._fail_on(workcell, experiment, last)
        return False

    def _fail_on(self, workcell: Workcell, experiment: dict[str, Any], item: ItemState) -> None:
        """Fail an experiment whose queue item ended badly: with the worker's safety abort,
        else its run's own stop reason when it has one (the queue server's message may only
        say the RunEngine was interrupted), else that message."""
        runs = [r for r in self.db.runs(experiment_id=experiment["id"]) if r["complete"]]
        stop = runs[-1]["reason"] if runs and runs[-1]["exit_status"] != "success" else ""
        message = item.reason(workcell.name)
        if stop and not message.startswith(f"workcell {workcell.name}: {SAFETY_ABORT}"):
            message = stop  # the worker's safety abort says most; else the stop document
        self._fail_on_workcell(workcell, experiment, message)

    def _fail_on_workcell(self, workcell: Workcell, experiment: dict[str, Any], why: str) -> None:
        """Fail an experiment with a reason that names its workcell; a safety abort there
        pauses the campaign (and is no failure in a row)."""
        prefix = f"workcell {workcell.name}: "
        reason = why if why.startswith(prefix) else prefix + why
        safety = reason.startswith(prefix + SAFETY_ABORT)
        if safety:
            self._safety_stop = reason
        self._fail(experiment, reason, count=not safety)

    def _follow_lost(
        self,
        experiment: dict[str, Any],
        workcell: Workcell,
        status: Mapping[str, Any],
    ) -> bool:
        """An experiment its workcell's queue does not know: the database says what became of
        it. A finished run is recorded; a run still open waits while the worker is busy (it
        goes on without its queue record) and fails once the worker is idle; an experiment
        that never started is queued again. Return whether it occupies the workcell."""
        eid = experiment["id"]
        runs = self.db.runs(experiment_id=eid)
        finished = [r for r in runs if r["complete"]]
        if finished:
            last = finished[-1]
            if last["exit_status"] == "success":
                self._record(experiment, last["uid"])
            else:
                self._fail_on_workcell(
                    workcell, experiment, last["reason"] or f"run {last['exit_status']}"
                )
            return False
        if runs:
            if status.get("worker_environment_state") == "executing_plan":
                return True
            self._fail_on_workcell(
                workcell,
                experiment,
                "its run stopped unrecorded (the queue server lost track of it)",
            )
            return False
        self._unseen[eid] = self._unseen.get(eid, 0) + 1
        if self._unseen[eid] >= 2:  # seen in no queue twice in a row, and it never started
            self._unseen.pop(eid)
            self._submit(workcell, experiment)
        return True

    def _run_md(self, experiment: dict[str, Any]) -> dict[str, Any]:
        """Start metadata of an experiment's run: which campaign and experiment it is."""
        return {
            "campaign_id": self.campaign_id,
            "campaign_name": self.config.name,
            "experiment_id": experiment["id"],
            "experiment_index": experiment["index"],
            "target": self.loaded.target_record(),
        }

    def _restore(self) -> None:
        """Rebuild the planner from the stored history (a proposal a person added was never
        asked for; a rejected one is a veto)."""
        rows = self.db.experiments(self.campaign_id)
        batches: dict[int, list[dict[str, Any]]] = {}
        for r in rows:
            if r["provenance"].get("source") != "human":
                batches.setdefault(int(r["provenance"].get("batch", r["index"])), []).append(r)
        observations = []
        for r in rows:
            if r["status"] == "done" and r["observables"]:
                observations.append(Observation(r["conditions"], r["observables"]))
            elif r["status"] == "failed":
                observations.append(
                    Observation(r["conditions"], failed=True, reason=r["failure_reason"])
                )
            elif r["status"] == "rejected":
                observations.append(_vetoed(r))
            else:
                continue
            self._told.add(r["id"])
        self._progress.restore(rows)
        self._catch_up_lab(rows)
        if self.config.planner.options.get("warm_start"):
            self.planner.tell(self._warm_start())
        self.planner.restore(
            [[r["conditions"] for r in b] for _, b in sorted(batches.items())],
            observations,
            [r["provenance"] for r in rows if r["provenance"].get("source") != "human"],
        )

    def _catch_up_lab(self, rows: list[dict[str, Any]]) -> None:
        """Bring a new simulated lab to the state the finished experiments left the twin in.

        The twin carries state from one experiment to the next (the reactor's temperature, the
        reagents left, the cell's dark and reference frames, the wells used). A resumed
        campaign runs its finished experiments again, in order, on its new simulated lab, on a
        fast clock and with nothing recorded; each experiment draws its randomness from
        (seed, index), so the lab ends where the interrupted campaign's lab was, and what
        follows matches the uninterrupted campaign.
        """
        finished = sorted(  # with those killed after their run was stored: they don't rerun
            (
                r
                for r in rows
                if r["status"] in ("done", "failed") or self._stored_run(r["id"]) is not None
            ),
            key=lambda r: r["index"],
        )
        if not (self._lab_is_fresh and finished) or self.lab is None or self.lab.world is None:
            return  # nothing run yet, or an EPICS lab: its IOCs kept their state
        self._lab_is_fresh = False
        engine = RunEngine({}, context_managers=[])
        plan = PLANS[self.config.route]
        with self.lab.clock.fast():
            for r in finished:
                self.lab.reseed(self.config.seed, r["index"])
                try:
                    engine(plan(self.lab, r["conditions"]))
                except Exception:  # it fails again as it failed then
                    if engine.state != "idle":
                        engine.halt()

    def _warm_start(self) -> list[Observation]:
        """Observations of earlier campaigns of the same route inside this campaign's space."""
        from orchestrator.history.suggest import warm_start_observations

        return warm_start_observations(
            self.db, self.config.route, self.loaded.space, skip_campaign=self.campaign_id
        )

    def _stored_run(self, experiment_id: int) -> str | None:
        """The last successful, complete run of an experiment, if one is stored."""
        runs = [
            r
            for r in self.db.runs(experiment_id=experiment_id)
            if r["complete"] and r["exit_status"] == "success"
        ]
        return runs[-1]["uid"] if runs else None

    def _propose(self, n: int) -> list[int]:
        """Ask the planner for ``n`` proposals and store them, as ready to run or, with
        ``approval: required``, as awaiting a person's approval; return their ids."""
        _, _, batch = self.db.open_experiments(self.campaign_id)
        status = "awaiting_approval" if self.config.approval == "required" else "proposed"
        ids = []
        for p in self.planner.ask(n):
            eid = self.db.add_experiment(
                self.campaign_id,
                None,
                p.conditions,
                planner_name=p.planner_name,
                planner_version=p.planner_version,
                seed=p.seed,
                acquisition_value=p.acquisition_value,
                predicted_mean=p.predicted_mean,
                predicted_std=p.predicted_std,
                provenance={**p.provenance, "batch": batch},
                status=status,
            )
            ids.append(eid)
            self._progress.experiments += 1
        return ids

    def _run_experiment_retrying(self, experiment: dict[str, Any]) -> str | None:
        """Run one experiment; ride out a database outage (see :func:`wait_for_database`) by
        running the experiment again once the database is back."""
        while True:
            try:
                return self._run_experiment(experiment)
            except DBAPIError as exc:
                self._wait_out(exc)
                if self.RE.state != "idle":
                    self.RE.halt()
                self.RE = self._new_run_engine()  # its writer gets a fresh connection
                self.db.set_experiment_status(
                    experiment["id"], "proposed", "database connection lost; ran again"
                )

    def _new_run_engine(self) -> RunEngine:
        def sigint_handler(engine: RunEngine) -> _RecordingSigintHandler:
            return _RecordingSigintHandler(engine, self._on_sigint)

        engine = RunEngine({}, context_managers=[sigint_handler])
        engine.subscribe(DocumentWriter(self.db))
        if self.tiled is not None:
            engine.subscribe(self.tiled)
        if self.safety is not None:
            self.safety.install(engine)
        return engine

    def _on_sigint(self) -> None:
        self._pause_requested = True

    def _run_experiment(self, experiment: dict[str, Any]) -> str | None:
        """Run one experiment here; return its failure reason (None if it succeeded)."""
        db, eid, index = self.db, experiment["id"], experiment["index"]
        plan = PLANS[self.config.route]
        self._lab_is_fresh = False
        uid = self._stored_run(eid)  # killed after its run was stored: finish, don't repeat
        try:
            if uid is None:
                db.set_experiment_status(eid, "running")
                self.lab.reseed(self.config.seed, index)
                uid = self._run_plan(
                    plan(self.lab, experiment["conditions"], md=self._run_md(experiment)), eid
                )
                if uid is None:
                    db.set_experiment_status(eid, "proposed", "interrupted; runs again on resume")
                    raise CampaignInterrupted
        except KeyboardInterrupt:
            db.set_experiment_status(eid, "proposed", "interrupted; runs again on resume")
            raise
        except SafetyAbort as exc:
            self._safety_stop = str(exc)
            return self._fail(experiment, str(exc), count=False)
        except (FailedStatus, RuntimeError, TimeoutError, ValueError) as exc:
            reason = self._fail(experiment, _failure_reason(exc))
        else:
            reason = self._record(experiment, uid)
        if self._pause_requested:
            raise CampaignInterrupted from None
        return reason

    def _record(self, experiment: dict[str, Any], uid: str) -> str | None:
        """Extract an experiment's observables from its stored run (read back from the
        database), store them, then tell the planner; return the failure reason if the
        measurement was rejected."""
        try:
            observables = observables_from_documents(self.db.run_documents(uid))
        except MeasurementRejected as exc:
            return self._fail(experiment, _failure_reason(exc))
        self.db.add_observation(experiment["id"], observables, run_uid=uid)  # and marks it done
        self.planner.tell([Observation(experiment["conditions"], observables)])
        self._told.add(experiment["id"])
        self._progress.observe(experiment["index"], observables, experiment["conditions"])
        self._consecutive_failures = 0
        self._report()
        return None

    def _fail(self, experiment: dict[str, Any], reason: str, count: bool = True) -> str:
        """Record that an experiment failed, and why; tell the planner. ``count``: it counts
        towards the failures in a row that pause the campaign."""
        self.db.set_experiment_status(experiment["id"], "failed", reason)
        self.planner.tell([Observation(experiment["conditions"], failed=True, reason=reason)])
        self._told.add(experiment["id"])
        self._last_failure = reason
        if count:
            self._consecutive_failures += 1
        self._report()
        return reason

    def _run_plan(self, plan: Any, experiment_id: int) -> str | None:
        """Run one synthesis; on Ctrl-C return the run if its measurement is stored (the
        RunEngine paused at the checkpoint after it), else abort the run and return None."""
        try:
            uids = self.RE(plan)  # a Ctrl-C after the plan's last checkpoint sets the flag
            return uids[-1] if isinstance(uids, tuple | list) else uids
        except RunEngineInterrupted:
            safety = self.safety
            if safety is not None and safety.abort_reason is not None:
                self.RE.abort(reason=safety.abort_reason)
                raise SafetyAbort(safety.abort_reason) from None
            if safety is not None and self.RE.state == "idle" and safety.tripped():
                raise SafetyAbort(safety.uncheckpointed_abort()) from None
            self._pause_requested = True
            runs = [r for r in self.db.runs(experiment_id=experiment_id) if not r["complete"]]
            measured = bool(runs) and any(
                name == "event" for name, _ in self.db.run_documents(runs[-1]["uid"])
            )
            if measured:
                self.RE.stop()  # the sample is measured and stored: close the run as done
                return runs[-1]["uid"]
            self.RE.abort(reason="interrupted by the user before the measurement")
            return None

    def _report(self) -> None:
        if self.on_progress is not None:
            p = self._progress
            self.on_progress(p.experiments, self.config.budget, p.best_error)


def _vetoed(row: Mapping[str, Any]) -> Observation:
    """What the planner is told of a proposal a person rejected."""
    reason = row["failure_reason"] or "rejected"
    return Observation(row["conditions"], failed=True, reason=reason, vetoed=True)


def connect_workcells(specs: list[Any], db: Database) -> list[Workcell]:
    """Clients of a campaign's workcells, each answering; a name without an address is looked
    up among the workcells registered in the database. :class:`WorkcellError` names the first
    unknown or unreachable one."""
    registered = {w["name"]: w for w in db.workcells()} if specs else {}
    clients: list[Workcell] = []
    try:
        for i, spec in enumerate(specs):
            field = f"workcells[{i}] ({spec.name})"
            zmq, http = spec.zmq, spec.http
            if zmq is None and http is None:
                known = registered.get(spec.name)
                if known is None or known["stopped_at"] is not None:
                    names = sorted(n for n, w in registered.items() if w["stopped_at"] is None)
                    raise WorkcellError(
                        f"{field}: no workcell of that name serves (serving: "
                        f"{', '.join(names) or 'none'}); start it with `qdlab workcell serve` "
                        "or give its zmq address"
                    )
                zmq, http = known["zmq"], None if known["zmq"] else known["http"]
            key = None
            if spec.api_key_env is not None:
                key = os.environ.get(spec.api_key_env)
                if not key:
                    raise WorkcellError(f"{field}: ${spec.api_key_env} is not set")
            client = Workcell(spec.name, zmq=zmq, http=http, api_key=key)
            clients.append(client)
            try:
                client.status()
            except WorkcellError as exc:
                raise WorkcellError(f"{field}: {exc}") from None
    except BaseException:
        for c in clients:
            c.close()
        raise
    return clients


def _snapshot(workcell: Workcell, campaign_uid: str) -> tuple[dict, dict] | None:
    """(status, this campaign's items by experiment id) of a workcell; None if it does not
    answer (its experiments wait until it does)."""
    try:
        status = workcell.status()
        return status, workcell.items(campaign_uid, status)
    except Exception:
        workcell.reconnect()
        return None


def _ready(snapshot: tuple[dict, dict] | None) -> bool:
    """Whether a workcell takes a new experiment (its worker is not busy with a plan the
    manager lost track of)."""
    if snapshot is None or not snapshot[0]["worker_environment_exists"]:
        return False
    status = snapshot[0]
    if status["manager_state"] == "idle":
        return status.get("worker_environment_state") == "idle"
    return status["manager_state"] in ("executing_queue", "starting_queue")


class _Progress:
    """What the loop needs to know after every experiment, kept up to date in memory: reading
    the whole campaign back after each experiment would make long campaigns ever slower."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.experiments = 0
        self.best_error = math.inf
        self.first_hit: int | None = None  # 1-based, as users count

    def restore(self, rows: list[dict[str, Any]]) -> None:
        self.experiments = sum(r["status"] != "rejected" for r in rows)
        for r in rows:
            if r["status"] == "done" and r["observables"]:
                self.observe(r["index"], r["observables"], r["conditions"])

    def observe(
        self, index: int, observables: Mapping[str, Any], conditions: Mapping[str, Any]
    ) -> None:
        if self.target.shape_ok(observables, conditions):  # best of the shape asked for
            self.best_error = min(self.best_error, self.target.error(observables))
        if self.target.hit(observables, conditions):
            self.first_hit = min(self.first_hit or index + 1, index + 1)

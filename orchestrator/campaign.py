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
"""

from __future__ import annotations

import json
import math
import signal
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
from devices import Lab, build_lab
from devices.config import ConfigError
from devices.world import twin_of
from orchestrator.config import MAX_BUDGET, LoadedCampaign, loaded_from_stored
from orchestrator.observe import MeasurementRejected, observables_from_documents
from orchestrator.plans import PLANS
from orchestrator.safety import SafetyWatch
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


class SafetyAbort(Exception):
    """A safety condition did not clear in time (or arose where the plan could not wait): the
    run was aborted; the experiment fails with this reason and the campaign pauses."""


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
    hits = [r for r in done if target.hit(r["observables"])]
    best_row = min(done, key=lambda r: target.error(r["observables"]), default=None)
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
        experiments=len(rows),
        reached_target=bool(hits),
        first_hit_experiment=hits[0]["index"] + 1 if hits else None,
        best=best,
        reason=campaign["status_reason"],
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
    ) -> None:
        loaded.check_code()
        self.db = db
        self.loaded = loaded
        self.config = loaded.config
        self.on_progress = on_progress
        # everything that can refuse the campaign happens before its row is written
        self.lab: Lab = build_lab(loaded.lab)
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
                loaded.config.target.model_dump(mode="json", exclude_none=True),
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

    @classmethod
    def resume(
        cls,
        db: Database,
        campaign_id: int,
        budget: int | None = None,
        outcome_model: str | None = None,
        **kwargs: Any,
    ) -> CampaignRunner:
        """Continue a stored campaign with the config and lab it was started with.

        ``budget`` extends (or sets) the campaign's budget, also of a completed campaign, which
        then runs on to that many experiments even if it had reached its target.
        ``outcome_model`` names the user code to simulate with: a stored config's is never
        imported (see :func:`orchestrator.config.loaded_from_stored`).

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
        loaded = loaded_from_stored(stored, campaign["name"], outcome_model)
        loaded.check_code()
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
        self.safety = SafetyWatch(self.lab, self.loaded.lab.safety)
        self.safety.install(self.RE)
        try:
            if self.lease is not None:
                return self._drive()
            with self.claim():
                return self._drive()
        finally:
            self.safety.close()
            self.safety = None

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
        db, cfg, cid = self.db, self.config, self.campaign_id
        self._safety_stop = None
        todo = self._restore()
        db.set_campaign_status(cid, "running")
        progress = self._progress
        try:
            while True:
                for experiment in todo:
                    if self.lease is not None and self.lease.lost.is_set():
                        raise LeaseHeld(
                            f"campaign {cid}: another process took over its lease; stopping"
                        )
                    reason = self._run_experiment_retrying(experiment)
                    if self._safety_stop is not None:
                        db.set_campaign_status(
                            cid,
                            "paused",
                            f"{self._safety_stop}; make the lab safe, then "
                            f"`qdlab campaign resume {cid}`",
                        )
                        return summarize(db, cid, self.loaded)
                    if self._consecutive_failures >= self.max_consecutive_failures:
                        db.set_campaign_status(
                            cid,
                            "paused",
                            f"{self.max_consecutive_failures} experiments failed in a row (last: "
                            f"{reason}); fix the lab, then `qdlab campaign resume {cid}`",
                        )
                        return summarize(db, cid, self.loaded)
                if cfg.stop_on_target and progress.first_hit is not None:
                    db.set_campaign_status(
                        cid, "completed", f"target reached at experiment {progress.first_hit}"
                    )
                    return summarize(db, cid, self.loaded)
                if progress.experiments >= cfg.budget:
                    db.set_campaign_status(cid, "completed", f"budget of {cfg.budget} spent")
                    return summarize(db, cid, self.loaded)
                todo = self._propose(
                    min(cfg.batch_size, cfg.budget - progress.experiments), progress.experiments
                )
        except (KeyboardInterrupt, CampaignInterrupted):
            db.set_campaign_status(
                cid, "paused", f"interrupted by the user; `qdlab campaign resume {cid}` continues"
            )
            raise CampaignInterrupted(f"campaign {cid} paused") from None

    def _restore(self) -> list[dict[str, Any]]:
        """Rebuild the planner from the stored history; return experiments still to run."""
        rows = self.db.experiments(self.campaign_id)
        batches: dict[int, list[dict[str, Any]]] = {}
        for r in rows:
            batches.setdefault(int(r["provenance"].get("batch", r["index"])), []).append(r)
        observations = []
        for r in rows:
            if r["status"] == "done" and r["observables"]:
                observations.append(Observation(r["conditions"], r["observables"]))
            elif r["status"] == "failed":
                observations.append(
                    Observation(r["conditions"], failed=True, reason=r["failure_reason"])
                )
        self._progress.restore(rows)
        self._catch_up_lab(rows)
        if self.config.planner.options.get("warm_start"):
            self.planner.tell(self._warm_start())
        self.planner.restore(
            [[r["conditions"] for r in b] for _, b in sorted(batches.items())],
            observations,
            [r["provenance"] for r in rows],
        )
        return [r for r in rows if r["status"] in ("proposed", "running")]

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
        if not (self._lab_is_fresh and finished) or self.lab.world is None:
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
        space = self.loaded.space
        out = []
        for r in self.db.all_observations(self.config.route):
            if r["campaign_id"] == self.campaign_id or r["status"] != "done":
                continue
            c = r["conditions"]
            if space.contains(c):
                out.append(
                    Observation({n: c[n] for n in space.order}, r["observables"], warm_start=True)
                )
        return out

    def _stored_run(self, experiment_id: int) -> str | None:
        """The last successful, complete run of an experiment, if one is stored."""
        runs = [
            r
            for r in self.db.runs(experiment_id=experiment_id)
            if r["complete"] and r["exit_status"] == "success"
        ]
        return runs[-1]["uid"] if runs else None

    def _propose(self, n: int, first_index: int) -> list[dict[str, Any]]:
        proposals = self.planner.ask(n)
        batch = first_index
        todo = []
        for i, p in enumerate(proposals):
            index = first_index + i
            eid = self.db.add_experiment(
                self.campaign_id,
                index,
                p.conditions,
                planner_name=p.planner_name,
                planner_version=p.planner_version,
                seed=p.seed,
                acquisition_value=p.acquisition_value,
                predicted_mean=p.predicted_mean,
                predicted_std=p.predicted_std,
                provenance={**p.provenance, "batch": batch},
            )
            todo.append({"id": eid, "index": index, "conditions": dict(p.conditions)})
        self._progress.experiments = max(self._progress.experiments, first_index + len(todo))
        return todo

    def _run_experiment_retrying(self, experiment: dict[str, Any]) -> str | None:
        """Run one experiment; ride out a database outage (see :func:`wait_for_database`) by
        running the experiment again once the database is back."""
        while True:
            try:
                return self._run_experiment(experiment)
            except DBAPIError as exc:
                if not is_disconnect(exc, self.db):
                    raise
                wait_for_database(
                    self.db,
                    exc,
                    self.reconnect_window_s,
                    f"campaign {self.campaign_id} stopped; `qdlab campaign resume "
                    f"{self.campaign_id}` continues once the database is back",
                )
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
        if self.safety is not None:
            self.safety.install(engine)
        return engine

    def _on_sigint(self) -> None:
        self._pause_requested = True

    def _run_experiment(self, experiment: dict[str, Any]) -> str | None:
        """Run one experiment; return its failure reason (None if it succeeded)."""
        db, cid, eid, index = self.db, self.campaign_id, experiment["id"], experiment["index"]
        conditions = experiment["conditions"]
        plan = PLANS[self.config.route]
        self._lab_is_fresh = False
        md = {
            "campaign_id": cid,
            "campaign_name": self.config.name,
            "experiment_id": eid,
            "experiment_index": index,
            "target": self.config.target.model_dump(mode="json", exclude_none=True),
        }
        uid = self._stored_run(eid)  # killed after its run was stored: finish, don't repeat
        try:
            if uid is None:
                db.set_experiment_status(eid, "running")
                self.lab.reseed(self.config.seed, index)
                uid = self._run_plan(plan(self.lab, conditions, md=md), eid)
                if uid is None:
                    db.set_experiment_status(eid, "proposed", "interrupted; runs again on resume")
                    raise CampaignInterrupted
            observables = observables_from_documents(db.run_documents(uid))
        except KeyboardInterrupt:
            db.set_experiment_status(eid, "proposed", "interrupted; runs again on resume")
            raise
        except SafetyAbort as exc:
            reason = str(exc)
            db.set_experiment_status(eid, "failed", reason)
            self.planner.tell([Observation(conditions, failed=True, reason=reason)])
            self._safety_stop = reason
            self._report()
            return reason
        except (MeasurementRejected, FailedStatus, RuntimeError, TimeoutError, ValueError) as exc:
            reason = _failure_reason(exc)
            db.set_experiment_status(eid, "failed", reason)
            self.planner.tell([Observation(conditions, failed=True, reason=reason)])
            self._consecutive_failures += 1
            self._report()
            if self._pause_requested:
                raise CampaignInterrupted from None
            return reason
        db.add_observation(eid, observables, run_uid=uid)  # marks it done, atomically
        self.planner.tell([Observation(conditions, observables)])
        self._progress.observe(index, observables)
        self._consecutive_failures = 0
        self._report()
        if self._pause_requested:
            raise CampaignInterrupted
        return None

    def _run_plan(self, plan: Any, experiment_id: int) -> str | None:
        """Run one synthesis; on Ctrl-C return the run if its measurement is stored (the
        RunEngine paused at the checkpoint after it), else abort the run and return None."""
        try:
            uids = self.RE(plan)  # a Ctrl-C after the plan's last checkpoint sets the flag
            return uids[-1] if isinstance(uids, tuple | list) else uids
        except RunEngineInterrupted:
            safety = self.safety
            if safety is not None and safety.abort_reason is not None:
                reason, safety.abort_reason = safety.abort_reason, None
                self.RE.abort(reason=reason)
                raise SafetyAbort(reason) from None
            if safety is not None and self.RE.state == "idle" and safety.tripped():
                # suspended where the plan holds no checkpoint: bluesky has aborted the run
                raise SafetyAbort(
                    f"safety abort: {'; '.join(safety.tripped())} while the synthesis could "
                    "not wait; run aborted"
                ) from None
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


class _Progress:
    """What the loop needs to know after every experiment, kept up to date in memory: reading
    the whole campaign back after each experiment would make long campaigns ever slower."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.experiments = 0
        self.best_error = math.inf
        self.first_hit: int | None = None  # 1-based, as users count

    def restore(self, rows: list[dict[str, Any]]) -> None:
        self.experiments = len(rows)
        for r in rows:
            if r["status"] == "done" and r["observables"]:
                self.observe(r["index"], r["observables"])

    def observe(self, index: int, observables: Mapping[str, Any]) -> None:
        self.best_error = min(self.best_error, self.target.error(observables))
        if self.target.hit(observables):
            self.first_hit = min(self.first_hit or index + 1, index + 1)

"""Experiments run on workcells: RE Managers (bluesky-queueserver), each experiment a queue
item, found again by its experiment id (see ``docs/workcells.md``)."""

from __future__ import annotations

import contextlib
import os
import re
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from db import Database
from db.lease import CampaignLease
from db.records import Experiment, ExperimentStatus
from orchestrator.execution.executor import (
    Failed,
    Faulted,
    Finished,
    GivenBack,
    Outcome,
    Started,
    stored_run,
)
from orchestrator.execution.safety import SAFETY_ABORT
from orchestrator.execution.workcell import PLAN_OF_ROUTE, ItemState, Workcell, WorkcellError

__all__ = ["QueueExecutor", "connect_workcells"]

Snapshot = tuple[dict[str, Any], dict[int, list[ItemState]]]
"""A workcell's manager status, and where each of the campaign's experiments is on it."""

MISSING_POLLS = 3
"""Polls in a row an experiment's queue item must be missing before it counts as lost."""


class QueueExecutor:
    """The :class:`~orchestrator.execution.executor.Executor` of a campaign on workcells: every
    workcell kept busy with up to ``1 + queue_ahead`` of the campaign's experiments, each a
    queue item carrying the campaign's uid and the experiment's id in its metadata.

    Parameters
    ----------
    db
        The campaign database (the workcells write the runs there; this reads them back).
    workcells
        Connected clients (:func:`connect_workcells`).
    campaign_uid
        The campaign's unique id: ids repeat across databases, and a queue may outlive one.
    route, seed
        Which plan runs an experiment; the seed a simulated workcell reseeds its twin by.
    run_md
        The start metadata of an experiment's run (which campaign and experiment it is).
    queue_ahead
        Experiments queued on a workcell behind the one it runs.
    requeue_on_worker_death
        An experiment whose worker died mid-plan runs again (else it fails).
    """

    dispatched = ExperimentStatus.QUEUED

    def __init__(
        self,
        db: Database,
        workcells: Sequence[Workcell],
        campaign_uid: str,
        route: str,
        seed: int | None,
        run_md: Callable[[Experiment], Mapping[str, Any]],
        queue_ahead: int = 0,
        requeue_on_worker_death: bool = True,
        plan_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        self.db, self.workcells, self.campaign_uid = db, list(workcells), campaign_uid
        self.plan_kwargs = dict(plan_kwargs or {})
        self.route, self.seed, self._run_md = route, seed, run_md
        self.depth = 1 + queue_ahead
        self.requeue = requeue_on_worker_death
        self._snapshots: dict[str, Snapshot] = {}  # of the workcells that answered
        self._unseen: dict[int, int] = {}  # experiment -> polls in a row its item was missing
        self._stalled: set[str] = set()  # workcells whose queue holds ours but stands still
        self._silent: dict[str, tuple[float, str]] = {}  # workcell -> (since, why), unanswered

    def prepare(self, finished: Sequence[Experiment], lease: CampaignLease | None) -> None:
        """Nothing to prepare: each workcell's lab keeps its own state, and nothing reaches a
        queue but through a dispatch the lease's fence allowed."""

    # -- following ------------------------------------------------------------------------
    def poll(self, in_flight: Sequence[Experiment]) -> list[Outcome]:
        """Read every workcell once, then follow each experiment in flight to where its queue
        item is; one on a workcell that does not answer stays where it is."""
        self._snapshots = {}
        for w in self.workcells:
            snapshot = _snapshot(w, self.campaign_uid)
            if isinstance(snapshot, str):
                since = self._silent.get(w.name, (time.monotonic(), ""))[0]
                self._silent[w.name] = (since, snapshot)
            else:
                self._silent.pop(w.name, None)
                self._snapshots[w.name] = snapshot
        self._stalled.clear()
        outcomes: list[Outcome] = []
        for r in in_flight:
            workcell = self._workcell(r.workcell)
            snapshot = self._snapshots.get(workcell.name)
            if snapshot is not None:
                outcomes.extend(self._follow(r, workcell, snapshot))
        return outcomes

    def _follow(
        self, experiment: Experiment, workcell: Workcell, snapshot: Snapshot
    ) -> list[Outcome]:
        """What became of a queued or running experiment, from its queue items."""
        status, items = snapshot
        eid = experiment.id
        states = items.get(eid, [])
        if not states:  # the queue lost it (a Redis restart), or it was never added
            return self._follow_lost(experiment, workcell, status)
        last = states[-1]
        if last.where == "finished" and self._requeued(last):
            # the server puts it back at the front in the step that records its death, but a
            # snapshot can read the queue before that step and the history after: only a copy
            # missing poll after poll was lost (given back then, it would otherwise run twice)
            return [GivenBack(eid, last.reason(workcell.name))] if self._missing(eid) else []
        self._unseen.pop(eid, None)
        if last.where == "running":
            running = experiment.status == ExperimentStatus.RUNNING
            return [] if running else [Started(eid, workcell.name)]
        ended = [s for s in states if s.where == "finished"]
        if last.where == "queued":
            # put back by the queue server: after its worker died, or an operator aborted it
            if ended and ended[-1].attempt == last.attempt and not self._requeued(ended[-1]):
                workcell.remove(last.item_uid)  # don't rerun it
                return [self._failed_item(workcell, eid, ended[-1])]
            self._stalled.add(workcell.name)  # a stopped queue, or put back: started after
            return []
        if last.exit_status == "unknown":  # a restarted manager lost the plan's report
            recorded = self._recorded(eid, workcell, status)
            return [GivenBack(eid, last.reason(workcell.name))] if recorded is None else recorded
        if last.exit_status == "completed":
            uid = last.run_uids[-1] if last.run_uids else stored_run(self.db, eid)
            if uid is None:
                return [_failed_on(workcell, eid, "the plan stored no run")]
            return [Finished(eid, uid)]
        return [self._failed_item(workcell, eid, last)]

    def _requeued(self, item: ItemState) -> bool:
        """Whether the queue server's putting ``item`` back runs it again: its worker died
        under it, with ``requeue_on_worker_death``."""
        return item.worker_died and self.requeue

    def _failed_item(self, workcell: Workcell, eid: int, item: ItemState) -> Failed | Faulted:
        """An experiment whose queue item ended badly fails with the worker's safety abort,
        else its run's own stop reason when it has one (the queue server's message may only
        say the RunEngine was interrupted), else that message; an instrument that stopped
        answering under it is an instrument fault (it runs again, nothing learnt or spent)."""
        if item.instrument_fault:
            return Faulted(eid, item.reason(workcell.name))
        runs = [r for r in self.db.runs(experiment_id=eid) if r["complete"]]
        stop = runs[-1]["reason"] if runs and runs[-1]["exit_status"] != "success" else ""
        message = item.reason(workcell.name)
        if stop and not message.startswith(f"workcell {workcell.name}: {SAFETY_ABORT}"):
            message = stop  # the worker's safety abort says most; else the stop document
        return _failed_on(workcell, eid, message)

    def _follow_lost(
        self, experiment: Experiment, workcell: Workcell, status: Mapping[str, Any]
    ) -> list[Outcome]:
        """An experiment its workcell's queue does not know: the database says what became of
        it (:meth:`_recorded`); one that never started is queued again."""
        eid = experiment.id
        recorded = self._recorded(eid, workcell, status)
        if recorded is not None:
            return recorded
        if self._missing(eid):  # and it never started
            self.submit(experiment, workcell.name)  # still recorded as queued there
        return []

    def _missing(self, eid: int) -> bool:
        """Whether the experiment's queue item has now been missing for
        :data:`MISSING_POLLS` polls in a row (one poll can fall between two of the queue
        server's steps)."""
        self._unseen[eid] = self._unseen.get(eid, 0) + 1
        if self._unseen[eid] < MISSING_POLLS:
            return False
        self._unseen.pop(eid)
        return True

    def _recorded(
        self, eid: int, workcell: Workcell, status: Mapping[str, Any]
    ) -> list[Outcome] | None:
        """What the experiment's runs in the database say became of it when its queue lost
        track: a finished run is its outcome; a run still open waits while the worker is busy
        (it goes on without its queue record) and fails once the worker is idle; None if no
        run of it started."""
        runs = self.db.runs(experiment_id=eid)
        finished = [r for r in runs if r["complete"]]
        if finished:
            last = finished[-1]
            if last["exit_status"] == "success":
                return [Finished(eid, last["uid"])]
            return [_failed_on(workcell, eid, last["reason"] or f"run {last['exit_status']}")]
        if not runs:
            return None
        if status.get("worker_environment_state") == "executing_plan":
            return []
        why = "its run stopped unrecorded (the queue server lost track of it)"
        return [_failed_on(workcell, eid, why)]

    # -- dispatching ----------------------------------------------------------------------
    def slots(self, in_flight: Sequence[Experiment]) -> list[str | None]:
        """A place in a workcell's queue per free position, the emptiest workcells first; none
        on a workcell that does not answer or whose worker is busy with a plan its manager
        lost track of."""
        load = {w.name: 0 for w in self.workcells}
        for r in in_flight:
            load[r.workcell] = load.get(r.workcell, 0) + 1
        slots = sorted(
            (load[w.name] + k, i, w.name)
            for i, w in enumerate(self.workcells)
            if _ready(self._snapshots.get(w.name))
            for k in range(self.depth - load[w.name])
        )
        return [name for *_, name in slots]

    def submit(self, experiment: Experiment, where: str | None) -> None:
        """Add the experiment to workcell ``where``'s queue and start the queue."""
        md = {
            **self._run_md(experiment),
            "campaign_uid": self.campaign_uid,
            "seed": self.seed,  # a simulated workcell reseeds its twin by it
            "attempt": uuid.uuid4().hex,  # an item put back keeps it; one queued again does not
        }
        with contextlib.suppress(Exception):  # not added: found missing, and queued again
            self._workcell(where).submit(
                PLAN_OF_ROUTE[self.route], experiment.conditions, md, **self.plan_kwargs
            )

    def withdraw(self) -> list[int]:
        """Take the campaign's experiments waiting in the queues out of them."""
        taken = []
        for workcell in self.workcells:
            snapshot = self._snapshots.get(workcell.name)
            for eid, states in (snapshot[1] if snapshot else {}).items():
                if states[-1].where == "queued" and workcell.remove(states[-1].item_uid):
                    taken.append(eid)
        return taken

    def not_started(self, in_flight: Sequence[Experiment]) -> list[int]:
        """None: a queued item waits in its workcell's queue and is followed on resume."""
        return []

    def restart_stalled(self) -> None:
        """Start the queues the last poll found standing still with our experiments in them."""
        for name in sorted(self._stalled):
            snapshot = self._snapshots.get(name)
            if snapshot is not None:
                self._workcell(name).start(snapshot[0])
        self._stalled.clear()

    def out_of_reach(self, wait_s: float) -> str | None:
        """Why the campaign cannot go on once no workcell has answered for ``wait_s`` (one
        that answers keeps it going: the others' experiments wait there)."""
        now = time.monotonic()
        if not self.workcells or any(
            now - self._silent.get(w.name, (now, ""))[0] < wait_s for w in self.workcells
        ):
            return None
        return "; ".join(
            f"workcell {name} has not answered for {now - since:.0f} s ({why})"
            for name, (since, why) in sorted(self._silent.items())
        )

    def close(self) -> None:
        """Close the connections."""
        for workcell in self.workcells:
            workcell.close()

    def _workcell(self, name: str | None) -> Workcell:
        for w in self.workcells:
            if w.name == name:
                return w
        raise WorkcellError(
            f"an experiment is on workcell {name!r}, which the campaign's `workcells` no "
            "longer lists"
        )


def _failed_on(workcell: Workcell, eid: int, why: str) -> Failed:
    """A failure whose reason names its workcell; a safety abort there pauses the campaign
    (and is no failure in a row)."""
    prefix = f"workcell {workcell.name}: "
    reason = why if why.startswith(prefix) else prefix + why
    return Failed(eid, reason, safety=reason.startswith(prefix + SAFETY_ABORT))


def _snapshot(workcell: Workcell, campaign_uid: str) -> Snapshot | str:
    """(status, this campaign's items by experiment id) of a workcell; why not, if it does not
    answer (its experiments wait until it does)."""
    try:
        status = workcell.status()
        return status, workcell.items(campaign_uid, status)
    except Exception as exc:
        workcell.reconnect()
        return _why_silent(workcell, exc)


def _why_silent(workcell: Workcell, exc: Exception) -> str:
    """What a workcell's failed request says: its Redis is down (the manager answers but
    cannot read its queue), or its manager does not answer."""
    redis = re.search(r"connecting to ([\w.\-\[\]:]+?)\.? ", str(exc))
    if redis is not None:
        return f"its queue's Redis at {redis.group(1)} does not answer"
    if isinstance(exc, WorkcellError):
        return str(exc).removeprefix(f"workcell {workcell.name!r}: ")
    return f"{type(exc).__name__}: {str(exc)[:200]}"


def _ready(snapshot: Snapshot | None) -> bool:
    """Whether a workcell takes a new experiment (its worker is not busy with a plan the
    manager lost track of)."""
    if snapshot is None or not snapshot[0]["worker_environment_exists"]:
        return False
    status = snapshot[0]
    if status["manager_state"] == "idle":
        return status.get("worker_environment_state") == "idle"
    return status["manager_state"] in ("executing_queue", "starting_queue")


def _secret(field: str, env: str | None) -> str | None:
    """The value of environment variable ``env`` a workcell's spec names, if it names one."""
    if env is None:
        return None
    value = os.environ.get(env)
    if not value:
        raise WorkcellError(f"{field}: ${env} is not set")
    return value


def connect_workcells(
    specs: Sequence[Any], db: Database, user: str | None = None
) -> list[Workcell]:
    """Clients of a campaign's workcells, each answering; a name without an address is looked
    up among the workcells registered in the database; the items are submitted as ``user``.
    :class:`WorkcellError` names the first unknown or unreachable one."""
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
            key, zmq_key = (_secret(field, env) for env in (spec.api_key_env, spec.zmq_key_env))
            client = Workcell(
                spec.name, zmq=zmq, http=http, api_key=key, zmq_public_key=zmq_key, user=user
            )
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

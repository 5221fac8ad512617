"""The one RunEngine factory: what every RunEngine that runs a campaign's experiments has, in
process (:mod:`orchestrator.execution.local`) and in a workcell's worker
(:mod:`orchestrator.execution.workcell_env`).

- every document goes to the campaign database (:class:`db.DocumentWriter`) and, if asked, to
  a tiled catalog (:class:`db.tiled.TiledSink`);
- the lab's safety watch is installed (:class:`~orchestrator.execution.safety.SafetyWatch`), and a
  plan it aborted raises :class:`~orchestrator.execution.safety.SafetyAbort` with the reason (the
  queue server records a plan's exception as its item's message; an interruption alone would
  only say the RunEngine paused);
- in process, Ctrl-C pauses at the next checkpoint as bluesky does (within half a second: a
  plan still waiting then is interrupted), and is also told to the campaign, so it stops after
  the experiment.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Generator, Mapping
from functools import partial
from typing import Any

from bluesky import RunEngine
from bluesky.preprocessors import msg_mutator
from bluesky.utils import FailedStatus, Msg, RunEngineInterrupted, SigintHandler, TransitionError

from db import Database, DocumentWriter
from db.lease import CampaignLease
from db.tiled import TiledSink
from devices.base import InstrumentUnreachable
from orchestrator.execution.executor import cause
from orchestrator.execution.safety import SafetyAbort, SafetyWatch

__all__ = ["HARD_PAUSE_AFTER_S", "LabRunEngine", "new_run_engine"]

HARD_PAUSE_AFTER_S = 0.5
"""After a Ctrl-C, how long a plan may take to reach its next checkpoint before its wait is
interrupted."""


class _RecordingSigintHandler(SigintHandler):
    """bluesky's Ctrl-C handling (pause at the next checkpoint), plus a note to the campaign,
    and a pause within a second.

    bluesky passes the pause request to the RunEngine from a helper thread; a Ctrl-C in the
    last moments of a plan is dropped once the plan ends. Recording it here, in the signal
    handler itself, lets the campaign stop after the experiment instead of going on. A plan
    waiting on a long move (a heater ramping for minutes, a put that never completes) reaches
    no checkpoint: if the RunEngine still runs :data:`HARD_PAUSE_AFTER_S` after the Ctrl-C,
    the pause becomes bluesky's hard pause, which interrupts the wait (and stops the devices).
    """

    def __init__(self, engine: RunEngine, on_sigint: Callable[[], None]) -> None:
        super().__init__(engine)
        self._engine = engine
        self._on_sigint = on_sigint

    def _escalate(self) -> None:
        if self._engine.state == "running":
            with contextlib.suppress(TransitionError):
                self._engine.request_pause(defer=False)

    def __enter__(self) -> _RecordingSigintHandler:
        super().__enter__()
        pause_handler = signal.getsignal(signal.SIGINT)

        def handler(signum: int, frame: Any) -> None:
            self._on_sigint()
            pause_handler(signum, frame)
            timer = threading.Timer(HARD_PAUSE_AFTER_S, self._escalate)
            timer.daemon = True
            timer.start()

        signal.signal(signal.SIGINT, handler)
        return self


class LabRunEngine(RunEngine):
    """A RunEngine whose plan, aborted by its safety watch (or by bluesky, suspended where the
    plan could not wait), raises :class:`SafetyAbort` with the reason; an instrument that
    stopped answering inside a Status raises its :class:`~devices.base.InstrumentUnreachable` (what
    a workcell's agent reads in the queue item's traceback)."""

    safety: SafetyWatch | None = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().__call__(*args, **kwargs)
        except RunEngineInterrupted:
            watch = self.safety
            if watch is not None and self.state == "idle":
                if watch.abort_reason is not None:
                    raise SafetyAbort(watch.abort_reason) from None
                if watch.tripped():
                    raise SafetyAbort(watch.uncheckpointed_abort()) from None
            raise
        except FailedStatus as exc:
            if isinstance(cause(exc), InstrumentUnreachable):
                raise cause(exc) from None
            raise


def _nothing() -> None:
    pass


_ACTS = frozenset({"set", "trigger", "kickoff", "open_run", "stage"})
"""Messages that act on the lab (or start a record of it): each waits for the lease."""


def _leased(plan: Generator[Msg, Any, Any], lease: CampaignLease) -> Generator[Msg, Any, Any]:
    """``plan``, its every act preceded by a check of the lease (a driver frozen past it would
    otherwise move instruments another driver now owns)."""

    def check(msg: Msg) -> Msg:
        if msg.command in _ACTS:
            lease.ensure()
        return msg

    return (yield from msg_mutator(plan, check))


def new_run_engine(
    db: Database,
    *,
    md: Mapping[str, Any] | None = None,
    tiled: TiledSink | None = None,
    safety: SafetyWatch | None = None,
    sigint: bool = True,
    on_sigint: Callable[[], None] | None = None,
    lease: CampaignLease | None = None,
) -> LabRunEngine:
    """A RunEngine for a campaign's experiments (see the module docstring).

    Parameters
    ----------
    db
        Where every document is written.
    md
        ``RE.md`` (a workcell names itself here, so each run's start document says where it
        ran).
    tiled
        Also write every run there.
    safety
        The lab's safety watch, installed on this RunEngine (moved from an earlier one).
    sigint
        Ctrl-C pauses the plan at its next checkpoint, as bluesky's default; False for a
        worker's RunEngine (bluesky-queueserver runs it and handles signals itself).
    on_sigint
        Also called on Ctrl-C (the campaign notes that it should stop after the experiment).
    lease
        The campaign driver's lease: before a plan moves, triggers or opens anything the lease
        is confirmed (:meth:`db.lease.CampaignLease.ensure`), and once it is lost no document
        is written (another driver runs the experiment).
    """
    managers: list[Callable[[RunEngine], Any]] = []
    if sigint:
        managers.append(lambda engine: _RecordingSigintHandler(engine, on_sigint or _nothing))
    engine = LabRunEngine(dict(md or {}), context_managers=managers)
    writer = DocumentWriter(db)
    if lease is None:
        engine.subscribe(writer)
    else:
        engine.subscribe(lambda name, doc: None if lease.lost.is_set() else writer(name, doc))
        engine.preprocessors.append(partial(_leased, lease=lease))
    if tiled is not None:
        engine.subscribe(tiled)
    if safety is not None:
        safety.install(engine)
        engine.safety = safety
    return engine

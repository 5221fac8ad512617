"""Safety suspenders: the lab config's ``safety:`` section as bluesky suspenders.

:class:`SafetyWatch` reads the watched readings every ``poll_s`` on a thread (the interlock
``lab.safety.hood_open``, the reactor temperature, the flow-line pressure) and publishes them on
ophyd signals that bluesky suspenders watch: an open hood, a reactor above its ceiling or a line
above its pressure limit suspends the running plan (at once; it rewinds to the plan's last
checkpoint), and the plan resumes by itself when the condition clears. With
``RE.record_interruptions`` the run's ``interruptions`` stream records each suspension.

A suspension that has not cleared after ``abort_after_s`` becomes a safety abort: the watch
aborts the run, with the reason in its stop document and in :attr:`SafetyWatch.abort_reason`;
the RunEngine (:class:`orchestrator.execution.engine.LabRunEngine`) raises
:class:`SafetyAbort`, the experiment fails with that reason and the campaign pauses. A
suspension while a plan holds no checkpoint (between injection and quench nothing can wait)
aborts the run at once, as bluesky does.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Generator
from typing import Any

from bluesky import RunEngine
from bluesky.preprocessors import msg_mutator
from bluesky.suspenders import SuspendBoolHigh, SuspendCeil, SuspenderBase
from bluesky.utils import Msg
from ophyd import Signal

from devices import Lab
from devices.config import SafetyConfig

__all__ = ["SAFETY_ABORT", "SafetyAbort", "SafetyWatch"]

SAFETY_ABORT = "safety abort"
"""How the reason of every safety abort begins."""


class SafetyAbort(Exception):
    """A safety condition did not clear in time (or arose where the plan could not wait): the
    run was aborted; the experiment fails with this reason and the campaign pauses."""


class SafetyWatch:
    """Suspenders on a lab's safety readings (see the module docstring).

    >>> watch = SafetyWatch(lab, lab.config.safety)
    >>> watch.install(RE)  # also after replacing the RunEngine
    >>> watch.close()
    """

    def __init__(self, lab: Lab, config: SafetyConfig) -> None:
        self.config = config
        self.abort_reason: str | None = None
        """The reason of the watch's abort of the plan running now (None: none)."""
        self._readers: list[tuple[Signal, Callable[[], float]]] = []
        self.suspenders: list[SuspenderBase] = []
        self._messages: list[str] = []  # what each suspender says when it trips
        if config.interlock:
            self._watch(
                "hood_open",
                lab.safety.hood_open.get,
                "the fume-hood/door is open",
                lambda s, message: SuspendBoolHigh(s, tripped_message=message),
            )
        ceiling = config.reactor_ceiling_c
        for name, reactor in lab.reactors.items() if ceiling is not None else ():
            self._watch(
                f"{name}_temperature",
                lambda r=reactor: r.temperature.position,
                f"the {'reactor' if name == 'reactor' else f'reactor {name}'} is above its "
                f"{ceiling:g} °C ceiling",
                lambda s, message: SuspendCeil(
                    s,
                    ceiling,
                    resume_thresh=ceiling * (1 - config.resume_margin),
                    tripped_message=message,
                ),
            )
        if config.pressure_limit_kpa is not None and lab.flow is not None:
            limit = config.pressure_limit_kpa
            self._watch(
                "flow_pressure",
                lab.flow.pressure.get,
                f"the flow line is above {limit:g} kPa",
                lambda s, message: SuspendCeil(
                    s,
                    limit,
                    resume_thresh=limit * (1 - config.resume_margin),
                    tripped_message=message,
                ),
            )
        self._RE: RunEngine | None = None
        self._tripped_since: dict[int, float] = {}
        self._stop = threading.Event()
        self._poll_once()
        self._thread = threading.Thread(target=self._run, daemon=True, name="safety-watch")
        self._thread.start()

    def _watch(
        self,
        name: str,
        read: Callable[[], float],
        message: str,
        suspender: Callable[[Signal, str], SuspenderBase],
    ) -> None:
        signal = Signal(name=f"safety_watch_{name}", value=0.0)
        self._readers.append((signal, read))
        self.suspenders.append(suspender(signal, message))
        self._messages.append(message)

    def install(self, RE: RunEngine) -> None:
        """Install the suspenders on ``RE`` (from another RunEngine, if they were on one), and
        record suspensions in the documents."""
        self._uninstall()
        self._RE = RE
        RE.record_interruptions = True
        RE.preprocessors.append(self._explain_abort)
        for s in self.suspenders:
            RE.install_suspender(s)

    def _explain_abort(self, plan: Generator[Msg, Any, Any]) -> Generator[Msg, Any, Any]:
        """Put the abort's reason in the stop document of a run the watch aborted (bluesky's
        ``run_wrapper`` closes an aborted run without the reason given to ``RE.abort``)."""
        self.abort_reason = None  # a new plan: an earlier plan's abort does not explain it

        def explain(msg: Msg) -> Msg:
            if (
                msg.command == "close_run"
                and msg.kwargs.get("exit_status") == "abort"
                and not msg.kwargs.get("reason")
                and self.abort_reason
            ):
                return msg._replace(kwargs={**msg.kwargs, "reason": self.abort_reason})
            return msg

        return (yield from msg_mutator(plan, explain))

    def tripped(self) -> list[str]:
        """Why the plan is suspended now (empty when it is not)."""
        return [m for s, m in zip(self.suspenders, self._messages, strict=True) if s.tripped]

    def uncheckpointed_abort(self) -> str:
        """The reason of a run bluesky aborted itself: suspended where the plan holds no
        checkpoint (between injection and quench nothing can wait)."""
        return (
            f"{SAFETY_ABORT}: {'; '.join(self.tripped())} while the synthesis could not wait; "
            "run aborted"
        )

    def close(self) -> None:
        """Stop watching and take the suspenders off the RunEngine."""
        self._stop.set()
        self._thread.join(5)
        self._uninstall()

    def _uninstall(self) -> None:
        if self._RE is not None:
            for s in self.suspenders:
                self._RE.remove_suspender(s)
            self._RE.preprocessors.remove(self._explain_abort)
            self._RE = None

    def _poll_once(self) -> None:
        for signal, read in self._readers:
            try:
                value = float(read())
            except Exception:  # an unreadable reading suspends nothing; the plan will fail
                continue
            if value != signal.get():
                signal.put(value)

    def _run(self) -> None:
        while not self._stop.wait(self.config.poll_s):
            self._poll_once()
            self._check_abort()

    def _check_abort(self) -> None:
        now = time.monotonic()
        for i, (s, message) in enumerate(zip(self.suspenders, self._messages, strict=True)):
            if not s.tripped:
                self._tripped_since.pop(i, None)
                continue
            since = self._tripped_since.setdefault(i, now)
            RE = self._RE
            if now - since < self.config.abort_after_s or RE is None or self.abort_reason:
                continue
            if RE.state in ("running", "suspending"):
                reason = f"{SAFETY_ABORT}: {message} for more than {self.config.abort_after_s:g} s"
                self.abort_reason = reason
                try:
                    RE.abort(reason=reason)
                except Exception:  # it ended by itself meanwhile
                    self.abort_reason = None

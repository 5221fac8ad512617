"""The virtual clock of the simulated lab.

Reactions and instrument steps take seconds to minutes. On the virtual clock a step of
``duration`` seconds ends ``duration`` later in *virtual* time:

- ``mode="fast"``: as fast as the CPU allows. The Status of a step finishes at once and the clock
  jumps to the step's end, so documents carry the durations the lab would take. Steps are
  timed one after another; a plan that starts two moves together is charged their sum, an upper
  bound on the real time.
- ``mode="realtime"``: the Status finishes after ``duration / speed`` wall-clock seconds and the
  clock follows the wall clock (``speed`` > 1 runs a demo faster than life).

Timestamps start at the wall-clock time the clock was made, so documents read naturally.

:meth:`VirtualClock.watch` calls back every so many seconds of lab time in fast mode, at each
such instant a step passes through (the clock stops there for the callback), on the thread that
moves the clock: the RunEngine's. A monitored reading (a heater's readback in a ``monitor``
stream) samples the lab this way, so a heating trajectory is recorded in fast mode too. In
realtime mode a watch is not called: its callback would emit documents from a thread of its
own beside the RunEngine's, and the campaign's writers are driven from one thread (two
realtime campaign tests hung that way).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Literal

from ophyd.status import Status

__all__ = ["ClockMode", "ServerClock", "VirtualClock", "then"]

ClockMode = Literal["fast", "realtime"]
_MAX_SAMPLES_PER_STEP = 2000


class _Watch:
    """One :meth:`VirtualClock.watch`: its period, its callback and when it is next due."""

    def __init__(self, period_s: float, callback: Callable[[], None], next_at: float) -> None:
        self.period_s = period_s
        self.callback = callback
        self.next_at = next_at


class VirtualClock:
    """Simulated time for every device of one lab.

    Parameters
    ----------
    mode
        ``"fast"`` or ``"realtime"`` (see the module docstring).
    speed
        Real-time mode only: virtual seconds per wall-clock second.
    start
        Initial virtual time (epoch seconds); defaults to now.
    """

    def __init__(self, mode: ClockMode = "fast", speed: float = 1.0, start: float | None = None):
        if mode not in ("fast", "realtime"):
            raise ValueError(f"clock mode {mode!r} is not one of {{fast, realtime}}")
        if speed <= 0:
            raise ValueError(f"clock speed must be > 0, got {speed}")
        self.mode: ClockMode = mode
        self.speed = float(speed)
        self._lock = threading.Lock()
        self._start = time.time() if start is None else float(start)
        self._virtual = self._start
        self._wall0 = time.monotonic()
        self._virtual_at_wall0 = self._start  # realtime: now() = this + wall seconds * speed
        self._watches: dict[int, _Watch] = {}
        self._next_watch = 0

    def now(self) -> float:
        """Current virtual time, epoch seconds."""
        if self.mode == "realtime":
            return self._virtual_at_wall0 + (time.monotonic() - self._wall0) * self.speed
        with self._lock:
            return self._virtual

    @contextmanager
    def fast(self) -> Iterator[None]:
        """Run in fast mode inside the block; a realtime clock then goes on from the virtual
        time the block reached. A resumed campaign catches its simulated lab up this way."""
        mode = self.mode
        with self._lock:
            self._virtual = self.now() if mode == "realtime" else self._virtual
        self.mode = "fast"
        try:
            yield
        finally:
            with self._lock:
                self._virtual_at_wall0, self._wall0 = self._virtual, time.monotonic()
            self.mode = mode

    def elapsed(self) -> float:
        """Virtual seconds since the clock was made."""
        return self.now() - self._start

    def advance(self, seconds: float) -> float:
        """Fast mode: move the clock ``seconds`` forward and return the new time; each watch
        due on the way is called at its instant."""
        if seconds < 0:
            raise ValueError(f"cannot advance the clock by a negative {seconds} s")
        if self.mode == "realtime":
            return self.now()
        with self._lock:
            end = self._virtual + seconds
        while True:
            with self._lock:
                due = min(self._watches.values(), key=lambda w: w.next_at, default=None)
                if due is None or due.next_at > end:
                    self._virtual = max(self._virtual, end)
                    return self._virtual
                self._virtual = max(self._virtual, due.next_at)
                # a long wait is sampled at most MAX_SAMPLES_PER_STEP times per watch
                due.next_at += max(due.period_s, seconds / _MAX_SAMPLES_PER_STEP)
            due.callback()

    def watch(self, period_s: float, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback`` every ``period_s`` seconds of lab time from now on, as the clock
        advances in fast mode; returns the function that stops it (see the module
        docstring)."""
        if not period_s > 0:
            raise ValueError(f"a watch period must be > 0 s, got {period_s}")
        with self._lock:
            key = self._next_watch
            self._next_watch += 1
            self._watches[key] = _Watch(float(period_s), callback, self._virtual + period_s)

        def stop() -> None:
            with self._lock:
                self._watches.pop(key, None)

        return stop

    def run(
        self,
        duration: float,
        obj: object = None,
        action: Callable[[], None] | None = None,
        error: BaseException | None = None,
    ) -> Status:
        """A Status that completes ``duration`` virtual seconds from now.

        At completion ``action`` runs (it may raise, which fails the Status), then the Status
        finishes, or fails with ``error`` if one is given.
        """
        status = Status(obj=obj)

        def complete() -> None:
            try:
                if action is not None:
                    action()
            except Exception as exc:  # the device's own failure, reported through the Status
                status.set_exception(exc)
                return
            if error is not None:
                status.set_exception(error)
            else:
                status.set_finished()

        if self.mode == "fast":
            self.advance(duration)
            complete()
        else:
            timer = threading.Timer(duration / self.speed, complete)
            timer.daemon = True
            timer.start()
        return status

    def sleep(self, seconds: float) -> None:
        """Block for ``seconds`` of virtual time (instant in fast mode)."""
        if self.mode == "fast":
            self.advance(seconds)
        else:
            time.sleep(seconds / self.speed)


class ServerClock(VirtualClock):
    """The lab's time is a server's (an IOC's, a SiLA 2 server's), so that documents carry
    lab-time durations: ``lab_time`` at start, set right by :meth:`sync` whenever the server
    says what time it is (a finished request), and in between running at ``lab_speed`` lab
    seconds per wall second (0: the server's time moves only with requests). Waiting is the
    server's: ``wait(seconds)`` returns the Status of a request that finishes that much lab
    time later."""

    def __init__(
        self, lab_time: float, lab_speed: float, wait: Callable[[float], Status], timeout: float
    ) -> None:
        self._sync_lock = threading.Lock()
        self._lab_time, self._synced_at = float(lab_time), time.monotonic()
        self.lab_speed = float(lab_speed)
        self._wait, self._timeout = wait, timeout
        super().__init__("realtime", start=self._lab_time)

    def sync(self, lab_time: float) -> None:
        """The server says it is ``lab_time`` now."""
        with self._sync_lock:
            self._lab_time, self._synced_at = lab_time, time.monotonic()

    def now(self) -> float:
        with self._sync_lock:
            return self._lab_time + (time.monotonic() - self._synced_at) * self.lab_speed

    def run(
        self,
        duration: float,
        obj: object = None,
        action: Callable[[], None] | None = None,
        error: BaseException | None = None,
    ) -> Status:
        def finish() -> None:
            if action is not None:
                action()
            if error is not None:
                raise error

        return then(self._wait(float(duration)), finish, obj)

    def sleep(self, seconds: float) -> None:
        self.run(seconds).wait(self._timeout)

    def fast(self) -> Any:
        raise RuntimeError("this lab runs on its server's clock; it has no fast mode")


def then(status: Status, action: Callable[[], None], obj: object = None) -> Status:
    """A Status that finishes once ``status`` has and ``action`` has run; it fails with
    ``status``'s exception (``action`` not run) or with what ``action`` raised."""
    out = Status(obj=obj)

    def finish(done: Status) -> None:
        error = done.exception()
        if error is None:
            try:
                action()
            except Exception as exc:  # reported through the Status, as ophyd does
                error = exc
        if error is None:
            out.set_finished()
        else:
            out.set_exception(error)

    status.add_callback(finish)
    return out

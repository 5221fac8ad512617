"""Building blocks shared by QDLab's ophyd devices.

- :class:`ComputedSignal`: a read-only signal whose value the device computes when it is read
  (from its backend), timestamped by the lab's clock.
- :class:`LimitedSignal`: a settable signal with safe limits; an out-of-range ``set``/``put``
  raises :class:`ophyd.utils.LimitError` before the value changes, and ``check_value`` lets
  ``bluesky.simulators.check_limits`` see the limits.
- :class:`Step`: what a simulated backend works out when asked to do something: how long it
  takes, what happens at the end, or the error it will end in. :func:`run_step` turns it into a
  Status on the clock.
- :func:`then`: a Status that finishes after another one and an action (a device records
  what its backend did before the plan sees the move finish).
- :class:`Reading`: a signal the device sets from what its backend measured; it and
  :class:`ComputedSignal` describe their ``source`` as the backend says (``PV:<name>`` over
  EPICS; ophyd's ``SIM:<name>`` otherwise).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ophyd import Signal
from ophyd.signal import SignalRO
from ophyd.status import Status
from ophyd.utils import LimitError

from devices.clock import VirtualClock, then
from models.errors import UserError

__all__ = [
    "INSTRUMENT_UNREACHABLE",
    "ComputedSignal",
    "InstrumentUnreachable",
    "LimitError",
    "LimitedSignal",
    "Reading",
    "Selector",
    "Step",
    "check_range",
    "run_step",
    "then",
]


class InstrumentUnreachable(UserError, RuntimeError):
    """An instrument's server (an IOC, a SiLA 2 server) did not answer: the instrument, not the
    chemistry, so the experiment runs again (exit code 4 when it stops a command)."""

    exit_code = 4


INSTRUMENT_UNREACHABLE = frozenset({"InstrumentUnreachable", "PVUnreachable", "SilaUnreachable"})
"""The names of :class:`InstrumentUnreachable` and its kinds (what a traceback read back from a
queue server ends with)."""


def _clock_of(signal: Signal) -> VirtualClock | None:
    obj: Any = signal
    while obj is not None:
        clock = getattr(obj, "clock", None)
        if isinstance(clock, VirtualClock):
            return clock
        obj = obj.parent
    return None


class _Sourced:
    """``source``: where the value comes from, for the event descriptor (None: ophyd's)."""

    source: str | None = None

    def describe(self) -> dict[str, dict[str, Any]]:
        desc = super().describe()  # type: ignore[misc]
        if self.source is not None:
            desc[self.name]["source"] = self.source  # type: ignore[attr-defined]
        return desc


class Reading(_Sourced, Signal):
    """A value the device sets from what its backend measured (see :class:`_Sourced`)."""


class ComputedSignal(_Sourced, SignalRO):
    """Read-only signal computed by the parent's method ``getter`` on every read.

    With ``monitor_period_s`` set, a value subscription (a bluesky ``monitor``) samples it
    every that many seconds of lab time (:meth:`VirtualClock.watch`) for as long as it lasts,
    and is called when the value has moved by ``monitor_deadband`` or more since it was last
    called (as an EPICS record's MDEL: a held temperature posts nothing new).
    """

    def __init__(self, *args: Any, getter: str, units: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._getter = getter
        self._units = units
        self.monitor_period_s: float | None = None
        self.monitor_deadband = 0.0
        self._stop_watch: Callable[[], None] | None = None
        self._posted: Any = None

    def subscribe(self, callback: Callable[..., Any], event_type: str | None = None,
                  run: bool = True) -> int:  # fmt: skip
        cid = super().subscribe(callback, event_type=event_type, run=run)
        clock = _clock_of(self)
        value_sub = (event_type or self._default_sub) == self.SUB_VALUE
        if value_sub and self.monitor_period_s and clock is not None and self._stop_watch is None:
            self._posted = None
            self._stop_watch = clock.watch(self.monitor_period_s, self._sample)
            self._sample()  # the monitor starts with the value now
        return cid

    def unsubscribe(self, cid: int) -> None:
        super().unsubscribe(cid)
        if self._stop_watch is not None and not self._callbacks[self.SUB_VALUE]:
            self._stop_watch()
            self._stop_watch = None

    def _sample(self) -> None:
        value = self.get()
        if self._posted is not None and abs(value - self._posted) < self.monitor_deadband:
            return
        self._posted = value
        self._run_subs(sub_type=self.SUB_VALUE, value=value, timestamp=self.timestamp)

    def get(self, **kwargs: Any) -> Any:
        value = getattr(self.parent, self._getter)()
        self._readback = value
        return value

    @property
    def timestamp(self) -> float:
        clock = _clock_of(self)
        return clock.now() if clock is not None else super().timestamp

    def describe(self) -> dict[str, dict[str, Any]]:
        desc = super().describe()
        if self._units:
            desc[self.name]["units"] = self._units
        return desc


class Selector(Signal):
    """A switch among named ``positions`` (a selector valve, a fibre switch): a value outside
    them is refused before a Status exists; ``put`` turns the switch through the root device's
    backend method ``backend_method``."""

    positions: tuple[str, ...] = ()
    backend_method = ""

    def check_value(self, value: Any) -> None:
        if value not in self.positions:
            raise LimitError(f"{self.name} = {value!r} is not one of {list(self.positions)}")

    def set(self, value: Any, **kwargs: Any) -> Any:
        self.check_value(value)  # refused here, before a Status exists
        return super().set(value, **kwargs)

    def put(self, value: Any, **kwargs: Any) -> None:
        self.check_value(value)
        backend = getattr(self.root, "backend", None)
        if backend is not None:
            getattr(backend, self.backend_method)(value)
        super().put(value, **kwargs)


def check_range(name: str, value: Any, low: float, high: float, units: str = "") -> float:
    """``value`` as a float if ``low <= value <= high``, else :class:`LimitError` naming both."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise LimitError(
            f"{name} must be a number in [{low:g}, {high:g}] {units}, got {value!r}"
        ) from None
    if not (low <= v <= high):
        raise LimitError(
            f"{name} = {v:g} is outside its safe limits [{low:g}, {high:g}] {units}".rstrip()
        )
    return v


class LimitedSignal(Signal):
    """A settable signal with inclusive safe limits (see module docstring)."""

    def __init__(
        self,
        *args: Any,
        limits: tuple[float, float] = (float("-inf"), float("inf")),
        units: str = "",
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self._limits = limits
        self._units = units

    @property
    def limits(self) -> tuple[float, float]:
        """Inclusive (low, high)."""
        return self._limits

    def set_limits(self, low: float, high: float) -> None:
        """Set the limits (from the lab config, when the device is built)."""
        self._limits = (float(low), float(high))

    def check_value(self, value: Any) -> None:
        check_range(self.name, value, *self._limits, self._units)

    def set(self, value: Any, **kwargs: Any) -> Any:
        """Check the limits here, before ophyd's threaded put: a bad value raises at once."""
        self.check_value(value)
        return super().set(value, **kwargs)

    def put(self, value: Any, **kwargs: Any) -> None:
        self.check_value(value)
        clock = _clock_of(self)
        if clock is not None and "timestamp" not in kwargs:
            kwargs["timestamp"] = clock.now()
        super().put(float(value), **kwargs)

    def describe(self) -> dict[str, dict[str, Any]]:
        desc = super().describe()
        desc[self.name].update(lower_ctrl_limit=self._limits[0], upper_ctrl_limit=self._limits[1])
        if self._units:
            desc[self.name]["units"] = self._units
        return desc


@dataclass(frozen=True)
class Step:
    """A backend's answer to a request: ``duration`` s, then ``action``, or fail with ``error``."""

    duration: float
    action: Callable[[], None] | None = None
    error: BaseException | None = None


def run_step(clock: VirtualClock, step: Step, obj: object) -> Status:
    """A Status on ``clock`` that completes (or fails) as ``step`` says."""
    return clock.run(step.duration, obj=obj, action=step.action, error=step.error)

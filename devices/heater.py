"""Temperature control and waiting: the :class:`Heater` device and the :class:`Timer` device.

A heater declares what it is (readback, setpoint, ramp, tolerance, safe limits) and checks a
setpoint against its limits before anything changes; its backend (:class:`HeaterBackend`) drives
the vessel. The simulated backend is :class:`devices.simulated.SimHeater`.
"""

from __future__ import annotations

from typing import Any, Protocol

from ophyd import Component as Cpt
from ophyd import Device, Signal
from ophyd.status import Status

from devices.base import ComputedSignal, LimitedSignal, Reading, Step, check_range, run_step
from devices.clock import VirtualClock

__all__ = ["Heater", "HeaterBackend", "Timer"]


class HeaterBackend(Protocol):
    """What a :class:`Heater` needs from whatever heats the vessel."""

    def temperature(self) -> float:
        """Vessel temperature now, °C."""

    def start(self, setpoint_c: float, ramp_c_per_min: float, tolerance_c: float) -> Status:
        """Go to ``setpoint_c``; the Status finishes once settled within ``tolerance_c`` and
        fails with the reason (interlock, timeout) otherwise."""

    def hold(self) -> None:
        """Hold the present temperature (an aborted plan)."""


class Heater(Device):
    """A temperature controller: ``set(T)`` finishes when the readback settles at T.

    Readings: ``<name>`` (readback, hinted) and ``<name>_setpoint``. Configuration: ramp rate
    (°C/min, limited) and settle tolerance (°C). Limits come from the lab config and are
    checked before anything changes.
    """

    readback = Cpt(ComputedSignal, getter="_temperature", units="degC", kind="hinted")
    setpoint = Cpt(Reading, value=25.0, kind="normal")
    ramp_rate = Cpt(LimitedSignal, value=20.0, units="degC/min", kind="config")
    tolerance = Cpt(Signal, value=1.0, kind="config")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.readback.name = self.name
        self.clock: VirtualClock | None = None
        self.backend: HeaterBackend | None = None
        self._limits = (20.0, 220.0)
        self._move: Status | None = None

    def attach(
        self,
        backend: HeaterBackend,
        clock: VirtualClock,
        limits: tuple[float, float],
        max_ramp_c_per_min: float,
        ramp_c_per_min: float,
        tolerance_c: float,
        monitor_period_s: float | None = None,
        monitor_deadband: float = 0.0,
    ) -> None:
        """Connect the backend and the config's limits (done by build_lab); a ``monitor`` of
        the readback samples it every ``monitor_period_s`` seconds and records what moved by
        ``monitor_deadband`` °C."""
        self.backend = backend
        self.readback.monitor_period_s = monitor_period_s
        self.readback.monitor_deadband = monitor_deadband
        self.clock = clock
        self._limits = limits
        self.ramp_rate.set_limits(0.1, max_ramp_c_per_min)
        self.ramp_rate.put(ramp_c_per_min)
        self.tolerance.put(tolerance_c)
        self.setpoint.put(self._temperature(), timestamp=clock.now())

    def _temperature(self) -> float:
        return round(float(self.backend.temperature()), 3)

    @property
    def position(self) -> float:
        """Current temperature, °C."""
        return self._temperature()

    @property
    def limits(self) -> tuple[float, float]:
        """Safe setpoint range (°C) from the lab config."""
        return self._limits

    def check_value(self, value: Any) -> None:
        """Raise :class:`~ophyd.utils.LimitError` if ``value`` is outside the safe range."""
        check_range(f"{self.name} setpoint", value, *self._limits, "°C")

    def set(self, value: float) -> Status:
        """Heat or cool to ``value`` °C; the Status finishes once settled within tolerance."""
        self.check_value(value)
        value = float(value)
        status = self.backend.start(value, self.ramp_rate.get(), self.tolerance.get())
        self.setpoint.put(value, timestamp=self.clock.now())
        self._move = status
        return status

    def stop(self, *, success: bool = False) -> None:
        """Hold the present temperature when a plan is aborted (``success=False``) or paused
        mid-move (bluesky stops what it moved with ``success=True``, and a ramp still under way
        then must not go on unwatched); a heater that has settled keeps its setpoint."""
        moving = self._move is not None and not self._move.done
        if (moving or not success) and self.backend is not None:
            self.backend.hold()

    def within_tolerance(self) -> bool:
        """Whether the readback is within tolerance of the setpoint now."""
        return abs(self.backend.temperature() - self.setpoint.get()) <= self.tolerance.get()


class Timer(Device):
    """Waiting on the lab's clock: ``set(seconds)`` finishes that many (virtual) seconds later.

    Plans wait with ``bps.mv(lab.timer, 30)`` rather than ``bps.sleep``, so simulated campaigns
    run on the virtual clock; on real hardware the clock is real time.
    """

    elapsed = Cpt(ComputedSignal, getter="_elapsed", units="s", kind="hinted")

    max_wait_s = 24 * 3600.0

    def __init__(self, *args: Any, clock: VirtualClock, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.clock = clock
        self.elapsed.name = self.name

    def _elapsed(self) -> float:
        return round(self.clock.elapsed(), 6)

    @property
    def position(self) -> float:
        """Seconds since the lab's clock started."""
        return self._elapsed()

    @property
    def limits(self) -> tuple[float, float]:
        return (0.0, self.max_wait_s)

    def check_value(self, value: Any) -> None:
        check_range(f"{self.name} wait", value, 0.0, self.max_wait_s, "s")

    def set(self, value: float) -> Status:
        """Wait ``value`` seconds of lab time."""
        self.check_value(value)
        return run_step(self.clock, Step(float(value)), self)

"""Temperature control and waiting: the :class:`Heater` device and the :class:`Timer` device.

Thermal response of the simulated heater
----------------------------------------
After a new setpoint :math:`T_{sp}` at :math:`t_0`, the controller ramps its internal target at
``ramp`` °C/min for :math:`t_r = |T_{sp} - T_0| / \\mathrm{ramp}`; the vessel follows with a
first-order lag :math:`\\tau`:

.. math::  T(t) = T_0 + k\\,[t - \\tau(1 - e^{-t/\\tau})], \\quad t < t_r

and after the ramp relaxes exponentially onto :math:`T_{sp}`, plus a small overshoot bump
:math:`a\\,\\Delta T\\, (s/\\tau)\\, e^{1 - s/\\tau}` (:math:`s = t - t_r`). ``set()`` finishes when
the readback has settled within ``tolerance`` for good.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from ophyd import Component as Cpt
from ophyd import Device, Signal
from ophyd.status import Status

from devices.base import ComputedSignal, LimitedSignal, Step, check_range, run_step
from devices.clock import VirtualClock

__all__ = ["Heater", "ThermalModel", "Timer"]


class ThermalModel:
    """Simulated vessel temperature on the virtual clock (see the module docstring)."""

    def __init__(
        self, clock: VirtualClock, ambient_c: float, time_constant_s: float, overshoot: float
    ) -> None:
        self.clock = clock
        self.tau = time_constant_s
        self.overshoot = overshoot
        self._t0 = clock.now()
        self._start_c = ambient_c
        self._end_c = ambient_c
        self._ramp_c_per_s = 1.0
        self._bump = 0.0
        self._setpoint = ambient_c
        self._stalled = False
        self._grid = np.array([self._t0])
        self._temps = np.array([ambient_c])

    def temperature(self, t: float | np.ndarray | None = None) -> float | np.ndarray:
        """Vessel temperature (°C) at virtual time ``t`` (default: now)."""
        t = self.clock.now() if t is None else t
        dt = np.maximum(np.asarray(t, dtype=float) - self._t0, 0.0)
        delta = self._end_c - self._start_c
        t_ramp = abs(delta) / self._ramp_c_per_s
        k = np.sign(delta) * self._ramp_c_per_s
        tau = self.tau

        def lagged_ramp(s: np.ndarray) -> np.ndarray:
            return self._start_c + k * (s - tau * (1.0 - np.exp(-s / tau)))

        after = dt - t_ramp
        at_ramp_end = lagged_ramp(np.asarray(t_ramp))
        settling = self._end_c - (self._end_c - at_ramp_end) * np.exp(-np.maximum(after, 0) / tau)
        bump = (
            self._bump
            * delta
            * (np.maximum(after, 0) / tau)
            * np.exp(1 - np.maximum(after, 0) / tau)
        )
        value = np.where(dt < t_ramp, lagged_ramp(dt), settling + bump)
        return float(value) if np.ndim(value) == 0 else value

    def start(
        self,
        setpoint_c: float,
        ramp_c_per_min: float,
        overshoot_scale: float = 1.0,
        reach_fraction: float = 1.0,
    ) -> float:
        """Begin a move towards ``setpoint_c``; return the extreme temperature it will pass.

        ``reach_fraction`` < 1 models a heater that stalls short of the setpoint (a fault): it
        never settles.
        """
        now = self.clock.now()
        start = self.temperature(now)
        self._t0, self._start_c = now, start
        self._end_c = start + reach_fraction * (setpoint_c - start)
        self._ramp_c_per_s = ramp_c_per_min / 60.0
        self._bump = self.overshoot * overshoot_scale
        self._setpoint = setpoint_c
        self._stalled = reach_fraction < 1.0
        t_ramp = abs(self._end_c - start) / self._ramp_c_per_s
        self._grid = now + np.concatenate(
            [np.linspace(0.0, t_ramp, 200), t_ramp + np.linspace(0.0, 40.0 * self.tau, 4001)]
        )
        self._temps = self.temperature(self._grid)
        return float(self._temps.max() if setpoint_c >= start else self._temps.min())

    def settle_time(self, tolerance_c: float) -> float:
        """Seconds from the last start until within ``tolerance_c`` of the setpoint for good."""
        if self._stalled:
            return float("inf")
        outside = np.abs(self._temps - self._setpoint) > tolerance_c
        if not outside.any():
            return 0.0
        last = int(np.nonzero(outside)[0].max())
        if last + 1 >= len(self._grid):
            return float("inf")
        return float(self._grid[last + 1] - self._grid[0])


class Heater(Device):
    """A temperature controller: ``set(T)`` finishes when the readback settles at T.

    Readings: ``<name>`` (readback, hinted) and ``<name>_setpoint``. Configuration: ramp rate
    (°C/min, limited) and settle tolerance (°C). Limits come from the lab config and are
    checked before anything changes.
    """

    readback = Cpt(ComputedSignal, getter="_temperature", units="degC", kind="hinted")
    setpoint = Cpt(Signal, value=25.0, kind="normal")
    ramp_rate = Cpt(LimitedSignal, value=20.0, units="degC/min", kind="config")
    tolerance = Cpt(Signal, value=1.0, kind="config")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.readback.name = self.name
        self.clock: VirtualClock | None = None
        self._model: ThermalModel | None = None
        self._limits = (20.0, 220.0)
        self._timeout_s = 1800.0
        self._faults: Any = None

    def attach(
        self,
        model: ThermalModel,
        limits: tuple[float, float],
        max_ramp_c_per_min: float,
        ramp_c_per_min: float,
        tolerance_c: float,
        timeout_s: float,
        faults: Any,
    ) -> None:
        """Connect the simulated thermal model and the config's limits (done by build_lab)."""
        self.clock = model.clock
        self._model = model
        self._limits = limits
        self._timeout_s = timeout_s
        self._faults = faults
        self.ramp_rate.set_limits(0.1, max_ramp_c_per_min)
        self.ramp_rate.put(ramp_c_per_min)
        self.tolerance.put(tolerance_c)
        self.setpoint.put(model.temperature(), timestamp=model.clock.now())

    def _temperature(self) -> float:
        return round(float(self._model.temperature()), 3)

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
        stall = self._faults("heater_timeout")
        overshoot = 12.0 if self._faults("heater_overshoot") else 1.0
        hottest = self._model.start(
            value, self.ramp_rate.get(), overshoot, reach_fraction=0.6 if stall else 1.0
        )
        self.setpoint.put(value, timestamp=self.clock.now())
        # settle inside 90 % of the tolerance, as controllers do, so "settled" stays in tolerance
        settle = self._model.settle_time(0.9 * self.tolerance.get())
        if hottest > self._limits[1]:
            self._model.start(self._model.temperature(), self.ramp_rate.get())  # interlock: hold
            error: BaseException | None = RuntimeError(
                f"{self.name}: over-temperature interlock tripped at {hottest:.1f} °C "
                f"(limit {self._limits[1]:g} °C) while heating to {value:g} °C"
            )
            return run_step(self.clock, Step(0.0, error=error), self)
        if settle > self._timeout_s:
            error = TimeoutError(
                f"{self.name} did not settle at {value:g} °C within {self._timeout_s:g} s "
                f"(reads {self._model.temperature(self.clock.now() + self._timeout_s):.1f} °C)"
            )
            return run_step(self.clock, Step(self._timeout_s, error=error), self)
        return run_step(self.clock, Step(settle), self)

    def stop(self, *, success: bool = False) -> None:
        """Hold the present temperature when a plan is aborted (``success=False``); after a
        plan that ended well the heater keeps its setpoint."""
        if not success and self._model is not None:
            self._model.start(self._model.temperature(), self.ramp_rate.get())

    def within_tolerance(self) -> bool:
        """Whether the readback is within tolerance of the setpoint now."""
        return abs(float(self._model.temperature()) - self.setpoint.get()) <= self.tolerance.get()


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

"""A hotplate for QDLab's reactor: it heats at a fixed rate, and is at its setpoint when it
says so. A QDLab backend plugin (``qdlab.backends`` entry point ``hotplate``)."""

from __future__ import annotations

from typing import Any

__all__ = ["Hotplate", "HotplateBackends"]


class Hotplate:
    """QDLab's ``HeaterBackend`` (devices/heater.py) for a hotplate that moves its plate
    towards the setpoint at ``rate_c_per_min`` (whatever ramp is asked for, if slower) and
    holds it there.

    Parameters
    ----------
    clock
        The lab's clock (``now()``; ``run(seconds)`` returns a Status finished that much lab
        time later).
    rate_c_per_min
        How fast the plate heats or cools.
    ambient_c
        Where the plate starts.
    """

    def __init__(self, clock: Any, rate_c_per_min: float, ambient_c: float) -> None:
        self.clock, self.rate = clock, rate_c_per_min
        self._from = self._to = ambient_c
        self._since = clock.now()
        self._speed = rate_c_per_min

    def temperature(self) -> float:
        moved = (self.clock.now() - self._since) / 60.0 * self._speed
        if self._to >= self._from:
            return min(self._from + moved, self._to)
        return max(self._from - moved, self._to)

    def start(self, setpoint_c: float, ramp_c_per_min: float, tolerance_c: float) -> Any:
        self._from, self._to = self.temperature(), setpoint_c
        self._since, self._speed = self.clock.now(), min(ramp_c_per_min, self.rate)
        return self.clock.run(abs(setpoint_c - self._from) / self._speed * 60.0)

    def hold(self) -> None:
        self._from = self._to = self.temperature()
        self._since = self.clock.now()


class HotplateBackends:
    """What ``reactor.backend: hotplate`` makes: the reactor's heater is a :class:`Hotplate`
    (its flask, robot and spectrometer stay the lab's). ``backend_options``:
    ``rate_c_per_min`` (default 60)."""

    def __init__(self, config: Any, clock: Any, options: dict[str, Any]) -> None:
        unknown = set(options) - {"rate_c_per_min"}
        if unknown:
            raise ValueError(f"unknown backend_options {sorted(unknown)}; allowed: rate_c_per_min")
        self.rate = float(options.get("rate_c_per_min", 60.0))
        if not self.rate > 0:
            raise ValueError(f"rate_c_per_min must be > 0, got {self.rate:g}")
        self.config, self.clock = config, clock

    def heater(self, name: str, config: Any, key: str) -> Hotplate:
        return Hotplate(self.clock, self.rate, self.config.reactor.ambient_c)

"""The hot-injection reactor: heated flask, stirrer, injection syringe, ice-bath quench.

The lab protocol it automates: the robot loads the lead halide (PbBr2 + ZnBr2, or PbI2 + ZnI2)
and ligand into the flask; the heater brings it to temperature; ``injector.source`` selects what
the syringe draws (Cs- or FA-oleate); ``injector.set(volume)`` injects it (refused unless the
temperature is within tolerance of the setpoint); ``quench.set(t)`` waits until ``t`` seconds
after injection and quenches, which fixes the nanocrystals. The backend
(:class:`ReactorBackend`) does it; the simulated one (:class:`devices.simulated.SimReactor`)
works out the conditions from the flask's real contents and the clock, and asks the physics.
"""

from __future__ import annotations

import math
from typing import Any, Protocol

from ophyd import Component as Cpt
from ophyd import Device, Signal
from ophyd.status import Status

from devices.base import ComputedSignal, LimitedSignal, Selector, check_range, then
from devices.clock import VirtualClock
from devices.heater import Heater

__all__ = ["HotInjectionReactor", "Injector", "Quench", "ReactorBackend"]


class ReactorBackend(Protocol):
    """What a :class:`HotInjectionReactor` needs from whatever runs the flask (its heater has a
    backend of its own)."""

    def inject(self, volume_ul: float, temperature_c: float) -> Status:
        """Inject from the selected source; ``temperature_c`` is what the flask reads. Raises
        before anything moves if the flask cannot take it."""

    def select_source(self, source: str) -> None:
        """Turn the injection syringe's selector valve to the reservoir ``source``."""

    def quench(self, growth_time_s: float) -> Status:
        """Quench ``growth_time_s`` after injection (at once if that moment has passed)."""

    def growth_time(self) -> float:
        """Seconds since injection (frozen at the quench); NaN before injection."""


class _SourceValve(Selector):
    """Selector valve in front of the injection syringe: one of the reactor's cation sources
    (set by :meth:`HotInjectionReactor.attach`)."""

    backend_method = "select_source"


class Injector(Device):
    """Injection syringe: ``source`` selects the reservoir it draws from; ``set(volume_ul)``
    injects, refused unless at temperature."""

    volume = Cpt(LimitedSignal, value=0.0, units="uL", kind="normal")
    source = Cpt(_SourceValve, value="", kind="config")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.volume.name = self.name

    @property
    def limits(self) -> tuple[float, float]:
        return self.volume.limits

    def check_value(self, value: Any) -> None:
        self.volume.check_value(value)

    def set(self, value: float) -> Status:
        return self.parent._inject(float(value))


class Quench(Device):
    """Ice-bath quench: ``set(t)`` quenches ``t`` seconds after injection."""

    growth_time = Cpt(Signal, value=math.nan, kind="normal")

    max_growth_s = 3600.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.growth_time.name = self.name

    @property
    def limits(self) -> tuple[float, float]:
        return (0.0, self.max_growth_s)

    def check_value(self, value: Any) -> None:
        check_range(f"{self.name} growth time", value, 0.0, self.max_growth_s, "s")

    def set(self, value: float) -> Status:
        self.check_value(value)
        return self.parent._quench(float(value))


class HotInjectionReactor(Device):
    """Hot-injection reactor (see the module docstring).

    Components: ``temperature`` (a :class:`~devices.heater.Heater`, hinted), ``stir_rpm``,
    ``injector``, ``quench``, and the readings ``growth_time``, ``injection_temperature`` (what
    the flask read at injection) and ``state``.
    """

    temperature = Cpt(Heater, kind="hinted")
    stir_rpm = Cpt(LimitedSignal, value=0.0, units="rpm", kind="config")
    injector = Cpt(Injector, kind="normal")
    quench = Cpt(Quench, kind="normal")
    growth_time = Cpt(ComputedSignal, getter="_growth_time", units="s", kind="normal")
    injection_temperature = Cpt(Signal, value=math.nan, kind="normal")
    state = Cpt(Signal, value="idle", kind="normal")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.clock: VirtualClock | None = None
        self.backend: ReactorBackend | None = None

    def attach(
        self,
        backend: ReactorBackend,
        clock: VirtualClock,
        stir_limits: tuple[float, float],
        injection_limits: tuple[float, float],
        injection_sources: tuple[str, ...],
    ) -> None:
        """Connect the backend and the config's limits and injection sources (the first is
        selected; done by build_lab)."""
        self.backend = backend
        self.clock = clock
        self.stir_rpm.set_limits(*stir_limits)
        self.injector.volume.set_limits(*injection_limits)
        self.injector.source.positions = injection_sources
        self.injector.source.put(injection_sources[0])

    def _growth_time(self) -> float:
        return self.backend.growth_time()

    def _set_state(self, value: str) -> None:
        self.state.put(value, timestamp=self.clock.now())

    def _inject(self, volume_ul: float) -> Status:
        self.injector.check_value(volume_ul)
        heater = self.temperature
        if not heater.within_tolerance():
            raise RuntimeError(
                f"injection refused: {heater.name} reads {heater.position:.1f} °C, setpoint "
                f"{heater.setpoint.get():g} ± {heater.tolerance.get():g} °C; wait for it to settle"
            )
        temperature_c = heater.position
        status = self.backend.inject(volume_ul, temperature_c)

        def record() -> None:
            now = self.clock.now()
            self.injector.volume.put(volume_ul, timestamp=now)
            self.injection_temperature.put(temperature_c, timestamp=now)
            self._set_state("growing")

        return then(status, record, self.injector)

    def _quench(self, growth_time_s: float) -> Status:
        status = self.backend.quench(growth_time_s)

        def record() -> None:
            self.quench.growth_time.put(self.backend.growth_time(), timestamp=self.clock.now())
            self._set_state("quenched")

        return then(status, record, self.quench)

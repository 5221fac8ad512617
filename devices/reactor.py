"""The hot-injection reactor: heated flask, stirrer, Cs-oleate injection syringe, ice-bath quench.

The lab protocol it automates: the robot loads PbBr2 (+ZnBr2) and ligand into the flask; the
heater brings it to temperature; ``injector.set(volume)`` injects Cs-oleate (refused unless the
temperature is within tolerance of the setpoint); ``quench.set(t)`` waits until ``t`` seconds
after injection and quenches, which fixes the nanocrystals. The simulated backend works out the
conditions from the flask's real contents and the clock, and asks the physics.
"""

from __future__ import annotations

import math
from typing import Any

from ophyd import Component as Cpt
from ophyd import Device, Signal
from ophyd.status import Status

from devices.base import ComputedSignal, LimitedSignal, Step, check_range, run_step
from devices.clock import VirtualClock
from devices.heater import Heater
from devices.world import SimulatedWorld, WorldError

__all__ = ["HotInjectionReactor", "Injector", "Quench", "SimReactorBackend"]

_INJECTION_S = 1.0
_QUENCH_S = 5.0


class SimReactorBackend:
    """The simulated flask: reaction bookkeeping on the :class:`SimulatedWorld`."""

    def __init__(self, world: SimulatedWorld, flask: str, cs_source: str) -> None:
        self.world = world
        self.clock = world.clock
        self.flask = flask
        self.cs_source = cs_source
        self.injected_at: float | None = None
        self.injection_temperature_c: float | None = None
        self.quenched_at: float | None = None

    def growth_time(self) -> float:
        """Seconds since injection (frozen at the quench); NaN before injection."""
        if self.injected_at is None:
            return math.nan
        end = self.quenched_at if self.quenched_at is not None else self.clock.now()
        return end - self.injected_at

    def inject(self, volume_ul: float, temperature_c: float) -> Step:
        """Inject Cs-oleate into the loaded, hot flask."""
        flask = self.world.location(self.flask).liquid
        if flask.pb_umol <= 0:
            return Step(0.0, error=WorldError(f"{self.flask} holds no Pb precursor: load it first"))
        if flask.sample is not None or (self.injected_at is not None and self.quenched_at is None):
            return Step(0.0, error=WorldError(f"{self.flask} has already reacted: empty it first"))
        self.world.check_transfer(self.cs_source, self.flask, volume_ul)

        def act() -> None:
            self.world.transfer(self.cs_source, self.flask, volume_ul)
            self.injected_at = self.clock.now()
            self.injection_temperature_c = temperature_c
            self.quenched_at = None

        return Step(_INJECTION_S, action=act)

    def quench(self, growth_time_s: float) -> Step:
        """Quench ``growth_time_s`` after injection (at once if that moment has passed)."""
        if self.injected_at is None or self.quenched_at is not None:
            return Step(0.0, error=WorldError("nothing to quench: inject first"))
        wait = max(0.0, self.injected_at + growth_time_s - self.clock.now())

        def act() -> None:
            self.quenched_at = self.clock.now() - _QUENCH_S
            flask = self.world.location(self.flask).liquid
            ligands = flask.ligand_ul or {"oa_olam": 1.0}
            conditions = {
                "br_pb_ratio": flask.br_umol / flask.pb_umol,
                "temperature_c": self.injection_temperature_c,
                "ligand": max(ligands, key=ligands.get),
                "time_s": self.growth_time(),
            }
            flask.sample = self.world.make_sample("hot_injection", conditions)

        return Step(wait + _QUENCH_S, action=act)


class Injector(Device):
    """Cs-oleate syringe: ``set(volume_ul)`` injects; refused unless at temperature."""

    volume = Cpt(LimitedSignal, value=0.0, units="uL", kind="normal")

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
        self.backend: SimReactorBackend | None = None

    def attach(
        self,
        backend: SimReactorBackend,
        stir_limits: tuple[float, float],
        injection_limits: tuple[float, float],
    ) -> None:
        """Connect the backend and the config's limits (done by build_lab)."""
        self.backend = backend
        self.clock = backend.clock
        self.stir_rpm.set_limits(*stir_limits)
        self.injector.volume.set_limits(*injection_limits)

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
        step = self.backend.inject(volume_ul, heater.position)
        if step.error is not None:
            raise step.error
        action = step.action

        def act() -> None:
            action()
            now = self.clock.now()
            self.injector.volume.put(volume_ul, timestamp=now)
            self.injection_temperature.put(self.backend.injection_temperature_c, timestamp=now)
            self._set_state("growing")

        return run_step(self.clock, Step(step.duration, act), self.injector)

    def _quench(self, growth_time_s: float) -> Status:
        step = self.backend.quench(growth_time_s)
        if step.error is not None:
            raise step.error
        action = step.action

        def act() -> None:
            action()
            self.quench.growth_time.put(self.backend.growth_time(), timestamp=self.clock.now())
            self._set_state("quenched")

        return run_step(self.clock, Step(step.duration, act), self.quench)

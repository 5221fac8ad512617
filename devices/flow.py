"""The flow reactor: syringe pumps feeding a heated coil, with the optical cell in line.

Each pump's flow rate is a Movable with the config's limits; the coil is a
:class:`~devices.heater.Heater`; ``ligand`` is the selector valve of the ligand stream. The
residence time is the coil volume over the total flow; the static mixer's speed (``mixer``,
rpm) sets how well the two streams mix before the coil. The outlet's product follows the
conditions with the coil's washout: after a change, the fraction of new product is
:math:`1 - e^{-t/\\tau_{res}}`, so a plan waits a few residence times for steady state.
Pressure rises with flow; a clogged coil (a fault) drives it past the limit, which stops the pumps.
"""

from __future__ import annotations

import math
from typing import Any

from ophyd import Component as Cpt
from ophyd import Device, Signal
from ophyd.status import Status
from ophyd.utils import LimitError

from devices.base import ComputedSignal, LimitedSignal, Step, run_step
from devices.clock import VirtualClock
from devices.config import FlowConfig, PumpConfig
from devices.heater import Heater
from devices.world import Sample, SimulatedWorld
from models.parameters import LIGANDS

__all__ = ["FlowReactor", "SyringePump", "flow_reactor_class"]

_PUMP_RESPONSE_S = 2.0


class SyringePump(Device):
    """A syringe pump: ``set(rate)`` in µL/min; reads rate, remaining volume and stall state."""

    flow_rate = Cpt(ComputedSignal, getter="_rate", units="uL/min", kind="hinted")
    setpoint = Cpt(LimitedSignal, value=0.0, units="uL/min", kind="normal")
    remaining_ul = Cpt(ComputedSignal, getter="_remaining", units="uL", kind="normal")
    stalled = Cpt(Signal, value=0, kind="normal")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.flow_rate.name = self.name
        self.clock: VirtualClock | None = None
        self.config: PumpConfig | None = None
        self._volume_at_change = 0.0
        self._changed_at = 0.0
        self._rate_now = 0.0

    def attach(self, clock: VirtualClock, config: PumpConfig) -> None:
        """Connect the clock and the pump's config (done by build_lab)."""
        self.clock = clock
        self.config = config
        self._volume_at_change = config.syringe_ul if config.volume_ul is None else config.volume_ul
        self._changed_at = clock.now()
        self.setpoint.set_limits(0.0, config.max_flow_ul_min)

    def _remaining(self) -> float:
        used = self._rate_now * (self.clock.now() - self._changed_at) / 60.0
        return max(self._volume_at_change - used, 0.0)

    def _rate(self) -> float:
        return self._rate_now if self._remaining() > 0 and not self.stalled.get() else 0.0

    @property
    def position(self) -> float:
        return self._rate()

    @property
    def limits(self) -> tuple[float, float]:
        return self.setpoint.limits

    def check_value(self, value: Any) -> None:
        self.setpoint.check_value(value)

    def _apply(self, rate: float) -> None:
        self._volume_at_change = self._remaining()
        self._changed_at = self.clock.now()
        self._rate_now = rate

    def set(self, value: float) -> Status:
        """Change the flow rate; fails if the pump stalls or the line over-pressures."""
        self.check_value(value)
        return self.parent._set_pump(self, float(value))

    def stop(self, *, success: bool = False) -> None:
        """Halt the pump when a plan is aborted; bluesky's end-of-plan ``stop(success=True)``
        leaves a pump running at its set rate, as a flow experiment needs."""
        if not success and self.clock is not None:
            self._apply(0.0)

    def refill(self, volume_ul: float | None = None) -> None:
        """A fresh syringe (an operator action); clears a stall."""
        self._volume_at_change = self.config.syringe_ul if volume_ul is None else volume_ul
        self._changed_at = self.clock.now()
        self.stalled.put(0)


class _LigandValve(Signal):
    """Selector valve for the ligand stream: one of the known ligand systems."""

    def check_value(self, value: Any) -> None:
        if value not in LIGANDS:
            raise LimitError(f"{self.name} = {value!r} is not one of {sorted(LIGANDS)}")

    def set(self, value: Any, **kwargs: Any) -> Any:
        self.check_value(value)
        return super().set(value, **kwargs)

    def put(self, value: Any, **kwargs: Any) -> None:
        self.check_value(value)
        super().put(value, **kwargs)


class FlowReactor(Device):
    """Flow reactor (see the module docstring). Pumps are components named in the lab config;
    build the class for a config with :func:`flow_reactor_class`."""

    coil = Cpt(Heater, kind="hinted")
    ligand = Cpt(_LigandValve, value="oa_olam", kind="normal")
    mixer = Cpt(LimitedSignal, value=0.0, units="rpm", kind="config")
    residence_time = Cpt(ComputedSignal, getter="_residence", units="s", kind="hinted")
    total_flow = Cpt(ComputedSignal, getter="_total", units="uL/min", kind="normal")
    pressure = Cpt(ComputedSignal, getter="_pressure", units="kPa", kind="normal")

    pump_names: tuple[str, ...] = ()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.clock: VirtualClock | None = None
        self.world: SimulatedWorld | None = None
        self.config: FlowConfig | None = None
        self._clog = 1.0
        self._steady_key: tuple | None = None
        self._steady: Sample | None = None
        self._previous: Sample | None = None
        self._changed_at = 0.0

    @property
    def pumps(self) -> dict[str, SyringePump]:
        """The pumps by name."""
        return {n: getattr(self, n) for n in self.pump_names}

    def attach(self, world: SimulatedWorld, config: FlowConfig) -> None:
        """Connect the simulated world and the config (done by build_lab)."""
        self.world = world
        self.clock = world.clock
        self.config = config
        for name, pump in self.pumps.items():
            pump.attach(world.clock, config.pumps[name])
        self.mixer.set_limits(0.0, config.max_mixer_rpm)
        self.mixer.put(config.mixer_rpm)
        world.flow_outlet = self.outlet_sample

    def _total(self) -> float:
        return sum(p._rate() for p in self.pumps.values())

    def _residence(self) -> float:
        total = self._total()
        return self.config.coil_volume_ul / total * 60.0 if total > 0 else math.nan

    def _pressure(self) -> float:
        return self._total() * self.config.kpa_per_ul_min * self._clog

    def _set_pump(self, pump: SyringePump, rate: float) -> Status:
        if self.world.fault("pump_stall") and rate > 0:
            pump._apply(0.0)
            pump.stalled.put(1, timestamp=self.clock.now())
            error = RuntimeError(f"{pump.name} stalled (motor current limit); refill or service it")
            return run_step(self.clock, Step(_PUMP_RESPONSE_S, error=error), pump)
        if rate > 0 and self.world.fault("coil_clog"):
            self._clog = 50.0
        pump._apply(rate)
        pump.setpoint.put(rate, timestamp=self.clock.now())
        if rate > 0:
            self.world.cell_source = "flow"
        if self._pressure() > self.config.max_pressure_kpa:
            pressure = self._pressure()
            for p in self.pumps.values():
                p._apply(0.0)
            limit = self.config.max_pressure_kpa
            error = RuntimeError(
                f"{self.name}: pressure {pressure:.0f} kPa above the {limit:g} kPa limit, "
                "pumps stopped (clogged coil?)"
            )
            return run_step(self.clock, Step(_PUMP_RESPONSE_S, error=error), pump)
        return run_step(self.clock, Step(_PUMP_RESPONSE_S), pump)

    def unclog(self) -> None:
        """Flush the coil (an operator action)."""
        self._clog = 1.0

    def conditions(self) -> dict[str, Any] | None:
        """The flow-route conditions the pumps and coil run now (None when nothing flows)."""
        fluxes = {"pb": 0.0, "br": 0.0, "cs": 0.0}
        cs_rate = other_rate = 0.0
        for pump in self.pumps.values():
            rate, src = pump._rate(), pump.config.source
            fluxes["pb"] += rate * src.pb_mm
            fluxes["br"] += rate * src.br_mm
            fluxes["cs"] += rate * src.cs_mm
            if src.cs_mm > 0:
                cs_rate += rate
            else:
                other_rate += rate
        if fluxes["pb"] <= 0 or cs_rate <= 0:
            return None
        return {
            "br_pb_ratio": fluxes["br"] / fluxes["pb"],
            "temperature_c": round(self.coil.position, 1),
            "ligand": self.ligand.get(),
            "residence_time_s": self._residence(),
            "flow_ratio": cs_rate / other_rate if other_rate > 0 else math.inf,
            "mixer_rpm": float(self.mixer.get()),
        }

    def outlet_sample(self, now: float) -> Sample | None:
        """What flows through the cell at ``now``: washout mix of the old and new product."""
        conditions = self.conditions()
        if conditions is None:
            return self._steady
        key = tuple(
            sorted((k, round(v, 3) if isinstance(v, float) else v) for k, v in conditions.items())
        )
        if key != self._steady_key:
            self._previous = self._current_mix(now) if self._steady is not None else None
            self._steady_key = key
            self._steady = self.world.make_sample("flow", conditions)
            self._changed_at = now
        return self._current_mix(now)

    def _current_mix(self, now: float) -> Sample:
        tau = self._residence()
        new = 1.0 - math.exp(-(now - self._changed_at) / tau) if math.isfinite(tau) else 1.0
        if self._previous is None or new >= 1.0 - 1e-9:
            return self._steady
        parts = self._steady.diluted(new).components + self._previous.diluted(1 - new).components
        return Sample(parts, "flow", self._steady.conditions, self._steady.made_at)


def flow_reactor_class(pump_names: list[str] | tuple[str, ...]) -> type[FlowReactor]:
    """A :class:`FlowReactor` subclass with one :class:`SyringePump` component per name."""
    attrs: dict[str, Any] = {n: Cpt(SyringePump, kind="normal") for n in pump_names}
    attrs["pump_names"] = tuple(pump_names)
    return type(f"FlowReactor_{'_'.join(pump_names)}", (FlowReactor,), attrs)

"""The flow reactor: syringe pumps feeding a heated coil, with the optical cell in line.

Each pump's flow rate is a Movable with the config's limits; the coil is a
:class:`~devices.heater.Heater`; ``ligand`` is the selector valve of the ligand stream. The
residence time is the coil volume over the total flow; the static mixer's speed (``mixer``,
rpm) sets how well the two streams mix before the coil. The outlet's product follows the
conditions with the coil's washout: after a change, the fraction of new product is
:math:`1 - e^{-t/\\tau_{res}}`, so a plan waits a few residence times for steady state.
Pressure rises with flow; a clogged coil (a fault) drives it past the limit, which stops the pumps.
The backend (:class:`FlowBackend`) runs the pumps and valve; the simulated one is
:class:`devices.simulated.SimFlow`.
"""

from __future__ import annotations

import math
from typing import Any, Protocol

from ophyd import Component as Cpt
from ophyd import Device, Signal
from ophyd.status import Status
from ophyd.utils import LimitError

from devices.base import ComputedSignal, LimitedSignal, then
from devices.clock import VirtualClock
from devices.config import FlowConfig
from devices.heater import Heater
from models.parameters import LIGANDS

__all__ = ["FlowBackend", "FlowReactor", "SyringePump", "flow_reactor_class", "residence_time_s"]


def residence_time_s(coil_volume_ul: float, total_flow_ul_min: float) -> float:
    """Time a volume element spends in the coil, s (NaN when nothing flows)."""
    return coil_volume_ul / total_flow_ul_min * 60.0 if total_flow_ul_min > 0 else math.nan


class FlowBackend(Protocol):
    """What a :class:`FlowReactor` needs from whatever runs the pumps and valves (the coil is a
    :class:`~devices.heater.Heater` with a backend of its own)."""

    def set_rate(self, pump: str, rate_ul_min: float) -> Status:
        """Run ``pump`` at ``rate_ul_min``; the Status fails with the reason if it stalls or
        the line over-pressures (which stops every pump)."""

    def rate(self, pump: str) -> float:
        """What ``pump`` delivers now, µL/min."""

    def remaining(self, pump: str) -> float:
        """Liquid left in ``pump``'s syringe, µL."""

    def stalled(self, pump: str) -> bool:
        """Whether ``pump`` has stalled."""

    def stop_pump(self, pump: str) -> None:
        """Halt ``pump`` at once (an aborted plan)."""

    def refill(self, pump: str, volume_ul: float | None = None) -> None:
        """A fresh syringe (an operator action); clears a stall."""

    def set_ligand(self, ligand: str) -> None:
        """Turn the ligand selector valve."""

    def set_mixer(self, rpm: float) -> None:
        """Set the static mixer's speed."""

    def pressure(self) -> float:
        """Line pressure, kPa."""

    def unclog(self) -> None:
        """Flush the coil (an operator action)."""


class SyringePump(Device):
    """A syringe pump: ``set(rate)`` in µL/min; reads rate, remaining volume and stall state."""

    flow_rate = Cpt(ComputedSignal, getter="_rate", units="uL/min", kind="hinted")
    setpoint = Cpt(LimitedSignal, value=0.0, units="uL/min", kind="normal")
    remaining_ul = Cpt(ComputedSignal, getter="_remaining", units="uL", kind="normal")
    stalled = Cpt(ComputedSignal, getter="_stalled", kind="normal")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.flow_rate.name = self.name

    @property
    def clock(self) -> VirtualClock | None:
        return self.parent.clock

    @property
    def _backend(self) -> FlowBackend:
        return self.parent.backend

    def _remaining(self) -> float:
        return self._backend.remaining(self.attr_name)

    def _rate(self) -> float:
        return self._backend.rate(self.attr_name)

    def _stalled(self) -> int:
        return int(self._backend.stalled(self.attr_name))

    @property
    def position(self) -> float:
        return self._rate()

    @property
    def limits(self) -> tuple[float, float]:
        return self.setpoint.limits

    def check_value(self, value: Any) -> None:
        self.setpoint.check_value(value)

    def set(self, value: float) -> Status:
        """Change the flow rate; fails if the pump stalls or the line over-pressures."""
        self.check_value(value)
        rate = float(value)
        status = self._backend.set_rate(self.attr_name, rate)
        self.setpoint.put(rate, timestamp=self.clock.now())
        return then(status, lambda: None, self)

    def stop(self, *, success: bool = False) -> None:
        """Halt the pump when a plan is aborted; bluesky's end-of-plan ``stop(success=True)``
        leaves a pump running at its set rate, as a flow experiment needs."""
        if not success and self.parent is not None and self.parent.backend is not None:
            self._backend.stop_pump(self.attr_name)

    def refill(self, volume_ul: float | None = None) -> None:
        """A fresh syringe (an operator action); clears a stall."""
        self._backend.refill(self.attr_name, volume_ul)


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
        if self.parent.backend is not None:
            self.parent.backend.set_ligand(value)
        super().put(value, **kwargs)


class _Mixer(LimitedSignal):
    """The static mixer's speed, rpm."""

    def put(self, value: Any, **kwargs: Any) -> None:
        super().put(value, **kwargs)
        if self.parent.backend is not None:
            self.parent.backend.set_mixer(float(value))


class FlowReactor(Device):
    """Flow reactor (see the module docstring). Pumps are components named in the lab config;
    build the class for a config with :func:`flow_reactor_class`."""

    coil = Cpt(Heater, kind="hinted")
    ligand = Cpt(_LigandValve, value="oa_olam", kind="normal")
    mixer = Cpt(_Mixer, value=0.0, units="rpm", kind="config")
    residence_time = Cpt(ComputedSignal, getter="_residence", units="s", kind="hinted")
    total_flow = Cpt(ComputedSignal, getter="_total", units="uL/min", kind="normal")
    pressure = Cpt(ComputedSignal, getter="_pressure", units="kPa", kind="normal")

    pump_names: tuple[str, ...] = ()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.clock: VirtualClock | None = None
        self.backend: FlowBackend | None = None
        self.config: FlowConfig | None = None

    @property
    def pumps(self) -> dict[str, SyringePump]:
        """The pumps by name."""
        return {n: getattr(self, n) for n in self.pump_names}

    def attach(self, backend: FlowBackend, clock: VirtualClock, config: FlowConfig) -> None:
        """Connect the backend and the config (done by build_lab)."""
        self.backend = backend
        self.clock = clock
        self.config = config
        for name, pump in self.pumps.items():
            pump.setpoint.set_limits(0.0, config.pumps[name].max_flow_ul_min)
        self.mixer.set_limits(0.0, config.max_mixer_rpm)
        self.mixer.put(config.mixer_rpm)
        backend.set_ligand(self.ligand.get())

    def _total(self) -> float:
        return sum(self.backend.rate(n) for n in self.pump_names)

    def _residence(self) -> float:
        return residence_time_s(self.config.coil_volume_ul, self._total())

    def _pressure(self) -> float:
        return self.backend.pressure()

    def unclog(self) -> None:
        """Flush the coil (an operator action)."""
        self.backend.unclog()


def flow_reactor_class(pump_names: list[str] | tuple[str, ...]) -> type[FlowReactor]:
    """A :class:`FlowReactor` subclass with one :class:`SyringePump` component per name."""
    attrs: dict[str, Any] = {n: Cpt(SyringePump, kind="normal") for n in pump_names}
    attrs["pump_names"] = tuple(pump_names)
    return type(f"FlowReactor_{'_'.join(pump_names)}", (FlowReactor,), attrs)

# sila2 finds an implementation's methods by the feature's identifiers (``Inject``,
# ``get_GrowthTime``): the names are the standard's, not Python's.
# ruff: noqa: N802
"""``qdlab sila serve``: the simulated lab served as a SiLA 2 server (the ``sila2`` package).

The server builds the simulated lab of a lab config (:func:`devices.lab.build_lab`) and serves
its backends (:mod:`devices.simulated`) as the SiLA 2 features in ``devices/sila_features/``
(the XML is the definition; :mod:`devices.sila` is the client): the standard
``SimulationController``, and QDLab's ``LabClock``, ``TwinControl``, ``SafetyInterlock``,
``TemperatureController``, ``HotInjectionReactor``, ``LiquidHandler``, ``FlowReactor`` and
``Spectrometer``. An observable command finishes when the simulated instrument has done the
request and returns the lab time it finished at; a refusal or failure is the defined execution
error ``InstrumentError``, its message the failure's kind and reason
(:func:`devices.epics.message_of`), so a client raises what the in-process lab would.

Requests reach the lab one at a time, as they reach the IOC (:mod:`devices.ioc`): the
simulated world is not shared between threads; waiting for a request to finish (a realtime
lab's ramp) happens outside that lock.
"""

from __future__ import annotations

import os

# gRPC's core logs a line for each connection a vanished server drops; QDLab names the server
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")

import threading
from collections.abc import Callable
from importlib.metadata import version
from typing import Any

import numpy as np
from ophyd.status import Status
from sila2.framework import DefinedExecutionError, Feature
from sila2.server import FeatureImplementationBase, SilaServer

from devices.config import LabConfig
from devices.epics import message_of
from devices.lab import Lab, build_lab
from devices.robot import Aspirate, Dispense, Mix, Transfer
from devices.sila import MEASURE_RESPONSES, feature

__all__ = ["LabSilaServer", "serve"]

_REQUEST_TIMEOUT_S = 3600.0


class _Instrument(FeatureImplementationBase):
    """One feature's implementation on the simulated lab: calls under the lab's lock, a
    failure as the feature's ``InstrumentError``."""

    def __init__(self, server: LabSilaServer, feature: Feature) -> None:
        super().__init__(server)
        self.lab: Lab = server.lab
        self._lock = server.lock
        self._error = feature.defined_execution_errors["InstrumentError"]

    def call(self, function: Callable[..., Any], *args: Any) -> Any:
        """``function(*args)`` on the lab; what it raises becomes ``InstrumentError``."""
        try:
            with self._lock:
                return function(*args)
        except Exception as exc:
            raise DefinedExecutionError(self._error, message_of(exc)) from None

    def done(self, start: Callable[..., Status | None], *args: Any) -> float:
        """Start a request, wait for its Status (outside the lock) and return the lab time it
        finished at."""
        status = self.call(start, *args)
        try:
            if status is not None:
                status.wait(_REQUEST_TIMEOUT_S)
        except Exception as exc:
            raise DefinedExecutionError(self._error, message_of(exc)) from None
        return self.lab.clock.now()


class _SimulationController(FeatureImplementationBase):
    """The standard feature: this server is a simulation and has no real mode."""

    def __init__(self, server: LabSilaServer, feature: Feature) -> None:
        super().__init__(server)
        self._refused = feature.defined_execution_errors["StartRealModeFailed"]

    def StartRealMode(self, *, metadata: Any) -> None:
        raise DefinedExecutionError(
            self._refused, "this is QDLab's simulated lab: it has no real instruments to drive"
        )

    def StartSimulationMode(self, *, metadata: Any) -> None:
        return None

    def get_SimulationMode(self, *, metadata: Any) -> bool:
        return True


class _LabClock(_Instrument):
    def get_LabTime(self, *, metadata: Any) -> float:
        return self.lab.clock.now()

    def get_Speedup(self, *, metadata: Any) -> float:
        return float(self.parent_server.speedup or 0.0)

    def Wait(self, duration: float, *, metadata: Any, instance: Any) -> float:
        return self.done(self.lab.clock.run, max(float(duration), 0.0))


class _TwinControl(_Instrument):
    def Reseed(self, world_seed: int, seed: int, index: int, *, metadata: Any) -> None:
        def reseed() -> None:
            self.lab.world.seed = world_seed
            self.lab.world.reseed(seed, index)

        self.call(reseed)

    def SetHoodOpen(self, open_: bool, *, metadata: Any) -> None:
        self.call(setattr, self.lab.world, "hood_open", bool(open_))


class _SafetyInterlock(_Instrument):
    def get_HoodOpen(self, *, metadata: Any) -> bool:
        return bool(self.call(self.lab.safety.backend.hood_open))


class _TemperatureController(_Instrument):
    def _heater(self, name: str) -> Any:
        heaters = {f"{n}:heater": r.temperature for n, r in self.lab.reactors.items()}
        if self.lab.flow is not None:
            heaters["flow:coil"] = self.lab.flow.coil
        if name not in heaters:
            raise DefinedExecutionError(
                self._error, f"ValueError: no heater {name!r}; this lab has {sorted(heaters)}"
            )
        return heaters[name]

    def ControlTemperature(
        self, heater: str, target: float, ramp: float, tolerance: float, *, metadata: Any,
        instance: Any,
    ) -> float:  # fmt: skip
        device = self._heater(heater)
        low, high = device.limits
        if not low <= target <= high:
            raise DefinedExecutionError(
                self._error,
                f"LimitError: {heater} takes {low:g} to {high:g} °C; {target:g} refused",
            )
        return self.done(device.backend.start, target, ramp, tolerance)

    def Hold(self, heater: str, *, metadata: Any) -> None:
        self.call(self._heater(heater).backend.hold)

    def CurrentTemperature(self, heater: str, *, metadata: Any) -> float:
        return float(self.call(self._heater(heater).backend.temperature))

    def TemperatureLimits(self, heater: str, *, metadata: Any) -> dict[str, float]:
        low, high = self._heater(heater).limits
        return {"Minimum": float(low), "Maximum": float(high)}


class _HotInjectionReactor(_Instrument):
    def _reactor(self, name: str) -> Any:
        if name not in self.lab.reactors:
            there = list(self.lab.reactors)
            raise DefinedExecutionError(
                self._error, f"ValueError: no reactor {name!r}; this lab has {there}"
            )
        return self.lab.reactors[name]

    def SelectSource(self, reactor: str, source: str, *, metadata: Any) -> None:
        self.call(self._reactor(reactor).backend.select_source, source)

    def Inject(self, reactor: str, volume: float, *, metadata: Any, instance: Any) -> float:
        device = self._reactor(reactor)
        heater = device.temperature.backend
        return self.done(lambda: device.backend.inject(volume, round(heater.temperature(), 3)))

    def Quench(self, reactor: str, growth_time: float, *, metadata: Any, instance: Any) -> float:
        return self.done(self._reactor(reactor).backend.quench, growth_time)

    def GrowthTime(self, reactor: str, *, metadata: Any) -> float:
        return float(self.call(self._reactor(reactor).backend.growth_time))


class _LiquidHandler(_Instrument):
    @property
    def _robot(self) -> Any:
        return self.lab.robot.backend

    def Transfer(
        self, source: str, dest: str, volume: float, *, metadata: Any, instance: Any
    ) -> float:
        return self.done(self._robot.do, Transfer(source, dest, volume))

    def Aspirate(self, source: str, volume: float, *, metadata: Any, instance: Any) -> float:
        return self.done(self._robot.do, Aspirate(source, volume))

    def Dispense(self, dest: str, volume: float, *, metadata: Any, instance: Any) -> float:
        return self.done(self._robot.do, Dispense(dest, volume))

    def Mix(
        self, location: str, volume: float, cycles: int, *, metadata: Any, instance: Any
    ) -> float:
        return self.done(self._robot.do, Mix(location, volume, cycles))

    def ReloadTips(self, count: int, *, metadata: Any) -> None:
        self.call(self._robot.reload_tips, count)

    def VolumeOf(self, location: str, *, metadata: Any) -> float:
        return float(self.call(self._robot.volume_of, location))

    def FreshWells(self, plate: str, *, metadata: Any) -> list[str]:
        return list(self.call(self._robot.fresh_wells, plate))

    def get_Locations(self, *, metadata: Any) -> list[str]:
        return sorted(self.call(self._robot.locations))

    def get_TipsLeft(self, *, metadata: Any) -> int:
        return int(self.call(self._robot.tips_left))

    def get_HeldVolume(self, *, metadata: Any) -> float:
        return float(self.call(self._robot.held_ul))


class _FlowReactor(_Instrument):
    @property
    def _flow(self) -> Any:
        if self.lab.flow is None:
            raise DefinedExecutionError(self._error, "RuntimeError: this lab has no flow reactor")
        return self.lab.flow.backend

    def _pump(self, pump: str) -> Any:
        pumps = self.lab.config.flow.pumps if self.lab.config.flow is not None else {}
        if pump not in pumps:
            raise DefinedExecutionError(
                self._error, f"ValueError: no pump {pump!r}; the flow reactor has {sorted(pumps)}"
            )
        return pumps[pump]

    def SetFlowRate(self, pump: str, rate: float, *, metadata: Any, instance: Any) -> float:
        high = self._pump(pump).max_flow_ul_min
        if not 0.0 <= rate <= high:
            raise DefinedExecutionError(
                self._error, f"LimitError: pump {pump} takes 0 to {high:g} µL/min; {rate:g} refused"
            )
        return self.done(self._flow.set_rate, pump, rate)

    def FlowRate(self, pump: str, *, metadata: Any) -> float:
        self._pump(pump)
        return float(self.call(self._flow.rate, pump))

    def FlowRateLimits(self, pump: str, *, metadata: Any) -> dict[str, float]:
        return {"Minimum": 0.0, "Maximum": float(self._pump(pump).max_flow_ul_min)}

    def RemainingVolume(self, pump: str, *, metadata: Any) -> float:
        self._pump(pump)
        return float(self.call(self._flow.remaining, pump))

    def Stalled(self, pump: str, *, metadata: Any) -> bool:
        self._pump(pump)
        return bool(self.call(self._flow.stalled, pump))

    def StopPump(self, pump: str, *, metadata: Any) -> None:
        self._pump(pump)
        self.call(self._flow.stop_pump, pump)

    def Refill(self, pump: str, volume: float, *, metadata: Any) -> None:
        self._pump(pump)
        self.call(self._flow.refill, pump, None if volume < 0 else volume)

    def SetLigand(self, ligand: str, *, metadata: Any) -> None:
        self.call(self._flow.set_ligand, ligand)

    def SetMixerSpeed(self, speed: float, *, metadata: Any) -> None:
        self.call(self._flow.set_mixer, speed)

    def Unclog(self, *, metadata: Any) -> None:
        self.call(self._flow.unclog)

    def get_Pressure(self, *, metadata: Any) -> float:
        return float(self.call(self._flow.pressure))


class _Spectrometer(_Instrument):
    @property
    def _cell(self) -> Any:
        return self.lab.cell.backend

    def AcquireDark(self, integration_ms: float, *, metadata: Any, instance: Any) -> float:
        return self.done(self._cell.acquire_dark, integration_ms)

    def AcquireReference(self, integration_ms: float, *, metadata: Any, instance: Any) -> float:
        return self.done(self._cell.acquire_reference, integration_ms)

    def Measure(self, integration_ms: float, *, metadata: Any, instance: Any) -> dict[str, Any]:
        finished = self.done(self._cell.measure, integration_ms)
        reading = self.call(self._cell.reading)
        out: dict[str, Any] = {"LabTime": finished}
        for attr, response in MEASURE_RESPONSES.items():
            value = reading[attr]
            if attr in ("absorbance", "pl"):
                out[response] = np.asarray(value, dtype="<f8").tobytes()
            elif attr in ("saturated", "spikes"):
                out[response] = int(value)
            else:
                out[response] = float(value)
        return out

    def SelectView(self, view: str, *, metadata: Any) -> None:
        self.call(self._cell.select_view, view)


_IMPLEMENTATIONS: dict[str, type[FeatureImplementationBase]] = {
    "SimulationController": _SimulationController,
    "LabClock": _LabClock,
    "TwinControl": _TwinControl,
    "SafetyInterlock": _SafetyInterlock,
    "TemperatureController": _TemperatureController,
    "HotInjectionReactor": _HotInjectionReactor,
    "LiquidHandler": _LiquidHandler,
    "FlowReactor": _FlowReactor,
    "Spectrometer": _Spectrometer,
}


class LabSilaServer(SilaServer):
    """The simulated lab of ``config`` as a SiLA 2 server (see the module docstring).

    Parameters
    ----------
    config
        The lab config of the simulated lab to serve.
    speedup
        Lab seconds per wall-clock second; ``None`` runs as fast as the CPU allows.
    """

    def __init__(self, config: LabConfig, speedup: float | None = None) -> None:
        super().__init__(
            server_name=f"QDLab {config.name}"[:255],
            server_type="QDLabSimulatedLab",
            server_description=(
                "QDLab's simulated perovskite quantum-dot lab (robot, hot-injection reactor, "
                "flow reactor, spectrometer) driven by its physics twin"
            ),
            server_version=version("qdlab").replace("+", "_").split("_")[0],
            server_vendor_url="https://github.com/qdlab/qdlab",
        )
        self.speedup = speedup
        self.certificate: bytes | None = None
        """The PEM certificate chain the server presents over TLS (None: plain gRPC)."""
        self.lock = threading.RLock()
        self.lab: Lab = build_lab(
            config.at_speed(speedup).model_copy(update={"backend": "simulated"})
        )
        for identifier, implementation in _IMPLEMENTATIONS.items():
            definition = feature(identifier)
            self.set_feature_implementation(definition, implementation(self, definition))


def serve(
    config: LabConfig,
    host: str = "127.0.0.1",
    port: int = 50052,
    speedup: float | None = None,
    tls: tuple[bytes, bytes] | bool = False,
) -> LabSilaServer:
    """Start serving the simulated lab of ``config`` on ``host:port`` (no discovery) and return
    the running server.

    ``tls``: False, plain gRPC (loopback, a closed network); a ``(certificate chain, private
    key)`` pair of PEM bytes, TLS with them; True, TLS with a self-signed certificate for
    ``host`` made by the sila2 package (clients trust it through ``sila2.root_certs``). The
    server's ``certificate`` is the PEM chain it presents (None: plain gRPC)."""
    server = LabSilaServer(config, speedup)
    if tls is False:
        server.start_insecure(host, port, enable_discovery=False)
        return server
    if tls is True:
        from sila2.server.encryption import generate_self_signed_certificate

        key, chain = generate_self_signed_certificate(server.server_uuid, host)
    else:
        chain, key = tls
    server.start(host, port, private_key=key, cert_chain=chain, enable_discovery=False)
    server.certificate = chain
    return server

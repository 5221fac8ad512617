"""SiLA 2 backends (``backend: sila2``): the lab's devices driven through a SiLA 2 server.

The server serves the features defined in ``devices/sila_features/`` (``qdlab sila serve``
serves QDLab's simulated lab so, :mod:`devices.sila_server`; a lab's own server implements the
same features over its instruments). Each backend here is the device protocol of
:mod:`devices` (``HeaterBackend``, ``RobotBackend``, ...) over the ``sila2`` package's client: an
observable command (a move, an injection, a measurement) is an ophyd Status that finishes when
the command has finished, or fails with what the server said (its ``InstrumentError`` carries
the kind of failure, so a refused move raises the ``LimitError`` the in-process lab would). A
server that does not answer is :class:`SilaUnreachable` naming it (exit code 4), at connection
and while a command runs.

The lab's time is the server's (:class:`SilaClock`), so documents carry lab-time durations.
"""

from __future__ import annotations

import os

# gRPC's core logs a line for each connection a vanished server drops; QDLab names the server
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import numpy as np
from ophyd.status import Status
from sila2.client import SilaClient
from sila2.framework import DefinedExecutionError, Feature, SilaConnectionError, SilaError

from devices.base import InstrumentUnreachable
from devices.clock import ServerClock
from devices.config import CELL_READINGS, SilaConfig
from devices.epics import error_from_message
from devices.robot import Aspirate, Dispense, Mix, RobotAction, Transfer
from devices.world import WorldError

__all__ = [
    "FEATURES_DIR",
    "MEASURE_RESPONSES",
    "SilaCell",
    "SilaClock",
    "SilaFlow",
    "SilaHeater",
    "SilaInterlock",
    "SilaLink",
    "SilaReactor",
    "SilaRobot",
    "SilaUnreachable",
    "feature",
]

_FEATURES = (
    "LabClock",
    "SafetyInterlock",
    "TemperatureController",
    "HotInjectionReactor",
    "LiquidHandler",
    "FlowReactor",
    "Spectrometer",
)
"""What a lab's SiLA 2 server must implement (``TwinControl`` only with ``twin_control``)."""


FEATURES_DIR = Path(__file__).resolve().parent / "sila_features"
"""The feature definitions (``<Identifier>.sila.xml``) the server serves and the client uses."""

MEASURE_RESPONSES = {
    "absorbance": "Absorbance",
    "pl": "PL",
    "pl_peak": "PLPeak",
    "pl_fwhm": "PLFWHM",
    "abs_peak": "AbsorbancePeak",
    "plqy_est": "PLQYEstimate",
    "pl_max_counts": "PLMaxCounts",
    "saturated": "Saturated",
    "spikes": "Spikes",
    "reference_age": "ReferenceAge",
    "sample_age": "SampleAge",
}
"""Optical-cell reading -> the ``Spectrometer.Measure`` response that carries it."""


def feature(identifier: str) -> Feature:
    """The SiLA 2 feature ``identifier`` as defined in ``devices/sila_features``."""
    return Feature((FEATURES_DIR / f"{identifier}.sila.xml").read_text())


class SilaUnreachable(InstrumentUnreachable):
    """The SiLA 2 server did not answer (exit code 4 when it stops a command)."""


class SilaLink:
    """The connection to one lab's SiLA 2 server: calls and commands with its errors turned
    back into the lab's exceptions.

    Parameters
    ----------
    config
        Where the server is (the lab config's ``sila2`` section).
    """

    def __init__(self, config: SilaConfig) -> None:
        self.config = config
        self.where = f"SiLA 2 server {config.host}:{config.port}"
        self.on_lab_time: Callable[[float], None] | None = None
        self.client = self._connect()
        missing = [f for f in self.required() if not hasattr(self.client, f)]
        if missing:
            raise SilaUnreachable(
                f"{self.where} ({self.server_name()}) does not implement {', '.join(missing)} "
                "(docs/backends.md: the features a lab's server implements)"
            )

    def required(self) -> list[str]:
        """The features this lab needs from its server."""
        return [*_FEATURES, *(["TwinControl"] if self.config.twin_control else [])]

    def _connect(self) -> SilaClient:
        c = self.config
        target = f"{c.host}:{c.port}"
        roots = c.root_certs.read_bytes() if c.root_certs is not None else None
        probe = (
            grpc.insecure_channel(target)
            if c.insecure
            else grpc.secure_channel(target, grpc.ssl_channel_credentials(root_certificates=roots))
        )
        try:
            grpc.channel_ready_future(probe).result(timeout=c.connection_timeout_s)
        except grpc.FutureTimeoutError:
            raise SilaUnreachable(
                f"{self.where} did not answer within {c.connection_timeout_s:g} s (is it running? "
                "`qdlab sila serve` serves the simulated lab)"
            ) from None
        finally:
            probe.close()
        try:
            if c.insecure:
                return SilaClient(c.host, c.port, insecure=True)
            return SilaClient(c.host, c.port, root_certs=roots)
        except Exception as exc:
            raise SilaUnreachable(f"{self.where}: {exc}") from None

    def server_name(self) -> str:
        """The server's name and version (its ``SiLAService``)."""
        service = self.client.SiLAService
        return f"{service.ServerName.get()} {service.ServerVersion.get()}"

    def _error(self, exc: Exception, what: str) -> Exception:
        if isinstance(exc, DefinedExecutionError) and exc.identifier == "InstrumentError":
            return error_from_message(exc.message) or RuntimeError(exc.message)
        if isinstance(exc, SilaConnectionError):
            return SilaUnreachable(f"{self.where} is gone ({what} not done)")
        if isinstance(exc, SilaError):  # a validation or framework error: the server's words
            return RuntimeError(f"{self.where}: {what}: {exc}")
        return exc

    def get(self, feature: str, prop: str) -> Any:
        """An unobservable property's value."""
        try:
            return getattr(getattr(self.client, feature), prop).get()
        except Exception as exc:
            raise self._error(exc, f"{feature}.{prop}") from None

    def call(self, feature: str, command: str, *args: Any) -> Any:
        """An unobservable command; its only response, or the responses as a named tuple."""
        try:
            responses = getattr(getattr(self.client, feature), command)(*args)
        except Exception as exc:
            raise self._error(exc, f"{feature}.{command}") from None
        return responses[0] if len(responses) == 1 else responses

    def request(
        self,
        feature: str,
        command: str,
        *args: Any,
        responses: Callable[[Any], None] | None = None,
    ) -> Status:
        """An observable command as a Status: finished when the command has finished (its
        responses given to ``responses`` first), failed with the lab's exception."""
        status = Status(obj=self)
        what = f"{feature}.{command}"

        def work() -> None:
            try:
                answer = self._wait(feature, command, args)
                if self.on_lab_time is not None:
                    self.on_lab_time(answer.LabTime)
                if responses is not None:
                    responses(answer)
            except Exception as exc:
                status.set_exception(self._error(exc, what))
            else:
                status.set_finished()

        threading.Thread(target=work, daemon=True, name=f"sila-{command}").start()
        return status

    def _wait(self, feature: str, command: str, args: tuple[Any, ...]) -> Any:
        instance = getattr(getattr(self.client, feature), command)(*args)
        deadline = time.monotonic() + self.config.request_timeout_s
        # the client's execution-info stream ends when the command does (sila2 keeps the
        # thread that reads it private; polling `done` instead costs milliseconds a command)
        info = getattr(instance, "_ClientObservableCommandInstance__info_update_thread", None)
        try:
            while not instance.done:
                if info is not None:
                    info.join(1.0)
                else:
                    time.sleep(0.001)
                if not instance.done:  # a server that went away ends no command: ask it
                    self.client.LabClock.LabTime.get()
                    if info is not None and not info.is_alive():
                        time.sleep(0.01)
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"{self.where}: {feature}.{command} did not finish within "
                        f"{self.config.request_timeout_s:g} s"
                    )
            return instance.get_responses()
        finally:
            instance.cancel_execution_info_subscription()


class SilaClock(ServerClock):
    """The lab's time is the server's (:class:`~devices.clock.ServerClock`): read from
    ``LabClock.LabTime`` at start, set right by the lab time every finished command returns,
    running at the server's ``Speedup`` in between; waiting is ``LabClock.Wait``."""

    def __init__(self, link: SilaLink) -> None:
        super().__init__(
            float(link.get("LabClock", "LabTime")),
            float(link.get("LabClock", "Speedup")),
            lambda seconds: link.request("LabClock", "Wait", seconds),
            link.config.request_timeout_s,
        )
        link.on_lab_time = self.sync


class _Backend:
    feature = ""

    def __init__(self, link: SilaLink) -> None:
        self.link = link

    def _call(self, command: str, *args: Any) -> Any:
        return self.link.call(self.feature, command, *args)

    def _request(self, command: str, *args: Any) -> Status:
        return self.link.request(self.feature, command, *args)

    def _get(self, prop: str) -> Any:
        return self.link.get(self.feature, prop)


class SilaHeater(_Backend):
    """A heater: ``TemperatureController`` with the heater's name (``reactor:heater``)."""

    feature = "TemperatureController"

    def __init__(self, link: SilaLink, heater: str) -> None:
        super().__init__(link)
        self.heater = heater

    def temperature(self) -> float:
        return float(self._call("CurrentTemperature", self.heater))

    def start(self, setpoint_c: float, ramp_c_per_min: float, tolerance_c: float) -> Status:
        return self._request(
            "ControlTemperature", self.heater, setpoint_c, ramp_c_per_min, tolerance_c
        )

    def hold(self) -> None:
        self._call("Hold", self.heater)

    def limits(self) -> tuple[float, float]:
        """The targets the server's heater takes."""
        answer = self._call("TemperatureLimits", self.heater)
        return float(answer.Minimum), float(answer.Maximum)


class SilaReactor(_Backend):
    """A flask: ``HotInjectionReactor`` with the reactor's name (the server injects at its own
    heater's reading)."""

    feature = "HotInjectionReactor"

    def __init__(self, link: SilaLink, name: str = "reactor") -> None:
        super().__init__(link)
        self.name = name

    def inject(self, volume_ul: float, temperature_c: float) -> Status:
        return self._request("Inject", self.name, volume_ul)

    def select_source(self, source: str) -> None:
        self._call("SelectSource", self.name, source)

    def quench(self, growth_time_s: float) -> Status:
        return self._request("Quench", self.name, growth_time_s)

    def growth_time(self) -> float:
        return float(self._call("GrowthTime", self.name))


class SilaRobot(_Backend):
    """The pipetting robot: ``LiquidHandler``; the server checks each action when it gets
    it (an impossible one is refused and nothing moves)."""

    feature = "LiquidHandler"

    def __init__(self, link: SilaLink) -> None:
        super().__init__(link)
        self._deck: list[str] | None = None

    def locations(self) -> list[str]:
        if self._deck is None:  # the deck's labware is fixed; its contents are read each time
            self._deck = list(self._get("Locations"))
        return self._deck

    def volume_of(self, location: str) -> float:
        if location not in self.locations():
            raise WorldError(f"no location {location!r} on the deck")
        return float(self._call("VolumeOf", location))

    def fresh_wells(self, plate: str) -> list[str]:
        return list(self._call("FreshWells", plate))

    def tips_left(self) -> int:
        return int(self._get("TipsLeft"))

    def held_ul(self) -> float:
        return float(self._get("HeldVolume"))

    def reload_tips(self, count: int) -> None:
        self._call("ReloadTips", int(count))

    def check(self, action: RobotAction) -> None:
        """Nothing to ask first: the server checks the action it is given (the device has
        checked the pipette range and the labware already)."""

    def do(self, action: RobotAction) -> Status:
        if isinstance(action, Transfer):
            return self._request("Transfer", action.source, action.dest, action.volume_ul)
        if isinstance(action, Aspirate):
            return self._request("Aspirate", action.source, action.volume_ul)
        if isinstance(action, Dispense):
            return self._request("Dispense", action.dest, action.volume_ul)
        if isinstance(action, Mix):
            return self._request("Mix", action.location, action.volume_ul, int(action.cycles))
        raise TypeError(f"not a robot action: {action!r}")


class SilaFlow(_Backend):
    """The flow reactor: ``FlowReactor`` (pumps by name, the ligand valve, the mixer)."""

    feature = "FlowReactor"

    def set_rate(self, pump: str, rate_ul_min: float) -> Status:
        return self._request("SetFlowRate", pump, rate_ul_min)

    def rate(self, pump: str) -> float:
        return float(self._call("FlowRate", pump))

    def rate_limits(self, pump: str) -> tuple[float, float]:
        """The rates the server's pump takes."""
        answer = self._call("FlowRateLimits", pump)
        return float(answer.Minimum), float(answer.Maximum)

    def remaining(self, pump: str) -> float:
        return float(self._call("RemainingVolume", pump))

    def stalled(self, pump: str) -> bool:
        return bool(self._call("Stalled", pump))

    def stop_pump(self, pump: str) -> None:
        self._call("StopPump", pump)

    def refill(self, pump: str, volume_ul: float | None = None) -> None:
        self._call("Refill", pump, -1.0 if volume_ul is None else float(volume_ul))

    def set_ligand(self, ligand: str) -> None:
        self._call("SetLigand", ligand)

    def set_mixer(self, rpm: float) -> None:
        self._call("SetMixerSpeed", float(rpm))

    def pressure(self) -> float:
        return float(self._get("Pressure"))

    def unclog(self) -> None:
        self._call("Unclog")


class SilaCell(_Backend):
    """The spectrometer: ``Spectrometer``; ``Measure`` returns the spectra and the values
    computed from them, which :meth:`reading` then gives."""

    feature = "Spectrometer"

    def __init__(self, link: SilaLink) -> None:
        super().__init__(link)
        self._reading: dict[str, Any] | None = None

    def acquire_dark(self, integration_ms: float) -> Status:
        return self._request("AcquireDark", integration_ms)

    def acquire_reference(self, integration_ms: float) -> Status:
        return self._request("AcquireReference", integration_ms)

    def measure(self, integration_ms: float) -> Status:
        return self.link.request(self.feature, "Measure", integration_ms, responses=self._keep)

    def _keep(self, answer: Any) -> None:
        self._reading = {attr: getattr(answer, MEASURE_RESPONSES[attr]) for attr in CELL_READINGS}

    def select_view(self, view: str) -> None:
        self._call("SelectView", view)

    def reading(self) -> dict[str, Any]:
        if self._reading is None:
            raise RuntimeError(f"{self.link.where}: nothing measured yet")
        out = dict(self._reading)
        for attr in ("absorbance", "pl"):  # float64 little-endian bytes, one per wavelength
            out[attr] = np.frombuffer(out[attr], dtype="<f8").tolist()
        return out


class SilaInterlock(_Backend):
    """The interlock switch: ``SafetyInterlock.HoodOpen``."""

    feature = "SafetyInterlock"

    def hood_open(self) -> bool:
        return bool(self._get("HoodOpen"))

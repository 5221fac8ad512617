"""The EPICS backends: each device's work done by IOCs over Channel Access (ophyd signals).

Every device talks to a handful of PVs named ``<prefix><suffix>``; :func:`pv_suffixes` lists
them for a lab and docs/backends.md says what each means. The conventions, shared with
``qdlab ioc`` (:mod:`devices.ioc`):

- a *request* PV (``...:SP``, ``robot:ACTION``, ``cell:ACQ``, ...) is written with put-completion:
  the put completes when the instrument has done it (settled, moved, measured);
- the device's ``...:MSG`` PV then holds ``""`` or the reason it failed, as
  ``"TimeoutError: cell: spectrometer did not answer within 30 s"``, which the Status fails with;
- readbacks (``...:RBV``, ``cell:PL``, ...) are read when a plan reads the device;
- ``CLOCK`` is the lab's time (epoch seconds): the documents carry the lab-time durations.

A PV that does not answer raises :class:`PVUnreachable` naming it, so a failed experiment's
reason names the PV.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import numpy as np
from ophyd import EpicsSignal
from ophyd.status import Status
from ophyd.utils import LimitError

from devices.base import InstrumentUnreachable
from devices.clock import ServerClock
from devices.config import (
    CELL_READINGS,
    MAPPED_SUFFIX,
    EpicsConfig,
    SetpointReadback,
    mappable,
    pv_suffixes,
)
from devices.robot import Aspirate, Dispense, Mix, RobotAction, Transfer
from devices.world import WorldError

__all__ = [
    "EpicsCell",
    "EpicsClock",
    "EpicsFlow",
    "EpicsHeater",
    "EpicsInterlock",
    "EpicsReactor",
    "EpicsRobot",
    "PVUnreachable",
    "PVs",
    "Positioner",
    "action_from_json",
    "action_to_json",
    "mappable",
    "pv_suffixes",
]

ERRORS: dict[str, type[Exception]] = {
    cls.__name__: cls for cls in (RuntimeError, TimeoutError, ValueError, WorldError, LimitError)
}
"""The exception types an IOC's ``MSG`` may name (anything else comes back a RuntimeError)."""


_TEXT = ("MSG", "ACTION", "DECK", "FRESH", "LIGAND")
"""Suffixes of text PVs (char arrays, so that a message may be longer than 40 characters)."""
_ACTIONS = {cls.__name__: cls for cls in (Aspirate, Dispense, Transfer, Mix)}


def action_to_json(action: RobotAction) -> str:
    """A robot action as the JSON a ``robot:ACTION`` PV takes."""
    return json.dumps({"action": type(action).__name__, **asdict(action)})


def action_from_json(text: str) -> RobotAction:
    """The robot action a ``robot:ACTION`` PV was given (only the four known kinds)."""
    data = json.loads(text)
    kind = _ACTIONS.get(data.pop("action", None))
    if kind is None:
        raise ValueError(f"not a robot action: {text!r}")
    return kind(**data)


class PVUnreachable(InstrumentUnreachable):
    """A PV did not connect or answer in time (exit code 4 when it stops a command)."""


class PVs:
    """The lab's PVs as ophyd signals, made on first use, named by suffix."""

    def __init__(self, config: EpicsConfig) -> None:
        self.config = config
        self._signals: dict[str, EpicsSignal] = {}
        self._limits: dict[str, tuple[float, float] | None] = {}
        self._lock = threading.Lock()
        self.on_lab_time: Callable[[float], None] | None = None
        """Told the lab time each time a request's ``MSG`` is read (see :class:`EpicsClock`)."""

    def name(self, suffix: str) -> str:
        """The PV's full name: a mapped instrument's, a renamed one, or prefix + suffix."""
        prefix, _, last = suffix.rpartition(":")
        mapped = self.config.mapped.get(prefix)
        key = next((k for k, s in MAPPED_SUFFIX.items() if s == last), None)
        if mapped is not None and key is not None and getattr(mapped, key) is not None:
            return str(getattr(mapped, key))
        return self.config.pvs.get(suffix, self.config.prefix + suffix)

    def drive_limits(self, suffix: str) -> tuple[float, float] | None:
        """The range the IOC takes for this PV: its control limits (an ``ao``'s
        ``DRVL``/``DRVH``), else its display limits (``LOPR``/``HOPR``); None if it sets
        neither; read once per PV)."""
        if suffix in self._limits:
            return self._limits[suffix]
        sig = self.signal(suffix)
        sig.wait_for_connection(timeout=self.config.connection_timeout_s)
        low, high = sig.limits
        if low is None or high is None or low == high:
            try:
                ctrl = sig._read_pv.get_ctrlvars(timeout=self.config.connection_timeout_s)
            except Exception:  # no DBR_CTRL from this IOC: no limits to know
                return None
            low, high = (ctrl or {}).get("lower_disp_limit"), (ctrl or {}).get("upper_disp_limit")
        found = None if low is None or high is None or low >= high else (float(low), float(high))
        self._limits[suffix] = found
        return found

    def signal(self, suffix: str) -> EpicsSignal:
        with self._lock:
            sig = self._signals.get(suffix)
            if sig is None:
                name = self.name(suffix)
                text = suffix.endswith(_TEXT)
                sig = EpicsSignal(
                    name,
                    name=suffix.replace(":", "_"),
                    put_complete=True,
                    string=text,
                    connection_timeout=self.config.connection_timeout_s,
                )
                self._signals[suffix] = sig
            return sig

    def get(self, suffix: str) -> Any:
        """The PV's value now; :class:`PVUnreachable` naming it if it does not answer."""
        try:
            sig = self.signal(suffix)
            timeout = self.config.connection_timeout_s
            if suffix.endswith(_TEXT):
                return sig.get(as_string=True, timeout=timeout)
            return sig.get(timeout=timeout)
        except Exception as exc:
            raise PVUnreachable(f"PV {self.name(suffix)} did not answer: {exc}") from None

    def put(self, suffix: str, value: Any) -> None:
        """Write and wait until the IOC has taken it."""
        self._complete(suffix, value, self.config.connection_timeout_s)

    def write(self, suffix: str, value: Any) -> None:
        """Write without put-completion (an ordinary record takes the value at once), then read
        it back: a value the IOC refused fails here, naming the PV and what it still holds."""
        sig = self.signal(suffix)
        name = self.name(suffix)
        if not sig.connected:
            raise PVUnreachable(f"PV {name} is disconnected; {value!r} not sent")
        try:
            sig._write_pv.put(value, wait=False)
        except Exception as exc:
            raise PVUnreachable(f"PV {name} did not take {value!r}: {exc}") from None
        deadline = time.monotonic() + min(self.config.connection_timeout_s, 2.0)
        while True:
            now = self.get(suffix)
            if math.isclose(float(now), float(value), rel_tol=1e-6, abs_tol=1e-9):
                return
            if time.monotonic() > deadline:
                raise ValueError(
                    f"PV {name} refused {value:g}: it still reads {float(now):g} (the IOC "
                    "rejected the put; see its log)"
                )
            time.sleep(0.02)

    def check_limits(self, suffix: str, value: float) -> None:
        """Refuse ``value`` before writing it if the IOC's drive limits exclude it (the IOC would
        refuse the put, and a put-completion that cannot come would be waited for)."""
        limits = self.drive_limits(suffix)
        if limits is not None and not limits[0] <= value <= limits[1]:
            raise LimitError(
                f"PV {self.name(suffix)} refuses {value:g}: the IOC's drive limits are "
                f"[{limits[0]:g}, {limits[1]:g}]"
            )

    def request(self, suffix: str, value: Any, message: str) -> Status:
        """Write a request PV; the Status finishes when the IOC has done it, or fails with the
        reason in the ``message`` PV (or :class:`PVUnreachable`)."""
        status = Status(obj=self)

        def work() -> None:
            try:
                self._complete(suffix, value, self.config.request_timeout_s)
                text = self.get(message)
                if self.on_lab_time is not None:  # the IOC stamps MSG with the lab time
                    self.on_lab_time(self.signal(message).timestamp)
                error = error_from_message(text)
            except Exception as exc:
                error = exc
            if error is None:
                status.set_finished()
            else:
                status.set_exception(error)

        threading.Thread(target=work, daemon=True, name=f"ca-{suffix}").start()
        return status

    def _complete(self, suffix: str, value: Any, timeout: float) -> None:
        """Put ``value`` and wait for completion; a disconnect ends the wait at once."""
        sig = self.signal(suffix)
        name = self.name(suffix)
        if not sig.connected:
            raise PVUnreachable(f"PV {name} is disconnected; {value!r} not sent")
        finished = threading.Event()
        try:
            # the signal's own PV object: ophyd's put-callback path adds a dispatcher-thread
            # hop, about half a millisecond a request
            sig._write_pv.put(value, use_complete=True, callback=lambda *_, **__: finished.set())
        except Exception as exc:
            raise PVUnreachable(f"PV {name} did not take {value!r}: {exc}") from None
        deadline = time.monotonic() + timeout
        while not finished.wait(0.1):
            if not sig.connected:
                raise PVUnreachable(f"PV {name} disconnected before completing {value!r}")
            if time.monotonic() > deadline:
                raise PVUnreachable(f"PV {name} did not complete {value!r} within {timeout:g} s")

    def unconnected(self, suffixes: list[str]) -> list[str]:
        """The suffixes whose PVs do not connect within the connection timeout."""
        signals = {s: self.signal(s) for s in suffixes}
        deadline = time.monotonic() + self.config.connection_timeout_s
        missing = []
        for suffix, sig in signals.items():
            try:
                sig.wait_for_connection(timeout=max(deadline - time.monotonic(), 0.01))
            except Exception:
                missing.append(suffix)
        return missing


def error_from_message(message: str) -> Exception | None:
    """The exception an IOC's ``MSG`` PV describes (None for ``""``)."""
    message = (message or "").strip()
    if not message:
        return None
    kind, _, text = message.partition(": ")
    cls = ERRORS.get(kind)
    return cls(text) if cls is not None else RuntimeError(message)


def message_of(exc: BaseException) -> str:
    """What an IOC writes to ``MSG`` for ``exc``."""
    kind = type(exc).__name__ if type(exc).__name__ in ERRORS else "RuntimeError"
    return f"{kind}: {exc}"


class EpicsClock(ServerClock):
    """The lab's time is the IOC's (:class:`~devices.clock.ServerClock`): read from ``CLOCK``
    at start, set right whenever a request completes (the IOC stamps the device's ``MSG`` with
    the lab time), running at the IOC's ``SPEEDUP`` in between; waiting (the
    :class:`~devices.heater.Timer`) is a ``timer:WAIT`` request."""

    def __init__(self, pvs: PVs) -> None:
        super().__init__(
            float(pvs.get("CLOCK")),
            float(pvs.get("SPEEDUP")),
            lambda seconds: pvs.request("timer:WAIT", seconds, "timer:MSG"),
            pvs.config.request_timeout_s,
        )
        pvs.on_lab_time = self.sync


class _Backend:
    def __init__(self, pvs: PVs, prefix: str) -> None:
        self.pvs = pvs
        self.prefix = prefix
        self.message = f"{prefix}:MSG"

    def _request(self, suffix: str, value: Any) -> Status:
        return self.pvs.request(f"{self.prefix}:{suffix}", value, self.message)

    def _get(self, suffix: str) -> Any:
        return self.pvs.get(f"{self.prefix}:{suffix}")

    def _put(self, suffix: str, value: Any) -> None:
        self.pvs.put(f"{self.prefix}:{suffix}", value)


class Positioner:
    """An instrument an ordinary IOC serves as a setpoint and a readback
    (:class:`~devices.config.SetpointReadback`): a move writes the setpoint and is done as its
    ``settle`` says, or fails naming the PV (refused, out of the IOC's drive limits, not
    settled in time with its last readback)."""

    _POLL_S = 0.05

    def __init__(self, pvs: PVs, prefix: str, mapping: SetpointReadback) -> None:
        self.pvs, self.prefix, self.mapping = pvs, prefix, mapping
        self._moves = 0  # a newer move or a stop ends an older move's wait

    def _suffix(self, key: str) -> str:
        return f"{self.prefix}:{MAPPED_SUFFIX[key]}"

    def value(self) -> float:
        """The readback now."""
        return float(self.pvs.get(self._suffix("readback")))

    def check(self, target: float) -> None:
        """Refuse a target outside the IOC's drive limits before anything is written."""
        limits = self.pvs.drive_limits(self._suffix("setpoint"))
        if limits is not None and not limits[0] <= target <= limits[1]:
            raise LimitError(
                f"PV {self.mapping.setpoint} refuses {target:g}: the IOC's drive limits are "
                f"[{limits[0]:g}, {limits[1]:g}]"
            )

    def move(self, target: float, tolerance: float) -> Status:
        """Write ``target``; the Status finishes when the move has settled."""
        self.check(target)
        self._moves += 1
        move = self._moves
        status = Status(obj=self)
        tolerance = self.mapping.tolerance or tolerance

        def work() -> None:
            try:
                if self.mapping.settle == "put_callback":
                    self.pvs._complete(self._suffix("setpoint"), target, self.mapping.timeout_s)
                else:
                    self.pvs.write(self._suffix("setpoint"), target)
                    self._settle(move, target, tolerance)
            except Exception as exc:
                status.set_exception(exc)
            else:
                status.set_finished()

        threading.Thread(target=work, daemon=True, name=f"settle-{self.prefix}").start()
        return status

    def _settle(self, move: int, target: float, tolerance: float) -> None:
        m = self.mapping
        deadline = time.monotonic() + m.timeout_s
        inside_since: float | None = None
        while True:
            if move != self._moves:
                raise RuntimeError(f"{self.prefix}: the move to {target:g} was stopped")
            now, readback = time.monotonic(), self.value()
            arrived = abs(readback - target) <= tolerance
            if arrived and m.settle == "done":
                arrived = int(self.pvs.get(self._suffix("done"))) == 1
            if not arrived:
                inside_since = None
            elif inside_since is None:
                inside_since = now
            if inside_since is not None and now - inside_since >= m.hold_s:
                return
            if now > deadline:
                raise TimeoutError(
                    f"PV {m.readback} did not settle within {tolerance:g} of {target:g} in "
                    f"{m.timeout_s:g} s (last readback {readback:g})"
                )
            time.sleep(self._POLL_S)

    def stop(self) -> None:
        """End the move where it is: the stop PV if the IOC has one, else hold the readback."""
        self._moves += 1
        if self.mapping.stop is not None:
            self.pvs.write(self._suffix("stop"), 1)
        else:
            self.pvs.write(self._suffix("setpoint"), self.value())


class EpicsHeater(_Backend):
    """A heater's PVs: ``RBV``, ``SP`` (completes when settled), ``RAMP``, ``TOL``, ``HOLD``;
    or, mapped (``epics.mapped``), an ordinary IOC's setpoint and readback."""

    def __init__(self, pvs: PVs, prefix: str) -> None:
        super().__init__(pvs, prefix)
        mapping = pvs.config.mapped.get(prefix)
        self.positioner = None if mapping is None else Positioner(pvs, prefix, mapping)

    def temperature(self) -> float:
        return float(self._get("RBV"))

    def start(self, setpoint_c: float, ramp_c_per_min: float, tolerance_c: float) -> Status:
        if self.positioner is not None:  # the IOC ramps at its own rate
            return self.positioner.move(setpoint_c, tolerance_c)
        self.pvs.check_limits(f"{self.prefix}:SP", setpoint_c)
        self._put("RAMP", ramp_c_per_min)
        self._put("TOL", tolerance_c)
        return self._request("SP", setpoint_c)

    def hold(self) -> None:
        if self.positioner is not None:
            self.positioner.stop()
        else:
            self._put("HOLD", 1)


class EpicsReactor(_Backend):
    """The flask's PVs: ``SOURCE`` (the injection valve), ``INJECT`` (µL), ``QUENCH`` (growth
    time, s), ``GROWTH`` (readback); the IOC injects at the temperature its own heater reads."""

    def __init__(self, pvs: PVs, name: str = "reactor") -> None:
        super().__init__(pvs, name)

    def inject(self, volume_ul: float, temperature_c: float) -> Status:
        return self._request("INJECT", volume_ul)

    def select_source(self, source: str) -> None:
        self._put("SOURCE", source)

    def quench(self, growth_time_s: float) -> Status:
        return self._request("QUENCH", growth_time_s)

    def growth_time(self) -> float:
        return float(self._get("GROWTH"))


class EpicsRobot(_Backend):
    """The robot's PVs: ``ACTION`` (an action as JSON), ``TIPS``, ``HELD``, ``RELOAD``,
    and the deck: ``DECK`` (JSON list of locations), ``VOLUMES`` (µL, in that order), ``FRESH``
    (JSON list of unused wells)."""

    def __init__(self, pvs: PVs) -> None:
        super().__init__(pvs, "robot")
        self._deck: list[str] | None = None

    def locations(self) -> list[str]:
        if self._deck is None:  # the deck's labware is fixed; its contents are read each time
            self._deck = json.loads(self._get("DECK"))
        return self._deck

    def volume_of(self, location: str) -> float:
        volumes = dict(zip(self.locations(), np.asarray(self._get("VOLUMES")), strict=True))
        if location not in volumes:
            raise WorldError(f"no location {location!r} on the deck")
        return float(volumes[location])

    def fresh_wells(self, plate: str) -> list[str]:
        return [w for w in json.loads(self._get("FRESH")) if w.startswith(f"{plate}:")]

    def tips_left(self) -> int:
        return int(self._get("TIPS"))

    def held_ul(self) -> float:
        return float(self._get("HELD"))

    def reload_tips(self, count: int) -> None:
        self._put("RELOAD", count)

    def check(self, action: RobotAction) -> None:
        """Nothing to ask first: the robot's controller checks an action when it gets it
        (``robot:ACTION`` refuses an impossible one, nothing moves, and ``MSG`` says why); the
        device has checked the pipette range and the labware already."""

    def do(self, action: RobotAction) -> Status:
        return self._request("ACTION", action_to_json(action))


class EpicsFlow(_Backend):
    """The flow reactor's PVs: per pump ``flow:<pump>:SP`` (µL/min), ``RBV``, ``REMAIN``,
    ``STALLED``, ``STOP``, ``REFILL`` (or, mapped, an ordinary IOC's setpoint and readback);
    ``LIGAND``, ``MIXER``, ``PRESSURE``, ``UNCLOG``."""

    def __init__(self, pvs: PVs) -> None:
        super().__init__(pvs, "flow")
        self.positioners = {
            key.removeprefix("flow:"): Positioner(pvs, key, mapping)
            for key, mapping in pvs.config.mapped.items()
            if key.startswith("flow:") and key != "flow:coil"
        }

    def set_rate(self, pump: str, rate_ul_min: float) -> Status:
        if pump in self.positioners:
            # a pump reports its rate to within 1 % of the asked-for one (or 1 µL/min)
            return self.positioners[pump].move(rate_ul_min, max(0.01 * rate_ul_min, 1.0))
        self.pvs.check_limits(f"flow:{pump}:SP", rate_ul_min)
        return self.pvs.request(f"flow:{pump}:SP", rate_ul_min, f"flow:{pump}:MSG")

    def rate(self, pump: str) -> float:
        return float(self._get(f"{pump}:RBV"))

    def remaining(self, pump: str) -> float:
        if pump in self.positioners:
            return math.nan  # an ordinary pump IOC does not say what its syringe holds
        return float(self._get(f"{pump}:REMAIN"))

    def stalled(self, pump: str) -> bool:
        if pump in self.positioners:
            return False  # nor whether it stalled: a move that does not settle fails instead
        return bool(self._get(f"{pump}:STALLED"))

    def stop_pump(self, pump: str) -> None:
        if pump in self.positioners:
            self.positioners[pump].stop()
        else:
            self._put(f"{pump}:STOP", 1)

    def refill(self, pump: str, volume_ul: float | None = None) -> None:
        if pump in self.positioners:
            raise RuntimeError(
                f"flow:{pump} is an ordinary pump IOC ({self.positioners[pump].mapping.setpoint})"
                ": refill its syringe at the pump"
            )
        self._put(f"{pump}:REFILL", -1.0 if volume_ul is None else volume_ul)

    def set_ligand(self, ligand: str) -> None:
        self._put("LIGAND", ligand)

    def set_mixer(self, rpm: float) -> None:
        self._put("MIXER", rpm)

    def pressure(self) -> float:
        return float(self._get("PRESSURE"))

    def unclog(self) -> None:
        self._put("UNCLOG", 1)


class EpicsCell(_Backend):
    """The spectrometer's PVs: ``DARK``, ``REF``, ``ACQ`` (each takes the integration time, ms,
    and completes when acquired), then the readings (:data:`CELL_READINGS`)."""

    def __init__(self, pvs: PVs) -> None:
        super().__init__(pvs, "cell")

    def acquire_dark(self, integration_ms: float) -> Status:
        return self._request("DARK", integration_ms)

    def acquire_reference(self, integration_ms: float) -> Status:
        return self._request("REF", integration_ms)

    def measure(self, integration_ms: float) -> Status:
        return self._request("ACQ", integration_ms)

    def select_view(self, view: str) -> None:
        self._request("VIEW", view).wait(self.pvs.config.request_timeout_s)

    def reading(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for attr, suffix in CELL_READINGS.items():
            value = self.pvs.get(suffix)
            if attr in ("absorbance", "pl"):
                out[attr] = np.asarray(value, dtype=float).tolist()
            elif attr in ("saturated", "spikes"):
                out[attr] = int(value)
            else:
                out[attr] = float(value)
        return out


class EpicsInterlock(_Backend):
    """The interlock switch: ``safety:HOOD_OPEN`` (1: open)."""

    def __init__(self, pvs: PVs) -> None:
        super().__init__(pvs, "safety")

    def hood_open(self) -> bool:
        return bool(self._get("HOOD_OPEN"))

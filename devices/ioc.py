"""``qdlab ioc``: the simulated lab served over EPICS Channel Access (caproto).

The IOC builds the simulated lab of a lab config (:func:`devices.lab.build_lab`) and serves its
backends (:mod:`devices.simulated`) as the PVs the EPICS backends expect (:mod:`devices.epics`,
docs/backends.md): request PVs complete when the simulated instrument has done the request, the
device's ``MSG`` PV then says why it failed (or ``""``), and readbacks are computed when read.
Time runs at ``speedup`` x real time (``None``: as fast as the CPU allows), and every PV's
timestamp is lab time.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
from caproto import ChannelChar, ChannelData, ChannelDouble, ChannelInteger, ChannelString
from ophyd.status import Status

from devices.config import LabConfig
from devices.epics import CELL_READINGS, action_from_json, message_of
from devices.lab import Lab, build_lab

__all__ = ["LabIOC", "serve"]

_POLL_S = 0.002
_TEXT_BYTES = 65536


class _Readback:
    """A channel whose value is computed when it is read."""

    def __init__(self, *args: Any, getter: Callable[[], Any], clock: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._getter = getter
        self._clock = clock

    async def read(self, data_type: Any) -> Any:
        await self.write(self._getter(), timestamp=self._clock.now())
        return await super().read(data_type)


class _Request:
    """A channel whose put runs ``handler(value)`` and completes when it has finished."""

    def __init__(
        self, *args: Any, handler: Callable[[Any], Awaitable[None]], **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self._handler = handler

    async def verify_value(self, value: Any) -> Any:
        value = await super().verify_value(value)
        await self._handler(value)
        return value


class _DoubleReadback(_Readback, ChannelDouble):
    pass


class _IntegerReadback(_Readback, ChannelInteger):
    pass


class _TextReadback(_Readback, ChannelChar):
    pass


class _DoubleRequest(_Request, ChannelDouble):
    pass


class _IntegerRequest(_Request, ChannelInteger):
    pass


class _TextRequest(_Request, ChannelChar):
    pass


class _StringRequest(_Request, ChannelString):
    pass


def _scalar(value: Any) -> Any:
    return value[0] if isinstance(value, list | tuple | np.ndarray) and len(value) == 1 else value


class LabIOC:
    """The PV database of one simulated lab (see the module docstring).

    Parameters
    ----------
    config
        The lab config of the simulated lab to serve.
    prefix
        Prepended to every PV suffix (``QD:`` gives ``QD:reactor:heater:SP``).
    speedup
        Lab seconds per wall-clock second; ``None`` runs as fast as the CPU allows.
    """

    def __init__(self, config: LabConfig, prefix: str = "QD:", speedup: float | None = 100.0):
        self.config = config
        self.prefix = prefix
        self.speedup = speedup
        self.lab: Lab = build_lab(
            config.at_speed(speedup).model_copy(update={"backend": "simulated"})
        )
        self.pvdb: dict[str, ChannelData] = {}
        self._busy: dict[int, list[Any]] = {}  # id(MSG channel) -> [BUSY channel, requests]
        self._build()

    @property
    def suffixes(self) -> set[str]:
        """What it serves, without the prefix."""
        return {name[len(self.prefix) :] for name in self.pvdb}

    # -- building -------------------------------------------------------------------------
    def _add(self, suffix: str, channel: ChannelData) -> ChannelData:
        self.pvdb[self.prefix + suffix] = channel
        return channel

    def _message(self, suffix: str) -> ChannelData:
        """A device's ``MSG`` PV, and beside it ``BUSY`` (1 while a request is in progress)."""
        message = self._add(suffix, ChannelChar(value="", max_length=_TEXT_BYTES))
        self._busy[id(message)] = [
            self._add(suffix[: -len("MSG")] + "BUSY", ChannelInteger(value=0)),
            0,
        ]
        return message

    def _readback(self, suffix: str, getter: Callable[[], Any], kind: str = "double") -> None:
        cls = {"double": _DoubleReadback, "int": _IntegerReadback, "text": _TextReadback}[kind]
        value = getter()
        extra: dict[str, Any] = {"max_length": _TEXT_BYTES} if kind == "text" else {}
        if isinstance(value, list | np.ndarray):
            extra["max_length"] = max(len(value), 1)
        self._add(suffix, cls(value=value, getter=getter, clock=self.lab.clock, **extra))

    def _request(
        self,
        suffix: str,
        start: Callable[[Any], Status | None],
        message: ChannelData,
        kind: str = "double",
        after: Callable[[], Awaitable[None]] | None = None,
        value: Any = None,
        **limits: float,
    ) -> None:
        """A request PV: ``start(value)`` returns the Status to wait for (or None)."""

        busy = self._busy[id(message)]

        async def handler(value: Any) -> None:
            busy[1] += 1
            await busy[0].write(1, timestamp=self.lab.clock.now())
            error: BaseException | None = None
            try:
                status = start(_scalar(value))
                while status is not None and not status.done:
                    await asyncio.sleep(_POLL_S)
                error = status.exception() if status is not None else None
            except Exception as exc:  # the instrument refused: reported through MSG
                error = exc
            if error is None and after is not None:
                await after()
            await message.write(
                "" if error is None else message_of(error), timestamp=self.lab.clock.now()
            )
            busy[1] -= 1
            await busy[0].write(int(busy[1] > 0), timestamp=self.lab.clock.now())

        cls = {
            "double": _DoubleRequest,
            "int": _IntegerRequest,
            "text": _TextRequest,
            "string": _StringRequest,
        }[kind]
        initial: Any = {"double": 0.0, "int": 0, "text": "", "string": ""}[kind]
        initial = initial if value is None else value
        extra: dict[str, Any] = {"max_length": _TEXT_BYTES} if kind == "text" else {}
        if limits:
            extra.update(
                lower_ctrl_limit=limits["low"],
                upper_ctrl_limit=limits["high"],
            )
        self._add(suffix, cls(value=initial, handler=handler, **extra))

    def _heater(self, prefix: str, heater: Any, cfg: Any) -> None:
        backend = heater.backend
        msg = self._message(f"{prefix}:MSG")
        ramp = self._add(f"{prefix}:RAMP", ChannelDouble(value=cfg.ramp_c_per_min))
        tol = self._add(f"{prefix}:TOL", ChannelDouble(value=cfg.tolerance_c))
        self._readback(f"{prefix}:RBV", lambda: round(backend.temperature(), 3))
        self._request(
            f"{prefix}:SP",
            lambda sp: backend.start(sp, ramp.value, tol.value),
            msg,
            value=round(backend.temperature(), 3),
            low=cfg.min_temperature_c,
            high=cfg.max_temperature_c,
        )
        self._request(f"{prefix}:HOLD", lambda _: backend.hold(), msg, kind="int")

    def _reactor(self, name: str, device: Any, cfg: Any) -> None:
        self._heater(f"{name}:heater", device.temperature, cfg)
        reactor, heater = device.backend, device.temperature.backend
        msg = self._message(f"{name}:MSG")
        self._request(
            f"{name}:INJECT", lambda v: reactor.inject(v, round(heater.temperature(), 3)), msg
        )
        self._request(f"{name}:SOURCE", reactor.select_source, msg, kind="string")
        self._request(f"{name}:QUENCH", reactor.quench, msg)
        self._readback(f"{name}:GROWTH", reactor.growth_time)

    def _build(self) -> None:
        lab, cfg = self.lab, self.config
        clock = lab.clock
        self._readback("CLOCK", clock.now)
        self._add("SPEEDUP", ChannelDouble(value=0.0 if self.speedup is None else self.speedup))
        timer_msg = self._message("timer:MSG")
        self._request("timer:WAIT", lambda s: clock.run(max(float(s), 0.0)), timer_msg)

        def reseed(value: Any) -> None:
            world_seed, seed, index = (int(v) for v in np.asarray(value).reshape(-1)[:3])
            lab.world.seed = world_seed
            lab.world.reseed(seed, index)

        self._add(
            "sim:RESEED",
            _IntegerRequest(value=[0, 0, 0], max_length=3, handler=_sync(reseed)),
        )

        for name, device in lab.reactors.items():  # each hot-injection reactor, by its name
            self._reactor(name, device, cfg.reactor_config(name))

        # robot
        robot = lab.robot.backend
        msg = self._message("robot:MSG")
        self._request("robot:ACTION", lambda t: robot.do(action_from_json(t)), msg, kind="text")
        self._request("robot:RELOAD", lambda n: robot.reload_tips(int(n)), msg, kind="int")
        self._readback("robot:TIPS", robot.tips_left, kind="int")
        self._readback("robot:HELD", robot.held_ul)
        deck = sorted(robot.locations())
        self._readback("robot:DECK", lambda: json.dumps(deck), kind="text")
        self._readback("robot:VOLUMES", lambda: [robot.volume_of(n) for n in deck])
        plates = [n for n, c in cfg.robot.deck.items() if c.kind == "plate"]
        self._readback(
            "robot:FRESH",
            lambda: json.dumps([w for p in plates for w in robot.fresh_wells(p)]),
            "text",
        )

        # flow
        if lab.flow is not None:
            flow = lab.flow.backend
            self._heater("flow:coil", lab.flow.coil, cfg.flow)
            for pump, pcfg in cfg.flow.pumps.items():
                msg = self._message(f"flow:{pump}:MSG")
                self._request(
                    f"flow:{pump}:SP",
                    lambda r, p=pump: flow.set_rate(p, r),
                    msg,
                    low=0.0,
                    high=pcfg.max_flow_ul_min,
                )
                self._readback(f"flow:{pump}:RBV", lambda p=pump: flow.rate(p))
                self._readback(f"flow:{pump}:REMAIN", lambda p=pump: flow.remaining(p))
                self._readback(f"flow:{pump}:STALLED", lambda p=pump: int(flow.stalled(p)), "int")
                self._request(f"flow:{pump}:STOP", lambda _, p=pump: flow.stop_pump(p), msg, "int")
                self._request(
                    f"flow:{pump}:REFILL",
                    lambda v, p=pump: flow.refill(p, None if v < 0 else v),
                    msg,
                )
            msg = self._message("flow:MSG")
            self._request("flow:LIGAND", flow.set_ligand, msg, kind="string")
            self._request("flow:MIXER", flow.set_mixer, msg)
            self._request("flow:UNCLOG", lambda _: flow.unclog(), msg, kind="int")
            self._readback("flow:PRESSURE", flow.pressure)

        # optical cell
        cell = lab.cell.backend
        msg = self._message("cell:MSG")
        points = cfg.cell.points
        readings: dict[str, ChannelData] = {}
        for attr, suffix in CELL_READINGS.items():
            if attr in ("absorbance", "pl"):
                channel: ChannelData = ChannelDouble(value=[0.0] * points, max_length=points)
            elif attr in ("saturated", "spikes"):
                channel = ChannelInteger(value=0)
            else:
                channel = ChannelDouble(value=math.nan)
            readings[attr] = self._add(suffix, channel)

        async def publish() -> None:
            now = clock.now()
            for attr, value in cell.reading().items():
                await readings[attr].write(value, timestamp=now)

        self._request("cell:DARK", cell.acquire_dark, msg)
        self._request("cell:REF", cell.acquire_reference, msg)
        self._request("cell:ACQ", cell.measure, msg, after=publish)
        self._request("cell:VIEW", cell.select_view, msg, kind="string", value="cell")

        # the safety interlock: an operator (or a test) writes 1 when the hood opens
        def hood(value: Any) -> None:
            lab.world.hood_open = bool(_scalar(value))

        self._add("safety:HOOD_OPEN", _IntegerRequest(value=0, handler=_sync(hood)))


def _sync(function: Callable[[Any], None]) -> Callable[[Any], Awaitable[None]]:
    async def handler(value: Any) -> None:
        function(value)

    return handler


def serve(config: LabConfig, prefix: str = "QD:", speedup: float | None = 100.0) -> None:
    """Serve the simulated lab of ``config`` until interrupted (the EPICS_CAS_* environment
    variables choose the interface and port)."""
    from caproto.asyncio.server import run

    # beacons go to a CA repeater; on loopback without one each beacon logs a traceback
    logging.getLogger("caproto.ctx").addFilter(
        lambda record: not str(record.msg).startswith("Failed to send beacon")
    )
    ioc = LabIOC(config, prefix, speedup)
    run(ioc.pvdb)

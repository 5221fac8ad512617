"""The pipetting robot through PyLabRobot (``robot.backend: pylabrobot``).

PyLabRobot drives Hamilton STAR, Tecan EVO, Opentrons OT-2 and others behind one
``LiquidHandler`` API. This backend builds a PyLabRobot deck from the lab config's deck (each
reservoir, vial, flask and cell a ``Trough``, each plate a ``Plate`` of its rows and columns,
unless ``robot.pylabrobot.resources`` names a PyLabRobot resource for it; racks of 1,000 µL
tips; a trash for used tips), turns on PyLabRobot's volume and tip tracking, and carries out
every QDLab action as PyLabRobot operations: a transfer is ``pick_up_tips``, then
``aspirate``/``dispense`` per trip, then ``drop_tips``.

When the rest of the lab is simulated the robot keeps QDLab's own ledger too (the simulated
world's, :class:`~devices.simulated.SimRobot`): the chemistry the reactor and the cell see. Each
PyLabRobot operation is mirrored there only once PyLabRobot has done it, so an operation that
fails (a clot, a crash, an error of the liquid handler) leaves the two ledgers agreeing: the
liquid is where PyLabRobot says it is, in the tip if the dispense failed. Vessels that other
instruments also fill or empty (the reactor flask, the cell) are set to the ledger's volume
before PyLabRobot touches them. Without a simulated world (an EPICS lab) PyLabRobot's trackers
are the ledger.

Every action is checked before anything moves: unknown labware, a source with too little
liquid, a destination too full, no tips (QDLab's checks and PyLabRobot's trackers both).
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import math
import threading
from collections.abc import Coroutine
from typing import Any

from ophyd.status import Status

from devices.config import LabConfig, LabwareConfig
from devices.robot import Aspirate, Dispense, Mix, RobotAction, Transfer
from devices.simulated import SimRobot
from devices.world import WorldError

__all__ = ["PlrRobot"]

log = logging.getLogger("pylabrobot")

_TIP_RACK = "pylabrobot.resources:hamilton_96_tiprack_1000uL"
_OP_TIMEOUT_S = 600.0


def _quiet_chatterbox() -> None:
    """PyLabRobot's chatterbox backend narrates each operation with ``print``; send the
    narration to the ``pylabrobot`` logger instead, so that a campaign's output (``--json``)
    stays its own."""
    from pylabrobot.liquid_handling.backends import chatterbox

    def narrate(*args: Any, **_: Any) -> None:
        log.debug(" ".join(str(a) for a in args))

    chatterbox.print = narrate  # the module's own name, looked up before the builtin


def _object(path: str, what: str) -> Any:
    """``package.module:name`` from PyLabRobot itself (never code named by a database)."""
    module, _, name = path.partition(":")
    if not module.split(".")[0] == "pylabrobot" or not name:
        raise WorldError(f"robot.pylabrobot.{what}: {path!r} is not 'pylabrobot.<module>:<name>'")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise WorldError(f"robot.pylabrobot.{what}: {path!r}: {exc}") from None


class PlrRobot:
    """QDLab's :class:`~devices.robot.RobotBackend` on a PyLabRobot ``LiquidHandler`` (see the
    module docstring).

    Parameters
    ----------
    config
        The lab config (its ``robot`` section: deck, pipette range, ``pylabrobot``).
    ledger
        The simulated world's robot when the rest of the lab is simulated, else None.
    backend
        A PyLabRobot ``LiquidHandlerBackend`` to use instead of the one the config names (a
        real instrument's, built with its connection settings).
    """

    def __init__(
        self, name: str, config: LabConfig, ledger: SimRobot | None, backend: Any = None
    ) -> None:
        try:
            from pylabrobot.liquid_handling import LiquidHandler
        except ImportError:
            raise WorldError(
                "robot.backend: pylabrobot needs PyLabRobot installed: "
                "pip install 'qdlab[pylabrobot]'"
            ) from None
        from pylabrobot.resources import Deck
        from pylabrobot.resources.tip_tracker import set_tip_tracking
        from pylabrobot.resources.volume_tracker import set_volume_tracking

        self.name, self.config, self.ledger = name, config, ledger
        rb = config.robot
        self._max_trip_ul = rb.max_volume_ul
        set_volume_tracking(True)
        set_tip_tracking(True)
        _quiet_chatterbox()
        if backend is None:
            backend = self._configured_backend()
        self.deck = Deck(size_x=100_000, size_y=1_000, size_z=1_000)
        self.resources: dict[str, Any] = {}
        x = 0.0
        for location, item in rb.deck.items():
            resource = self._resource(location, item)
            self.deck.assign_child_resource(resource, location=_at(x))
            self.resources[location] = resource
            x += resource.get_size_x() + 10.0
        self._racks = []
        racks = _object(rb.pylabrobot.tip_rack, "tip_rack")
        for i in range(max(1, math.ceil(rb.tips / 96))):
            rack = racks(name=f"_tips_{i}")
            self.deck.assign_child_resource(rack, location=_at(x))
            x += rack.get_size_x() + 10.0
            self._racks.append(rack)
        self._fill_tips(rb.tips)
        from pylabrobot.resources import Trash

        self.trash = Trash("_tip_trash", size_x=100, size_y=100, size_z=100)
        self.deck.assign_child_resource(self.trash, location=_at(x))
        self.lh = LiquidHandler(backend, deck=self.deck)
        self._loop = asyncio.new_event_loop()
        threading.Thread(target=self._loop.run_forever, daemon=True, name="pylabrobot").start()
        self._run(self.lh.setup())
        self._tip_on = False
        self._used_wells: set[str] = set()
        self._shared = [
            name
            for name, item in rb.deck.items()
            if item.kind in ("reactor", "cell", "waste") or name in config.reactor.cation_sources
        ]

    # -- building ---------------------------------------------------------------------------
    def _configured_backend(self) -> Any:
        plr = self.config.robot.pylabrobot
        if plr.backend == "chatterbox":
            from pylabrobot.liquid_handling.backends.chatterbox import (
                LiquidHandlerChatterboxBackend,
            )

            return LiquidHandlerChatterboxBackend(num_channels=plr.channels)
        return _object(plr.backend, "backend")(**plr.backend_options)

    def _resource(self, location: str, item: LabwareConfig) -> Any:
        from pylabrobot.resources import Plate, Trough, Well
        from pylabrobot.resources.utils import create_ordered_items_2d

        factory = self.config.robot.pylabrobot.resources.get(location)
        if factory is not None:
            resource = _object(factory, f"resources.{location}")(name=location)
        elif item.kind == "plate":
            wells = create_ordered_items_2d(
                Well, num_items_x=item.columns, num_items_y=item.rows, dx=1.0, dy=1.0, dz=1.0,
                item_dx=4.5, item_dy=4.5, size_x=4.0, size_y=4.0, size_z=40.0,
                max_volume=item.capacity_ul,
            )  # fmt: skip
            resource = Plate(
                location, size_x=item.columns * 4.5 + 2, size_y=item.rows * 4.5 + 2,
                size_z=44.0, ordered_items=wells,
            )  # fmt: skip
        else:
            # (a flow-through cell and a waste container never overflow in QDLab's ledger)
            unbounded = item.kind in ("cell", "waste")
            resource = Trough(
                location, size_x=80.0, size_y=80.0, size_z=100.0,
                max_volume=item.capacity_ul * (1e6 if unbounded else 1.0),
            )  # fmt: skip
        if item.kind != "plate":
            resource.tracker.set_volume(item.volume_ul)
        return resource

    def _fill_tips(self, count: int) -> None:
        left = count
        for rack in self._racks:
            for spot in rack.get_all_items():
                has = left > 0
                left -= int(has)
                if spot.tracker.has_tip != has:
                    if has:
                        spot.tracker.add_tip(spot.make_tip(), commit=True)
                    else:
                        spot.tracker.remove_tip(commit=True)

    def _run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(_OP_TIMEOUT_S)

    # -- what is where ----------------------------------------------------------------------
    def _container(self, location: str) -> Any:
        plate, _, well = location.partition(":")
        resource = self.resources.get(plate)
        if resource is None or (well and resource.category != "plate"):
            known = ", ".join(sorted(self.resources))
            raise WorldError(f"no location {location!r} on the deck; known: {known}")
        if not well:
            return resource
        try:
            return resource.get_well(well)
        except Exception:
            raise WorldError(f"{plate} has no well {well!r}") from None

    def tracked_ul(self, location: str) -> float:
        """What PyLabRobot's volume tracker says ``location`` holds, µL."""
        return float(self._container(location).tracker.get_used_volume())

    def tip_ul(self) -> float:
        """What PyLabRobot's tip tracker says the tip holds, µL (0 without a tip)."""
        channel = self.lh.head[0]
        return float(channel.get_tip().tracker.get_used_volume()) if channel.has_tip else 0.0

    def locations(self) -> list[str]:
        if self.ledger is not None:
            return self.ledger.locations()
        out = []
        for name, resource in self.resources.items():
            if resource.category == "plate":
                out += [f"{name}:{w.get_identifier()}" for w in resource.get_all_items()]
            else:
                out.append(name)
        return out

    def volume_of(self, location: str) -> float:
        if self.ledger is not None:
            return self.ledger.volume_of(location)
        return self.tracked_ul(location)

    def fresh_wells(self, plate: str) -> list[str]:
        if self.ledger is not None:
            return self.ledger.fresh_wells(plate)
        wells = self._container(plate).get_all_items()
        names = [f"{plate}:{w.get_identifier()}" for w in wells]
        return [n for n, w in zip(names, wells, strict=True)
                if n not in self._used_wells and w.tracker.get_used_volume() == 0]  # fmt: skip

    def tips_left(self) -> int:
        return sum(s.tracker.has_tip for r in self._racks for s in r.get_all_items())

    def held_ul(self) -> float:
        return self.ledger.held_ul() if self.ledger is not None else self.tip_ul()

    def reload_tips(self, count: int) -> None:
        self._fill_tips(count)
        if self.ledger is not None:
            self.ledger.reload_tips(count)

    # -- acting -----------------------------------------------------------------------------
    def check(self, action: RobotAction) -> None:
        if self.ledger is not None:
            self.ledger.check(action)
        self._sync_shared()
        if isinstance(action, Transfer | Aspirate):
            self._check_take(action.source, action.volume_ul)
        if isinstance(action, Transfer):
            self._check_receive(action.dest, action.volume_ul)
        if isinstance(action, Dispense):
            self._check_receive(action.dest, action.volume_ul)
        if isinstance(action, Mix):
            self._check_take(action.location, action.volume_ul)
        needs_tip = isinstance(action, Transfer | Aspirate | Mix) and not self._tip_on
        if needs_tip and self.tips_left() == 0:
            raise WorldError(f"{self.name} is out of tips: reload the tip rack")

    def _check_take(self, source: str, volume_ul: float) -> None:
        held = self.tracked_ul(source)
        if held + 1e-9 < volume_ul:
            raise WorldError(
                f"{source} holds {held:.10g} µL (PyLabRobot's tracker), cannot take "
                f"{volume_ul:.10g} µL"
            )

    def _check_receive(self, dest: str, volume_ul: float) -> None:
        free = float(self._container(dest).tracker.get_free_volume())
        if volume_ul > free + 1e-9:
            raise WorldError(
                f"{dest} has room for {free:.10g} µL (PyLabRobot's tracker), cannot add "
                f"{volume_ul:.10g} µL"
            )

    def _sync_shared(self) -> None:
        """The flask, the cell, the waste and the injector's reservoirs also change by other
        instruments' doing: take the ledger's volume before PyLabRobot touches them."""
        if self.ledger is None:
            return
        for name in self._shared:
            self.resources[name].tracker.set_volume(self.ledger.volume_of(name))

    def do(self, action: RobotAction) -> Status:
        """Carry out a checked action (see the module docstring); the Status fails with
        PyLabRobot's error, the ledgers agreeing on where the liquid is."""
        status = Status(obj=self)
        try:
            for step in self._steps(action):
                step()
        except Exception as exc:
            status.set_exception(exc)
        else:
            status.set_finished()
        return status

    def _steps(self, action: RobotAction) -> list[Any]:
        """The action as PyLabRobot operations, each with its mirror in the ledger."""
        if isinstance(action, Transfer):
            trips = max(1, math.ceil(action.volume_ul / self._max_trip_ul - 1e-9))
            steps, left = [], action.volume_ul
            for i in range(trips):
                # the last trip takes what is left, so that a source emptied in trips is empty
                part = left if i == trips - 1 else action.volume_ul / trips
                left -= part
                steps += [lambda v=part: self._aspirate(action.source, v),
                          lambda v=part: self._dispense(action.dest, v)]  # fmt: skip
            return [*steps, self._drop_tip]
        if isinstance(action, Aspirate):
            return [lambda: self._aspirate(action.source, action.volume_ul)]
        if isinstance(action, Dispense):
            return [lambda: self._dispense(action.dest, action.volume_ul)]
        return [lambda: self._mix(action), self._drop_tip]

    def _pick_up_tip(self) -> None:
        if self._tip_on:
            return
        spot = next(s for r in self._racks for s in r.get_all_items() if s.tracker.has_tip)
        self._run(self.lh.pick_up_tips([spot]))
        self._tip_on = True

    def _aspirate(self, source: str, volume_ul: float) -> None:
        self._pick_up_tip()
        self._sync_shared()
        self._run(self.lh.aspirate([self._container(source)], vols=[volume_ul]))
        self._mirror(Aspirate(source, volume_ul))

    def _dispense(self, dest: str, volume_ul: float) -> None:
        self._sync_shared()
        self._run(self.lh.dispense([self._container(dest)], vols=[volume_ul]))
        self._used_wells.add(dest)
        self._mirror(Dispense(dest, volume_ul))

    def _mix(self, action: Mix) -> None:
        self._pick_up_tip()
        self._sync_shared()
        here = self._container(action.location)
        for _ in range(action.cycles):
            self._run(self.lh.aspirate([here], vols=[action.volume_ul]))
            self._run(self.lh.dispense([here], vols=[action.volume_ul]))
        self._mirror(action)

    def _drop_tip(self) -> None:
        if self._tip_on:
            self._run(self.lh.drop_tips([self.trash]))
            self._tip_on = False
        if self.ledger is not None:
            self.ledger.drop_tip()

    def _mirror(self, action: RobotAction) -> None:
        if self.ledger is not None:
            self.ledger.do(action).wait(_OP_TIMEOUT_S)


def _at(x: float) -> Any:
    from pylabrobot.resources import Coordinate

    return Coordinate(x, 0.0, 0.0)

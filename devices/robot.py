"""The pipetting robot: moves liquid between labware on its deck.

``set()`` takes an action (:class:`Aspirate`, :class:`Dispense`, :class:`Transfer`,
:class:`Mix`), so plans write ``yield from bps.mv(lab.robot, Transfer("pbbr2", "reactor_flask",
500))`` and ``summarize_plan``/``check_limits`` see every liquid movement. Every action is
checked before anything moves: known labware, pipette range, tips left, and liquid levels (a
reservoir cannot go below zero, a well cannot overflow). Volumes above the pipette's maximum are
moved in several trips with one tip. The backend (:class:`RobotBackend`) does the work; the
simulated one is :class:`devices.simulated.SimRobot`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol

from ophyd import Component as Cpt
from ophyd import Device, Signal
from ophyd.status import Status
from ophyd.utils import LimitError

from devices.base import ComputedSignal, then
from devices.clock import VirtualClock

__all__ = [
    "Aspirate",
    "Dispense",
    "Mix",
    "PipettingRobot",
    "RobotAction",
    "RobotBackend",
    "Transfer",
]


@dataclass(frozen=True)
class Aspirate:
    """Draw ``volume_ul`` from ``source`` into the pipette (a fresh tip if none is on)."""

    source: str
    volume_ul: float


@dataclass(frozen=True)
class Dispense:
    """Dispense ``volume_ul`` of what the pipette holds into ``dest``."""

    dest: str
    volume_ul: float


@dataclass(frozen=True)
class Transfer:
    """Aspirate from ``source``, dispense into ``dest``, drop the tip; in trips if needed."""

    source: str
    dest: str
    volume_ul: float


@dataclass(frozen=True)
class Mix:
    """Pipette ``volume_ul`` up and down ``cycles`` times in ``location``."""

    location: str
    volume_ul: float
    cycles: int = 3


RobotAction = Aspirate | Dispense | Transfer | Mix


class RobotBackend(Protocol):
    """What a :class:`PipettingRobot` needs from whatever moves the liquid."""

    def locations(self) -> list[str]:
        """Every location on the deck (wells as ``plate:A1``)."""

    def volume_of(self, location: str) -> float:
        """Liquid in ``location`` now, µL."""

    def fresh_wells(self, plate: str) -> list[str]:
        """The wells of ``plate`` never used, in order."""

    def tips_left(self) -> int:
        """Unused tips in the rack."""

    def held_ul(self) -> float:
        """Liquid in the pipette, µL."""

    def reload_tips(self, count: int) -> None:
        """A fresh tip rack (an operator action)."""

    def check(self, action: RobotAction) -> None:
        """Raise if ``action`` is impossible now (unknown labware, levels, tips)."""

    def do(self, action: RobotAction) -> Status:
        """Carry out a checked action; the Status finishes when it is done."""


def _unknown(location: str, known: set[str]) -> str:
    """Why ``location`` is not on the deck, naming what is (a plate's wells as a range)."""
    plates: dict[str, list[str]] = {}
    for name in known:
        plate, sep, well = name.partition(":")
        if sep:
            plates.setdefault(plate, []).append(well)
    plate, sep, well = location.partition(":")
    if sep and plate in plates:
        wells = sorted(plates[plate], key=lambda w: (w[0], int(w[1:]) if w[1:].isdigit() else 0))
        return f"{plate} has no well {well!r} (it has {wells[0]}-{wells[-1]})"
    places = sorted({n for n in known if ":" not in n} | {f"{p}:<well>" for p in plates})
    return f"no location {location!r} on the deck; known: {', '.join(places)}"


class PipettingRobot(Device):
    """Liquid-handling robot with a deck of labware from the lab config.

    Readings: ``tips_remaining``, ``held_ul`` (liquid in the pipette), ``last_action``.
    Configuration: pipette volume range. Liquid levels: :meth:`volume_of`.
    """

    tips_remaining = Cpt(ComputedSignal, getter="_tips_left", kind="normal")
    held_ul = Cpt(ComputedSignal, getter="_held_volume", units="uL", kind="normal")
    last_action = Cpt(Signal, value="", kind="normal")
    min_volume_ul = Cpt(Signal, value=1.0, kind="config")
    max_volume_ul = Cpt(Signal, value=1000.0, kind="config")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.clock: VirtualClock | None = None
        self.backend: RobotBackend | None = None

    def attach(
        self, backend: RobotBackend, clock: VirtualClock, min_ul: float, max_ul: float
    ) -> None:
        """Connect the backend and the config's pipette range (done by build_lab)."""
        self.backend = backend
        self.clock = clock
        self.min_volume_ul.put(min_ul)
        self.max_volume_ul.put(max_ul)

    def _tips_left(self) -> int:
        return self.backend.tips_left()

    def _held_volume(self) -> float:
        return self.backend.held_ul()

    @property
    def deck(self) -> list[str]:
        """Every location a liquid can be (wells as ``plate:A1``)."""
        return sorted(self.backend.locations())

    def volume_of(self, location: str) -> float:
        """Liquid in ``location`` now, µL."""
        return self.backend.volume_of(location)

    def fresh_wells(self, plate: str) -> list[str]:
        """The wells of ``plate`` never used, in order."""
        return self.backend.fresh_wells(plate)

    def reload_tips(self, count: int) -> None:
        """A fresh tip rack (an operator action)."""
        self.backend.reload_tips(int(count))

    # -- checks ---------------------------------------------------------------------------
    def _check_volume(self, volume_ul: float, allow_trips: bool) -> None:
        low, high = self.min_volume_ul.get(), self.max_volume_ul.get()
        if (
            not math.isfinite(volume_ul)
            or volume_ul < low
            or (not allow_trips and volume_ul > high)
        ):
            span = f"[{low:g}, {high:g}] µL" if not allow_trips else f">= {low:.10g} µL"
            raise LimitError(
                f"{self.name}: volume {volume_ul!r} µL is outside the pipette's {span}"
            )

    def check_value(self, value: Any) -> None:
        """Static checks of an action: its type, known labware, pipette volume range."""
        if not isinstance(value, Aspirate | Dispense | Transfer | Mix):
            raise LimitError(
                f"{self.name} takes Aspirate, Dispense, Transfer or Mix, got {value!r}"
            )
        if self.backend is not None:
            known = set(self.backend.locations())
            for attr in ("source", "dest", "location"):
                loc = getattr(value, attr, None)
                if loc is not None and loc not in known:
                    raise LimitError(f"{self.name}: {_unknown(loc, known)}")
        self._check_volume(value.volume_ul, allow_trips=isinstance(value, Transfer))

    # -- actions --------------------------------------------------------------------------
    def set(self, value: RobotAction) -> Status:
        """Carry out one action; raises before anything moves if it is impossible."""
        self.check_value(value)
        self.backend.check(value)
        status = self.backend.do(value)
        return then(
            status, lambda: self.last_action.put(repr(value), timestamp=self.clock.now()), self
        )

    def transfer(self, source: str, dest: str, volume_ul: float) -> Status:
        """Shorthand for ``set(Transfer(source, dest, volume_ul))``."""
        return self.set(Transfer(source, dest, volume_ul))

    def aspirate(self, source: str, volume_ul: float) -> Status:
        """Shorthand for ``set(Aspirate(source, volume_ul))``."""
        return self.set(Aspirate(source, volume_ul))

    def dispense(self, dest: str, volume_ul: float) -> Status:
        """Shorthand for ``set(Dispense(dest, volume_ul))``."""
        return self.set(Dispense(dest, volume_ul))

    def mix(self, location: str, volume_ul: float, cycles: int = 3) -> Status:
        """Shorthand for ``set(Mix(location, volume_ul, cycles))``."""
        return self.set(Mix(location, volume_ul, cycles))

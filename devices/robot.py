"""The pipetting robot: moves liquid between labware on its deck.

``set()`` takes an action (:class:`Aspirate`, :class:`Dispense`, :class:`Transfer`,
:class:`Mix`), so plans write ``yield from bps.mv(lab.robot, Transfer("pbbr2", "reactor_flask",
500))`` and ``summarize_plan``/``check_limits`` see every liquid movement. Every action is
checked before anything moves: known labware, pipette range, tips left, and liquid levels (a
reservoir cannot go below zero, a well cannot overflow). Volumes above the pipette's maximum are
moved in several trips with one tip.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ophyd import Component as Cpt
from ophyd import Device, Signal
from ophyd.status import Status
from ophyd.utils import LimitError

from devices.base import ComputedSignal, Step, run_step
from devices.clock import VirtualClock
from devices.world import Liquid, SimulatedWorld, WorldError

__all__ = ["Aspirate", "Dispense", "Mix", "PipettingRobot", "RobotAction", "Transfer"]


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
        self.world: SimulatedWorld | None = None
        self._tip_count = 0
        self._tip_on = False
        self._held_liquid: Liquid | None = None
        self._seconds_per_trip = 8.0

    def attach(
        self,
        world: SimulatedWorld,
        min_ul: float,
        max_ul: float,
        tips: int,
        seconds_per_transfer: float,
    ) -> None:
        """Connect the simulated deck and the config's pipette (done by build_lab)."""
        self.world = world
        self.clock = world.clock
        self.min_volume_ul.put(min_ul)
        self.max_volume_ul.put(max_ul)
        self._tip_count = tips
        self._seconds_per_trip = seconds_per_transfer

    def _tips_left(self) -> int:
        return self._tip_count

    def _held_volume(self) -> float:
        return self._held_liquid.volume_ul if self._held_liquid is not None else 0.0

    @property
    def deck(self) -> list[str]:
        """Every location a liquid can be (wells as ``plate:A1``)."""
        return sorted(self.world.locations)

    def volume_of(self, location: str) -> float:
        """Liquid in ``location`` now, µL."""
        return self.world.location(location).liquid.volume_ul

    def reload_tips(self, count: int) -> None:
        """A fresh tip rack (an operator action)."""
        self._tip_count = int(count)

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
        for loc in (getattr(value, a) for a in ("source", "dest", "location") if hasattr(value, a)):
            if self.world is not None:
                self.world.location(loc)
        self._check_volume(value.volume_ul, allow_trips=isinstance(value, Transfer))

    # -- actions --------------------------------------------------------------------------
    def set(self, value: RobotAction) -> Status:
        """Carry out one action; raises before anything moves if it is impossible."""
        self.check_value(value)
        step = self._plan(value)
        action = step.action

        def act() -> None:
            if action is not None:
                action()
            self.last_action.put(repr(value), timestamp=self.clock.now())

        return run_step(self.clock, Step(step.duration, act), self)

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

    def _need_tip(self) -> None:
        if not self._tip_on and self._tip_count <= 0:
            raise WorldError(f"{self.name} is out of tips: reload the tip rack")

    def _plan(self, action: RobotAction) -> Step:
        world = self.world
        trip = self._seconds_per_trip
        if isinstance(action, Transfer):
            self._need_tip()
            if self._held_liquid is not None:
                raise WorldError(f"{self.name} holds liquid: dispense it before a transfer")
            world.check_transfer(action.source, action.dest, action.volume_ul)
            trips = math.ceil(action.volume_ul / self.max_volume_ul.get())

            def act() -> None:
                world.transfer(action.source, action.dest, action.volume_ul)
                if not self._tip_on:
                    self._tip_count -= 1
                self._tip_on = False  # dropped after the transfer

            return Step(trip * trips, act)
        if isinstance(action, Aspirate):
            self._need_tip()
            if self._held_volume() + action.volume_ul > self.max_volume_ul.get():
                raise LimitError(
                    f"{self.name}: holding {self._held_volume():.10g} µL, cannot aspirate "
                    f"{action.volume_ul:.10g} µL more "
                    f"(pipette max {self.max_volume_ul.get():.10g} µL)"
                )
            world.check_take(action.source, action.volume_ul)

            def act() -> None:
                part = world.take(action.source, action.volume_ul)
                if self._held_liquid is None:
                    self._held_liquid = part
                else:
                    self._held_liquid.add(part)
                if not self._tip_on:
                    self._tip_count -= 1
                    self._tip_on = True

            return Step(trip / 2, act)
        if isinstance(action, Dispense):
            if self._held_volume() + 1e-9 < action.volume_ul:
                raise WorldError(
                    f"{self.name} holds {self._held_volume():.10g} µL, cannot dispense "
                    f"{action.volume_ul:.10g} µL"
                )
            world.check_receive(action.dest, action.volume_ul)

            def act() -> None:
                part = self._held_liquid.take(action.volume_ul)
                world.receive(action.dest, part)
                if self._held_liquid.volume_ul <= 1e-9:
                    self._held_liquid = None

            return Step(trip / 2, act)
        # Mix: liquid must be there to mix
        here = world.location(action.location)
        if here.liquid.volume_ul + 1e-9 < action.volume_ul:
            raise WorldError(
                f"{action.location} holds {here.liquid.volume_ul:.10g} µL, cannot mix "
                f"{action.volume_ul:.10g} µL"
            )
        self._need_tip()

        def act() -> None:
            if not self._tip_on:
                self._tip_count -= 1
            self._tip_on = False

        return Step(trip / 2 + 2.0 * action.cycles, act)

"""The lab's safety interlock as a device: ``lab.safety.hood_open`` (1 while the fume hood or
the enclosure door is open). The campaign runner and the IPython session suspend plans on it
(:mod:`orchestrator.execution.safety`). The backend reads the switch: the simulated world's
``hood_open`` (an operator or a test opens it), or the ``safety:HOOD_OPEN`` PV.
"""

from __future__ import annotations

from typing import Any, Protocol

from ophyd import Component as Cpt
from ophyd import Device

from devices.base import ComputedSignal
from devices.clock import VirtualClock

__all__ = ["InterlockBackend", "Safety"]


class InterlockBackend(Protocol):
    """What :class:`Safety` needs from whatever reads the interlock switch."""

    def hood_open(self) -> bool:
        """Whether the hood (or door) is open now."""


class Safety(Device):
    """The safety interlock (see the module docstring)."""

    hood_open = Cpt(ComputedSignal, getter="_hood_open", kind="hinted")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.clock: VirtualClock | None = None
        self.backend: InterlockBackend | None = None

    def attach(self, backend: InterlockBackend, clock: VirtualClock) -> None:
        """Connect the backend (done by build_lab)."""
        self.backend = backend
        self.clock = clock

    def _hood_open(self) -> int:
        return int(self.backend.hood_open())

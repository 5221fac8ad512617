"""A centrifuge for QDLab: spins a product down (purification before it is measured). A QDLab
instrument-kind plugin (``qdlab.instruments`` entry point ``centrifuge``): an ophyd device and
one plan step, ``spin``."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any, ClassVar

import bluesky.plan_stubs as bps
from ophyd import Component as Cpt
from ophyd import Device, Kind, Signal

__all__ = ["Centrifuge", "CentrifugeDevice", "spin"]


class CentrifugeDevice(Device):
    """A centrifuge: ``set((rpm, seconds))`` spins whatever is loaded for that many seconds of
    lab time; the readings say what the last spin was."""

    rpm = Cpt(Signal, value=0.0, kind=Kind.hinted)
    spin_s = Cpt(Signal, value=0.0, kind=Kind.normal)
    sample = Cpt(Signal, value="", kind=Kind.normal)
    spins = Cpt(Signal, value=0, kind=Kind.config)

    def __init__(self, *args: Any, clock: Any, max_rpm: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.clock, self.max_rpm = clock, max_rpm

    def set(self, value: tuple[float, float]) -> Any:
        rpm, seconds = value
        if not 0 < rpm <= self.max_rpm:
            raise ValueError(f"{self.name}: rpm {rpm:g} is outside (0, {self.max_rpm:g}]")
        status = self.clock.run(seconds)  # the lab's time: fast in simulation, real in a lab
        self.rpm.put(float(rpm))
        self.spin_s.put(float(seconds))
        self.spins.put(self.spins.get() + 1)
        return status


def spin(
    device: CentrifugeDevice, sample: str, rpm: float = 8000.0, seconds: float = 300.0
) -> Generator[Any, Any, Any]:
    """Spin the product in ``sample`` at ``rpm`` for ``seconds``, then read the centrifuge into
    a stream named after it. Refuses (ValueError naming the argument) before anything moves."""
    if not 0 < rpm <= device.max_rpm:
        raise ValueError(f"rpm {rpm:g} is outside the allowed range (0, {device.max_rpm:g}]")
    if not 0 < seconds <= 3600:
        raise ValueError(f"seconds {seconds:g} is outside the allowed range (0, 3600]")

    def plan() -> Generator[Any, Any, Any]:
        yield from bps.mv(device.sample, sample)
        yield from bps.mv(device, (rpm, seconds))
        return (yield from bps.trigger_and_read([device], name=device.name))

    return plan()


class Centrifuge:
    """The instrument kind ``centrifuge``. ``options``: ``max_rpm`` (default 15000)."""

    steps: ClassVar[dict[str, Any]] = {"spin": spin}

    @staticmethod
    def device(name: str, config: Any, clock: Any, options: dict[str, Any]) -> CentrifugeDevice:
        unknown = set(options) - {"max_rpm"}
        if unknown:
            raise ValueError(f"unknown options {sorted(unknown)}; allowed: max_rpm")
        max_rpm = float(options.get("max_rpm", 15000.0))
        if not max_rpm > 0:
            raise ValueError(f"max_rpm must be > 0, got {max_rpm:g}")
        return CentrifugeDevice(name=name, clock=clock, max_rpm=max_rpm)

#!/usr/bin/env python3
"""An ordinary hotplate controller: an ``ao`` setpoint with drive limits and an ``ai`` readback
that ramps towards it at a fixed rate, scanned at 10 Hz. A put to the setpoint completes at
once (as an ``ao`` record's does); nothing says when the plate has arrived but the readback.

    python -m tests.iocs.hotplate --prefix HP1: --list-pvs

PVs: ``TEMP:SP`` (°C, limits 20-150: a put outside is refused), ``TEMP:RBV`` (°C), ``RATE``
(°C/s), ``LOCK`` (1: the front panel is locked and the setpoint refuses every put).
"""

from caproto.server import PVGroup, ioc_arg_parser, pvproperty, run


class Hotplate(PVGroup):
    """A setpoint/readback pair and its ramp rate."""

    setpoint = pvproperty(
        name="TEMP:SP",
        value=25.0,
        record="ao",
        precision=1,
        units="degC",
        lower_ctrl_limit=20.0,
        upper_ctrl_limit=150.0,
        doc="Setpoint",
    )
    readback = pvproperty(
        name="TEMP:RBV",
        value=25.0,
        record="ai",
        read_only=True,
        precision=2,
        units="degC",
        doc="Plate temperature",
    )
    rate = pvproperty(name="RATE", value=5.0, record="ao", units="degC/s", doc="Ramp rate")
    lock = pvproperty(name="LOCK", value=0, doc="Front-panel lock (1: locked)")

    @setpoint.putter
    async def setpoint(self, instance, value):
        if self.lock.value:
            raise PermissionError("the front-panel lock is on")
        return value

    @readback.scan(period=0.1)
    async def readback(self, instance, async_lib):
        step = self.rate.value * 0.1
        now, target = instance.value, self.setpoint.value
        if now != target:
            await instance.write(
                target if abs(target - now) <= step else now + step * (1 if target > now else -1)
            )


if __name__ == "__main__":
    ioc_options, run_options = ioc_arg_parser(
        default_prefix="HP1:", desc="An ordinary hotplate controller"
    )
    run(Hotplate(**ioc_options).pvdb, **run_options)

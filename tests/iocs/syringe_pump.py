#!/usr/bin/env python3
"""An ordinary syringe pump served as a motor record (as many pump IOCs are): ``RATE`` is the
flow-rate setpoint (µL/min, the record's ``VAL``), ``RATE.RBV`` what the pump runs at, ramping at
``velocity`` µL/min per second, ``RATE.DMOV`` 1 once it has arrived, ``RATE.STOP`` stops it
where it is. caproto's own motor-record simulator does the moving.

    python -m tests.iocs.syringe_pump --prefix SP1: --list-pvs
"""

from caproto.ioc_examples.fake_motor_record import FakeMotor
from caproto.server import PVGroup, SubGroup, ioc_arg_parser, run


class SyringePump(PVGroup):
    """One pump: its rate as a motor."""

    rate = SubGroup(
        FakeMotor, velocity=4000.0, precision=1, user_limits=(0.0, 6000.0), prefix="RATE"
    )


if __name__ == "__main__":
    ioc_options, run_options = ioc_arg_parser(
        default_prefix="SP1:", desc="An ordinary syringe pump"
    )
    run(SyringePump(**ioc_options).pvdb, **run_options)

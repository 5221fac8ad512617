"""Safe limits refuse a bad setpoint before anything changes; every fault is injectable."""

import bluesky.plan_stubs as bps
import bluesky.plans as bp
import pytest
from bluesky.utils import FailedStatus
from ophyd.utils import LimitError

from devices import Dispense, Mix, Transfer, WorldError
from tests.conftest import primary_events
from tests.test_devices_bluesky import load_and_inject


def state(lab):
    """Everything a bad request must leave unchanged."""
    return (
        lab.reactor.temperature.setpoint.get(),
        lab.reactor.temperature.position,
        lab.reactor.stir_rpm.get(),
        lab.reactor.temperature.ramp_rate.get(),
        lab.robot.tips_remaining.get(),
        {k: v.liquid.volume_ul for k, v in lab.world.locations.items()},
        {k: p.setpoint.get() for k, p in lab.flow.pumps.items()},
        lab.cell.integration_time.get(),
        lab.clock.now(),
    )


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (lambda lab: lab.reactor.temperature.set(230), r"setpoint = 230 .*\[20, 220\] °C"),
        (lambda lab: lab.reactor.temperature.set(5), r"setpoint = 5 .*\[20, 220\]"),
        (lambda lab: lab.reactor.temperature.ramp_rate.set(45), r"ramp_rate = 45 .*\[0.1, 30\]"),
        (lambda lab: lab.reactor.stir_rpm.set(2000), r"stir_rpm = 2000 .*\[0, 1500\] rpm"),
        (lambda lab: lab.reactor.injector.set(5000), r"injector = 5000 .*\[50, 2000\] uL"),
        (lambda lab: lab.reactor.quench.set(-1), r"growth time = -1 .*\[0, 3600\] s"),
        (lambda lab: lab.robot.set(Transfer("pbbr2", "reactor_flask", 0.2)), r"volume 0.2 µL"),
        (lambda lab: lab.robot.set(Dispense("cell", 1500)), r"\[1, 1000\] µL"),
        (lambda lab: lab.robot.set("pour it all"), r"takes Aspirate, Dispense, Transfer or Mix"),
        (
            lambda lab: lab.robot.set(Transfer("nowhere", "cell", 10)),
            r"no location 'nowhere' on the deck; known: cell",
        ),
        (lambda lab: lab.flow.pb.set(7000), r"pb_setpoint = 7000 .*\[0, 6000\] uL/min"),
        (lambda lab: lab.flow.coil.set(210), r"setpoint = 210 .*\[20, 200\] °C"),
        (lambda lab: lab.flow.ligand.set("water"), r"flow_ligand = 'water' is not one of"),
        (lambda lab: lab.flow.mixer.set(5000), r"flow_mixer = 5000 .*\[0, 3000\] rpm"),
        (lambda lab: lab.cell.integration_time.set(20000), r"\[1, 10000\] ms"),
        (lambda lab: lab.timer.set(-5), r"timer wait = -5 .*\[0, 86400\] s"),
    ],
)
def test_out_of_limit_requests_raise_before_the_device_changes(lab, request_, message):
    before = state(lab)
    with pytest.raises(LimitError, match=message):
        request_(lab)
    assert state(lab) == before


@pytest.mark.parametrize(
    ("action", "message"),
    [
        (Transfer("plate:A1", "cell", 10), r"plate:A1 holds 0 µL, cannot take 10 µL"),
        (Transfer("pbbr2", "cell", 2e6), r"pbbr2 holds 1000000 µL, cannot take 2000000 µL"),
        (Mix("plate:B2", 50), r"plate:B2 holds 0 µL, cannot mix"),
    ],
)
def test_liquid_levels_refuse_impossible_moves(lab, action, message):
    before = state(lab)
    with pytest.raises(WorldError, match=message):
        lab.robot.set(action)
    assert state(lab) == before


def test_a_well_cannot_be_over_filled(lab):
    for _ in range(2):
        lab.robot.set(Transfer("toluene", "plate:A1", 1000)).wait(1)
    before = state(lab)
    with pytest.raises(WorldError, match=r"plate:A1 holds 2000 of 2000 µL, cannot add 10 µL"):
        lab.robot.set(Transfer("toluene", "plate:A1", 10))
    assert state(lab) == before


def test_the_robot_runs_out_of_tips(lab):
    lab.robot.reload_tips(1)
    lab.robot.set(Transfer("toluene", "plate:A1", 100)).wait(1)
    assert lab.robot.tips_remaining.get() == 0
    with pytest.raises(WorldError, match="out of tips"):
        lab.robot.set(Transfer("toluene", "plate:A2", 100))


def test_injection_is_refused_unless_at_temperature(lab, RE):
    RE(bps.mv(lab.robot, Transfer("pbbr2", "reactor_flask", 2000.0)))
    lab.reactor.temperature.set(140)  # fast clock: settled when set() returns
    lab.reactor.temperature.backend.model.start(100.0, 20.0)  # it drifts away (lid opened)
    lab.clock.advance(60)
    with pytest.raises(RuntimeError, match=r"injection refused: reactor_temperature reads"):
        lab.reactor.injector.set(500)
    assert lab.robot.volume_of("reactor_flask") == pytest.approx(2000.0)


def test_heater_settles_within_tolerance_with_a_small_overshoot(lab):
    heater = lab.reactor.temperature
    start = lab.clock.now()
    heater.set(150).wait(1)
    assert abs(heater.position - 150) <= heater.tolerance.get()
    took = lab.clock.now() - start
    assert 375 < took < 500  # 125 °C at 20 °C/min = 375 s, plus settling
    overshoot = heater.backend.model._temps.max() - 150
    assert 0.5 < overshoot < 0.02 * 125  # small: under the configured 2 % of the step


def with_fault(lab, kind):
    lab.world.set_fault(kind, 1.0)
    return lab


def test_fault_heater_timeout_fails_the_status(lab, RE):
    with pytest.raises(FailedStatus) as info:
        RE(bps.mv(with_fault(lab, "heater_timeout").reactor.temperature, 150))
    assert isinstance(info.value.__cause__, TimeoutError) or "did not settle" in repr(info.value)


def test_fault_heater_overshoot_trips_the_interlock_near_the_limit(lab):
    status = with_fault(lab, "heater_overshoot").reactor.temperature.set(215)
    with pytest.raises(RuntimeError, match="over-temperature interlock"):
        status.wait(1)


def test_fault_pump_stall_fails_and_flags_the_pump(lab, RE):
    with pytest.raises(FailedStatus):
        RE(bps.mv(with_fault(lab, "pump_stall").flow.pb, 500))
    assert lab.flow.pb.stalled.get() == 1 and lab.flow.pb.position == 0.0


def test_fault_clogged_coil_over_pressures_and_stops_the_pumps(lab):
    status = with_fault(lab, "coil_clog").flow.pb.set(1000)
    with pytest.raises(RuntimeError, match=r"pressure .* above the 500 kPa limit"):
        status.wait(1)
    assert lab.flow.total_flow.get() == 0.0


def test_fault_spectrometer_timeout_fails_the_trigger(lab, RE):
    with pytest.raises(FailedStatus):
        RE(bp.count([with_fault(lab, "spectrometer_timeout").cell]))


def test_fault_saturation_is_flagged_in_the_reading(lab, RE):
    RE(load_and_inject(lab))
    RE(bp.count([with_fault(lab, "spectrometer_saturation").cell]))
    data = primary_events(RE.docs)[-1]["data"]
    assert data["cell_saturated"] == 1 and data["cell_pl_max_counts"] == 65535


def test_fault_bubble_gives_a_spiky_spectrum_that_is_flagged(lab, RE):
    RE(load_and_inject(lab))
    RE(bp.count([lab.cell]))
    RE(bp.count([with_fault(lab, "cell_bubble").cell]))
    clean, bubbly = [d["data"]["cell_spikes"] for d in primary_events(RE.docs)]
    assert clean == 0 and bubbly >= 4


def test_unknown_fault_names_are_refused(lab):
    with pytest.raises(KeyError, match="unknown fault"):
        lab.world.fault("gremlins")

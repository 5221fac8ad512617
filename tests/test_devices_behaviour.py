"""Clock, robot bookkeeping, LARP, flow steady state, and lab configs."""

import time

import bluesky.plan_stubs as bps
import bluesky.plans as bp
import numpy as np
import pytest

from devices import Aspirate, ConfigError, Dispense, Mix, Transfer, VirtualClock, build_lab
from tests.conftest import primary_events
from tests.test_devices_bluesky import _sim_config


def test_fast_clock_jumps_by_the_step_duration():
    clock = VirtualClock("fast", start=1000.0)
    status = clock.run(90.0)
    assert status.done and status.success
    assert clock.now() == 1090.0


def test_realtime_clock_finishes_after_the_scaled_wall_time():
    clock = VirtualClock("realtime", speed=100.0)
    start = time.monotonic()
    status = clock.run(20.0)  # 20 virtual s at 100x: 0.2 s
    assert not status.done
    status.wait(5)
    assert 0.15 < time.monotonic() - start < 2.0
    assert clock.elapsed() >= 19.0


def test_a_realtime_clock_runs_fast_inside_fast_and_goes_on_from_there():
    clock = VirtualClock("realtime", speed=10.0, start=1000.0)
    with clock.fast():
        status = clock.run(3600.0)
        assert status.done and clock.mode == "fast"
        assert 4600.0 <= clock.now() < 4601.0
    assert clock.mode == "realtime"
    time.sleep(0.05)
    assert 4600.3 < clock.now() < 4610.0  # continues from the hour it skipped, at 10x
    assert not clock.run(10.0).done


def test_clock_modes_are_validated():
    with pytest.raises(ValueError, match="fast, realtime"):
        VirtualClock("slow")


def test_timer_waits_on_the_virtual_clock(lab, RE):
    before = lab.clock.now()
    RE(bps.mv(lab.timer, 120))
    assert lab.clock.now() - before == pytest.approx(120, abs=1e-6)


def test_aspirate_dispense_mix_keep_the_books(lab):
    robot = lab.robot
    tips = robot.tips_remaining.get()
    toluene = robot.volume_of("toluene")
    robot.set(Aspirate("toluene", 800)).wait(1)
    assert robot.held_ul.get() == pytest.approx(800)
    robot.set(Dispense("plate:C3", 500)).wait(1)
    robot.set(Dispense("plate:C4", 300)).wait(1)
    assert robot.held_ul.get() == 0
    assert robot.volume_of("plate:C3") == pytest.approx(500)
    assert robot.volume_of("toluene") == pytest.approx(toluene - 800)
    robot.set(Mix("plate:C3", 200, cycles=3)).wait(1)
    assert robot.tips_remaining.get() == tips - 1  # one tip for the aspirate/dispense run
    assert robot.last_action.get().startswith("Mix(")


def test_a_big_transfer_goes_in_several_trips_with_one_tip(lab):
    start, tips = lab.clock.now(), lab.robot.tips_remaining.get()
    lab.robot.set(Transfer("toluene", "plate:A1", 1800)).wait(1)
    assert lab.clock.now() - start == pytest.approx(2 * 8.0)
    assert lab.robot.tips_remaining.get() == tips - 1


def larp(lab, precursor_ul, oleylamine_ul, well="plate:A1"):
    yield from bps.mv(lab.robot, Transfer("toluene", well, 1000.0))
    if oleylamine_ul:
        yield from bps.mv(lab.robot, Transfer("oleylamine", well, oleylamine_ul))
    yield from bps.mv(lab.robot, Transfer("larp_precursor", well, precursor_ul))
    yield from bps.mv(lab.robot, Mix(well, 500.0))
    yield from bps.mv(lab.timer, 120.0)
    yield from bps.mv(lab.robot, Transfer(well, "cell", 400.0))
    yield from bp.count([lab.cell])


def test_larp_in_a_well_makes_dots_that_the_cell_measures(lab, RE):
    RE(larp(lab, 20.0, 10.0))
    sample = lab.world.last_sample
    assert sample.route == "larp"
    assert sample.conditions["precursor_ul"] == pytest.approx(20.0)
    assert sample.conditions["ligand_ul"] == pytest.approx(10.0)
    assert sample.conditions["time_s"] > 120
    peak = primary_events(RE.docs)[-1]["data"]["cell_pl_peak"]
    assert 450 < peak < 520


def test_more_oleylamine_in_larp_gives_bluer_dots(RE):
    peaks = []
    for amine in (0.0, 15.0):
        lab = build_lab({**_sim_config(), "simulator": {"variability": False}})
        RE(larp(lab, 20.0, amine))
        peaks.append(primary_events(RE.docs)[-1]["data"]["cell_pl_peak"])
    assert peaks[1] < peaks[0] - 3


def start_flow(lab, pb=500.0, br=250.0, cs=500.0, temperature=150.0):
    yield from bps.mv(lab.flow.coil, temperature)
    yield from bps.mv(lab.flow.pb, pb, lab.flow.br, br, lab.flow.cs, cs)


def test_flow_conditions_follow_the_pumps_and_coil(lab, RE):
    RE(start_flow(lab))
    cond = lab.flow.backend.conditions()
    # Br: 500*100 + 250*200 = 100000; Pb: 500*50 = 25000 -> Br/Pb 4
    assert cond["br_pb_ratio"] == pytest.approx(4.0)
    assert cond["flow_ratio"] == pytest.approx(500 / 750)
    assert cond["residence_time_s"] == pytest.approx(1000 / 1250 * 60)
    assert lab.flow.residence_time.get() == pytest.approx(48.0)
    assert lab.flow.pressure.get() == pytest.approx(1250 * 0.02)


def test_flow_product_reaches_steady_state_after_a_few_residence_times(RE):
    lab = build_lab({**_sim_config(), "simulator": {"variability": False}})
    RE(start_flow(lab))
    RE(bps.mv(lab.timer, 600))
    RE(bp.count([lab.cell]))
    RE(bps.mv(lab.flow.br, 1500))  # much more bromide: smaller, bluer dots
    tau = lab.flow.residence_time.get()
    RE(bp.count([lab.cell]))  # straight after the change: mostly old product
    RE(bps.mv(lab.timer, 5 * tau))
    RE(bp.count([lab.cell]))
    RE(bps.mv(lab.timer, 5 * tau))
    RE(bp.count([lab.cell]))
    old, early, steady, later = [d["data"]["cell_pl_peak"] for d in primary_events(RE.docs)]
    assert steady < old - 5
    assert abs(early - old) < abs(early - steady)
    assert later == pytest.approx(steady, abs=1.0)  # the spectrometer noise: ±0.4 nm


def test_pumps_deplete_their_syringes(lab, RE):
    RE(bps.mv(lab.flow.pb, 1000))
    RE(bps.mv(lab.timer, 60))
    assert lab.flow.pb.remaining_ul.get() == pytest.approx(50000 - 1000, abs=40)


def test_lab_config_errors_name_the_field():
    cfg = _sim_config()
    cfg["reactor"]["max_temperature_c"] = 500
    with pytest.raises(ConfigError, match=r"reactor.max_temperature_c: .*350"):
        build_lab(cfg)
    cfg = _sim_config()
    cfg["reactor"]["heater_brand"] = "acme"
    with pytest.raises(ConfigError, match=r"reactor.heater_brand: unknown key"):
        build_lab(cfg)
    cfg = _sim_config()
    cfg["reactor"]["flask"] = "beaker"
    with pytest.raises(ConfigError, match=r"reactor.flask 'beaker' is not on the robot deck"):
        build_lab(cfg)
    with pytest.raises(ConfigError, match="does not exist"):
        build_lab("configs/labs/missing.yaml")


def test_a_user_outcome_model_drives_the_simulated_lab(RE):
    def fixed(conditions, rng):
        return {
            "edge_length_nm": 5.0,
            "size_dispersion": 0.08,
            "platelet_fraction": 0.0,
            "plqy": 0.8,
            "concentration": 1.0,
        }

    lab = build_lab(outcome_models={"hot_injection": fixed})
    from tests.test_devices_bluesky import load_and_inject

    RE(load_and_inject(lab))
    RE(bp.count([lab.cell]))
    peak = primary_events(RE.docs)[-1]["data"]["cell_pl_peak"]
    from models import sizing_curve

    assert peak == pytest.approx(float(sizing_curve.pl_nm(5.0)), abs=0.5)


def test_same_seed_same_documents_data(RE):
    from tests.test_devices_bluesky import load_and_inject

    def run(seed):
        lab = build_lab(seed=seed)
        RE.docs.clear()
        RE(load_and_inject(lab))
        RE(bp.count([lab.cell]))
        return np.asarray(primary_events(RE.docs)[-1]["data"]["cell_pl"])

    assert np.array_equal(run(5), run(5))
    assert not np.array_equal(run(5), run(6))


def test_an_aborted_plan_halts_the_pumps_but_a_finished_one_does_not(lab, RE):
    RE(bps.mv(lab.flow.pb, 800))
    assert lab.flow.pb.position == 800  # RE's end-of-plan stop(success=True) keeps it flowing
    lab.flow.pb.stop(success=False)  # what RE.abort() does
    assert lab.flow.pb.position == 0


def test_a_slow_mixer_broadens_the_flow_product(RE):
    widths = []
    for rpm in (0.0, 3000.0):
        lab = build_lab({**_sim_config(), "simulator": {"variability": False}})
        RE(bps.mv(lab.flow.mixer, rpm))
        RE(start_flow(lab, pb=500.0, br=250.0, cs=1500.0))  # unequal streams: mixing matters
        RE(bps.mv(lab.timer, 600))
        RE(bp.count([lab.cell]))
        widths.append(primary_events(RE.docs)[-1]["data"]["cell_pl_fwhm"])
        assert lab.world.last_sample.conditions["mixer_rpm"] == rpm
    assert widths[0] > widths[1] + 0.5

"""Standard bluesky plans run on the simulated lab's devices, and their documents validate."""

import bluesky.plan_stubs as bps
import bluesky.plans as bp
import numpy as np
import pytest
from bluesky.simulators import check_limits, summarize_plan
from ophyd.utils import LimitError

from devices import Transfer, build_lab
from tests.conftest import primary_events, validate_documents


def load_and_inject(lab, br_pb=12.0, temperature=150.0, ligand="oa_olam", growth_s=10.0):
    """The hot-injection protocol step by step (what orchestrator plans compose)."""
    deck = lab.config.robot.deck
    pb_mm, br_mm = deck["pbbr2"].contents.pb_mm, deck["znbr2"].contents.br_mm
    pb_ul = 2000.0
    yield from bps.mv(lab.robot, Transfer("pbbr2", "reactor_flask", pb_ul))
    zn_ul = (br_pb - 2.0) * pb_ul * pb_mm / br_mm  # bromide from ZnBr2 on top of PbBr2
    if zn_ul > 0:
        yield from bps.mv(lab.robot, Transfer("znbr2", "reactor_flask", zn_ul))
    yield from bps.mv(lab.robot, Transfer(f"ligand_{ligand}", "reactor_flask", 1000.0))
    yield from bps.mv(lab.reactor.temperature, temperature)
    yield from bps.mv(lab.reactor.injector, 500.0)
    yield from bps.mv(lab.reactor.quench, growth_s)
    yield from bps.mv(lab.robot, Transfer("reactor_flask", "cell", 400.0))


def test_count_on_the_cell_emits_valid_documents_with_spectra(lab, RE):
    RE(bp.count([lab.cell], num=2))
    assert validate_documents(RE.docs) == 5  # start, descriptor, 2 events, stop
    descriptor = next(d for n, d in RE.docs if n == "descriptor")
    assert descriptor["data_keys"]["cell_pl"]["shape"] == [901]
    assert descriptor["hints"]["cell"]["fields"] == [
        "cell_pl_peak",
        "cell_pl_fwhm",
        "cell_abs_peak",
    ]
    event = primary_events(RE.docs)[0]
    pl = np.asarray(event["data"]["cell_pl"])
    assert abs(pl.mean()) < 5 and pl.std() < 40  # empty cell: dark-corrected noise, no PL


def test_scan_of_reactor_temperature_moves_and_reads_it(lab, RE):
    RE(bp.scan([lab.cell], lab.reactor.temperature, 100, 150, 3))
    validate_documents(RE.docs)
    temps = [d["data"]["reactor_temperature"] for d in primary_events(RE.docs)]
    assert temps == pytest.approx([100, 125, 150], abs=1.0)


def test_list_scan_over_a_pump_flow_rate(lab, RE):
    RE(bp.list_scan([lab.cell, lab.flow.residence_time], lab.flow.pb, [200, 400, 800]))
    validate_documents(RE.docs)
    events = [d["data"] for d in primary_events(RE.docs)]
    assert [e["flow_pb"] for e in events] == [200, 400, 800]
    assert [e["flow_pb_setpoint"] for e in events] == [200, 400, 800]


def test_reading_timestamps_come_from_the_virtual_clock(lab, RE):
    RE(bp.scan([lab.cell], lab.reactor.temperature, 25, 145, 2))
    events = primary_events(RE.docs)
    heating = (
        events[1]["timestamps"]["reactor_temperature"]
        - events[0]["timestamps"]["reactor_temperature"]
    )
    assert heating > 300  # 120 °C at 20 °C/min takes minutes, though the test takes ms


def test_hot_injection_plan_summarises_and_checks_limits_before_running(lab, capsys):
    summarize_plan(load_and_inject(lab))
    out = capsys.readouterr().out
    assert "reactor_temperature -> 150" in out and "robot -> Transfer" in out
    check_limits(load_and_inject(lab))  # within limits: no error
    with pytest.raises(LimitError, match=r"reactor_temperature setpoint = 260 .*\[20, 220\]"):
        check_limits(load_and_inject(lab, temperature=260.0))
    assert lab.reactor.temperature.position == pytest.approx(25.0)  # nothing moved


def test_cell_measures_the_physics_of_the_conditions_the_reactor_ran(RE):
    from models import simulate

    lab = build_lab({**_sim_config(), "simulator": {"variability": False, "seed": 3}})
    RE(load_and_inject(lab, br_pb=16.0, temperature=160.0, growth_s=30.0))
    RE(bp.count([lab.cell]))
    measured = primary_events(RE.docs)[0]["data"]["cell_pl_peak"]
    ran = lab.world.last_sample.conditions
    assert ran["br_pb_ratio"] == pytest.approx(16.0)
    assert ran["time_s"] == pytest.approx(30.0)
    assert abs(ran["temperature_c"] - 160.0) <= 1.0
    expected = simulate("hot_injection", ran).observables["pl_peak_nm"][0]
    assert measured == pytest.approx(expected, abs=0.5)


def test_the_chemical_state_reaches_the_cell_only_through_the_robot(lab, RE):
    RE(load_and_inject(lab))
    RE(bp.count([lab.cell]))
    first = primary_events(RE.docs)[-1]["data"]["cell_pl_peak"]
    assert 440 < first < 500
    RE(bps.mv(lab.robot, Transfer("octadecene", "cell", 400.0)))  # flush the cell with solvent
    RE(bp.count([lab.cell]))
    assert np.isnan(primary_events(RE.docs)[-1]["data"]["cell_pl_peak"])


def _sim_config():
    import yaml

    from devices import DEFAULT_LAB

    return yaml.safe_load(DEFAULT_LAB.read_text())

"""The synthesis plans: bluesky-native, validated before anything moves."""

import bluesky.plan_stubs as bps
import bluesky.plans as bp
import pytest
from bluesky.callbacks import LiveTable
from bluesky.callbacks.best_effort import BestEffortCallback
from bluesky.simulators import check_limits, summarize_plan
from ophyd.utils import LimitError

from devices import build_lab
from models.parameters import ParameterError, get_route
from orchestrator.execution.plans import (
    flow_synthesis,
    hot_injection_synthesis,
    larp_synthesis,
    measure_sample,
)
from tests.conftest import primary_events, validate_documents
from tests.test_devices_bluesky import _sim_config

HOT = {"br_pb_ratio": 12.0, "temperature_c": 150.0, "ligand": "oa_olam", "time_s": 10.0}
FLOW = {
    "br_pb_ratio": 12.0,
    "temperature_c": 150.0,
    "ligand": "olpa",
    "residence_time_s": 20.0,
    "flow_ratio": 1.0,
}
LARP = {"precursor_ul": 20.0, "ligand_ul": 10.0, "time_s": 60.0}
PLANS = [(hot_injection_synthesis, HOT), (flow_synthesis, FLOW), (larp_synthesis, LARP)]


@pytest.mark.parametrize(("plan", "conditions"), PLANS, ids=["hot", "flow", "larp"])
def test_each_synthesis_is_one_run_with_spectra_and_campaign_metadata(lab, RE, plan, conditions):
    RE(plan(lab, conditions, md={"campaign_id": 7, "experiment_index": 3}))
    names = [n for n, _ in RE.docs]
    assert names[0] == "start" and names[-1] == "stop" and names.count("start") == 1
    validate_documents(RE.docs)
    streams = {d["uid"]: d["name"] for n, d in RE.docs if n == "descriptor"}
    every_event = [(streams[d["descriptor"]], d) for n, d in RE.docs if n == "event"]
    events = [(s, d) for s, d in every_event if not s.endswith("_monitor")]
    assert [s for s, _ in events] == ["baseline", "primary", "baseline"]
    monitored = {s for s, _ in every_event} - {s for s, _ in events}
    assert monitored == ({"flow_coil_monitor"} if plan is flow_synthesis else
                         {"reactor_temperature_monitor"} if plan is hot_injection_synthesis else
                         set())  # fmt: skip
    start = RE.docs[0][1]
    # what was made, in full: a hot injection records the material and ligand amount it used
    assert start["conditions"] == get_route(start["route"]).validate(conditions)
    assert start["conditions"].items() >= conditions.items() and start["campaign_id"] == 7
    assert start["experiment_index"] == 3 and start["plan_name"] == plan.__name__
    data = events[1][1]["data"]
    assert len(data["cell_pl"]) == 901 and 440 < data["cell_pl_peak"] < 525
    assert RE.docs[-1][1]["exit_status"] == "success"


@pytest.mark.parametrize(("plan", "conditions"), PLANS, ids=["hot", "flow", "larp"])
def test_plans_work_with_summarize_plan_check_limits_and_standard_callbacks(
    lab, RE, plan, conditions, capsys
):
    summarize_plan(plan(lab, conditions))
    assert "Open Run" in capsys.readouterr().out
    check_limits(plan(lab, conditions))
    bec = BestEffortCallback()
    bec.disable_plots()
    RE(plan(lab, conditions), [bec, LiveTable(["cell_pl_peak", "cell_pl_fwhm"])])
    assert "cell_pl_peak" in capsys.readouterr().out


def test_the_hot_injection_plan_reads_like_the_protocol(lab, capsys):
    summarize_plan(hot_injection_synthesis(lab, HOT))
    steps = [
        line.split(" -> ")[0] + " -> " + line.split(" -> ")[1].split("(")[0]
        for line in capsys.readouterr().out.splitlines()
        if " -> " in line
    ]
    assert steps == [
        "robot -> Transfer",  # solvent into the cell for the reference
        "robot -> Transfer",  # PbBr2
        "robot -> Transfer",  # ZnBr2
        "robot -> Transfer",  # ligand
        "reactor_injector_source -> cs_oleate",  # the syringe draws Cs-oleate
        "reactor_temperature -> 150.0",
        "reactor_injector -> 500.0",
        "reactor_quench -> 10.0",
        "robot -> Transfer",  # flask -> cell
    ]


@pytest.mark.parametrize(
    ("plan", "conditions", "field"),
    [
        (hot_injection_synthesis, {**HOT, "temperature_c": 260.0}, "temperature_c"),
        (hot_injection_synthesis, {**HOT, "ligand": "water"}, "ligand"),
        (hot_injection_synthesis, {k: v for k, v in HOT.items() if k != "time_s"}, "time_s"),
        (flow_synthesis, {**FLOW, "residence_time_s": 2.0}, "residence_time_s"),  # pumps too slow
        (larp_synthesis, {**LARP, "precursor_ul": 500.0}, "precursor_ul"),
    ],
)
def test_bad_conditions_fail_before_any_device_moves(lab, RE, plan, conditions, field):
    before = (lab.clock.now(), lab.robot.tips_remaining.get(), lab.reactor.temperature.position)
    with pytest.raises(ParameterError) as info:
        RE(plan(lab, conditions))
    assert info.value.field == field
    assert RE.docs == []  # not even a start document
    assert (
        lab.clock.now(),
        lab.robot.tips_remaining.get(),
        lab.reactor.temperature.position,
    ) == before


def test_check_limits_catches_what_the_lab_cannot_do(lab):
    with pytest.raises(LimitError):
        check_limits(bp.scan([lab.cell], lab.reactor.temperature, 100, 300, 3))


def test_measure_sample_is_a_run_of_its_own(lab, RE):
    RE(hot_injection_synthesis(lab, HOT))
    RE.docs.clear()
    lab.robot.transfer("toluene", "plate:A1", 1000).wait(1)
    RE(measure_sample(lab, "plate:A1", solvent="toluene"))
    assert [n for n, _ in RE.docs] == ["start", "descriptor", "event", "stop"]


def test_every_synthesis_names_its_sample_and_where_it_is(lab, RE):
    RE(hot_injection_synthesis(lab, HOT, md={"campaign_id": 4, "experiment_index": 6}))
    RE(larp_synthesis(lab, LARP))
    RE(larp_synthesis(lab, LARP))
    starts = [d for n, d in RE.docs if n == "start"]
    assert starts[0]["sample_id"] == "c4-e7" and starts[0]["sample_location"] == "reactor_flask"
    wells = [s["sample_location"] for s in starts[1:]]
    assert wells == ["plate:A1", "plate:A2"]  # each LARP sample in its own, named well
    assert lab.robot.volume_of(wells[0]) > 0  # what the cell did not take stays in the well
    assert len({s["sample_id"] for s in starts}) == 3


RESERVOIRS = ("pbbr2", "znbr2", "pbi2", "zni2", "cs_oleate", "fa_oleate")


def _used(lab, before):
    return {n: before[n] - lab.robot.volume_of(n) for n in before}


@pytest.mark.parametrize(
    ("material", "made_from", "untouched", "pl_range"),
    [
        ("CsPbI3", ("pbi2", "zni2", "cs_oleate"), ("pbbr2", "znbr2", "fa_oleate"), (620, 700)),
        ("FAPbBr3", ("pbbr2", "znbr2", "fa_oleate"), ("pbi2", "zni2", "cs_oleate"), (485, 535)),
    ],
)
def test_red_and_green_are_made_from_their_own_reservoirs(
    lab, RE, material, made_from, untouched, pl_range
):
    before = {n: lab.robot.volume_of(n) for n in RESERVOIRS}
    conditions = {**HOT, "br_pb_ratio": 4.0, "temperature_c": 170.0, "material": material}
    RE(hot_injection_synthesis(lab, conditions))
    used = _used(lab, before)
    assert all(used[n] > 0 for n in made_from) and all(used[n] == 0 for n in untouched)
    assert used[made_from[-1]] == pytest.approx(500.0)  # the injection, through the valve
    made = lab.world.last_sample.conditions  # what the flask's contents made
    assert made["material"] == material and made["br_pb_ratio"] == pytest.approx(4.0)
    event = primary_events(RE.docs)[0]
    assert pl_range[0] < event["data"]["cell_pl_peak"] < pl_range[1]


def test_the_ligand_amount_is_dispensed_and_is_what_the_flask_makes(lab, RE):
    before = lab.robot.volume_of("ligand_alkylammonium_br")
    conditions = {**HOT, "ligand": "alkylammonium_br", "ligand_amount": 2.5}
    RE(hot_injection_synthesis(lab, conditions))
    assert before - lab.robot.volume_of("ligand_alkylammonium_br") == pytest.approx(2500.0)
    assert lab.world.last_sample.conditions["ligand_amount"] == pytest.approx(2.5)


def test_a_lab_without_a_materials_precursors_refuses_it_before_anything_moves(RE):
    config = _sim_config()
    config["reactor"].pop("materials")
    lab = build_lab(config)
    volumes = {n: lab.robot.volume_of(n) for n in RESERVOIRS}
    with pytest.raises(ParameterError, match="material 'CsPbI3' has no precursors in this lab"):
        RE(hot_injection_synthesis(lab, {**HOT, "material": "CsPbI3"}))
    assert RE.docs == [] and {n: lab.robot.volume_of(n) for n in RESERVOIRS} == volumes
    with pytest.raises(LimitError, match="fa_oleate"):  # the valve has no such position here
        lab.reactor.injector.source.set("fa_oleate")


def test_cspbi3_measured_hours_after_synthesis_has_lost_pl_to_its_yellow_phase(lab, RE):
    def plqy_now_and_hours_later(conditions):
        RE(hot_injection_synthesis(lab, conditions))  # measured straight after the quench
        RE(bps.mv(lab.timer, 3 * 3600.0))  # the sample waits in the cell
        RE(bp.count([lab.cell]))
        fresh, late = [d["data"] for d in primary_events(RE.docs)][-2:]
        assert late["cell_pl_peak"] == pytest.approx(fresh["cell_pl_peak"], abs=1.0)
        return fresh["cell_plqy_est"], late["cell_plqy_est"]

    fresh, late = plqy_now_and_hours_later({**HOT, "temperature_c": 170.0, "material": "CsPbI3"})
    assert late < 0.7 * fresh  # black -> yellow: the dots stop emitting
    fresh, late = plqy_now_and_hours_later({**HOT, "temperature_c": 170.0})
    assert late == pytest.approx(fresh, rel=0.1)  # CsPbBr3 keeps its phase

"""The synthesis plans: bluesky-native, validated before anything moves."""

import bluesky.plans as bp
import pytest
from bluesky.callbacks import LiveTable
from bluesky.callbacks.best_effort import BestEffortCallback
from bluesky.simulators import check_limits, summarize_plan
from ophyd.utils import LimitError

from models.parameters import ParameterError
from orchestrator.plans import (
    flow_synthesis,
    hot_injection_synthesis,
    larp_synthesis,
    measure_sample,
)
from tests.conftest import validate_documents

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
    assert names == ["start", "descriptor", "event", "stop"]
    validate_documents(RE.docs)
    start = RE.docs[0][1]
    assert start["conditions"] == conditions and start["campaign_id"] == 7
    assert start["experiment_index"] == 3 and start["plan_name"] == plan.__name__
    data = RE.docs[2][1]["data"]
    assert len(data["cell_pl"]) == 601 and 440 < data["cell_pl_peak"] < 525
    assert RE.docs[3][1]["exit_status"] == "success"


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

"""An instrument that misbehaves is not a chemistry result: impossible readings are refused as
instrument faults, their experiment runs again, the planner learns nothing and no budget is
spent; the campaign pauses naming the instrument."""

from __future__ import annotations

import copy

import pytest

from db import Database, ExperimentStatus
from orchestrator.campaign.config import load_campaign
from orchestrator.campaign.runner import CampaignRunner
from orchestrator.execution.observe import InstrumentFault, observables_from_documents
from orchestrator.execution.plans import hot_injection_synthesis
from tests.test_campaign import write_config

CONDITIONS = {"br_pb_ratio": 12, "temperature_c": 140, "ligand": "oa_olam", "time_s": 10}


@pytest.fixture
def documents(lab, RE) -> list:
    RE(hot_injection_synthesis(lab, CONDITIONS))
    return RE.docs


def _with_pl(docs: list, pl: list[float]) -> list:
    changed = copy.deepcopy(docs)
    primary = {d["uid"] for n, d in changed if n == "descriptor" and d["name"] == "primary"}
    for name, doc in changed:
        if name == "event" and doc["descriptor"] in primary:
            doc["data"]["cell_pl"] = pl
    return changed


def test_a_good_measurement_gives_observables(documents):
    assert 440 < observables_from_documents(documents)["pl_peak_nm"] < 520


@pytest.mark.parametrize(
    ("pl", "said"),
    [
        ([100.0] * 10, "cell_pl: 10 points where the wavelength axis has 901"),
        ([1e300] * 901, "cell_pl: readings from 1e+300 to 1e+300, outside what the instrument"),
        ([float("nan")] * 901, "cell_pl: values that are not numbers"),
    ],
)
def test_an_impossible_reading_is_an_instrument_fault(documents, pl, said):
    with pytest.raises(InstrumentFault, match=said.replace("+", r"\+")):
        observables_from_documents(_with_pl(documents, pl))


def test_a_glitching_spectrometer_pauses_the_campaign_and_spends_nothing(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'glitch.db'}")
    config = write_config(tmp_path, budget=3, stop_on_target=False)
    runner = CampaignRunner(db, load_campaign(config))
    runner.executor.lab.world.set_fault("spectrometer_glitch", 1.0)
    summary = runner.run()
    assert summary.status == "paused"
    assert summary.reason.startswith("instrument fault: cell_pl: readings from 1e+300")
    (row,) = db.experiments(summary.campaign_id)
    assert row.status == ExperimentStatus.PROPOSED  # it runs again, and counts once
    assert row.failure_reason.startswith("instrument fault: cell_pl")
    (run,) = db.runs(summary.campaign_id)
    assert run["exit_status"] == "success" and run["rejected"].startswith("cell_pl: readings")
    assert runner.planner.observations == []  # nothing learnt from the instrument's fault

    resumed = CampaignRunner.resume(db, summary.campaign_id).run()  # a new lab: no glitch
    assert resumed.status == "completed" and resumed.experiments == 3
    rows = db.experiments(summary.campaign_id)
    assert rows[0].status == ExperimentStatus.DONE
    assert not any("instrument" in (r.failure_reason or "") for r in rows)
    runs = db.runs(experiment_id=rows[0].id)
    assert [bool(r["rejected"]) for r in runs] == [True, False]
    assert rows[0].run_uid == runs[1]["uid"]

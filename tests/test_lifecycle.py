"""An experiment's lifecycle: only the moves the table allows happen, each once, and the loop
in process follows the same rules as on workcells."""

from __future__ import annotations

import re

import pytest

from db import Database, ExperimentStatus
from models.simulation import simulate
from orchestrator.campaign import lifecycle
from orchestrator.campaign.config import load_campaign
from orchestrator.campaign.lifecycle import TRANSITIONS, TransitionError
from orchestrator.campaign.runner import TARGET_REACHED, CampaignInterrupted, CampaignRunner
from planners import Planner, Proposal
from tests.conftest import ROOT
from tests.test_campaign import write_config

S = ExperimentStatus
HOT = {"br_pb_ratio": 8.0, "temperature_c": 150.0, "ligand": "oa_olam", "time_s": 30.0}


@pytest.fixture
def db(tmp_path) -> Database:
    return Database(f"sqlite:///{tmp_path / 'life.db'}")


def _experiment(db: Database, status: ExperimentStatus = S.PROPOSED) -> int:
    cid = db.create_campaign("c", "hot_injection", {}, "", {"pl_peak_nm": 470.0})
    return db.add_experiment(cid, None, HOT, planner_name="p", planner_version="1", status=status)


def test_the_architecture_doc_draws_every_move_the_lifecycle_allows():
    text = (ROOT / "docs" / "architecture.md").read_text()
    diagram = text[text.index("stateDiagram-v2") :].split("```")[0]
    drawn = {
        (S(a), S(b))
        for a, b in re.findall(r"^\s*(\w+) --> (\w+):", diagram, re.M)
        if a != "[*]" and b != "[*]"
    }
    allowed = {(a, b) for a, targets in TRANSITIONS.items() for b in targets}
    assert drawn == allowed


def test_a_measurement_recorded_twice_is_refused_and_the_first_stays(db):
    eid = _experiment(db)
    lifecycle.dispatch(db, eid, S.RUNNING, None)
    lifecycle.finish(db, eid, {"pl_peak_nm": 470.5}, None)
    with pytest.raises(TransitionError, match="cannot become done: it is done"):
        lifecycle.finish(db, eid, {"pl_peak_nm": 999.0}, None)
    row = db.experiment(eid)
    assert row.status is S.DONE and row.observables["pl_peak_nm"] == 470.5


@pytest.mark.parametrize(
    ("start", "move"),
    [
        (S.DONE, lambda db, eid: lifecycle.fail(db, eid, "too late")),
        (S.REJECTED, lambda db, eid: lifecycle.dispatch(db, eid, S.RUNNING, None)),
        (S.AWAITING_APPROVAL, lambda db, eid: lifecycle.dispatch(db, eid, S.QUEUED, "A")),
        (S.PROPOSED, lambda db, eid: lifecycle.start(db, eid, "A")),
    ],
)
def test_a_move_the_table_does_not_allow_changes_nothing(db, start, move):
    eid = _experiment(db, start)
    with pytest.raises(TransitionError, match=f"it is {start}"):
        move(db, eid)
    assert db.experiment(eid).status is start


def test_a_proposal_a_person_rejected_cannot_be_withdrawn_or_approved_after(db):
    eid = _experiment(db, S.AWAITING_APPROVAL)
    cid = db.experiment(eid).campaign_id
    assert lifecycle.reject(db, cid, None, "rejected: no") == [0]
    assert lifecycle.approve(db, cid, None) == []  # decided meanwhile: it does not move
    assert lifecycle.withdraw(db, eid, TARGET_REACHED) is False
    row = db.experiment(eid)
    assert row.status is S.REJECTED and row.failure_reason == "rejected: no"


class _Batch(Planner):
    """Proposes the conditions it is given, a batch at a time (the first one hits)."""

    name = "batch"
    version = "1"

    def __init__(self, space, target, seed, conditions):
        super().__init__(space, target, seed)
        self._left = list(conditions)

    def _propose(self, n: int) -> list[Proposal]:
        taken, self._left = self._left[:n], self._left[n:]
        return [self._proposal(c) for c in taken]


def test_in_process_the_planners_proposals_not_started_at_the_target_are_withdrawn(tmp_path):
    """As on workcells: what has not started when the target is reached spends no budget."""
    peak = float(simulate("hot_injection", [HOT]).observables["pl_peak_nm"][0])
    config = write_config(
        tmp_path,
        target={"pl_peak_nm": round(peak, 1), "tolerance_nm": 5.0},
        batch_size=3,
        budget=6,
    )
    loaded = load_campaign(config)
    others = [{**HOT, "temperature_c": t} for t in (120.0, 180.0)]
    planner = _Batch(loaded.space, loaded.target, 0, [HOT, *others])
    db = Database(f"sqlite:///{tmp_path / 'batch.db'}")
    summary = CampaignRunner(db, loaded, planner=planner).run()
    rows = db.experiments(summary.campaign_id)
    assert [r.status for r in rows] == [S.DONE, S.REJECTED, S.REJECTED]
    assert [r.failure_reason for r in rows[1:]] == [TARGET_REACHED] * 2
    assert summary.experiments == 1 and summary.first_hit_experiment == 1
    assert {run["experiment_id"] for run in db.runs(summary.campaign_id)} == {rows[0].id}


def test_a_campaign_whose_every_experiment_failed_is_paused_not_completed(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'fail.db'}")
    runner = CampaignRunner(db, load_campaign(write_config(tmp_path, budget=2)))
    runner.executor.lab.world.set_fault("spectrometer_timeout", 1.0)
    summary = runner.run()
    assert summary.status == "paused" and summary.experiments == 2
    assert summary.reason.startswith("the budget is spent and no experiment gave a measurement")
    assert summary.reason.endswith("then `qdlab campaign resume 1` with `--budget N`")
    assert [r.status for r in db.experiments(1)] == [S.FAILED, S.FAILED]


def test_a_run_of_other_conditions_than_proposed_is_not_recorded_as_its_result(tmp_path, lab):
    """A queue item forged or swapped by another client ran other conditions under this
    experiment's id: the run's own start document gives it away."""
    from bluesky import RunEngine

    from db import DocumentWriter
    from orchestrator.campaign.record import Recorder
    from orchestrator.execution.plans import hot_injection_synthesis
    from planners import SearchSpace, Target, make_planner

    db = Database(f"sqlite:///{tmp_path / 'forged.db'}")
    eid = _experiment(db)
    lifecycle.dispatch(db, eid, S.RUNNING, None)
    forged = {**HOT, "temperature_c": 199.0, "ligand": "olpa"}
    engine = RunEngine({})
    engine.subscribe(DocumentWriter(db))
    (uid,) = engine(hot_injection_synthesis(lab, forged, md={"experiment_id": eid}))
    ranges = {"br_pb_ratio": [2, 30], "temperature_c": [90, 200], "ligand": ["oa_olam", "olpa"]}
    space = SearchSpace.from_config({**ranges, "time_s": [1, 120]})
    target = Target("pl_peak_nm", 470.0, 1.0)
    planner = make_planner("random", space, target, 0)
    Recorder(db, planner, target, lambda: None).measured(db.experiment(eid), uid)
    row = db.experiment(eid)
    assert row.status is S.FAILED and row.observables is None
    assert row.failure_reason == (
        f"not recorded: run {uid} ran temperature_c = 199.0, not the proposed 150.0"
    )


class _InterruptedWhileThinking(_Batch):
    """Ctrl-C pressed while the planner thinks about its second proposal."""

    def _propose(self, n: int) -> list[Proposal]:
        if len(self.observations) == 1:
            import os
            import signal

            os.kill(os.getpid(), signal.SIGINT)
        return super()._propose(n)


def test_ctrl_c_between_experiments_leaves_nothing_marked_running(tmp_path):
    config = write_config(tmp_path, budget=3, stop_on_target=False)
    loaded = load_campaign(config)
    others = [{**HOT, "temperature_c": t} for t in (120.0, 180.0)]
    planner = _InterruptedWhileThinking(loaded.space, loaded.target, 0, [HOT, *others])
    db = Database(f"sqlite:///{tmp_path / 'ctrl-c.db'}")
    with pytest.raises(CampaignInterrupted):
        CampaignRunner(db, loaded, planner=planner).run()
    rows = db.experiments(1)
    assert [r.status for r in rows] == [S.DONE, S.PROPOSED]  # the second never started
    assert rows[1].failure_reason == "interrupted; runs again on resume"
    assert db.campaign(1)["status"] == "paused"

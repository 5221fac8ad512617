"""The human approval gate: nothing runs before a person approves it; a rejected proposal is
never proposed again; a hand-added experiment runs with provenance ``human``.

The campaign runs as ``qdlab campaign run`` in one process and the chemist acts with ``qdlab
campaign approve/reject/add`` from another, as in a lab.
"""

from __future__ import annotations

import getpass
import json
import time

import pytest

from db import Database
from planners import Observation, SearchSpace, Target, make_planner
from tests.conftest import qdlab, wait_for
from tests.test_campaign import write_config

LOGIN = getpass.getuser()

HAND = {"br_pb_ratio": 8, "temperature_c": 150, "ligand": "oa_olam", "time_s": 30}


def rows_with(db: Database, status: str) -> list[dict]:
    try:
        return [r for r in db.experiments(1) if r.status == status]
    except Exception:  # the campaign is not stored yet
        return []


@pytest.fixture
def gated(tmp_path, spawn):
    """A campaign with `approval: required` running in the background, and its database."""
    url = f"sqlite:///{tmp_path / 'gate.db'}"
    config = write_config(
        tmp_path, approval="required", batch_size=2, budget=4, stop_on_target=False
    )
    agent = spawn("campaign", "run", config, "--db", url, "--json", capture=True)
    db = Database(url)
    wait_for(lambda: len(rows_with(db, "awaiting_approval")) == 2, what="two proposals")
    return agent, db, url


def test_nothing_runs_before_approval_and_a_rejected_proposal_is_never_run(gated):
    agent, db, url = gated
    time.sleep(1.0)  # the agent had every chance to start something
    assert db.runs(1) == [] and [r.status for r in db.experiments(1)] == ["awaiting_approval"] * 2
    first, second = db.experiments(1)
    assert first.predicted_mean is None or first.predicted_std is not None

    show = qdlab("campaign", "show", "1", "--db", url)
    assert "2 proposal(s) await approval" in show.stdout, show.stdout

    out = qdlab("campaign", "reject", "1", "1", "--reason", "too hot for this solvent", "--db", url)
    assert out.returncode == 0, out.stderr
    out = qdlab("campaign", "approve", "1", "2", "--db", url)
    assert out.returncode == 0 and "approved #2" in out.stdout, out.stderr
    wait_for(lambda: rows_with(db, "awaiting_approval"), what="the next batch")
    assert all(r["experiment_id"] == second.id for r in db.runs(1))
    while agent.poll() is None:  # approve whatever comes until the budget is spent
        qdlab("campaign", "approve", "1", "--all", "--db", url)
        time.sleep(0.2)
    out, err = agent.communicate()
    assert agent.returncode == 0, err
    rows = db.experiments(1)
    assert rows[0].status == "rejected"
    assert rows[0].failure_reason == "rejected: too hot for this solvent"
    assert sum(r.status != "rejected" for r in rows) == 4  # a veto spends no budget
    ran = {run["experiment_id"] for run in db.runs(1)}
    assert first.id not in ran and len(ran) == 4
    assert all(r.conditions != first.conditions for r in rows[1:])


def test_a_hand_added_experiment_runs_with_human_provenance(gated):
    _, db, url = gated
    out = qdlab(
        "campaign", "add", "1", "--conditions", json.dumps(HAND), "--note", "control", "--db", url
    )
    assert out.returncode == 0 and "added #3" in out.stdout, out.stderr
    added = wait_for(lambda: rows_with(db, "done") or rows_with(db, "failed"), what="a run")[0]
    assert added.index == 2 and added.planner_name == "human"
    # the person is the login user: the lab has no users
    assert added.provenance == {"source": "human", "note": "control", "by": f"local:{LOGIN}"}
    assert added.conditions == {**HAND, "br_pb_ratio": 8.0, "temperature_c": 150.0,
                                   "time_s": 30.0}  # fmt: skip
    # the proposals still wait: a hand-chosen experiment does not approve them
    assert len(rows_with(db, "awaiting_approval")) == 2


@pytest.mark.parametrize(
    ("conditions", "message"),
    [
        (
            {**HAND, "temperature_c": 70},
            "temperature_c = 70 is outside the campaign's space [90, 200]",
        ),
        ({**HAND, "temperature_c": 900}, "temperature_c = 900 is outside the allowed range"),
        ({**HAND, "pressure": 2}, "pressure is not a parameter of this campaign"),
        ({k: v for k, v in HAND.items() if k != "time_s"}, "time_s is required"),
        ({**HAND, "ligand": "water"}, "ligand = 'water' is not one of"),
    ],
)
def test_bad_hand_added_conditions_are_refused_in_one_line(tmp_path, conditions, message):
    url = f"sqlite:///{tmp_path / 'q.db'}"
    out = qdlab("campaign", "run", write_config(tmp_path, budget=1), "--db", url)
    assert out.returncode in (0, 1), out.stderr
    before = Database(url).experiments(1)
    out = qdlab("campaign", "add", "1", "--conditions", json.dumps(conditions), "--db", url)
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and message in out.stderr, out.stderr
    assert Database(url).experiments(1) == before


def test_approval_commands_refuse_what_is_not_awaiting(gated):
    _, db, url = gated
    out = qdlab("campaign", "approve", "1", "7", "--db", url)
    assert out.returncode == 2 and "7 of campaign 1 do not await approval" in out.stderr
    assert "those that do: 1, 2" in out.stderr
    out = qdlab("campaign", "approve", "1", "--db", url)
    assert out.returncode == 2 and "give experiment numbers or --all" in out.stderr
    out = qdlab("campaign", "reject", "1", "2", "--reason", " ", "--db", url)
    assert out.returncode == 2 and "--reason" in out.stderr
    out = qdlab("campaign", "add", "1", "--conditions", "{oops", "--db", url)
    assert out.returncode == 2 and "--conditions: not JSON" in out.stderr
    assert [r.status for r in db.experiments(1)] == ["awaiting_approval"] * 2


def test_a_vetoed_point_is_never_proposed_again():
    """On a space of two points, a planner that has one vetoed proposes only the other."""
    space = SearchSpace.from_config(
        {"br_pb_ratio": [8, 8], "temperature_c": [150, 150], "ligand": ["oa_olam", "olpa"],
         "time_s": [30, 30]}
    )  # fmt: skip
    target = Target("pl_peak_nm", 470.0, 1.0)
    for kind in ("random", "sobol"):
        planner = make_planner(kind, space, target, seed=3)
        vetoed = {**HAND, "br_pb_ratio": 8.0, "temperature_c": 150.0, "time_s": 30.0}
        planner.tell([Observation(vetoed, failed=True, reason="rejected: no", vetoed=True)])
        proposed = [p.conditions["ligand"] for _ in range(20) for p in planner.ask(1)]
        assert proposed and set(proposed) == {"olpa"}, kind


def test_a_person_pauses_a_running_campaign_from_the_command_line(gated):
    agent, db, url = gated
    out = qdlab("campaign", "pause", "1", "--reason", "reagent delivery", "--db", url)
    assert out.returncode == 0 and "pauses after the experiment under way" in out.stdout
    # the hint can be pasted as it is: it names the database the campaign is in
    assert f"`qdlab campaign resume 1 --db {url}` continues" in out.stdout
    assert agent.wait(60) == 1  # the agent stops, as for any pause
    campaign = db.campaign(1)
    assert campaign["status"] == "paused"
    assert f"paused by local:{LOGIN}: reagent delivery" in campaign["status_reason"]
    out = qdlab("campaign", "pause", "1", "--db", url)
    assert out.returncode == 2 and "is paused, not running" in out.stderr


def test_proposals_awaiting_approval_spend_no_budget_and_a_hit_withdraws_none(tmp_path, spawn):
    """Approving one proposal at a time while the planner keeps two waiting, with every
    measurement a hit and ``stop_on_target: false``: the whole budget runs (waiting proposals
    do not count against it, so a hit never withdraws them as if the target had stopped the
    campaign), and a note given with ``campaign add`` is shown by ``campaign show``."""
    url = f"sqlite:///{tmp_path / 'slow.db'}"
    target = {"pl_peak_nm": 470.0, "tolerance_nm": 50.0}
    config = write_config(tmp_path, approval="required", batch_size=2, budget=4, target=target,
                          stop_on_target=False)  # fmt: skip
    agent = spawn("campaign", "run", config, "--db", url, "--json", capture=True)
    db = Database(url)
    wait_for(lambda: len(rows_with(db, "awaiting_approval")) == 2, what="two proposals")
    out = qdlab("campaign", "add", "1", "--conditions", json.dumps(HAND), "--note",
                "reference batch 7", "--db", url)  # fmt: skip
    assert out.returncode == 0, out.stderr
    while agent.poll() is None:
        busy = [r for r in db.experiments(1) if r.status in ("proposed", "queued", "running")]
        waiting = rows_with(db, "awaiting_approval")
        if waiting and not busy:  # one at a time, each after the last has run
            qdlab("campaign", "approve", "1", str(waiting[0].number), "--db", url)
        time.sleep(0.2)
    out, err = agent.communicate()
    assert agent.returncode == 0, err
    summary = json.loads(out)
    assert summary["status"] == "completed", summary
    rows = db.experiments(1)
    assert sum(r.status in ("done", "failed") for r in rows) == 4  # the whole budget ran
    assert [r.failure_reason for r in rows if r.status == "rejected"] == []
    assert any(r.observables and abs(r.observables["pl_peak_nm"] - 470) <= 50 for r in rows)
    show = qdlab("campaign", "show", "1", "--db", url, "--json")
    shown = json.loads(show.stdout)["experiments"]
    assert [e["number"] for e in shown] == [e["index"] + 1 for e in shown]
    assert [e["note"] for e in shown if e["planner"] == "human"] == ["reference batch 7"]
    assert "reference batch 7" in qdlab("campaign", "show", "1", "--db", url).stdout

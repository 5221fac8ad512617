"""Planners a campaign config can name beyond QDLab's own: Ax, BayBE and a user's class."""

import json
import os
import signal
import sys
import textwrap

import pytest

from db import Database
from planners import Observation, PlannerConfigError, SearchSpace, Target, make_planner
from tests.test_campaign import BASE, _wait_for, write_config

PLUGIN = textwrap.dedent(
    '''
    """A user's planner: the middle of the space, then steps towards its corners."""
    from planners.base import Planner


    class Stepper(Planner):
        name = "stepper"
        version = "0.1"

        def __init__(self, space, target, seed=None, step=0.1):
            super().__init__(space, target, seed)
            self.step = step
            self.asked = 0

        def _propose(self, n):
            out = []
            for _ in range(n):
                u = min(0.5 + self.step * self.asked, 1.0)
                self.asked += 1
                cond = self.space.from_unit([[u] * self.space.dim])[0]
                out.append(self._proposal(cond, provenance={"step": self.step}))
            return out


    class NotAPlanner:
        pass
    '''
)


@pytest.fixture
def plugin_env(tmp_path):
    (tmp_path / "my_planners.py").write_text(PLUGIN)
    return {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}


def test_a_users_planner_class_runs_a_campaign_and_resumes_only_when_named_again(
    run_qdlab, tmp_path, plugin_env
):
    config = write_config(tmp_path, planner={"kind": "my_planners:Stepper", "step": 0.05}, budget=3)
    url = f"sqlite:///{tmp_path / 'c.db'}"
    out = run_qdlab("campaign", "run", config, "--db", url, "--json", env=plugin_env)
    assert out.returncode == 0, out.stderr
    rows = Database(url).experiments(1)
    assert [r.planner_name for r in rows] == ["stepper"] * 3
    assert [r.provenance["step"] for r in rows] == [0.05] * 3
    assert rows[0].conditions["temperature_c"] == pytest.approx(145.0)  # the middle

    # the database names the class: resume refuses to import it until the user names it
    refused = run_qdlab("campaign", "resume", "1", "--budget", "5", "--db", url, env=plugin_env)
    assert refused.returncode == 2
    assert "--planner-class my_planners:Stepper" in refused.stderr
    assert len(Database(url).experiments(1)) == 3
    named = run_qdlab(
        "campaign", "resume", "1", "--budget", "5", "--db", url, "--json",
        "--planner-class", "my_planners:Stepper", env=plugin_env,
    )  # fmt: skip
    assert named.returncode == 0, named.stderr
    rows = Database(url).experiments(1)
    assert len(rows) == 5 and len({json.dumps(r.conditions) for r in rows}) == 5


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("my_planners:NotAPlanner", "is not a subclass of planners.base.Planner"),
        ("my_planners:Missing", "is not a subclass"),
        ("no_such_module:Planner", "cannot import 'no_such_module'"),
        ("my planners:Stepper", "has the form 'package.module:Class'"),
        ("gradient_descent", "must be one of"),
    ],
)
def test_a_bad_planner_kind_is_one_line_and_stores_nothing(
    run_qdlab, tmp_path, plugin_env, kind, message
):
    config = write_config(tmp_path, planner={"kind": kind})
    url = f"sqlite:///{tmp_path / 'c.db'}"
    out = run_qdlab("campaign", "run", config, "--db", url, env=plugin_env)
    assert out.returncode == 2, out.stderr
    assert message in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "c.db").exists() or Database(url).campaigns() == []


@pytest.mark.parametrize("kind", ["ax", "baybe"])
def test_peer_planners_run_a_campaign_end_to_end(run_qdlab, tmp_path, kind):
    config = write_config(tmp_path, planner={"kind": kind}, budget=4, stop_on_target=False)
    url = f"sqlite:///{tmp_path / 'c.db'}"
    out = run_qdlab("campaign", "run", config, "--db", url, "--json", timeout=300)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["experiments"] == 4
    rows = Database(url).experiments(1)
    assert [r.planner_name for r in rows] == [kind] * 4
    assert all(r.status == "done" for r in rows)
    assert rows[0].planner_version.startswith({"ax": "ax-platform", "baybe": "baybe"}[kind])


@pytest.mark.slow
@pytest.mark.parametrize(("kind", "budget", "first"), [("ax", 8, 6), ("baybe", 3, 1)])
def test_a_peer_campaign_resumes_after_ctrl_c_and_kill_9_and_runs_on_past_its_budget(
    run_qdlab, spawn, tmp_path, kind, budget, first
):
    """Through the library's own snapshot, never by asking again: Ax past its Sobol trials (it
    refuses to generate more without their data), BayBE whose recommendations do not repeat."""
    config = write_config(tmp_path, planner={"kind": kind}, budget=budget, stop_on_target=False)
    url = f"sqlite:///{tmp_path / 'c.db'}"
    proc = spawn("campaign", "run", config, "--db", url, capture=True)
    _wait_for(url, first, timeout=600)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err
    assert "[INFO" not in err  # Ax's log lines stay off the console
    db = Database(url)
    assert db.campaign(1)["status"] == "paused"
    paused_at = sum(r.status in ("done", "failed") for r in db.experiments(1))

    proc = spawn("campaign", "resume", "1", "--db", url)
    _wait_for(url, min(paused_at + 1, budget - 1), timeout=600)
    proc.kill()  # kill -9, before the budget is spent
    proc.wait(30)
    out = run_qdlab("campaign", "resume", "1", "--db", url, "--json", timeout=900)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["experiments"] == budget
    more = run_qdlab("campaign", "resume", "1", "--budget", str(budget + 1), "--db", url,
                     "--json", timeout=900)  # fmt: skip
    assert more.returncode == 0, more.stderr
    assert "Traceback" not in more.stderr and "[INFO" not in more.stderr
    rows = db.experiments(1)
    assert [r.index for r in rows] == list(range(budget + 1))
    assert all(r.status in ("done", "failed") for r in rows)
    assert {r.planner_name for r in rows} == {kind}
    assert len({json.dumps(r.conditions, sort_keys=True) for r in rows}) == budget + 1
    assert db.planner_state(1, kind) is not None and db.planner_state(1, "random") is None


SPACE = SearchSpace.from_config(BASE["space"])
TARGET = Target("pl_peak_nm", 470.0, 1.0)
MINE = {"br_pb_ratio": 6.0, "temperature_c": 150.0, "ligand": "olpa", "time_s": 30.0}


def _measured(conditions, peak=480.0):
    return Observation(conditions, {"pl_peak_nm": peak, "pl_fwhm_nm": 20.0})


def test_ax_is_told_every_experiment_as_a_trial_of_its_own_kind():
    """A person's experiment is attached, a failure marked failed, a veto abandoned; a
    planner restored from the snapshot holds them all, and what came after is told on top."""
    from ax.core.trial_status import TrialStatus

    planner = make_planner("ax", SPACE, TARGET, 3)
    asked = [p.conditions for p in planner.ask(3)]
    planner.tell([_measured(asked[0]), Observation(asked[1], failed=True, reason="no PL")])
    planner.tell([Observation(asked[2], failed=True, vetoed=True), _measured(MINE, 471.0)])
    trials = planner._client._experiment.trials
    assert [trials[i].status for i in range(4)] == [
        TrialStatus.COMPLETED, TrialStatus.FAILED, TrialStatus.ABANDONED, TrialStatus.COMPLETED
    ]  # fmt: skip
    assert trials[3].arm.parameters == MINE  # the person's experiment, with its data
    assert trials[3].lookup_data().df["mean"].tolist() == [pytest.approx(1.0)]
    snapshot = planner.snapshot()
    (later,) = planner.ask(1)

    restored = make_planner("ax", SPACE, TARGET, 3)
    observed = [_measured(asked[0]), Observation(asked[1], failed=True), _measured(MINE, 471.0),
                Observation(asked[2], failed=True, vetoed=True)]  # fmt: skip
    restored.restore([asked, [later.conditions]], observed, snapshot=snapshot)
    assert len(restored._client._experiment.trials) == 4  # nothing told twice
    assert restored.pending == [later.conditions]  # asked after the snapshot: still running
    restored.tell([_measured(later.conditions, 465.0)])
    assert restored._client._experiment.trials[4].status == TrialStatus.COMPLETED
    assert len(restored.ask(2)) == 2


def test_baybe_is_given_the_running_experiments_as_pending_and_restores_its_measurements(
    monkeypatch,
):
    from baybe import Campaign

    planner = make_planner("baybe", SPACE, TARGET, 3)
    planner.tell([_measured(MINE), _measured({**MINE, "temperature_c": 120.0}, 462.0)])
    recommend = Campaign.recommend
    given = []

    def spy(self, *args, **kwargs):
        given.append(kwargs.get("pending_experiments"))
        return recommend(self, *args, **kwargs)

    monkeypatch.setattr(Campaign, "recommend", spy)
    (first,) = planner.ask(1)
    planner.ask(1)
    assert given[0] is None
    assert given[1].to_dict("records") == [dict(first.conditions)]  # running: pending

    restored = make_planner("baybe", SPACE, TARGET, 3)
    snapshot = planner.snapshot()
    told = [*planner.observations, _measured(first.conditions, 468.0)]  # one after the snapshot
    restored.restore([[first.conditions]], told, snapshot=snapshot)
    assert len(restored._campaign.measurements) == 3
    assert restored.pending == []


@pytest.mark.parametrize(("kind", "module"), [("ax", "ax"), ("baybe", "baybe")])
def test_a_missing_peer_names_the_extra(monkeypatch, kind, module):
    from planners import SearchSpace, Target

    monkeypatch.setitem(sys.modules, module, None)  # import fails as if not installed
    space = SearchSpace.from_config(BASE["space"])
    with pytest.raises(PlannerConfigError, match=r"pip install -e '\.\[peers\]'"):
        make_planner(kind, space, Target("pl_peak_nm", 470.0, 1.0), 0)

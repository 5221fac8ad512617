"""Planners a campaign config can name beyond QDLab's own: Ax, BayBE and a user's class."""

import json
import os
import sys
import textwrap

import pytest

from db import Database
from planners import PlannerConfigError, make_planner
from tests.test_campaign import BASE, write_config

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


@pytest.mark.parametrize(("kind", "module"), [("ax", "ax"), ("baybe", "baybe")])
def test_a_missing_peer_names_the_extra(monkeypatch, kind, module):
    from planners import SearchSpace, Target

    monkeypatch.setitem(sys.modules, module, None)  # import fails as if not installed
    space = SearchSpace.from_config(BASE["space"])
    with pytest.raises(PlannerConfigError, match=r"pip install -e '\.\[peers\]'"):
        make_planner(kind, space, Target("pl_peak_nm", 470.0, 1.0), 0)

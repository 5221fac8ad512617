"""Pareto targets: the trade-off between the narrowest line and the brightest among the hits."""

import json
import logging
import re

import numpy as np
import pytest

from db import Database
from devices.config import ConfigError
from orchestrator.campaign.runner import CampaignRunner
from planners import PARETO, Target
from planners.base import pareto_mask
from tests.conftest import ROOT, qdlab
from tests.test_shape_targets import campaign

PARETO_TARGET = {
    "pl_peak_nm": 470.0,
    "tolerance_nm": 1.0,
    "pareto": {"pl_fwhm_nm": "min", "plqy_est": "max"},
}


def _obs(peak: float, fwhm: float, plqy: float) -> dict[str, float]:
    # a cube sample: broad enough and Stokes-shifted (models.analysis.platelet_like says cubes)
    return {"pl_peak_nm": peak, "pl_fwhm_nm": fwhm, "plqy_est": plqy, "abs_peak_nm": peak - 12}


def test_pareto_mask_keeps_exactly_the_non_dominated_rows():
    values = np.array([[1.0, 1.0], [2.0, 0.5], [0.5, 2.0], [0.9, 0.9], [2.0, 0.5]])
    assert pareto_mask(values).tolist() == [True, True, True, False, True]
    rng = np.random.default_rng(0)
    cloud = rng.normal(size=(60, 2))
    keep = pareto_mask(cloud)
    for i, row in enumerate(cloud):
        dominated = any(
            np.all(other >= row) and np.any(other > row) for j, other in enumerate(cloud) if j != i
        )
        assert keep[i] == (not dominated)


def test_the_pareto_set_holds_only_hits_of_the_right_shape_none_dominated():
    target = Target("pl_peak_nm", 470.0, 1.0, pareto=PARETO)
    cond = {"material": "CsPbBr3"}
    experiments = [
        (_obs(470.2, 22.0, 0.70), cond),  # front: narrowest
        (_obs(469.5, 25.0, 0.90), cond),  # front: brightest
        (_obs(470.0, 26.0, 0.80), cond),  # dominated by the one above
        (_obs(475.0, 18.0, 0.99), cond),  # better in both, but off the window: no hit
        ({"pl_peak_nm": 470.1, "pl_fwhm_nm": 10.5, "plqy_est": 0.95, "abs_peak_nm": 466.0}, cond),
    ]  # the last: a narrow, barely shifted line, platelets: no hit for a cube target
    assert target.pareto_set(experiments) == [0, 1]
    assert Target("pl_peak_nm", 470.0, 1.0).pareto_set(experiments) == [0, 1, 2]  # all hits


def test_the_best_experiment_is_a_hit_ranked_by_the_secondary_goal_and_on_the_front():
    """A campaign's "best": among the hits (right shape, in the window) the one the secondary
    goal prefers, not the one closest to the peak; a Pareto target's best is on its front."""
    cond = {"material": "CsPbBr3"}
    experiments = [
        (_obs(470.1, 24.6, 0.60), cond),  # closest to 470, broader
        (_obs(470.8, 23.7, 0.50), cond),  # a hit with the narrowest line
        (_obs(470.0, 30.0, 0.95), cond),  # dead on, broad, brightest
        (_obs(472.0, 15.0, 0.99), cond),  # narrowest of all, but no hit
    ]

    def best(target: Target) -> int:
        return min(range(len(experiments)), key=lambda i: target.rank(*experiments[i]))

    assert best(Target("pl_peak_nm", 470.0, 1.0)) == 2  # no secondary goal: the smallest error
    assert best(Target("pl_peak_nm", 470.0, 1.0, minimize=("pl_fwhm_nm",))) == 1
    assert best(Target("pl_peak_nm", 470.0, 1.0, maximize=("plqy_est",))) == 2
    pareto = Target("pl_peak_nm", 470.0, 1.0, pareto=PARETO)
    assert best(pareto) == 1 and 1 in pareto.pareto_set(experiments)
    # with no hit at all, the right shape and the smallest error decide
    assert best(Target("pl_peak_nm", 480.0, 1.0, minimize=("pl_fwhm_nm",))) == 3


@pytest.mark.parametrize(
    ("target", "words"),
    [
        ({**PARETO_TARGET, "pareto": {"pl_fwhm_nm": "max", "plqy_est": "max"}}, "pl_fwhm_nm: min"),
        ({**PARETO_TARGET, "pareto": {"pl_fwhm_nm": "min"}}, "plqy_est: max"),
        ({**PARETO_TARGET, "minimize": ["pl_fwhm_nm"]}, "pareto replaces minimize"),
    ],
)
def test_bad_pareto_targets_are_refused_naming_the_field(target, words):
    with pytest.raises(ConfigError) as err:
        campaign(target=target)
    assert "target" in str(err.value) and words in str(err.value)


def test_a_pareto_campaign_spends_its_budget_unless_told_otherwise():
    assert campaign(target=PARETO_TARGET).config.stop_on_target is False
    assert campaign(target=PARETO_TARGET, stop_on_target=True).config.stop_on_target is True
    assert campaign().config.stop_on_target is True


def test_a_pareto_campaign_reports_the_front_it_found(tmp_path):
    """End to end through the CLI: the BoTorch planner's proposals come from the hypervolume
    acquisition; `campaign show` and the report give the Pareto set, whose points are hits that
    no other hit dominates."""
    config = tmp_path / "pareto.yaml"
    text = (ROOT / "configs" / "campaigns" / "blue_470_pareto.yaml").read_text()
    config.write_text(
        text.replace("../labs/sim.yaml", str(ROOT / "configs" / "labs" / "sim.yaml")).replace(
            "budget: 20", "budget: 9"
        )
    )
    db = f"sqlite:///{tmp_path / 'p.db'}"
    run = qdlab("campaign", "run", str(config), "--db", db, timeout=600)
    assert run.returncode == 0, run.stderr
    assert "completed after 9 experiments" in run.stdout
    assert "Pareto set (" in run.stdout
    assert "Warning" not in run.stderr

    shown = json.loads(qdlab("campaign", "show", "1", "--db", db, "--json").stdout)
    assert shown["target"]["pareto"] == {"pl_fwhm_nm": "min", "plqy_est": "max"}
    front = shown["pareto_set"]
    assert front, "a campaign near the demo's target finds hits within 9 experiments"
    target = Target("pl_peak_nm", 470.0, 1.0, pareto=PARETO)
    hits = [
        e
        for e in shown["experiments"]
        if e["status"] == "done" and target.hit(e["observables"], e["conditions"])
    ]
    on_front = {p["experiment"] for p in front}
    assert on_front <= {e["index"] + 1 for e in hits}
    best = re.search(r"best: experiment (\d+)", run.stdout)
    assert best and int(best.group(1)) in on_front, run.stdout  # the best is on the front
    for e in hits:
        obs = e["observables"]
        dominated = any(
            p["pl_fwhm_nm"] <= obs["pl_fwhm_nm"]
            and p["plqy_est"] >= obs["plqy_est"]
            and (p["pl_fwhm_nm"], p["plqy_est"]) != (obs["pl_fwhm_nm"], obs["plqy_est"])
            for p in front
        )
        assert dominated != (e["index"] + 1 in on_front)

    database = Database(db, create=False)
    stages = [r.provenance for r in database.experiments(1)]
    assert any(p.get("acquisition") == "qLogNEHVI" for p in stages)
    # from two measurements on (before them, the twin alone), the hypervolume decides
    assert all(p.get("acquisition") in ("qLogNEHVI", "twin", None) for p in stages)
    assert [p.get("acquisition") for p in stages[:1]] == ["twin"]

    table = qdlab("campaign", "show", "1", "--db", db)
    assert "Pareto set" in table.stdout and f"#{front[0]['experiment']}:" in table.stdout
    report = qdlab("campaign", "report", "1", "--db", db, "--out", str(tmp_path / "r"))
    assert report.returncode == 0, report.stderr
    assert (tmp_path / "r" / "pareto.png").stat().st_size > 10_000
    assert "Pareto set (" in (tmp_path / "r" / "report.html").read_text()


@pytest.mark.parametrize("kind", ["ax", "baybe"])
def test_peers_take_a_pareto_target_in_their_own_way(kind):
    """Ax's multi-objective optimisation and BayBE's ParetoObjective run the same campaign, on
    past their initial designs into their models."""
    logging.getLogger("bluesky").setLevel(logging.CRITICAL)
    db = Database("sqlite://")
    loaded = campaign(target=PARETO_TARGET, planner={"kind": kind}, budget=7)
    summary = CampaignRunner(db, loaded).run()
    assert summary.status == "completed" and summary.experiments == 7
    assert summary.pareto_set is not None
    assert all(r.planner_name == kind for r in db.experiments(summary.campaign_id))

"""Replay, playback and backtest of recorded campaigns."""

import json
import logging
import os
import textwrap

import numpy as np
import pytest

from db import Database
from db.database import dumps
from models import simulate
from orchestrator.campaign.config import load_campaign
from orchestrator.campaign.runner import CampaignRunner
from orchestrator.history.replay import backtest, playback_documents
from tests.conftest import ROOT, validate_documents

DEMO = str(ROOT / "configs" / "campaigns" / "blue_470_random.yaml")


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """A 12-experiment simulated campaign in a SQLite file."""
    logging.getLogger("bluesky").setLevel(logging.CRITICAL)
    url = f"sqlite:///{tmp_path_factory.mktemp('rec') / 'rec.db'}"
    db = Database(url)
    summary = CampaignRunner(db, load_campaign(DEMO, {"budget": 12})).run()
    return url, summary.campaign_id


def test_replaying_a_simulated_campaign_reproduces_it_exactly(run_qdlab, recorded, tmp_path):
    url, cid = recorded
    out = run_qdlab("replay", str(cid), "--db", url, "--json", "--out", str(tmp_path))
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["experiments"] == 12
    for key in ("pl_peak_rmse_nm", "pl_peak_max_error_nm", "pl_fwhm_rmse_nm", "abs_peak_rmse_nm"):
        assert summary[key] == 0.0
    replay = Database(url).campaign(summary["replay_campaign_id"])
    assert replay["replay_of"] == cid and replay["name"].startswith("replay of")
    assert (tmp_path / "parity.png").stat().st_size > 5000


def test_replay_with_another_outcome_model_reports_that_models_differences(
    run_qdlab, recorded, tmp_path
):
    (tmp_path / "bigger_dots.py").write_text(
        textwrap.dedent("""
        from models.synthesis import hot_injection_outcome

        def outcome(conditions, rng):
            out = hot_injection_outcome(conditions, rng)
            out["edge_length_nm"] *= 1.10
            return out
    """)
    )
    url, cid = recorded
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    out = run_qdlab(
        "replay", str(cid), "--db", url, "--outcome-model", "bigger_dots:outcome", "--json", env=env
    )
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["pl_peak_rmse_nm"] > 2.0
    db = Database(url)
    rows = [r for r in db.experiments(cid) if r.status == "done"]
    replayed = {r.index: r for r in db.experiments(summary["replay_campaign_id"])}
    import sys

    sys.path.insert(0, str(tmp_path))
    try:
        shifts, predicted = [], []
        for r in rows:
            if replayed[r.index].status != "done":
                continue
            shifts.append(replayed[r.index].observables["pl_peak_nm"] - r.observables["pl_peak_nm"])
            model = simulate(
                "hot_injection", r.conditions, outcome_model="bigger_dots:outcome"
            ).observables["pl_peak_nm"][0]
            base = simulate("hot_injection", r.conditions).observables["pl_peak_nm"][0]
            predicted.append(model - base)
    finally:
        sys.path.remove(str(tmp_path))
    # bigger dots emit redder, by what the model predicts for each experiment's conditions
    # (platelet-dominated samples hardly move: their lines are set by thickness, not size)
    assert np.mean(shifts) > 1.0
    assert np.abs(np.array(shifts) - np.array(predicted)).max() < 1.0


@pytest.fixture(scope="module")
def recorded_in_situ(tmp_path_factory):
    """A 3-experiment campaign on the lab with a dip probe (in-situ and monitor streams)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('grown') / 'grown.db'}"
    config = str(ROOT / "configs" / "campaigns" / "grow_465_insitu.yaml")
    summary = CampaignRunner(Database(url), load_campaign(config, {"budget": 3})).run()
    return url, summary.campaign_id


@pytest.mark.parametrize("campaign", ["recorded", "recorded_in_situ"])
def test_playback_recreates_the_recorded_documents_field_by_field(request, campaign):
    url, cid = request.getfixturevalue(campaign)
    db = Database(url)
    original = list(db.campaign_documents(cid))
    played = playback_documents(db, cid)
    assert [n for n, _ in played] == [n for n, _ in original]
    validate_documents(played)
    volatile = {"uid", "time", "run_start", "descriptor", "timestamps"}

    def stable(doc):
        if isinstance(doc, dict):
            return {k: stable(v) for k, v in doc.items() if k not in volatile}
        if isinstance(doc, list):
            return [stable(x) for x in doc]
        return doc

    for (name, a), (_, b) in zip(original, played, strict=True):
        a, b = json.loads(dumps(stable(a))), json.loads(dumps(stable(b)))
        assert a.keys() == b.keys(), name
        for key in a:  # (the database keeps a document's keys sorted)
            assert a[key] == b[key], (name, key)
    streams = {d["name"] for n, d in played if n == "descriptor"}
    if campaign == "recorded_in_situ":  # the growth readings come back in their own stream
        assert {"primary", "baseline", "insitu", "reactor_temperature_monitor"} <= streams


def test_backtest_reports_experiments_to_goal_beside_original_and_random_orders(
    run_qdlab, recorded
):
    url, cid = recorded
    out = run_qdlab("backtest", str(cid), "--planner", "random", "--seeds", "3", "--db", url)
    assert out.returncode == 0, out.stderr
    assert "original order" in out.stdout and "random order median" in out.stdout
    result = json.loads(
        run_qdlab(
            "backtest", str(cid), "--planner", "sobol", "--seeds", "2", "--db", url, "--json"
        ).stdout
    )
    assert result["pool"] == sum(r.status == "done" for r in Database(url).experiments(cid))
    assert all(1 <= n <= result["pool"] for n in result["experiments_to_goal"])
    # the goal is of the shape the target asks for: the original order's is no platelet sample
    from orchestrator.campaign.config import loaded_from_stored

    stored = Database(url).campaign(cid)
    target = loaded_from_stored(stored["config"], stored["name"]).target
    done = [r for r in Database(url).experiments(cid) if r.status == "done" and r.observables]
    if result["original_order"] is not None:
        goal = done[result["original_order"] - 1]
        assert target.shape_ok(goal.observables, goal.conditions)


@pytest.mark.slow
def test_botorch_backtest_chooses_only_recorded_experiments(recorded):
    url, cid = recorded
    result = backtest(Database(url), cid, "botorch", [0])
    assert result["planner"] == "botorch" and result["experiments_to_goal"][0] is not None


def test_bad_replay_input_exits_2_with_one_line(run_qdlab, recorded, tmp_path):
    url, cid = recorded
    out = run_qdlab("replay", "999", "--db", url)
    assert out.returncode == 2 and out.stderr.strip().startswith("error: no campaign 999")
    empty = Database(f"sqlite:///{tmp_path / 'e.db'}")
    stored = Database(url).campaign(cid)
    eid = empty.create_campaign("empty", "hot_injection", stored["config"], "", stored["target"])
    out = run_qdlab("backtest", str(eid), "--db", f"sqlite:///{tmp_path / 'e.db'}")
    assert out.returncode == 2 and "has no completed experiments" in out.stderr
    flow_config = load_campaign(
        str(ROOT / "configs" / "campaigns" / "flow_490_random.yaml"), {"budget": 2}
    )
    fdb = Database(f"sqlite:///{tmp_path / 'f.db'}")
    fid = CampaignRunner(fdb, flow_config).run().campaign_id
    import yaml

    lab = yaml.safe_load((ROOT / "configs" / "labs" / "sim.yaml").read_text())
    del lab["flow"]
    (tmp_path / "noflow.yaml").write_text(yaml.safe_dump(lab))
    out = run_qdlab(
        "replay",
        str(fid),
        "--db",
        f"sqlite:///{tmp_path / 'f.db'}",
        "--lab",
        str(tmp_path / "noflow.yaml"),
    )
    assert out.returncode == 2 and "has no flow reactor" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1

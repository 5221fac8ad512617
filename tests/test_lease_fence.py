"""A driver frozen past its lease (a laptop lid, a VM pause) and woken after another process took
the campaign over: it stops with one line, writes nothing and moves nothing; every experiment
runs once."""

from __future__ import annotations

import os
import signal
import time

import pytest
import yaml

from db import Database, ExperimentStatus, LeaseLost
from db.lease import CampaignLease
from tests.conftest import ROOT, qdlab, wait_for

LAB = str(ROOT / "configs" / "labs" / "sim.yaml")


def _config(tmp_path, budget: int) -> str:
    lab = tmp_path / "lab.yaml"
    lab.write_text(
        yaml.safe_dump(
            {"base": LAB, "name": "slow", "simulator": {"clock": "realtime", "speed": 100.0}}
        )
    )
    campaign = {
        **yaml.safe_load((ROOT / "configs" / "campaigns" / "blue_470_random.yaml").read_text()),
        "lab": str(lab),
        "budget": budget,
        "stop_on_target": False,
    }
    path = tmp_path / "campaign.yaml"
    path.write_text(yaml.safe_dump(campaign))
    return str(path)


def _done(db: Database) -> int:
    try:
        return sum(r.status == ExperimentStatus.DONE for r in db.experiments(1))
    except Exception:  # not created yet
        return 0


@pytest.mark.slow
def test_a_driver_woken_after_a_takeover_stops_with_one_line_and_writes_nothing(tmp_path, spawn):
    url = f"sqlite:///{tmp_path / 'fence.db'}"
    env = {**os.environ, "QDLAB_LEASE_TTL_S": "2"}
    frozen = spawn("campaign", "run", _config(tmp_path, 6), "--db", url, capture=True, env=env)
    db = Database(url)
    wait_for(lambda: _done(db) >= 1, 60, "the first experiment")
    # frozen while its next plan heats the reactor, not inside a write: SQLite's one writer
    # lock, held by a stopped process, would stop every other writer too
    wait_for(lambda: any(not run["complete"] for run in db.runs(1)), 60, "the next run")
    time.sleep(0.5)
    frozen.send_signal(signal.SIGSTOP)
    try:
        time.sleep(3.0)  # its lease (2 s) runs out
        taker = spawn("campaign", "resume", "1", "--db", url, "--json", capture=True, env=env)
        wait_for(lambda: _done(db) >= 3, 90, "the new driver to run on")
    finally:
        frozen.send_signal(signal.SIGCONT)
    _, err = frozen.communicate(timeout=60)
    assert frozen.returncode == 2, err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert lines[-1].startswith("error: campaign 1: another process took over its lease"), err
    assert "Traceback" not in err and "IntegrityError" not in err
    _, err = taker.communicate(timeout=120)
    assert taker.returncode == 0, err
    rows = db.experiments(1)
    assert [r.index for r in rows] == list(range(6))
    assert all(r.status == ExperimentStatus.DONE for r in rows)
    complete = [run for run in db.runs(1) if run["complete"] and run["exit_status"] == "success"]
    assert sorted(run["experiment_id"] for run in complete) == sorted(r.id for r in rows)


def test_a_write_fenced_by_a_lost_lease_changes_nothing(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'f.db'}")
    cid = db.create_campaign("c", "hot_injection", {}, "", {"pl_peak_nm": 470.0})
    eid = db.add_experiment(cid, None, {"x": 1}, planner_name="p", planner_version="1")
    with CampaignLease(db, cid, ttl_s=60) as old:
        stale = old.fence
    with CampaignLease(db, cid, ttl_s=60):  # another driver holds it now
        with pytest.raises(LeaseLost, match="another process took over its lease"):
            db.set_experiment_status(eid, ExperimentStatus.RUNNING, fence=stale)
        with pytest.raises(LeaseLost):
            db.add_experiment(cid, None, {"x": 2}, planner_name="p", planner_version="1",
                              fence=stale)  # fmt: skip
    assert [(r.id, r.status) for r in db.experiments(cid)] == [(eid, ExperimentStatus.PROPOSED)]


@pytest.mark.parametrize("value", ["abc", "-5", "0", "nan", "1e9"])
def test_a_bad_lease_ttl_is_one_line_before_anything_is_written(tmp_path, value):
    url = f"sqlite:///{tmp_path / 't.db'}"
    out = qdlab(
        "campaign", "run", _config(tmp_path, 2), "--db", url,
        env={**os.environ, "QDLAB_LEASE_TTL_S": value},
    )  # fmt: skip
    assert out.returncode == 2
    assert out.stderr.strip() == (
        f"error: $QDLAB_LEASE_TTL_S: {value!r} must be a number of seconds in [1, 3600]"
    )
    assert Database(url).campaigns() == []

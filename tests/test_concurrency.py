"""One driver per campaign, and schema creation that several processes may race for."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from db import Database
from db.database import _HEAD
from db.lease import CampaignLease, LeaseHeld, lease_holder
from tests.conftest import ROOT, start_qdlab
from tests.test_campaign import _wait_for, write_config


def _campaign(db: Database) -> int:
    return db.create_campaign("c", "hot_injection", {}, "", {"pl_peak_nm": 470})


def test_a_second_lease_is_refused_naming_the_holder(db_url):
    db = Database(db_url)
    cid = _campaign(db)
    with CampaignLease(db, cid) as first:
        with pytest.raises(LeaseHeld, match=rf"campaign {cid} is being run by pid {os.getpid()}"):
            CampaignLease(db, cid).acquire()
        assert lease_holder(db, cid)[0] == first.owner
    assert lease_holder(db, cid) is None  # released on exit
    CampaignLease(db, cid).acquire()  # free again


def test_an_expired_lease_is_taken_over_and_its_holder_learns_it(db_url):
    db = Database(db_url)
    cid = _campaign(db)
    stale = CampaignLease(db, cid, ttl_s=0.05)
    stale.owner = "another-host:1234:abcd"  # a holder this host cannot check for liveness
    stale.acquire()
    with pytest.raises(LeaseHeld, match="pid 1234 on host another-host"):
        CampaignLease(db, cid).acquire()
    time.sleep(0.1)
    fresh = CampaignLease(db, cid)
    fresh.acquire()
    assert not stale.renew() and stale.lost.is_set()
    assert fresh.renew()


def test_a_lease_of_a_dead_process_on_this_host_is_free_at_once(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'd.db'}")
    cid = _campaign(db)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    ghost = CampaignLease(db, cid, ttl_s=3600)
    ghost.owner = f"{ghost.owner.split(':')[0]}:{dead.pid}:ghost"
    ghost.acquire()
    assert lease_holder(db, cid) is None
    CampaignLease(db, cid).acquire()


@pytest.mark.slow
def test_two_resumes_at_once_one_refused_and_every_experiment_runs_once(run_qdlab, tmp_path):
    url = f"sqlite:///{tmp_path / 'two.db'}"
    # ~6 s per experiment: the first run must outlast the start of a second qdlab (torch, scipy
    # and ophyd imports take seconds on a loaded machine)
    slower = {"simulator": {"clock": "realtime", "speed": 100.0}}
    cfg = write_config(tmp_path, budget=8, stop_on_target=False, **slower)
    first = start_qdlab("campaign", "run", cfg, "--db", url)
    _wait_for(url, 1)
    second = run_qdlab("campaign", "resume", "1", "--db", url)
    assert second.returncode == 2, second.stderr
    line = second.stderr.strip()
    assert line.count("\n") == 0 and f"is being run by pid {first.pid}" in line
    os.kill(first.pid, signal.SIGKILL)  # the holder dies: its lease is free at once
    first.wait(10)
    pair = [start_qdlab("campaign", "resume", "1", "--db", url, capture=True) for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in pair]
    codes = sorted(p.returncode for p in pair)
    assert codes == [0, 2], outs
    db = Database(url)
    runs = db.runs(1)
    measured = [r["experiment_id"] for r in runs if r["complete"] and r["exit_status"] == "success"]
    assert len(measured) == len(set(measured)) == 8
    assert [r.index for r in db.experiments(1)] == list(range(8))


def _upgrade_at_once(url: str, n: int) -> list[subprocess.CompletedProcess]:
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "orchestrator", "db", "upgrade", "--db", url],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(n)
    ]
    return [(p, *p.communicate(timeout=120)) for p in procs]


@pytest.mark.parametrize("n", [4])
def test_schema_creation_races_are_safe(db_url, n):
    results = _upgrade_at_once(db_url, n)
    assert all(p.returncode == 0 for p, _, _ in results), [err for _, _, err in results]
    assert sum(f"schema empty -> {_HEAD}" in out for _, out, _ in results) >= 1
    db = Database(db_url, migrate=False)
    assert db.revision() == _HEAD and db.integrity_check()


def test_campaigns_started_at_once_on_a_new_database_all_run(tmp_path, db_url):
    cfg = write_config(tmp_path, budget=2)
    procs = [
        start_qdlab("campaign", "run", cfg, "--db", db_url, "--json", capture=True)
        for _ in range(3)
    ]
    outs = [p.communicate(timeout=180) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    ids = sorted(json.loads(out)["campaign_id"] for out, _ in outs)
    assert ids == [1, 2, 3]
    db = Database(db_url)
    assert all(db.campaign(i)["status"] == "completed" for i in ids)

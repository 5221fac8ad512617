"""A PostgreSQL server that goes away under a running campaign: ride it out, or stop cleanly."""

import json
import os
import time

import pytest

from db import Database
from tests.conftest import start_qdlab
from tests.test_campaign import _wait_for, write_config

SLOWER = {"simulator": {"clock": "realtime", "speed": 600.0}}  # ~1 s per experiment


def _exactly_once(url: str, n: int) -> None:
    db = Database(url)
    runs = db.runs(1)
    measured = [r["experiment_id"] for r in runs if r["complete"] and r["exit_status"] == "success"]
    assert len(measured) == len(set(measured)) == n
    assert [r.index for r in db.experiments(1)] == list(range(n))
    rows = db.experiments(1)
    assert all(r.status == "done" or r.failure_reason for r in rows)


@pytest.mark.slow
def test_a_short_database_outage_is_ridden_out(own_postgres, tmp_path):
    url, server = own_postgres
    cfg = write_config(tmp_path, budget=6, stop_on_target=False, **SLOWER)
    proc = start_qdlab("campaign", "run", cfg, "--db", url, "--json", capture=True)
    _wait_for(url, 2)
    assert proc.poll() is None  # the outage hits a running campaign
    server.pause()
    time.sleep(3)
    server.restart()
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err
    assert json.loads(out)["experiments"] == 6
    _exactly_once(url, 6)


@pytest.mark.slow
def test_a_long_outage_stops_in_one_line_and_resume_completes(own_postgres, tmp_path, run_qdlab):
    url, server = own_postgres
    cfg = write_config(tmp_path, budget=6, stop_on_target=False, **SLOWER)
    env = {**os.environ, "QDLAB_RECONNECT_S": "3"}
    proc = start_qdlab("campaign", "run", cfg, "--db", url, capture=True, env=env)
    _wait_for(url, 2)
    assert proc.poll() is None
    server.pause()
    _, err = proc.communicate(timeout=120)
    server.restart()
    assert proc.returncode == 3, err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in err
    assert "unreachable for 3 s" in lines[0] and "127.0.0.1" in lines[0]
    assert "qdlab campaign resume 1" in lines[0]
    done = run_qdlab("campaign", "resume", "1", "--db", url, "--json")
    assert done.returncode == 0, done.stderr
    _exactly_once(url, 6)

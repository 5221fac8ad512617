"""The live dashboard: its JSON API (FastAPI's test client) and the pages in a real Chromium
driven by Playwright, against a campaign running in the background, as a chemist uses it."""

from __future__ import annotations

import os
import time
import urllib.error
import urllib.request

import pytest
from fastapi.testclient import TestClient

from db import Database
from orchestrator.dashboard import create_app
from tests.conftest import _free_port, wait_for
from tests.test_approval import rows_with
from tests.test_campaign import write_config

TOKEN = "lab-token-123"
HAND = {"br_pb_ratio": 8, "temperature_c": 150, "ligand": "oa_olam", "time_s": 30}


@pytest.fixture
def gated(tmp_path, spawn, db_url):
    """A campaign with `approval: required` running in the background, and its database (a
    SQLite file, and a real PostgreSQL database)."""
    url = db_url
    config = write_config(tmp_path, approval="required", budget=3, stop_on_target=False)
    spawn("campaign", "run", config, "--db", url)
    db = Database(url)
    wait_for(lambda: rows_with(db, "awaiting_approval"), what="a proposal")
    return db, url


def test_the_api_lists_campaigns_and_refuses_writes_without_the_token(gated):
    db, url = gated
    client = TestClient(create_app(url, TOKEN), base_url="http://127.0.0.1")
    (listed,) = client.get("/api/campaigns").json()
    assert listed["name"] == "test-campaign" and listed["awaiting"] == 1
    assert listed["budget"] == 3 and listed["target"].startswith("PL 470 ± 1 nm")
    data = client.get("/api/campaigns/1").json()
    assert data["experiments"][0]["status"] == "awaiting_approval"
    assert data["target"] == {
        "observable": "pl_peak_nm",
        "value": 470.0,
        "tolerance": 1.0,
        "shape": "cubes",
    }
    assert client.get("/api/campaigns/9").status_code == 404

    for headers in ({}, {"Authorization": "Bearer wrong"}):
        refused = client.post("/api/campaigns/1/approve", json={"numbers": [1]}, headers=headers)
        assert refused.status_code == 401 and "token" in refused.json()["detail"]
    read_only = TestClient(create_app(url), base_url="http://127.0.0.1").post(
        "/api/campaigns/1/approve",
        json={"numbers": [1]},
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert read_only.status_code == 403 and "read-only" in read_only.json()["detail"]
    assert [r.status for r in db.experiments(1)] == ["awaiting_approval"]  # nothing changed

    auth = {"Authorization": f"Bearer {TOKEN}"}
    bad = client.post("/api/campaigns/1/add", json={"conditions": {**HAND, "time_s": 9e9}},
                      headers=auth)  # fmt: skip
    assert bad.status_code == 400 and "time_s" in bad.json()["detail"]
    added = client.post("/api/campaigns/1/add", json={"conditions": HAND, "note": "a hunch"},
                        headers=auth)  # fmt: skip
    assert added.status_code == 200
    human = db.experiments(1)[added.json()["added"] - 1]
    assert human.planner_name == "human" and human.provenance["note"] == "a hunch"
    rejected = client.post("/api/campaigns/1/reject", json={"number": 1, "reason": "too hot"},
                           headers=auth)  # fmt: skip
    assert rejected.status_code == 200
    assert db.experiments(1)[0].failure_reason == "rejected: too hot"


def _serve(spawn, url: str, token: str | None = TOKEN) -> str:
    port = _free_port()
    args = ["dashboard", "--db", url, "--port", str(port)]
    env = {**os.environ, "QDLAB_DASHBOARD_TOKEN": token or ""}
    spawn(*args, env=env)
    address = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return urllib.request.urlopen(f"{address}/api/campaigns", timeout=1).status == 200
        except OSError:
            return False

    wait_for(up, timeout=30, what="the dashboard")
    return address


@pytest.mark.slow
def test_a_chemist_watches_live_and_approves_by_clicking(gated, spawn, browser, tmp_path):
    db, url = gated
    address = _serve(spawn, url)
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{address}/campaigns/1")
    page.wait_for_selector("#awaiting button.approve")
    assert page.locator("#experiments tr").count() == 1

    page.click("#awaiting button.approve")  # no token typed: refused, nothing changes
    page.wait_for_selector("#message:has-text('refused')")
    assert "token" in page.inner_text("#message")
    time.sleep(0.5)
    assert [r.status for r in db.experiments(1)] == ["awaiting_approval"]

    page.fill("#token", TOKEN)
    page.dispatch_event("#token", "change")
    page.click("#awaiting button.approve")
    wait_for(lambda: db.experiments(1)[0].status != "awaiting_approval", what="approval")
    # the campaign runs it and proposes the next; both appear without reloading, within 2 s
    wait_for(lambda: db.experiments(1)[0].status == "done", what="the experiment")
    stored = time.monotonic()
    page.wait_for_selector("#experiments tr:first-child td.done", timeout=2000)
    page.wait_for_selector("#experiments tr:nth-child(2)", timeout=3000)  # (CSP: no eval)
    assert time.monotonic() - stored < 2.0
    assert page.locator("#convergence .main-svg").count() > 0  # Plotly drew, offline
    page.screenshot(path=str(tmp_path / "campaign.png"), full_page=True)
    assert errors == []


def test_a_read_only_dashboard_serves_pages_and_plotly_from_the_package(gated, spawn):
    db, url = gated
    address = _serve(spawn, url, token=None)
    page = urllib.request.urlopen(f"{address}/campaigns/1").read().decode()
    assert "read-only" in page and '<script src="/static/plotly.min.js">' in page
    assert "cdn" not in page.lower()
    js = urllib.request.urlopen(f"{address}/static/plotly.min.js").read()
    assert len(js) > 1_000_000 and b"plotly" in js[:2000].lower()
    request = urllib.request.Request(
        f"{address}/api/campaigns/1/approve", data=b'{"numbers": null}', method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"},
    )  # fmt: skip
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request)
    assert refused.value.code == 403
    assert rows_with(db, "awaiting_approval")


def test_pause_and_resume_from_the_dashboard_drive_the_campaigns_agent(gated):
    import os
    import signal

    db, url = gated
    client = TestClient(create_app(url, TOKEN), base_url="http://127.0.0.1")
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert client.post("/api/campaigns/1/resume", headers=auth).status_code == 400  # running
    paused = client.post("/api/campaigns/1/pause", json={"reason": "lunch"}, headers=auth)
    assert paused.status_code == 200 and paused.json()["status"] == "pausing"
    # the agent (another process) sees it while it waits for approval and pauses the campaign
    wait_for(lambda: db.campaign(1)["status"] == "paused", what="the agent to pause")
    assert "paused by dashboard-token: lunch" in db.campaign(1)["status_reason"]
    again = client.post("/api/campaigns/1/pause", headers=auth)
    assert again.status_code == 400 and "nothing to pause" in again.json()["detail"]

    resumed = client.post("/api/campaigns/1/resume", headers=auth)
    assert resumed.status_code == 200
    pid = resumed.json()["pid"]
    try:
        wait_for(lambda: db.campaign(1)["status"] == "running", what="a new agent")
        assert rows_with(db, "awaiting_approval")  # it waits for a person, as before
        assert client.post("/api/campaigns/1/resume", headers=auth).status_code == 400
    finally:
        os.kill(pid, signal.SIGKILL)

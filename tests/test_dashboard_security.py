"""The dashboard against a hostile browser and network: stored values never run as script, writes
are refused before their body is read, unknown Host names and absurd ids are refused cleanly."""

from __future__ import annotations

import shutil
import time

import pytest
from fastapi.testclient import TestClient

from db import CampaignStatus, Database
from orchestrator.campaign import approval
from orchestrator.dashboard import create_app
from orchestrator.dashboard.security import MAX_BODY
from tests.conftest import CHROMIUM_ARGS, _free_port, wait_for

TOKEN = "lab-token-1234567890"
HOSTILE = '<img src=x onerror="window.pwned=1">{{body}}</td><script>window.pwned=2</script>'
HOT = {"br_pb_ratio": 8.0, "temperature_c": 150.0, "ligand": "oa_olam", "time_s": 30.0}


@pytest.fixture
def hostile(tmp_path) -> str:
    """A database whose campaign and experiment hold markup where names and reasons go."""
    url = f"sqlite:///{tmp_path / 'hostile.db'}"
    db = Database(url)
    config = {"campaign": {"budget": HOSTILE, "space": {HOSTILE: [1, 2]}}}
    cid = db.create_campaign(HOSTILE, HOSTILE, config, "", {"pl_peak_nm": 470.0})
    db.add_experiment(
        cid, None, {HOSTILE: HOSTILE}, planner_name=HOSTILE, planner_version="1",
        provenance={"note": HOSTILE},
    )  # fmt: skip
    db.set_campaign_status(cid, CampaignStatus.PAUSED, HOSTILE)
    return url


def _client(url: str, token: str | None = TOKEN) -> TestClient:
    return TestClient(create_app(url, token), base_url="http://127.0.0.1")


def test_every_response_forbids_inline_script_and_framing(hostile):
    page = _client(hostile).get("/campaigns/1")
    assert page.status_code == 200
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp.split("script-src")[1][:30]
    assert "frame-ancestors 'none'" in csp and page.headers["x-frame-options"] == "DENY"
    assert "<script>" not in page.text.replace('<script src="', "")  # no inline script at all
    assert "onclick=" not in page.text and "onsubmit=" not in page.text


def test_a_campaign_named_like_a_placeholder_stays_a_name(hostile):
    page = _client(hostile).get("/campaigns/1").text
    assert "&lt;img src=x onerror=" in page  # the title, escaped
    assert "{{body}}" in page  # the name's own braces, not the body put in twice
    assert page.count('id="experiments"') == 1


@pytest.mark.slow
def test_stored_markup_is_shown_as_text_and_never_runs(hostile, spawn, tmp_path):
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed (the Makefile installs it with apt)")
    from playwright.sync_api import sync_playwright

    port = _free_port()
    spawn("dashboard", "--db", hostile, "--port", str(port))
    address = f"http://127.0.0.1:{port}"
    wait_for(lambda: _up(address), 30, "the dashboard")
    with sync_playwright() as p:
        engine = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = engine.new_page()
        for path in ("/", "/campaigns/1", "/campaigns/1/experiments/1"):
            page.goto(address + path)
            page.wait_for_selector("td")  # (no wait_for_function: the CSP forbids its eval)
            time.sleep(0.3)  # a poll has filled the tables
            assert page.evaluate("window.pwned") is None, path
            assert page.locator("img[src='x']").count() == 0, path
        page.goto(address + "/")
        page.wait_for_selector("#campaigns td a")
        assert page.inner_text("#campaigns td a") == HOSTILE
        engine.close()


def _up(address: str) -> bool:
    import urllib.request

    try:
        return urllib.request.urlopen(f"{address}/api/campaigns", timeout=1).status == 200
    except OSError:
        return False


def test_a_write_is_refused_before_its_body_is_read(hostile):
    client = _client(hostile)
    big = b"x" * (4 * MAX_BODY)
    started = time.monotonic()
    refused = client.post("/api/campaigns/1/pause", content=big)
    assert refused.status_code == 401 and time.monotonic() - started < 2.0
    assert _client(hostile, None).post("/api/campaigns/1/pause", content=big).status_code == 403
    auth = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    too_big = client.post("/api/campaigns/1/add", content=big, headers=auth)
    assert too_big.status_code == 413 and str(MAX_BODY) in too_big.json()["detail"]
    assert len(Database(hostile).experiments(1)) == 1  # nothing added


def test_an_unknown_host_name_is_refused(hostile):
    rebound = TestClient(create_app(hostile, TOKEN), base_url="http://evil.example")
    assert rebound.get("/api/campaigns").status_code == 400
    known = TestClient(create_app(hostile, TOKEN, hosts={"lab-pc"}), base_url="http://lab-pc:80")
    assert known.get("/api/campaigns").status_code == 200


@pytest.mark.parametrize("path", ["/api/campaigns/99999999999999999999999", "/campaigns/0",
                                  "/api/campaigns/1/experiments/99999999999999"])  # fmt: skip
def test_an_id_out_of_range_is_a_clean_refusal(hostile, path):
    assert _client(hostile).get(path).status_code == 422


def test_a_note_longer_than_1000_characters_is_refused(hostile):
    db = Database(hostile)
    db.set_campaign_status(1, CampaignStatus.RUNNING)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    long = _client(hostile).post(
        "/api/campaigns/1/add", json={"conditions": HOT, "note": "n" * 1001}, headers=auth
    )
    assert long.status_code == 400 and "--note: at most 1000 characters" in long.text


def test_a_resume_that_fails_says_why_and_leaves_the_campaign_paused(tmp_path):
    url = f"sqlite:///{tmp_path / 'r.db'}"
    db = Database(url)
    cid = db.create_campaign("c", "hot_injection", {}, "", {"pl_peak_nm": 470.0})  # no config
    db.set_campaign_status(cid, CampaignStatus.PAUSED, "lunch")
    said = "resume failed: error: campaign 'c': stored config is unreadable"
    with pytest.raises(approval.ConfigError, match=said):
        approval.resume_in_background(db, cid)
    campaign = db.campaign(cid)
    assert campaign["status"] == CampaignStatus.PAUSED
    assert campaign["status_reason"].startswith(said)


def test_a_poll_that_finds_nothing_new_is_a_304_without_the_data(hostile):
    client = _client(hostile)
    first = client.get("/api/campaigns/1")
    etag = first.headers["etag"]
    again = client.get("/api/campaigns/1", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    Database(hostile).add_experiment(1, None, HOT, planner_name="p", planner_version="1")
    changed = client.get("/api/campaigns/1", headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["etag"] != etag
    assert len(changed.json()["experiments"]) == 2
    listed = client.get("/api/campaigns")
    assert client.get("/api/campaigns", headers={"If-None-Match": listed.headers["etag"]}
                      ).status_code == 304  # fmt: skip

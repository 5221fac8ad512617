"""Safety suspenders: an open hood suspends a synthesis until it closes; a condition that does
not clear aborts the run, fails the experiment and pauses the campaign. In process and over
Channel Access."""

import threading
import time

import pytest
import yaml
from caproto.sync.client import write

from db import Database
from devices import build_lab
from orchestrator.campaign.config import load_campaign
from orchestrator.campaign.runner import CampaignRunner
from orchestrator.execution.plans import hot_injection_synthesis
from orchestrator.execution.safety import SafetyWatch
from tests.conftest import IOC, ROOT

SIM_LAB = ROOT / "configs" / "labs" / "sim.yaml"
CONDITIONS = {"br_pb_ratio": 12.0, "temperature_c": 150.0, "ligand": "oa_olam", "time_s": 10.0}


def _lab_file(tmp_path, **changes) -> str:
    lab = {"base": str(SIM_LAB), "name": "safety-test", **changes}
    path = tmp_path / "lab.yaml"
    path.write_text(yaml.safe_dump(lab))
    return str(path)


def _later(*steps) -> threading.Thread:
    """Run (delay_s, action) steps on a thread, as an operator would."""

    def run() -> None:
        for delay, action in steps:
            time.sleep(delay)
            action()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _suspend_and_resume(lab, RE, open_hood, close_hood) -> list:
    watch = SafetyWatch(lab, lab.config.safety)
    watch.install(RE)
    docs = []
    RE.subscribe(lambda name, doc: docs.append((name, doc)))
    operator = _later((0.4, open_hood), (1.0, close_hood))
    start = time.monotonic()
    RE(hot_injection_synthesis(lab, CONDITIONS))
    wall = time.monotonic() - start
    operator.join()
    watch.close()
    assert wall > 1.3  # it waited for the hood
    return docs


def _interruptions(docs) -> list[str]:
    streams = {d["uid"]: d["name"] for n, d in docs if n == "descriptor"}
    return [
        d["data"]["interruption"]
        for n, d in docs
        if n == "event" and streams[d["descriptor"]] == "interruptions"
    ]


def test_an_open_hood_suspends_the_synthesis_and_it_resumes_when_the_hood_closes(tmp_path, RE):
    lab = build_lab(_lab_file(tmp_path, simulator={"clock": "realtime", "speed": 300.0}))

    def hood(value: bool):
        return lambda: setattr(lab.world, "hood_open", value)

    docs = _suspend_and_resume(lab, RE, hood(True), hood(False))
    marks = _interruptions(docs)
    assert len(marks) == 1 and "fume-hood/door is open" in marks[0]
    stop = next(d for n, d in docs if n == "stop")
    assert stop["exit_status"] == "success"
    primary = [d for n, d in docs if n == "event" and "cell_pl_peak" in d["data"]]
    assert len(primary) == 1 and 440 < primary[0]["data"]["cell_pl_peak"] < 520


def test_a_flow_line_above_its_pressure_limit_trips_its_suspender_until_it_falls(tmp_path, RE):
    lab = build_lab(_lab_file(tmp_path, safety={"pressure_limit_kpa": 50.0}))
    watch = SafetyWatch(lab, lab.config.safety)
    watch.install(RE)
    try:
        lab.flow.pb.set(2000).wait(5)
        lab.flow.cs.set(2000).wait(5)  # 4000 µL/min at 0.02 kPa per µL/min: 80 kPa
        time.sleep(3 * lab.config.safety.poll_s)
        assert watch.tripped() == ["the flow line is above 50 kPa"]
        lab.flow.pb.set(0).wait(5)  # 40 kPa: below 95 % of the limit
        time.sleep(3 * lab.config.safety.poll_s)
        assert watch.tripped() == []
    finally:
        watch.close()


def test_a_reactor_above_its_ceiling_for_too_long_aborts_and_pauses_the_campaign(tmp_path):
    lab = _lab_file(
        tmp_path,
        simulator={"clock": "realtime", "speed": 300.0},
        safety={"reactor_ceiling_c": 100.0, "abort_after_s": 0.5, "interlock": False},
    )
    space = {"br_pb_ratio": [5, 20], "temperature_c": [150, 200], "ligand": ["oa_olam"],
             "time_s": [5, 30]}  # fmt: skip
    path = _campaign_file(tmp_path, lab, space)
    db = Database(f"sqlite:///{tmp_path / 's.db'}")
    summary = CampaignRunner(db, load_campaign(path)).run()
    assert summary.status == "paused"
    rows = db.experiments(summary.campaign_id)
    assert [r.status for r in rows] == ["failed"]
    reason = rows[0].failure_reason
    assert "safety abort: the reactor is above its 100 °C ceiling for more than 0.5 s" in reason
    assert reason in db.campaign(summary.campaign_id)["status_reason"]
    run = db.runs(summary.campaign_id)[0]
    assert run["exit_status"] == "abort"
    docs = db.run_documents(run["uid"])
    assert any("100 °C ceiling" in m for m in _interruptions(docs))


def _campaign_file(tmp_path, lab: str, space: dict, budget: int = 3) -> str:
    campaign = {
        **yaml.safe_load((ROOT / "configs" / "campaigns" / "blue_470_random.yaml").read_text()),
        "lab": lab,
        "space": space,
        "budget": budget,
    }
    path = tmp_path / "campaign.yaml"
    path.write_text(yaml.safe_dump(campaign))
    return str(path)


def test_the_hood_opening_between_injection_and_quench_aborts_at_once(tmp_path):
    """Nothing can wait while the crystals grow: bluesky finds no checkpoint to rewind to."""
    lab_path = _lab_file(tmp_path, simulator={"clock": "realtime", "speed": 300.0})
    space = {"br_pb_ratio": [10, 12], "temperature_c": [150, 160], "ligand": ["oa_olam"],
             "time_s": [110, 120]}  # fmt: skip
    db = Database(f"sqlite:///{tmp_path / 'g.db'}")
    runner = CampaignRunner(db, load_campaign(_campaign_file(tmp_path, lab_path, space)))

    def open_when_growing() -> None:
        deadline = time.monotonic() + 30
        while runner.executor.lab.reactor.state.get() != "growing" and time.monotonic() < deadline:
            time.sleep(0.01)
        runner.executor.lab.world.hood_open = True

    operator = _later((0.0, open_when_growing))
    summary = runner.run()
    operator.join()
    assert summary.status == "paused"
    rows = db.experiments(summary.campaign_id)
    assert [r.status for r in rows] == ["failed"]
    assert rows[0].failure_reason == (
        "safety abort: the fume-hood/door is open while the synthesis could not wait; run aborted"
    )
    assert db.runs(summary.campaign_id)[0]["exit_status"] in ("abort", "fail")  # not measured


@pytest.mark.slow
def test_the_interlock_pv_suspends_a_synthesis_over_channel_access(epics_port, RE):
    server = IOC(speedup="300").start()
    try:
        lab = build_lab(ROOT / "configs" / "labs" / "sim-epics.yaml")

        def hood(value: int):
            return lambda: write("QD:safety:HOOD_OPEN", [value], repeater=False)

        docs = _suspend_and_resume(lab, RE, hood(1), hood(0))
    finally:
        server.stop()
    marks = _interruptions(docs)
    assert len(marks) == 1 and "fume-hood/door is open" in marks[0]
    assert next(d for n, d in docs if n == "stop")["exit_status"] == "success"

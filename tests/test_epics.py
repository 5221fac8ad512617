"""The lab over EPICS Channel Access: `qdlab ioc` serving the twin, the epics backend talking
to it, on loopback on this session's own port (tests/conftest.py: epics_port)."""

import json
import os
import time
from pathlib import Path

import bluesky.plans as bp
import pytest
import yaml
from bluesky.simulators import check_limits
from ophyd.utils import LimitError

from db import Database
from devices import build_lab
from devices.config import load_lab_config
from devices.epics import PVUnreachable, pv_suffixes
from devices.ioc import LabIOC
from orchestrator.execution.plans import hot_injection_synthesis
from tests.conftest import IOC, ROOT, primary_events, start_qdlab
from tests.test_campaign import write_config

EPICS_LAB = str(ROOT / "configs" / "labs" / "sim-epics.yaml")
SIM_LAB = str(ROOT / "configs" / "labs" / "sim.yaml")


def _campaign(tmp_path, lab: str, name: str, budget: int = 6) -> str:
    return write_config(tmp_path, name, lab=lab, budget=budget, seed=3, stop_on_target=False)


def _measured(url: str) -> list:
    return [(r.status, r.observables) for r in Database(url).experiments(1)]


def test_the_ioc_serves_every_pv_the_epics_backend_uses():
    config = load_lab_config(EPICS_LAB)
    served = LabIOC(load_lab_config(SIM_LAB), "QD:", None).suffixes
    assert set(pv_suffixes(config)) <= served


def test_a_campaign_over_channel_access_measures_what_the_in_process_one_does(
    ioc, run_qdlab, tmp_path
):
    over_ca = f"sqlite:///{tmp_path / 'ca.db'}"
    out = run_qdlab("campaign", "run", _campaign(tmp_path, EPICS_LAB, "ca.yaml"), "--db", over_ca)
    assert out.returncode == 0, out.stderr
    in_process = f"sqlite:///{tmp_path / 'local.db'}"
    out = run_qdlab(
        "campaign", "run", _campaign(tmp_path, SIM_LAB, "local.yaml"), "--db", in_process
    )
    assert out.returncode == 0, out.stderr
    measured = _measured(over_ca)
    assert len(measured) == 6 and all(s == "done" for s, _ in measured)
    assert measured == _measured(in_process)  # bit for bit: the same twin, reseeded alike
    runs = Database(over_ca).runs(1)
    docs = Database(over_ca).run_documents(runs[0]["uid"])
    start = next(d for n, d in docs if n == "start")
    stop = next(d for n, d in docs if n == "stop")
    assert stop["time"] > start["time"]
    events = primary_events(docs)
    # readings carry lab time: the synthesis took minutes of lab time, not the wall's second
    assert events[-1]["timestamps"]["reactor_growth_time"] - start["time"] > 60
    # the same streams as in process: the measurement, the baseline, the temperature monitor
    local_runs = Database(in_process).runs(1)
    local_docs = Database(in_process).run_documents(local_runs[0]["uid"])
    assert (
        _streams(docs)
        == _streams(local_docs)
        >= {"primary", "baseline", "reactor_temperature_monitor"}
    )


def test_the_dip_probe_reads_the_growth_over_channel_access_as_in_process(ioc, run_qdlab, tmp_path):

    probe = tmp_path / "probe-epics.yaml"
    probe.write_text(yaml.safe_dump({"base": EPICS_LAB, "reactor": {"in_situ_interval_s": 2.0}}))
    assert "cell:VIEW" in pv_suffixes(load_lab_config(probe))
    for ca, local in probe_trajectories(run_qdlab, tmp_path, probe):
        assert [p["growth_time_s"] for p in ca] == pytest.approx(
            [p["growth_time_s"] for p in local], abs=0.01
        )


def probe_trajectories(run_qdlab, tmp_path, probe) -> list[tuple[list, list]]:
    """Two-experiment campaigns on the dip-probe lab ``probe`` and in process
    (configs/labs/sim-insitu.yaml): they measure alike, and each experiment's in-situ
    trajectory from both, read in the hot flask every 2 s."""
    from orchestrator.execution.observe import trajectory_from_documents

    urls = {}
    local_lab = str(ROOT / "configs/labs/sim-insitu.yaml")
    for name, lab in (("remote", str(probe)), ("local", local_lab)):
        urls[name] = f"sqlite:///{tmp_path / name}.db"
        config = _campaign(tmp_path, lab, f"{name}.yaml", budget=2)
        out = run_qdlab("campaign", "run", config, "--db", urls[name])
        assert out.returncode == 0, out.stderr
    assert _measured(urls["remote"]) == _measured(urls["local"])
    grown = {}
    for name, url in urls.items():
        db = Database(url)
        done = [r for r in db.experiments(1) if r.status == "done"]
        assert len(done) == 2
        grown[name] = [trajectory_from_documents(db.run_documents(r.run_uid)) for r in done]
    pairs = list(zip(grown["remote"], grown["local"], strict=True))
    for remote, local in pairs:
        assert len(remote) == len(local) >= 2  # the probe read the flask every 2 s of lab time
        assert all(p["hot"] for p in remote)
    return pairs


def _streams(docs) -> set[str]:
    return {d["name"] for n, d in docs if n == "descriptor"}


def test_standard_plans_and_a_green_synthesis_run_over_channel_access_limits_refused(ioc, RE):
    lab = build_lab(EPICS_LAB)
    docs = []
    RE.subscribe(lambda name, doc: docs.append((name, doc)))
    RE(bp.scan([lab.reactor], lab.reactor.temperature, 60, 90, 3))
    events = primary_events(docs)
    temperatures = [e["data"]["reactor_temperature"] for e in events]
    assert temperatures == pytest.approx([60, 75, 90], abs=1.0)  # settled within tolerance
    assert events[0]["data"]["reactor_temperature_setpoint"] == 60
    RE(bp.count([lab.cell, lab.robot]))
    before = lab.reactor.temperature.position
    with pytest.raises(LimitError, match=r"setpoint = 500 .*\[20, 220\]"):
        lab.reactor.temperature.set(500)
    with pytest.raises(LimitError):
        check_limits(bp.scan([lab.cell], lab.reactor.temperature, 100, 400, 3))
    assert lab.reactor.temperature.position == pytest.approx(before, abs=0.5)
    volume = lab.robot.volume_of("pbbr2")
    with pytest.raises(Exception, match=r"pbbr2 holds .* cannot take"):
        lab.robot.transfer("pbbr2", "cell", 5e6).wait(10)  # the IOC refuses: nothing moves
    assert lab.robot.volume_of("pbbr2") == volume

    # green FAPbBr3: the injector's selector valve (reactor:SOURCE) draws FA-oleate
    fa, cs = lab.robot.volume_of("fa_oleate"), lab.robot.volume_of("cs_oleate")
    conditions = {"br_pb_ratio": 4.0, "temperature_c": 150.0, "ligand": "oa_olam",
                  "time_s": 30.0, "material": "FAPbBr3"}  # fmt: skip
    RE(hot_injection_synthesis(lab, conditions))
    assert lab.reactor.injector.source.get() == "fa_oleate"
    assert lab.robot.volume_of("fa_oleate") == pytest.approx(fa - 500.0)
    assert lab.robot.volume_of("cs_oleate") == cs  # no caesium: FAPbBr3, green
    event = primary_events(docs)[-1]
    assert 485 < event["data"]["cell_pl_peak"] < 505  # FAPbBr3 of ~4.6 nm (CsPbBr3: 476 nm)


def test_a_wrong_pv_name_is_named_by_lab_check_and_stops_a_campaign_before_it_starts(
    ioc, run_qdlab, tmp_path
):
    lab = yaml.safe_load((ROOT / "configs" / "labs" / "sim-epics.yaml").read_text())
    lab["base"] = SIM_LAB
    lab["epics"]["pvs"] = {"cell:ACQ": "QD:cell:ACQUIRE_TYPO"}
    lab["epics"]["connection_timeout_s"] = 1
    path = tmp_path / "typo-lab.yaml"
    path.write_text(yaml.safe_dump(lab))
    out = run_qdlab("lab", "check", str(path), "--json")
    assert out.returncode == 4
    assert "QD:cell:ACQUIRE_TYPO" in out.stderr.strip().splitlines()[-1]
    rows = json.loads(out.stdout)["pvs"]
    assert [r["pv"] for r in rows if not r["connected"]] == ["QD:cell:ACQUIRE_TYPO"]
    assert run_qdlab("lab", "check", EPICS_LAB).returncode == 0
    url = f"sqlite:///{tmp_path / 't.db'}"
    out = run_qdlab("campaign", "run", _campaign(tmp_path, str(path), "c.yaml"), "--db", url)
    assert out.returncode == 4
    assert out.stderr.count("\n") == 1 and "QD:cell:ACQUIRE_TYPO" in out.stderr
    assert Database(url).campaigns() == []  # nothing written, nothing moved


def test_no_ioc_at_all_is_one_line_before_anything_moves(epics_port, tmp_path):
    lab = yaml.safe_load((ROOT / "configs" / "labs" / "sim-epics.yaml").read_text())
    lab["base"] = SIM_LAB
    lab["epics"] = {**lab["epics"], "prefix": "NOBODY:", "connection_timeout_s": 0.5}
    (tmp_path / "lab.yaml").write_text(yaml.safe_dump(lab))
    with pytest.raises(PVUnreachable, match=r"did not connect within 0\.5 s: NOBODY:CLOCK"):
        build_lab(tmp_path / "lab.yaml")


def _wait_done(url: str, n: int) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            rows = Database(url, migrate=False).experiments(1)
        except Exception:  # the schema or the campaign is not there yet
            rows = []
        if sum(r.status == "done" for r in rows) >= n:
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {n} experiments")


def _spent_nothing_on_the_outage(db: Database, budget: int) -> None:
    """Every experiment ran (or failed by its chemistry) once; none failed of the outage."""
    rows = db.experiments(1)
    assert [r.index for r in rows] == list(range(budget))
    assert all(r.status in ("done", "failed") for r in rows)
    assert not [r.failure_reason for r in rows if r.status == "failed" and "PV" in r.failure_reason]
    measured = [
        r["experiment_id"] for r in db.runs(1) if r["complete"] and r["exit_status"] == "success"
    ]
    assert len(measured) == len(set(measured))  # nothing measured twice
    assert {r.id for r in rows if r.status == "done"} == set(measured)


def killed_mid_campaign(server, config: str, url: str) -> str:
    """Run the campaign ``config`` until 3 experiments are done, kill ``server`` (kill -9),
    and return what the campaign printed once it paused (exit 1: an instrument does not
    answer; no traceback). Instruments are waited for 2 s."""
    env = {**os.environ, "QDLAB_INSTRUMENT_WAIT_S": "2"}
    proc = start_qdlab("campaign", "run", config, "--db", url, capture=True, env=env)
    _wait_done(url, 3)
    server.kill()
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err  # paused: an instrument does not answer
    assert "Traceback" not in err
    return out


@pytest.mark.slow
def test_an_ioc_that_stays_down_pauses_the_campaign_naming_it_and_spends_nothing(
    epics_port, run_qdlab, tmp_path
):
    server = IOC(speedup="2000").start()
    url = f"sqlite:///{tmp_path / 'k.db'}"
    cfg = _campaign(tmp_path, EPICS_LAB, "k.yaml", budget=10)
    try:
        out = killed_mid_campaign(server, cfg, url)
        assert "an instrument did not answer for 2 s (last: PVUnreachable: PV QD:" in out, out
        rows = Database(url).experiments(1)
        assert not [r for r in rows if r.status == "failed" and "PV" in r.failure_reason]
        (waiting,) = [r for r in rows if r.status == "proposed"]  # runs again on resume
        assert waiting.failure_reason.startswith("instrument fault: PVUnreachable: PV QD:")
        server = IOC(speedup="max").start()
        out = run_qdlab("campaign", "resume", "1", "--db", url)
        assert out.returncode == 0, out.stderr
    finally:
        server.stop()
    _spent_nothing_on_the_outage(Database(url), 10)


@pytest.mark.slow
def test_an_ioc_restarted_within_the_wait_is_ridden_out(epics_port, tmp_path):
    server = IOC(speedup="2000").start()
    url = f"sqlite:///{tmp_path / 'r.db'}"
    cfg = _campaign(tmp_path, EPICS_LAB, "r.yaml", budget=6)
    try:
        proc = start_qdlab("campaign", "run", cfg, "--db", url, capture=True)
        _wait_done(url, 2)
        server.kill()
        time.sleep(3.0)  # an IOC restart
        server = IOC(speedup="2000").start()
        _, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err
        assert "Traceback" not in err
    finally:
        server.stop()
    _spent_nothing_on_the_outage(Database(url), 6)


@pytest.mark.slow
def test_an_ioc_down_under_a_workcell_pauses_naming_it_and_spends_nothing(
    epics_port, redis_server, tmp_path
):
    """The same outage under a workcell: its plan fails there with PVUnreachable, which is no
    result of the chemistry; the experiment is queued again until the wait is over, then the
    campaign pauses naming the PV, and a resume once the IOC is back spends nothing on it."""
    from tests.conftest import WorkcellServer, qdlab

    server = IOC(speedup="2000").start()
    url = f"sqlite:///{tmp_path / 'w.db'}"
    workcell = WorkcellServer("E", url, redis_server.address, lab=EPICS_LAB).start()
    cfg = yaml.safe_load(Path(_campaign(tmp_path, EPICS_LAB, "w.yaml", budget=6)).read_text())
    cfg["workcells"] = [{"name": "E", "zmq": workcell.zmq}]
    (tmp_path / "w.yaml").write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "QDLAB_INSTRUMENT_WAIT_S": "8"}
    try:
        proc = start_qdlab(
            "campaign", "run", str(tmp_path / "w.yaml"), "--db", url, capture=True, env=env
        )
        _wait_done(url, 2)
        server.kill()
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 1, err
        assert "Traceback" not in err
        assert (
            "an instrument did not answer for 8 s (last: workcell E: PVUnreachable: PV QD:" in out
        ), out
        assert "PVUnreachable" in out, out
        server = IOC(speedup="max").start()
        out = qdlab("campaign", "resume", "1", "--db", url, timeout=300)
        assert out.returncode == 0, out.stderr
    finally:
        server.stop()
        workcell.stop()
    _spent_nothing_on_the_outage(Database(url), 6)

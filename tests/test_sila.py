"""The lab over SiLA 2: `qdlab sila serve` serving the twin as the features in
devices/sila_features, the sila2 backend driving it over real gRPC on loopback."""

import json
import uuid

import bluesky.plans as bp
import pytest
import yaml
from ophyd.utils import LimitError
from sila2.client import SilaClient
from sila2.framework import DefinedExecutionError, Feature
from sila2.server.encryption import generate_self_signed_certificate

from db import Database
from devices import build_lab
from devices.sila import FEATURES_DIR, SilaUnreachable
from tests.conftest import ROOT, SilaServerProcess, primary_events
from tests.test_campaign import write_config

SIM_LAB = str(ROOT / "configs" / "labs" / "sim.yaml")


def _campaign(tmp_path, lab, name: str, budget: int = 6) -> str:
    return write_config(tmp_path, name, lab=str(lab), budget=budget, seed=3, stop_on_target=False)


def _measured(url: str) -> list:
    return [(r.status, r.observables) for r in Database(url).experiments(1)]


def test_the_server_serves_every_feature_kept_in_the_repository(sila_server):
    definitions = {p.name.removesuffix(".sila.xml") for p in FEATURES_DIR.glob("*.sila.xml")}
    for path in FEATURES_DIR.glob("*.sila.xml"):
        Feature(path.read_text())  # valid against SiLA's schema
    client = SilaClient("127.0.0.1", sila_server.port, insecure=True)
    served = {fqi.split("/")[2] for fqi in client.SiLAService.ImplementedFeatures.get()}
    assert served == definitions | {"SiLAService"}
    # the standard feature: this server is a simulation, and says so when asked for real mode
    assert client.SimulationController.SimulationMode.get() is True
    with pytest.raises(DefinedExecutionError, match="StartRealModeFailed"):
        client.SimulationController.StartRealMode()
    # commands carry units a generic SiLA client shows (µL, °C)
    assert "<Label>µL</Label>" in (FEATURES_DIR / "LiquidHandler.sila.xml").read_text()


def test_a_campaign_over_sila2_measures_what_the_in_process_one_does(
    sila_server, run_qdlab, tmp_path
):
    over_sila = f"sqlite:///{tmp_path / 'sila.db'}"
    lab = sila_server.lab_config(tmp_path)
    out = run_qdlab("campaign", "run", _campaign(tmp_path, lab, "s.yaml"), "--db", over_sila)
    assert out.returncode == 0, out.stderr
    in_process = f"sqlite:///{tmp_path / 'local.db'}"
    out = run_qdlab("campaign", "run", _campaign(tmp_path, SIM_LAB, "l.yaml"), "--db", in_process)
    assert out.returncode == 0, out.stderr
    measured = _measured(over_sila)
    assert len(measured) == 6 and all(s == "done" for s, _ in measured)
    assert measured == _measured(in_process)  # the same twin, reseeded alike
    docs = Database(over_sila).run_documents(Database(over_sila).runs(1)[0]["uid"])
    start = next(d for n, d in docs if n == "start")
    events = primary_events(docs)
    # readings carry the server's lab time: the synthesis took minutes of it
    assert events[-1]["timestamps"]["reactor_growth_time"] - start["time"] > 60
    local = Database(in_process).run_documents(Database(in_process).runs(1)[0]["uid"])
    streams = {d["name"] for n, d in docs if n == "descriptor"}
    assert (
        streams
        == {d["name"] for n, d in local if n == "descriptor"}
        >= {
            "primary",
            "baseline",
            "reactor_temperature_monitor",
        }
    )


def test_standard_plans_run_over_sila2_and_the_server_refuses_what_it_cannot_do(
    sila_server, RE, tmp_path
):
    lab = build_lab(sila_server.lab_config(tmp_path))
    docs = []
    RE.subscribe(lambda name, doc: docs.append((name, doc)))
    RE(bp.scan([lab.reactor], lab.reactor.temperature, 60, 90, 3))
    temperatures = [e["data"]["reactor_temperature"] for e in primary_events(docs)]
    assert temperatures == pytest.approx([60, 75, 90], abs=1.0)  # settled at each point
    RE(bp.count([lab.cell]))
    with pytest.raises(LimitError, match="220"):  # the device's own limit: nothing sent
        lab.reactor.temperature.set(260)
    # a lab config that allows more than the server's heater takes: the server refuses, as
    # the in-process lab would, and nothing moves
    wide = tmp_path / "wide.yaml"
    wide.write_text(
        yaml.safe_dump(
            {"base": str(sila_server.lab_config(tmp_path)), "reactor": {"max_temperature_c": 260}}
        )
    )
    lab = build_lab(wide)
    before = lab.reactor.temperature.readback.get()
    with pytest.raises(LimitError, match="reactor:heater takes 20 to 220 °C; 240 refused"):
        lab.reactor.temperature.set(240).wait(10)
    assert lab.reactor.temperature.readback.get() == pytest.approx(before, abs=0.5)
    # an impossible transfer is refused by the server's robot, naming why
    from devices.robot import Transfer

    with pytest.raises(Exception, match="nowhere"):
        lab.robot.set(Transfer("pbbr2", "nowhere", 100)).wait(10)


def test_lab_check_names_the_server_and_a_limit_it_refuses(sila_server, run_qdlab, tmp_path):
    lab = sila_server.lab_config(tmp_path)
    out = run_qdlab("lab", "check", str(lab), "--json")
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)["instruments"]
    assert {r["instrument"]: r["backend"] for r in rows} == {
        "robot": "sila2",
        "reactor": "sila2",
        "flow": "sila2",
        "cell": "sila2",
    }
    assert all(r["ready"] for r in rows)
    assert "QDLab sim" in rows[0]["detail"] and "sila2 0.14" in rows[0]["detail"]
    wide = tmp_path / "wide.yaml"
    wide.write_text(yaml.safe_dump({"base": str(lab), "reactor": {"max_temperature_c": 260}}))
    out = run_qdlab("lab", "check", str(wide))
    assert out.returncode == 2
    assert "reactor:heater: the lab config allows [20, 260] °C" in out.stderr
    assert "the server takes only [20, 220]" in out.stderr


def test_no_server_is_one_line_before_anything_moves(run_qdlab, tmp_path):
    nobody = SilaServerProcess()  # a free port nobody serves
    lab = nobody.lab_config(tmp_path, connection_timeout_s=0.5)
    with pytest.raises(SilaUnreachable, match=r"127\.0\.0\.1:\d+ did not answer within 0\.5 s"):
        build_lab(lab)
    url = f"sqlite:///{tmp_path / 'n.db'}"
    out = run_qdlab("campaign", "run", _campaign(tmp_path, lab, "n.yaml"), "--db", url)
    assert out.returncode == 4
    assert out.stderr.count("\n") == 1 and f"SiLA 2 server 127.0.0.1:{nobody.port}" in out.stderr
    out = run_qdlab("lab", "check", str(lab))
    assert out.returncode == 4 and "did not answer" in out.stdout + out.stderr


@pytest.mark.slow
def test_a_server_that_goes_away_pauses_the_campaign_naming_it_and_spends_nothing(
    run_qdlab, tmp_path
):
    from tests.test_epics import killed_mid_campaign

    server = SilaServerProcess(speedup="2000").start()
    url = f"sqlite:///{tmp_path / 'k.db'}"
    cfg = _campaign(tmp_path, server.lab_config(tmp_path), "k.yaml", budget=10)
    try:
        out = killed_mid_campaign(server, cfg, url)
        assert f"SilaUnreachable: SiLA 2 server 127.0.0.1:{server.port} is gone" in out, out
        rows = Database(url).experiments(1)
        assert not [r for r in rows if r.status == "failed" and "SiLA" in r.failure_reason]
        (waiting,) = [r for r in rows if r.status == "proposed"]  # runs again on resume
        assert "SilaUnreachable" in waiting.failure_reason
        port = server.port
        server = SilaServerProcess(speedup="max")
        server.port = port
        server.start()
        out = run_qdlab("campaign", "resume", "1", "--db", url)
        assert out.returncode == 0, out.stderr
    finally:
        server.stop()
    rows = Database(url).experiments(1)
    assert [r.index for r in rows] == list(range(10))
    assert all(r.status in ("done", "failed") for r in rows)


def test_the_dip_probe_reads_the_growth_over_sila2_as_in_process(sila_server, run_qdlab, tmp_path):
    from tests.test_epics import probe_trajectories

    probe = tmp_path / "probe-sila.yaml"
    probe.write_text(
        yaml.safe_dump(
            {"base": str(sila_server.lab_config(tmp_path)), "reactor": {"in_situ_interval_s": 2.0}}
        )
    )
    for over_sila, local in probe_trajectories(run_qdlab, tmp_path, probe):
        assert [p["pl_peak_nm"] for p in over_sila] == pytest.approx(
            [p["pl_peak_nm"] for p in local],
            nan_ok=True,  # no peak yet at the first reading
        )


def test_a_server_over_tls_is_driven_trusting_its_certificate_and_refused_without_it(tmp_path, RE):
    """`qdlab sila serve --tls` (a self-signed certificate, as the sila2 package makes one):
    a lab trusting its certificate (``sila2.insecure: false``, ``root_certs``) runs a plan over
    TLS; a plain-gRPC client and one trusting another certificate are refused, naming it."""
    server = SilaServerProcess(ca=tmp_path / "ca.pem").start()
    try:
        lab = build_lab(server.lab_config(tmp_path, insecure=False, root_certs=str(server.ca)))
        RE(bp.count([lab.reactor]))
        assert lab.sila.server_name().startswith("QDLab")
        with pytest.raises(SilaUnreachable, match="did not answer within 1 s"):
            build_lab(server.lab_config(tmp_path, connection_timeout_s=1))  # plain gRPC
        other = tmp_path / "other.pem"  # another server's certificate, for the same address
        other.write_bytes(generate_self_signed_certificate(uuid.uuid4(), "127.0.0.1")[1])
        with pytest.raises(SilaUnreachable, match="did not answer within 1 s"):
            build_lab(server.lab_config(tmp_path, insecure=False, root_certs=str(other),
                                        connection_timeout_s=1))  # fmt: skip
    finally:
        server.stop()

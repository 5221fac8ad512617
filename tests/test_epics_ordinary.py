"""EPICS as ordinary IOCs behave (tests/iocs: a hotplate's ao/ai pair with drive limits, a
syringe pump served as a motor record), beside `qdlab ioc` serving the rest of the lab: moves
wait for the readback, a put the IOC refuses fails at once naming the PV, `lab check` names a
limit the IOC will refuse, and Ctrl-C pauses a campaign waiting on a slow ramp at once."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import bluesky.plan_stubs as bps
import bluesky.plans as bp
import pytest
import yaml
from bluesky.utils import FailedStatus
from ophyd.utils import LimitError

from db import Database
from devices import build_lab
from devices.config import ConfigError, load_lab_config
from orchestrator.execution.executor import cause
from tests.conftest import IOC, ROOT, OrdinaryIOC, primary_events
from tests.test_campaign import write_config

EPICS_LAB = str(ROOT / "configs" / "labs" / "sim-epics.yaml")


@pytest.fixture(scope="module")
def ioc(epics_port):
    """One ``qdlab ioc`` for the module: the in-process clients keep their circuits to it."""
    server = IOC().start()
    yield server
    server.stop()


@pytest.fixture
def hotplate(epics_ports, ordinary_iocs):
    """The session's hotplate IOC, as an operator leaves it: 25 °C, 5 °C/s, unlocked."""
    server = ordinary_iocs["hotplate"]
    server.put("LOCK", 0)
    server.put("RATE", 1000.0)
    server.put("TEMP:SP", 25.0)
    while abs(server.get("TEMP:RBV") - 25.0) > 1e-6:
        time.sleep(0.05)
    server.put("RATE", 5.0)
    return server


@pytest.fixture
def pump(epics_ports, ordinary_iocs):
    """The session's syringe-pump IOC, stopped."""
    server = ordinary_iocs["syringe_pump"]
    server.put("RATE", 0.0)
    while server.get("RATE.DMOV") != 1 or abs(server.get("RATE.RBV")) > 1e-6:
        time.sleep(0.05)
    return server


def _lab(tmp_path, hotplate: OrdinaryIOC, max_c: float = 150.0, **heater) -> str:
    mapping = {"setpoint": hotplate.pv("TEMP:SP"), "readback": hotplate.pv("TEMP:RBV"),
               "tolerance": 0.5, "hold_s": 0.3, "timeout_s": 60, **heater}  # fmt: skip
    path = tmp_path / "hotplate-lab.yaml"
    path.write_text(yaml.safe_dump({
        "base": EPICS_LAB, "name": "hotplate-lab",
        "reactor": {"max_temperature_c": max_c},
        "epics": {"mapped": {"reactor:heater": mapping}},
    }))  # fmt: skip
    return str(path)


def test_a_move_waits_for_the_ordinary_readback_and_reads_name_their_pvs(
    ioc, hotplate, tmp_path, RE
):
    hotplate.put("RATE", 40.0)  # °C/s: 25 -> 60 °C takes ~0.9 s
    lab = build_lab(_lab(tmp_path, hotplate))
    heater = lab.reactor.temperature
    started = time.monotonic()
    RE(bps.mv(heater, 60.0))
    took = time.monotonic() - started
    assert abs(heater.position - 60.0) <= 0.5  # arrived when the plan went on, not before
    assert took >= 0.8 + 0.3  # the ramp, then the hold within tolerance
    # standard plans on the mapped heater; its descriptor names the PVs it read
    docs = []
    RE(bp.count([heater], num=2), lambda name, doc: docs.append((name, doc)))
    descriptor = next(d for n, d in docs if n == "descriptor")
    assert descriptor["data_keys"][heater.name]["source"] == f"PV:{hotplate.pv('TEMP:RBV')}"
    assert descriptor["data_keys"][heater.setpoint.name]["source"] == (
        f"PV:{hotplate.pv('TEMP:SP')}"
    )
    assert [e["data"][heater.name] for e in primary_events(docs)] == pytest.approx([60, 60], 0.01)
    hotplate.put("RATE", 1000.0)
    RE(bp.scan([lab.cell], heater, 40.0, 50.0, 3))
    assert abs(hotplate.get("TEMP:RBV") - 50.0) <= 0.5


def test_a_put_the_ioc_refuses_fails_at_once_naming_the_pv_and_why(ioc, hotplate, tmp_path, RE):
    lab = build_lab(_lab(tmp_path, hotplate, max_c=220.0))  # the lab allows more than the IOC
    heater = lab.reactor.temperature
    started = time.monotonic()
    with pytest.raises(LimitError, match=rf"PV {hotplate.pv('TEMP:SP')} refuses 200: the IOC's "
                       r"drive limits are \[20, 150\]"):  # fmt: skip
        RE(bps.mv(heater, 200.0))
    assert time.monotonic() - started < 5 and hotplate.get("TEMP:SP") == 25.0
    hotplate.put("LOCK", 1)  # refused for a reason of its own: the value does not take
    started = time.monotonic()
    with pytest.raises(FailedStatus) as failed:
        RE(bps.mv(heater, 60.0))
    assert time.monotonic() - started < 5
    assert str(cause(failed.value)).startswith(
        f"PV {hotplate.pv('TEMP:SP')} refused 60: it still reads 25"
    )


def test_a_move_that_does_not_settle_fails_naming_the_pv_and_its_last_readback(
    ioc, hotplate, tmp_path, RE
):
    hotplate.put("RATE", 2.0)
    lab = build_lab(_lab(tmp_path, hotplate, timeout_s=1.0))
    with pytest.raises(FailedStatus) as failed:
        RE(bps.mv(lab.reactor.temperature, 120.0))
    assert re.fullmatch(
        rf"PV {hotplate.pv('TEMP:RBV')} did not settle within 0.5 of 120 in 1 s "
        r"\(last readback 2\d(\.\d+)?\)",
        str(cause(failed.value)),
    )


def test_lab_check_names_a_limit_the_ioc_will_refuse_and_prints_names_as_they_are(
    ioc, hotplate, run_qdlab, tmp_path
):
    out = run_qdlab("lab", "check", _lab(tmp_path, hotplate, max_c=220.0))
    assert out.returncode == 2, out.stderr
    assert (
        f"error: PV {hotplate.pv('TEMP:SP')}: the lab config allows [20, 220] °C but the IOC "
        "takes only [20, 150]" in out.stderr
    )
    assert "QD:robot:ACTION" in out.stdout and "\N{ROBOT FACE}" not in out.stdout
    assert run_qdlab("lab", "check", _lab(tmp_path, hotplate)).returncode == 0


def test_a_pump_served_as_a_motor_record_moves_until_done(ioc, pump, tmp_path, RE):
    mapping = {
        "setpoint": pump.pv("RATE"), "readback": pump.pv("RATE.RBV"), "hold_s": 0.0,
        "settle": "done", "done": pump.pv("RATE.DMOV"), "stop": pump.pv("RATE.STOP"),
    }  # fmt: skip
    path = tmp_path / "pump-lab.yaml"
    path.write_text(yaml.safe_dump({"base": EPICS_LAB, "name": "pump-lab",
                                    "epics": {"mapped": {"flow:cs": mapping}}}))  # fmt: skip
    lab = build_lab(str(path))
    cs = lab.flow.cs
    RE(bps.mv(cs, 2000.0))  # 0 -> 2000 µL/min at 4000 per s: half a second
    assert pump.get("RATE.DMOV") == 1 and abs(pump.get("RATE.RBV") - 2000.0) <= 20.0
    assert abs(cs.flow_rate.get() - 2000.0) <= 20.0
    desc = cs.describe()
    assert desc[cs.flow_rate.name]["source"] == f"PV:{pump.pv('RATE.RBV')}"
    with pytest.raises(RuntimeError, match="refill its syringe at the pump"):
        cs.refill()


@pytest.mark.parametrize(
    ("epics", "message"),
    [
        ({"pvs": {"reactor:heatr:SP": "HP1:SP"}},
         "epics.pvs.reactor:heatr:SP: not a PV suffix of this lab (did you mean "
         "'reactor:heater:SP'?)"),
        ({"mapped": {"reactor:stirrer": {"setpoint": "A", "readback": "B"}}},
         "epics.mapped.reactor:stirrer: not an instrument of this lab that a setpoint and "
         "readback can serve; allowed: reactor:heater, flow:coil, flow:cs, flow:pb, flow:br"),
        ({"mapped": {"flow:cs": {"setpoint": "A", "readback": "B", "settle": "done"}}},
         "settle: done needs the done PV"),
    ],
)  # fmt: skip
def test_epics_names_the_lab_does_not_have_are_refused_naming_the_key(tmp_path, epics, message):
    path = tmp_path / "lab.yaml"
    path.write_text(yaml.safe_dump({"base": EPICS_LAB, "epics": epics}))
    with pytest.raises(ConfigError) as err:
        load_lab_config(path)
    assert message in str(err.value)


def test_ctrl_c_pauses_a_campaign_waiting_on_a_slow_ramp_at_once(ioc, hotplate, tmp_path):
    hotplate.put("RATE", 0.5)  # °C/s: the ramp to any temperature of the space takes minutes
    url = f"sqlite:///{tmp_path / 'ramp.db'}"
    space = {"br_pb_ratio": [2, 30], "temperature_c": [90, 150], "ligand": ["oa_olam"],
             "time_s": [1, 120]}  # fmt: skip
    config = write_config(tmp_path, lab=_lab(tmp_path, hotplate), budget=3, seed=3, space=space)
    proc = subprocess.Popen(
        [sys.executable, "-m", "orchestrator", "campaign", "run", config, "--db", url],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while hotplate.get("TEMP:SP") == 25.0:  # wait until the synthesis is heating
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.1)
    time.sleep(0.5)
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    took = time.monotonic() - sent
    assert took < 8, (took, err)  # (interpreter shutdown included; the ramp needs minutes)
    campaign = Database(url).campaign(1)
    assert campaign["status"] == "paused", err
    (experiment,) = Database(url).experiments(1)
    assert experiment.status == "proposed"  # given back: it runs again on resume
    # the hotplate holds where it was instead of going on to the setpoint
    assert abs(hotplate.get("TEMP:SP") - hotplate.get("TEMP:RBV")) < 2.0


def test_a_simulated_lab_heats_its_reactor_with_an_ordinary_ioc(hotplate, tmp_path, RE, run_qdlab):
    """Backends mixed in one lab: the reactor's heater a real (ordinary) hotplate IOC, the robot
    PyLabRobot's (its chatterbox simulation), the flask and the cell simulated; the flask reacts
    at what the hotplate reads."""
    from orchestrator.execution.plans import hot_injection_synthesis

    hotplate.put("RATE", 200.0)  # °C/s
    mapping = {"setpoint": hotplate.pv("TEMP:SP"), "readback": hotplate.pv("TEMP:RBV"),
               "tolerance": 0.2, "hold_s": 0.2, "timeout_s": 30}  # fmt: skip
    sim = str(ROOT / "configs" / "labs" / "sim.yaml")
    path = tmp_path / "mixed.yaml"
    path.write_text(yaml.safe_dump({
        "base": sim, "name": "mixed-lab",
        "reactor": {"backend": "epics", "max_temperature_c": 150},
        "robot": {"backend": "pylabrobot"},
        "epics": {"mapped": {"reactor:heater": mapping}},
    }))  # fmt: skip
    lab = build_lab(path, seed=0)
    assert type(lab.robot.backend).__name__ == "PlrRobot"
    assert lab.world is not None and lab.pvs is not None
    assert type(lab.reactor.temperature.backend).__name__ == "EpicsHeater"
    assert type(lab.reactor.backend).__name__ == "SimReactor"
    assert type(lab.cell.backend).__name__ == "SimCell"
    conditions = {"br_pb_ratio": 10, "temperature_c": 120, "ligand": "oa_olam", "time_s": 30}
    RE(hot_injection_synthesis(lab, conditions))
    assert hotplate.get("TEMP:SP") == 120.0 and abs(hotplate.get("TEMP:RBV") - 120.0) <= 0.2
    descriptors = [d for n, d in RE.docs if n == "descriptor"]
    keys = {k: v for d in descriptors for k, v in d["data_keys"].items()}
    assert keys["reactor_temperature"]["source"] == f"PV:{hotplate.pv('TEMP:RBV')}"
    assert not keys["cell_pl_peak"]["source"].startswith("PV:")  # the cell is simulated
    mixed = primary_events(RE.docs)[-1]["data"]
    # the same synthesis in the all-simulated lab (same seed) measures what the mixed one
    # does, up to the hotplate's tolerance in the temperature the flask reacted at
    RE.docs.clear()
    RE(hot_injection_synthesis(build_lab(sim, seed=0), conditions))
    alone = primary_events(RE.docs)[-1]["data"]
    assert abs(mixed["cell_pl_peak"] - alone["cell_pl_peak"]) < 0.5
    out = run_qdlab("lab", "check", str(path), "--json")
    assert out.returncode == 0, out.stderr
    checked = __import__("json").loads(out.stdout)
    reactor = next(r for r in checked["instruments"] if r["instrument"] == "reactor")
    assert reactor["backend"] == "epics" and hotplate.pv("TEMP:SP") in reactor["detail"]
    assert {r["pv"] for r in checked["pvs"]} == {hotplate.pv("TEMP:SP"), hotplate.pv("TEMP:RBV")}
    backends = {r["instrument"]: r["backend"] for r in checked["instruments"]}
    assert backends == {"robot": "pylabrobot", "reactor": "epics", "flow": "simulated",
                        "cell": "simulated"}  # fmt: skip
    # without the mapping there is nothing to drive: refused naming where the mapping goes
    path.write_text(yaml.safe_dump({"base": sim, "reactor": {"backend": "epics"}}))
    with pytest.raises(ConfigError, match=r"reactor\.backend: epics in a simulated lab drives "
                       r"the reactor's heater from an ordinary IOC: map it under "
                       r"epics\.mapped\.reactor:heater"):  # fmt: skip
        load_lab_config(path)

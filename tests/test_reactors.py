"""Several instruments of a kind: a lab with two hot-injection reactors, chosen by name by the
plan, the campaign and the documents (configs/labs/sim-two-reactors.yaml)."""

import pytest
import yaml
from bluesky.simulators import summarize_plan

from db import Database
from devices import build_lab
from devices.config import ConfigError, load_lab_config
from orchestrator.execution.observe import trajectory_from_documents
from orchestrator.execution.plans import hot_injection_synthesis
from tests.conftest import ROOT, primary_events
from tests.test_campaign import write_config

TWO = str(ROOT / "configs" / "labs" / "sim-two-reactors.yaml")
HOT = {"br_pb_ratio": 12.0, "temperature_c": 150.0, "ligand": "oa_olam", "time_s": 12.0}


def _lab_file(tmp_path, **changes) -> str:
    path = tmp_path / "lab.yaml"
    path.write_text(yaml.safe_dump({"base": TWO, **changes}))
    return str(path)


def test_a_second_reactor_takes_what_it_does_not_say_from_the_first():
    config = load_lab_config(TWO)
    assert config.reactor_names == ["reactor", "reactor_b"]
    b = config.reactors["reactor_b"]
    assert (b.flask, b.max_temperature_c, b.in_situ_interval_s) == ("reactor_flask_b", 180, 5)
    assert (b.ramp_c_per_min, b.ligand_sources) == (config.reactor.ramp_c_per_min,
                                                    config.reactor.ligand_sources)  # fmt: skip
    lab = build_lab(TWO)
    assert list(lab.reactors) == ["reactor", "reactor_b"]
    assert lab.reactors["reactor_b"].temperature.limits == (20.0, 180.0)
    assert lab.reactors["reactor_b"] in lab.devices
    assert lab.cell.view.positions == ("cell", "reactor_b")  # only reactor_b has a dip probe


@pytest.mark.parametrize(
    "changes, words",
    [
        ({"reactors": {"reactor_b": {"flask": "reactor_flask"}}},
         "reactors.reactor_b.flask: 'reactor_flask' is reactor's flask already"),
        ({"reactors": {"reactor_b": {"flask": "flask_nowhere"}}},
         "reactors.reactor_b.flask 'flask_nowhere' is not on the robot deck"),
        ({"reactors": {"Reactor B": {"flask": "reactor_flask_b"}}},
         "reactors.Reactor B: a reactor's name"),
        ({"reactors": {"cell": {"flask": "reactor_flask_b"}}}, "reactors.cell: a reactor's name"),
    ],
)  # fmt: skip
def test_a_wrong_second_reactor_is_refused_naming_the_field(tmp_path, changes, words):
    with pytest.raises(ConfigError) as info:
        load_lab_config(_lab_file(tmp_path, **changes))
    assert words in str(info.value)


def test_the_plan_runs_in_the_reactor_it_is_given_and_says_so(RE, capsys):
    lab = build_lab(TWO, seed=0)
    flask_a = lab.robot.volume_of("reactor_flask")
    summarize_plan(hot_injection_synthesis(lab, HOT, reactor="reactor_b"))
    assert "reactor_b_temperature -> 150.0" in capsys.readouterr().out
    RE(hot_injection_synthesis(lab, HOT, reactor="reactor_b"))
    start = next(d for n, d in RE.docs if n == "start")
    assert start["reactor"] == "reactor_b" and start["plan_args"]["reactor"] == "reactor_b"
    assert start["sample_location"] == "reactor_flask_b"
    event = primary_events(RE.docs)[-1]
    assert event["data"]["reactor_b_temperature"] == pytest.approx(150.0, abs=2.0)
    assert event["data"]["reactor_b_growth_time"] == pytest.approx(12.0, abs=0.5)
    assert lab.robot.volume_of("reactor_flask") == flask_a  # the other flask was not touched
    assert lab.reactor.temperature.readback.get() == pytest.approx(25.0, abs=1.0)  # nor heated
    points = trajectory_from_documents(RE.docs)  # reactor_b's probe, every 5 s of growth
    assert [round(p["growth_time_s"]) for p in points] == [5, 10]
    assert all(p["hot"] and p["temperature_c"] == pytest.approx(150.0, abs=2.0) for p in points)
    with pytest.raises(ValueError, match=r"no reactor 'reactor_c'.*\['reactor', 'reactor_b'\]"):
        list(hot_injection_synthesis(lab, HOT, reactor="reactor_c"))


def test_a_campaign_chooses_its_reactor_and_is_checked_against_it(tmp_path, run_qdlab):
    url = f"sqlite:///{tmp_path / 'b.db'}"
    space = {"br_pb_ratio": [2, 30], "temperature_c": [90, 180], "ligand": ["oa_olam"],
             "time_s": [1, 60]}  # fmt: skip
    config = write_config(tmp_path, "b.yaml", lab=TWO, reactor="reactor_b", space=space,
                          budget=3, stop_on_target=False)  # fmt: skip
    out = run_qdlab("campaign", "run", config, "--db", url)
    assert out.returncode == 0, out.stderr
    db = Database(url)
    runs = db.runs(1)
    assert len(runs) == 3
    for run in runs:
        start = next(d for n, d in db.run_documents(run["uid"]) if n == "start")
        assert start["reactor"] == "reactor_b" and start["sample_location"] == "reactor_flask_b"
    # reactor_b stops at 180 °C: a space beyond it is refused before anything runs
    hot = write_config(tmp_path, "h.yaml", lab=TWO, reactor="reactor_b",
                       space={**space, "temperature_c": [90, 200]})  # fmt: skip
    out = run_qdlab("campaign", "run", hot, "--db", f"sqlite:///{tmp_path / 'h.db'}")
    assert out.returncode == 2
    assert "outside the lab's reactor_b limits [20, 180] °C" in out.stderr
    nope = write_config(tmp_path, "n.yaml", lab=TWO, reactor="reactor_c", space=space)
    out = run_qdlab("campaign", "run", nope, "--db", f"sqlite:///{tmp_path / 'n.db'}")
    assert out.returncode == 2
    assert "reactor: no reactor 'reactor_c' in lab 'sim-two-reactors'" in out.stderr


def _on_reactor_b(run_qdlab, tmp_path, remote: str) -> dict[str, str]:
    """Two-experiment campaigns on reactor_b of the ``remote`` lab and in process: they
    measure alike; the databases' URLs."""
    space = {"br_pb_ratio": [2, 30], "temperature_c": [90, 180], "ligand": ["oa_olam"],
             "time_s": [1, 30]}  # fmt: skip
    urls = {}
    for name, lab in (("remote", remote), ("local", TWO)):
        urls[name] = f"sqlite:///{tmp_path / name}.db"
        config = write_config(tmp_path, f"{name}.yaml", lab=lab, reactor="reactor_b",
                              space=space, budget=2, seed=3, stop_on_target=False)  # fmt: skip
        out = run_qdlab("campaign", "run", config, "--db", urls[name])
        assert out.returncode == 0, out.stderr
    measured = {n: [(r.status, r.observables) for r in Database(u).experiments(1)]
                for n, u in urls.items()}  # fmt: skip
    assert len(measured["local"]) == 2 and measured["remote"] == measured["local"]
    return urls


def test_over_sila2_the_second_reactor_is_named_in_the_commands_and_measures_as_in_process(
    run_qdlab, tmp_path
):
    from tests.conftest import SilaServerProcess

    server = SilaServerProcess(lab=TWO).start()
    over_sila = tmp_path / "two-sila.yaml"
    over_sila.write_text(
        yaml.safe_dump(
            {
                "base": TWO,
                "name": "two-sila",
                "backend": "sila2",
                "sila2": {"port": server.port, "twin_control": True},
            }
        )
    )
    try:
        _on_reactor_b(run_qdlab, tmp_path, str(over_sila))
        out = run_qdlab("lab", "check", str(over_sila))
        assert out.returncode == 0 and "reactor_b" in out.stdout, out.stderr
    finally:
        server.stop()


def test_over_channel_access_the_second_reactor_has_its_own_pvs_and_measures_as_in_process(
    epics_port, run_qdlab, tmp_path
):
    from devices.config import pv_suffixes
    from tests.conftest import IOC

    over_ca = tmp_path / "two-epics.yaml"
    over_ca.write_text(yaml.safe_dump({"base": TWO, "name": "two-epics", "backend": "epics",
                                       "epics": {"twin_control": True}}))  # fmt: skip
    suffixes = pv_suffixes(load_lab_config(over_ca))
    assert {"reactor_b:heater:SP", "reactor_b:INJECT", "reactor_b:GROWTH"} <= set(suffixes)
    server = IOC(lab=TWO).start()
    try:
        urls = _on_reactor_b(run_qdlab, tmp_path, str(over_ca))
    finally:
        server.stop()
    docs = Database(urls["remote"]).run_documents(Database(urls["remote"]).runs(1)[0]["uid"])
    descriptor = next(d for n, d in docs if n == "descriptor" and d["name"] == "primary")
    assert descriptor["data_keys"]["reactor_b_growth_time"]["source"] == "PV:QD:reactor_b:GROWTH"


def test_a_workcell_lets_its_queue_name_every_reactor():
    import re

    from orchestrator.execution.workcell_server import permissions

    rule = permissions(load_lab_config(TWO))["user_groups"]["primary"]["allowed_devices"][0]
    pattern = re.compile(rule.split(":", 2)[1])
    assert pattern.match("reactor_b") and pattern.match("reactor") and not pattern.match("os")

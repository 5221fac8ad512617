"""Plugins from installed packages, installed with pip as a lab would install its own: a backend
(tests/plugins/qdlab-hotplate, a campaign run through it) and a new kind of instrument with its
plan step (tests/plugins/qdlab-centrifuge, a campaign whose products it spins)."""

import os
import shutil
import subprocess
import sys

import pytest
import yaml

from db import Database
from devices import build_lab
from devices.config import ConfigError
from tests.conftest import ROOT
from tests.test_campaign import write_config

PLUGINS = [ROOT / "tests" / "plugins" / name for name in ("qdlab-hotplate", "qdlab-centrifuge")]
SIM_LAB = str(ROOT / "configs" / "labs" / "sim.yaml")


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> str:
    """The plugin packages installed by pip into a directory of their own (their entry points
    found there as in any site-packages)."""
    tmp = tmp_path_factory.mktemp("plugin")
    target = tmp / "site"
    for plugin in PLUGINS:
        source = tmp / plugin.name
        shutil.copytree(plugin, source)  # pip builds in the source tree: not the repository's
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
             "--no-build-isolation", "--target", str(target), str(source)],
            check=True, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
    return str(target)


def _lab(tmp_path, backend: str = "hotplate", **options) -> str:
    path = tmp_path / f"lab-{backend}.yaml"
    reactor = {"backend": backend, "backend_options": options}
    path.write_text(yaml.safe_dump({"base": SIM_LAB, "name": "hotplate-lab", "reactor": reactor}))
    return str(path)


def _env(site: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([site, str(ROOT)])}


def test_the_plugin_heats_the_reactor_and_the_flask_reacts_at_its_temperature(
    installed, tmp_path, monkeypatch
):
    monkeypatch.syspath_prepend(installed)
    lab = build_lab(_lab(tmp_path, rate_c_per_min=10.0), seed=0)  # slower than the lab's ramp
    heater = lab.reactor.temperature
    assert type(heater.backend).__module__ == "qdlab_hotplate"
    start = lab.clock.now()
    heater.set(145.0).wait(5)
    # the hotplate's own physics: 120 °C at its 10 °C/min is twelve minutes of lab time
    assert lab.clock.now() - start == pytest.approx(720.0, abs=0.5)
    assert heater.readback.get() == pytest.approx(145.0)
    # the rest of the lab is the lab's own: the simulated flask reacts at the plate's reading
    assert type(lab.reactor.backend).__name__ == "SimReactor"
    assert lab.reactor.backend.temperature() == pytest.approx(145.0)


def test_a_campaign_runs_through_the_plugin(installed, tmp_path, run_qdlab):
    config = write_config(tmp_path, "c.yaml", lab=_lab(tmp_path), budget=4, seed=2)
    url = f"sqlite:///{tmp_path / 'p.db'}"
    out = run_qdlab("campaign", "run", config, "--db", url, env=_env(installed))
    assert out.returncode == 0, out.stderr
    rows = Database(url).experiments(1)
    assert len(rows) == 4 and sum(r.status == "done" for r in rows) >= 3
    # what failed, failed of its chemistry (no emission at 110 °C with OLPA), not the plugin
    assert all(r.failure_reason.startswith("MeasurementRejected") for r in rows if r.failure_reason)
    out = run_qdlab("lab", "check", _lab(tmp_path), "--json", env=_env(installed))
    assert out.returncode == 0, out.stderr
    reactor = next(r for r in __import__("json").loads(out.stdout)["instruments"]
                   if r["instrument"] == "reactor")  # fmt: skip
    assert reactor["backend"] == "hotplate" and "qdlab-hotplate 0.1.0" in reactor["detail"]


def test_a_missing_or_broken_plugin_is_one_line_naming_the_instrument_and_backend(
    installed, tmp_path, run_qdlab, monkeypatch
):
    monkeypatch.syspath_prepend(installed)
    with pytest.raises(ConfigError, match=r"reactor\.backend: 'hotplat' cannot drive .* hotplate"):
        build_lab(_lab(tmp_path, backend="hotplat"))
    env = _env(installed)
    for lab, words in (
        (_lab(tmp_path, backend="broken"), "the plugin 'broken' (qdlab_hotplate.broken:Backends)"
         " did not load: ModuleNotFoundError"),
        (_lab(tmp_path, speed=3), "the plugin 'hotplate' did not start: ValueError: unknown "
         "backend_options ['speed']"),
    ):  # fmt: skip
        config = write_config(tmp_path, "b.yaml", lab=lab, budget=2)
        url = f"sqlite:///{tmp_path / 'b.db'}"
        out = run_qdlab("campaign", "run", config, "--db", url, env=env)
        assert out.returncode == 2, out.stderr
        assert out.stderr.count("\n") == 1
        assert "reactor.backend" in out.stderr and words in out.stderr, out.stderr
        assert "Traceback" not in out.stderr
        out = run_qdlab("lab", "check", lab, env=env)
        assert out.returncode == 2 and words in out.stdout.replace("\n", " ") + out.stderr


def test_a_plugin_can_drive_one_reactor_of_several(installed, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(installed)
    path = tmp_path / "two.yaml"
    two = str(ROOT / "configs" / "labs" / "sim-two-reactors.yaml")
    reactors = {"reactor_b": {"backend": "hotplate"}}
    path.write_text(yaml.safe_dump({"base": two, "reactors": reactors}))
    lab = build_lab(path, seed=0)
    assert type(lab.reactors["reactor_b"].temperature.backend).__module__ == "qdlab_hotplate"
    assert type(lab.reactor.temperature.backend).__name__ == "SimHeater"


# -- a new kind of instrument ------------------------------------------------------------------
SPIN = {"instrument": "spin", "step": "spin", "args": {"rpm": 9000, "seconds": 240}}


def _centrifuge_lab(tmp_path, kind: str = "centrifuge", **options) -> str:
    path = tmp_path / f"lab-{kind}.yaml"
    instruments = {"spin": {"kind": kind, "options": options}}
    lab = {"base": SIM_LAB, "name": "spin-lab", "instruments": instruments}
    path.write_text(yaml.safe_dump(lab))
    return str(path)


def test_a_plugin_kind_of_instrument_is_a_device_of_the_lab_and_its_step_a_plan_step(
    installed, tmp_path, monkeypatch, RE
):
    import bluesky.plans as bp
    from bluesky.simulators import summarize_plan

    from orchestrator.execution.plans import hot_injection_synthesis

    monkeypatch.syspath_prepend(installed)
    lab = build_lab(_centrifuge_lab(tmp_path, max_rpm=12000), seed=0)
    spin = lab.instruments["spin"]
    assert type(spin).__module__ == "qdlab_centrifuge" and spin in lab.devices
    RE(bp.count([spin]))  # an ordinary ophyd device: standard plans read it
    assert [d["data"]["spin_rpm"] for n, d in RE.docs if n == "event"] == [0.0]

    conditions = {"br_pb_ratio": 10, "temperature_c": 150, "ligand": "oa_olam", "time_s": 30}
    summarize_plan(hot_injection_synthesis(build_lab(_centrifuge_lab(tmp_path), seed=0),
                                           conditions, steps=[SPIN]))  # fmt: skip
    RE.docs.clear()
    before = lab.clock.now()
    RE(hot_injection_synthesis(lab, conditions, steps=[SPIN]))
    start = next(d for n, d in RE.docs if n == "start")
    assert start["steps"] == [SPIN] and start["plan_args"]["steps"] == [SPIN]
    streams = {d["uid"]: d["name"] for n, d in RE.docs if n == "descriptor"}
    spun = [d for n, d in RE.docs if n == "event" and streams[d["descriptor"]] == "spin"]
    # the product in the reactor's flask was spun once, at the speed and for the time asked
    assert len(spun) == 1
    assert spun[0]["data"] == {"spin_rpm": 9000.0, "spin_spin_s": 240.0,
                               "spin_sample": "reactor_flask"}  # fmt: skip
    assert lab.clock.now() - before > 240.0
    order = [streams.get(d.get("descriptor")) for n, d in RE.docs if n == "event"]
    assert order.index("spin") < order.index("primary")  # spun before it was measured
    baseline = [d["data"]["spin_rpm"] for n, d in RE.docs
                if n == "event" and streams[d["descriptor"]] == "baseline"]  # fmt: skip
    assert baseline == [0.0, 9000.0]


def test_a_step_the_lab_cannot_take_fails_naming_it_before_anything_moves(
    installed, tmp_path, monkeypatch, RE
):
    from orchestrator.execution.plans import hot_injection_synthesis

    monkeypatch.syspath_prepend(installed)
    lab = build_lab(_centrifuge_lab(tmp_path, max_rpm=12000), seed=0)
    conditions = {"br_pb_ratio": 10, "temperature_c": 150, "ligand": "oa_olam", "time_s": 30}
    for steps, words in (
        ([{**SPIN, "args": {"rpm": 20000}}],
         r"steps\[0\]\.args \(spin spin\): rpm 20000 is outside the allowed range \(0, 12000\]"),
        ([{**SPIN, "args": {"speed": 1}}], r"steps\[0\]\.args: spin: .*'speed'"),
        ([SPIN, {**SPIN, "instrument": "spinner"}],
         r"steps\[1\]\.instrument: lab 'spin-lab' has no instrument 'spinner'; .*\['spin'\]"),
        ([{**SPIN, "step": "wash"}], r"steps\[0\]\.step: a centrifuge has no step 'wash'; .*spin"),
    ):  # fmt: skip
        with pytest.raises(ConfigError, match=words):
            RE(hot_injection_synthesis(lab, conditions, steps=steps))
        assert lab.robot.volume_of("reactor_flask") == 0  # nothing was loaded
        assert not [d for n, d in RE.docs if n == "start"]  # no run began
    with pytest.raises(ConfigError, match=r"instruments\.spin\.kind: no instrument kind "
                       r"'centrifug' is installed \(installed: centrifuge"):  # fmt: skip
        build_lab(_centrifuge_lab(tmp_path, kind="centrifug"))


def test_a_campaign_spins_every_product_and_lab_check_names_the_instrument(
    installed, tmp_path, run_qdlab
):
    import json

    lab = _centrifuge_lab(tmp_path)
    config = write_config(tmp_path, "c.yaml", lab=lab, budget=3, seed=2, steps=[SPIN])
    url = f"sqlite:///{tmp_path / 'spin.db'}"
    out = run_qdlab("campaign", "run", config, "--db", url, env=_env(installed))
    assert out.returncode == 0, out.stderr
    db = Database(url)
    assert len(db.experiments(1)) == 3
    runs = db.runs(1)
    assert len(runs) >= 3
    for run in runs:
        docs = db.run_documents(run["uid"])
        start = next(d for n, d in docs if n == "start")
        assert start["steps"] == [SPIN]
        names = {d["name"] for n, d in docs if n == "descriptor"}
        assert "spin" in names
    out = run_qdlab("lab", "check", lab, "--json", env=_env(installed))
    assert out.returncode == 0, out.stderr
    row = next(r for r in json.loads(out.stdout)["instruments"] if r["instrument"] == "spin")
    assert row["backend"] == "centrifuge" and row["ready"]
    assert "qdlab-centrifuge 0.1.0" in row["detail"] and "spin_rpm" in row["detail"]
    # a campaign asking for a step the lab's instruments cannot take: one line, exit 2
    bad = write_config(tmp_path, "bad.yaml", lab=lab, budget=3,
                       steps=[{**SPIN, "instrument": "centrifuge"}])  # fmt: skip
    out = run_qdlab("campaign", "run", bad, "--db", url, env=_env(installed))
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
    assert "steps[0].instrument: lab 'spin-lab' has no instrument 'centrifuge'" in out.stderr
    assert len(Database(url).campaigns()) == 1  # nothing stored for it

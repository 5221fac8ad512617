"""Backends from installed packages: a tiny plugin (tests/plugins/qdlab-hotplate) installed with
pip, as a lab would install its own, and a campaign run through it."""

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

PLUGIN = ROOT / "tests" / "plugins" / "qdlab-hotplate"
SIM_LAB = str(ROOT / "configs" / "labs" / "sim.yaml")


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> str:
    """The plugin package installed by pip into a directory of its own (its entry points
    found there as in any site-packages)."""
    tmp = tmp_path_factory.mktemp("plugin")
    source = tmp / "source"
    shutil.copytree(PLUGIN, source)  # pip builds in the source tree: not in the repository's
    target = tmp / "site"
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

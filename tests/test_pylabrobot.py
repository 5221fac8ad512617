"""The pipetting robot through PyLabRobot (`robot.backend: pylabrobot`): its own simulation
backend (chatterbox) with volume and tip tracking on, a PyLabRobot backend that fails a
dispense the way a liquid handler's firmware does, and refusals before anything moves."""

from __future__ import annotations

import json

import bluesky.plan_stubs as bps
import pytest
import yaml
from bluesky.utils import FailedStatus
from pylabrobot.liquid_handling.backends.chatterbox import LiquidHandlerChatterboxBackend
from pylabrobot.liquid_handling.errors import ChannelizedError

from db import Database
from devices import build_lab
from devices.robot import Dispense, Transfer
from devices.world import WorldError
from orchestrator.execution.executor import cause
from tests.conftest import ROOT
from tests.test_campaign import write_config

SIM_LAB = str(ROOT / "configs" / "labs" / "sim.yaml")


class ClottingBackend(LiquidHandlerChatterboxBackend):
    """PyLabRobot's chatterbox, whose next dispense fails as a clogged channel's does (the
    firmware's error, per channel, in a ChannelizedError); it counts what reached it."""

    def __init__(self) -> None:
        super().__init__(num_channels=1)
        self.clot_next_dispense = False
        self.operations = 0

    async def aspirate(self, ops, use_channels, **backend_kwargs):
        self.operations += 1
        await super().aspirate(ops, use_channels, **backend_kwargs)

    async def dispense(self, ops, use_channels, **backend_kwargs):
        self.operations += 1
        if self.clot_next_dispense:
            self.clot_next_dispense = False
            raise ChannelizedError({0: RuntimeError("clot detected: dispense aborted")})
        await super().dispense(ops, use_channels, **backend_kwargs)


def _plr_lab(tmp_path) -> str:
    path = tmp_path / "plr-lab.yaml"
    path.write_text(yaml.safe_dump({"base": SIM_LAB, "name": "sim-plr",
                                    "robot": {"backend": "pylabrobot"}}))  # fmt: skip
    return str(path)


def _ledgers_agree(lab) -> None:
    """QDLab's ledger (the simulated world's) and PyLabRobot's trackers, location by location,
    and what the tip holds."""
    backend = lab.robot.backend
    for location, item in lab.config.robot.deck.items():
        if item.kind == "plate" or location in backend._shared:  # (those others change too)
            continue
        assert backend.tracked_ul(location) == pytest.approx(backend.volume_of(location)), location
    for well in ("plate:A1", "plate:B1"):
        assert backend.tracked_ul(well) == pytest.approx(backend.volume_of(well)), well
    assert backend.tip_ul() == pytest.approx(lab.robot.held_ul.get())


def test_a_campaign_on_pylabrobots_chatterbox_measures_what_the_simulated_robot_does(
    run_qdlab, tmp_path
):
    urls = {}
    for name, lab in (("plr", _plr_lab(tmp_path)), ("sim", SIM_LAB)):
        urls[name] = f"sqlite:///{tmp_path / name}.db"
        config = write_config(tmp_path, f"{name}.yaml", lab=lab, budget=4, stop_on_target=False)
        out = run_qdlab("campaign", "run", config, "--db", urls[name], "--json")
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["experiments"] == 4  # (chatterbox's narration not in it)
    measured = {n: [(r.status, r.observables) for r in Database(u).experiments(1)]
                for n, u in urls.items()}  # fmt: skip
    assert measured["plr"] == measured["sim"]  # failures too: the chemistry's, not the robot's
    assert sum(s == "done" for s, _ in measured["plr"]) >= 2


def test_every_transfer_goes_through_pylabrobot_and_the_ledgers_agree(tmp_path, RE):
    from orchestrator.execution.plans import hot_injection_synthesis

    handler = ClottingBackend()
    lab = build_lab(_plr_lab(tmp_path), liquid_handler=handler)
    conditions = {"br_pb_ratio": 6.0, "temperature_c": 150.0, "ligand": "oa_olam",
                  "time_s": 10.0}  # fmt: skip
    tips = lab.robot.backend.tips_left()
    RE(hot_injection_synthesis(lab, conditions))
    assert handler.operations > 6  # loaded, injected, sampled: each as PyLabRobot operations
    assert lab.robot.backend.tips_left() < tips  # PyLabRobot's tip tracker took tips
    assert lab.robot.backend.tracked_ul("pbbr2") < 1_000_000  # and its volume tracker liquid
    _ledgers_agree(lab)


def test_a_failed_dispense_leaves_qdlab_and_pylabrobot_agreeing_where_the_liquid_is(tmp_path, RE):
    handler = ClottingBackend()
    lab = build_lab(_plr_lab(tmp_path), liquid_handler=handler)
    RE(bps.mv(lab.robot, Transfer("toluene", "plate:A1", 300.0)))
    handler.clot_next_dispense = True
    with pytest.raises(FailedStatus) as failed:
        RE(bps.mv(lab.robot, Transfer("toluene", "plate:B1", 400.0)))
    assert "clot detected" in str(cause(failed.value))
    # the liquid left the reservoir and is in the tip, in both ledgers
    assert lab.robot.held_ul.get() == pytest.approx(400.0)
    assert lab.robot.backend.volume_of("toluene") == pytest.approx(5_000_000 - 700.0)
    assert lab.robot.backend.volume_of("plate:B1") == 0.0
    _ledgers_agree(lab)
    RE(bps.mv(lab.robot, Dispense("plate:B1", 400.0)))  # the operator finishes it
    assert lab.robot.backend.volume_of("plate:B1") == pytest.approx(400.0)
    _ledgers_agree(lab)


@pytest.mark.parametrize(
    ("action", "message"),
    [
        (Transfer("toluene", "plate:Z99", 100.0), "plate has no well 'Z99'"),
        (Transfer("toluene", "beaker", 100.0), "no location 'beaker' on the deck"),
        (Transfer("toluene", "plate:A1", 2500.0), "plate:A1 holds 0 of 2000 µL, cannot add 2500"),
    ],
)
def test_an_impossible_transfer_is_refused_before_pylabrobot_moves(tmp_path, RE, action, message):
    handler = ClottingBackend()
    lab = build_lab(_plr_lab(tmp_path), liquid_handler=handler)
    before = handler.operations, lab.robot.backend.tracked_ul("toluene")
    with pytest.raises((WorldError, ValueError)) as refused:
        RE(bps.mv(lab.robot, action))
    assert message in str(refused.value)
    assert (handler.operations, lab.robot.backend.tracked_ul("toluene")) == before


def test_lab_check_sets_up_the_liquid_handler_and_names_it(run_qdlab, tmp_path):
    out = run_qdlab("lab", "check", _plr_lab(tmp_path), "--json")
    assert out.returncode == 0, out.stderr
    robot = json.loads(out.stdout)["instruments"][0]
    assert robot["instrument"] == "robot" and robot["ready"] is True
    assert "PyLabRobot 0.2.2, LiquidHandlerChatterboxBackend" in robot["detail"]
    assert "9600 tips" in robot["detail"]


def test_on_an_epics_lab_pylabrobots_trackers_are_the_ledger(ioc, tmp_path, RE):
    path = tmp_path / "epics-plr.yaml"
    path.write_text(yaml.safe_dump({"base": str(ROOT / "configs" / "labs" / "sim-epics.yaml"),
                                    "robot": {"backend": "pylabrobot"}}))  # fmt: skip
    lab = build_lab(str(path))  # no robot PV is needed: the IOC serves the rest
    assert lab.robot.backend.ledger is None
    RE(bps.mv(lab.robot, Transfer("toluene", "plate:C3", 250.0)))
    assert lab.robot.volume_of("toluene") == pytest.approx(5_000_000 - 250.0)
    assert lab.robot.volume_of("plate:C3") == pytest.approx(250.0)
    assert "plate:C3" not in lab.robot.backend.fresh_wells("plate")

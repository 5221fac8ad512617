"""Closed-loop campaigns through the qdlab CLI, as a scientist runs them."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from db import Database
from orchestrator.campaign.config import load_campaign
from orchestrator.campaign.runner import CampaignInterrupted, CampaignRunner
from orchestrator.execution.plans import PLANS
from tests.conftest import ROOT, start_qdlab, validate_documents

LAB = str(ROOT / "configs" / "labs" / "sim.yaml")
BASE = {
    "name": "test-campaign",
    "lab": LAB,
    "route": "hot_injection",
    "target": {"pl_peak_nm": 470.0, "tolerance_nm": 1.0},
    "space": {
        "br_pb_ratio": [2, 30],
        "temperature_c": [90, 200],
        "ligand": ["oa_olam", "olpa"],
        "time_s": [1, 120],
    },
    "planner": {"kind": "random"},
    "budget": 8,
    "seed": 2,
}


def write_config(tmp_path: Path, name: str = "campaign.yaml", **changes) -> str:
    config = {**BASE, **changes}
    path = tmp_path / name
    path.write_text(yaml.safe_dump(config))
    return str(path)


def test_demo_campaign_runs_end_to_end_and_reports(run_qdlab, tmp_path):
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    out = run_qdlab(
        "campaign",
        "run",
        "configs/campaigns/blue_470_random.yaml",
        "--db",
        url,
        "--json",
        "--report",
        str(tmp_path / "report"),
    )
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["experiments"] == 30 and summary["status"] == "completed"
    assert set(summary) >= {
        "campaign_id",
        "experiments",
        "reached_target",
        "first_hit_experiment",
        "best",
    }
    assert abs(summary["best"]["observables"]["pl_peak_nm"] - 470) == pytest.approx(
        summary["best"]["error"]
    )
    for figure in ("convergence.png", "spectra.png", "conditions.png"):
        assert (tmp_path / "report" / figure).stat().st_size > 10_000
    page = (tmp_path / "report" / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 3 and "blue-470nm-random" in page
    db = Database(url)
    rows = db.experiments(summary["campaign_id"])
    assert [r.index for r in rows] == list(range(30))
    assert all(r.planner_name == "random" and r.seed == 1 for r in rows)
    docs = list(db.campaign_documents(summary["campaign_id"]))
    assert validate_documents(docs) == len(docs) >= 30 * 4


def test_a_campaign_stops_when_the_target_is_met(run_qdlab, tmp_path):
    cfg = write_config(tmp_path, target={"pl_peak_nm": 490.0, "tolerance_nm": 15.0}, budget=20)
    out = run_qdlab("campaign", "run", cfg, "--db", f"sqlite:///{tmp_path / 'c.db'}", "--json")
    summary = json.loads(out.stdout)
    assert summary["reached_target"] and summary["experiments"] == summary["first_hit_experiment"]
    assert summary["experiments"] < 20 and "target reached" in summary["reason"]


def test_failed_experiments_are_recorded_and_three_in_a_row_pause(run_qdlab, tmp_path):
    cfg = write_config(tmp_path, simulator={"faults": {"spectrometer_timeout": 1.0}})
    url = f"sqlite:///{tmp_path / 'f.db'}"
    out = run_qdlab("campaign", "run", cfg, "--db", url)
    assert out.returncode == 1
    assert (
        "3 experiments failed in a row" in out.stdout
        and "spectrometer did not answer" in out.stdout
    )
    rows = Database(url).experiments(1)
    assert [r.status for r in rows] == ["failed"] * 3
    assert all(r.observables is None for r in rows)


def test_list_and_show_print_json(run_qdlab, tmp_path):
    url = f"sqlite:///{tmp_path / 'l.db'}"
    run_qdlab("campaign", "run", write_config(tmp_path, budget=3), "--db", url)
    listed = json.loads(run_qdlab("campaign", "list", "--db", url, "--json").stdout)
    assert listed == [
        {
            "id": 1,
            "name": "test-campaign",
            "status": "completed",
            "experiments": 3,
            "route": "hot_injection",
        }
    ]
    shown = json.loads(run_qdlab("campaign", "show", "1", "--db", url, "--json").stdout)
    assert shown["id"] == 1 and shown["target"]["pl_peak_nm"] == 470.0
    assert [e["index"] for e in shown["experiments"]] == [0, 1, 2]
    assert set(shown["experiments"][0]) >= {"status", "conditions", "observables", "failure_reason"}
    table = run_qdlab("campaign", "show", "1", "--db", url, env={**os.environ, "COLUMNS": "200"})
    assert "br_pb_ratio" in table.stdout and table.returncode == 0


BAD = [
    ({"colour": "blue"}, "colour: unknown key"),
    ({"budget": "many"}, "budget: Input should be a valid integer"),
    ({"budget": 0}, "budget: Input should be greater than or equal to 1"),
    ({"route": "microwave"}, "route: Input should be 'hot_injection', 'flow' or 'larp'"),
    ({"planner": {"kind": "genetic"}}, "planner.kind: Value error, must be one of"),
    ({"planner": {"kind": "random", "temperature": 3}}, "planner.temperature: the random"),
    (
        {"space": {**BASE["space"], "temperature_c": [90, 250]}},
        "space.temperature_c: 250 is outside the route's range [60, 200] °C",
    ),
    ({"space": {**BASE["space"], "stirring": [1, 2]}}, "space.stirring: not a parameter"),
    ({"space": {k: v for k, v in BASE["space"].items() if k != "time_s"}}, "space.time_s: missing"),
    (
        {"space": {**BASE["space"], "ligand": ["oa_olam", "butter"]}},
        "space.ligand: 'butter' is not one of",
    ),
    ({"target": {"pl_peak_nm": 560.0}}, "target.pl_peak_nm: 560 nm is outside what route"),
    ({"target": {"pl_peak_nm": 470.0, "edge_length_nm": 3.0}}, "exactly one of"),
    ({"lab": "/nowhere/lab.yaml"}, "lab: file '/nowhere/lab.yaml' not found"),
    (
        {"simulator": {"outcome_model": "no_such_module_xyz:f"}},
        "simulator.outcome_model 'no_such_module_xyz:f': cannot import",
    ),
]


@pytest.mark.parametrize(("change", "message"), BAD, ids=[m[:30] for _, m in BAD])
def test_bad_campaign_configs_exit_2_with_one_line_and_write_nothing(
    run_qdlab, tmp_path, change, message
):
    db_file = tmp_path / "bad.db"
    out = run_qdlab(
        "campaign", "run", write_config(tmp_path, **change), "--db", f"sqlite:///{db_file}"
    )
    assert out.returncode == 2, out.stdout + out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
    assert message in lines[0]
    assert not db_file.exists()  # nothing written, no device built or moved


def test_a_missing_config_file_and_a_lab_without_the_route_are_refused(run_qdlab, tmp_path):
    out = run_qdlab("campaign", "run", str(tmp_path / "nope.yaml"))
    assert out.returncode == 2 and "does not exist" in out.stderr
    lab = yaml.safe_load(Path(LAB).read_text())
    del lab["flow"]
    (tmp_path / "noflow.yaml").write_text(yaml.safe_dump(lab))
    cfg = write_config(
        tmp_path,
        lab=str(tmp_path / "noflow.yaml"),
        route="flow",
        space={
            "br_pb_ratio": [2, 30],
            "temperature_c": [100, 180],
            "ligand": ["oa_olam"],
            "residence_time_s": [10, 100],
            "flow_ratio": [0.5, 2],
        },
    )
    out = run_qdlab("campaign", "run", cfg, "--db", f"sqlite:///{tmp_path / 'x.db'}")
    assert out.returncode == 2 and "has no flow reactor" in out.stderr


SLOW = {"simulator": {"clock": "realtime", "speed": 3000.0}}  # ~0.2 s per experiment


def _wait_for(url: str, experiments: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            rows = Database(url, migrate=False).experiments(1)
        except Exception:  # the campaign row may not exist yet
            rows = []
        if sum(r.status in ("done", "failed") for r in rows) >= experiments:
            return
        time.sleep(0.02)
    raise AssertionError(f"campaign did not reach {experiments} experiments")


@pytest.mark.slow
def test_kill_9_at_several_points_then_resume_loses_and_repeats_nothing(run_qdlab, tmp_path):
    url = f"sqlite:///{tmp_path / 'k.db'}"
    cfg = write_config(tmp_path, budget=10, stop_on_target=False, **SLOW)
    proc = start_qdlab("campaign", "run", cfg, "--db", url)
    _wait_for(url, 2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    for point in (5, 8):
        proc = start_qdlab("campaign", "resume", "1", "--db", url)
        _wait_for(url, point)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    out = run_qdlab("campaign", "resume", "1", "--db", url, "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["experiments"] == 10
    db = Database(url)
    assert db.integrity_check()
    rows = db.experiments(1)
    assert [r.index for r in rows] == list(range(10))
    assert all(r.status in ("done", "failed") for r in rows)
    assert all((r.observables is not None) == (r.status == "done") for r in rows)
    runs = db.runs(1)
    measured = [r["experiment_id"] for r in runs if r["complete"] and r["exit_status"] == "success"]
    assert len(measured) == len(set(measured)) == 10  # each experiment measured exactly once
    assert all(r.run_uid in {x["uid"] for x in runs} for r in rows if r.status == "done")
    assert len(runs) >= 10  # a run killed mid-way stays in the record, incomplete


def _observables(url: str) -> list[tuple[str, dict | None]]:
    return [(r.status, r.observables) for r in Database(url).experiments(1)]


def test_a_campaign_killed_and_resumed_measures_what_an_uninterrupted_one_does(run_qdlab, tmp_path):
    """The twin's state (reactor temperature, reagents, the cell's frames) is caught up on
    resume, so every observable matches the uninterrupted campaign with the same seed."""
    cfg = write_config(tmp_path, budget=12, stop_on_target=False)
    whole = f"sqlite:///{tmp_path / 'whole.db'}"
    assert run_qdlab("campaign", "run", cfg, "--db", whole).returncode == 0
    url = f"sqlite:///{tmp_path / 'killed.db'}"
    proc = start_qdlab("campaign", "run", cfg, "--db", url)
    _wait_for(url, 3)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    killed_after = sum(s in ("done", "failed") for s, _ in _observables(url))
    assert 3 <= killed_after < 12
    out = run_qdlab("campaign", "resume", "1", "--db", url)
    assert out.returncode == 0, out.stderr
    assert _observables(url) == _observables(whole)


@pytest.mark.parametrize(
    "config", ["blue_470_random.yaml", "flow_490_random.yaml", "larp_edge_5nm_sobol.yaml"]
)
def test_resume_reproduces_the_uninterrupted_campaign_on_every_route(tmp_path, config):
    path = str(ROOT / "configs" / "campaigns" / config)
    whole = Database(f"sqlite:///{tmp_path / 'whole.db'}")
    CampaignRunner(whole, load_campaign(path, {"budget": 9, "stop_on_target": False})).run()
    parts = Database(f"sqlite:///{tmp_path / 'parts.db'}")
    CampaignRunner(parts, load_campaign(path, {"budget": 4, "stop_on_target": False})).run()
    CampaignRunner.resume(parts, 1, budget=9).run()
    assert [(r.status, r.observables) for r in parts.experiments(1)] == [
        (r.status, r.observables) for r in whole.experiments(1)
    ]


def test_resume_after_a_kill_between_storing_a_run_and_its_observation_reproduces_too(
    tmp_path, monkeypatch
):
    """That experiment is not run again (its run is stored), but the new lab must still go
    through it before the next one."""
    path = str(ROOT / "configs" / "campaigns" / "blue_470_random.yaml")
    whole = Database(f"sqlite:///{tmp_path / 'whole.db'}")
    CampaignRunner(whole, load_campaign(path, {"budget": 7, "stop_on_target": False})).run()
    parts = Database(f"sqlite:///{tmp_path / 'parts.db'}")
    store = parts.add_observation

    def killed_at_the_fourth(experiment_id, *args, **kwargs):
        if experiment_id == parts.experiment_id(1, 3):
            raise SystemExit("kill -9")
        return store(experiment_id, *args, **kwargs)

    monkeypatch.setattr(parts, "add_observation", killed_at_the_fourth)
    with pytest.raises(SystemExit):
        CampaignRunner(parts, load_campaign(path, {"budget": 7, "stop_on_target": False})).run()
    monkeypatch.setattr(parts, "add_observation", store)
    assert parts.experiments(1)[3].status == "running"
    CampaignRunner.resume(parts, 1).run()
    assert [(r.status, r.observables) for r in parts.experiments(1)] == [
        (r.status, r.observables) for r in whole.experiments(1)
    ]


@pytest.mark.slow
def test_ctrl_c_pauses_cleanly_and_resume_finishes(run_qdlab, tmp_path):
    url = f"sqlite:///{tmp_path / 'i.db'}"
    cfg = write_config(tmp_path, budget=20, stop_on_target=False, **SLOW)
    proc = start_qdlab("campaign", "run", cfg, "--db", url, capture=True)
    _wait_for(url, 2)
    proc.send_signal(signal.SIGINT)  # bluesky pauses at the checkpoint after the measurement
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    db = Database(url)
    assert db.campaign(1)["status"] == "paused"
    assert "resume 1" in err
    rows = db.experiments(1)
    assert rows and "running" not in {r.status for r in rows}  # stopped between experiments
    assert sum(r.status in ("done", "failed") for r in rows) < 20
    finished = run_qdlab("campaign", "resume", "1", "--db", url, "--json")
    assert json.loads(finished.stdout)["experiments"] == 20
    assert [r.index for r in db.experiments(1)] == list(range(20))


def test_a_ctrl_c_as_an_experiment_ends_pauses_the_campaign_after_it(tmp_path, monkeypatch):
    """bluesky forwards Ctrl-C to the RunEngine from a helper thread, too late once the plan has
    ended; the campaign must still stop after this experiment, not run on."""
    real_plan = PLANS["hot_injection"]

    def plan_then_ctrl_c(lab, conditions, md=None):
        uid = yield from real_plan(lab, conditions, md=md)
        os.kill(os.getpid(), signal.SIGINT)
        return uid

    monkeypatch.setitem(PLANS, "hot_injection", plan_then_ctrl_c)
    db = Database(f"sqlite:///{tmp_path / 'c.db'}")
    runner = CampaignRunner(db, load_campaign(write_config(tmp_path, budget=5)))
    with pytest.raises(CampaignInterrupted):
        runner.run()
    assert [r.status for r in db.experiments(runner.campaign_id)] == ["done"]
    assert db.campaign(runner.campaign_id)["status"] == "paused"


def test_a_ctrl_c_before_the_measurement_aborts_the_run_and_runs_the_experiment_again(
    tmp_path, monkeypatch
):
    """Interrupted while heating (the run already holds its baseline reading, no measurement;
    bluesky fails to pause there and aborts the run itself, which left the experiment failed
    with "RunEngine is already idle"): the run is not the experiment's result, and the
    experiment runs again on resume."""
    import bluesky.plan_stubs as bps

    real_plan = PLANS["hot_injection"]

    def ctrl_c_while_heating(lab, conditions, md=None):
        def interrupt(msg):
            if msg.command == "set" and msg.obj is lab.reactor.temperature:
                os.kill(os.getpid(), signal.SIGINT)
                return bps.sleep(0.5), None  # the RunEngine sees the Ctrl-C here
            return None, None

        from bluesky.preprocessors import plan_mutator

        return (yield from plan_mutator(real_plan(lab, conditions, md=md), interrupt))

    monkeypatch.setitem(PLANS, "hot_injection", ctrl_c_while_heating)
    db = Database(f"sqlite:///{tmp_path / 'h.db'}")
    runner = CampaignRunner(db, load_campaign(write_config(tmp_path, budget=3)))
    with pytest.raises(CampaignInterrupted):
        runner.run()
    (row,) = db.experiments(runner.campaign_id)
    assert row.status == "proposed" and row.observables is None
    (run,) = db.runs(runner.campaign_id)
    assert run["complete"] and run["exit_status"] in ("abort", "fail")


def test_ipython_session_gives_re_lab_db_and_plans_and_keeps_scan_ids(tmp_path, run_qdlab):
    script = (
        "from orchestrator.session import *\n"
        "RE(hot_injection_synthesis(lab, dict(br_pb_ratio=12, temperature_c=140, "
        "ligand='oa_olam', time_s=10)))\n"
        "print('runs stored:', len(db.runs()), 'scan id:', RE.md['scan_id'])\n"
    )
    env = {
        **os.environ,
        "QDLAB_DB": f"sqlite:///{tmp_path / 's.db'}",
        "XDG_STATE_HOME": str(tmp_path / "state"),
    }
    for session in (1, 2):  # a second session goes on counting scans
        out = subprocess.run(
            [sys.executable, "-c", script],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 0, out.stderr
        assert "cell_pl_peak" in out.stdout  # the BestEffortCallback table
        assert f"runs stored: {session} scan id: {session}" in out.stdout
    bad = run_qdlab("ipython", "--lab", str(tmp_path / "nope.yaml"))
    assert bad.returncode == 2 and "lab config" in bad.stderr and "does not exist" in bad.stderr


def test_a_campaign_warns_when_the_deck_cannot_cover_its_budget(run_qdlab, tmp_path):
    lab = yaml.safe_load(Path(LAB).read_text())
    lab["robot"]["deck"]["znbr2"]["volume_ul"] = 10000  # enough for 3 experiments at worst
    (tmp_path / "small.yaml").write_text(yaml.safe_dump(lab))
    cfg = write_config(tmp_path, lab=str(tmp_path / "small.yaml"), budget=2, stop_on_target=False)
    url = f"sqlite:///{tmp_path / 'w.db'}"
    out = run_qdlab("campaign", "run", cfg, "--db", url)
    assert out.returncode == 0 and "warning" not in out.stderr
    out = run_qdlab("campaign", "run", cfg, "--db", url, "--budget", "5")
    warning = next(line for line in out.stderr.splitlines() if line.startswith("warning:"))
    assert "znbr2 holds 10,000 µL; 5 experiments may take up to 14,000 µL" in warning
    assert "br_pb_ratio=30" in warning and "enough for 3" in warning
    out = run_qdlab("lab", "check", str(tmp_path / "small.yaml"), "--campaign", cfg)
    assert out.returncode == 0 and "no PVs to check" in out.stdout
    assert "warning" not in out.stderr and "reagents: enough" in out.stderr  # budget 2 fits
    big = write_config(tmp_path, "big.yaml", lab=str(tmp_path / "small.yaml"), budget=5)
    out = run_qdlab("lab", "check", str(tmp_path / "small.yaml"), "--campaign", big)
    assert "warning: znbr2 holds 10,000 µL; 5 experiments may take up to 14,000 µL" in out.stderr


@pytest.mark.parametrize(
    ("config", "material", "target", "sources"),
    [
        ("red_650_cspbi3.yaml", "CsPbI3", 650.0, ("pbi2", "cs_oleate")),
        ("green_530_fapbbr3.yaml", "FAPbBr3", 530.0, ("pbbr2", "fa_oleate")),
    ],
)
def test_red_and_green_campaigns_reach_their_targets(
    run_qdlab, tmp_path, config, material, target, sources
):
    url = f"sqlite:///{tmp_path / 'colour.db'}"
    out = run_qdlab(
        "campaign", "run", f"configs/campaigns/{config}", "--db", url, "--budget", "12", "--json"
    )
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["reached_target"], summary
    best = summary["best"]
    assert best["conditions"]["material"] == material
    assert abs(best["observables"]["pl_peak_nm"] - target) <= 1.0
    runs = Database(url).runs(1)
    start = next(d for n, d in Database(url).run_documents(runs[-1]["uid"]) if n == "start")
    recipe = start["recipe"]
    assert start["conditions"]["material"] == material
    assert (recipe["pb_source"], recipe["cation_source"]) == sources


def test_a_cspbbr3_campaign_asked_for_red_exits_2_naming_what_cspbbr3_reaches(run_qdlab, tmp_path):
    url = f"sqlite:///{tmp_path / 'red.db'}"
    red = write_config(tmp_path, target={"pl_peak_nm": 650.0, "tolerance_nm": 1.0})
    out = run_qdlab("campaign", "run", red, "--db", url)
    assert out.returncode == 2, out.stdout + out.stderr
    assert "target.pl_peak_nm: 650 nm is outside" in out.stderr
    assert "(CsPbBr3: about 4" in out.stderr and "to 5" in out.stderr  # blue-green only
    allowed = write_config(
        tmp_path, "open.yaml", space={**BASE["space"], "material": ["CsPbBr3", "CsPbI3"]},
        target={"pl_peak_nm": 650.0, "tolerance_nm": 1.0},
    )  # fmt: skip
    load_campaign(allowed)  # CsPbI3 beside it: 650 nm is reachable


def test_a_campaign_may_leave_the_material_to_the_planner(tmp_path):
    config = write_config(
        tmp_path,
        space={**BASE["space"], "material": ["CsPbBr3", "FAPbBr3"]},
        target={"pl_peak_nm": 500.0, "tolerance_nm": 1.0},
        planner={"kind": "botorch", "initial_points": 2},
        budget=12,
    )
    summary = CampaignRunner(Database("sqlite://"), load_campaign(config)).run()
    assert summary.reached_target
    assert summary.best["conditions"]["material"] in {"CsPbBr3", "FAPbBr3"}


def test_a_space_naming_a_material_the_lab_cannot_make_is_refused(tmp_path):
    lab = yaml.safe_load(Path(LAB).read_text())
    lab["reactor"].pop("materials")
    (tmp_path / "lab.yaml").write_text(yaml.safe_dump(lab))
    config = write_config(
        tmp_path, lab=str(tmp_path / "lab.yaml"), space={**BASE["space"], "material": ["CsPbI3"]}
    )
    with pytest.raises(Exception, match=r"space.material: material 'CsPbI3' has no precursors"):
        load_campaign(config)


def test_several_configs_run_in_turn_and_one_report_compares_them(run_qdlab, tmp_path):
    first = write_config(tmp_path, "random.yaml", budget=3)
    second = write_config(tmp_path, "sobol.yaml", budget=4, planner={"kind": "sobol"})
    url = f"sqlite:///{tmp_path / 'c.db'}"
    out = run_qdlab(
        "campaign", "run", first, second, "--db", url, "--report", str(tmp_path / "r"), "--json"
    )
    assert out.returncode == 0, out.stderr
    summaries = [json.loads(line) for line in out.stdout.splitlines()]
    assert [(s["campaign_id"], s["experiments"]) for s in summaries] == [(1, 3), (2, 4)]
    page = (tmp_path / "r" / "report.html").read_text()
    assert "1: test-campaign" in page and "<td>sobol</td>" in page
    assert (tmp_path / "r" / "comparison.png").stat().st_size > 10_000
    assert (tmp_path / "r" / "c1" / "report.html").exists()
    assert (tmp_path / "r" / "c2" / "report.html").exists()


def test_a_bad_config_among_several_refuses_them_all_before_anything_runs(run_qdlab, tmp_path):
    good = write_config(tmp_path, "good.yaml")
    bad = write_config(tmp_path, "bad.yaml", budget=0)
    url = f"sqlite:///{tmp_path / 'c.db'}"
    out = run_qdlab("campaign", "run", good, bad, "--db", url)
    assert out.returncode == 2 and "budget" in out.stderr
    assert not (tmp_path / "c.db").exists()


@pytest.mark.parametrize(
    "config", sorted(p.name for p in (ROOT / "configs" / "campaigns").glob("*.yaml"))
)
def test_every_shipped_campaign_config_loads(config):
    """What the README and the docs point people at is valid (its lab, its space, its code)."""
    loaded = load_campaign(ROOT / "configs" / "campaigns" / config)
    assert loaded.config.budget >= 1 and loaded.space.order

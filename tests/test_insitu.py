"""In-situ spectra during hot-injection growth: the dip probe, the hot mixture's lines and the
runs' ``insitu`` and ``baseline`` streams."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from bluesky import RunEngine
from bluesky.simulators import check_limits, summarize_plan
from ophyd.utils import LimitError

from db import Database
from devices import build_lab
from devices.cell import wavelength_grid
from devices.config import ConfigError, load_lab_config
from models.analysis import analyse_spectra
from models.optics import GAP_SHIFT_MEV_PER_K, HC_EV_NM, hot_population, pl_spectrum
from orchestrator.execution.plans import IN_SITU_STREAM, hot_injection_synthesis
from tests.conftest import ROOT, validate_documents
from tests.test_campaign import write_config

INSITU_LAB = str(ROOT / "configs" / "labs" / "sim-insitu.yaml")
MONITOR = "reactor_temperature_monitor"
WL = np.linspace(350.0, 650.0, 1201)
WL_OF_CELL = wavelength_grid(load_lab_config(INSITU_LAB).cell)
DOTS = {"edge_length_nm": 5.5, "size_dispersion": 0.08, "plqy": 0.8, "concentration": 1.0}


def _line(population) -> dict[str, float]:
    from models.optics import absorption_spectrum

    found = analyse_spectra(
        WL, absorption_spectrum(population, WL)[0], pl_spectrum(population, WL)[0]
    )
    return {k: float(v[0]) for k, v in found.items()}


def test_the_hot_mixture_emits_bluer_broader_and_weaker_than_its_product():
    cold, hot = _line(hot_population(DOTS, 25.0)), _line(hot_population(DOTS, 170.0))
    assert cold == pytest.approx(_line(DOTS))  # room temperature is the product itself
    shift_mev = 1e3 * (HC_EV_NM / hot["pl_peak_nm"] - HC_EV_NM / cold["pl_peak_nm"])
    assert shift_mev == pytest.approx(GAP_SHIFT_MEV_PER_K * 145.0, rel=0.1)
    assert 3.0 < hot["pl_fwhm_nm"] - cold["pl_fwhm_nm"] < 10.0  # LO-phonon broadening
    assert 0.1 < hot["plqy_est"] / cold["plqy_est"] < 0.4  # thermally quenched, reversibly


def _run(lab, conditions):
    RE = RunEngine({})
    docs: list = []
    RE.subscribe(lambda name, doc: docs.append((name, doc)))
    RE(hot_injection_synthesis(lab, conditions))
    return docs


def _stream(docs, stream: str) -> list[dict]:
    names = {d["uid"]: d["name"] for n, d in docs if n == "descriptor"}
    return [d["data"] for n, d in docs if n == "event" and names[d["descriptor"]] == stream]


def _pl_nm(data) -> float:
    found = analyse_spectra(
        WL_OF_CELL, np.asarray(data["cell_absorbance"]), np.asarray(data["cell_pl"])
    )
    return float(found["pl_peak_nm"][0])


def test_hot_injection_on_a_lab_with_a_probe_records_the_growth_in_its_own_stream():
    conditions = {"br_pb_ratio": 3.0, "temperature_c": 140.0, "ligand": "oa_olam", "time_s": 20.0}
    docs = _run(build_lab(load_lab_config(INSITU_LAB), seed=0), conditions)
    assert validate_documents(docs) == len(docs)
    insitu = _stream(docs, IN_SITU_STREAM)
    times = [e["reactor_growth_time"] for e in insitu]
    assert len(insitu) == 9  # every 2 s of growth while a reading still ends before the quench
    assert np.allclose(np.diff(times), 2.0, atol=0.05) and times[-1] < 20.0
    assert all(abs(e["reactor_temperature"] - 140.0) < 2.0 for e in insitu)
    (product,) = _stream(docs, "primary")
    pls = [_pl_nm(e) for e in insitu if math.isfinite(_pl_nm(e))]
    assert pls, "the dots emit before the quench"
    # the hot mixture is bluer than the cold product, by the gap's temperature shift
    assert 5.0 < _pl_nm(product) - pls[-1] < 12.0
    baseline = _stream(docs, "baseline")
    assert [round(b["reactor_temperature"]) for b in baseline] == [25, 140]


def test_the_heated_vessel_s_temperature_is_recorded_all_along_in_a_monitor_stream():
    conditions = {"br_pb_ratio": 12.0, "temperature_c": 160.0, "ligand": "oa_olam", "time_s": 30.0}
    lab = build_lab(load_lab_config(ROOT / "configs" / "labs" / "sim.yaml"), seed=0)
    docs = _run(lab, conditions)
    assert validate_documents(docs) == len(docs)
    names = {d["uid"]: d["name"] for n, d in docs if n == "descriptor"}
    monitor = [d for n, d in docs if n == "event" and names[d["descriptor"]] == MONITOR]
    temperatures = [e["data"]["reactor_temperature"] for e in monitor]
    stamps = np.array([e["timestamps"]["reactor_temperature"] for e in monitor])
    # from ambient up to the setpoint and held there through growth, on the lab's clock
    assert temperatures[0] == pytest.approx(25.0, abs=1.0)
    assert max(temperatures) == pytest.approx(160.0, abs=5.0)
    assert sum(abs(t - 160.0) < 2.0 for t in temperatures) >= 3  # growth at temperature
    rising = temperatures[: int(np.argmax(temperatures))]
    assert len(rising) >= 5 and np.all(np.diff(rising) >= 0)
    # sampled every monitor_interval_s (30 s), posted where it moved beyond the deadband
    gaps = np.diff(stamps[1:])
    assert np.allclose(gaps / 30.0, np.round(gaps / 30.0))
    assert np.all(np.abs(np.diff(temperatures[1:])) >= 0.5)
    # the monitor stops with the run: the readback has no subscriber left to sample for
    assert not lab.reactor.temperature.readback._callbacks["value"]
    count = len(docs)
    lab.timer.set(600).wait(1)
    assert len(docs) == count


def test_a_held_temperature_posts_nothing_new_to_a_monitor():
    # EPICS monitor semantics (MDEL): within the deadband, a sample is not posted
    lab = build_lab(load_lab_config(ROOT / "configs" / "labs" / "sim.yaml"), seed=0)
    readback = lab.reactor.temperature.readback
    posted: list[float] = []

    def post(value: float, **_: object) -> None:
        posted.append(value)

    readback.subscribe(post)
    lab.timer.set(300).wait(1)  # held at ambient: ten samples, none moved
    assert posted == [pytest.approx(25.0, abs=0.5)]
    lab.reactor.temperature.set(60.0).wait(1)  # heats: samples every 30 s are posted
    assert len(posted) >= 3 and posted[-1] > 50.0
    readback.clear_sub(post)
    count = len(posted)
    lab.reactor.temperature.set(90.0).wait(1)
    assert len(posted) == count  # no subscriber, no sampling


def test_flow_monitors_its_coil_and_larp_has_no_heater_to_monitor():
    from orchestrator.execution.plans import flow_synthesis, larp_synthesis

    lab = build_lab(load_lab_config(ROOT / "configs" / "labs" / "sim.yaml"), seed=0)
    for plan, conditions, monitored in [
        (flow_synthesis, {"br_pb_ratio": 12.0, "temperature_c": 150.0, "ligand": "oa_olam",
                          "residence_time_s": 20.0, "flow_ratio": 1.0}, {"flow_coil_monitor"}),
        (larp_synthesis, {"precursor_ul": 20.0, "ligand_ul": 10.0, "time_s": 60.0}, set()),
    ]:  # fmt: skip
        RE = RunEngine({})
        docs: list = []
        RE.subscribe(lambda name, doc, docs=docs: docs.append((name, doc)))
        RE(plan(lab, conditions))
        streams = {d["name"] for n, d in docs if n == "descriptor"}
        assert {s for s in streams if s.endswith("_monitor")} == monitored


def test_the_clock_samples_a_watch_at_its_period_on_the_thread_that_moves_it():
    import threading
    import time

    from devices.clock import VirtualClock

    clock = VirtualClock("fast", start=0.0)
    seen: list[float] = []
    threads: set[str] = set()

    def sample() -> None:
        seen.append(clock.now())
        threads.add(threading.current_thread().name)

    stop = clock.watch(5.0, sample)
    clock.advance(12.0)
    clock.advance(3.0)
    assert seen == [5.0, 10.0, 15.0] and clock.now() == 15.0
    assert threads == {threading.current_thread().name}
    stop()
    clock.advance(10.0)
    assert seen == [5.0, 10.0, 15.0]
    with pytest.raises(ValueError, match="period must be > 0"):
        clock.watch(0.0, lambda: None)

    # in realtime no thread of its own calls it (documents come from the RunEngine's thread)
    realtime = VirtualClock("realtime", speed=100.0)
    ticks: list[float] = []
    stop = realtime.watch(2.0, lambda: ticks.append(realtime.now()))  # 20 ms of wall time
    time.sleep(0.2)
    stop()
    assert ticks == []


def test_watching_changes_nothing_the_quench_fixes():
    conditions = {"br_pb_ratio": 8.0, "temperature_c": 165.0, "ligand": "oa_olam", "time_s": 15.0}
    watched = build_lab(load_lab_config(INSITU_LAB), seed=4)
    plain = build_lab(load_lab_config(ROOT / "configs" / "labs" / "sim.yaml"), seed=4)
    for lab in (watched, plain):
        _run(lab, conditions)
    assert watched.world.last_sample.components == plain.world.last_sample.components


def test_growth_is_seen_early_and_the_plan_summarises():
    conditions = {"br_pb_ratio": 3.0, "temperature_c": 140.0, "ligand": "oa_olam", "time_s": 8.0}
    config = load_lab_config(INSITU_LAB)
    config = config.model_copy(
        update={"reactor": config.reactor.model_copy(update={"in_situ_interval_s": 0.5})}
    )
    docs = _run(build_lab(config, seed=0), conditions)
    pls = [p for p in map(_pl_nm, _stream(docs, IN_SITU_STREAM)) if math.isfinite(p)]
    assert len(pls) >= 5 and pls[-1] - pls[0] > 1.0  # the dots grow: the line moves red
    summarize_plan(hot_injection_synthesis(build_lab(config), conditions))
    check_limits(hot_injection_synthesis(build_lab(config), conditions))


def test_the_spectrometer_views_only_what_it_has_a_fibre_to():
    lab = build_lab(load_lab_config(INSITU_LAB))
    with pytest.raises(
        LimitError, match=r"cell_view = 'flask' is not one of \['cell', 'reactor', 'plate'\]"
    ):
        lab.cell.view.set("flask")
    plain = build_lab(load_lab_config(ROOT / "configs" / "labs" / "sim.yaml"))
    with pytest.raises(LimitError, match=r"'reactor' is not one of \['cell'\]"):
        plain.cell.view.set("reactor")  # no probe in its flask
    assert lab.cell.view.get() == "cell" and lab.world.spectrometer_view == "cell"
    lab.cell.view.set("reactor").wait(1)
    assert lab.world.spectrometer_view == "reactor" and lab.world.cell_sample() is None  # no batch


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"reactor": {"in_situ_interval_s": 0.1}}, "reactor.in_situ_interval_s 0.1 s is shorter"),
        ({"reactor": {"in_situ_interval_s": -1}}, "in_situ_interval_s"),
    ],
)
def test_a_probe_the_lab_cannot_serve_is_refused(tmp_path, changes, message):
    import yaml

    path = tmp_path / "lab.yaml"
    path.write_text(
        yaml.safe_dump({"base": str(ROOT / "configs" / "labs" / "sim.yaml"), **changes})
    )
    with pytest.raises(ConfigError, match=message):
        load_lab_config(path)


def test_a_campaign_on_the_probe_lab_stores_the_streams(run_qdlab, tmp_path):
    url = f"sqlite:///{tmp_path / 'insitu.db'}"
    config = write_config(tmp_path, lab=INSITU_LAB, budget=3, stop_on_target=False)
    out = run_qdlab("campaign", "run", config, "--db", url)
    assert out.returncode == 0, out.stderr
    db = Database(url)
    for run in db.runs(1):
        docs = db.run_documents(run["uid"])
        validate_documents(docs)
        streams = {d["name"] for n, d in docs if n == "descriptor"}
        assert {"primary", "baseline", IN_SITU_STREAM, MONITOR} <= streams  # ("interruptions")
    # exported, every stream is there and every document validates with event-model
    jsonl, csv_path = tmp_path / "docs.jsonl", tmp_path / "grown.csv"
    for fmt, path in (("jsonl", jsonl), ("trajectories", csv_path)):
        out = run_qdlab("campaign", "export", "1", "--format", fmt, "--out", str(path),
                        "--db", url)  # fmt: skip
        assert out.returncode == 0, out.stderr
    import csv
    import json

    exported = [tuple(json.loads(line)) for line in jsonl.read_text().splitlines()]
    assert validate_documents(exported) == len(exported)
    names = {d["uid"]: d["name"] for n, d in exported if n == "descriptor"}
    in_situ = [d for n, d in exported if n == "event" and names[d["descriptor"]] == IN_SITU_STREAM]
    assert {MONITOR, "baseline", IN_SITU_STREAM} <= set(names.values())
    from orchestrator.execution.observe import trajectory_from_documents

    table = list(csv.DictReader(csv_path.open()))
    measured = [r for r in db.experiments(1) if r.status == "done"]
    points = sum(len(trajectory_from_documents(db.run_documents(r.run_uid))) for r in measured)
    assert 0 < len(table) == points <= len(in_situ)  # the measured experiments' readings
    assert {"experiment", "hot", "growth_time_s", "pl_peak_nm", "product_pl_nm"} <= set(table[0])
    assert {row["hot"] for row in table} == {"1"}  # the flask probe sees the hot mixture


def test_trajectories_are_analysed_and_drawn_in_the_report(run_qdlab, tmp_path):
    from orchestrator.execution.observe import trajectory_from_documents

    url = f"sqlite:///{tmp_path / 'grown.db'}"
    config = write_config(tmp_path, lab=INSITU_LAB, budget=3, stop_on_target=False)
    assert run_qdlab("campaign", "run", config, "--db", url).returncode == 0
    db = Database(url)
    done = [r for r in db.experiments(1) if r.status == "done"]
    assert done
    for r in done:
        points = trajectory_from_documents(db.run_documents(r.run_uid))
        assert len(points) == int((r.conditions["time_s"] - 0.4) // 2.0)
        lit = [p for p in points if math.isfinite(p["pl_peak_nm"])]
        assert lit and all(p["temperature_c"] > 100.0 for p in points)
        # the hot mixture is bluer than its quenched product
        assert lit[-1]["pl_peak_nm"] < r.observables["pl_peak_nm"]
        primary = [s for s in db.spectra(experiment_id=r.id, stream="primary")]
        assert [s.data_key for s in primary] == ["cell_absorbance", "cell_pl"]
        assert len(db.spectra(experiment_id=r.id)) == 2 + 2 * len(points)
    out = run_qdlab("campaign", "report", "1", "--db", url, "--out", str(tmp_path / "report"))
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "report" / "growth.png").stat().st_size > 10_000
    assert "Growth in situ" in (tmp_path / "report" / "report.html").read_text()


def test_the_planner_is_told_each_experiment_s_trajectory_and_gets_it_back_on_resume(tmp_path):
    import yaml

    from orchestrator.campaign.config import parse_campaign
    from orchestrator.campaign.restore import planner_history
    from orchestrator.campaign.runner import CampaignRunner

    db = Database(f"sqlite:///{tmp_path / 'told.db'}")
    space = {"br_pb_ratio": [2, 30], "temperature_c": [140, 200], "ligand": ["oa_olam"],
             "time_s": [20, 120]}  # fmt: skip
    path = write_config(tmp_path, lab=INSITU_LAB, budget=2, space=space, stop_on_target=False,
                        trajectory_answers_time=True)  # fmt: skip
    config = yaml.safe_load(Path(path).read_text())
    runner = CampaignRunner(db, parse_campaign(config, "", ROOT))
    assert runner.planner.trajectory_answers == "time_s"  # the campaign said so
    result = runner.run()
    told = [o for o in runner.planner.observations if not o.failed]
    assert len(told) == 2
    for observation in told:
        times = [p["growth_time_s"] for p in observation.trajectory]
        assert len(times) >= 2 and np.all(np.diff(times) > 0)
        assert times[-1] <= observation.conditions["time_s"]
        assert {"pl_peak_nm", "temperature_c"} <= set(observation.trajectory[0])
    # a resumed planner is told the same trajectories, read back from the stored runs
    history = planner_history(db.experiments(result.campaign_id), db)
    restored = [o.trajectory for o in history.observations]
    assert [len(t) for t in restored] == [len(o.trajectory) for o in told]
    for again, live in zip(restored, (o.trajectory for o in told), strict=True):
        for a, b in zip(again, live, strict=True):
            assert a.keys() == b.keys()
            assert np.allclose(list(a.values()), list(b.values()), equal_nan=True)
    # without the database (a lab with no probe) there is nothing to read
    assert all(o.trajectory == () for o in planner_history(db.experiments(1)).observations)


@pytest.mark.parametrize(
    ("lab", "space", "message"),
    [
        (None, {}, "trajectory_answers_time: lab 'sim' reads route hot_injection only at the end"
         ".*set reactor.in_situ_interval_s"),
        (INSITU_LAB, {"time_s": [60, 60]}, r"space.time_s must be a range \[low, high\]"),
    ],
)  # fmt: skip
def test_a_trajectory_answers_the_time_only_where_the_lab_reads_in_situ(
    tmp_path, lab, space, message
):
    from orchestrator.campaign.config import ConfigError, load_campaign

    base = {"br_pb_ratio": [2, 30], "temperature_c": [140, 200], "ligand": ["oa_olam"],
            "time_s": [20, 120]}  # fmt: skip
    path = write_config(tmp_path, **({"lab": lab} if lab else {}), space={**base, **space},
                        trajectory_answers_time=True)  # fmt: skip
    with pytest.raises(ConfigError, match=message):
        load_campaign(path)
    plain = write_config(tmp_path, **({"lab": lab} if lab else {}), space=base)
    assert load_campaign(plain).config.trajectory_answers_time is False


def test_a_flow_synthesis_sweeps_shorter_residence_times_into_its_growth_curve():
    from orchestrator.execution.observe import observables_from_documents, trajectory_from_documents
    from orchestrator.execution.plans import flow_synthesis, sweep_residence_times

    # oleylphosphonic acid at 100 C grows slowly (minutes): the sweep follows it
    conditions = {"br_pb_ratio": 2.5, "temperature_c": 100.0, "ligand": "olpa",
                  "residence_time_s": 120.0, "flow_ratio": 1.0}  # fmt: skip
    lab = build_lab(load_lab_config(INSITU_LAB), seed=0)
    assert sweep_residence_times(lab, conditions) == pytest.approx([24.0, 48.0, 72.0, 96.0])
    RE = RunEngine({})
    docs: list = []
    RE.subscribe(lambda name, doc: docs.append((name, doc)))
    RE(flow_synthesis(lab, conditions))
    assert validate_documents(docs) == len(docs)
    points = trajectory_from_documents(docs)
    assert [round(p["growth_time_s"], 3) for p in points] == [24.0, 48.0, 72.0, 96.0]
    assert not any(p["hot"] for p in points)  # product that left the coil, not a hot mixture
    assert all(abs(p["temperature_c"] - 100.0) < 2.0 for p in points)
    # the dots grow along the coil: longer residence, redder, up to the measurement itself
    peaks = [p["pl_peak_nm"] for p in points] + [observables_from_documents(docs)["pl_peak_nm"]]
    assert np.all(np.diff(peaks) > 0) and peaks[-1] - peaks[0] > 10.0
    # a residence time faster than the pumps can go is left out of the sweep (4 s of 20 s
    # needs the Cs pump at 7,500 uL/min, above its 6,000)
    faster = {**conditions, "residence_time_s": 20.0}
    assert sweep_residence_times(lab, faster) == pytest.approx([8.0, 12.0, 16.0])
    plain = build_lab(load_lab_config(ROOT / "configs" / "labs" / "sim.yaml"))
    assert sweep_residence_times(plain, conditions) == []


@pytest.mark.slow
def test_the_dashboard_draws_each_experiment_s_growth_and_the_campaign_s_overlaid(
    run_qdlab, spawn, tmp_path
):
    from fastapi.testclient import TestClient

    from orchestrator.dashboard import create_app

    url = f"sqlite:///{tmp_path / 'watched.db'}"
    config = write_config(tmp_path, lab=INSITU_LAB, budget=3, stop_on_target=False)
    assert run_qdlab("campaign", "run", config, "--db", url).returncode == 0
    db = Database(url)
    done = [r for r in db.experiments(1) if r.status == "done"]
    client = TestClient(create_app(url), base_url="http://127.0.0.1")
    overlaid = client.get("/api/campaigns/1/growth").json()
    assert [g["number"] for g in overlaid] == [r.number for r in done]
    first = overlaid[0]
    assert first["hot"] is True and len(first["growth_time_s"]) == len(first["pl_peak_nm"]) > 2
    assert first["product_pl_nm"] == pytest.approx(done[0].observables["pl_peak_nm"])
    detail = client.get(f"/api/campaigns/1/experiments/{done[0].number}").json()
    assert detail["growth"]["pl_peak_nm"] == first["pl_peak_nm"]
    temperature = detail["temperature"]["temperature_c"]
    assert temperature[0] < 30.0 and max(temperature) > 100.0  # heated up from ambient
    # a campaign on a lab that reads nothing in situ has nothing to overlay
    plain = f"sqlite:///{tmp_path / 'plain.db'}"
    assert run_qdlab("campaign", "run", write_config(tmp_path, "p.yaml", budget=1),
                     "--db", plain).returncode == 0  # fmt: skip
    empty = TestClient(create_app(plain), base_url="http://127.0.0.1")
    assert empty.get("/api/campaigns/1/growth").json() == []


@pytest.mark.slow
def test_a_chemist_sees_the_growth_curves_in_the_browser(run_qdlab, spawn, tmp_path, browser):
    from tests.test_dashboard import _serve

    url = f"sqlite:///{tmp_path / 'watched.db'}"
    config = write_config(tmp_path, lab=INSITU_LAB, budget=2, stop_on_target=False)
    assert run_qdlab("campaign", "run", config, "--db", url).returncode == 0
    number = next(r.number for r in Database(url).experiments(1) if r.status == "done")
    address = _serve(spawn, url, token=None)
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{address}/campaigns/1")
    page.wait_for_selector("#growth .main-svg", timeout=10000)
    page.goto(f"{address}/campaigns/1/experiments/{number}")
    page.wait_for_selector("#growth .main-svg", timeout=10000)
    page.wait_for_selector("#temperature .main-svg", timeout=10000)
    page.screenshot(path=str(tmp_path / "experiment.png"), full_page=True)
    assert errors == []


def test_larp_reads_the_growing_well_through_the_plate_reader():
    from orchestrator.execution.observe import observables_from_documents, trajectory_from_documents
    from orchestrator.execution.plans import larp_synthesis

    conditions = {"precursor_ul": 60.0, "ligand_ul": 5.0, "time_s": 120.0}
    products = []
    for config in (INSITU_LAB, ROOT / "configs" / "labs" / "sim.yaml"):
        lab = build_lab(load_lab_config(config), seed=3)
        RE = RunEngine({})
        docs: list = []
        RE.subscribe(lambda name, doc, docs=docs: docs.append((name, doc)))
        RE(larp_synthesis(lab, conditions))
        assert validate_documents(docs) == len(docs)
        products.append(lab.world.last_sample.components)
        if config == INSITU_LAB:
            points = trajectory_from_documents(docs)
            ages = np.array([p["growth_time_s"] for p in points])
            assert len(points) >= 15 and np.all(np.diff(ages) > 0) and ages[-1] < 120.0
            assert np.allclose(np.diff(ages), 5.0, atol=0.1)  # every 5 s once mixed
            assert not any(p["hot"] for p in points)  # room temperature: what it will measure
            lit = [p["pl_peak_nm"] for p in points if math.isfinite(p["pl_peak_nm"])]
            # the dots grow: the line moves red, towards the product the cell then measures
            assert lit[-1] - lit[0] > 3.0
            assert observables_from_documents(docs)["pl_peak_nm"] == pytest.approx(lit[-1], abs=1.5)
            assert lab.cell.view.get() == "cell"
    # reading the well changes nothing it makes
    (watched,), (plain,) = products
    assert watched[1] == pytest.approx(plain[1], rel=1e-6)

"""The campaign database on SQLite and on a real PostgreSQL server."""

import csv
import json
import os
import signal
import subprocess
import sys
import threading
import time

import bluesky.plans as bp
import numpy as np
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from db import Database, DatabaseError, DocumentWriter, export_csv, export_jsonl, safe_url
from db.database import dumps, resolve_url
from db.schema import Base
from db.synthetic import synthetic_run
from tests.conftest import ROOT, primary_events, validate_documents

HOT = {"br_pb_ratio": 12.0, "temperature_c": 150.0, "ligand": "oa_olam", "time_s": 10.0}


def same_documents(a, b):
    """Equal as JSON (NaN equals NaN, numpy values as their JSON form)."""
    text = lambda docs: [dumps([n, d]) for n, d in docs]  # noqa: E731
    return text(a) == text(b)


def new_campaign(db, name="test", space=None):
    config = {"name": name, "route": "hot_injection", "space": space or {"br_pb_ratio": [2, 30]}}
    return db.create_campaign(
        name,
        "hot_injection",
        {"campaign": config, "lab": {}},  # as the campaign runner stores it
        json.dumps(config),
        {"pl_peak_nm": 470.0, "tolerance_nm": 1.0},
    )


def test_a_new_database_is_migrated_to_a_schema_equal_to_the_models(db_url):
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from db.database import _HEAD, _MIGRATIONS

    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    assert ScriptDirectory.from_config(cfg).get_current_head() == _HEAD
    db = Database(db_url)
    assert db.revision() == _HEAD
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []
    Database(db_url)  # opening again is a no-op
    assert db.revision() == _HEAD


def test_documents_round_trip_from_the_run_engine(db_url, lab, RE):
    db = Database(db_url)
    RE.subscribe(DocumentWriter(db))
    (uid,) = RE(bp.count([lab.cell, lab.reactor.temperature], num=3))
    stored = db.run_documents(uid)
    assert same_documents(stored, RE.docs)
    assert validate_documents(stored) == 6
    spectra = db.spectra(uid)
    assert [s.data_key for s in spectra] == ["cell_absorbance", "cell_pl"] * 3
    event = primary_events(RE.docs)[1]
    assert np.array_equal(spectra[3].values, event["data"]["cell_pl"])
    assert np.array_equal(spectra[3].wavelengths_nm, lab.cell.wavelengths.get())
    run = db.runs()[0]
    assert run["complete"] and run["exit_status"] == "success" and run["plan_name"] == "count"


def test_runs_link_to_their_campaign_and_experiment_through_metadata(db_url, lab, RE):
    db = Database(db_url)
    cid = new_campaign(db)
    eid = db.add_experiment(
        cid,
        0,
        HOT,
        planner_name="random",
        planner_version="1",
        seed=3,
        acquisition_value=float("nan"),
        predicted_mean=470.2,
    )
    RE.subscribe(DocumentWriter(db))
    (uid,) = RE(bp.count([lab.cell]), campaign_id=cid, experiment_index=0)
    db.add_observation(
        eid,
        {
            "pl_peak_nm": 469.5,
            "pl_fwhm_nm": 22.0,
            "abs_peak_nm": float("nan"),
            "edge_length_est_nm": 3.6,
            "plqy_est": 0.7,
            "platelets": 0.0,
        },
        run_uid=uid,
    )
    (row,) = db.experiments(cid)
    assert row.conditions == HOT and row.seed == 3 and row.predicted_mean == 470.2
    assert row.acquisition_value is None  # NaN is stored as not-a-value
    assert row.observables["pl_peak_nm"] == 469.5 and row.observables["abs_peak_nm"] is None
    assert row.observables["platelets"] == 0.0 and row.run_uid == uid
    assert db.runs(cid)[0]["experiment_id"] == eid
    assert [r.id for r in db.all_observations("hot_injection")] == [eid]
    assert db.all_observations("flow") == []
    assert db.campaigns()[0]["experiments"] == 1
    assert [s.data_key for s in db.spectra(experiment_id=eid)] == ["cell_absorbance", "cell_pl"]


def test_jsonl_export_replays_the_documents_in_order(db_url, lab, RE, tmp_path):
    db = Database(db_url)
    cid = new_campaign(db)
    RE.subscribe(DocumentWriter(db))
    RE(bp.count([lab.cell], num=2), campaign_id=cid)
    RE(bp.scan([lab.cell], lab.reactor.temperature, 100, 110, 2), campaign_id=cid)
    RE(bp.count([lab.cell]))  # not part of the campaign
    path = tmp_path / "campaign.jsonl"
    assert export_jsonl(db, cid, path) == 5 + 5
    lines = [tuple(json.loads(line)) for line in path.read_text().splitlines()]
    assert validate_documents(lines) == 10
    assert same_documents(lines, RE.docs[:10])


def test_csv_export_has_one_row_per_experiment(db_url, tmp_path):
    db = Database(db_url)
    cid = new_campaign(db, space={"br_pb_ratio": [2, 30], "temperature_c": [60, 200]})
    measured = [  # a cube sample (broad, Stokes-shifted), a platelet one (narrow, close)
        {"pl_peak_nm": 480.0, "pl_fwhm_nm": 22.0, "abs_peak_nm": 468.0},
        {"pl_peak_nm": 479.0, "pl_fwhm_nm": 10.5, "abs_peak_nm": 475.0},
        {"pl_peak_nm": 478.0},
    ]
    for i in range(3):
        eid = db.add_experiment(
            cid, i, {**HOT, "br_pb_ratio": 4.0 + i}, planner_name="sobol", planner_version="1"
        )
        db.add_observation(eid, measured[i])
        db.set_experiment_status(eid, "done")
    db.set_experiment_status(db.experiment_id(cid, 2), "failed", "pump stalled")
    path = tmp_path / "experiments.csv"
    assert export_csv(db, cid, path) == 3
    rows = path.read_text().splitlines()
    assert rows[0].startswith("experiment,status,br_pb_ratio,temperature_c,pl_peak_nm")
    assert rows[3].startswith("3,failed,6.0,150.0,478.0") and "pump stalled" in rows[3]
    table = list(csv.DictReader(path.open()))
    assert [r["shape"] for r in table] == ["cubes", "platelets", ""]  # as the spectra tell


def test_a_run_without_its_stop_document_shows_as_incomplete(db_url):
    db = Database(db_url)
    writer = DocumentWriter(db)
    docs = synthetic_run(events=4)
    for name, doc in docs[:-1]:  # the stop never comes
        writer(name, doc)
    run = db.runs()[0]
    assert not run["complete"] and run["stop_time"] is None
    assert len(db.run_documents(run["uid"])) == 6


def test_two_writers_on_one_database_lose_and_mix_nothing(db_url):
    db = Database(db_url)
    campaigns = [new_campaign(db, f"c{i}") for i in range(2)]
    runs = [
        synthetic_run(events=60, points=512, metadata={"campaign_id": c}, seed=c) for c in campaigns
    ]
    errors = []

    def write(docs):
        try:
            writer = DocumentWriter(Database(db_url))
            for name, doc in docs:
                writer(name, doc)
            writer.close()
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(docs,)) for docs in runs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    for cid, docs in zip(campaigns, runs, strict=True):
        assert same_documents(list(db.campaign_documents(cid)), docs)


def test_a_reader_sees_consistent_prefixes_while_a_run_is_written(db_url):
    Database(db_url)  # create the schema before the two connections race
    docs = synthetic_run(events=200, points=256)
    uid = docs[0][1]["uid"]
    done = threading.Event()

    def write():
        writer = DocumentWriter(Database(db_url))
        for name, doc in docs:
            writer(name, doc)
        writer.close()
        done.set()

    thread = threading.Thread(target=write)
    thread.start()
    seen = []
    reader = Database(db_url, migrate=False)
    while not done.is_set():
        stored = reader.run_documents(uid) if reader.runs() else []
        assert same_documents(stored, docs[: len(stored)])
        seen.append(len(stored))
    thread.join()
    assert same_documents(reader.run_documents(uid), docs)
    assert len(set(seen)) > 1  # the reader really read during the write


KILL_SCRIPT = """
import sys
import bluesky.plans as bp
from bluesky import RunEngine
from devices import build_lab
from db import Database, DocumentWriter
RE = RunEngine({})
RE.subscribe(DocumentWriter(Database(sys.argv[1])))
RE(bp.count([build_lab().cell], num=1_000_000))
"""


def test_a_writer_killed_mid_run_leaves_a_sound_database_with_the_run_incomplete(tmp_path):
    url = f"sqlite:///{tmp_path / 'killed.db'}"
    Database(url)
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, url], cwd=ROOT)
    reader = Database(url, migrate=False)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        runs = reader.runs()
        if runs and len(reader.run_documents(runs[0]["uid"])) > 50:
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    reopened = Database(url)
    assert reopened.integrity_check()
    (run,) = reopened.runs()
    assert not run["complete"]
    stored = reopened.run_documents(run["uid"])
    assert len(stored) > 50
    assert [n for n, _ in stored[:2]] == ["start", "descriptor"]
    assert all(n == "event" for n, _ in stored[2:])
    assert validate_documents(stored) == len(stored)


def test_urls_resolve_from_flag_then_environment_then_default(monkeypatch):
    monkeypatch.delenv("QDLAB_DB", raising=False)
    assert resolve_url(None) == "sqlite:///qdlab.db"
    monkeypatch.setenv("QDLAB_DB", "sqlite:///from_env.db")
    assert resolve_url(None) == "sqlite:///from_env.db"
    assert resolve_url("sqlite:///flag.db") == "sqlite:///flag.db"


def test_a_bare_path_is_a_sqlite_file(tmp_path):
    path = tmp_path / "runs.db"
    assert resolve_url(str(path)) == f"sqlite:///{path}"
    Database(str(path)).close()
    assert path.is_file()


def test_passwords_never_appear_in_messages():
    url = "postgresql+psycopg://lab:s3cret@127.0.0.1:1/qdlab"
    assert "s3cret" not in safe_url(url) and "***" in safe_url(url)
    with pytest.raises(DatabaseError) as info:
        Database(url)
    assert "s3cret" not in str(info.value) and "cannot connect" in str(info.value)


def test_unknown_campaigns_are_reported(db_url):
    with pytest.raises(DatabaseError, match="no campaign 42"):
        Database(db_url).campaign(42)


def test_cli_upgrades_and_exports(run_qdlab, tmp_path):
    from db.database import _HEAD

    url = f"sqlite:///{tmp_path / 'cli.db'}"
    out = run_qdlab("db", "upgrade", "--db", url)
    assert out.returncode == 0 and f"schema empty -> {_HEAD}" in out.stdout
    db = Database(url)
    cid = new_campaign(db)
    db.add_experiment(cid, 0, HOT, planner_name="random", planner_version="1")
    out = run_qdlab(
        "campaign",
        "export",
        str(cid),
        "--format",
        "csv",
        "--out",
        str(tmp_path / "e.csv"),
        "--db",
        url,
    )
    assert out.returncode == 0 and (tmp_path / "e.csv").read_text().count("\n") == 2
    bad = run_qdlab("campaign", "export", "99", "--out", str(tmp_path / "x"), "--db", url)
    assert bad.returncode == 2 and bad.stderr.strip() == f"error: no campaign 99 in {url}"
    bad = run_qdlab("campaign", "export", str(cid), "--format", "xml", "--out", "x", "--db", url)
    assert bad.returncode == 2 and "jsonl, csv" in bad.stderr

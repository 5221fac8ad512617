"""Runs where bluesky users look for data: ``--tiled URL`` writes every run to a real tiled
catalog (``tiled serve`` on loopback) beside QDLab's database, which stays the source of truth."""

from __future__ import annotations

import numpy as np
import pytest

from db import Database
from tests.conftest import ROOT
from tests.test_campaign import write_config


def test_a_campaign_run_with_tiled_is_read_back_with_the_tiled_client(
    tiled_server, run_qdlab, tmp_path
):
    from tiled.client import from_uri
    from tiled.queries import Key

    url = f"sqlite:///{tmp_path / 'lab.db'}"
    insitu_lab = str(ROOT / "configs" / "labs" / "sim-insitu.yaml")  # every stream, in tiled too
    config = write_config(tmp_path, lab=insitu_lab, budget=3, stop_on_target=False)
    out = run_qdlab("campaign", "run", config, "--db", url, "--tiled", tiled_server)
    assert out.returncode == 0, out.stderr
    db = Database(url)
    runs = db.runs(1)
    assert len(runs) == 3

    catalog = from_uri(tiled_server)
    found = catalog.search(Key("start.campaign_id") == 1)  # metadata searchable by campaign
    assert sorted(found) == sorted(r["uid"] for r in runs)
    for run in runs:
        stored = {sp.data_key: sp for sp in db.spectra(run["uid"], stream="primary")}
        primary = catalog[run["uid"]]["primary"]
        for key in ("cell_pl", "cell_absorbance"):
            np.testing.assert_array_equal(primary[key].read()[-1], stored[key].values)
        # the whole stream in one read: spectra as 2-D float arrays beside the scalars
        combined = primary.read()
        assert combined["cell_pl"].dtype == np.float64
        assert combined["cell_pl"].shape == (len(combined["time"]), len(stored["cell_pl"].values))
        np.testing.assert_array_equal(combined["cell_pl"].values[-1], stored["cell_pl"].values)
        assert combined["cell_pl_peak"].dtype == np.float64
        grown = [sp.values for sp in db.spectra(run["uid"], stream="insitu")
                 if sp.data_key == "cell_pl"]  # fmt: skip
        np.testing.assert_array_equal(catalog[run["uid"]]["insitu"]["cell_pl"].read(), grown)
        assert {"baseline", "reactor_temperature_monitor"} <= set(catalog[run["uid"]])
        start = catalog[run["uid"]].metadata["start"]
        assert (
            start["conditions"]
            == next(d for n, d in db.run_documents(run["uid"]) if n == "start")["conditions"]
        )


def test_an_unreachable_catalog_is_one_line_before_anything_is_written(run_qdlab, tmp_path):
    pytest.importorskip("tiled.client")
    url = f"sqlite:///{tmp_path / 'lab.db'}"
    config = write_config(tmp_path, budget=2)
    out = run_qdlab("campaign", "run", config, "--db", url, "--tiled", "http://127.0.0.1:9")
    assert out.returncode == 2, out.stdout + out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --tiled http://127.0.0.1:9")
    assert Database(url).campaigns() == []


@pytest.mark.slow
def test_a_workcell_served_with_tiled_writes_its_runs_there(tiled_server, redis_server, tmp_path):
    from tiled.client import from_uri

    from tests.conftest import WorkcellServer, qdlab, wait_for
    from tests.test_workcells import campaign_file

    url = f"sqlite:///{tmp_path / 'lab.db'}"
    workcell = WorkcellServer("A", url, redis_server.address, tiled=tiled_server).start()
    try:
        config = campaign_file(tmp_path, [{"name": "A"}], budget=2)
        out = qdlab("campaign", "run", config, "--db", url)
        assert out.returncode == 0, out.stderr
    finally:
        workcell.stop()
    runs = Database(url).runs(1)
    catalog = from_uri(tiled_server)
    # the workcell publishes each run once it has stopped, on a thread of its own
    wait_for(lambda: len(runs) == 2 and all(r["uid"] in catalog for r in runs), 30, "runs")
    assert catalog[runs[0]["uid"]].metadata["start"]["workcell"] == "A"


def test_an_ipython_session_with_tiled_writes_there_too(tiled_server, tmp_path):
    import os
    import subprocess
    import sys

    from tiled.client import from_uri

    from tests.conftest import ROOT

    script = (
        "from orchestrator.session import *\n"
        "(uid,) = RE(hot_injection_synthesis(lab, dict(br_pb_ratio=12, temperature_c=140, "
        "ligand='oa_olam', time_s=10)))\n"
        "print('uid', uid)\n"
    )
    env = {
        **os.environ,
        "QDLAB_DB": f"sqlite:///{tmp_path / 's.db'}",
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "QDLAB_TILED": tiled_server,  # what `qdlab ipython --tiled URL` sets
    }
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr
    uid = out.stdout.split("uid ")[-1].strip()
    pl = from_uri(tiled_server)[uid]["primary"]["cell_pl"].read()[-1]
    stored = {sp.data_key: sp.values for sp in Database(env["QDLAB_DB"]).spectra(uid)}
    np.testing.assert_array_equal(pl, stored["cell_pl"])


def test_runs_the_catalog_missed_while_down_are_published_when_it_returns(tiled, RE, lab):
    """The catalog goes away under a session: the runs go on (QDLab's database is the truth),
    the sink keeps them, and they are in the catalog once it answers again."""
    import bluesky.plans as bp
    from tiled.client import from_uri

    from db.tiled import TiledSink

    sink = TiledSink(tiled.url)
    RE.subscribe(sink)
    (first,) = RE(bp.count([lab.cell]))
    assert sink.close() == [] and first in from_uri(tiled.url)
    tiled.stop()
    missed = [RE(bp.count([lab.cell], num=2))[0] for _ in range(2)]  # nothing waits on it
    assert sink.close() == missed  # kept, not lost
    tiled.start()  # back (as --temp: empty)
    assert sink.close() == []
    catalog = from_uri(tiled.url)
    for uid in missed:
        assert catalog[uid]["primary"].read()["cell_pl"].shape[0] == 2


def test_publish_backfills_a_campaign_run_without_tiled_once(tiled, run_qdlab, tmp_path):
    from tiled.client import from_uri

    url = f"sqlite:///{tmp_path / 'lab.db'}"
    config = write_config(tmp_path, budget=3, stop_on_target=False)
    assert run_qdlab("campaign", "run", config, "--db", url).returncode == 0
    out = run_qdlab("campaign", "publish", "1", "--tiled", tiled.url, "--db", url)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"campaign 1: 3 run(s) written to {tiled.url}, 0 already there"
    catalog = from_uri(tiled.url)
    db = Database(url)
    for run in db.runs(1):
        stored = {sp.data_key: sp.values for sp in db.spectra(run["uid"], stream="primary")}
        np.testing.assert_array_equal(
            catalog[run["uid"]]["primary"].read()["cell_pl"].values[-1], stored["cell_pl"]
        )
        assert "stop" in catalog[run["uid"]].metadata
    again = run_qdlab("campaign", "publish", "1", "--tiled", tiled.url, "--db", url)
    assert again.stdout.strip().endswith("0 run(s) written to " + tiled.url + ", 3 already there")
    nowhere = run_qdlab("campaign", "publish", "1", "--tiled", "http://127.0.0.1:9", "--db", url)
    assert nowhere.returncode == 2 and nowhere.stderr.startswith(
        "error: --tiled http://127.0.0.1:9"
    )

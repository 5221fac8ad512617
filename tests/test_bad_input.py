"""Every bad input is refused cleanly: exit 2, one line naming it, nothing written; and user
code is imported only from a config the user passed, never from what the database holds."""

import os
import textwrap

import pytest
import yaml

from benchmarks.bad_inputs import CAMPAIGN, hand_written
from db import Database
from tests.conftest import ROOT, qdlab

CANARY = textwrap.dedent("""
    import os, pathlib
    pathlib.Path(os.environ["QDLAB_CANARY"]).write_text("imported")
    from models.synthesis import hot_injection_outcome

    def outcome(conditions, rng):
        return hot_injection_outcome(conditions, rng)
""")


def _snapshot(url: str) -> list:
    db = Database(url, migrate=False)
    return [
        (c["id"], c["status"], c["experiments"], c["config"]["campaign"]["budget"])
        for c in db.campaigns()
    ] + [len(db.runs())]


@pytest.fixture(scope="module")
def lab_db(tmp_path_factory):
    """A database with a completed 2-experiment campaign (1) and one run with user code (2)."""
    tmp = tmp_path_factory.mktemp("bad")
    url = f"sqlite:///{tmp / 'lab.db'}"
    (tmp / "user_chem.py").write_text(CANARY)
    base = tmp / "c.yaml"
    base.write_text(yaml.safe_dump(CAMPAIGN))
    user = tmp / "u.yaml"
    user.write_text(
        yaml.safe_dump({**CAMPAIGN, "simulator": {"outcome_model": "user_chem:outcome"}})
    )
    env = {**os.environ, "QDLAB_DB": url}
    assert qdlab("campaign", "run", str(base), env=env).returncode == 0
    env_code = {**env, "PYTHONPATH": str(tmp), "QDLAB_CANARY": str(tmp / "canary")}
    made = qdlab("campaign", "run", str(user), env=env_code)
    assert made.returncode == 0, made.stderr
    (tmp / "canary").unlink()
    return tmp, url


def test_every_known_bad_input_exits_2_with_one_line_and_writes_nothing(lab_db):
    tmp, url = lab_db
    before = _snapshot(url)
    env = {**os.environ, "QDLAB_DB": url, "HOME": str(tmp)}
    failures = []
    for case in hand_written(tmp / "inputs", url):
        out = qdlab(*case.args, env={**env, **dict(case.env)}, cwd=tmp)
        lines = out.stderr.strip().splitlines()
        clean = (
            out.returncode == 2
            and len(lines) == 1
            and "Traceback" not in out.stderr
            and case.expect in lines[0]
        )
        if not clean:
            failures.append((case.name, out.returncode, out.stderr[-400:]))
    assert failures == []
    assert _snapshot(url) == before
    assert not (tmp / "inputs" / "report-9999").exists()  # refused before making the folder
    assert not (tmp / "inputs" / "typo").exists() and not (tmp / "inputs" / "typo.db").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_an_unreadable_config_is_refused(tmp_path):
    path = tmp_path / "secret.yaml"
    path.write_text(yaml.safe_dump(CAMPAIGN))
    path.chmod(0)
    out = qdlab("campaign", "run", str(path))
    assert out.returncode == 2 and "cannot be read (permission denied)" in out.stderr


def test_code_named_in_the_database_is_never_imported(lab_db):
    tmp, url = lab_db
    canary = tmp / "canary"
    env = {**os.environ, "PYTHONPATH": str(tmp), "QDLAB_CANARY": str(canary)}
    for args in (("campaign", "resume", "2", "--budget", "3"), ("replay", "2")):
        out = qdlab(*args, "--db", url, env=env)
        assert out.returncode == 2 and "--outcome-model user_chem:outcome" in out.stderr
        assert not canary.exists(), args  # importable, yet not imported
    # named again by the user, it is used
    out = qdlab(
        "campaign",
        "resume",
        "2",
        "--budget",
        "3",
        "--outcome-model",
        "user_chem:outcome",
        "--db",
        url,
        env=env,
    )
    assert out.returncode == 0, out.stderr
    assert canary.exists()


def test_a_rejected_config_never_imports_its_outcome_model(tmp_path):
    (tmp_path / "chem_probe.py").write_text(CANARY)
    cfg = tmp_path / "c.yaml"
    bad = {**CAMPAIGN, "budget": 0, "simulator": {"outcome_model": "chem_probe:outcome"}}
    cfg.write_text(yaml.safe_dump(bad))
    canary = tmp_path / "canary"
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "QDLAB_CANARY": str(canary)}
    out = qdlab("campaign", "run", str(cfg), "--db", f"sqlite:///{tmp_path / 'x.db'}", env=env)
    assert out.returncode == 2 and "budget" in out.stderr
    assert not canary.exists() and not (tmp_path / "x.db").exists()


def test_help_screens_read_like_a_normal_cli():
    out = qdlab("campaign", "run", "--help", env={**os.environ, "COLUMNS": "120"})
    assert out.returncode == 0
    assert "<bool>" not in out.stdout and "{config}" not in out.stdout
    assert "CONFIG" in out.stdout and "campaign YAML" in out.stdout


def test_stored_escape_sequences_and_markup_are_shown_not_obeyed_in_the_terminal(tmp_path):
    url = f"sqlite:///{tmp_path / 'esc.db'}"
    db = Database(url)
    name = "\x1b[2J\x1b[31mred[bold]loud[/bold]"
    config = {"campaign": {"space": {"br_pb_ratio": [2, 30]}}}
    cid = db.create_campaign(name, "hot_injection", config, "", {"pl_peak_nm": 470.0})
    db.add_experiment(cid, None, {"br_pb_ratio": 5.0}, planner_name=name, planner_version="1")
    for args in (("campaign", "list"), ("campaign", "show", "1")):
        out = qdlab(*args, "--db", url, env={**os.environ, "COLUMNS": "300"})
        assert out.returncode == 0, out.stderr
        assert "\x1b" not in out.stdout
        assert "\\x1b[2J\\x1b[31mred[bold]loud[/bold]" in out.stdout


def test_lab_configs_chain_their_bases_and_a_cycle_is_refused(tmp_path):
    from devices.config import ConfigError, load_lab_config

    sim = str(ROOT / "configs" / "labs" / "sim-insitu.yaml")  # itself based on sim.yaml
    (tmp_path / "mine.yaml").write_text(
        yaml.safe_dump({"base": sim, "name": "mine", "reactor": {"max_temperature_c": 190}})
    )
    (tmp_path / "top.yaml").write_text(yaml.safe_dump({"base": "mine.yaml", "name": "top"}))
    lab = load_lab_config(tmp_path / "top.yaml")
    assert lab.name == "top" and lab.reactor.max_temperature_c == 190  # from mine.yaml
    assert lab.reactor.in_situ_interval_s == 2.0 and lab.flow.sweep_points == 4  # sim-insitu
    assert "pbbr2" in lab.robot.deck  # sim.yaml's deck, at the root of the chain
    (tmp_path / "a.yaml").write_text(yaml.safe_dump({"base": "b.yaml"}))
    (tmp_path / "b.yaml").write_text(yaml.safe_dump({"base": "a.yaml"}))
    with pytest.raises(ConfigError, match=r"comes back to a file \(a.yaml -> b.yaml -> a.yaml\)"):
        load_lab_config(tmp_path / "a.yaml")


def test_a_database_server_not_there_is_exit_3_and_libpq_urls_are_understood():
    """README: exit code 3 is "database unreachable"; ``postgres://`` and ``postgresql://``
    (as libpq, Heroku and most hosts write them) are PostgreSQL through psycopg 3."""
    import socket

    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for scheme in ("postgres", "postgresql", "postgresql+psycopg"):
        out = qdlab("campaign", "list", "--db", f"{scheme}://qd:secret@127.0.0.1:{port}/lab")
        assert out.returncode == 3, (scheme, out.stderr)
        assert out.stderr.startswith(
            f"error: cannot connect to postgresql+psycopg://qd:***@127.0.0.1:{port}/lab: "
        ) and "Connection refused" in out.stderr  # fmt: skip
        assert "secret" not in out.stderr and out.stderr.count("\n") == 1


def test_a_campaign_copied_out_of_configs_names_the_shipped_lab_it_meant(tmp_path):
    copied = tmp_path / "mine.yaml"
    copied.write_text((ROOT / "configs" / "campaigns" / "blue_470_random.yaml").read_text())
    out = qdlab("campaign", "run", str(copied), "--db", str(tmp_path / "x.db"), "--budget", "1")
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
    assert "lab: file '../labs/sim.yaml' not found" in out.stderr
    assert "did you mean `lab: sim` (QDLab's own)?" in out.stderr
    assert not (tmp_path / "x.db").exists()  # refused before anything was stored
    copied.write_text(copied.read_text().replace("lab: ../labs/sim.yaml", "lab: sim"))
    out = qdlab("campaign", "run", str(copied), "--db", str(tmp_path / "x.db"), "--budget", "1")
    assert out.returncode == 0, out.stderr

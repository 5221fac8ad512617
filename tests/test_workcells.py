"""Workcells on bluesky-queueserver: real RE Managers, a real Redis, campaigns dispatched to them.

Each workcell is ``qdlab workcell serve`` (an RE Manager with its own RunEngine worker) on free
loopback ports, its queue in a throwaway ``redis-server``; the campaign's agent is ``qdlab
campaign run``, as a user starts it.
"""

from __future__ import annotations

import getpass
import json
import os
import signal
import time

import pytest
import yaml

from db import Database
from tests.conftest import ROOT, WorkcellServer, qdlab, wait_for
from tests.test_campaign import BASE

pytestmark = pytest.mark.slow


@pytest.fixture
def db_path(tmp_path):
    return tmp_path / "lab.db"


@pytest.fixture
def serve(redis_server, db_path):
    """Start workcells by name; all are stopped after the test."""
    started: list[WorkcellServer] = []

    def start(
        *names: str,
        speedup: str = "max",
        url: str | None = None,
        redis: str | None = None,
        **options: str,
    ) -> list[WorkcellServer]:
        url = url or f"sqlite:///{db_path}"
        redis = redis or redis_server.address
        servers = [WorkcellServer(n, url, redis, speedup, **options) for n in names]
        started.extend(servers)
        return [s.start() for s in servers]

    yield start
    for s in started:
        s.stop()


def campaign_file(tmp_path, workcells, **changes) -> str:
    config = {**BASE, "workcells": workcells, "stop_on_target": False, **changes}
    path = tmp_path / "campaign.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def runs_by_experiment(db: Database, campaign_id: int) -> dict[int, list[dict]]:
    out: dict[int, list[dict]] = {}
    for run in db.runs(campaign_id):
        out.setdefault(run["experiment_id"], []).append(run)
    return out


def start_documents(db: Database, campaign_id: int) -> list[dict]:
    return [doc for name, doc in db.campaign_documents(campaign_id) if name == "start"]


def test_a_campaign_across_two_workcells_runs_every_experiment_once(serve, tmp_path, db_url):
    url = db_url  # SQLite on one host; PostgreSQL, as workcells on several hosts share it
    _, b = serve("A", "B", url=url)
    config = campaign_file(tmp_path, [{"name": "A"}, {"name": "B", "zmq": b.zmq}], budget=8)
    out = qdlab("campaign", "run", config, "--db", url, "--json")
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["status"] == "completed" and summary["experiments"] == 8
    db = Database(url)
    rows = db.experiments(summary["campaign_id"])
    assert {r.status for r in rows} <= {"done", "failed"} and len(rows) == 8
    runs = runs_by_experiment(db, summary["campaign_id"])
    assert sorted(runs) == sorted(r.id for r in rows)
    assert all(len(v) == 1 and v[0]["complete"] for v in runs.values())
    starts = start_documents(db, summary["campaign_id"])
    by_experiment = {d["experiment_id"]: d["workcell"] for d in starts}
    assert {r.workcell for r in rows} == {"A", "B"}  # both were kept busy
    for (run,) in runs.values():  # the streams an in-process synthesis records
        streams = {d["name"] for n, d in db.run_documents(run["uid"]) if n == "descriptor"}
        assert streams >= {"primary", "baseline", "reactor_temperature_monitor"}
    assert all(by_experiment[r.id] == r.workcell for r in rows)
    # submitted as the user who ran the campaign (the login user: this lab has no users)
    from bluesky_queueserver_api.zmq import REManagerAPI

    items = REManagerAPI(zmq_control_addr=b.zmq).history_get()["items"]
    who = f"local:{getpass.getuser()}"
    assert items and {i["user"] for i in items} == {who}
    assert {d["operator"] for d in starts} == {who}

    status = qdlab("workcell", "status", "--db", url, "--json")
    assert status.returncode == 0, status.stderr
    states = {w["name"]: w for w in json.loads(status.stdout)}
    assert states["A"]["manager_state"] == "idle" and states["A"]["queue"] == 0
    assert states["B"]["environment"] is True and states["B"]["history"] >= 1


def test_once_the_target_is_reached_what_waits_in_the_queues_never_starts(serve, tmp_path, db_path):
    serve("A", "B", speedup="50")
    url = f"sqlite:///{db_path}"
    config = campaign_file(  # every result hits the wide target; two wait behind each run
        tmp_path, [{"name": "A"}, {"name": "B"}], budget=10, queue_ahead=2,
        stop_on_target=True, target={"pl_peak_nm": 470.0, "tolerance_nm": 50.0},
    )  # fmt: skip
    out = qdlab("campaign", "run", config, "--db", url, "--json", timeout=300)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["status"] == "completed"
    db = Database(url)
    rows = db.experiments(1)
    withdrawn = [r for r in rows if r.status == "rejected"]  # spending no budget
    assert withdrawn and all(
        r.failure_reason == "withdrawn: the target was reached" for r in withdrawn
    )
    assert json.loads(out.stdout)["experiments"] == len(rows) - len(withdrawn)
    ran = {run["experiment_id"] for run in db.runs(1)}
    assert ran == {r.id for r in rows if r.status in ("done", "failed")}
    assert not ran & {r.id for r in withdrawn}
    shown = qdlab("campaign", "show", "1", "--db", url, env={**os.environ, "COLUMNS": "200"})
    assert shown.stdout.count(" withdrawn ") >= len(withdrawn)  # not shown as rejected


def statuses(db: Database, campaign_id: int = 1) -> list[str]:
    try:
        return [r.status for r in db.experiments(campaign_id)]
    except Exception:
        return []


def test_kill_9_of_the_agent_then_resume_runs_no_experiment_twice(serve, spawn, tmp_path, db_path):
    serve("A", "B", speedup="400")
    url = f"sqlite:///{db_path}"
    config = campaign_file(tmp_path, [{"name": "A"}, {"name": "B"}], budget=10)
    agent = spawn("campaign", "run", config, "--db", url)
    db = Database(url)
    # killed while experiments are queued or running on the workcells, some already done
    wait_for(
        lambda: (
            statuses(db).count("done") >= 3
            and any(s in ("queued", "running") for s in statuses(db))
        ),
        120,
        "a campaign under way",
    )
    agent.send_signal(signal.SIGKILL)
    agent.wait(10)
    out = qdlab("campaign", "resume", "1", "--db", url, "--json", timeout=300)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["experiments"] == 10
    rows = db.experiments(1)
    assert {r.status for r in rows} <= {"done", "failed"} and len(rows) == 10
    runs = runs_by_experiment(db, 1)
    assert all(len(runs[r.id]) == 1 for r in rows), {k: len(v) for k, v in runs.items()}


@pytest.mark.parametrize("policy", ["fail", "requeue"])
def test_a_worker_killed_mid_plan_fails_or_requeues_its_experiment_and_the_campaign_goes_on(
    serve, spawn, tmp_path, db_path, policy
):
    a, _ = serve("A", "B", speedup="100")
    url = f"sqlite:///{db_path}"
    config = campaign_file(
        tmp_path, [{"name": "A"}, {"name": "B"}], budget=6, on_worker_death=policy
    )
    agent = spawn("campaign", "run", config, "--db", url, capture=True)
    db = Database(url)
    victim = wait_for(
        lambda: (
            next(
                (r for r in db.experiments(1) if r.status == "running" and r.workcell == "A"),
                None,
            )
            if db_path.exists()
            else None
        ),
        120,
        "an experiment running on A",
    )
    wait_for(lambda: db.runs(experiment_id=victim.id), 30, "its run to start")
    os.kill(a.worker_pid(), signal.SIGKILL)
    _, err = agent.communicate(timeout=300)
    assert agent.returncode == 0, err
    rows = {r.id: r for r in db.experiments(1)}
    assert len(rows) == 6 and {r.status for r in rows.values()} <= {"done", "failed"}
    runs = runs_by_experiment(db, 1)[victim.id]
    if policy == "fail":
        assert rows[victim.id].status == "failed"
        assert "its worker died mid-plan" in rows[victim.id].failure_reason
        assert len(runs) == 1 and not runs[0]["complete"]  # it did not run again
    else:
        assert [r["complete"] for r in runs] == [False, True]  # ran again, to the end, once


def test_a_safety_abort_on_a_workcell_fails_its_experiment_and_pauses_the_campaign(
    serve, tmp_path, db_path
):
    hot = tmp_path / "hot_lab.yaml"  # every synthesis runs above this reactor's ceiling
    hot.write_text(yaml.safe_dump({
        "base": str(ROOT / "configs" / "labs" / "sim.yaml"), "name": "hot",
        "safety": {"reactor_ceiling_c": 100.0, "abort_after_s": 0.5, "interlock": False},
    }))  # fmt: skip
    serve("A", speedup="300", lab=str(hot))
    url = f"sqlite:///{db_path}"
    config = campaign_file(tmp_path, [{"name": "A"}], budget=4)
    out = qdlab("campaign", "run", config, "--db", url, "--json", timeout=300)
    assert out.returncode == 1, out.stderr  # paused: a lab fault
    assert json.loads(out.stdout)["status"] == "paused"
    db = Database(url)
    rows = db.experiments(1)
    # the experiment waiting behind it was taken back from the queue: it runs on resume
    assert [r.status for r in rows] == ["failed", "proposed"]
    reason = rows[0].failure_reason
    assert reason.startswith("workcell A: safety abort: the reactor is above its 100 °C ceiling")
    assert reason in db.campaign(1)["status_reason"]
    [run] = db.runs(1)  # nothing ran after the abort
    assert run["exit_status"] == "abort" and run["reason"] in reason
    status = json.loads(qdlab("workcell", "status", "--db", url, "--json").stdout)
    assert status[0]["manager_state"] == "idle"  # aborted, not left paused


def test_an_operator_abort_on_a_workcell_fails_the_experiment_and_it_never_reruns(
    serve, spawn, tmp_path, db_path
):
    from bluesky_queueserver_api.zmq import REManagerAPI

    (a,) = serve("A", speedup="50")
    url = f"sqlite:///{db_path}"
    config = campaign_file(tmp_path, [{"name": "A"}], budget=3)
    agent = spawn("campaign", "run", config, "--db", url, "--json", capture=True)
    db = Database(url)
    wait_for(lambda: db_path.exists() and db.runs(1), 120, "a run on A")
    operator = REManagerAPI(zmq_control_addr=a.zmq)  # as at the beamline's queue monitor
    operator.re_pause(option="immediate")
    wait_for(lambda: operator.status(reload=True)["manager_state"] == "paused", 30, "paused")
    operator.re_abort()
    operator.close()
    _, err = agent.communicate(timeout=300)
    assert agent.returncode == 0, err
    rows = db.experiments(1)
    aborted = rows[0]
    assert aborted.status == "failed"
    assert aborted.failure_reason == "workcell A: plan aborted"
    runs = runs_by_experiment(db, 1)
    assert [r["exit_status"] for r in runs[aborted.id]] == ["abort"]  # it never ran again
    # the campaign went on: the others ran to the end (a sample may still not emit)
    assert len(rows) == 3 and all(
        [r["exit_status"] for r in runs[row.id]] == ["success"] for row in rows[1:]
    )


def test_with_approval_required_nothing_runs_on_a_workcell_before_a_person_approves(
    serve, spawn, tmp_path, db_path
):
    serve("A", "B")
    url = f"sqlite:///{db_path}"
    config = campaign_file(tmp_path, [{"name": "A"}, {"name": "B"}], budget=6, approval="required")
    agent = spawn("campaign", "run", config, "--db", url, "--json", capture=True)
    db = Database(url)
    # one for each place in the queues: two workcells, each running one with one waiting
    wait_for(lambda: statuses(db).count("awaiting_approval") == 4, 60, "four proposals")
    time.sleep(1.0)
    assert db.runs(1) == [] and statuses(db) == ["awaiting_approval"] * 4
    out = qdlab("campaign", "reject", "1", "2", "--reason", "duplicate of last week's", "--db", url)
    assert out.returncode == 0, out.stderr
    while agent.poll() is None:
        qdlab("campaign", "approve", "1", "--all", "--db", url)
        time.sleep(0.2)
    _, err = agent.communicate()
    assert agent.returncode == 0, err
    rows = db.experiments(1)
    assert rows[1].status == "rejected" and rows[1].workcell is None
    ran = [r for r in rows if r.status != "rejected"]
    assert len(ran) == 6 and all(r.workcell in ("A", "B") for r in ran)
    assert rows[1].id not in {run["experiment_id"] for run in db.runs(1)}


def test_a_queue_item_with_a_bad_condition_is_refused_when_added_naming_it(serve):
    """The workcell's plans are typed: each condition a parameter with its range (narrowed to
    the workcell's heaters) or choices, so a bluesky user's item with a typo, a missing or an
    out-of-range condition is refused when added, and never sits at the head of the queue."""
    from bluesky_queueserver_api import BPlan
    from bluesky_queueserver_api.zmq import REManagerAPI

    (a,) = serve("A")
    api = REManagerAPI(zmq_control_addr=a.zmq)
    good = {"br_pb_ratio": 10.0, "temperature_c": 150.0, "ligand": "oa_olam", "time_s": 30.0}
    plan = api.plans_allowed()["plans_allowed"]["hot_injection_synthesis"]
    params = {p["name"]: p for p in plan["parameters"]}
    assert params["temperature_c"]["min"] == "60" and params["temperature_c"]["max"] == "200"
    assert "oa_olam" in params["ligand"]["annotation"]["enums"]["LigandChoices"]
    for bad, words in (
        ({k if k != "temperature_c" else "temprature_c": v for k, v in good.items()},
         "temprature_c"),
        ({**good, "temperature_c": 250.0}, "out of range"),
        ({**good, "ligand": "water"}, "water"),
        ({k: v for k, v in good.items() if k != "time_s"}, "time_s"),
    ):  # fmt: skip
        with pytest.raises(Exception, match=words):
            api.item_add(BPlan("hot_injection_synthesis", **bad))
    assert api.queue_get()["items"] == []  # nothing bad was queued
    api.item_add(BPlan("hot_injection_synthesis", **good, md={"note": "typed"}))
    assert len(api.queue_get()["items"]) == 1
    api.close()


def test_staff_run_a_diagnostic_count_and_mv_on_a_workcell_within_its_limits(serve):
    """bluesky's count, scan and mv are accepted from the workcell's staff user group (not
    from campaigns' primary group) on its devices; a move outside a device's limits fails
    without moving it."""
    from bluesky_queueserver_api import BPlan
    from bluesky_queueserver_api.zmq import REManagerAPI

    (a,) = serve("A")
    api = REManagerAPI(zmq_control_addr=a.zmq)
    with pytest.raises(Exception, match="count"):
        api.item_add(BPlan("count", ["cell"], num=2))  # the primary group: QDLab's plans only
    api.user_group = "staff"
    api.item_add(BPlan("count", ["cell"], num=2))
    api.item_add(BPlan("mv", "reactor.temperature", 80))
    api.item_add(BPlan("mv", "reactor.temperature", 900))  # above the heater's limit
    api.queue_start()
    wait_for(lambda: len(api.history_get()["items"]) == 3, 120, "three diagnostics")
    api.wait_for_idle(timeout=60)
    results = [i["result"] for i in api.history_get()["items"]]
    assert [r["exit_status"] for r in results] == ["completed", "completed", "failed"]
    assert "900" in results[2]["msg"] or "limit" in results[2]["msg"].lower()
    api.close()


def test_waiting_proposals_spend_no_budget_on_workcells_with_queue_ahead(
    serve, spawn, tmp_path, db_path
):
    """Two workcells, one waiting in each queue behind the one running, ``approval:
    required``, every measurement a hit, ``stop_on_target: false``: approved one at a time,
    with one rejected, the whole budget runs and nothing is withdrawn."""
    serve("A", "B")
    url = f"sqlite:///{db_path}"
    target = {"pl_peak_nm": 470.0, "tolerance_nm": 50.0}
    config = campaign_file(tmp_path, [{"name": "A"}, {"name": "B"}], budget=5, queue_ahead=1,
                           approval="required", target=target)  # fmt: skip
    agent = spawn("campaign", "run", config, "--db", url, "--json", capture=True)
    db = Database(url)
    wait_for(lambda: statuses(db).count("awaiting_approval") == 4, 60, "four proposals")
    out = qdlab("campaign", "reject", "1", "1", "--reason", "not this one", "--db", url)
    assert out.returncode == 0, out.stderr
    deadline = time.monotonic() + 240
    while agent.poll() is None and time.monotonic() < deadline:
        rows = db.experiments(1)
        waiting = [r for r in rows if r.status == "awaiting_approval"]
        if waiting and not any(r.status in ("proposed", "queued", "running") for r in rows):
            qdlab("campaign", "approve", "1", str(waiting[0].number), "--db", url)
        time.sleep(0.3)
    out, err = agent.communicate(timeout=60)
    assert agent.returncode == 0, err
    assert json.loads(out)["status"] == "completed"
    rows = db.experiments(1)
    assert sum(r.status in ("done", "failed") for r in rows) == 5
    assert [r.failure_reason for r in rows if r.status == "rejected"] == ["rejected: not this one"]


@pytest.mark.parametrize(
    ("workcells", "message"),
    [
        ([{"name": "Z"}], "workcells[0] (Z): no workcell of that name serves"),
        ([{"name": "A", "zmq": "tcp://127.0.0.1:{port}"}], "no RE Manager answers at tcp://"),
        ([{"name": "A", "zmq": "127.0.0.1:6"}], "workcells.0.zmq"),
        ([{"name": "A"}, {"name": "A"}], "workcell names must be unique"),
    ],
)
def test_bad_workcells_are_refused_in_one_line_before_anything_is_stored(
    tmp_path, workcells, message
):
    from tests.conftest import _free_port

    port = _free_port()
    workcells = [{k: v.format(port=port) for k, v in w.items()} for w in workcells]
    url = f"sqlite:///{tmp_path / 'q.db'}"
    out = qdlab("campaign", "run", campaign_file(tmp_path, workcells), "--db", url)
    assert out.returncode == 2, out.stderr
    assert out.stderr.count("\n") == 1 and message in out.stderr, out.stderr
    assert not (tmp_path / "q.db").exists() or Database(url).campaigns() == []


def test_workcell_serve_refuses_bad_input_in_one_line(tmp_path, redis_server):
    url = f"sqlite:///{tmp_path / 'q.db'}"
    open_key, bad_key = tmp_path / "open.key", tmp_path / "bad.key"
    open_key.write_text("x" * 40)
    bad_key.write_text("not a key")
    bad_key.chmod(0o600)
    cases = [
        (["--redis", "127.0.0.1:1"], "--redis: no Redis server answers at 127.0.0.1:1"),
        (["--speedup", "fast"], "--speedup: 'fast' must be a number in (0, 1e6] or 'max'"),
        (["--name", "a b"], "--name"),
        (["--lab", "nowhere.yaml"], "nowhere.yaml"),
        (["--zmq", "tcp://0.0.0.0:1"], "--zmq: tcp://0.0.0.0:1 would open the queue"),
        (["--zmq-info", "tcp://0.0.0.0:1"], "--zmq-info: tcp://0.0.0.0:1 would publish"),
        (["--zmq-key-file", str(open_key)], "--zmq-key-file: " + f"{open_key} is readable by"),
        (["--zmq-key-file", str(bad_key)], "--zmq-key-file: not a CurveZMQ private key"),
        (["--zmq-key-file", str(tmp_path / "none")], "--zmq-key-file: cannot read"),
    ]
    for args, message in cases:
        base = ["--lab", "configs/labs/sim.yaml", "--db", url, "--redis", redis_server.address]
        out = qdlab("workcell", "serve", *base, *args, timeout=60)
        assert out.returncode == 2, (args, out.stderr)
        assert out.stderr.count("\n") == 1 and message in out.stderr, out.stderr


@pytest.mark.parametrize("persist", [False, True], ids=["emptied", "persisted"])
def test_a_redis_restart_as_plans_end_loses_no_experiment(serve, spawn, tmp_path, db_path, persist):
    """Redis goes away while plans run and stays away until they have ended: the managers'
    handling of the plans' reports fails on Redis (bluesky-queueserver then stays "executing"
    with an idle worker for good); `serve` restarts them, and the campaign finishes with every
    experiment run once. A Redis that kept its data gives back a queue whose running item the
    restarted manager records as "exit status lost": its stored run is its result."""
    from tests.conftest import RedisServer

    redis = RedisServer(tmp_path / "redis", persist=persist)
    (tmp_path / "redis").mkdir()
    redis.start()
    try:
        a, b = serve("A", "B", speedup="100", redis=redis.address)
        url = f"sqlite:///{db_path}"
        config = campaign_file(tmp_path, [{"name": "A"}, {"name": "B"}], budget=8)
        agent = spawn("campaign", "run", config, "--db", url, "--json", capture=True)
        db = Database(url)
        wait_for(lambda: statuses(db).count("running") == 2, 120, "a plan on each workcell")
        running = [r.id for r in db.experiments(1) if r.status == "running"]
        redis.stop()
        # the plans end (the workers write their runs to the database) while Redis is away
        ended = lambda: all(  # noqa: E731
            any(run["complete"] for run in db.runs(experiment_id=e)) for e in running
        )
        wait_for(ended, 120, "the running plans to end")
        time.sleep(1.0)
        redis.start()
        _, err = agent.communicate(timeout=300)
        assert agent.returncode == 0, err
    finally:
        redis.stop()
    rows = db.experiments(1)
    assert len(rows) == 8 and {r.status for r in rows} <= {"done", "failed"}
    assert not [r.failure_reason for r in rows if "workcell" in (r.failure_reason or "")]
    runs = runs_by_experiment(db, 1)
    assert all(len([x for x in runs[r.id] if x["complete"]]) == 1 for r in rows), runs
    for server in (a, b):
        assert "restarting the manager" in server.read_log(), server.log


def test_a_redis_that_stays_down_pauses_the_campaign_naming_it(
    serve, spawn, redis_server, tmp_path, db_path
):
    serve("A", speedup="100")
    url = f"sqlite:///{db_path}"
    config = campaign_file(tmp_path, [{"name": "A"}], budget=4)
    env = {**os.environ, "QDLAB_INSTRUMENT_WAIT_S": "3"}
    agent = spawn("campaign", "run", config, "--db", url, "--json", capture=True, env=env)
    db = Database(url)
    wait_for(lambda: "running" in statuses(db), 120, "a plan running")
    redis_server.stop()
    out, err = agent.communicate(timeout=120)
    campaign = db.campaign(1)
    assert campaign["status"] == "paused", (out, err)
    assert (
        f"its queue's Redis at {redis_server.address} does not answer"
        in (campaign["status_reason"])
    )
    assert "failed" not in statuses(db) and "Traceback" not in err
    redis_server.start()
    out = qdlab("campaign", "resume", "1", "--db", url, "--json", timeout=300)
    assert out.returncode == 0, out.stderr
    rows = db.experiments(1)
    assert len(rows) == 4 and {r.status for r in rows} <= {"done", "failed"}
    runs = runs_by_experiment(db, 1)
    assert all(len([x for x in runs[r.id] if x["complete"]]) == 1 for r in rows), runs


def test_an_encrypted_workcell_answers_only_clients_given_its_key(serve, tmp_path, db_path):
    """`serve --zmq-key-file`: the queue server's CurveZMQ encryption; a client with only the
    address (the forger of queue items) or with another key gets no answer."""
    import zmq

    from orchestrator.execution.workcell import Workcell, WorkcellError

    public, private = zmq.curve_keypair()
    key = tmp_path / "workcell.key"
    key.write_bytes(private)
    key.chmod(0o600)
    (server,) = serve("K", zmq_key_file=str(key))
    assert f"clients give public key {public.decode()}" in server.log
    other, _ = zmq.curve_keypair()
    for stranger in (None, other.decode()):
        client = Workcell("K", zmq=server.zmq, zmq_public_key=stranger, timeout=1.0)
        with pytest.raises(WorkcellError, match="no RE Manager answers"):
            client.status()
        client.close()
    url = f"sqlite:///{db_path}"
    spec = {"name": "K", "zmq": server.zmq, "zmq_key_env": "K_ZMQ_KEY"}
    config = campaign_file(tmp_path, [spec], budget=2)
    out = qdlab("campaign", "run", config, "--db", url, "--json")
    assert out.returncode == 2 and "$K_ZMQ_KEY is not set" in out.stderr, out.stderr
    env = {**os.environ, "K_ZMQ_KEY": public.decode()}
    out = qdlab("campaign", "run", config, "--db", url, "--json", env=env)
    assert out.returncode == 0, out.stderr
    rows = Database(url).experiments(json.loads(out.stdout)["campaign_id"])
    assert len(rows) == 2 and {r.workcell for r in rows} == {"K"}


def test_a_workcell_over_rest_needs_its_api_key(redis_server, tmp_path, db_path):
    from orchestrator.execution.workcell import Workcell, WorkcellError

    url = f"sqlite:///{db_path}"
    server = WorkcellServer("H", url, redis_server.address, api_key="s3cretkey").start()
    try:
        assert Workcell("H", http=server.http, api_key="s3cretkey").status()["manager_state"]
        with pytest.raises(WorkcellError, match="no RE Manager answers"):
            Workcell("H", http=server.http, api_key="wrong").status()
        config = campaign_file(
            tmp_path, [{"name": "H", "http": server.http, "api_key_env": "H_KEY"}], budget=2
        )
        out = qdlab(
            "campaign", "run", config, "--db", url, "--json",
            env={**os.environ, "H_KEY": "s3cretkey"},
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        assert [r.workcell for r in Database(url).experiments(1)] == ["H", "H"]
        out = qdlab("campaign", "run", config, "--db", url)  # the key is not set
        assert out.returncode == 2 and "$H_KEY is not set" in out.stderr
    finally:
        server.stop()


def test_the_shipped_workcell_campaign_validates():
    from orchestrator.campaign.config import load_campaign
    from tests.conftest import ROOT

    loaded = load_campaign(ROOT / "configs" / "campaigns" / "blue_470_workcells.yaml")
    assert [w.name for w in loaded.config.workcells] == ["A", "B"]
    assert loaded.config.approval == "none" and loaded.config.on_worker_death == "fail"

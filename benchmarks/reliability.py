"""The reliability probe as a repeatable suite: bad input, kill -9, concurrency, outages of the
database, Redis and an IOC, a frozen driver, forged queue items, misbehaving instruments and a
hostile browser.

Prints one table: per scenario, what was tried, how many ended cleanly (refused in one line, or
ran to the end, or paused naming the cause), and the counts that must be 0: experiments lost,
run twice or stuck, tracebacks, and rows written from rejected or forged input. Not part of
``make test`` (each scenario is also a test: tests/test_bad_input.py, test_workcells.py,
test_lease_fence.py, test_epics.py, test_instrument_faults.py, test_dashboard_security.py, ...).

    python benchmarks/reliability.py [--kills 20] [--only NAME ...]

A throwaway PostgreSQL server, Redis and IOC are started on loopback (as the tests do); a
scenario whose server cannot start prints the reason instead of its row.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.bad_inputs import CAMPAIGN, generated, hand_written  # noqa: E402
from db import Database  # noqa: E402
from db.records import ExperimentStatus  # noqa: E402
from tests.conftest import _start_throwaway_postgres, qdlab, start_qdlab, wait_for  # noqa: E402


def _state(url: str) -> list:
    db = Database(url, migrate=False)
    return [(c["id"], c["status"], c["experiments"]) for c in db.campaigns()] + [len(db.runs())]


COLUMNS = ("tried", "clean", "lost", "run twice", "stuck", "tracebacks", "written from rejected")
"""The table's columns; every one but the first two must be 0."""


def _row(tried: int, clean: int, **counts: int) -> dict[str, int]:
    """A scenario's row: ``tried``, ``clean`` and the counts that must be 0 (missing: 0)."""
    row = dict.fromkeys(COLUMNS, 0)
    row.update({"tried": tried, "clean": clean})
    row.update({k.replace("_", " "): v for k, v in counts.items()})
    return row


def _anomalies(url: str, campaign_id: int, budget: int) -> dict[str, int]:
    """What breaks exactly-once: experiments lost (missing, or ended without a reason), run
    twice (measured twice), stuck (still queued or running)."""
    db = Database(url)
    rows = db.experiments(campaign_id)
    runs = db.runs(campaign_id)
    measured = [
        r["experiment_id"]
        for r in runs
        if r["complete"] and r["exit_status"] == "success" and not r["rejected"]
    ]
    lost = len(set(range(budget)) - {r.index for r in rows}) + sum(
        r.status != ExperimentStatus.DONE and not r.failure_reason for r in rows
    )
    counts = {
        "lost": lost,
        "run_twice": len(measured) - len(set(measured)),
        "stuck": sum(r.status.in_flight for r in rows),
    }
    for key, n in counts.items():
        if n:
            print(f"  anomaly: campaign {campaign_id}: {key} {n}", file=sys.stderr)
    return counts


def _config(tmp: Path, stem: str, **changes) -> str:
    path = tmp / f"{stem}.yaml"
    path.write_text(yaml.safe_dump({**CAMPAIGN, "stop_on_target": False, **changes}))
    return str(path)


def bad_inputs(tmp: Path) -> dict:
    url = f"sqlite:///{tmp / 'lab.db'}"
    env = {**os.environ, "QDLAB_DB": url}
    qdlab("campaign", "run", _config(tmp, "base", stop_on_target=True), env=env)
    cases = hand_written(tmp / "hand", url) + generated(tmp / "gen")
    before = _state(url)
    clean = tracebacks = accepted = 0
    for case in cases:
        out = qdlab(*case.args, env={**env, **dict(case.env)}, cwd=tmp)
        if "Traceback" in out.stderr:
            tracebacks += 1
            print(f"  traceback: {case.name}", file=sys.stderr)
        elif out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1:
            clean += 1
        elif out.returncode == 0:
            accepted += 1  # a variation that is in fact valid (it ran)
            clean += 1
        else:
            print(
                f"  unclean ({out.returncode}): {case.name}: {out.stderr[-200:]}", file=sys.stderr
            )
    after = _state(url)
    old, new = before[:-1], after[:-1]
    # rows of campaigns that existed must not change; new ones only from accepted inputs
    writes = int(new[: len(old)] != old) + max(len(new) - len(old) - accepted, 0)
    return _row(len(cases), clean, tracebacks=tracebacks, written_from_rejected=writes)


def kills(tmp: Path, n: int) -> dict:
    url = f"sqlite:///{tmp / 'kills.db'}"
    budget = n + 5
    slow = {"simulator": {"clock": "realtime", "speed": 1200.0}}
    cfg = _config(tmp, "k", budget=budget, **slow)
    rng = random.Random(0)
    proc = start_qdlab("campaign", "run", cfg, "--db", url)
    # the kills land mid-run, once the campaign exists (imports take seconds on a busy machine)
    path = tmp / "kills.db"
    wait_for(
        lambda: path.exists() and _count(Database(url, migrate=False), ExperimentStatus.RUNNING),
        120,
        "the first run",
    )
    for _ in range(n):
        time.sleep(rng.uniform(0.3, 2.0))  # lands mid-run: experiments take ~0.5 s
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc = start_qdlab("campaign", "resume", "1", "--db", url)
    proc.communicate(timeout=600)
    done = qdlab("campaign", "resume", "1", "--db", url)  # if the last one ended early
    found = _anomalies(url, 1, budget)
    return _row(
        n, n * (not any(found.values())), tracebacks=int("Traceback" in done.stderr), **found
    )


def concurrent(tmp: Path, url: str, label: str, n: int = 4) -> dict:
    cfg = _config(tmp, f"c-{label}", budget=3, stop_on_target=True)
    procs = [
        start_qdlab("campaign", "run", cfg, "--db", url, "--json", capture=True) for _ in range(n)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    ids = [json.loads(out)["campaign_id"] for out, _ in outs if out.strip()]
    found = [_anomalies(url, i, 3) for i in ids]
    total = {k: sum(f[k] for f in found) for k in ("lost", "run_twice", "stuck")}
    total["lost"] += n - len(ids)
    clean = sum(p.returncode == 0 for p in procs)
    return _row(n, clean, tracebacks=sum("Traceback" in err for _, err in outs), **total)


def postgres_outage(tmp: Path, url: str, control) -> dict:
    slow = {"simulator": {"clock": "realtime", "speed": 600.0}}
    proc = start_qdlab(
        "campaign", "run", _config(tmp, "pg", budget=8, **slow), "--db", url, capture=True
    )
    time.sleep(6)
    control.pause()
    time.sleep(4)
    control.restart()
    _, err = proc.communicate(timeout=300)
    found = _anomalies(url, 1, 8)
    return _row(1, int(proc.returncode == 0), tracebacks=int("Traceback" in err), **found)


def lab_faults(tmp: Path) -> dict:
    url = f"sqlite:///{tmp / 'faults.db'}"
    names = ("heater_timeout", "heater_overshoot", "pump_stall", "coil_clog",
             "spectrometer_timeout", "spectrometer_saturation", "cell_bubble")  # fmt: skip
    cfg = _config(tmp, "f", budget=60, simulator={"faults": dict.fromkeys(names, 0.1 / 7)})
    out = qdlab("campaign", "run", cfg, "--db", url)
    tracebacks = int("Traceback" in out.stderr)
    while out.returncode == 1:  # paused after failures in a row: the operator resumes
        out = qdlab("campaign", "resume", "1", "--db", url)
        tracebacks += int("Traceback" in out.stderr)
    found = _anomalies(url, 1, 60)
    return _row(60, 60 - sum(found.values()), tracebacks=tracebacks, **found)


def glitching_spectrometer(tmp: Path) -> dict:
    """Every frame corrupt: the campaign pauses naming the reading; nothing is spent on it."""
    url = f"sqlite:///{tmp / 'glitch.db'}"
    cfg = _config(tmp, "g", budget=5, simulator={"faults": {"spectrometer_glitch": 1.0}})
    out = qdlab("campaign", "run", cfg, "--db", url)
    db = Database(url)
    rows = db.experiments(1)
    spent = sum(r.status in (ExperimentStatus.DONE, ExperimentStatus.FAILED) for r in rows)
    paused = out.returncode == 1 and "instrument fault" in db.campaign(1)["status_reason"]
    return _row(
        1, int(paused), tracebacks=int("Traceback" in out.stderr), written_from_rejected=spent
    )


def frozen_driver(tmp: Path) -> dict:
    """SIGSTOP a driver past its 2 s lease, let `resume` take over, SIGCONT it."""
    url = f"sqlite:///{tmp / 'frozen.db'}"
    env = {**os.environ, "QDLAB_LEASE_TTL_S": "2"}
    cfg = _config(tmp, "fz", budget=6, simulator={"clock": "realtime", "speed": 100.0})
    frozen = start_qdlab("campaign", "run", cfg, "--db", url, capture=True, env=env)
    db = Database(url)
    wait_for(lambda: _count(db, ExperimentStatus.DONE) >= 1, 60, "the first experiment")
    wait_for(lambda: any(not r["complete"] for r in db.runs(1)), 60, "the next run")
    time.sleep(0.5)
    frozen.send_signal(signal.SIGSTOP)
    time.sleep(3.0)
    taker = start_qdlab("campaign", "resume", "1", "--db", url, capture=True, env=env)
    wait_for(lambda: _count(db, ExperimentStatus.DONE) >= 3, 90, "the new driver")
    frozen.send_signal(signal.SIGCONT)
    _, err_frozen = frozen.communicate(timeout=60)
    _, err = taker.communicate(timeout=120)
    stopped = frozen.returncode == 2 and "took over its lease" in err_frozen
    return _row(
        1,
        int(stopped and taker.returncode == 0),
        tracebacks=int("Traceback" in err_frozen + err),
        **_anomalies(url, 1, 6),
    )


def _count(db: Database, status: ExperimentStatus) -> int:
    try:
        return sum(r.status == status for r in db.experiments(1))
    except Exception:  # not created yet
        return 0


def redis_restart(tmp: Path) -> dict:
    """Redis stopped while a plan runs on each of two workcells, back once both plans ended
    (emptied, and read back from its dump); then Redis down for good: the campaign pauses."""
    from orchestrator.execution.workcell import Workcell
    from tests.conftest import RedisServer, WorkcellServer

    rows = []
    for persist in (False, True):
        where = tmp / f"redis-{persist}"
        where.mkdir()
        url = f"sqlite:///{where / 'lab.db'}"
        redis = RedisServer(where, persist=persist).start()
        servers = [WorkcellServer(n, url, redis.address, "100").start() for n in "AB"]
        try:
            cfg = _config(where, "r", budget=8, workcells=[{"name": "A"}, {"name": "B"}])
            agent = start_qdlab("campaign", "run", cfg, "--db", url, capture=True)
            db = Database(url)
            wait_for(lambda db=db: _count(db, ExperimentStatus.RUNNING) == 2, 120, "two plans")
            running = [r.id for r in db.experiments(1) if r.status == ExperimentStatus.RUNNING]
            redis.stop()
            wait_for(
                lambda db=db, running=running: all(
                    any(x["complete"] for x in db.runs(experiment_id=e)) for e in running
                ),
                120,
                "the plans to end",
            )
            time.sleep(1.0)
            redis.start()
            try:
                _, err = agent.communicate(timeout=300)
            except Exception:
                agent.kill()
                _, err = agent.communicate()
            if agent.returncode != 0:
                print(f"  Redis restart (kept: {persist}): {err[-500:]}", file=sys.stderr)
            rows.append((agent.returncode == 0, "Traceback" in err, _anomalies(url, 1, 8)))
        finally:
            for s in servers:
                s.stop()
            redis.stop()
    where = tmp / "redis-down"
    where.mkdir()
    url = f"sqlite:///{where / 'lab.db'}"
    redis = RedisServer(where).start()
    server = WorkcellServer("A", url, redis.address, "100").start()
    try:
        env = {**os.environ, "QDLAB_INSTRUMENT_WAIT_S": "3"}
        cfg = _config(where, "d", budget=4, workcells=[{"name": "A"}])
        agent = start_qdlab("campaign", "run", cfg, "--db", url, capture=True, env=env)
        db = Database(url)
        wait_for(lambda: _count(db, ExperimentStatus.RUNNING) == 1, 120, "a plan")
        redis.stop()
        _, err = agent.communicate(timeout=120)
        paused = "Redis at" in (db.campaign(1)["status_reason"] or "")
        redis.start()
        Workcell("A", zmq=server.zmq).status()
        out = qdlab("campaign", "resume", "1", "--db", url, timeout=300)
        if out.returncode != 0 or not paused:
            print(f"  Redis down: paused {paused}; resume: {out.stderr[-500:]}", file=sys.stderr)
        rows.append(
            (paused and out.returncode == 0, "Traceback" in err + out.stderr, _anomalies(url, 1, 4))
        )
    finally:
        server.stop()
        redis.stop()
    total = {k: sum(r[2][k] for r in rows) for k in ("lost", "run_twice", "stuck")}
    return _row(len(rows), sum(r[0] for r in rows), tracebacks=sum(r[1] for r in rows), **total)


def forged_items(tmp: Path) -> dict:
    """A third client with only the 0MQ address swaps the campaign's waiting items for ones
    with other conditions; nothing it forged may be recorded as a result."""
    from bluesky_queueserver_api import BPlan

    from orchestrator.execution.workcell import Workcell
    from tests.conftest import RedisServer, WorkcellServer

    url = f"sqlite:///{tmp / 'forged.db'}"
    redis = RedisServer(tmp).start()
    server = WorkcellServer("A", url, redis.address, "100").start()
    forger = Workcell("A", zmq=server.zmq)
    swapped = 0
    try:
        cfg = _config(tmp, "fg", budget=6, workcells=[{"name": "A"}], queue_ahead=1)
        agent = start_qdlab("campaign", "run", cfg, "--db", url, capture=True)
        deadline = time.monotonic() + 120
        while agent.poll() is None and time.monotonic() < deadline and swapped < 3:
            try:
                queue = forger._api.send_request(method="queue_get")["items"]
            except Exception:
                forger.reconnect()
                continue
            for item in queue:
                md = item["kwargs"].get("md", {})
                if "campaign_uid" in md and not md.get("forged"):
                    with contextlib.suppress(Exception):
                        forger.remove(item["item_uid"])
                        conditions = {**item["args"][0], "temperature_c": 199.0}
                        forger._api.item_add(
                            BPlan(item["name"], conditions, md={**md, "forged": True})
                        )
                        swapped += 1
            time.sleep(0.05)
        _, err = agent.communicate(timeout=300)
    finally:
        forger.close()
        server.stop()
        redis.stop()
    db = Database(url)
    recorded = 0
    for r in db.experiments(1):
        if r.status == ExperimentStatus.DONE:
            start = next(d for n, d in db.run_documents(r.run_uid) if n == "start")
            recorded += start.get("forged", False) is True
    found = _anomalies(url, 1, 6)
    return _row(
        swapped,
        swapped - recorded,
        tracebacks=int("Traceback" in err),
        written_from_rejected=recorded,
        **found,
    )


def ioc_restart(tmp: Path) -> dict:
    """The IOC killed mid-campaign: back 3 s later (ridden out), or down for good (a pause
    naming the PV, resumed once it is back); nothing is spent on the outage."""
    from tests.conftest import IOC, _free_port, epics_loopback_env

    os.environ.update(epics_loopback_env(_free_port()))
    lab = str(ROOT / "configs" / "labs" / "sim-epics.yaml")
    rows = []
    for down_s in (3.0, None):
        url = f"sqlite:///{tmp / f'ioc-{down_s}.db'}"
        env = {**os.environ, "QDLAB_INSTRUMENT_WAIT_S": "2" if down_s is None else "60"}
        server = IOC(speedup="2000").start()
        try:
            cfg = _config(tmp, f"ioc-{down_s}", budget=6, lab=lab, seed=3)
            proc = start_qdlab("campaign", "run", cfg, "--db", url, capture=True, env=env)
            db = Database(url)
            wait_for(lambda db=db: _count(db, ExperimentStatus.DONE) >= 2, 120, "two experiments")
            server.kill()
            if down_s is not None:
                time.sleep(down_s)
                server = IOC(speedup="2000").start()
            _, err = proc.communicate(timeout=180)
            ok = (
                proc.returncode == 0
                if down_s
                else "PVUnreachable" in db.campaign(1)["status_reason"]
            )
            if down_s is None:
                server = IOC(speedup="max").start()
                out = qdlab("campaign", "resume", "1", "--db", url, timeout=300)
                ok, err = ok and out.returncode == 0, err + out.stderr
            failed_of_outage = sum(
                r.status == ExperimentStatus.FAILED and "PV" in (r.failure_reason or "")
                for r in db.experiments(1)
            )
            rows.append((ok, "Traceback" in err, failed_of_outage, _anomalies(url, 1, 6)))
        finally:
            server.stop()
    total = {k: sum(r[3][k] for r in rows) for k in ("lost", "run_twice", "stuck")}
    return _row(
        len(rows),
        sum(r[0] for r in rows),
        tracebacks=sum(r[1] for r in rows),
        written_from_rejected=sum(r[2] for r in rows),
        **total,
    )


def dashboard_attacks(tmp: Path) -> dict:
    """Stored script in names and statuses, a 256 KB body without a token, a foreign Host, an
    id out of range, a forged write: each refused or shown as text, nothing written."""
    import urllib.error
    import urllib.request

    from tests.conftest import _free_port

    url = f"sqlite:///{tmp / 'dash.db'}"
    name = "<img src=x onerror=alert(1)>{{body}}"
    qdlab("campaign", "run", _config(tmp, "dash", name=name), "--db", url)
    before = _state(url)
    port = _free_port()
    env = {**os.environ, "QDLAB_DASHBOARD_TOKEN": "s3cret-token-0123456789"}
    server = start_qdlab("dashboard", "--db", url, "--port", str(port), env=env)
    address = f"http://127.0.0.1:{port}"
    tried = clean = 0

    def request(
        path: str, data: bytes | None = None, headers: dict | None = None
    ) -> tuple[int, str]:
        req = urllib.request.Request(address + path, data=data, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, ""

    try:
        wait_for(lambda: _answers(address), 30, "the dashboard")
        checks = [
            lambda: (lambda r: r[0] == 200 and "<img src=x" not in r[1])(request("/")),
            lambda: (lambda r: r[0] == 200 and "<img src=x" not in r[1])(request("/campaigns/1")),
            lambda: (
                request(
                    "/api/campaigns/1/pause", b"x" * 262144, {"Content-Type": "application/json"}
                )[0]
                in (401, 403)
            ),
            lambda: request("/", headers={"Host": "evil.example"})[0] == 400,
            lambda: request("/api/campaigns/99999999999999999999999")[0] == 422,
            lambda: (
                request(
                    "/api/campaigns/1/pause",
                    b"{}",
                    {"Authorization": "Bearer wrong", "Content-Type": "application/json"},
                )[0]
                in (401, 403)
            ),
        ]
        for check in checks:
            tried += 1
            clean += bool(check())
    finally:
        server.terminate()
        server.wait(10)
    return _row(tried, clean, written_from_rejected=int(_state(url) != before))


def _answers(address: str) -> bool:
    import urllib.request

    try:
        return urllib.request.urlopen(f"{address}/api/campaigns", timeout=1).status == 200
    except OSError:
        return False


SCENARIOS = {
    "bad input": bad_inputs,
    "kill -9": None,
    "lab faults": lab_faults,
    "glitching spectrometer": glitching_spectrometer,
    "frozen driver": frozen_driver,
    "Redis restart/down": redis_restart,
    "forged queue items": forged_items,
    "IOC restart/down": ioc_restart,
    "dashboard attacks": dashboard_attacks,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--only", nargs="*", help="scenario names (default: all)")
    args = parser.parse_args()
    rows: list[tuple[str, dict | str]] = []
    wanted = lambda name: not args.only or any(w.lower() in name.lower() for w in args.only)  # noqa: E731
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for name, scenario in SCENARIOS.items():
            if not wanted(name):
                continue
            where = tmp / name.replace(" ", "-").replace("/", "-")
            where.mkdir()
            try:
                result = kills(where, args.kills) if scenario is None else scenario(where)
            except Exception as exc:  # a server that could not start, a wait that ran out
                result = f"did not finish: {type(exc).__name__}: {exc}"[:200]
            rows.append((name, result))
        if wanted("concurrency"):
            rows.append(
                ("4 at once, SQLite", concurrent(tmp, f"sqlite:///{tmp / 'new.db'}", "SQLite"))
            )
        if wanted("PostgreSQL"):
            rows += _postgres(tmp)
    print(f"{'scenario':<24}" + "".join(f"{c:>{len(c) + 2}}" for c in COLUMNS))
    print("-" * (24 + sum(len(c) + 2 for c in COLUMNS)))
    for name, result in rows:
        if isinstance(result, str):
            print(f"{name:<24}  {result}")
        else:
            print(f"{name:<24}" + "".join(f"{result[c]:>{len(c) + 2}}" for c in COLUMNS))


def _postgres(tmp: Path) -> list[tuple[str, dict | str]]:
    pg_url, control = _start_throwaway_postgres()
    if pg_url is None:
        return [("PostgreSQL", f"skipped: {control}")]
    try:
        rows: list[tuple[str, dict | str]] = [
            ("4 at once, PostgreSQL", concurrent(tmp, pg_url, "PostgreSQL"))
        ]
        from sqlalchemy import create_engine, text

        admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text("CREATE DATABASE outage"))
        admin.dispose()
        outage = postgres_outage(tmp, pg_url.rsplit("/", 1)[0] + "/outage", control)
        rows.append(("PostgreSQL stopped 4 s", outage))
        return rows
    finally:
        control()


if __name__ == "__main__":
    main()

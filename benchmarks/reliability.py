"""The reliability probe as a repeatable suite: bad input, kill -9, concurrency, outages, faults.

Prints one table. Targets: 0 tracebacks, 0 database writes from rejected input, 0 lost or
duplicated experiments, every failure with a reason. Not part of ``make test`` (its cheap parts
are tests: tests/test_bad_input.py, test_concurrency.py, test_outage.py).

    python benchmarks/reliability.py [--kills 20] [--postgres URL-of-a-server-to-create-dbs-on]

Without ``--postgres`` a throwaway PostgreSQL server is started on loopback (as the tests do),
and skipped, with the reason, if it cannot start.
"""

from __future__ import annotations

import argparse
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
from tests.conftest import _start_throwaway_postgres, qdlab, start_qdlab  # noqa: E402


def _state(url: str) -> list:
    db = Database(url, migrate=False)
    return [(c["id"], c["status"], c["experiments"]) for c in db.campaigns()] + [len(db.runs())]


def _anomalies(url: str, campaign_id: int, budget: int) -> list[str]:
    """What breaks exactly-once: lost, duplicated or unexplained experiments."""
    db = Database(url)
    rows = db.experiments(campaign_id)
    runs = db.runs(campaign_id)
    measured = [r["experiment_id"] for r in runs if r["complete"] and r["exit_status"] == "success"]
    found = []
    if [r.index for r in rows] != list(range(budget)):
        found.append(f"campaign {campaign_id}: experiments {[r.index for r in rows]}")
    if len(measured) != len(set(measured)):
        found.append(f"campaign {campaign_id}: an experiment measured twice")
    found += [
        f"campaign {campaign_id}: experiment {r.number} {r.status} without a reason"
        for r in rows
        if r.status != ExperimentStatus.DONE and not r.failure_reason
    ]
    for text in found:
        print(f"  anomaly: {text}", file=sys.stderr)
    return found


def bad_inputs(tmp: Path) -> dict:
    url = f"sqlite:///{tmp / 'lab.db'}"
    base = tmp / "base.yaml"
    base.write_text(yaml.safe_dump(CAMPAIGN))
    env = {**os.environ, "QDLAB_DB": url}
    qdlab("campaign", "run", str(base), env=env)
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
        else:
            print(
                f"  unclean ({out.returncode}): {case.name}: {out.stderr[-200:]}", file=sys.stderr
            )
    after = _state(url)
    old, new = before[:-1], after[:-1]
    # rows of campaigns that existed must not change; new ones only from accepted inputs
    writes = int(new[: len(old)] != old) + max(len(new) - len(old) - accepted, 0)
    return {
        "tried": len(cases),
        "clean": clean,
        "tracebacks": tracebacks,
        "accepted (valid)": accepted,
        "db writes from rejected input": writes - 0,
    }


def kills(tmp: Path, n: int) -> dict:
    url = f"sqlite:///{tmp / 'kills.db'}"
    budget = n + 5
    cfg = tmp / "k.yaml"
    slow = {"simulator": {"clock": "realtime", "speed": 1200.0}, "stop_on_target": False}
    cfg.write_text(yaml.safe_dump({**CAMPAIGN, "budget": budget, **slow}))
    rng = random.Random(0)
    proc = start_qdlab("campaign", "run", str(cfg), "--db", url)
    for _ in range(n):
        time.sleep(rng.uniform(0.3, 2.0))  # lands mid-run: experiments take ~0.5 s
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc = start_qdlab("campaign", "resume", "1", "--db", url)
    proc.communicate(timeout=600)
    done = qdlab("campaign", "resume", "1", "--db", url)  # if the last one ended early
    if done.returncode not in (0, 2):
        print(done.stderr, file=sys.stderr)
    return {"kill -9": n, "anomalies": len(_anomalies(url, 1, budget))}


def concurrent(tmp: Path, url: str, label: str, n: int = 4) -> dict:
    cfg = tmp / f"c-{label}.yaml"
    cfg.write_text(yaml.safe_dump({**CAMPAIGN, "budget": 3}))
    procs = [
        start_qdlab("campaign", "run", str(cfg), "--db", url, "--json", capture=True)
        for _ in range(n)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    failed = sum(p.returncode != 0 for p in procs)
    tracebacks = sum("Traceback" in err for _, err in outs)
    ids = [json.loads(out)["campaign_id"] for out, _ in outs if out.strip()]
    anomalies = sum(len(_anomalies(url, i, 3)) for i in ids)
    return {
        f"{n} at once on a new {label} database": f"{n - failed} ok",
        "tracebacks": tracebacks,
        "anomalies": anomalies,
    }


def postgres_outage(tmp: Path, url: str, control) -> dict:
    cfg = tmp / "pg.yaml"
    slow = {"simulator": {"clock": "realtime", "speed": 600.0}, "stop_on_target": False}
    cfg.write_text(yaml.safe_dump({**CAMPAIGN, "budget": 8, **slow}))
    proc = start_qdlab("campaign", "run", str(cfg), "--db", url, capture=True)
    time.sleep(6)
    control.pause()
    time.sleep(4)
    control.restart()
    _, err = proc.communicate(timeout=300)
    return {
        "PostgreSQL stopped 4 s mid-campaign": f"exit {proc.returncode}",
        "tracebacks": int("Traceback" in err),
        "anomalies": len(_anomalies(url, 1, 8)),
    }


def faults(tmp: Path) -> dict:
    url = f"sqlite:///{tmp / 'faults.db'}"
    cfg = tmp / "f.yaml"
    every = {
        k: 0.1 / 7
        for k in (
            "heater_timeout",
            "heater_overshoot",
            "pump_stall",
            "coil_clog",
            "spectrometer_timeout",
            "spectrometer_saturation",
            "cell_bubble",
        )
    }
    cfg.write_text(
        yaml.safe_dump(
            {**CAMPAIGN, "budget": 60, "stop_on_target": False, "simulator": {"faults": every}}
        )
    )
    out = qdlab("campaign", "run", str(cfg), "--db", url)
    while out.returncode == 1:  # paused after failures in a row: the operator resumes
        out = qdlab("campaign", "resume", "1", "--db", url)
    rows = Database(url).experiments(1)
    return {
        "experiments with 10 % faults": len(rows),
        "failed": sum(r.status == ExperimentStatus.FAILED for r in rows),
        "anomalies": len(_anomalies(url, 1, 60)),
        "tracebacks": int("Traceback" in out.stderr),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20)
    args = parser.parse_args()
    rows: list[tuple[str, dict]] = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        rows.append(("bad input", bad_inputs(tmp)))
        rows.append(("kill -9", kills(tmp, args.kills)))
        rows.append(("concurrency", concurrent(tmp, f"sqlite:///{tmp / 'new.db'}", "SQLite")))
        pg_url, control = _start_throwaway_postgres()
        if pg_url is None:
            rows.append(("PostgreSQL", {"skipped": control}))
        else:
            try:
                rows.append(("concurrency", concurrent(tmp, pg_url, "PostgreSQL")))
                control.pause()
                control.restart()
                from sqlalchemy import create_engine, text

                admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
                with admin.connect() as conn:
                    conn.execute(text("CREATE DATABASE outage"))
                admin.dispose()
                rows.append(
                    ("outage", postgres_outage(tmp, pg_url.rsplit("/", 1)[0] + "/outage", control))
                )
            finally:
                control()
        rows.append(("faults", faults(tmp)))
    print(f"{'probe':<14} result")
    print("-" * 72)
    for name, result in rows:
        print(f"{name:<14} " + "; ".join(f"{k}: {v}" for k, v in result.items()))


if __name__ == "__main__":
    main()

"""Write throughput of the DocumentWriter: events/s for runs with two 1,024-point spectra.

Feeds the documents of synthetic runs (start, descriptor, N events each carrying ``cell_pl`` and
``cell_absorbance`` of 1,024 points, stop) to a DocumentWriter committing every document, on
SQLite and, if a URL is given (``--postgres`` or ``$QDLAB_TEST_POSTGRES_URL``), on PostgreSQL.

    python benchmarks/db_write_speed.py [--events 2000] [--postgres URL]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from db import Database, DocumentWriter, safe_url
from db.synthetic import synthetic_run


def measure(url: str, events: int) -> tuple[float, float]:
    """(events/s, documents/s) writing one run of ``events`` events to ``url``."""
    docs = synthetic_run(events=events, points=1024)
    writer = DocumentWriter(Database(url))
    start = time.perf_counter()
    for name, doc in docs:
        writer(name, doc)
    writer.close()
    elapsed = time.perf_counter() - start
    return events / elapsed, len(docs) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--postgres", default=os.environ.get("QDLAB_TEST_POSTGRES_URL"))
    args = parser.parse_args()
    print(f"one run, {args.events} events x 2 spectra x 1,024 points, a commit per document")
    with tempfile.TemporaryDirectory() as tmp:
        ev, docs = measure(f"sqlite:///{Path(tmp) / 'bench.db'}", args.events)
        print(f"  SQLite (WAL):  {ev:8,.0f} events/s  {docs:8,.0f} documents/s  (target >= 1,000)")
    if not args.postgres:
        print("  PostgreSQL:    skipped (give --postgres URL or set QDLAB_TEST_POSTGRES_URL)")
        return
    name = f"qdlab_bench_{os.getpid()}"
    admin = create_engine(args.postgres, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        url = make_url(args.postgres).set(database=name).render_as_string(hide_password=False)
        ev, docs = measure(url, args.events)
        print(
            f"  PostgreSQL:    {ev:8,.0f} events/s  {docs:8,.0f} documents/s  "
            f"({safe_url(args.postgres)})"
        )
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


if __name__ == "__main__":
    main()

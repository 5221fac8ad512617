"""Riding out a database outage: reconnect with backoff for a bounded time, then give up cleanly.

A PostgreSQL server restarted under a running campaign should cost a pause of a few seconds, not
a 200-line traceback and a campaign stuck in ``running``. :func:`wait_for_database` retries a
trivial query with exponential backoff; if the database answers within the window the caller
carries on (the interrupted experiment runs again: its half-written run stays in the record as
incomplete), otherwise :class:`DatabaseUnavailable` ends the command with one line and exit
code 3. Nothing is lost: everything committed before the outage is in the database, and
``qdlab campaign resume`` continues once it is back.
"""

from __future__ import annotations

import time

from sqlalchemy.exc import DBAPIError, OperationalError

from db.database import Database, safe_url
from db.settings import seconds
from models.errors import UserError

__all__ = ["DatabaseUnavailable", "is_disconnect", "reconnect_window_s", "wait_for_database"]


def reconnect_window_s() -> float:
    """How long a runner keeps trying to reach a database that went away: ``$QDLAB_RECONNECT_S``
    (0 to 86,400 s; default 60)."""
    return seconds("QDLAB_RECONNECT_S", 60.0, 0.0, 86_400.0)


class DatabaseUnavailable(UserError, RuntimeError):
    """The database stayed unreachable for the whole reconnect window (exit code 3)."""

    exit_code = 3


def is_disconnect(exc: DBAPIError, db: Database) -> bool:
    """Whether ``exc`` means the database server went away (not a bad statement)."""
    if exc.connection_invalidated:
        return True
    return isinstance(exc, OperationalError) and db.dialect != "sqlite"


def _reason(exc: BaseException) -> str:
    orig = getattr(exc, "orig", exc)
    text = str(orig).strip().splitlines()
    return text[0] if text else type(orig).__name__


def wait_for_database(
    db: Database, exc: BaseException, window_s: float | None = None, what: str = ""
) -> None:
    """Return once ``db`` answers again; :class:`DatabaseUnavailable` after ``window_s``
    (default :func:`reconnect_window_s`)."""
    if window_s is None:
        window_s = reconnect_window_s()
    deadline = time.monotonic() + window_s
    delay = 0.5
    last = exc
    while time.monotonic() < deadline:
        time.sleep(min(delay, max(deadline - time.monotonic(), 0.0)))
        delay = min(delay * 2, 8.0)
        try:
            with db.engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
            return
        except DBAPIError as again:
            last = again
    raise DatabaseUnavailable(
        f"database {safe_url(db.url)} unreachable for {window_s:g} s ({_reason(last)})"
        + (f"; {what}" if what else "")
    ) from None

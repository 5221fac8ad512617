"""Dependencies every router shares: the database and the write token."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from fastapi import Depends, Header, HTTPException, Request

from db import Database, DatabaseError
from devices.config import ConfigError

__all__ = ["DatabaseDep", "Writer", "not_found", "refused"]


def _database(request: Request) -> Database:
    return request.app.state.db


def _writer(request: Request, authorization: Annotated[str | None, Header()] = None) -> Database:
    """The database, for a request that carries the dashboard's token (403 on a read-only
    dashboard, 401 without the token or with another)."""
    token: str | None = request.app.state.token
    if token is None:
        raise HTTPException(403, "this dashboard is read-only: start it with --token")
    given = (authorization or "").removeprefix("Bearer ").strip()
    if not given or not secrets.compare_digest(given.encode(), token.encode()):
        raise HTTPException(401, "a write needs the dashboard's token (--token)")
    return request.app.state.db


DatabaseDep = Annotated[Database, Depends(_database)]
"""The dashboard's database, for reads."""
Writer = Annotated[Database, Depends(_writer)]
"""The dashboard's database, for a write its token allows."""


@contextmanager
def not_found() -> Iterator[None]:
    """A campaign or experiment that does not exist is a 404 with the database's message."""
    try:
        yield
    except DatabaseError as exc:
        raise HTTPException(404, str(exc)) from None


def refused(fn: Callable[..., Any], *args: Any) -> Any:
    """Call a write; what it refuses (bad input, a state that does not allow it) is a 400
    with its message, and nothing is written."""
    try:
        return fn(*args)
    except (ConfigError, DatabaseError) as exc:
        raise HTTPException(400, str(exc)) from None

"""Dependencies every router shares: the database, and the ids in paths."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Path, Request

from db import Database, DatabaseError
from devices.config import ConfigError
from orchestrator.campaign.people import Actor, PermissionDenied

__all__ = [
    "ActorDep",
    "CampaignId",
    "DatabaseDep",
    "KeyDep",
    "Number",
    "Writer",
    "not_found",
    "refused",
]

CampaignId = Annotated[int, Path(ge=1, le=2**63 - 1, description="campaign id")]
"""A campaign id in the path (a number the database's integers hold: 422 otherwise)."""
Number = Annotated[int, Path(ge=1, le=2**31 - 1, description="experiment number, from 1")]
"""An experiment's number in the path."""


def _database(request: Request) -> Database:
    return request.app.state.db


DatabaseDep = Annotated[Database, Depends(_database)]
"""The dashboard's database, for reads."""
Writer = DatabaseDep
"""The dashboard's database, for a write (the token was checked before the request's body was
read: :class:`~orchestrator.dashboard.security.Guard`)."""


def _acting(request: Request) -> Actor:
    return request.state.actor


def _key(request: Request) -> str | None:
    return request.state.key


ActorDep = Annotated[Actor, Depends(_acting)]
"""Who makes a write (the Guard found them by their key or the token); the operation checks
what their role allows."""
KeyDep = Annotated[str | None, Depends(_key)]
"""The API key a write was made with (None: the dashboard's token), for a process started on
the user's behalf."""


@contextmanager
def not_found() -> Iterator[None]:
    """A campaign or experiment that does not exist is a 404 with the database's message."""
    try:
        yield
    except DatabaseError as exc:
        raise HTTPException(404, str(exc)) from None


def refused(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call a write; what it refuses (bad input, a state that does not allow it) is a 400
    with its message, a role that does not allow it a 403, and nothing is written."""
    try:
        return fn(*args, **kwargs)
    except PermissionDenied as exc:
        raise HTTPException(403, str(exc)) from None
    except (ConfigError, DatabaseError) as exc:
        raise HTTPException(400, str(exc)) from None

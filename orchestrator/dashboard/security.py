"""What stands between the dashboard and a hostile network or browser.

- Every response carries a Content Security Policy without inline script (the pages' scripts are
  files of ``static/``), and may not be framed.
- A request whose ``Host`` is not one of the dashboard's names is refused (DNS rebinding would
  otherwise let any web page read the data through a visitor's browser).
- A write (any method but GET/HEAD) is refused before its body is read: 401 without a
  credential it knows, 403 on a read-only dashboard (no token, no users); its body may hold at
  most :data:`MAX_BODY` bytes (413). The credential is a user's API key (the write acts as that
  user, :mod:`orchestrator.campaign.people`) or the dashboard's own token (compared in constant
  time; the write acts as ``dashboard-token``, an admin); the request's ``state.actor`` says
  who, and the route checks what their role allows.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

import anyio.to_thread

from db import Database
from orchestrator.campaign.people import Actor, Role, has_users, user_for_key

__all__ = ["CSP", "MAX_BODY", "TOKEN_ACTOR", "Guard", "bearer", "identify", "loopback_names"]

MAX_BODY = 64 * 1024
"""The largest request body a write may send (a note, conditions, a reason)."""

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
"""The pages' Content Security Policy (Plotly sets styles from script: inline styles stay)."""

_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


TOKEN_ACTOR = Actor("dashboard-token", Role.ADMIN)
"""Who a write made with the dashboard's own token acts as (users act as themselves)."""


def loopback_names() -> set[str]:
    """The names a dashboard on this machine answers to when bound to loopback."""
    return {"localhost", "127.0.0.1", "::1"}


def _host(scope: Scope) -> str:
    raw = dict(scope.get("headers") or []).get(b"host", b"").decode("latin-1").strip().lower()
    if raw.startswith("["):  # [::1]:8000
        return raw[1 : raw.find("]")] if "]" in raw else raw
    return raw.rsplit(":", 1)[0] if raw.count(":") == 1 else raw


class Guard:
    """ASGI middleware doing the checks of the module docstring.

    Parameters
    ----------
    app
        The dashboard.
    token
        The dashboard's own write token (None: only users' keys write).
    hosts
        The ``Host`` names it answers to.
    db
        The lab's database, where users and their keys are (read in a worker thread).
    """

    def __init__(self, app: ASGIApp, token: str | None, hosts: Iterable[str], db: Database) -> None:
        self.app, self.token, self.db = app, token, db
        self.hosts = {h.lower().strip("[]") for h in hosts}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *_HEADERS]
            await send(message)

        if _host(scope) not in self.hosts:
            await _refuse(secured, 400, "this dashboard does not answer to that Host name")
            return
        if scope["method"] in ("GET", "HEAD"):
            await self.app(scope, receive, secured)
            return
        refusal = await self._refusal(scope)
        if refusal is not None:
            await _refuse(secured, *refusal)
            return
        body = await _body(receive)
        if body is None:
            await _refuse(secured, 413, f"a request body may hold at most {MAX_BODY} bytes")
            return
        await self.app(scope, _replay(body, receive), secured)

    async def _refusal(self, scope: Scope) -> tuple[int, str] | None:
        """Why a write is refused before its body is read (None: it is not; then
        ``scope["state"]`` holds the ``actor`` and their ``key``)."""
        headers = dict(scope.get("headers") or [])
        given = bearer(headers.get(b"authorization", b"").decode("latin-1"))
        actor = await anyio.to_thread.run_sync(identify, self.db, given, self.token)
        if actor is None:
            if self.token is None and not await anyio.to_thread.run_sync(has_users, self.db):
                return 403, "this dashboard is read-only: start it with a token, or add users"
            return 401, "a write needs a user's API key (or the dashboard's token)"
        key = None if actor is TOKEN_ACTOR else given
        scope.setdefault("state", {}).update(actor=actor, key=key)
        length = headers.get(b"content-length", b"0").decode("latin-1")
        if not length.isdigit() or int(length) > MAX_BODY:
            return 413, f"a request body may hold at most {MAX_BODY} bytes"
        return None


def identify(db: Database, given: str | None, token: str | None) -> Actor | None:
    """Who the credential ``given`` is: :data:`TOKEN_ACTOR` for the dashboard's ``token``
    (compared in constant time), else the user whose API key it is (None: nobody)."""
    if token and given and secrets.compare_digest(given.encode(), token.encode()):
        return TOKEN_ACTOR
    return user_for_key(db, given) if given else None


def bearer(header: str) -> str | None:
    """The credential of an ``Authorization: Bearer ...`` header (None: none given)."""
    given = header.removeprefix("Bearer ").strip()
    return given or None


async def _body(receive: Receive) -> bytes | None:
    """The whole request body, or None once it exceeds :data:`MAX_BODY` (chunked bodies
    declare no length)."""
    body, more = b"", True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            return b""
        body += message.get("body", b"")
        more = message.get("more_body", False)
        if len(body) > MAX_BODY:
            return None
    return body


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def again() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return again


async def _refuse(send: Send, status: int, detail: str) -> None:
    payload = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})

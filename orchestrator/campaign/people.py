"""Who acts on the lab: users, their roles and API keys, and the audit of what each did.

A lab with no users is open, as a single person's lab on their own machine: the CLI acts as the
login user (``local:<name>``) and every write is allowed. Once a user exists (the first must be
an admin: ``qdlab user add NAME --role admin``), every write names its user by their API key:
``QDLAB_API_KEY`` for the CLI and the workcell agent, ``Authorization: Bearer <key>`` for the
dashboard. What each role may do is :data:`ALLOWED`:

========== ==========================================================================
viewer     read
proposer   read; add experiments, which wait for an approver (an agent, a planner)
operator   read; run, resume and pause campaigns
approver   read; approve, reject and add experiments; pause
admin      everything, and users and their keys
========== ==========================================================================

Keys are random (256 bits) and stored as their SHA-256 hash: the key is shown once, when made.
Every write is recorded with its user and role (:meth:`db.Database.record_audit`), and
``qdlab campaign show``, the report and the dashboard's audit page show it.
"""

from __future__ import annotations

import getpass
import hashlib
import os
import re
import secrets
from dataclasses import dataclass
from enum import StrEnum

from db import Database
from models.errors import UserError

__all__ = [
    "ALLOWED",
    "KEY_ENV",
    "Action",
    "Actor",
    "PermissionDenied",
    "Role",
    "acting_user",
    "add_user",
    "authorize",
    "change_user",
    "has_users",
    "hash_key",
    "new_key",
    "new_user_key",
    "user_for_key",
]

KEY_ENV = "QDLAB_API_KEY"
"""The environment variable the CLI and the workcell agent read their user's key from (never a
flag: a key in argv is in every process list and shell history)."""


class Role(StrEnum):
    """What a user is to the lab (see the module docstring for what each may do)."""

    VIEWER = "viewer"
    PROPOSER = "proposer"
    OPERATOR = "operator"
    APPROVER = "approver"
    ADMIN = "admin"


class Action(StrEnum):
    """A write a user makes."""

    PROPOSE = "propose"
    """Add an experiment that waits for an approver."""
    ADD = "add"
    """Add an experiment that runs without waiting (a person chose it)."""
    APPROVE = "approve"
    REJECT = "reject"
    RUN = "run"
    """Run or resume a campaign."""
    PAUSE = "pause"
    ADMIN = "admin"
    """Add users, change their roles and keys."""


A = Action
ALLOWED: dict[Role, frozenset[Action]] = {
    Role.VIEWER: frozenset(),
    Role.PROPOSER: frozenset({A.PROPOSE}),
    Role.OPERATOR: frozenset({A.RUN, A.PAUSE}),
    Role.APPROVER: frozenset({A.APPROVE, A.REJECT, A.ADD, A.PROPOSE, A.PAUSE}),
    Role.ADMIN: frozenset(Action),
}
"""The writes each role may make (reading is everyone's)."""


class PermissionDenied(UserError):
    """The acting user's role does not allow the write, or no user could be named; the message
    says which role would."""


@dataclass(frozen=True)
class Actor:
    """Who makes a write: a user's name and role (``open``: a lab without users, where the
    name is the login's and every write is allowed)."""

    name: str
    role: Role
    open: bool = False

    def may(self, action: Action) -> bool:
        """Whether this actor's role allows ``action``."""
        return self.open or action in ALLOWED[self.role]


def new_key() -> str:
    """A fresh API key (``qdk_`` and 43 URL-safe characters: 256 random bits)."""
    return "qdk_" + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    """What the database keeps of a key: its SHA-256, hex (a key is random, so no salt or
    slow hash is needed to keep it from being guessed back)."""
    return hashlib.sha256(key.encode()).hexdigest()


_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")


def _role(text: str) -> Role:
    try:
        return Role(text)
    except ValueError:
        raise UserError(f"--role: {text!r} is not a role; allowed: {', '.join(Role)}") from None


def add_user(db: Database, actor: Actor | None, name: str, role: str) -> str:
    """Add user ``name`` with ``role``; return their API key (shown once, kept hashed). The
    first user of a lab must be an admin, and anyone may add them; after that only an admin
    (``actor``) adds users."""
    if not _NAME.fullmatch(name):
        raise UserError(
            f"NAME: {name!r} is not a user name: 1 to 64 letters, digits and . _ @ -, "
            "starting with a letter or digit"
        )
    wanted = _role(role)
    if not db.users():
        if wanted != Role.ADMIN:
            raise UserError("--role: the lab's first user must be an admin (--role admin)")
        actor = Actor(name, Role.ADMIN)
    else:
        actor = authorize(actor, Action.ADMIN, "add users")
    key = new_key()
    db.add_user(name, wanted, hash_key(key))
    db.record_audit(actor.name, actor.role, "add user", detail=f"{name} as {wanted}")
    return key


def new_user_key(db: Database, actor: Actor, name: str) -> str:
    """Give user ``name`` a new API key (the old one stops working); return it. An admin's."""
    authorize(actor, Action.ADMIN, "give users keys")
    key = new_key()
    db.update_user(name, key_hash=hash_key(key))
    db.record_audit(actor.name, actor.role, "new key", detail=name)
    return key


def change_user(
    db: Database,
    actor: Actor,
    name: str,
    role: str | None = None,
    disabled: bool | None = None,
) -> None:
    """Change user ``name``'s role, or disable them (their key stops working). An admin's;
    the last enabled admin is kept (nobody could administer the lab after)."""
    authorize(actor, Action.ADMIN, "change users")
    wanted = None if role is None else _role(role)
    admins = [u.name for u in db.users() if u.role == Role.ADMIN and not u.disabled]
    if admins == [name] and (disabled or (wanted is not None and wanted != Role.ADMIN)):
        raise UserError(f"{name} is the lab's last admin: make another admin first")
    db.update_user(name, role=wanted, disabled=disabled)
    what = f"{name} disabled" if disabled else f"{name} as {wanted}"
    db.record_audit(actor.name, actor.role, "change user", detail=what)


def has_users(db: Database) -> bool:
    """Whether the lab has an enabled user (else it is open: every write allowed)."""
    return any(not u.disabled for u in db.users())


def user_for_key(db: Database, key: str) -> Actor | None:
    """The enabled user whose API key this is (None: nobody's, or a disabled user's)."""
    user = db.user_by_key_hash(hash_key(key.strip()))
    if user is None or user.disabled:
        return None
    return Actor(user.name, Role(user.role))


def acting_user(db: Database, key: str | None = None) -> Actor:
    """Who the CLI acts as: the user whose key ``key`` (default ``$QDLAB_API_KEY``) is; in a
    lab without users, the login user with every right. :class:`PermissionDenied` names what
    to set when the lab has users and no valid key is given."""
    key = os.environ.get(KEY_ENV) if key is None else key
    if key:
        actor = user_for_key(db, key)
        if actor is None:
            raise PermissionDenied(f"{KEY_ENV}: no enabled user of this lab has that key")
        return actor
    if has_users(db):
        raise PermissionDenied(
            f"{KEY_ENV}: this lab has users; set it to your API key (an admin gives one with "
            "`qdlab user key NAME`)"
        )
    return Actor(f"local:{_login()}", Role.ADMIN, open=True)


def _login() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name (a container without a passwd entry)
        return str(os.getuid())


def authorize(actor: Actor | None, action: Action, what: str) -> Actor:
    """``actor`` if their role allows ``action``; else :class:`PermissionDenied` saying who
    they are, what they tried (``what``) and which roles may."""
    if actor is None:
        raise PermissionDenied(f"{what}: needs a user (an API key)")
    if not actor.may(action):
        roles = [str(r) for r, allowed in ALLOWED.items() if action in allowed]
        raise PermissionDenied(
            f"{actor.name} ({actor.role}) may not {what}; roles that may: {', '.join(roles)}"
        )
    return actor

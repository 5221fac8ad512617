"""One driver per campaign: a lease on the campaign's row, renewed while its runner lives.

Two ``qdlab campaign resume 3`` at once would synthesise the same experiment twice. So a runner
first takes the campaign's lease: one atomic ``UPDATE ... WHERE`` (the same on SQLite and
PostgreSQL) that succeeds only if nobody holds it, the holder's claim has expired, or the holder
is a process of this host that no longer exists (``kill -9``). While it runs, a heartbeat
thread renews the claim every ``ttl / 3`` seconds; a holder on another host that dies without
releasing it is taken over once ``ttl`` has passed (``$QDLAB_LEASE_TTL_S``, default 30 s). The
loser gets :class:`LeaseHeld`, whose message names the holder.

A holder frozen past its lease (a laptop lid, a VM pause) may find on waking that another process
took over. Every write it makes through the lifecycle carries the lease's :attr:`~CampaignLease.
fence`, checked in the write's own transaction, and it checks the lease again before it moves an
instrument once its last confirmation is older than half the ttl (:meth:`~CampaignLease.ensure`):
a holder that lost its lease stops with :class:`~db.database.LeaseLost`, writing and moving
nothing more.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
import uuid
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import DBAPIError

from db.database import Database, DatabaseError, Fence, LeaseLost
from db.schema import Campaign
from db.settings import seconds
from models.errors import UserError

__all__ = ["CampaignLease", "Fence", "LeaseHeld", "LeaseLost", "lease_holder", "lease_ttl_s"]


def lease_ttl_s() -> float:
    """How long a lease not renewed holds (a crashed holder on another host is taken over after
    it): ``$QDLAB_LEASE_TTL_S``, 1 to 3,600 s, default 30."""
    return seconds("QDLAB_LEASE_TTL_S", 30.0, 1.0, 3600.0)


class LeaseHeld(UserError, RuntimeError):
    """Another process drives this campaign (the message says which)."""


def _describe(owner: str, expires: float | None) -> str:
    host, pid, _ = [*owner.split(":"), "", ""][:3]
    left = "" if expires is None else f", its lease runs {max(expires - time.time(), 0):.0f} s more"
    return f"pid {pid} on host {host}{left}"


def _holder_is_dead(owner: str) -> bool:
    """Whether ``owner`` is a process of this host that no longer runs."""
    host, pid, *_ = [*owner.split(":"), ""]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


def lease_holder(db: Database, campaign_id: int) -> tuple[str, float] | None:
    """``(owner, expires)`` of a live lease on the campaign, or None if it is free."""
    with db.session() as s:
        row = s.execute(
            select(Campaign.lease_owner, Campaign.lease_expires).where(Campaign.id == campaign_id)
        ).first()
    if row is None or row.lease_owner is None:
        return None
    if (row.lease_expires or 0.0) < time.time() or _holder_is_dead(row.lease_owner):
        return None
    return row.lease_owner, row.lease_expires


class CampaignLease:
    """The lease of one campaign for this process (see the module docstring).

    Use as a context manager: entering takes the lease (or raises :class:`LeaseHeld`) and starts
    the heartbeat; leaving stops it and releases the lease.

    Parameters
    ----------
    db
        The campaign's database.
    campaign_id
        The campaign to drive.
    ttl_s
        How long a claim holds without renewal (default :func:`lease_ttl_s`).
    """

    def __init__(self, db: Database, campaign_id: int, ttl_s: float | None = None) -> None:
        self.db = db
        self.campaign_id = campaign_id
        self.ttl_s = float(ttl_s) if ttl_s is not None else lease_ttl_s()
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.fence = Fence(campaign_id, self.owner)
        """What this holder's writes carry (see the module docstring)."""
        self.lost = threading.Event()
        self._confirmed = 0.0  # time.monotonic() of the last successful claim
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _claim(self, condition: Any) -> bool:
        with self.db.session() as s, s.begin():
            result = s.execute(
                update(Campaign)
                .where(Campaign.id == self.campaign_id, condition)
                .values(lease_owner=self.owner, lease_expires=time.time() + self.ttl_s)
            )
            claimed = result.rowcount == 1
        if claimed:
            self._confirmed = time.monotonic()
        return claimed

    def acquire(self) -> None:
        """Take the lease; :class:`LeaseHeld` names the holder if another process has it."""
        now = time.time()
        free = (
            Campaign.lease_owner.is_(None)
            | (Campaign.lease_owner == self.owner)
            | (Campaign.lease_expires < now)
        )
        if self._claim(free):
            return
        with self.db.session() as s:
            row = s.execute(
                select(Campaign.lease_owner, Campaign.lease_expires).where(
                    Campaign.id == self.campaign_id
                )
            ).first()
        if row is None:
            raise DatabaseError(f"no campaign {self.campaign_id} in the database")
        if _holder_is_dead(row.lease_owner) and self._claim(
            Campaign.lease_owner == row.lease_owner
        ):
            return
        raise LeaseHeld(
            f"campaign {self.campaign_id} is being run by "
            f"{_describe(row.lease_owner, row.lease_expires)}; one process drives a campaign"
        )

    def renew(self) -> bool:
        """Extend the claim; False (and :attr:`lost` set) if another process took it over."""
        if not self._claim(Campaign.lease_owner == self.owner):
            self.lost.set()
            return False
        return True

    def ensure(self) -> None:
        """Before an action that must not happen twice (moving an instrument): confirm the
        lease with the database if the last confirmation is older than half the ttl (the
        holder may have been frozen meanwhile); :class:`~db.database.LeaseLost` if another
        process took it over."""
        if not self.lost.is_set() and time.monotonic() - self._confirmed > self.ttl_s / 2:
            self.renew()
        if self.lost.is_set():
            raise self.fence.lost()

    def release(self) -> None:
        """Give the lease up (only if still ours)."""
        with self.db.session() as s, s.begin():
            s.execute(
                update(Campaign)
                .where(Campaign.id == self.campaign_id, Campaign.lease_owner == self.owner)
                .values(lease_owner=None, lease_expires=None)
            )

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.ttl_s / 3.0):
            try:
                if not self.renew():
                    return
            except DBAPIError:  # the database is away for a moment: try again next beat
                continue

    def __enter__(self) -> CampaignLease:
        self.acquire()
        self._thread = threading.Thread(
            target=self._heartbeat, name=f"lease-campaign-{self.campaign_id}", daemon=True
        )
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with contextlib.suppress(DBAPIError):  # database gone: the claim expires by itself
            self.release()

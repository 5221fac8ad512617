"""The human in the loop: approve, reject and add experiments of a campaign; pause and resume it.

These are operations on the campaign in the database, so the CLI (``qdlab campaign approve``,
``reject``, ``add``, ``pause``) and the dashboard use the same ones, while the campaign's agent
runs in another process: it finds approved and added experiments, and tells its planner of rejected
ones (as vetoed failures: never proposed again), the next time it looks.

Experiments are numbered from 1 here, as ``qdlab campaign show`` lists them. Each operation is
made by an ``actor`` (default: :func:`~orchestrator.campaign.people.acting_user`), whose role
must allow it (:mod:`orchestrator.campaign.people`), and is recorded in the audit with them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from db import Database
from devices.config import ConfigError
from models.parameters import ParameterError, get_route
from orchestrator.campaign import lifecycle
from orchestrator.campaign.config import loaded_from_stored
from orchestrator.campaign.lifecycle import CampaignStatus, ExperimentStatus
from orchestrator.campaign.people import KEY_ENV, Action, Actor, acting_user, authorize
from orchestrator.execution.recipes import recipe_for

__all__ = [
    "add",
    "approve",
    "awaiting",
    "parse_conditions",
    "pause",
    "reject",
    "resume_in_background",
]


def awaiting(db: Database, campaign_id: int) -> list[dict[str, Any]]:
    """The campaign's proposals awaiting approval, with the planner's prediction."""
    rows, _, _ = db.open_experiments(campaign_id)
    return [r for r in rows if r.status == ExperimentStatus.AWAITING_APPROVAL]


def _indices(db: Database, campaign_id: int, numbers: Sequence[int] | None) -> list[int] | None:
    """0-based indices of the 1-based experiment ``numbers``, each awaiting approval."""
    waiting = {r.number for r in awaiting(db, campaign_id)}
    if not waiting:
        raise ConfigError(f"campaign {campaign_id}: no proposal awaits approval")
    if numbers is None:
        return None
    bad = [n for n in numbers if n not in waiting]
    if bad:
        raise ConfigError(
            f"N: experiment(s) {', '.join(map(str, bad))} of campaign {campaign_id} do not "
            f"await approval; those that do: {', '.join(map(str, sorted(waiting)))}"
        )
    return [n - 1 for n in numbers]


def _actor(db: Database, actor: Actor | None, action: Action, what: str) -> Actor:
    return authorize(actor or acting_user(db), action, what)


def approve(
    db: Database,
    campaign_id: int,
    numbers: Sequence[int] | None = None,
    actor: Actor | None = None,
) -> list[int]:
    """Approve proposals (1-based ``numbers``; ``None``: every one awaiting); return the
    numbers approved. :class:`ConfigError` names any that does not await approval."""
    actor = _actor(db, actor, Action.APPROVE, "approve experiments")
    db.campaign(campaign_id)
    moved = lifecycle.approve(db, campaign_id, _indices(db, campaign_id, numbers))
    for i in moved:
        db.record_audit(actor.name, actor.role, "approve", campaign_id, i + 1)
    return [i + 1 for i in moved]


def reject(
    db: Database, campaign_id: int, number: int, reason: str, actor: Actor | None = None
) -> None:
    """Reject proposal ``number`` (1-based) with ``reason``: it never runs, and the campaign's
    planner is told that a person vetoed it."""
    actor = _actor(db, actor, Action.REJECT, "reject experiments")
    db.campaign(campaign_id)
    reason = _words(reason, "--reason")
    if not reason:
        raise ConfigError("--reason: say why, in 1 to 1000 characters")
    moved = lifecycle.reject(
        db, campaign_id, _indices(db, campaign_id, [number]), f"rejected: {reason}"
    )
    if not moved:
        raise ConfigError(f"N: experiment {number} was decided meanwhile")
    db.record_audit(actor.name, actor.role, "reject", campaign_id, number, reason)


def _words(text: str, flag: str) -> str:
    """What a person wrote (a reason, a note), stripped: at most 1000 characters, no control
    characters but line breaks and tabs (an escape sequence would reach a terminal; a NUL,
    PostgreSQL refuses)."""
    text = text.strip()
    if len(text) > 1000:
        raise ConfigError(f"{flag}: at most 1000 characters")
    if any((ord(c) < 32 and c not in "\n\t") or ord(c) == 127 for c in text):
        raise ConfigError(f"{flag}: control characters are not allowed")
    return text


def parse_conditions(text: str) -> dict[str, Any]:
    """``--conditions`` JSON as a mapping; :class:`ConfigError` if it is not a JSON object."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"--conditions: not JSON ({exc.msg} at character {exc.pos})") from None
    if not isinstance(value, dict):
        raise ConfigError("--conditions: a JSON object, e.g. '{\"br_pb_ratio\": 8, ...}'")
    return value


def add(
    db: Database,
    campaign_id: int,
    conditions: Mapping[str, Any],
    note: str | None = None,
    actor: Actor | None = None,
) -> int:
    """Add a hand-chosen experiment to a campaign; return its number (1-based).

    The conditions must give every parameter of the campaign's space, inside the space, and be
    something the campaign's lab can do (volumes, pump rates): :class:`ConfigError` names the
    field and the allowed range otherwise. The experiment is recorded with planner and
    provenance ``human`` and runs without waiting for approval (a person chose it); one added
    by a propose-only user (an agent) is recorded as ``agent``'s and awaits a person's
    approval.
    """
    actor = actor or acting_user(db)
    waits = not actor.may(Action.ADD)
    _actor(db, actor, Action.PROPOSE if waits else Action.ADD, "add experiments")
    campaign = db.campaign(campaign_id)
    note = None if note is None else _words(note, "--note")
    loaded = loaded_from_stored(campaign["config"], campaign["name"])
    route, space = loaded.config.route, loaded.space
    unknown = sorted(set(conditions) - set(space.order))
    if unknown:
        raise ConfigError(
            f"--conditions: {', '.join(unknown)} is not a parameter of this campaign; "
            f"its parameters: {', '.join(space.order)}"
        )
    try:
        valid = get_route(route).validate(dict(conditions))
    except ParameterError as exc:
        raise ConfigError(f"--conditions: {exc}") from None
    for name in space.order:
        value = valid[name]
        if name in space.continuous:
            lo, hi = space.continuous[name]
            if not lo <= float(value) <= hi:
                raise ConfigError(
                    f"--conditions: {name} = {value:g} is outside the campaign's space "
                    f"[{lo:g}, {hi:g}]"
                )
        elif value not in space.categorical[name]:
            raise ConfigError(
                f"--conditions: {name} = {value!r} is not one of the campaign's choices "
                f"{list(space.categorical[name])}"
            )
    try:
        recipe_for(route, valid, loaded.lab, loaded.config.reactor)
    except ParameterError as exc:
        raise ConfigError(f"--conditions: {exc}") from None
    if campaign["status"] == CampaignStatus.COMPLETED:
        raise ConfigError(
            f"campaign {campaign_id} is completed; `qdlab campaign resume {campaign_id} "
            "--budget N` reopens it"
        )
    chosen = {n: valid[n] for n in space.order}
    eid = lifecycle.add_by_hand(db, campaign_id, chosen, note, actor.name, waits)
    number = db.experiment(eid).number
    action = "propose" if waits else "add"
    db.record_audit(actor.name, actor.role, action, campaign_id, number, json.dumps(chosen))
    return number


def pause(
    db: Database, campaign_id: int, reason: str | None = None, actor: Actor | None = None
) -> CampaignStatus:
    """Ask a running campaign to pause; return its status afterwards.

    Its agent (in another process) finishes the experiment under way, starts no other and marks
    the campaign ``paused`` with the reason; ``qdlab campaign resume`` continues it. A campaign
    nobody drives any more (its agent gone) is marked paused at once."""
    from db.lease import lease_holder

    actor = _actor(db, actor, Action.PAUSE, "pause campaigns")
    campaign = db.campaign(campaign_id)
    pausable = (CampaignStatus.RUNNING, CampaignStatus.CREATED, CampaignStatus.PAUSING)
    if campaign["status"] not in pausable:
        raise ConfigError(
            f"campaign {campaign_id} is {campaign['status']}, not running: nothing to pause"
        )
    said = _words(reason or "", "--reason")
    why = f"paused by {actor.name}: {said or 'no reason given'}"
    driven = lease_holder(db, campaign_id) is not None
    status = lifecycle.request_pause(db, campaign_id, why, driven)
    db.record_audit(actor.name, actor.role, "pause", campaign_id, detail=said)
    return status


def resume_in_background(
    db: Database,
    campaign_id: int,
    wait_s: float = 60.0,
    actor: Actor | None = None,
    key: str | None = None,
) -> int:
    """Start ``qdlab campaign resume`` for a paused campaign as a process of its own (it
    outlives the caller, a dashboard); return its pid once it drives the campaign.

    The campaign is marked running at once (only from paused: a second request meanwhile is
    refused); if the process exits before it holds the campaign's lease, the campaign is paused
    again and :class:`ConfigError` says what the process said. :class:`ConfigError` unless the
    campaign is paused and nobody drives it. The process acts as ``actor``, by their API
    ``key`` (passed in its environment, never its arguments)."""
    import os
    import subprocess
    import sys
    import tempfile
    import time

    from db.lease import lease_holder

    actor = _actor(db, actor, Action.RUN, "resume campaigns")
    campaign = db.campaign(campaign_id)
    if campaign["status"] != CampaignStatus.PAUSED or lease_holder(db, campaign_id) is not None:
        raise ConfigError(
            f"campaign {campaign_id} is {campaign['status']}: only a paused one resumes"
        )
    try:
        lifecycle.mark_resuming(db, campaign_id)
    except lifecycle.TransitionError:
        raise ConfigError(f"campaign {campaign_id} is being resumed already") from None
    log = tempfile.NamedTemporaryFile(  # noqa: SIM115 (the child keeps writing to it)
        "w+", prefix=f"qdlab-resume-{campaign_id}-", suffix=".log", delete=False
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "orchestrator", "campaign", "resume", str(campaign_id)],
        # not in argv: a URL may hold a password, and the key is the user's
        env={**os.environ, "QDLAB_DB": db.url, **({KEY_ENV: key} if key else {})},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=log,
        start_new_session=True,
    )
    deadline = time.monotonic() + wait_s
    while lease_holder(db, campaign_id) is None and time.monotonic() < deadline:
        if process.poll() is not None:
            said = Path(log.name).read_text().strip().splitlines() or [f"exit {process.returncode}"]
            lifecycle.end_campaign(
                db, campaign_id, CampaignStatus.PAUSED, f"resume failed: {said[-1]}"
            )
            raise ConfigError(f"campaign {campaign_id}: resume failed: {said[-1]}")
        time.sleep(0.1)
    return process.pid

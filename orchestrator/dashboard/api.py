"""``/api/campaigns``: the JSON the pages poll, and the writes a person makes (the same
operations as ``qdlab campaign approve/reject/add/pause/resume``)."""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Body, Request
from fastapi.responses import Response

from orchestrator.campaign import approval
from orchestrator.campaign.people import ALLOWED
from orchestrator.dashboard.data import (
    campaign_data,
    campaign_growth,
    campaign_list,
    experiment_detail,
)
from orchestrator.dashboard.deps import (
    ActorDep,
    CampaignId,
    DatabaseDep,
    KeyDep,
    Number,
    Writer,
    not_found,
    refused,
)
from orchestrator.dashboard.security import bearer, identify

router = APIRouter(prefix="/api/campaigns")


def _unless_unchanged(
    request: Request, key: object, version: str, make: Callable[[], Any]
) -> Response:
    """``make()``'s JSON with its version as ETag, or 304 when the page already has that
    version. Pages poll every second and most polls find nothing new: that costs one query.
    A new version is made once and kept (:data:`_KEPT` of them), so twenty open pages cost one
    computation, not twenty."""
    etag = f'"{version}"'
    headers = {"ETag": etag, "Cache-Control": "no-cache"}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    kept: OrderedDict[tuple[object, str], bytes] = request.app.state.kept
    with _MAKING:  # the pages that ask for a new version at once wait for one to make it
        body = kept.get((key, version))
        if body is None:
            body = json.dumps(make(), default=str).encode()
            kept[(key, version)] = body
            while len(kept) > _KEPT:
                kept.popitem(last=False)
    return Response(body, media_type="application/json", headers=headers)


_KEPT = 16
"""Versions of the campaign data kept for the pages that poll."""
_MAKING = threading.Lock()


@router.get("")
def campaigns(request: Request, db: DatabaseDep) -> Response:
    """Every campaign, one line each."""
    return _unless_unchanged(request, "campaigns", db.version(), lambda: campaign_list(db))


@router.get("/{campaign_id}")
def campaign(request: Request, campaign_id: CampaignId, db: DatabaseDep) -> Response:
    """A campaign with its experiments, latest spectra and space."""
    with not_found():
        version = db.version(campaign_id)
        return _unless_unchanged(
            request, campaign_id, version, lambda: campaign_data(db, campaign_id)
        )


@router.get("/{campaign_id}/growth")
def growth(request: Request, campaign_id: CampaignId, db: DatabaseDep) -> Response:
    """The in-situ trajectories of a campaign's latest experiments (an empty list for a lab
    that reads nothing in situ)."""
    with not_found():
        version = db.version(campaign_id)
        return _unless_unchanged(
            request, ("growth", campaign_id), version, lambda: campaign_growth(db, campaign_id)
        )


@router.get("/{campaign_id}/experiments/{number}")
def experiment(campaign_id: CampaignId, number: Number, db: DatabaseDep) -> dict[str, Any]:
    """One experiment (numbered from 1) with its runs and documents."""
    with not_found():
        return experiment_detail(db, campaign_id, number)


@router.post("/{campaign_id}/approve")
def approve(
    campaign_id: CampaignId,
    db: Writer,
    actor: ActorDep,
    numbers: Annotated[list[int] | None, Body(embed=True)] = None,
) -> dict[str, Any]:
    """Approve proposals (``null``: every one awaiting)."""
    return {"approved": refused(approval.approve, db, campaign_id, numbers, actor=actor)}


@router.post("/{campaign_id}/reject")
def reject(
    campaign_id: CampaignId,
    db: Writer,
    actor: ActorDep,
    number: Annotated[int, Body(embed=True)],
    reason: Annotated[str, Body(embed=True)],
) -> dict[str, Any]:
    """Reject a proposal, with the reason."""
    refused(approval.reject, db, campaign_id, number, reason, actor=actor)
    return {"rejected": number}


@router.post("/{campaign_id}/add")
def add(
    campaign_id: CampaignId,
    db: Writer,
    actor: ActorDep,
    conditions: Annotated[dict[str, Any], Body(embed=True)],
    note: Annotated[str | None, Body(embed=True)] = None,
) -> dict[str, Any]:
    """Add a hand-chosen experiment (a propose-only user's awaits approval)."""
    return {"added": refused(approval.add, db, campaign_id, conditions, note, actor=actor)}


@router.post("/{campaign_id}/pause")
def pause(
    campaign_id: CampaignId,
    db: Writer,
    actor: ActorDep,
    reason: Annotated[str | None, Body(embed=True)] = None,
) -> dict[str, Any]:
    """Ask a running campaign to pause after the experiment under way."""
    return {"status": refused(approval.pause, db, campaign_id, reason, actor=actor)}


@router.post("/{campaign_id}/resume")
def resume(campaign_id: CampaignId, db: Writer, actor: ActorDep, key: KeyDep) -> dict[str, Any]:
    """Resume a paused campaign in a process of its own, acting as the user."""
    return {"pid": refused(approval.resume_in_background, db, campaign_id, actor=actor, key=key)}


@router.get("/{campaign_id}/audit")
def audit(campaign_id: CampaignId, db: DatabaseDep) -> list[dict[str, Any]]:
    """Who did what on the campaign, oldest first."""
    with not_found():
        db.campaign(campaign_id)
    return [asdict(entry) for entry in db.audit(campaign_id)]


people = APIRouter(prefix="/api")


@people.get("/me")
def me(request: Request, db: DatabaseDep) -> dict[str, Any]:
    """Who the page's key (``Authorization: Bearer``) is, and what they may do: ``user``
    None when it is nobody's."""
    given = bearer(request.headers.get("authorization", ""))
    actor = identify(db, given, request.app.state.token)
    if actor is None:
        return {"user": None, "role": None, "may": []}
    return {"user": actor.name, "role": actor.role, "may": sorted(ALLOWED[actor.role])}

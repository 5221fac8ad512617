"""The HTML pages (templates/ filled in) and the static files they load (static/)."""

from __future__ import annotations

import html
import re
from functools import cache
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, Response

from orchestrator.campaign.people import has_users
from orchestrator.dashboard.data import experiment_detail, plotly_js
from orchestrator.dashboard.deps import CampaignId, DatabaseDep, Number, not_found

router = APIRouter()
_HERE = Path(__file__).resolve().parent
_STATIC = {p.name: p for p in (_HERE / "static").iterdir()}
_TYPES = {".js": "application/javascript", ".css": "text/css"}


@cache
def _template(name: str) -> str:
    return (_HERE / "templates" / f"{name}.html").read_text()


def _fill(template: str, values: dict[str, str]) -> str:
    """``{{name}}`` placeholders replaced in one pass: a value is never searched for more
    placeholders (a campaign named ``{{body}}`` stays a name)."""
    return re.sub(r"\{\{(\w+)\}\}", lambda m: values[m.group(1)], template)


def _page(request: Request, title: str, body: str, **data: int) -> str:
    """A page: the shell around a body template; ``data`` becomes the body's ``data-*``
    attributes, which the page's script reads."""
    writable = request.app.state.token is not None or has_users(request.app.state.db)
    numbers = {k: str(int(v)) for k, v in data.items()}
    return _fill(
        _template("shell"),
        {
            "title": html.escape(title),
            "mode": "" if writable else '<span class="ro">read-only</span>',
            "data": "".join(f' data-{k}="{v}"' for k, v in numbers.items()),
            "body": _fill(_template(body), numbers),
        },
    )


@router.get("/static/plotly.min.js", include_in_schema=False)
def plotly_bundle() -> FileResponse:
    """Plotly's JavaScript from the installed package (labs are often offline: no CDN)."""
    return FileResponse(plotly_js(), media_type="application/javascript")


@router.get("/static/{name}", include_in_schema=False)
def static(name: str) -> Response:
    """The dashboard's own scripts and style sheet (only the files in static/)."""
    path = _STATIC.get(name)
    if path is None:
        return Response(status_code=404)
    return FileResponse(path, media_type=_TYPES.get(path.suffix, "text/plain"))


@router.get("/favicon.ico", include_in_schema=False)
def favicon() -> Response:
    return Response(status_code=204)


@router.get("/", response_class=HTMLResponse)
def index(request: Request) -> str:
    """The campaigns."""
    return _page(request, "Campaigns", "index")


@router.get("/campaigns/{campaign_id}", response_class=HTMLResponse)
def campaign_page(request: Request, campaign_id: CampaignId, db: DatabaseDep) -> str:
    """One campaign: convergence, spectra, explored conditions, approvals."""
    with not_found():
        name = db.campaign(campaign_id)["name"]
    return _page(request, f"Campaign {campaign_id}: {name}", "campaign", campaign=campaign_id)


@router.get("/campaigns/{campaign_id}/audit", response_class=HTMLResponse)
def audit_page(request: Request, campaign_id: CampaignId, db: DatabaseDep) -> str:
    """Who did what on one campaign: approvals, rejections, additions, pauses, runs."""
    with not_found():
        name = db.campaign(campaign_id)["name"]
    return _page(request, f"Campaign {campaign_id}: {name}, who did what", "audit",
                 campaign=campaign_id)  # fmt: skip


@router.get("/campaigns/{campaign_id}/experiments/{number}", response_class=HTMLResponse)
def experiment_page(
    request: Request, campaign_id: CampaignId, number: Number, db: DatabaseDep
) -> str:
    """One experiment: conditions, observables, provenance, spectra, documents."""
    with not_found():
        experiment_detail(db, campaign_id, number)  # 404 for one that does not exist
    title = f"Campaign {campaign_id}, experiment {number}"
    return _page(request, title, "experiment", campaign=campaign_id, number=number)

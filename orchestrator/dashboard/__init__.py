"""The live dashboard (``qdlab dashboard``): watch and steer campaigns from a browser.

A FastAPI application over the campaign database. Pages are small HTML shells; their data come
from the JSON API (:mod:`.api`), which the pages poll every second, so an experiment the campaign
stores appears within about a second without reloading. Plots are Plotly, its JavaScript
served from the installed ``plotly`` package (labs are often offline: no CDN).

Read: ``GET /api/campaigns``, ``GET /api/campaigns/{id}``, ``GET
/api/campaigns/{id}/experiments/{number}``. Write, with ``Authorization: Bearer <token>``:
``POST /api/campaigns/{id}/approve`` ``{"numbers": [..]}`` (or ``null``: all), ``.../reject``
``{"number": N, "reason": "..."}``, ``.../add`` ``{"conditions": {...}, "note": "..."}``,
``.../pause`` ``{"reason": "..."}``, ``.../resume``: the same operations as ``qdlab campaign
approve/reject/add/pause/resume`` (:mod:`orchestrator.campaign.approval`). Without a token
the dashboard is read-only and refuses every write; with one, a write without it (or with
another) is refused with 401 and changes nothing.

Layout: :mod:`.api` and :mod:`.pages` are the routers, :mod:`.deps` the database and token they
depend on, :mod:`.data` what they return (plain functions of the database); the pages'
HTML, JavaScript and CSS are files in ``templates/`` and ``static/``.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable

from fastapi import FastAPI

from db import Database
from orchestrator.dashboard import api, pages
from orchestrator.dashboard.data import LATEST_SPECTRA, campaign_data, plotly_js
from orchestrator.dashboard.security import Guard, loopback_names

__all__ = ["LATEST_SPECTRA", "campaign_data", "create_app", "plotly_js"]


def create_app(url: str, token: str | None = None, hosts: Iterable[str] | None = None) -> FastAPI:
    """The dashboard over the database at ``url``; writes need a user's API key, or ``token``
    (none, in a lab without users: read-only); it answers to the ``Host`` names ``hosts``
    (default: this machine's loopback names) and refuses what :mod:`.security` refuses."""
    app = FastAPI(title="QDLab dashboard", docs_url=None, redoc_url=None)
    app.state.db = Database(url, create=False)
    app.state.token = token
    app.state.kept = OrderedDict()  # the polled data by version (api._unless_unchanged)
    app.include_router(api.router)
    app.include_router(api.people)
    app.include_router(pages.router)
    hosts = loopback_names() if hosts is None else hosts
    app.add_middleware(Guard, token=token, hosts=hosts, db=app.state.db)
    return app

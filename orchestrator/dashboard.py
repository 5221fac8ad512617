"""The live dashboard (``qdlab dashboard``): watch and steer campaigns from a browser.

A FastAPI application over the campaign database. Pages are small HTML shells; their data come
from the JSON API below, which the pages poll every second, so an experiment the campaign
stores appears within about a second without reloading. Plots are Plotly, its JavaScript
served from the installed ``plotly`` package (labs are often offline: no CDN).

Read: ``GET /api/campaigns``, ``GET /api/campaigns/{id}``, ``GET
/api/campaigns/{id}/experiments/{number}``. Write, with ``Authorization: Bearer <token>``:
``POST /api/campaigns/{id}/approve`` ``{"numbers": [..]}`` (or ``null``: all), ``.../reject``
``{"number": N, "reason": "..."}``, ``.../add`` ``{"conditions": {...}, "note": "..."}``,
``.../pause`` ``{"reason": "..."}``, ``.../resume``: the same operations as ``qdlab campaign
approve/reject/add/pause/resume`` (:mod:`orchestrator.approval`). Without a token the dashboard
is read-only and refuses every write; with one, a write without it (or with another) is refused
with 401 and changes nothing.
"""

from __future__ import annotations

import html
import math
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

from fastapi import Body, FastAPI, Header, HTTPException
from fastapi.responses import FileResponse, HTMLResponse, Response

from db import Database, DatabaseError
from devices.config import ConfigError
from orchestrator import approval
from orchestrator.config import target_of
from orchestrator.summary import target_text
from planners import Target

__all__ = ["LATEST_SPECTRA", "campaign_data", "create_app", "plotly_js"]

LATEST_SPECTRA = 5
"""How many of the last measured experiments the campaign page shows the spectra of."""

_SHOWN = ("pl_peak_nm", "pl_fwhm_nm", "abs_peak_nm", "edge_length_est_nm", "plqy_est")


def plotly_js() -> Path:
    """The installed plotly package's own ``plotly.min.js``."""
    import plotly

    return Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


def _finite(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def _target(campaign: Mapping[str, Any]) -> Target:
    """The target of a stored campaign."""
    return target_of(campaign["target"] or {})


def _settings(campaign: Mapping[str, Any]) -> Mapping[str, Any]:
    return (campaign.get("config") or {}).get("campaign") or {}


def _campaign_summary(
    campaign: Mapping[str, Any], experiments: list[dict[str, Any]]
) -> dict[str, Any]:
    """One line of the campaigns list, from the campaign and its experiments' rows
    (:func:`_experiment_row`)."""
    settings = _settings(campaign)
    errors = [
        e["error"]
        for e in experiments
        if e["status"] == "done" and e["error"] is not None and e["shape_ok"]
    ]
    return {
        "id": campaign["id"],
        "name": campaign["name"],
        "route": campaign["route"],
        "target": target_text(campaign["target"] or {}),
        "status": campaign["status"],
        "status_reason": campaign["status_reason"],
        "experiments": sum(e["status"] != "rejected" for e in experiments),
        "budget": settings.get("budget"),
        "best_error": min(errors) if errors else None,
        "awaiting": sum(e["status"] == "awaiting_approval" for e in experiments),
        "workcells": [w["name"] for w in settings.get("workcells") or []],
        "approval": settings.get("approval", "none"),
    }


def _experiment_row(r: Mapping[str, Any], target: Target) -> dict[str, Any]:
    observables = r["observables"] or {}
    error = target.error(observables)
    return {
        "number": r["index"] + 1,
        "status": r["status"],
        "conditions": r["conditions"],
        "observables": {k: _finite(observables.get(k)) for k in _SHOWN if k in observables},
        "error": _finite(error),
        "shape_ok": target.shape_ok(observables, r["conditions"]),
        "predicted_mean": _finite(r["predicted_mean"]),
        "predicted_std": _finite(r["predicted_std"]),
        "acquisition_value": _finite(r["acquisition_value"]),
        "planner": r["planner_name"],
        "reason": r["failure_reason"],
        "workcell": r["workcell"],
    }


def _spectra(db: Database, experiment_id: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for sp in db.spectra(experiment_id=experiment_id):
        kind = next((k for k in ("pl", "absorbance") if sp.data_key.endswith(f"_{k}")), None)
        if kind is not None:
            if sp.wavelengths_nm is not None:
                out["wavelengths_nm"] = sp.wavelengths_nm.tolist()
            out[kind] = sp.values.tolist()
    return out


def campaign_data(db: Database, campaign_id: int) -> dict[str, Any]:
    """Everything the campaign page shows: the campaign, every experiment, the spectra of the
    last :data:`LATEST_SPECTRA` measured ones, the space explored."""
    campaign = db.campaign(campaign_id)
    target = _target(campaign)
    rows = db.experiments(campaign_id)
    measured = [r for r in rows if r["status"] == "done" and r["run_uid"]][-LATEST_SPECTRA:]
    experiments = [_experiment_row(r, target) for r in rows]
    return {
        "campaign": _campaign_summary(campaign, experiments),
        "target": {
            "observable": target.observable,
            "value": target.value,
            "tolerance": target.tolerance,
            "shape": target.shape,
        },
        "space": _settings(campaign).get("space", {}),
        "experiments": experiments,
        "spectra": [{"number": r["index"] + 1, **_spectra(db, r["id"])} for r in measured],
    }


def _experiment_detail(db: Database, campaign_id: int, number: int) -> dict[str, Any]:
    campaign = db.campaign(campaign_id)
    target = _target(campaign)
    eid = db.experiment_id(campaign_id, number - 1)
    if eid is None:
        raise DatabaseError(f"campaign {campaign_id} has no experiment {number}")
    row = db.experiment(eid)
    runs = db.runs(experiment_id=eid)
    documents = []
    for run in runs:
        for name, doc in db.run_documents(run["uid"]):
            if name == "event":  # the spectra are shown as plots, not as numbers
                doc = {
                    **doc,
                    "data": {k: v for k, v in doc["data"].items() if not isinstance(v, list)},
                }
            documents.append([name, doc])
    return {
        "campaign": {"id": campaign_id, "name": campaign["name"]},
        "experiment": _experiment_row(row, target),
        "provenance": row["provenance"],
        "planner_version": row["planner_version"],
        "seed": row["seed"],
        "runs": runs,
        "documents": documents,
        "spectra": _spectra(db, eid),
    }


def create_app(url: str, token: str | None = None) -> FastAPI:
    """The dashboard over the database at ``url``; writes need ``token`` (none: read-only)."""
    db = Database(url, create=False)
    app = FastAPI(title="QDLab dashboard", docs_url=None, redoc_url=None)
    app.state.db = db

    def read(fn: Any, *args: Any) -> Any:
        try:
            return fn(db, *args)
        except DatabaseError as exc:
            raise HTTPException(404, str(exc)) from None

    def authorised(authorization: str | None) -> None:
        if token is None:
            raise HTTPException(403, "this dashboard is read-only: start it with --token")
        given = (authorization or "").removeprefix("Bearer ").strip()
        if not given or not secrets.compare_digest(given.encode(), token.encode()):
            raise HTTPException(401, "a write needs the dashboard's token (--token)")

    def write(authorization: str | None, fn: Any, *args: Any) -> Any:
        authorised(authorization)
        try:
            return fn(db, *args)
        except (ConfigError, DatabaseError) as exc:
            raise HTTPException(400, str(exc)) from None

    @app.get("/static/plotly.min.js", include_in_schema=False)
    def plotly_bundle() -> FileResponse:
        return FileResponse(plotly_js(), media_type="application/javascript")

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> Response:
        return Response(status_code=204)

    @app.get("/api/campaigns")
    def campaigns() -> list[dict[str, Any]]:
        listed = []
        for c in db.campaigns():
            target = _target(c)
            rows = [_experiment_row(r, target) for r in db.experiments(c["id"])]
            listed.append(_campaign_summary(c, rows))
        return listed

    @app.get("/api/campaigns/{campaign_id}")
    def campaign(campaign_id: int) -> dict[str, Any]:
        return read(campaign_data, campaign_id)

    @app.get("/api/campaigns/{campaign_id}/experiments/{number}")
    def experiment(campaign_id: int, number: int) -> dict[str, Any]:
        return read(_experiment_detail, campaign_id, number)

    @app.post("/api/campaigns/{campaign_id}/approve")
    def approve(
        campaign_id: int,
        numbers: Annotated[list[int] | None, Body(embed=True)] = None,
        authorization: Annotated[str | None, Header()] = None,
    ) -> dict[str, Any]:
        return {"approved": write(authorization, approval.approve, campaign_id, numbers)}

    @app.post("/api/campaigns/{campaign_id}/reject")
    def reject(
        campaign_id: int,
        number: Annotated[int, Body(embed=True)],
        reason: Annotated[str, Body(embed=True)],
        authorization: Annotated[str | None, Header()] = None,
    ) -> dict[str, Any]:
        write(authorization, approval.reject, campaign_id, number, reason)
        return {"rejected": number}

    @app.post("/api/campaigns/{campaign_id}/add")
    def add(
        campaign_id: int,
        conditions: Annotated[dict[str, Any], Body(embed=True)],
        note: Annotated[str | None, Body(embed=True)] = None,
        authorization: Annotated[str | None, Header()] = None,
    ) -> dict[str, Any]:
        return {"added": write(authorization, approval.add, campaign_id, conditions, note)}

    @app.post("/api/campaigns/{campaign_id}/pause")
    def pause(
        campaign_id: int,
        reason: Annotated[str | None, Body(embed=True)] = None,
        authorization: Annotated[str | None, Header()] = None,
    ) -> dict[str, Any]:
        return {"status": write(authorization, approval.pause, campaign_id, reason)}

    @app.post("/api/campaigns/{campaign_id}/resume")
    def resume(
        campaign_id: int, authorization: Annotated[str | None, Header()] = None
    ) -> dict[str, Any]:
        return {"pid": write(authorization, approval.resume_in_background, campaign_id)}

    @app.get("/", response_class=HTMLResponse)
    def index() -> str:
        return _page("QDLab campaigns", _INDEX_BODY, writable=token is not None)

    @app.get("/campaigns/{campaign_id}", response_class=HTMLResponse)
    def campaign_page(campaign_id: int) -> str:
        name = read(lambda d, c: d.campaign(c)["name"], campaign_id)
        body = _CAMPAIGN_BODY.replace("__ID__", str(campaign_id))
        return _page(f"Campaign {campaign_id}: {name}", body, writable=token is not None)

    @app.get("/campaigns/{campaign_id}/experiments/{number}", response_class=HTMLResponse)
    def experiment_page(campaign_id: int, number: int) -> str:
        read(_experiment_detail, campaign_id, number)  # 404 for one that does not exist
        body = _EXPERIMENT_BODY.replace("__ID__", str(campaign_id)).replace("__N__", str(number))
        return _page(f"Campaign {campaign_id}, experiment {number}", body, token is not None)

    return app


def _page(title: str, body: str, writable: bool) -> str:
    mode = "" if writable else '<span class="ro">read-only</span>'
    return (
        _SHELL.replace("__TITLE__", html.escape(title))
        .replace("__MODE__", mode)
        .replace("__BODY__", body)
    )


_SHELL = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>__TITLE__</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<script src="/static/plotly.min.js"></script>
<style>
body{font-family:system-ui,sans-serif;margin:0 1.5rem 2rem;color:#222}
header{display:flex;gap:1rem;align-items:center;border-bottom:1px solid #ddd;padding:.6rem 0}
header a{font-weight:600;color:#222;text-decoration:none}
.ro{background:#eee;border-radius:3px;padding:.1rem .4rem;font-size:.8rem}
table{border-collapse:collapse;font-size:.85rem}
td,th{border-bottom:1px solid #eee;padding:.25rem .6rem;text-align:left}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(460px,1fr));gap:1rem}
.plot{height:360px}.wide{grid-column:1/-1}
.failed{color:#b00}.done{color:#070}.awaiting_approval{color:#a60}
#message{min-height:1.2rem;color:#b00}
input[type=password],input[type=text]{font-size:.85rem}
</style></head><body>
<header><a href="/">QDLab</a><span id="title">__TITLE__</span>__MODE__
<form style="margin-left:auto" onsubmit="return false"><label>token
<input type="password" id="token" size="12" autocomplete="off"></label></form>
</header>
<div id="message" role="status"></div>
<script>
const tokenInput = document.getElementById("token");
tokenInput.value = localStorage.getItem("qdlab-token") || "";
tokenInput.onchange = () => localStorage.setItem("qdlab-token", tokenInput.value);
function say(text) { document.getElementById("message").textContent = text; }
function esc(v) {
  return String(v ?? "").replace(/[&<>"']/g, c => "&#" + c.charCodeAt(0) + ";");
}
function fmt(v, d = 2) { return typeof v === "number" ? v.toFixed(d) : (v ?? ""); }
async function post(path, body) {
  const r = await fetch(path, {method: "POST", body: JSON.stringify(body),
    headers: {"Content-Type": "application/json",
              "Authorization": "Bearer " + tokenInput.value}});
  const data = await r.json();
  if (!r.ok) { say("refused: " + (data.detail ?? r.status)); return null; }
  say(""); return data;
}
function poll(load) { load(); setInterval(load, 1000); }
</script>
__BODY__
</body></html>
"""

_INDEX_BODY = """<h2>Campaigns</h2>
<table id="campaigns"><thead><tr><th>#</th><th>name</th><th>route</th><th>target</th>
<th>status</th><th>experiments</th><th>best |error| nm</th><th>awaiting</th><th>workcells</th>
</tr></thead><tbody></tbody></table>
<script>
poll(async () => {
  const rows = await (await fetch("/api/campaigns")).json();
  document.querySelector("#campaigns tbody").innerHTML = rows.map(c => `<tr>
    <td>${c.id}</td><td><a href="/campaigns/${c.id}">${esc(c.name)}</a></td>
    <td>${esc(c.route)}</td><td>${esc(c.target)}</td><td>${esc(c.status)}</td>
    <td>${c.experiments}/${c.budget ?? "?"}</td><td>${fmt(c.best_error)}</td>
    <td>${c.awaiting || ""}</td><td>${esc(c.workcells.join(", "))}</td></tr>`).join("");
});
</script>"""

_CAMPAIGN_BODY = """<p><span id="summary"></span>
<button id="pause" hidden>pause</button><button id="resume" hidden>resume</button></p>
<section id="approval" hidden><h3>Awaiting approval</h3>
<table><thead><tr><th>#</th><th>conditions</th><th>predicted</th><th></th></tr></thead>
<tbody id="awaiting"></tbody></table></section>
<div class="grid">
<div id="convergence" class="plot"></div><div id="spectra" class="plot"></div>
<div id="explored" class="plot wide"></div>
<div id="predicted" class="plot"></div>
</div>
<h3>Experiments</h3>
<table><thead><tr><th>#</th><th>status</th><th>conditions</th><th>PL nm</th><th>FWHM nm</th>
<th>|error| nm</th><th>planner</th><th>why</th></tr></thead><tbody id="experiments"></tbody>
</table>
<h3>Add an experiment</h3>
<p><input type="text" id="add-conditions" size="80"
 placeholder='{"br_pb_ratio": 8, "temperature_c": 150, "ligand": "oa_olam", "time_s": 30}'>
<input type="text" id="add-note" placeholder="why (optional)">
<button id="add">add</button></p>
<script>
const ID = __ID__;
let shown = -1;
const cond = c => Object.entries(c).map(([k, v]) => `${k}=${fmt(v, 3)}`).join(", ");
async function approve(n) {
  if (await post(`/api/campaigns/${ID}/approve`, {numbers: [n]})) load();
}
async function reject(n) {
  const reason = document.getElementById(`reason-${n}`).value;
  if (await post(`/api/campaigns/${ID}/reject`, {number: n, reason})) load();
}
document.getElementById("pause").onclick = async () => {
  if (await post(`/api/campaigns/${ID}/pause`, {reason: "from the dashboard"})) load();
};
document.getElementById("resume").onclick = async () => {
  if (await post(`/api/campaigns/${ID}/resume`, {})) load();
};
document.getElementById("add").onclick = async () => {
  let conditions;
  try { conditions = JSON.parse(document.getElementById("add-conditions").value); }
  catch (e) { say("conditions: not JSON"); return; }
  const note = document.getElementById("add-note").value || null;
  if (await post(`/api/campaigns/${ID}/add`, {conditions, note})) load();
};
function plots(d) {
  const t = d.target, xs = d.experiments;
  const done = xs.filter(e => e.error !== null);
  const right = done.filter(e => e.shape_ok), wrong = done.filter(e => !e.shape_ok);
  let best = Infinity;
  const bestSoFar = right.map(e => (best = Math.min(best, e.error)));
  Plotly.react("convergence", [
    {x: right.map(e => e.number), y: right.map(e => e.error), mode: "markers", name: "|error|"},
    {x: wrong.map(e => e.number), y: wrong.map(e => e.error), mode: "markers",
     marker: {symbol: "x", color: "gray"}, name: `not ${t.shape}`},
    {x: right.map(e => e.number), y: bestSoFar, mode: "lines", name: "best so far",
     line: {shape: "hv"}},
    {x: [1, Math.max(xs.length, 1)], y: [t.tolerance, t.tolerance], mode: "lines",
     line: {dash: "dot", color: "gray"}, name: "tolerance"}],
    {title: {text: "Convergence"}, xaxis: {title: {text: "experiment"}},
     yaxis: {title: {text: "|error| (nm)"}, type: "log"}, margin: {t: 40}});
  const sp = [];
  d.spectra.forEach(s => {
    const peak = Math.max(...(s.pl || [1]));
    sp.push({x: s.wavelengths_nm, y: (s.pl || []).map(v => v / peak), mode: "lines",
             name: `#${s.number} PL`});
    sp.push({x: s.wavelengths_nm, y: s.absorbance, mode: "lines", yaxis: "y2",
             line: {dash: "dot"}, name: `#${s.number} abs`});
  });
  Plotly.react("spectra", sp, {title: {text: "Latest spectra"},
    xaxis: {title: {text: "wavelength (nm)"}},
    yaxis: {title: {text: "PL (normalised)"}}, margin: {t: 40},
    yaxis2: {title: {text: "absorbance"}, overlaying: "y", side: "right", tickformat: ".2f",
             showgrid: false},
    legend: {orientation: "h", y: -0.25},
    shapes: t.observable === "pl_peak_nm" ? [{type: "line", x0: t.value, x1: t.value,
      yref: "paper", y0: 0, y1: 1, line: {color: "black", dash: "dash"}}] : []});
  // each condition against the outcome, coloured by |error| (SVG: quick to draw, no WebGL)
  const names = Object.keys(d.space), explored = [], layout = {
    title: {text: "Explored conditions"}, margin: {t: 40}, showlegend: false,
    grid: {rows: 1, columns: Math.max(names.length, 1), pattern: "independent"}};
  names.forEach((n, i) => {
    const axis = i === 0 ? "" : String(i + 1);
    explored.push({x: done.map(e => e.conditions[n]), y: done.map(e => e.observables[t.observable]),
      xaxis: "x" + axis, yaxis: "y" + axis, mode: "markers", type: "scatter",
      text: done.map(e => `#${e.number}`),
      marker: {size: 5, color: done.map(e => e.error), colorscale: "Viridis",
               reversescale: true, showscale: i === names.length - 1,
               colorbar: {title: {text: "|error|"}}}});
    layout["xaxis" + axis] = {title: {text: n}};
    layout["yaxis" + axis] = {title: {text: i === 0 ? t.observable : ""}};
  });
  Plotly.react("explored", explored, layout);
  const pr = done.filter(e => e.predicted_mean !== null);
  const measured = pr.map(e => e.observables[t.observable]);
  const lo = Math.min(...measured, ...pr.map(e => e.predicted_mean)),
        hi = Math.max(...measured, ...pr.map(e => e.predicted_mean));
  Plotly.react("predicted", [
    {x: pr.map(e => e.predicted_mean), y: measured, mode: "markers", name: "experiments",
     error_x: {type: "data", array: pr.map(e => e.predicted_std ?? 0)},
     text: pr.map(e => `#${e.number}`)},
    {x: [lo, hi], y: [lo, hi], mode: "lines", line: {dash: "dot", color: "gray"},
     name: "measured = predicted"}],
    {title: {text: "Planner's prediction vs measured"}, margin: {t: 40},
     annotations: pr.length ? [] : [{text: "no predictions from this planner yet",
       showarrow: false, xref: "paper", yref: "paper", x: 0.5, y: 0.5}],
     xaxis: {title: {text: `predicted ${t.observable}`}},
     yaxis: {title: {text: `measured ${t.observable}`}}});
}
async function load() {
  const r = await fetch(`/api/campaigns/${ID}`);
  if (!r.ok) { say(`campaign ${ID}: ${r.status}`); return; }
  const d = await r.json(), c = d.campaign;
  document.getElementById("summary").textContent =
    `${c.route}, target ${c.target}: ${c.status}` +
    (c.status_reason ? ` (${c.status_reason})` : "") +
    `; ${c.experiments}/${c.budget ?? "?"} experiments; best |error| ` +
    (c.best_error === null ? "-" : `${fmt(c.best_error)} nm`) +
    (c.workcells.length ? `; workcells ${c.workcells.join(", ")}` : "");
  document.getElementById("pause").hidden = !["running", "created"].includes(c.status);
  document.getElementById("resume").hidden = c.status !== "paused";
  const waiting = d.experiments.filter(e => e.status === "awaiting_approval");
  document.getElementById("approval").hidden = waiting.length === 0;
  document.getElementById("awaiting").innerHTML = waiting.map(e => `<tr>
    <td>${e.number}</td><td>${esc(cond(e.conditions))}</td>
    <td>${fmt(e.predicted_mean)} ± ${fmt(e.predicted_std)}</td>
    <td><button class="approve" data-n="${e.number}" onclick="approve(${e.number})">approve</button>
    <input type="text" id="reason-${e.number}" placeholder="reason to reject">
    <button class="reject" onclick="reject(${e.number})">reject</button></td></tr>`).join("");
  document.getElementById("experiments").innerHTML = d.experiments.map(e => `<tr>
    <td><a href="/campaigns/${ID}/experiments/${e.number}">${e.number}</a></td>
    <td class="${e.status}">${e.status}</td><td>${esc(cond(e.conditions))}</td>
    <td>${fmt(e.observables.pl_peak_nm)}</td><td>${fmt(e.observables.pl_fwhm_nm)}</td>
    <td>${fmt(e.error)}</td><td>${esc(e.planner)}</td><td>${esc(e.reason)}</td></tr>`
  ).join("");
  const stamp = d.experiments.length * 1000 + d.experiments.filter(e => e.error !== null).length;
  if (stamp !== shown) { shown = stamp; plots(d); }  // redraw only when something changed
}
poll(load);
</script>"""

_EXPERIMENT_BODY = """<p><a href="/campaigns/__ID__">back to the campaign</a></p>
<div class="grid"><div><h3>Conditions</h3><table id="conditions"></table>
<h3>Observables</h3><table id="observables"></table>
<h3>Provenance</h3><pre id="provenance"></pre></div>
<div id="spectrum" class="plot"></div></div>
<h3>Documents</h3><pre id="documents" style="max-height:30rem;overflow:auto"></pre>
<script>
const table = (id, obj) => document.getElementById(id).innerHTML = Object.entries(obj)
  .map(([k, v]) => `<tr><th>${esc(k)}</th><td>${esc(fmt(v, 3))}</td></tr>`).join("");
(async () => {
  const d = await (await fetch("/api/campaigns/__ID__/experiments/__N__")).json();
  const e = d.experiment;
  table("conditions", e.conditions);
  table("observables", {status: e.status, ...e.observables, "|error| nm": e.error,
                        why: e.reason});
  document.getElementById("provenance").textContent = JSON.stringify({planner: e.planner,
    version: d.planner_version, seed: d.seed, acquisition_value: e.acquisition_value,
    predicted_mean: e.predicted_mean, predicted_std: e.predicted_std,
    workcell: e.workcell, ...d.provenance}, null, 2);
  document.getElementById("documents").textContent =
    d.documents.map(([n, doc]) => n + " " + JSON.stringify(doc)).join("\\n");
  const s = d.spectra;
  if (s.wavelengths_nm) Plotly.newPlot("spectrum", [
    {x: s.wavelengths_nm, y: s.pl, name: "PL (counts)"},
    {x: s.wavelengths_nm, y: s.absorbance, name: "absorbance", yaxis: "y2"}],
    {title: {text: "Spectra"}, xaxis: {title: {text: "wavelength (nm)"}}, margin: {t: 40},
     yaxis2: {overlaying: "y", side: "right", title: {text: "absorbance"}}});
})();
</script>"""

"""What the dashboard shows, computed from the database: plain functions the routers return
and tests call directly."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from db import Database, DatabaseError
from db.records import Experiment, ExperimentStatus
from orchestrator.campaign.config import target_of
from orchestrator.campaign.summary import target_text
from orchestrator.execution.observe import (
    campaign_trajectories,
    grown_for_s,
    trajectory_from_documents,
)
from planners import Target

__all__ = [
    "GROWTH_SHOWN",
    "LATEST_SPECTRA",
    "campaign_data",
    "campaign_growth",
    "campaign_list",
    "experiment_detail",
    "plotly_js",
]

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
        if e["status"] == ExperimentStatus.DONE and e["error"] is not None and e["shape_ok"]
    ]
    return {
        "id": campaign["id"],
        "name": campaign["name"],
        "route": campaign["route"],
        "target": target_text(campaign["target"] or {}),
        "status": campaign["status"],
        "status_reason": campaign["status_reason"],
        "experiments": sum(e["status"] != ExperimentStatus.REJECTED for e in experiments),
        "budget": settings.get("budget"),
        "best_error": min(errors) if errors else None,
        "awaiting": sum(e["status"] == ExperimentStatus.AWAITING_APPROVAL for e in experiments),
        "workcells": [w["name"] for w in settings.get("workcells") or []],
        "approval": settings.get("approval", "none"),
    }


def _experiment_row(r: Experiment, target: Target) -> dict[str, Any]:
    observables = r.observables or {}
    error = target.error(observables)
    return {
        "number": r.number,
        "status": r.status,
        "conditions": r.conditions,
        "observables": {k: _finite(observables.get(k)) for k in _SHOWN if k in observables},
        "error": _finite(error),
        "shape_ok": target.shape_ok(observables, r.conditions),
        "predicted_mean": _finite(r.predicted_mean),
        "predicted_std": _finite(r.predicted_std),
        "acquisition_value": _finite(r.acquisition_value),
        "planner": r.planner_name,
        "chosen_by": r.chosen_by,
        "reason": r.failure_reason,
        "workcell": r.workcell,
    }


def _spectra(db: Database, experiment_id: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for sp in db.spectra(experiment_id=experiment_id, stream="primary"):
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
    measured = [r for r in rows if r.status == ExperimentStatus.DONE and r.run_uid][
        -LATEST_SPECTRA:
    ]
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
        "spectra": [{"number": r.number, **_spectra(db, r.id)} for r in measured],
    }


GROWTH_SHOWN = 20
"""How many of the last experiments read in situ the campaign page overlays."""


def _growth(points: list[dict[str, Any]]) -> dict[str, Any]:
    """A trajectory as the pages plot it (NaN as null)."""
    return {
        "hot": bool(points[0]["hot"]) if points else None,
        **{
            key: [_finite(p[key]) for p in points]
            for key in ("growth_time_s", "temperature_c", "pl_peak_nm", "pl_fwhm_nm", "plqy_est")
        },
    }


def _monitored(documents: list[tuple[str, dict[str, Any]]]) -> dict[str, list[float]]:
    """The vessel temperature of a run's monitor stream, seconds from the run's start."""
    start = next((d["time"] for n, d in documents if n == "start"), 0.0)
    monitors = {d["uid"] for n, d in documents if n == "descriptor"
                and d.get("name", "").endswith("_monitor")}  # fmt: skip
    out: dict[str, list[float]] = {"time_s": [], "temperature_c": []}
    for name, doc in documents:
        if name == "event" and doc["descriptor"] in monitors:
            ((key, value),) = doc["data"].items()
            out["time_s"].append(doc["timestamps"][key] - start)
            out["temperature_c"].append(value)
    return out


def campaign_growth(db: Database, campaign_id: int) -> list[dict[str, Any]]:
    """The in-situ trajectories of the last :data:`GROWTH_SHOWN` experiments read in situ,
    each with its number, when it was quenched and what the product measured."""
    rows = db.experiments(campaign_id)
    return [
        {
            "number": r.number,
            "quench_s": grown_for_s(r.conditions),
            "product_pl_nm": _finite(r.observables.get("pl_peak_nm")),
            **_growth(points),
        }
        for r, points in campaign_trajectories(db, rows, GROWTH_SHOWN)
    ]


def experiment_detail(db: Database, campaign_id: int, number: int) -> dict[str, Any]:
    """Everything the experiment page shows: its row, provenance, runs, documents, spectra."""
    campaign = db.campaign(campaign_id)
    target = _target(campaign)
    eid = db.experiment_id(campaign_id, number - 1)
    if eid is None:
        raise DatabaseError(f"campaign {campaign_id} has no experiment {number}")
    row = db.experiment(eid)
    runs = db.runs(experiment_id=eid)
    documents = []
    stored: list[tuple[str, dict[str, Any]]] = []
    for run in runs:
        stored = db.run_documents(run["uid"])
        for name, doc in stored:
            if name == "event":  # the spectra are shown as plots, not as numbers
                doc = {
                    **doc,
                    "data": {k: v for k, v in doc["data"].items() if not isinstance(v, list)},
                }
            documents.append([name, doc])
    return {
        "campaign": {"id": campaign_id, "name": campaign["name"]},
        "experiment": _experiment_row(row, target),
        "provenance": row.provenance,
        "planner_version": row.planner_version,
        "seed": row.seed,
        "runs": runs,
        "documents": documents,
        "spectra": _spectra(db, eid),
        "growth": _growth(trajectory_from_documents(stored)),  # the last run's
        "temperature": _monitored(stored),
    }


def campaign_list(db: Database) -> list[dict[str, Any]]:
    """One line per campaign (the index page)."""
    listed = []
    for c in db.campaigns():
        target = _target(c)
        rows = [_experiment_row(r, target) for r in db.experiments(c["id"])]
        listed.append(_campaign_summary(c, rows))
    return listed

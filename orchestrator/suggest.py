"""Inverse design with no experiment (``qdlab suggest``): what the model predicts is closest."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from db import Database
from models.parameters import CategoricalParameter, get_route

__all__ = ["suggest_conditions"]


def suggest_conditions(
    route: str, target_nm: float, db: Database | None = None, top: int = 5
) -> tuple[list[dict[str, Any]], int]:
    """The ``top`` conditions over the route's whole space predicted closest to ``target_nm``
    (ties broken by the narrower predicted FWHM; predicted nanoplatelets left out), and how many
    stored observations of ``db`` informed it (none without a database: the physics alone).
    """
    from planners import Observation, SearchSpace, Target
    from planners.bo import BoTorchPlanner

    spec = get_route(route)
    space = SearchSpace.from_config(
        {
            p.name: list(p.choices) if isinstance(p, CategoricalParameter) else [p.low, p.high]
            for p in spec.parameters
        }
    )
    planner = BoTorchPlanner(
        space, Target("pl_peak_nm", target_nm, 1.0), seed=0, route=route, initial_points=0
    )
    observations = db.all_observations(route) if db is not None else []
    stored = [r for r in observations if r["status"] == "done"]
    planner.tell(
        [
            Observation(
                {n: r["conditions"][n] for n in space.order}, r["observables"], warm_start=True
            )
            for r in stored
        ]
    )
    conditions = planner.candidate_pool()
    pred = planner.predict(conditions)
    gap = np.abs(pred["target_mean"] - target_nm)
    score = np.where(
        np.isfinite(gap) & ~pred["platelets"], gap + 0.02 * pred["fwhm_mean"], math.inf
    )
    rows = []
    for i in np.argsort(score)[:top]:
        rows.append(
            {
                "conditions": conditions[i],
                "pl_peak_nm": float(pred["target_mean"][i]),
                "pl_peak_std_nm": float(pred["target_std"][i]),
                "pl_fwhm_nm": float(pred["fwhm_mean"][i]),
                "pl_fwhm_std_nm": float(pred["fwhm_std"][i]),
            }
        )
    return rows, len(stored)

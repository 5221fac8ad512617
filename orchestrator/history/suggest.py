"""Inverse design with no experiment (``qdlab suggest``): what the model predicts is closest.

The model is the BoTorch planner's (the route's physics as prior, calibrated by the stored
observations of the route), over a space: a campaign config's (its ranges, materials, target,
tolerance and shape), or the route's whole space. Each material of the space gets its own best
candidate, so the answer says which material and why: the one predicted closest to the target
(within the tolerance, the narrower line), the others with what holds them back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from db import Database
from models.parameters import CategoricalParameter, get_route
from orchestrator.campaign.warm_start import warm_start_observations
from planners import SearchSpace, Target

__all__ = ["Suggestion", "route_space", "suggest_conditions"]

FWHM_WEIGHT = 0.02
"""nm of distance to the target a nm of predicted FWHM is worth when ranking candidates: the
target comes first, the narrower line breaks near-ties."""


def _score(off: Any, fwhm: Any) -> Any:
    """How good a candidate predicted ``off`` nm from the target with a ``fwhm`` line is (lower
    is better); arrays or floats."""
    return off + FWHM_WEIGHT * fwhm


@dataclass
class Suggestion:
    """What :func:`suggest_conditions` found."""

    rows: list[dict[str, Any]]
    """The best candidates, best first: conditions, predicted line and width (mean, std)."""
    materials: list[dict[str, Any]] = field(default_factory=list)
    """Per material of the space, its best candidate (as a row) and ``why``: how it compares."""
    observations: int = 0
    """How many stored observations informed the model (0: the physics alone)."""


def route_space(route: str, material: str | None = None) -> SearchSpace:
    """The route's whole space (every material it makes, unless ``material`` names one)."""
    spec = get_route(route)
    ranges = {
        p.name: list(p.choices) if isinstance(p, CategoricalParameter) else [p.low, p.high]
        for p in spec.parameters
    }
    if material is not None:
        ranges["material"] = [spec.parameter("material").validate(material)]
    return SearchSpace.from_config(ranges)


def suggest_conditions(
    route: str, target: Target, space: SearchSpace, db: Database | None = None, top: int = 5
) -> Suggestion:
    """The ``top`` conditions of ``space`` predicted closest to ``target`` (ties within the
    tolerance broken by the narrower predicted FWHM; the target's shape kept: a cube target
    leaves out predicted nanoplatelets), each material's best, and how many stored
    observations of ``db`` informed the model (none without a database: the physics alone)."""
    from planners.botorch import BoTorchPlanner

    planner = BoTorchPlanner(space, target, seed=0, route=route, initial_points=0)
    stored = warm_start_observations(db, route, space) if db is not None else []
    planner.tell(stored)
    conditions = planner.candidate_pool()
    pred = planner.predict(conditions)
    gap = np.abs(pred["target_mean"] - target.value)
    shape_ok = {"cubes": ~pred["platelets"], "platelets": pred["platelets"]}.get(
        target.shape, np.ones(len(gap), bool)
    )
    score = np.where(np.isfinite(gap) & shape_ok, _score(gap, pred["fwhm_mean"]), math.inf)

    def row(i: int) -> dict[str, Any]:
        return {
            "conditions": conditions[i],
            "predicted": float(pred["target_mean"][i]),
            "predicted_std": float(pred["target_std"][i]),
            "pl_fwhm_nm": float(pred["fwhm_mean"][i]),
            "pl_fwhm_std_nm": float(pred["fwhm_std"][i]),
        }

    order = [int(i) for i in np.argsort(score) if np.isfinite(score[i])]
    found = Suggestion([row(i) for i in order[:top]], observations=len(stored))
    materials = space.categorical.get("material")
    if materials is None:
        return found
    for material in materials:
        mine = [i for i in order if conditions[i]["material"] == material]
        if not mine:
            found.materials.append(
                {"material": material, "best": None, "why": f"no {target.shape} predicted"}
            )
            continue
        best = row(mine[0])
        found.materials.append({"material": material, "best": best, "why": ""})
    _explain(found.materials, target)
    return found


def _explain(materials: list[dict[str, Any]], target: Target) -> None:
    """Say of each material's best why it is, or is not, the one to make; best first."""
    ranked = [m for m in materials if m["best"] is not None]
    ranked.sort(
        key=lambda m: _score(abs(m["best"]["predicted"] - target.value), m["best"]["pl_fwhm_nm"])
    )
    for place, m in enumerate(ranked):
        best = m["best"]
        off = abs(best["predicted"] - target.value)
        reach = off <= target.tolerance
        line = f"{best['predicted']:.1f} ± {best['predicted_std']:.1f} nm"
        width = f"FWHM {best['pl_fwhm_nm']:.1f} nm"
        if place == 0:
            m["why"] = f"chosen: predicted at {line}, {width}" + (
                "" if reach else f" (the closest any material comes, {off:.1f} nm off)"
            )
        elif reach:
            m["why"] = f"also reaches it ({line}) with a broader line: {width}"
        else:
            m["why"] = f"comes no closer than {line} ({off:.1f} nm off)"
    materials.sort(key=lambda m: ranked.index(m) if m in ranked else len(ranked))

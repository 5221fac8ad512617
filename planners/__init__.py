"""Proposal strategies behind one ask/tell interface (:class:`planners.base.Planner`).

``make_planner(kind, space, target, seed, options)`` builds one by name: ``random`` and
``sobol`` baselines here; ``botorch`` (Bayesian optimisation) imports torch only when asked for.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from models.errors import UserError
from planners.base import Observation, Planner, PlannerError, Proposal, SearchSpace, Target

__all__ = [
    "PLANNER_KINDS",
    "Observation",
    "Planner",
    "PlannerConfigError",
    "PlannerError",
    "Proposal",
    "SearchSpace",
    "Target",
    "make_planner",
]

PLANNER_KINDS = ("random", "sobol", "botorch")


class PlannerConfigError(UserError, ValueError):
    """Unknown planner kind or option."""


def make_planner(
    kind: str,
    space: SearchSpace,
    target: Target,
    seed: int | None = None,
    options: Mapping[str, Any] | None = None,
    route: str | None = None,
    twin: Any = None,
) -> Planner:
    """Build the planner called ``kind`` (``random``, ``sobol`` or ``botorch``).

    ``route`` (and ``twin``, the lab's calibrated :class:`~models.twin.TwinParameters`) give the
    BoTorch planner its physics prior; ``options`` are the planner's own settings from the
    campaign config (an unknown one is an error naming it).
    """
    options = dict(options or {})
    if kind in ("random", "sobol"):
        from planners.baselines import RandomPlanner, SobolPlanner

        if options:
            raise PlannerConfigError(
                f"planner.{sorted(options)[0]}: the {kind} planner takes no options"
            )
        return (RandomPlanner if kind == "random" else SobolPlanner)(space, target, seed)
    if kind == "botorch":
        from planners.bo import OPTIONS, BoTorchPlanner

        unknown = sorted(set(options) - set(OPTIONS))
        if unknown:
            raise PlannerConfigError(
                f"planner.{unknown[0]}: not an option of the botorch planner; "
                f"allowed: {', '.join(OPTIONS)}"
            )
        return BoTorchPlanner(space, target, seed, route=route, twin=twin, **options)
    raise PlannerConfigError(f"planner.kind {kind!r} is not one of {{{', '.join(PLANNER_KINDS)}}}")

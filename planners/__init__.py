"""Proposal strategies behind one ask/tell interface (:class:`planners.base.Planner`).

``make_planner(kind, space, target, seed, options)`` builds one by name: ``random`` and
``sobol`` baselines here; ``botorch`` (Bayesian optimisation) imports torch only when asked for.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

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


class BoTorchOptions(BaseModel):
    """The options a campaign config may give the ``botorch`` planner under ``planner:``."""

    model_config = ConfigDict(extra="forbid", strict=True)
    initial_points: int | None = Field(None, ge=0, le=100)
    """Space-filling experiments before the model proposes (default 2 with the physics prior,
    else 5)."""
    physics_prior: bool = True
    feasibility: bool = True
    secondary_weight: float = Field(0.5, ge=0.0, le=10.0)
    warm_start: bool = False
    candidates: list[dict[str, Any]] | None = None
    """Restrict proposals to these conditions (backtests)."""


def _botorch_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """Options checked by type and range; the error names the option and what is allowed."""
    try:
        checked = BoTorchOptions.model_validate(dict(options))
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"])
        if err["type"] == "extra_forbidden":
            allowed = ", ".join(BoTorchOptions.model_fields)
            raise PlannerConfigError(
                f"planner.{field}: not an option of the botorch planner; allowed: {allowed}"
            ) from None
        raise PlannerConfigError(
            f"planner.{field}: {err['msg']} (got {err.get('input')!r})"
        ) from None
    return checked.model_dump(exclude_unset=True)


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
        from planners.bo import BoTorchPlanner

        checked = _botorch_options(options)
        return BoTorchPlanner(space, target, seed, route=route, twin=twin, **checked)
    raise PlannerConfigError(f"planner.kind {kind!r} is not one of {{{', '.join(PLANNER_KINDS)}}}")

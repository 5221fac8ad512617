"""A campaign's head start: what earlier campaigns of its route measured inside its space
(``planner: {warm_start: true}``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from db import Database
from db.records import ExperimentStatus
from models.parameters import ParameterError, get_route

if TYPE_CHECKING:
    from planners import Observation, SearchSpace

__all__ = ["warm_start_observations"]


def warm_start_observations(
    db: Database, route: str, space: SearchSpace, skip_campaign: int | None = None
) -> list[Observation]:
    """Completed experiments of ``route`` across the database that lie inside ``space``, with
    the route's defaults for what their campaigns did not vary: a parameter ``space`` leaves
    out must have been at its default (a red CsPbI3 campaign never informs a CsPbBr3 one)."""
    from planners import Observation

    spec = get_route(route)
    out = []
    for r in db.all_observations(route):
        if r.campaign_id == skip_campaign or r.status != ExperimentStatus.DONE:
            continue
        try:
            c = spec.validate(r.conditions)
        except ParameterError:  # stored under other ranges: not this space's
            continue
        fixed = all(c[p.name] == p.default for p in spec.parameters if p.name not in space.order)
        if fixed and space.contains(c):
            out.append(Observation({n: c[n] for n in space.order}, r.observables, warm_start=True))
    return out

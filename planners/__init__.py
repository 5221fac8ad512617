"""Proposal strategies behind one ask/tell interface (:class:`planners.base.Planner`).

``make_planner(kind, space, target, seed, options)`` builds one by name: ``random`` and
``sobol`` baselines here; ``botorch`` (Bayesian optimisation) imports torch only when asked for;
``ax`` and ``baybe`` (:mod:`planners.peers`, the optional ``.[peers]`` extra); or
``"package.module:Class"``, a user's own :class:`Planner` subclass, built as
``Class(space, target, seed, **options)``.

A user's planner is code: QDLab imports it only for a config file the user passed
(:func:`load_planner_class`), never because a database names it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from models.errors import UserError
from planners.base import PARETO, Observation, Planner, PlannerError, Proposal, SearchSpace, Target

__all__ = [
    "PARETO",
    "PLANNER_KINDS",
    "Observation",
    "Planner",
    "PlannerConfigError",
    "PlannerError",
    "Proposal",
    "SearchSpace",
    "Target",
    "check_plugin_path",
    "is_plugin",
    "load_planner_class",
    "make_planner",
]

PLANNER_KINDS = ("random", "sobol", "botorch", "ax", "baybe")
_PEER_PACKAGES = {"ax": "ax-platform", "baybe": "baybe"}


def is_plugin(kind: str) -> bool:
    """Whether ``kind`` names a user's planner class (``package.module:Class``)."""
    return ":" in kind


def check_plugin_path(kind: str) -> None:
    """The form of a ``package.module:Class`` reference, without importing anything."""
    module, sep, attr = kind.partition(":")
    if not sep or not all(p.isidentifier() for p in [*module.split("."), attr]):
        raise PlannerConfigError(
            f"planner.kind {kind!r}: a user's planner has the form 'package.module:Class'"
        )


def load_planner_class(kind: str) -> type[Planner]:
    """Import a user's planner class ``package.module:Class`` (a :class:`Planner` subclass).

    Raises
    ------
    PlannerConfigError
        With the path and what went wrong (form, import, missing, not a Planner).
    """
    from models.usercode import import_user_object

    check_plugin_path(kind)
    cls = import_user_object(kind, f"planner.kind {kind!r}", PlannerConfigError)
    module_name, _, attr = kind.partition(":")
    if not (isinstance(cls, type) and issubclass(cls, Planner)):
        raise PlannerConfigError(
            f"planner.kind {kind!r}: {module_name}.{attr} is not a subclass of "
            "planners.base.Planner"
        )
    return cls


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
    threads: int = Field(1, ge=1, le=64)
    """CPU threads an ask may use (torch's and the BLAS pool's): one, since a lab host runs
    RE Managers, Redis and a database beside the planner, and on a busy machine two threads
    per library stretch an ask several-fold (``benchmarks/ask_time.py``)."""


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
    """Build the planner called ``kind``: ``random``, ``sobol``, ``botorch``, ``ax``,
    ``baybe``, or a user's ``package.module:Class`` (imported here: call this only for a
    config the user passed).

    ``route`` (and ``twin``, the lab's calibrated :class:`~models.twin.TwinParameters`) give the
    BoTorch planner its physics prior; ``options`` are the planner's own settings from the
    campaign config (an unknown one is an error naming it).
    """
    options = dict(options or {})
    if kind in ("random", "sobol", *_PEER_PACKAGES) and options:
        raise PlannerConfigError(
            f"planner.{sorted(options)[0]}: the {kind} planner takes no options"
        )
    if kind in ("random", "sobol"):
        from planners.baselines import RandomPlanner, SobolPlanner

        return (RandomPlanner if kind == "random" else SobolPlanner)(space, target, seed)
    if kind in _PEER_PACKAGES:
        from planners.peers import PEERS, import_quietly

        try:
            import_quietly(kind)
        except ImportError:
            raise PlannerConfigError(
                f"planner.kind {kind}: needs {_PEER_PACKAGES[kind]}, the optional extra "
                "'peers': pip install -e '.[peers]'"
            ) from None
        return PEERS[kind](space, target, seed)
    if kind == "botorch":
        from planners.botorch import BoTorchPlanner

        checked = _botorch_options(options)
        return BoTorchPlanner(space, target, seed, route=route, twin=twin, **checked)
    if is_plugin(kind):
        cls = load_planner_class(kind)
        try:
            return cls(space, target, seed, **options)
        except TypeError as exc:
            raise PlannerConfigError(
                f"planner: {kind} does not take these options ({exc})"
            ) from None
    raise PlannerConfigError(
        f"planner.kind {kind!r} is not one of {{{', '.join(PLANNER_KINDS)}}} "
        "nor a user's 'package.module:Class'"
    )

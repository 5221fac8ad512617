"""Campaign configuration (``configs/campaigns/*.yaml``), validated before anything runs.

Validation happens in two steps, both before a database row is written or a device moves:

1. :class:`CampaignConfig` (pydantic) checks the shape: known keys only, types, ranges.
2. :func:`load_campaign` checks the config against the route (parameter names and ranges), the
   lab (its file, its safe limits, what its pumps and pipette can deliver), the outcome model
   (only the form of its name: nothing is imported while validating) and the target (it must
   be reachable in principle with the route's physics in this space).

User code (an outcome model) is imported by :meth:`LoadedCampaign.import_code` once the config
has passed, and only for a config file the user passed; a config read back from the database
never imports what it names (:func:`loaded_from_stored`).

Every failure is a :class:`~devices.config.ConfigError` whose one-line message names the field
and what is allowed.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from devices.config import (
    PRINTABLE_NAME,
    SHIPPED_LABS,
    ConfigError,
    FaultConfig,
    LabConfig,
    StepConfig,
    StrictModel,
    load_lab_config,
    validation_message,
)
from devices.plugins import check_step
from models.configfile import read_yaml
from models.errors import UserError
from models.parameters import MAX_SEED, CategoricalParameter, ParameterError, get_route
from orchestrator.execution.workcell import NAME_PATTERN
from planners import PARETO, PLANNER_KINDS, SearchSpace, Target, check_plugin_path, is_plugin

__all__ = [
    "MAX_BUDGET",
    "CampaignConfig",
    "LoadedCampaign",
    "WorkcellSpec",
    "load_campaign",
    "loaded_from_stored",
    "parse_campaign",
    "reagent_warnings",
    "target_of",
]

MAX_BUDGET = 100_000

TARGET_OBSERVABLES = {"pl_peak_nm": "pl_peak_nm", "edge_length_nm": "edge_length_est_nm"}
SECONDARY = ("pl_fwhm_nm", "plqy_est", "abs_peak_nm")


def target_of(record: Mapping[str, Any]) -> Target:
    """The :class:`~planners.base.Target` of a stored target record
    (:meth:`LoadedCampaign.target_record`; one stored before targets had a shape is of cubes)."""
    key = next((k for k in TARGET_OBSERVABLES if record.get(k) is not None), "pl_peak_nm")
    return Target(
        TARGET_OBSERVABLES[key],
        float(record.get(key, math.nan)),
        float(record.get("tolerance_nm", 1.0)),
        tuple(record.get("minimize") or ()),
        tuple(record.get("maximize") or ()),
        record.get("shape", "cubes"),
        PARETO if record.get("pareto") else (),
    )


class TargetSpec(StrictModel):
    """``{pl_peak_nm: 470, tolerance_nm: 1}`` or ``{edge_length_nm: 3.6, ...}``, of cubes by
    default; ``{shape: platelets, layers: 3}`` aims at the material's 3-monolayer platelet line
    (or ``{shape: platelets, pl_peak_nm: 456}``); ``shape: any`` counts either shape.

    ``minimize`` / ``maximize`` fold line width or PLQY into one goal; ``pareto:
    {pl_fwhm_nm: min, plqy_est: max}`` asks for the trade-off between them among the hits
    instead, and such a campaign spends its budget (``stop_on_target`` false by default)."""

    pl_peak_nm: float | None = Field(None, ge=380, le=700)
    edge_length_nm: float | None = Field(None, ge=1, le=50)
    tolerance_nm: float = Field(1.0, gt=0, le=50)
    minimize: list[Literal["pl_fwhm_nm"]] = Field(default_factory=list)
    maximize: list[Literal["plqy_est"]] = Field(default_factory=list)
    shape: Literal["cubes", "platelets", "any"] = "cubes"
    layers: int | None = Field(None, ge=1, le=6)
    """Platelets of this many monolayers: the target is the material's line for them."""
    pareto: dict[str, str] | None = None
    """``{pl_fwhm_nm: min, plqy_est: max}``: the Pareto set of the hits is the goal."""

    @model_validator(mode="after")
    def _one_target(self) -> TargetSpec:
        given = [k for k in ("pl_peak_nm", "edge_length_nm", "layers") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError("give exactly one of pl_peak_nm, edge_length_nm or layers")
        if self.pareto is not None:
            allowed = ", ".join(f"{k}: {v}" for k, v in PARETO)
            if sorted(self.pareto.items()) != sorted(PARETO):
                raise ValueError(f"pareto must be {{{allowed}}}, got {self.pareto}")
            if self.minimize or self.maximize:
                raise ValueError(
                    "pareto replaces minimize/maximize (one scalarised goal): give one or the other"
                )
        if self.layers is not None and self.shape != "platelets":
            raise ValueError("layers is a platelet target: give shape: platelets with it")
        if self.shape == "platelets" and self.edge_length_nm is not None:
            raise ValueError(
                "platelets are aimed at by their PL line: give pl_peak_nm or layers, "
                "not edge_length_nm"
            )
        return self

    def to_target(self, material: str = "CsPbBr3") -> Target:
        """The planners' :class:`~planners.base.Target` (``material`` places a ``layers``
        target on its platelet line)."""
        if self.layers is not None:
            from models.optics import get_material

            key, value = "pl_peak_nm", get_material(material).platelet_pl_nm[self.layers - 1]
        else:
            key = "pl_peak_nm" if self.pl_peak_nm is not None else "edge_length_nm"
            value = getattr(self, key)
        return Target(
            TARGET_OBSERVABLES[key],
            float(value),
            self.tolerance_nm,
            tuple(self.minimize),
            tuple(self.maximize),
            self.shape,
            PARETO if self.pareto else (),
        )


class PlannerSpec(BaseModel):
    """``kind`` plus the planner's own options (checked by the planner)."""

    model_config = ConfigDict(extra="allow", frozen=True)
    kind: str

    @field_validator("kind")
    @classmethod
    def _known(cls, v: str) -> str:
        if v not in PLANNER_KINDS and not is_plugin(v):
            raise ValueError(
                f"must be one of {list(PLANNER_KINDS)} or a user's 'package.module:Class'"
            )
        return v

    @property
    def options(self) -> dict[str, Any]:
        """Everything but ``kind``."""
        return dict(self.model_extra or {})


class SimulatorSpec(StrictModel):
    """Simulated-lab settings of a campaign (override the lab config's)."""

    outcome_model: str | None = None
    faults: FaultConfig | None = None
    clock: Literal["fast", "realtime"] | None = None
    speed: float | None = Field(None, gt=0)
    variability: bool | None = None


class WorkcellSpec(StrictModel):
    """One workcell a campaign dispatches to: ``{name: A, zmq: tcp://127.0.0.1:60615}``, or
    ``{name: A, http: http://host:60610, api_key_env: QDLAB_API_KEY}`` through
    bluesky-httpserver, ``{name: A, zmq: tcp://lab-pc:60615, zmq_key_env: A_ZMQ_KEY}`` for a
    queue encrypted with CurveZMQ (``workcell serve --zmq-key-file``), or ``{name: A}`` alone:
    the address ``qdlab workcell serve`` registered in the campaign database."""

    name: str = Field(pattern=NAME_PATTERN)
    zmq: str | None = Field(None, pattern=r"^tcp://[^\s:]+:\d{1,5}$")
    http: str | None = Field(None, pattern=r"^https?://\S+$")
    api_key_env: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    """The environment variable holding the HTTP server's API key (never the key itself)."""
    zmq_key_env: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    """The environment variable holding an encrypted 0MQ queue's CurveZMQ public key (else
    ``$QSERVER_ZMQ_PUBLIC_KEY``, the queue server's own)."""

    @model_validator(mode="after")
    def _one_address(self) -> WorkcellSpec:
        if self.zmq is not None and self.http is not None:
            raise ValueError("give at most one of zmq or http")
        return self


class CampaignConfig(StrictModel):
    """A closed-loop campaign (see ``configs/campaigns/``).

    ``workcells`` dispatches its experiments to RE Managers (``qdlab workcell serve``) instead
    of running them in this process; ``approval: required`` stores each proposal as
    ``awaiting_approval`` until a person approves it (``qdlab campaign approve``);
    ``on_worker_death`` says what becomes of an experiment whose workcell's worker died under
    it: ``fail`` it (with the reason), or ``requeue`` it to run again. ``queue_ahead``: how
    many experiments wait in each workcell's queue behind the one running, so a workcell
    starts its next experiment the moment one ends instead of idling while the planner
    thinks (0: propose only for idle workcells, each proposal seeing every result before it).
    """

    name: str = Field(pattern=PRINTABLE_NAME)
    lab: str
    route: Literal["hot_injection", "flow", "larp"]
    target: TargetSpec
    space: dict[str, list[float] | list[str]]
    planner: PlannerSpec
    batch_size: int = Field(1, ge=1, le=16)
    budget: int = Field(30, ge=1, le=MAX_BUDGET)
    seed: int = Field(0, ge=0, le=MAX_SEED)
    stop_on_target: bool = True
    """Stop at the first hit (default; false for a ``target.pareto`` campaign, which explores
    the trade-off among hits over its whole budget)."""
    simulator: SimulatorSpec = SimulatorSpec()
    workcells: list[WorkcellSpec] | None = Field(None, min_length=1, max_length=64)
    approval: Literal["none", "required"] = "none"
    on_worker_death: Literal["fail", "requeue"] = "fail"
    queue_ahead: int = Field(1, ge=0, le=4)
    reactor: str = Field("reactor", pattern=r"^[a-z][a-z0-9_]{0,30}$")
    """Which hot-injection reactor runs the campaign (``reactor``, or one of the lab config's
    ``reactors``)."""
    trajectory_answers_time: bool = False
    """The growth time (the route's ``time_s``; ``residence_time_s`` in flow) is a free
    parameter that each synthesis's in-situ trajectory answers: one synthesis observes every
    time up to its quench, so a planner may learn from each trajectory point as from an
    experiment stopped then (:attr:`planners.base.Planner.trajectory_answers`). Needs a lab that
    reads the route in situ and the time as a range in ``space``."""

    steps: list[StepConfig] = Field(default_factory=list, max_length=16)
    """Steps of the lab's plugin instruments (its ``instruments``) each product goes through
    before it is measured, in order: ``{instrument: spin, step: spin, args: {rpm: 8000}}``."""

    @property
    def plan_kwargs(self) -> dict[str, Any]:
        """What the route's plan takes beside conditions and md (the reactor, where the
        campaign chose one; the steps, where it has any)."""
        kwargs: dict[str, Any] = {} if self.reactor == "reactor" else {"reactor": self.reactor}
        if self.steps:
            kwargs["steps"] = [step.model_dump() for step in self.steps]
        return kwargs

    @model_validator(mode="before")
    @classmethod
    def _pareto_spends_budget(cls, data: Any) -> Any:
        target = data.get("target") if isinstance(data, dict) else None
        if isinstance(target, dict) and target.get("pareto") and "stop_on_target" not in data:
            return {**data, "stop_on_target": False}
        return data

    @field_validator("workcells")
    @classmethod
    def _unique_names(cls, v: list[WorkcellSpec] | None) -> list[WorkcellSpec] | None:
        names = [w.name for w in v or ()]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"workcell names must be unique; {twice} appear more than once")
        return v

    @field_validator("route", mode="before")
    @classmethod
    def _hyphens(cls, v: Any) -> Any:
        return v.replace("-", "_") if isinstance(v, str) else v


@dataclass(frozen=True)
class LoadedCampaign:
    """A validated campaign: its config, its lab config, and the planner's view of both."""

    config: CampaignConfig
    lab: LabConfig
    text: str
    space: SearchSpace
    target: Target
    stored_code: Mapping[str, str] = field(default_factory=dict)
    """User code named by a config read back from the database: outcome models (route ->
    ``package.module:function``) and a user's planner (``"planner"`` ->
    ``package.module:Class``); never imported unless the user names them again (see
    :meth:`check_code`)."""

    def target_record(self) -> dict[str, Any]:
        """The target as the database stores it for people to read: the config's, with a
        ``layers`` target's line as its ``pl_peak_nm``."""
        record = self.config.target.model_dump(mode="json", exclude_none=True)
        if self.config.target.layers is not None:
            record["pl_peak_nm"] = self.target.value
        return record

    def check_code(self) -> None:
        """Refuse to build this campaign's lab while it would need code named only by data."""
        if self.stored_code:
            what, path = next(iter(self.stored_code.items()))
            role, option = (
                ("planner", "--planner-class")
                if what == "planner"
                else (f"{what} outcome model", "--outcome-model")
            )
            raise ConfigError(
                f"campaign {self.config.name!r} ran with user code as its {role} "
                f"({path!r}); QDLab does not import code named in a database: pass "
                f"{option} {path} to use it"
            )

    def import_code(self) -> None:
        """Import the user code this (user-given) config names: the outcome models of its lab.

        Called after validation, before anything is written, only for a config the user passed.
        """
        from models.simulation import load_outcome_model
        from planners import load_planner_class

        self.check_code()
        if is_plugin(self.config.planner.kind):
            load_planner_class(self.config.planner.kind)
        for path in self.lab.simulator.outcome_models.values():
            try:
                load_outcome_model(path)
            except UserError as exc:
                raise ConfigError(f"simulator.{exc}") from None


def _check_space(cfg: CampaignConfig, lab: LabConfig) -> None:
    route = get_route(cfg.route)
    for name in cfg.space:
        if name not in route.names:
            raise ConfigError(
                f"space.{name}: not a parameter of route {cfg.route}; "
                f"allowed: {', '.join(route.names)}"
            )
    for p in route.parameters:
        if p.name not in cfg.space:
            if p.default is not None:
                continue  # the route's default for every experiment
            raise ConfigError(
                f"space.{p.name}: missing; route {cfg.route} needs {p.name} in {p.range_text()}"
            )
        spec = cfg.space[p.name]
        if isinstance(p, CategoricalParameter):
            if not spec or not all(isinstance(v, str) for v in spec):
                raise ConfigError(f"space.{p.name}: a list of choices from {p.range_text()}")
            for v in spec:
                if v not in p.choices:
                    raise ConfigError(f"space.{p.name}: {v!r} is not one of {p.range_text()}")
        else:
            if len(spec) != 2 or any(isinstance(v, str) for v in spec):
                raise ConfigError(f"space.{p.name}: expected [low, high] within {p.range_text()}")
            low, high = float(spec[0]), float(spec[1])
            if low > high:
                raise ConfigError(f"space.{p.name}: low {low:g} is above high {high:g}")
            for v in (low, high):
                if not p.low <= v <= p.high:
                    raise ConfigError(
                        f"space.{p.name}: {v:g} is outside the route's range {p.range_text()}"
                    )
    _check_lab_limits(cfg, lab)


def _check_trajectory(cfg: CampaignConfig, lab: LabConfig) -> None:
    """A trajectory answers the growth time only where the lab reads the route in situ and the
    planner chooses that time."""
    setting, on = lab.in_situ_setting(cfg.route, cfg.reactor)
    if not on:
        raise ConfigError(
            f"trajectory_answers_time: lab {lab.name!r} reads route {cfg.route} only at the end "
            f"of each synthesis; set {setting} in the lab config (see configs/labs/"
            "sim-insitu.yaml) or leave trajectory_answers_time out"
        )
    time = get_route(cfg.route).growth_time
    spec = cfg.space.get(time)
    if spec is None or float(spec[0]) == float(spec[1]):
        raise ConfigError(
            f"trajectory_answers_time: space.{time} must be a range [low, high] with low < high "
            f"for the trajectory to answer it (got {spec})"
        )


def _target(cfg: CampaignConfig) -> Target:
    """The campaign's target; a ``layers`` target needs the one material whose line it is."""
    materials = cfg.space.get("material") or ["CsPbBr3"]
    if cfg.target.layers is not None and len(materials) != 1:
        raise ConfigError(
            f"target.layers: the {cfg.target.layers}-monolayer line differs by material; "
            f"give space.material one of {materials}, or a pl_peak_nm target"
        )
    return cfg.target.to_target(str(materials[0]))


def _lab_file(lab: str, base_dir: Path) -> Path:
    """The lab config a campaign's ``lab`` names: a shipped lab by name (``sim``), or a path,
    relative to the campaign's folder or the working directory."""
    shipped = sorted(p.stem for p in SHIPPED_LABS.glob("*.yaml"))
    if lab in shipped:
        return SHIPPED_LABS / f"{lab}.yaml"
    path = Path(lab)
    candidates = [path] if path.is_absolute() else [base_dir / path, Path.cwd() / path]
    found = next((p for p in candidates if p.is_file()), None)
    if found is not None:
        return found
    folders = list(dict.fromkeys(str(p.parent) for p in candidates))
    hint = f"; did you mean `lab: {path.stem}` (QDLab's own)?" if path.stem in shipped else "."
    raise ConfigError(
        f"lab: file {lab!r} not found (looked in {' and '.join(folders)}){hint} A shipped lab is "
        f"named alone: {', '.join(shipped)}"
    )


def _corners(space: SearchSpace) -> list[dict[str, Any]]:
    axes = [
        space.continuous[n] if n in space.continuous else space.categorical[n] for n in space.order
    ]
    return [dict(zip(space.order, combo, strict=True)) for combo in itertools.product(*axes)]


def _check_lab_limits(cfg: CampaignConfig, lab: LabConfig) -> None:
    """Every corner of the space must be something this lab can physically do."""
    from orchestrator.execution.recipes import recipe_for

    if cfg.route == "flow" and lab.flow is None:
        raise ConfigError(f"lab: {cfg.lab} has no flow reactor; route flow needs one")
    if cfg.reactor != "reactor" and cfg.route != "hot_injection":
        raise ConfigError(f"reactor: {cfg.reactor!r} is for hot injection; route {cfg.route} "
                          "has no choice of reactor")  # fmt: skip
    try:
        reactor = lab.reactor_config(cfg.reactor)
    except ParameterError as exc:
        raise ConfigError(f"reactor: {exc}") from None
    if cfg.steps and cfg.route == "flow":
        raise ConfigError("steps: a flow synthesis measures its product in line; steps are for "
                          "hot_injection and larp")  # fmt: skip
    for i, step in enumerate(cfg.steps):
        check_step(lab, i, step)
    heater = {"hot_injection": (reactor, cfg.reactor), "flow": (lab.flow, "flow-coil")}
    if cfg.route in heater:
        limits, label = heater[cfg.route]
        t = cfg.space["temperature_c"]
        lo, hi = limits.min_temperature_c, limits.max_temperature_c
        if float(t[0]) < lo or float(t[1]) > hi:
            raise ConfigError(
                f"space.temperature_c: [{t[0]:g}, {t[1]:g}] is outside the lab's "
                f"{label} limits [{lo:g}, {hi:g}] °C"
            )
    for corner in _corners(SearchSpace.from_config(cfg.space)):
        try:
            recipe_for(cfg.route, corner, lab, cfg.reactor)
        except ParameterError as exc:
            raise ConfigError(f"space.{exc.field}: {exc}") from None


def reagent_warnings(loaded: LoadedCampaign) -> list[str]:
    """One line per deck reservoir that cannot cover the campaign's budget if every experiment
    took what the worst corner of the space takes (a warning: the planner may never go there)."""
    from orchestrator.execution.recipes import reagent_use

    cfg, lab = loaded.config, loaded.lab
    worst: dict[str, tuple[float, dict[str, Any]]] = {}
    for corner in _corners(loaded.space):
        for source, volume in reagent_use(cfg.route, corner, lab, cfg.reactor).items():
            if volume > worst.get(source, (0.0, {}))[0]:
                worst[source] = (volume, corner)
    lines = []
    for source, (volume, corner) in sorted(worst.items()):
        held = lab.robot.deck[source].volume_ul
        if volume * cfg.budget > held:
            at = ", ".join(
                f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in corner.items()
            )
            lines.append(
                f"{source} holds {held:,.0f} µL; {cfg.budget} experiments may take up to "
                f"{volume * cfg.budget:,.0f} µL ({volume:,.0f} µL each at {at}), enough for "
                f"{int(held // volume)}: refill it when the campaign pauses, then "
                f"`qdlab campaign resume`"
            )
    return lines


def _check_reachable(cfg: CampaignConfig, target: Target, space: SearchSpace) -> None:
    """The target must lie within what the route's physics can give in this space."""
    import numpy as np
    from scipy.stats import qmc

    from models.analysis import platelet_like
    from models.simulation import simulate

    u = qmc.Sobol(d=space.dim, scramble=True, seed=0).random(512)
    rows = space.from_unit(
        np.vstack(
            [
                u,
                np.array(
                    [
                        [float(c) for c in corner]
                        for corner in itertools.product([0.0, 0.999999], repeat=space.dim)
                    ]
                ),
            ]
        )
    )
    batch = simulate(cfg.route, rows)
    obs = batch.observables
    reached = obs[target.observable].copy()
    if target.shape != "any":
        platelets = platelet_like(
            obs["pl_peak_nm"],
            obs["pl_fwhm_nm"],
            obs["abs_peak_nm"],
            batch.conditions.get("material", "CsPbBr3"),
        )
        reached[platelets != (target.shape == "platelets")] = np.nan
    values = reached[np.isfinite(reached)]
    if values.size == 0:
        shape = "" if target.shape == "any" else f"{target.shape} with "
        raise ConfigError(
            f"target: no condition in this space gives {shape}a measurable {target.observable}"
            + ("" if target.shape == "any" else " (target.shape: any accepts either shape)")
        )
    low, high = float(values.min()), float(values.max())
    margin = target.tolerance + 2.0 if target.observable == "pl_peak_nm" else target.tolerance + 0.2
    if not low - margin <= target.value <= high + margin:
        materials = batch.conditions.get("material")
        ranges = (
            [f"about {low:.1f} to {high:.1f} nm"]
            if materials is None
            else [
                f"{m}: about {np.nanmin(reached[materials == m]):.1f} to "
                f"{np.nanmax(reached[materials == m]):.1f} nm"
                for m in np.unique(materials)
                if np.isfinite(reached[materials == m]).any()
            ]
        )
        raise ConfigError(
            f"target.{target.observable.replace('_est', '')}: {target.value:g} nm is outside "
            f"what route {cfg.route} reaches"
            + ("" if target.shape == "any" else f" with {target.shape}")
            + f" in this space ({'; '.join(ranges)})"
        )


def parse_campaign(
    data: Mapping[str, Any],
    text: str,
    base_dir: Path,
    label: str = "campaign config",
    overrides: Mapping[str, Any] | None = None,
) -> LoadedCampaign:
    """Validate a campaign mapping (see the module docstring); ``overrides`` replace keys."""
    data = {**data, **{k: v for k, v in (overrides or {}).items() if v is not None}}
    try:
        cfg = CampaignConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(validation_message(exc, label)) from None
    lab = load_lab_config(_lab_file(cfg.lab, base_dir))
    if cfg.simulator.outcome_model is not None:
        _check_code_path("simulator.outcome_model", cfg.simulator.outcome_model)
    for route, path in lab.simulator.outcome_models.items():
        _check_code_path(f"lab simulator.outcome_models.{route}", path)
    _check_space(cfg, lab)
    if cfg.trajectory_answers_time:
        _check_trajectory(cfg, lab)
    space = SearchSpace.from_config(cfg.space)
    target = _target(cfg)
    if cfg.simulator.outcome_model is None and cfg.route not in lab.simulator.outcome_models:
        _check_reachable(cfg, target, space)  # the built-in physics; user models are not run
    if is_plugin(cfg.planner.kind):
        check_plugin_path(cfg.planner.kind)  # its options are its own: checked when it is built
    else:
        from planners import make_planner

        make_planner(
            cfg.planner.kind, space, target, cfg.seed, cfg.planner.options, cfg.route
        )  # checks the planner's options
    return LoadedCampaign(
        cfg, lab.model_copy(update={"simulator": _simulator(lab, cfg)}), text, space, target
    )


def _check_code_path(field: str, path: str) -> None:
    """The form of a ``package.module:function`` reference, without importing anything."""
    module, sep, attr = path.partition(":")
    parts = [*module.split("."), attr]
    if not sep or not all(p.isidentifier() for p in parts):
        raise ConfigError(f"{field}: {path!r} must have the form 'package.module:function'")


def _simulator(lab: LabConfig, cfg: CampaignConfig) -> Any:
    sim = cfg.simulator
    update: dict[str, Any] = {"seed": cfg.seed}
    if sim.faults is not None:
        update["faults"] = sim.faults
    if sim.clock is not None:
        update["clock"] = sim.clock
    if sim.speed is not None:
        update["speed"] = sim.speed
    if sim.variability is not None:
        update["variability"] = sim.variability
    if sim.outcome_model is not None:
        update["outcome_models"] = {**lab.simulator.outcome_models, cfg.route: sim.outcome_model}
    return lab.simulator.model_copy(update=update)


def load_campaign(path: str | Path, overrides: Mapping[str, Any] | None = None) -> LoadedCampaign:
    """Read and validate ``path`` (YAML); ``overrides`` (e.g. budget, seed) replace keys."""
    path = Path(path)
    data, text = read_yaml(path, "campaign config")
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return parse_campaign(data, text, path.resolve().parent, str(path), overrides)


def loaded_from_stored(
    stored: Mapping[str, Any],
    label: str,
    outcome_model: str | None = None,
    planner_class: str | None = None,
) -> LoadedCampaign:
    """Rebuild a campaign from what the database stored when it started (config and lab).

    Outcome models and a user's planner named in the stored config are data, not
    instructions: they land in :attr:`LoadedCampaign.stored_code` and are not imported.
    ``outcome_model`` is one the user names now (``--outcome-model``); it replaces the stored
    one of the campaign's route. ``planner_class`` (``--planner-class``) is the user's planner
    the user names now, in place of the stored one.
    """
    try:
        cfg = CampaignConfig.model_validate(stored["campaign"])
        lab = LabConfig.model_validate(stored["lab"])
    except (KeyError, ValidationError) as exc:
        raise ConfigError(f"campaign {label!r}: stored config is unreadable ({exc})") from None
    trusted: dict[str, str] = {}
    if outcome_model is not None:
        _check_code_path("--outcome-model", outcome_model)
        trusted[cfg.route] = outcome_model
    stored_models = lab.simulator.outcome_models
    untrusted = (
        {} if trusted or cfg.route not in stored_models else {cfg.route: stored_models[cfg.route]}
    )
    lab = lab.model_copy(
        update={"simulator": lab.simulator.model_copy(update={"outcome_models": trusted})}
    )
    if is_plugin(cfg.planner.kind):
        if planner_class is None:
            untrusted["planner"] = cfg.planner.kind
        else:
            check_plugin_path(planner_class)
            planner = PlannerSpec(kind=planner_class, **cfg.planner.options)
            cfg = cfg.model_copy(update={"planner": planner})
    return LoadedCampaign(cfg, lab, "", SearchSpace.from_config(cfg.space), _target(cfg), untrusted)

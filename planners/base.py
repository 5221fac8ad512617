"""The one interface every planner implements, and the pieces it is built from.

A planner proposes synthesis conditions inside a :class:`SearchSpace` towards a :class:`Target`:

- ``ask(n)`` returns ``n`` :class:`Proposal` objects (conditions plus the provenance of the
  decision) and records them as *pending*;
- ``tell(observations)`` hands back what was measured (or that an experiment failed) and clears
  the matching pending points;
- :meth:`Planner.restore` rebuilds a planner from a stored history, so that a resumed campaign
  continues exactly where it stopped: by asking again (a planner whose proposals follow from a
  seed), or from the :meth:`Planner.snapshot` its library wrote of itself, kept with the
  campaign after every ask and tell (Ax, BayBE).

The planner sees only :class:`Observation` objects: features extracted from measured spectra,
never the simulator's ground truth.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

__all__ = [
    "PARETO",
    "SHAPES",
    "Observation",
    "Planner",
    "PlannerError",
    "Proposal",
    "SearchSpace",
    "Target",
]


class PlannerError(RuntimeError):
    """The planner cannot do what was asked (e.g. a restored history does not match)."""


@dataclass(frozen=True)
class SearchSpace:
    """Continuous ranges and categorical choices of a campaign's ``space``.

    ``continuous`` maps name -> (low, high) (low == high fixes the parameter);
    ``categorical`` maps name -> choices. ``order`` is the order of the names in conditions.
    """

    continuous: Mapping[str, tuple[float, float]]
    categorical: Mapping[str, tuple[str, ...]]
    order: tuple[str, ...]

    @classmethod
    def from_config(cls, space: Mapping[str, Sequence[float] | Sequence[str]]) -> SearchSpace:
        """``{name: [low, high]}`` for ranges, ``{name: [choice, ...]}`` for categories."""
        continuous: dict[str, tuple[float, float]] = {}
        categorical: dict[str, tuple[str, ...]] = {}
        for name, spec in space.items():
            values = list(spec)
            if values and all(isinstance(v, str) for v in values):
                categorical[name] = tuple(values)
            else:
                continuous[name] = (float(values[0]), float(values[-1]))
        return cls(continuous, categorical, tuple(space))

    @property
    def dim(self) -> int:
        """Number of parameters."""
        return len(self.order)

    def from_unit(self, u: np.ndarray) -> list[dict[str, float | str]]:
        """Map points of the unit cube (n, dim) onto conditions, in ``order``."""
        u = np.atleast_2d(u)
        out = []
        for row in u:
            cond: dict[str, float | str] = {}
            for j, name in enumerate(self.order):
                if name in self.continuous:
                    lo, hi = self.continuous[name]
                    cond[name] = float(lo + row[j] * (hi - lo))
                else:
                    choices = self.categorical[name]
                    cond[name] = choices[min(int(row[j] * len(choices)), len(choices) - 1)]
            out.append(cond)
        return out

    def encode(self, conditions: Mapping[str, Any]) -> np.ndarray:
        """A point of the model space: continuous parameters scaled to [0, 1], categorical
        ones as the index of their choice."""
        row = []
        for name in self.order:
            if name in self.continuous:
                lo, hi = self.continuous[name]
                row.append((float(conditions[name]) - lo) / (hi - lo) if hi > lo else 0.0)
            else:
                row.append(float(self.categorical[name].index(conditions[name])))
        return np.array(row)

    def decode(self, x: np.ndarray) -> dict[str, float | str]:
        """The conditions of a point of the model space (inverse of :meth:`encode`)."""
        cond: dict[str, float | str] = {}
        for j, name in enumerate(self.order):
            if name in self.continuous:
                lo, hi = self.continuous[name]
                cond[name] = float(lo + np.clip(x[j], 0.0, 1.0) * (hi - lo))
            else:
                cond[name] = self.categorical[name][round(x[j])]
        return cond

    def contains(self, conditions: Mapping[str, Any]) -> bool:
        """Whether ``conditions`` give every parameter a value inside the space."""
        for name in self.order:
            value = conditions.get(name)
            if name in self.continuous:
                lo, hi = self.continuous[name]
                if not isinstance(value, int | float) or not lo <= value <= hi:
                    return False
            elif value not in self.categorical[name]:
                return False
        return True

    def distance(self, a: Mapping[str, Any], b: Mapping[str, Any]) -> float:
        """Squared distance in the model space; a different category counts 1."""
        xa, xb = self.encode(a), self.encode(b)
        d = 0.0
        for j, name in enumerate(self.order):
            d += (xa[j] - xb[j]) ** 2 if name in self.continuous else float(xa[j] != xb[j])
        return d

    def key(self, conditions: Mapping[str, Any]) -> tuple:
        """A hashable identity of a set of conditions (floats rounded to 1e-9)."""
        return tuple(
            round(float(conditions[n]), 9) if n in self.continuous else conditions[n]
            for n in self.order
        )


SHAPES = ("cubes", "platelets", "any")
"""What a target may ask of the particles' shape."""

PARETO = (("pl_fwhm_nm", "min"), ("plqy_est", "max"))
"""The trade-off a ``pareto`` target explores among its hits: narrowest line, brightest."""


def pareto_mask(values: np.ndarray) -> np.ndarray:
    """Which rows of ``values`` (n, m), every column to maximise, no other row dominates (at
    least as good in every column and better in one)."""
    values = np.asarray(values, float).reshape(len(values), -1)
    keep = np.ones(len(values), bool)
    for i, row in enumerate(values):
        others = np.delete(values, i, axis=0)
        keep[i] = not np.any(np.all(others >= row, axis=1) & np.any(others > row, axis=1))
    return keep


@dataclass(frozen=True)
class Target:
    """What a campaign aims for: ``observable`` within ``tolerance`` of ``value``, from particles
    of ``shape`` (``cubes``, ``platelets`` or ``any``; told apart by
    :func:`models.analysis.platelet_like` on the measured spectra).

    ``minimize`` / ``maximize`` name secondary observables (e.g. ``pl_fwhm_nm``, ``plqy_est``),
    scalarised into one goal. ``pareto`` (:data:`PARETO`, ``(observable, "min" | "max")``
    pairs) asks instead for the trade-off among hits: the planner maximises the hypervolume
    they dominate, and :meth:`pareto_set` is what was found.
    """

    observable: str
    value: float
    tolerance: float
    minimize: tuple[str, ...] = ()
    maximize: tuple[str, ...] = ()
    shape: str = "cubes"
    pareto: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if self.shape not in SHAPES:
            raise ValueError(f"target shape {self.shape!r} is not one of {SHAPES}")
        if self.pareto and (self.minimize or self.maximize):
            raise ValueError("a pareto target replaces minimize/maximize: give one or the other")
        for observable, sense in self.pareto:
            if sense not in ("min", "max"):
                raise ValueError(f"pareto {observable}: {sense!r} is not 'min' or 'max'")

    def error(self, observables: Mapping[str, Any]) -> float:
        """|measured - target| (inf when the observable could not be measured)."""
        v = observables.get(self.observable)
        if v is None or not math.isfinite(float(v)):
            return math.inf
        return abs(float(v) - self.value)

    def shape_ok(self, observables: Mapping[str, Any], conditions: Mapping[str, Any]) -> bool:
        """Whether the measured spectra show the shape asked for (always, for ``any``)."""
        if self.shape == "any":
            return True
        from models.analysis import is_platelet_like  # scipy: not at the CLI's start-up

        return is_platelet_like(observables, conditions) == (self.shape == "platelets")

    def hit(self, observables: Mapping[str, Any], conditions: Mapping[str, Any]) -> bool:
        """Whether the measurement is within tolerance, from particles of the right shape."""
        return self.error(observables) <= self.tolerance and self.shape_ok(observables, conditions)

    def rank(self, observables: Mapping[str, Any], conditions: Mapping[str, Any]) -> tuple:
        """Sort key of the best experiment: the right shape first, then the hits, ranked by the
        secondary goals (``minimize`` then ``maximize``; a ``pareto`` target's first
        objective, whose best hit is on the front), then the smallest error."""
        if not self.hit(observables, conditions):
            return (not self.shape_ok(observables, conditions), True, (), self.error(observables))
        goals = [(name, "min") for name in self.minimize]
        goals += [(name, "max") for name in self.maximize] + list(self.pareto[:1])
        secondary = tuple(
            (float(observables[name]) if sense == "min" else -float(observables[name]))
            if _finite(observables.get(name))
            else math.inf
            for name, sense in goals
        )
        return (False, False, secondary, self.error(observables))

    def pareto_set(
        self, experiments: Sequence[tuple[Mapping[str, Any], Mapping[str, Any]]]
    ) -> list[int]:
        """Indices of the ``(observables, conditions)`` that are hits and that no other hit
        dominates in the :attr:`pareto` observables (all hits if the target has none)."""
        hits = [
            i
            for i, (obs, cond) in enumerate(experiments)
            if self.hit(obs, cond) and all(_finite(obs.get(name)) for name, _ in self.pareto)
        ]
        if not self.pareto or not hits:
            return hits
        values = np.array(
            [
                [float(experiments[i][0][name]) * (1 if sense == "max" else -1)
                 for name, sense in self.pareto]
                for i in hits
            ]
        )  # fmt: skip
        return [i for i, keep in zip(hits, pareto_mask(values), strict=True) if keep]


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


@dataclass(frozen=True)
class Proposal:
    """Conditions a planner proposes, with what produced them."""

    conditions: Mapping[str, float | str]
    planner_name: str
    planner_version: str
    seed: int | None
    acquisition_value: float | None = None
    predicted_mean: float | None = None
    predicted_std: float | None = None
    provenance: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Observation:
    """What an experiment gave: observables from its spectra, or that it failed and why."""

    conditions: Mapping[str, float | str]
    observables: Mapping[str, float] = field(default_factory=dict)
    failed: bool = False
    reason: str | None = None
    warm_start: bool = False
    vetoed: bool = False
    """A person rejected the proposal before it ran: it counts as a failure, and the planner
    never proposes these conditions again."""
    trajectory: Sequence[Mapping[str, Any]] = ()
    """What the lab saw while the experiment's dots grew, in order: one point per in-situ
    reading, with ``growth_time_s``, ``temperature_c``, ``hot`` and the observables of its
    spectra (NaN where no line showed yet). A ``hot`` reading (a dip probe in the flask) is
    bluer, broader and weaker than the quenched product's ``observables``; one that is not (a
    flow sweep's shorter residence times) is product
    (:func:`orchestrator.execution.observe.trajectory_from_documents`). Empty where the lab
    reads nothing in situ."""


class Planner(ABC):
    """Base class: pending bookkeeping, history, restore (see the module docstring).

    Subclasses implement :meth:`_propose` (and may override :meth:`_learn`).
    """

    name: ClassVar[str] = "planner"
    version: ClassVar[str] = "1"
    keeps_snapshots: ClassVar[bool] = False
    """Whether the planner writes a :meth:`snapshot` of itself to be restored from (by
    :meth:`_load`), rather than rebuilt by asking again."""

    def __init__(self, space: SearchSpace, target: Target, seed: int | None = None) -> None:
        self.space = space
        self.target = target
        self.seed = seed
        self._pending: dict[tuple, Mapping[str, Any]] = {}
        self._vetoed: dict[tuple, Mapping[str, Any]] = {}
        self.observations: list[Observation] = []
        self.revision = 0
        self._in_snapshot: Counter[tuple] = Counter()
        """Conditions the restored snapshot already holds an outcome of (how many times)."""
        """Counts the asks, tells and cancels: a snapshot is stale once it moves."""
        self.trajectory_answers: str | None = None
        """The growth-time parameter (``time_s``, ``residence_time_s``) that each observation's
        :attr:`Observation.trajectory` answers for every earlier time, when the campaign says
        so (``trajectory_answers_time``); None: each experiment answers its own time only."""

    @property
    def pending(self) -> list[Mapping[str, Any]]:
        """Conditions asked for and not yet told about."""
        return list(self._pending.values())

    def ask(self, n: int = 1) -> list[Proposal]:
        """Propose ``n`` new conditions (never one already pending, never one vetoed).

        Vetoed points count as pending while the subclass proposes (a model-based planner
        then sees no gain in them); a proposal that still lands on one is dropped and asked
        for again.
        """
        if n < 1:
            raise ValueError(f"ask(n) needs n >= 1, got {n}")
        proposals: list[Proposal] = []
        for _ in range(4):
            vetoed = [k for k in self._vetoed if k not in self._pending]
            self._pending.update({k: self._vetoed[k] for k in vetoed})
            try:
                fresh = self._propose(n - len(proposals))
            finally:
                for k in vetoed:
                    self._pending.pop(k, None)
            for p in fresh:
                key = self.space.key(p.conditions)
                if key not in self._vetoed:
                    self._pending[key] = p.conditions
                    proposals.append(p)
            if len(proposals) == n:
                break
        self.revision += 1
        return proposals

    def tell(self, observations: Sequence[Observation]) -> None:
        """Learn from measured (or failed) experiments; clears their pending points."""
        for obs in observations:
            key = self.space.key(obs.conditions)
            self._pending.pop(key, None)
            if obs.vetoed:
                self._vetoed[key] = obs.conditions
            self.observations.append(obs)
        self._learn(list(observations))
        self.revision += 1

    def cancel(self, conditions: Mapping[str, Any]) -> None:
        """Drop a pending point that will never be observed (the experiment was not run)."""
        self._pending.pop(self.space.key(conditions), None)
        self.revision += 1

    def _resume(
        self,
        batches: Sequence[Sequence[Mapping[str, Any]]],
        observations: Sequence[Observation],
    ) -> None:
        """Tell what was observed, and keep what was asked for and not observed pending."""
        self.tell(list(observations))
        observed = {self.space.key(o.conditions) for o in observations}
        for conditions in (c for batch in batches for c in batch):
            if self.space.key(conditions) not in observed:
                self._pending[self.space.key(conditions)] = conditions

    def snapshot(self) -> str | None:
        """The planner's state as its own library serialises it (with
        :attr:`keeps_snapshots`), or None (the default): then :meth:`restore` rebuilds it by
        asking again, which only a planner whose proposals follow from its seed and history
        can do."""
        return None

    def _not_in_snapshot(self, observations: Sequence[Observation]) -> list[Observation]:
        """``observations`` less those the restored snapshot already holds (each once)."""
        fresh = []
        for obs in observations:
            key = self.space.key(obs.conditions)
            if self._in_snapshot[key]:
                self._in_snapshot[key] -= 1
            else:
                fresh.append(obs)
        return fresh

    def _load(self, snapshot: str) -> None:
        """Take the state of a :meth:`snapshot` (planners that keep snapshots)."""
        raise NotImplementedError(f"{self.name} keeps no snapshots")

    @abstractmethod
    def _propose(self, n: int) -> list[Proposal]:
        """``n`` proposals (the pending points are in ``self.pending``)."""

    def _learn(self, observations: list[Observation]) -> None:  # noqa: B027 - optional hook
        """Update internal state after :meth:`tell` (baselines need nothing)."""

    def _proposal(self, conditions: Mapping[str, Any], **extra: Any) -> Proposal:
        return Proposal(dict(conditions), self.name, self.version, self.seed, **extra)

    def restore(
        self,
        batches: Sequence[Sequence[Mapping[str, Any]]],
        observations: Sequence[Observation],
        provenance: Sequence[Mapping[str, Any]] = (),
        snapshot: str | None = None,
    ) -> None:
        """Rebuild the state after a stored history: the batches asked for, in order, what was
        observed, the provenance stored with each proposal (in order), and the last
        :meth:`snapshot` kept (None if the planner keeps none). A planner that
        :attr:`keeps_snapshots` loads it and is told on top what it does not hold yet (a
        driver killed after storing and before keeping a snapshot); the others replay the asks
        (for planners whose proposals depend on a random stream), checking that they reproduce
        the stored conditions.
        """
        if self.keeps_snapshots:
            if snapshot is not None:
                self._load(snapshot)
            self._resume(batches, observations)
            return
        for batch in batches:
            again = self.ask(len(batch))
            for stored, replayed in zip(batch, again, strict=True):
                if self.space.key(stored) != self.space.key(replayed.conditions):
                    raise PlannerError(
                        f"{self.name} does not reproduce the stored proposal {dict(stored)}: "
                        "the history was made with other settings"
                    )
        self.tell(list(observations))

"""The candidates an ask chooses among: a scrambled Sobol pool of the space, local
perturbations of its best points, small steps from the measurements closest to the target, and
the pending points; each with the twin's prediction and its row for the objectives."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from planners.base import PlannerError

__all__ = ["LOCAL", "NEAR", "NEAR_STEPS", "POOL", "CandidateSet", "local_candidates"]

POOL = 4096
LOCAL = 512
NEAR = 3
"""Measurements closest to the target that small steps are taken from (candidates)."""
NEAR_STEPS = 128
"""Small steps from each of them: half of standard deviation 0.01, half 0.03 (unit range)."""


def _key(row: np.ndarray) -> tuple:
    # a point comes back through decode/encode a few ulp away from its row: compare rounded
    return tuple(np.round(row, 10))


def local_candidates(
    best: np.ndarray,
    n_local: int,
    continuous: Sequence[int],
    rng: np.random.Generator,
    Xm: np.ndarray,
    ym: np.ndarray,
    target_value: float,
) -> np.ndarray:
    """``n_local`` perturbations (sd 0.03, unit range) of each of the ``best`` pool points, and
    (with any) :data:`NEAR_STEPS` small steps from each of the :data:`NEAR` measurements
    closest to the target: a near miss is best mended where the model knows the lab, not at a
    far point the twin puts on target."""
    cont = list(continuous)
    local = np.repeat(best, n_local, axis=0)
    local[:, cont] = np.clip(local[:, cont] + rng.normal(0, 0.03, (len(local), len(cont))), 0, 1)
    if n_local and len(ym):
        nearest = Xm[np.argsort(np.abs(ym - target_value))[:NEAR]]
        steps = np.repeat(nearest, NEAR_STEPS, axis=0)
        sd = np.tile(np.repeat([0.01, 0.03], NEAR_STEPS // 2), len(nearest))[:, None]
        steps[:, cont] = np.clip(
            steps[:, cont] + sd * rng.standard_normal((len(steps), len(cont))), 0, 1
        )
        local = np.vstack([local, steps])
    return local


@dataclass
class CandidateSet:
    """The candidates of one ask (model-space rows), the twin's prediction at each, their
    ligand groups, the chance of feasibility (learned, and with the twin's own warning), and
    which may be proposed (neither pending nor measured)."""

    points: np.ndarray
    phys: dict[str, np.ndarray]
    groups: np.ndarray
    learned: np.ndarray
    p_feasible: np.ndarray
    free: np.ndarray
    _lookup: dict[tuple, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._lookup = {_key(r): i for i, r in enumerate(self.points)}

    @classmethod
    def build(
        cls,
        points: np.ndarray,
        phys: dict[str, np.ndarray],
        groups: np.ndarray,
        learned: np.ndarray,
        p_feasible: np.ndarray,
        taken: np.ndarray,
    ) -> CandidateSet:
        """The set over ``points``; ``taken`` (pending and measured points) is not proposed
        again (a replicate is a decision of its own)."""
        gone = {_key(r) for r in taken}
        free = np.array([_key(r) not in gone for r in points])
        return cls(points, phys, groups, learned, p_feasible, free)

    def row(self, x: np.ndarray) -> int:
        """The row of candidate point ``x``."""
        return self._lookup[_key(x)]

    def index_of(self, Xt: torch.Tensor) -> torch.Tensor:
        """The rows of candidate points (``batch x q x d`` -> ``batch x q``)."""
        rows = Xt.detach().reshape(-1, Xt.shape[-1]).numpy()
        idx = [self._lookup.get(_key(r), -1) for r in rows]
        if min(idx) < 0:
            raise PlannerError("a point outside the candidate pool reached the objective")
        return torch.tensor(idx).reshape(Xt.shape[:-1])

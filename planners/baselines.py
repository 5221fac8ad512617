"""Baseline planners: uniform random and scrambled Sobol sampling of the search space."""

from __future__ import annotations

import warnings

import numpy as np
from scipy.stats import qmc

from planners.base import Planner, Proposal, SearchSpace, Target

__all__ = ["RandomPlanner", "SobolPlanner"]


class RandomPlanner(Planner):
    """Independent uniform draws (categories with equal probability)."""

    name = "random"
    version = "1"

    def __init__(self, space: SearchSpace, target: Target, seed: int | None = None) -> None:
        super().__init__(space, target, seed)
        self._rng = np.random.default_rng(seed)

    def _propose(self, n: int) -> list[Proposal]:
        u = self._rng.random((n, self.space.dim))
        return [self._proposal(c) for c in self.space.from_unit(u)]


class SobolPlanner(Planner):
    """A scrambled Sobol sequence over the unit cube (categories by equal-width bins)."""

    name = "sobol"
    version = "1"

    def __init__(self, space: SearchSpace, target: Target, seed: int | None = None) -> None:
        super().__init__(space, target, seed)
        self._sobol = qmc.Sobol(d=max(space.dim, 1), scramble=True, seed=seed)

    def _propose(self, n: int) -> list[Proposal]:
        with warnings.catch_warnings():  # any batch size is fine: the sequence stays balanced
            warnings.filterwarnings("ignore", message="The balance properties")
            u = self._sobol.random(n)[:, : self.space.dim]
        return [
            self._proposal(c, provenance={"sobol_index": int(self._sobol.num_generated)})
            for c in self.space.from_unit(u)
        ]

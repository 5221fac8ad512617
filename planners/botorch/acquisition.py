"""The acquisition: what a candidate batch is worth under each model of the target.

A Gaussian window around the target (with secondary goals scalarised into it) under
``qSimpleRegret``, or, for a Pareto target, ``qLogNEHVI`` with the window folded into the
objectives; each weighted by the chance of feasibility, and averaged over the models the
planner keeps (:class:`Mixture`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch
from botorch.acquisition import AcquisitionFunction, GenericMCObjective, qSimpleRegret
from botorch.acquisition.multi_objective.logei import qLogNoisyExpectedHypervolumeImprovement
from botorch.acquisition.multi_objective.objective import GenericMCMultiOutputObjective
from botorch.models import ModelListGP
from botorch.sampling import SobolQMCNormalSampler

__all__ = [
    "MC_SAMPLES",
    "SCREEN",
    "SECONDARY",
    "Branch",
    "FeasibilityWeighted",
    "Mixture",
    "Objectives",
    "Secondary",
]

MC_SAMPLES = 128
SCREEN = 512  # candidates scored jointly with the pending points


@dataclass(frozen=True)
class Secondary:
    """A secondary goal: its key, observable, direction (+1 maximise), objective scale, the
    noise scale of its prior recalibration, and its worst value (the reference point of a
    Pareto front)."""

    key: str
    observable: str
    sign: float
    scale: float
    noise: float
    reference: float


SECONDARY = (
    Secondary("fwhm", "pl_fwhm_nm", -1.0, 10.0, 2.0, 60.0),
    Secondary("plqy", "plqy_est", +1.0, 0.2, 0.05, 0.0),
)
"""The secondary goals a target may name (``minimize``, ``maximize``, ``pareto``)."""


class Branch(NamedTuple):
    """One model of the target that the acquisition averages over (by ``weight``): the
    recalibrated twin with a GP on what it misses, or a GP that ignores the twin."""

    weight: float
    gp: Any
    feasibility: np.ndarray
    prior_mean: np.ndarray
    prior_var: np.ndarray
    prior_draws: np.ndarray
    """The prior mean drawn from its posterior, one row per MC sample (or one row)."""


class Mixture(AcquisitionFunction):
    r""":math:`\sum_i w_i\,\alpha_i(X)`: the expected utility under a mixture of models is the
    weighted sum of each model's (Bayesian model averaging of the acquisition); with ``log``,
    the parts give :math:`\log\alpha_i` and so does the mixture."""

    def __init__(
        self, parts: Sequence[AcquisitionFunction], weights: Sequence[float], log: bool = False
    ) -> None:
        super().__init__(model=parts[0].model)
        self.parts = torch.nn.ModuleList(parts)
        self.weights = list(weights)
        self.log = log
        self.X_pending = parts[0].X_pending

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        if self.log:
            pairs = zip(self.weights, self.parts, strict=True)
            terms = [math.log(w) + part(X) for w, part in pairs]
            return torch.logsumexp(torch.stack(terms), dim=0)
        return sum(w * part(X) for w, part in zip(self.weights, self.parts, strict=True))

    def set_X_pending(self, X_pending: torch.Tensor | None = None) -> None:
        self.X_pending = X_pending
        for part in self.parts:
            part.set_X_pending(X_pending)


class FeasibilityWeighted(AcquisitionFunction):
    r""":math:`\log\alpha(X) + \sum_{i \le q} \log P(\text{feasible} \mid x_i)`, for a log
    acquisition and a feasibility known per candidate of the pool (``index_of`` maps points to
    their rows)."""

    def __init__(
        self, part: AcquisitionFunction, log_feasible: torch.Tensor, index_of: Any
    ) -> None:
        super().__init__(model=part.model)
        self.part = part
        self.log_feasible = log_feasible
        self.index_of = index_of
        self.X_pending = part.X_pending

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        return self.part(X) + self.log_feasible[self.index_of(X)].sum(-1)

    def set_X_pending(self, X_pending: torch.Tensor | None = None) -> None:
        self.X_pending = X_pending
        self.part.set_X_pending(X_pending)


@dataclass(frozen=True)
class Objectives:
    r"""The objectives of one ask, over candidates known by their row in the candidate set.

    ``index_of`` maps candidate points to their rows (a point outside the set is an error);
    ``priors`` are the secondary goals' recalibrated twins per row; a model's samples are the
    residuals of the target (column 0) and of each goal.
    """

    index_of: Callable[[torch.Tensor], torch.Tensor]
    target_value: float
    tolerance: float
    goals: Sequence[Secondary]
    priors: Sequence[torch.Tensor]
    weight: float
    r""":math:`\lambda`, the weight of the scalarised secondary goals."""
    scalarise: bool
    """Scalarise the goals into the window (not for a Pareto target: there they are traded
    off by the hypervolume)."""

    @property
    def reference(self) -> list[float]:
        """The reference point of the hypervolume (each goal's worst value, signed)."""
        return [g.sign * g.reference for g in self.goals]

    def window(self, prior_t: torch.Tensor, feasibility: torch.Tensor) -> GenericMCObjective:
        """The window score :math:`w(y)` times the goals' factors and the feasibility."""
        scalarised = list(zip(self.goals, self.priors, strict=True)) if self.scalarise else []
        target, tol, w = self.target_value, self.tolerance, self.weight

        def score_of(samples: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
            idx = self.index_of(X)
            pl = prior_t[:, idx] + samples[..., 0]
            score = torch.exp(-0.5 * ((pl - target) / tol) ** 2) * feasibility[idx]
            for j, (g, prior) in enumerate(scalarised, start=1):
                value = prior[idx] + samples[..., j]
                score = score * torch.exp(g.sign * w * value / g.scale)
            return score

        return GenericMCObjective(score_of)

    def trade_off(self, prior_t: torch.Tensor) -> GenericMCMultiOutputObjective:
        """The goals' signed values, pulled to the reference point outside the window."""
        reference, target, tol = self.reference, self.target_value, self.tolerance

        def objectives(samples: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
            idx = self.index_of(X)
            pl = prior_t[:, idx] + samples[..., 0]
            inside = torch.sigmoid((tol - (pl - target).abs()) / (tol / 4))
            cols = []
            for j, (g, prior) in enumerate(zip(self.goals, self.priors, strict=True), start=1):
                value, ref = g.sign * (prior[idx] + samples[..., j]), reference[j - 1]
                cols.append(ref + (value - ref) * inside)
            return torch.stack(cols, dim=-1)

        return GenericMCMultiOutputObjective(objectives)

    def acquisition(
        self,
        branches: Sequence[Branch],
        secondary_models: Sequence[Any],
        pending: torch.Tensor | None,
        hypervolume: bool,
        baseline: np.ndarray,
        seed: int | None,
    ) -> AcquisitionFunction:
        """Each branch's acquisition (the window's ``qSimpleRegret``, or the feasibility-
        weighted ``qLogNEHVI`` over the measured ``baseline``), mixed by the branches'
        weights."""
        parts = []
        for branch in branches:
            gps = [branch.gp, *secondary_models]
            model = gps[0] if len(gps) == 1 else ModelListGP(*gps)
            sampler = SobolQMCNormalSampler(torch.Size([MC_SAMPLES]), seed=seed)
            feas = branch.feasibility
            prior_t = torch.tensor(branch.prior_draws)
            if hypervolume:
                # (its samples are not one per MC draw: the hypervolume of the baseline
                # is cached over other sample batches, so the prior's mean alone)
                prior_t = torch.tensor(branch.prior_mean)[None]
                nehvi = qLogNoisyExpectedHypervolumeImprovement(
                    model,
                    ref_point=self.reference,
                    X_baseline=torch.tensor(baseline),
                    sampler=sampler,
                    objective=self.trade_off(prior_t),
                    X_pending=pending,
                    prune_baseline=True,
                )
                log_feas = torch.log(torch.tensor(feas))
                parts.append(FeasibilityWeighted(nehvi, log_feas, self.index_of))
            else:
                parts.append(
                    qSimpleRegret(
                        model,
                        objective=self.window(prior_t, torch.tensor(feas)),
                        X_pending=pending,
                        sampler=sampler,
                    )
                )
        if len(parts) == 1:
            return parts[0]
        total = sum(br.weight for br in branches)
        return Mixture(parts, [br.weight / total for br in branches], log=hypervolume)

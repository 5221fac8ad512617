"""Bayesian optimisation towards a target emission wavelength or size (``kind: botorch``).

Model
-----
The measured target observable :math:`y(x)` (PL peak, or size estimate) is modelled as a
physics prior plus a Gaussian process on what the physics misses:

.. math::  y(x) = t + a + b\\,(\\phi(x) - t) + r(x), \\qquad r \\sim \\mathcal{GP}(0, k)

:math:`\\phi(x)` is the noiseless prediction of :mod:`models` for the route (the digital twin),
:math:`t` the target value; :math:`(a, b)` are calibrated on the data by Bayesian ridge
regression towards :math:`(0, 1)`, with an offset of each ligand's own beside :math:`a`
(:class:`Recalibration`), so a lab whose chemistry differs from the twin pulls the prior to
itself as the campaign goes: :math:`a` where its colours are shifted, :math:`b` where they
respond more or less steeply. The acquisition draws the recalibration from its posterior, so
a scale guessed from two measurements is not taken as known. Where it differs in kind,
the twin is read differently (:class:`Reading`): the inputs whose law runs the other way are
reversed, and a ligand that acts like another of the twin's is read as that one, each chosen by
the evidence of the recalibrated twin (:meth:`BoTorchPlanner._choose_reading`). How far to trust
the twin at all is its GP's evidence against a GP without it (:func:`_trust`); the acquisition
averages the two. The residual GP is BoTorch's ``SingleTaskGP`` (the ligand one-hot
encoded, :meth:`BoTorchPlanner._one_hot`), fitted in float64 by BoTorch's L-BFGS from the
last fit's hyperparameters (:func:`_warm_start`, stopping at :data:`_FIT_FTOL`); with
``physics_prior: false``, :math:`a = b = 0` and the GP models :math:`y` itself. Secondary
goals (``minimize: [pl_fwhm_nm]``, ``maximize: [plqy_est]``) add a GP each, with their own
physics prior.

Acquisition
-----------
A Gaussian window around the target, :math:`w(y) = \\exp[-\\tfrac12((y - t)/\\tau)^2]` with
:math:`\\tau` the tolerance (times
:math:`\\exp(-\\lambda\\,\\mathrm{FWHM}/10\\,\\mathrm{nm})`
for a FWHM to minimise, :math:`\\exp(+\\lambda\\,\\mathrm{PLQY}/0.2)` for a PLQY to
maximise), is a ``GenericMCObjective``; ``qSimpleRegret`` on it is
:math:`\\mathbb{E}[\\max_{i \\le q} w(y_i)]`: for one point the expected window score, for a batch
that of the best point, so a batch spreads over the plausible hits. Experiments that failed or
gave the other shape (platelets for a cube target, cubes for a platelet target) train a
feasibility classifier (scikit-learn) whose probability multiplies the objective; before any is
seen, the twin's own prediction of no emission or of the other shape down-weights those
regions. Those samples' own lines (a platelet-rich sample emits where its platelets do) are
left out of the target's regression: they say nothing of the size law of the shape asked for.
Pending points enter as ``X_pending``.

Before three measurements there is no GP on the target (:data:`_MIN_FOR_GP`): the recalibrated
twin is right where it was measured, and its uncertainty elsewhere grows with the distance
from there (:meth:`BoTorchPlanner._twin_std`), so a near miss is mended by a small step.

With ``target.pareto`` the goal is the trade-off among hits instead: ``qLogNEHVI`` (log noisy
expected hypervolume improvement) over the objectives :math:`(-\\mathrm{FWHM}, \\mathrm{PLQY})`
from the reference point (60 nm, 0), with the wavelength window as a constraint folded into the
objective: a sample's objectives are pulled to the reference point by
:math:`1 - \\sigma((\\tau - |y - t|)/(\\tau/4))`, so a sample outside the window dominates no
volume, and the chance of the right shape enters as :math:`\\log P(\\text{feasible})` added to
the acquisition (feasibility-weighted improvement, as constrained EI does).

Optimisation
------------
Over a scrambled Sobol pool of the mixed space (4,096 points plus, each time, 512 local
perturbations of the best ones and 128 small steps from each of the 3 measurements closest to
the target) with ``optimize_acqf_discrete``: categorical parameters are
handled exactly and the physics prior is evaluated once per candidate. With pending points
(experiments under way), the acquisition is first evaluated on each candidate alone and only
the best 512 are scored jointly with the pending points, whose joint posteriors cost
:math:`(1 + n_\\mathrm{pending})^2` times more.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, NamedTuple

import numpy as np
import torch
from botorch.acquisition import AcquisitionFunction, GenericMCObjective, qSimpleRegret
from botorch.acquisition.multi_objective.logei import qLogNoisyExpectedHypervolumeImprovement
from botorch.acquisition.multi_objective.objective import GenericMCMultiOutputObjective
from botorch.fit import fit_gpytorch_mll
from botorch.models import ModelListGP, SingleTaskGP
from botorch.models.transforms.input import NumericToCategoricalEncoding
from botorch.optim import optimize_acqf_discrete
from botorch.sampling import SobolQMCNormalSampler
from gpytorch.constraints import GreaterThan
from gpytorch.likelihoods import GaussianLikelihood
from gpytorch.mlls import ExactMarginalLogLikelihood
from gpytorch.priors import LogNormalPrior
from linear_operator.utils.warnings import NumericalWarning
from scipy.special import logsumexp
from scipy.stats import qmc

from models.analysis import platelet_like
from planners.base import Observation, Planner, PlannerError, Proposal, SearchSpace, Target

__all__ = ["BoTorchPlanner"]

_POOL = 4096
_LOCAL = 512
_MC_SAMPLES = 128
_SCREEN = 512  # candidates scored jointly with the pending points
_TWIN_MEMO_ROWS = 100_000
"""The most twin predictions a planner keeps (a few MB); past it they are simulated anew."""
_NEAR = 3
"""Measurements closest to the target that small steps are taken from (candidates)."""
_NEAR_STEPS = 128
"""Small steps from each of them: half of standard deviation 0.01, half 0.03 (unit range)."""
_TWIN_LENGTH = 0.25
"""Length (unit range) over which the recalibrated twin, right at a measured point, may be
as wrong as it was there (:meth:`BoTorchPlanner._twin_std`)."""
_OTHER_CATEGORY = 0.5
"""Correlation of the twin's error between two ligands (:meth:`BoTorchPlanner._twin_std`)."""


def _marginals(
    model: Any, X: np.ndarray, observation_noise: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Posterior mean and standard deviation of ``model`` at each row of ``X``, one point at a
    time: a batch of 1-point posteriors never forms the N x N test covariance that one joint
    posterior over the rows would (70x faster over the 4,096-point pool)."""
    with torch.no_grad():
        post = model.posterior(
            torch.as_tensor(X).unsqueeze(-2), observation_noise=observation_noise
        )
        mean = post.mean.reshape(-1).numpy()
        std = post.variance.clamp_min(0).sqrt().reshape(-1).numpy()
    return mean, std


def _learned(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The fitted hyperparameters of a GP's state (what provenance records), without its
    outcome scaling or its constraints' bounds, which belong to the data of each fit."""
    return {
        k: v
        for k, v in state.items()
        if not k.startswith("outcome_transform") and "_constraint." not in k
    }


def _warm_start(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """What the next fit starts from: the last fit's hyperparameters (L-BFGS then needs a
    fraction of the iterations), with the raw noise raised to at least -4 (softplus 0.018
    above its floor): a noise fitted down to its floor (softplus far below zero) would give
    the optimiser no gradient to leave it by when new measurements scatter more."""
    return {k: v.clamp_min(-4.0) if "raw_noise" in k else v for k, v in _learned(state).items()}


def _platelet_chance(platelet_fraction: np.ndarray) -> np.ndarray:
    """Chance that a sample measures as platelets (:func:`models.analysis.platelet_like`) where
    the twin's mean platelet fraction is ``platelet_fraction``: batch-to-batch variability
    makes a mixed mean (0.1-0.5) come out either way, so the prior stays clear of it."""
    return np.clip((np.nan_to_num(platelet_fraction) - 0.1) / 0.4, 0.0, 1.0)


NOISE_FLOOR = {"pl_peak_nm": 0.3, "edge_length_est_nm": 0.03, "pl_fwhm_nm": 0.3, "plqy_est": 0.01}
"""The smallest run-to-run scatter (standard deviation) a GP may fit, per observable: about
what repeated syntheses of one recipe scatter at the least (the twin's PL peak: 0.3-1.5 nm)."""
_FIT_FTOL = 1e-6
"""L-BFGS stops when an iteration improves the marginal likelihood by less than this (relative):
warm-started from the last fit, the rest of the default 2e-9 is spent creeping along scales
that barely matter, at a few ms an iteration, on every ask."""
_MIN_FOR_GP = 3
"""Measurements of the target before a GP models what the recalibrated twin misses. The
recalibration all but interpolates two measurements, and standardised, any two residuals are
:math:`\\pm 0.71`: a GP on them takes its amplitude from their difference, one degree of
freedom, which is no measure of how wrong the twin is away from them (on a lab with the
temperature law reversed, two misses of +17 nm sent the third experiment to another ligand,
47 nm off). Until then the twin's own uncertainty grows with the distance from what was
measured (:meth:`BoTorchPlanner._twin_std`)."""
_MIN_FOR_EVIDENCE = 3
"""Measurements before the twin's evidence is weighed against a model without it."""
_PRIOR_LOG_ODDS = 2.0
"""The twin's head start, in nats of evidence: it is trusted 7:1 until the data disagree."""


def _evidence(model: Any) -> float:
    r""":math:`\log p(y \mid \theta)` of a fitted GP's training data in the data's own units.

    The fit works on standardised values; :math:`\log p(y) = \log p(y_{std}) - n \log
    \sigma_y` undoes the scaling, so GPs of different quantities (residuals from the twin, or
    the observable itself) compare. The hyperparameters' priors are left out: they are set
    on the standardised scale, where they would favour whichever quantity has the larger
    spread (its noise floor sits lower there).
    """
    model.train()  # (train mode holds the untransformed inputs the model is called with)
    train_x, train_y = model.train_inputs[0], model.train_targets
    try:
        with torch.no_grad():
            log_p = float(model.likelihood(model(train_x)).log_prob(train_y))
    finally:
        model.eval()
    n = train_y.shape[-1]
    scale = model.outcome_transform.stdvs if hasattr(model, "outcome_transform") else 1.0
    return log_p - n * float(torch.log(torch.as_tensor(scale)).sum())


_READING_LOG_ODDS = 2.0
"""The head start, in nats, of the twin as it is over each change of reading: a reversal of
its inputs' directions, or one ligand read as another."""


@dataclass(frozen=True)
class Reading:
    """How the twin is read for a lab: the continuous inputs (model-space columns) whose
    direction is reversed, and per ligand of the space the index of the twin ligand it acts
    like (empty: each its own)."""

    flips: tuple[int, ...] = ()
    ligands: tuple[int, ...] = ()

    def apply(self, X: np.ndarray, ligand_column: int | None) -> np.ndarray:
        """The points at which to ask the twin for its prediction at ``X``."""
        X = X.copy()
        X[:, list(self.flips)] = 1.0 - X[:, list(self.flips)]
        if self.ligands and ligand_column is not None:
            X[:, ligand_column] = np.asarray(self.ligands)[X[:, ligand_column].astype(int)]
        return X

    def changes(self) -> int:
        """How far from the twin as it is: one for any reversal, one per ligand read as
        another."""
        return int(bool(self.flips)) + sum(i != j for i, j in enumerate(self.ligands))

    def with_ligand(self, lab: int, twin: int) -> Reading:
        """This reading with ligand ``lab`` read as the twin's ligand ``twin``."""
        ligands = list(self.ligands)
        ligands[lab] = twin
        return Reading(self.flips, tuple(ligands))

    def ligands_read_as(self, space: SearchSpace) -> dict[str, str]:
        """``{lab ligand: twin ligand}`` for the ligands read as another."""
        names = space.categorical.get("ligand", [])
        return {names[i]: names[j] for i, j in enumerate(self.ligands) if i != j}


_OFFSET_SD = 5.0
"""Prior standard deviation, in noise scales, of the twin's recalibration offset: the common
one and each ligand's own."""
_SCALE_SD = 0.05
"""Prior standard deviation of the scale :math:`b` (around 1) of a secondary goal's twin
(FWHM, PLQY), which multiplies the twin's value itself."""
_STRETCH_SD = 0.3
"""Prior standard deviation of the target's stretch :math:`b` (around 1), which multiplies the
twin's distance from the target value: a lab whose colour responds 30 % more or less
steeply to the conditions than the twin's is as likely as not."""


def _linear_evidence(
    phys: np.ndarray, y: np.ndarray, groups: np.ndarray, scale: float, centre: float
) -> float:
    r""":math:`\log p(y)` under the recalibrated twin
    :math:`y = c + a + a_\ell + b(\phi - c) + \varepsilon` (:class:`Recalibration`, centred
    on ``centre`` :math:`c`) with its priors integrated out: :math:`y \sim \mathcal{N}(\phi,\
    s^2 (I + 25\,\mathbf{1}\mathbf{1}^T + 25\,G) + 0.3^2 (\phi - c)(\phi - c)^T)`,
    :math:`s` the noise scale, :math:`G_{ij} = 1` where points :math:`i, j` share a ligand
    (``groups``). Closed form, so every candidate reading of the
    twin is judged on every ask for the cost of one simulation of the measured points."""
    n = len(y)
    same = groups[:, None] == groups[None, :]
    offsets = _OFFSET_SD**2 * (np.ones((n, n)) + same)
    stretch = phys - centre
    cov = scale**2 * (np.eye(n) + offsets) + _STRETCH_SD**2 * np.outer(stretch, stretch)
    # (positive definite: the identity term; a Cholesky is ~10x cheaper than scipy.stats here,
    # and the reading search evaluates this hundreds of times an ask)
    chol = np.linalg.cholesky(cov)
    white = np.linalg.solve(chol, y - phys)
    log_det = 2.0 * np.log(np.diag(chol)).sum()
    return float(-0.5 * (white @ white + log_det + n * math.log(2 * math.pi)))


_SCATTER_FACTORS = (1.0, 2.0, 4.0)
"""The lab's run-to-run scatter, in units of the target's noise scale, that the reading evidence
averages over (equal weights): a lab three times as noisy as the twin would otherwise see its
scatter as evidence that a ligand acts like another, and read the twin anew on every ask."""


def _recalibration_features(
    phys: np.ndarray, groups: np.ndarray, n_groups: int, centre: float
) -> np.ndarray:
    """The columns :class:`Recalibration` is linear in: 1, :math:`\\phi - c`, each ligand."""
    return np.column_stack([np.ones_like(phys), phys - centre, np.eye(n_groups)[groups]])


@dataclass(frozen=True)
class Recalibration:
    r"""The twin recalibrated on a lab's data: :math:`c + a + a_\ell + b\,(\phi(x) - c)`, a
    common offset, one per ligand :math:`\ell` (where a lab's ligand grows other sizes than
    the twin's), and a scale about the centre :math:`c` (0, or the target value: there the
    scale is a stretch of the twin's response, not a second offset), with the posterior
    covariance of the parameters (:meth:`variance`, :meth:`draws`)."""

    a: float
    b: float
    offsets: tuple[float, ...]
    centre: float = 0.0
    cov: np.ndarray | None = field(default=None, compare=False)
    r"""Posterior covariance of :math:`(a, b, a_\ell)` (None before any data)."""

    @classmethod
    def fit(
        cls,
        phys: np.ndarray,
        y: np.ndarray,
        groups: np.ndarray,
        n_groups: int,
        scale: float,
        centre: float = 0.0,
        scale_sd: float = _SCALE_SD,
    ) -> Recalibration:
        r"""Ridge (MAP) fit towards :math:`a = a_\ell = 0`, :math:`b = 1`, with prior
        standard deviations :data:`_OFFSET_SD` noise scales for the offsets and ``scale_sd``
        for :math:`b`: a small-data recalibration of the twin (Bayesian linear regression,
        whose posterior covariance is kept)."""
        if len(y) == 0:
            return cls(0.0, 1.0, (0.0,) * n_groups, centre)
        A = _recalibration_features(phys, groups, n_groups, centre) / scale
        prior_precision = np.diag(
            [1.0 / _OFFSET_SD**2, 1.0 / scale_sd**2, *[1.0 / _OFFSET_SD**2] * n_groups]
        )
        prior_mean = np.array([0.0, 1.0, *[0.0] * n_groups])
        lhs = A.T @ A + prior_precision
        rhs = A.T @ ((y - centre) / scale) + prior_precision @ prior_mean
        a, b, *offsets = np.linalg.solve(lhs, rhs)
        cov = np.linalg.inv(lhs)
        return cls(float(a), float(b), tuple(float(o) for o in offsets), centre, cov)

    def mean(self, phys: np.ndarray, groups: np.ndarray) -> np.ndarray:
        """The recalibrated twin at points whose twin prediction is ``phys``."""
        offsets = self.a + np.asarray(self.offsets)[groups]
        return self.centre + offsets + self.b * (phys - self.centre)

    def variance(self, phys: np.ndarray, groups: np.ndarray) -> np.ndarray:
        r"""How uncertain the recalibration leaves the mean, :math:`f^T \Sigma f` (0 before
        any data): from two or three measurements a scale is a guess, and a model that took
        it as known would call a compressed or stretched response certain."""
        if self.cov is None:
            return np.zeros(len(phys))
        F = _recalibration_features(phys, groups, len(self.offsets), self.centre)
        return np.einsum("ij,jk,ik->i", F, self.cov, F)

    def draws(self, phys: np.ndarray, groups: np.ndarray, n: int, seed: int) -> np.ndarray:
        """``n`` joint draws (rows) of the recalibrated mean's deviation from :meth:`mean`
        at the points, from its posterior (zeros before any data)."""
        if self.cov is None:
            return np.zeros((n, len(phys)))
        eps = np.random.default_rng(seed).standard_normal((n, len(self.cov)))
        F = _recalibration_features(phys, groups, len(self.offsets), self.centre)
        return eps @ np.linalg.cholesky(self.cov).T @ F.T


def _trust(evidence_twin: float, evidence_free: float, stretch: float) -> float:
    r"""Posterior weight of the twin-based model against the prior-free one, from their
    evidence: :math:`\sigma(\log p_{twin} - \tfrac12((b - 1)/0.3)^2 - \log p_{free} +
    \text{head start})`. The twin's GP is judged on what the recalibration left, so the
    recalibration's own stretch :math:`b` pays its prior log-density (:data:`_STRETCH_SD`): a
    twin stretched flat fits anything."""
    stretch_cost = 0.5 * ((stretch - 1.0) / _STRETCH_SD) ** 2
    z = evidence_twin - stretch_cost - evidence_free + _PRIOR_LOG_ODDS
    return float(1.0 / (1.0 + math.exp(-max(min(z, 50.0), -50.0))))


def _mixture_marginals(
    parts: Sequence[tuple[float, np.ndarray, np.ndarray, np.ndarray]],
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of a mixture of Gaussians given as (weight, prior mean,
    residual mean, std) per branch."""
    total = sum(p[0] for p in parts)
    mean = sum(w * (prior + m) for w, prior, m, _ in parts) / total
    second = sum(w * (s**2 + (prior + m) ** 2) for w, prior, m, s in parts) / total
    return mean, np.sqrt(np.clip(second - mean**2, 0.0, None))


_CALIBRATION_PSEUDO = 3.0
"""Prior weight, in measurements, of the model's own predictive scale (factor 1)."""


def _calibration_factor(z: Sequence[float]) -> float:
    r"""How much wider the predictive standard deviation must be, learned from the planner's
    own one-step-ahead errors :math:`z_i = (y_i - \mu_i)/\sigma_i` (each prediction made when
    the point was proposed, before it was measured):

    .. math::  c^2 = \frac{k + n\,(q_{0.8}|z| / 1.2816)^2}{k + n}

    with :math:`k` = :data:`_CALIBRATION_PSEUDO`. The 80th percentile of :math:`|z|` is
    1.2816 for calibrated Gaussian errors; it sits between the 68 % and the 95 % intervals, so
    errors with heavier tails than a Gaussian's (a reading of the twin that is wrong for a few
    steps) widen both about alike, and it is robust to the few far misses that a mean of
    :math:`z^2` would let inflate every interval. The GP's own noise and
    length scales are fitted on the data it interpolates, and the points it is asked about are
    the ones the acquisition found most promising: both make it overconfident."""
    if len(z) == 0:
        return 1.0
    n = len(z)
    scale2 = (float(np.quantile(np.abs(z), 0.8)) / 1.2816) ** 2
    return float(np.sqrt((_CALIBRATION_PSEUDO + n * scale2) / (_CALIBRATION_PSEUDO + n)))


class _Branch(NamedTuple):
    """One model of the target that the acquisition averages over (by ``weight``): the
    recalibrated twin with a GP on what it misses, or a GP that ignores the twin."""

    weight: float
    gp: Any
    feasibility: np.ndarray
    prior_mean: np.ndarray
    prior_var: np.ndarray
    prior_draws: np.ndarray
    """The prior mean drawn from its posterior, one row per MC sample (or one row)."""


class _Mixture(AcquisitionFunction):
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


class _FeasibilityWeighted(AcquisitionFunction):
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


class BoTorchPlanner(Planner):
    """Physics-informed Bayesian optimisation (see the module docstring).

    Parameters
    ----------
    space, target, seed
        As for every planner.
    route
        The synthesis route, for the physics prior.
    initial_points
        Sobol points before the model takes over (default 0 with the physics prior: the first
        experiment is the twin's best guess, which on the twin's own chemistry hits half the
        time and elsewhere tells most about how the lab differs; else 5).
    physics_prior
        Use the digital twin as the GP's prior mean (default True for the built-in routes).
    feasibility
        Learn where experiments fail or give the other shape, and avoid it (default True).
    secondary_weight
        :math:`\\lambda`, the weight of the secondary goals (minimise FWHM, maximise PLQY;
        default 0.5).
    warm_start
        Seed the model with earlier campaigns' observations of the route (told by the caller,
        marked in provenance; default False).
    candidates
        Choose only among these conditions (pool-based backtests) instead of the whole space.
    twin
        :class:`~models.twin.TwinParameters` of the lab's calibrated twin, for the prior.
    """

    name = "botorch"
    version = "1"

    def __init__(
        self,
        space: SearchSpace,
        target: Target,
        seed: int | None = None,
        *,
        route: str | None = None,
        initial_points: int | None = None,
        physics_prior: bool = True,
        feasibility: bool = True,
        secondary_weight: float = 0.5,
        warm_start: bool = False,
        candidates: Sequence[Mapping[str, Any]] | None = None,
        twin: Any = None,
    ) -> None:
        super().__init__(space, target, seed)
        self.route = route
        self.physics_prior = bool(physics_prior and route is not None)
        self.initial_points = int(
            initial_points if initial_points is not None else (0 if self.physics_prior else 5)
        )
        if self.initial_points < 0:
            raise PlannerError(f"initial_points must be >= 0, got {initial_points}")
        self.feasibility = feasibility
        self.secondary_weight = float(secondary_weight)
        self.warm_start = warm_start
        self._sobol = qmc.Sobol(d=max(space.dim, 1), scramble=True, seed=seed)
        self._initial_used = 0
        self._cat = [i for i, n in enumerate(space.order) if n in space.categorical]
        self._cont = [i for i in range(space.dim) if i not in self._cat]
        self._pool_X: np.ndarray | None = None
        # the twin's noiseless prediction per (transformed) point, simulated once each
        self._twin_memo: dict[bytes, np.ndarray] = {}
        # how the twin is read for this lab (chosen by evidence, see _choose_reading)
        self._reading = Reading()
        self._flippable = [
            j
            for j, name in enumerate(space.order)
            if name in space.continuous and space.continuous[name][1] > space.continuous[name][0]
        ]
        self._ligand = space.order.index("ligand") if "ligand" in space.categorical else None
        self._n_ligands = len(space.categorical["ligand"]) if self._ligand is not None else 0
        goals = (*target.minimize, *target.maximize, *(name for name, _ in target.pareto))
        self._secondary = [g for g in SECONDARY if g.observable in goals]
        self._hyperparameters: dict[str, dict[str, torch.Tensor]] = {}
        self._twin = twin
        # the model's prediction (mean, std) for each pending point, and the standardised
        # errors of those since measured: what calibrates the reported uncertainty
        self._predicted: dict[tuple, tuple[float, float]] = {}
        self._z: list[float] = []
        self._candidates = (
            None if candidates is None else np.array([self.space.encode(c) for c in candidates])
        )

    # -- encoding -------------------------------------------------------------------------
    def _unit_to_X(self, u: np.ndarray) -> np.ndarray:
        X = u.copy()
        for j in self._cat:
            k = len(self.space.categorical[self.space.order[j]])
            X[:, j] = np.minimum(np.floor(u[:, j] * k), k - 1)
        return X

    def _one_hot(self) -> NumericToCategoricalEncoding | None:
        """The GPs' inputs with each categorical (of two or more levels) as a one-hot block:
        one ARD kernel then spans every input, which fits several times faster than a
        categorical kernel beside a continuous one and learns as much from a few points."""
        levels = {
            j: len(self.space.categorical[self.space.order[j]])
            for j in self._cat
            if len(self.space.categorical[self.space.order[j]]) > 1
        }
        if not levels:
            return None
        return NumericToCategoricalEncoding(
            dim=self.space.dim,
            categorical_features=levels,
            encoders={
                j: partial(torch.nn.functional.one_hot, num_classes=k) for j, k in levels.items()
            },
        )

    # -- physics prior --------------------------------------------------------------------
    _PHYSICS_KEYS = ("target", "fwhm", "plqy", "valid", "platelets", "p_platelets")

    def _physics(self, X: np.ndarray, reading: Reading | None = None) -> dict[str, np.ndarray]:
        """The twin's prediction at ``X``, read as ``reading`` says (default: the reading
        chosen by :meth:`_choose_reading`)."""
        if not self.physics_prior or len(X) == 0:  # no prediction, and nowhere ruled out
            table = np.zeros((len(X), len(self._PHYSICS_KEYS)))
            table[:, self._PHYSICS_KEYS.index("valid")] = 1.0
        else:
            reading = self._reading if reading is None else reading
            table = self._twin_at(reading.apply(X, self._ligand))
        out = dict(zip(self._PHYSICS_KEYS, table.T, strict=True))
        out["valid"] = out["valid"] > 0.5
        out["platelets"] = out["platelets"] > 0.5
        return out

    def _twin_at(self, X: np.ndarray) -> np.ndarray:
        """The twin's noiseless prediction at the model-space points ``X``, one row of
        :data:`_PHYSICS_KEYS` per point. Each point is simulated once per planner: the measured
        points are read anew under every candidate reading on every ask, the pool under
        each reading chosen."""
        keys = [row.tobytes() for row in np.round(X, 12)]
        missing = {k: i for i, k in enumerate(keys) if k not in self._twin_memo}
        if missing and len(self._twin_memo) + len(missing) > _TWIN_MEMO_ROWS:
            # each ask adds its local candidates; a long campaign would otherwise hold them all
            self._twin_memo.clear()
            missing = {k: i for i, k in enumerate(keys)}
        if missing:
            from models.simulation import simulate

            rows = X[list(missing.values())]
            batch = simulate(self.route, [self.space.decode(x) for x in rows], twin=self._twin)
            obs = batch.observables
            target = obs[self.target.observable]
            fwhm = obs["pl_fwhm_nm"]
            valid = np.isfinite(target) & np.isfinite(fwhm)
            material = batch.conditions.get("material", "CsPbBr3")
            table = np.stack(
                [
                    np.where(valid, target, 0.0),
                    np.where(valid, fwhm, 0.0),
                    np.nan_to_num(obs["plqy_est"]),
                    valid,
                    platelet_like(obs["pl_peak_nm"], fwhm, obs["abs_peak_nm"], material),
                    _platelet_chance(batch.population["platelet_fraction"]),
                ],
                axis=1,
            ).astype(float)
            self._twin_memo.update(zip(missing, table, strict=True))
        return np.array([self._twin_memo[k] for k in keys]).reshape(len(X), -1)

    def _shape_chance(self, p_platelets: np.ndarray) -> np.ndarray:
        """The twin's chance that a sample comes out of the shape the target asks for."""
        if self.target.shape == "any":
            return np.ones(len(p_platelets))
        return p_platelets if self.target.shape == "platelets" else 1.0 - p_platelets

    def candidate_pool(self) -> list[dict[str, float | str]]:
        """The conditions the planner chooses among: the given candidates, or a scrambled Sobol
        pool of the space."""
        return [self.space.decode(x) for x in self._pool_points()]

    def _pool_points(self) -> np.ndarray:
        if self._pool_X is None:
            if self._candidates is not None:
                self._pool_X = self._candidates
            else:
                u = qmc.Sobol(
                    d=max(self.space.dim, 1),
                    scramble=True,
                    seed=None if self.seed is None else self.seed + 1,
                ).random(_POOL)
                self._pool_X = self._unit_to_X(u[:, : self.space.dim])
        return self._pool_X

    def _choose_reading(self, X: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
        r"""How the lab's chemistry differs in kind from the twin's, chosen by evidence: which
        continuous inputs run the other way (:math:`x_j \to 1 - x_j` in the unit range; all
        :math:`2^d` reversals are judged) and which of the twin's ligands each ligand of the
        lab acts like (coordinate ascent from the twin's own ligands). The judge is the
        evidence under the recalibrated twin (:func:`_linear_evidence`), averaged over the lab's
        scatter (:data:`_SCATTER_FACTORS`), less
        :data:`_READING_LOG_ODDS` for a reversal and for each ligand read as another. A twin
        that gets a law's sign wrong (hotter giving smaller dots, say) or a ligand's
        character wrong keeps the rest of its structure; a GP without the twin cannot know it.

        Returns the twin's prediction at ``X`` under the reading chosen."""
        if not self.physics_prior or len(y) < _MIN_FOR_EVIDENCE:
            return self._physics(X)
        scale = max(self.target.tolerance, 1.0)
        ligands = list(range(self._n_ligands))
        groups = self._groups(X)
        seen = sorted(set(groups.tolist())) if ligands else []

        def score(reading: Reading) -> float:
            phys = self._physics(X, reading)["target"]
            evidence = [
                _linear_evidence(phys, y, groups, scale * f, self.target.value)
                for f in _SCATTER_FACTORS
            ]
            mean_evidence = float(logsumexp(evidence, b=1.0 / len(evidence)))
            return mean_evidence - _READING_LOG_ODDS * reading.changes()

        best_score, best = -math.inf, Reading()
        for k in range(len(self._flippable) + 1):
            for flips in itertools.combinations(self._flippable, k):
                reading = Reading(flips, tuple(ligands))
                current = score(reading)
                for _ in range(2):  # coordinate ascent over the ligands measured
                    improved = False
                    for lab_ligand, twin_ligand in itertools.product(seen, ligands):
                        trial = reading.with_ligand(lab_ligand, twin_ligand)
                        if trial != reading and (value := score(trial)) > current:
                            reading, current, improved = trial, value, True
                    if not improved:
                        break
                if current > best_score:
                    best_score, best = current, reading
        self._reading = best
        return self._physics(X)

    # -- data -----------------------------------------------------------------------------
    def _data(
        self,
    ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray], np.ndarray]:
        """(X, target, secondary observables by key, feasible flag): feasible where the
        regressions learn from the observation (:meth:`_learns_from`), the classifier's
        class."""
        X, y, feasible = [], [], []
        sec: dict[str, list[float]] = {g.key: [] for g in SECONDARY}
        for obs in self.observations:
            X.append(self.space.encode(obs.conditions))
            value = obs.observables.get(self.target.observable) if not obs.failed else None
            ok = value is not None and math.isfinite(float(value))
            y.append(float(value) if ok else np.nan)
            for g in SECONDARY:
                v = obs.observables.get(g.observable) if ok else None
                sec[g.key].append(float(v) if v is not None and math.isfinite(v) else np.nan)
            feasible.append(self._learns_from(obs))
        return (
            np.array(X).reshape(-1, self.space.dim),
            np.array(y),
            {k: np.array(v) for k, v in sec.items()},
            np.array(feasible, bool),
        )

    def _groups(self, X: np.ndarray) -> np.ndarray:
        """The ligand index of each point (all 0 without a ligand choice)."""
        if self._ligand is None:
            return np.zeros(len(X), int)
        return X[:, self._ligand].astype(int)

    def _surrogate(
        self, key: str, X: np.ndarray, values: np.ndarray, physics: np.ndarray, noise: float
    ) -> tuple[Recalibration, Any]:
        """The twin's prediction recalibrated on the data (:class:`Recalibration`), and a GP
        on what it misses (None before :data:`_MIN_FOR_GP` measured values of the target, two
        of a secondary goal)."""
        ok = np.isfinite(values)
        n_groups = max(self._n_ligands, 1)
        if self.physics_prior:
            groups = self._groups(X[ok])
            # the target's twin is stretched about the target value, where the planner works
            centre, scale_sd = (
                (self.target.value, _STRETCH_SD) if key == "target" else (0.0, _SCALE_SD)
            )
            prior = Recalibration.fit(
                physics[ok], values[ok], groups, n_groups, noise, centre, scale_sd
            )
        else:
            prior = Recalibration(0.0, 0.0, (0.0,) * n_groups)
        model = None
        if ok.sum() >= (_MIN_FOR_GP if self.physics_prior and key == "target" else 2):
            residual = values[ok] - prior.mean(physics[ok], self._groups(X[ok]))
            model = self._fit(X[ok], residual, key)
        return prior, model

    def _fit(self, X: np.ndarray, y: np.ndarray, key: str = "target") -> Any:
        """Fit a GP, starting from the hyperparameters of the last fit of the same quantity
        (:func:`_warm_start`).

        Its noise is fitted, but never below :data:`NOISE_FLOOR` of the observable: from a
        handful of points the marginal likelihood happily explains everything as signal,
        and the planner would then trust one measurement as if it could not scatter."""
        train_X = torch.tensor(X)
        train_Y = torch.tensor(y).unsqueeze(-1)
        observable = (
            self.target.observable
            if key.startswith("target")
            else next(g.observable for g in SECONDARY if g.key == key)
        )
        scale = float(np.std(y, ddof=1)) if len(y) > 1 else 1.0
        floor = (NOISE_FLOOR.get(observable, 0.0) / max(scale, 1e-9)) ** 2  # standardised
        likelihood = GaussianLikelihood(
            noise_prior=LogNormalPrior(loc=-4.0, scale=1.0),
            noise_constraint=GreaterThan(max(floor, 1e-6), initial_value=max(2 * floor, 1e-4)),
        )
        model = SingleTaskGP(
            train_X, train_Y, likelihood=likelihood, input_transform=self._one_hot()
        )
        previous = self._hyperparameters.get(key)
        if previous is not None:
            model.load_state_dict(_warm_start(previous), strict=False)
        try:
            fit_gpytorch_mll(
                ExactMarginalLogLikelihood(model.likelihood, model),
                optimizer_kwargs={"options": {"ftol": _FIT_FTOL}},
            )
        except Exception:  # keep the starting hyperparameters if the fit does not converge
            model.eval()
        self._hyperparameters[key] = {
            k: v.detach().clone() for k, v in _learned(model.state_dict()).items()
        }
        return model

    def _feasibility(self, X: np.ndarray, feasible: np.ndarray, pool: np.ndarray) -> np.ndarray:
        """P(feasible) over ``pool`` from a GP classifier (1 until both classes are seen)."""
        if not self.feasibility or feasible.all() or not feasible.any():
            return np.ones(len(pool))
        from sklearn.gaussian_process import GaussianProcessClassifier
        from sklearn.gaussian_process.kernels import RBF, ConstantKernel

        def features(Z: np.ndarray) -> np.ndarray:
            cols = []
            for j, name in enumerate(self.space.order):
                if j in self._cat:
                    k = len(self.space.categorical[name])
                    cols.append(np.eye(k)[Z[:, j].astype(int)] * 0.5)
                else:
                    cols.append(Z[:, j : j + 1])
            return np.hstack(cols)

        # fixed kernel: a smooth feasibility weight needs no hyperparameter search (and is fast)
        clf = GaussianProcessClassifier(ConstantKernel(4.0) * RBF(0.3), optimizer=None)
        clf.fit(features(X), feasible.astype(int))
        p = clf.predict_proba(features(pool))[:, 1]
        return np.clip(p, 0.02, 1.0)

    def _learns_from(self, obs: Observation) -> bool:
        """Whether the regressions learn from ``obs``: a measured value of the target, from
        particles of the shape asked for. A platelet-rich sample's line is its platelets', not
        what a cube target's size law gives there (and the other way round): only the
        classifier learns from it."""
        return (
            not obs.failed
            and math.isfinite(self.target.error(obs.observables))
            and self.target.shape_ok(obs.observables, obs.conditions)
        )

    def _learn(self, observations: list[Observation]) -> None:
        for obs in observations:
            predicted = self._predicted.pop(self.space.key(obs.conditions), None)
            if predicted is None or not self._learns_from(obs):
                continue
            mean, std = predicted
            if std > 0:
                self._z.append((float(obs.observables[self.target.observable]) - mean) / std)

    # -- proposals ------------------------------------------------------------------------
    def _propose(self, n: int) -> list[Proposal]:
        proposals: list[Proposal] = []
        X, y, sec, feasible = self._data()
        while (
            len(proposals) < n
            and self._initial_used < self.initial_points
            and (feasible.sum() + len(proposals) < self.initial_points)
        ):
            u = self._sobol.random(1)[:, : self.space.dim]
            self._initial_used += 1
            proposals.append(
                self._proposal(
                    self.space.decode(self._unit_to_X(u)[0]), provenance={"stage": "initial_sobol"}
                )
            )
        replicate = self._replicate_to_confirm()
        if len(proposals) < n and replicate is not None:
            proposals.append(self._proposal(replicate, provenance={"stage": "replicate"}))
        if len(proposals) < n:
            with warnings.catch_warnings():
                # replicates make the joint covariance of the measured points singular: the
                # jitter gpytorch adds is expected there, not worth a warning per candidate
                warnings.simplefilter("ignore", NumericalWarning)
                proposals += self._model_proposals(
                    n - len(proposals), X, y, sec, feasible, proposals
                )
        return proposals

    def _replicate_to_confirm(self) -> Mapping[str, Any] | None:
        """The first hit, once, when it has been measured only once and is not pending: the one
        replicate the planner makes (model proposals never repeat measured conditions)."""
        counts: dict[tuple, int] = {}
        first_hit = None
        for obs in self.observations:
            key = self.space.key(obs.conditions)
            counts[key] = counts.get(key, 0) + 1
            if (
                first_hit is None
                and not obs.failed
                and self.target.hit(obs.observables, obs.conditions)
            ):
                first_hit = obs.conditions
        if first_hit is None:
            return None
        key = self.space.key(first_hit)
        return first_hit if counts[key] == 1 and key not in self._pending else None

    def _model_proposals(
        self,
        q: int,
        X: np.ndarray,
        y: np.ndarray,
        sec: dict[str, np.ndarray],
        feasible: np.ndarray,
        already: list[Proposal],
    ) -> list[Proposal]:
        torch.manual_seed(0 if self.seed is None else self.seed + len(self.observations))
        Xm, ym = X[feasible], y[feasible]
        phys_train = self._choose_reading(Xm, ym)
        pool = self._pool_points()
        phys = self._physics(pool)
        tol = self.target.tolerance
        prior, target_model = self._surrogate("target", Xm, ym, phys_train["target"], max(tol, 1.0))
        # secondary goals: (goal, prior calibration, model) for those with enough data, once
        # the target has a GP (before, the twin's window alone decides)
        secondaries = []
        for g in self._secondary if target_model is not None else ():
            prior_g, model = self._surrogate(
                g.key, Xm, sec[g.key][feasible], phys_train[g.key], g.noise
            )
            if model is not None:
                secondaries.append((g, prior_g, model))
        # how far to trust the twin: its evidence against a GP that ignores it
        free_model, trust = None, 1.0  # (without the prior, the one model is prior-free)
        if self.physics_prior and len(ym) >= _MIN_FOR_EVIDENCE:
            free_model = self._fit(Xm, ym, "target_free")
            trust = _trust(_evidence(target_model), _evidence(free_model), prior.b)

        # refine around the best candidates of the prior or the data
        pending = np.array(
            [self.space.encode(c) for c in self.pending]
            + [self.space.encode(p.conditions) for p in already]
        ).reshape(-1, self.space.dim)
        models = []
        if target_model is not None:
            models = [target_model, *(model for _, _, model in secondaries)]
        mean_pool = prior.mean(phys["target"], self._groups(pool))
        if models:
            mean_pool = mean_pool + _marginals(models[0], pool)[0]
        if free_model is not None:
            mean_pool = trust * mean_pool + (1 - trust) * _marginals(free_model, pool)[0]
        best = np.argsort(np.abs(mean_pool - self.target.value) + 1e3 * ~phys["valid"])[:16]
        rng = np.random.default_rng(None if self.seed is None else self.seed + len(X))
        n_local = 0 if self._candidates is not None else _LOCAL // 16
        local = np.repeat(pool[best], n_local, axis=0)
        cont = self._cont
        local[:, cont] = np.clip(
            local[:, cont] + rng.normal(0, 0.03, (len(local), len(cont))), 0, 1
        )
        if n_local and len(ym):
            # small steps from the measurements closest to the target: a near miss is best
            # mended where the model knows the lab, not at a far point the twin puts on target
            nearest = Xm[np.argsort(np.abs(ym - self.target.value))[:_NEAR]]
            steps = np.repeat(nearest, _NEAR_STEPS, axis=0)
            sd = np.tile(np.repeat([0.01, 0.03], _NEAR_STEPS // 2), len(nearest))[:, None]
            steps[:, cont] = np.clip(
                steps[:, cont] + sd * rng.standard_normal((len(steps), len(cont))), 0, 1
            )
            local = np.vstack([local, steps])
        # pending points (from earlier asks) must be in the candidate set: X_pending is scored
        local = np.vstack([local, pending]) if len(pending) else local
        local_phys = self._physics(local)
        # the measured points too: a Pareto front's baseline is scored through the lookup
        cand = np.vstack([pool, local, Xm])
        cand_phys = {k: np.concatenate([phys[k], local_phys[k], phys_train[k]]) for k in phys}
        # the twin predicts where nothing emits or the other shape forms: avoid it from the start
        learned = self._feasibility(X, feasible, cand)
        p_feasible = (
            learned
            * np.where(cand_phys["valid"], 1.0, 0.02)
            * np.clip(self._shape_chance(cand_phys["p_platelets"]), 0.05, 1.0)
        )

        lookup = {tuple(np.round(r, 10)): i for i, r in enumerate(cand)}
        cand_groups = self._groups(cand)
        priors = [torch.tensor(p.mean(cand_phys[g.key], cand_groups)) for g, p, _ in secondaries]
        target_value, w = self.target.value, self.secondary_weight
        goals = [g for g, *_ in secondaries]  # (none before the target's GP)
        # a Pareto target needs a model of each of its objectives (from two measurements on)
        pareto = bool(self.target.pareto) and len(goals) == len(self.target.pareto)
        scalarised = [] if self.target.pareto else list(zip(goals, priors, strict=True))

        def index_of(Xt: torch.Tensor) -> torch.Tensor:
            rows = Xt.detach().reshape(-1, Xt.shape[-1]).numpy()
            idx = [lookup.get(tuple(np.round(r, 10)), -1) for r in rows]
            if min(idx) < 0:
                raise PlannerError("a point outside the candidate pool reached the objective")
            return torch.tensor(idx).reshape(Xt.shape[:-1])

        def window(prior_t: torch.Tensor, weight: torch.Tensor) -> GenericMCObjective:
            def score_of(samples: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
                idx = index_of(X)
                pl = prior_t[:, idx] + samples[..., 0]
                score = torch.exp(-0.5 * ((pl - target_value) / tol) ** 2) * weight[idx]
                for j, (g, prior) in enumerate(scalarised, start=1):
                    value = prior[idx] + samples[..., j]
                    score = score * torch.exp(g.sign * w * value / g.scale)
                return score

            return GenericMCObjective(score_of)

        reference = [g.sign * g.reference for g in goals]

        def trade_off(prior_t: torch.Tensor) -> GenericMCMultiOutputObjective:
            def objectives(samples: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
                idx = index_of(X)
                pl = prior_t[:, idx] + samples[..., 0]
                inside = torch.sigmoid((tol - (pl - target_value).abs()) / (tol / 4))
                cols = []
                for j, (g, prior) in enumerate(zip(goals, priors, strict=True), start=1):
                    value, ref = g.sign * (prior[idx] + samples[..., j]), reference[j - 1]
                    cols.append(ref + (value - ref) * inside)
                return torch.stack(cols, dim=-1)

            return GenericMCMultiOutputObjective(objectives)

        # neither what is under way nor what was measured is proposed again (a replicate is a
        # decision of its own); a pending point comes back through decode/encode a few ulp away
        # from its pool row: compare rounded, as the lookup does
        taken = {tuple(np.round(r, 10)) for r in np.vstack([pending, X])}  # X: measured
        free = np.array([tuple(np.round(r, 10)) not in taken for r in cand])
        choices = torch.tensor(cand[free])
        X_pending = torch.tensor(pending) if len(pending) else None
        if models:
            # the twin's branch and, once the data can judge it, the branch that ignores the
            # twin; the twin's mean is drawn from its recalibration's posterior
            twin_mean = prior.mean(cand_phys["target"], cand_groups)
            twin_draws = twin_mean + prior.draws(
                cand_phys["target"], cand_groups, _MC_SAMPLES, self.seed or 0
            )
            twin_var = prior.variance(cand_phys["target"], cand_groups)
            nothing = np.zeros(len(cand))
            branches = [
                _Branch(trust, target_model, p_feasible, twin_mean, twin_var, twin_draws),
                _Branch(1.0 - trust, free_model, learned, nothing, nothing, nothing[None]),
            ]
            branches = [br for br in branches if br.gp is not None and br.weight > 0.01]

            def acquisition(pending: torch.Tensor | None, hypervolume: bool) -> AcquisitionFunction:
                parts = []
                for branch in branches:
                    gps = [branch.gp, *(m for *_, m in secondaries)]
                    model = gps[0] if len(gps) == 1 else ModelListGP(*gps)
                    sampler = SobolQMCNormalSampler(torch.Size([_MC_SAMPLES]), seed=self.seed)
                    feas = branch.feasibility
                    prior_t = torch.tensor(branch.prior_draws)
                    if hypervolume:
                        # (its samples are not one per MC draw: the hypervolume of the baseline
                        # is cached over other sample batches, so the prior's mean alone)
                        prior_t = torch.tensor(branch.prior_mean)[None]
                        nehvi = qLogNoisyExpectedHypervolumeImprovement(
                            model,
                            ref_point=reference,
                            X_baseline=torch.tensor(Xm),
                            sampler=sampler,
                            objective=trade_off(prior_t),
                            X_pending=pending,
                            prune_baseline=True,
                        )
                        log_feas = torch.log(torch.tensor(feas))
                        parts.append(_FeasibilityWeighted(nehvi, log_feas, index_of))
                    else:
                        parts.append(
                            qSimpleRegret(
                                model,
                                objective=window(prior_t, torch.tensor(feas)),
                                X_pending=pending,
                                sampler=sampler,
                            )
                        )
                if len(parts) == 1:
                    return parts[0]
                total = sum(br.weight for br in branches)
                return _Mixture(parts, [br.weight / total for br in branches], log=hypervolume)

            if (X_pending is not None or pareto) and len(choices) > _SCREEN:
                # joint posteriors with the pending points (or the measured ones, for the
                # hypervolume) cost (1 + n)^2 a candidate: only the best candidates for the
                # window on their own are worth that
                with torch.no_grad():
                    alone = acquisition(None, hypervolume=False)(choices.unsqueeze(-2))
                choices = choices[alone.topk(_SCREEN).indices]
            chosen, values = optimize_acqf_discrete(
                acquisition(X_pending, hypervolume=pareto), q=q, choices=choices, X_avoid=X_pending
            )
            chosen_np = chosen.numpy()
            rows = [lookup[tuple(np.round(x, 10))] for x in chosen_np]
            parts = []
            for br in branches:
                residual, sd = _marginals(br.gp, chosen_np, observation_noise=True)
                sd = np.sqrt(sd**2 + br.prior_var[rows])
                parts.append((br.weight, br.prior_mean[rows], residual, sd))
            mean, std = _mixture_marginals(parts)
        else:  # prior only: the recalibrated twin's expected window score, spread greedily
            mean_c = prior.mean(cand_phys["target"], cand_groups)
            std_c = self._twin_std(cand, Xm, ym - phys_train["target"])
            spread = tol**2 + std_c**2
            score = tol / np.sqrt(spread) * np.exp(-0.5 * (mean_c - target_value) ** 2 / spread)
            score = score * p_feasible
            order = np.argsort(-score)
            picks = [i for i in order if free[i]][:q]
            chosen_np = cand[picks]
            values = torch.tensor(score[picks])
            mean, std = mean_c[picks], std_c[picks]
        out = []
        vals = (
            values.reshape(-1).numpy()
            if values.numel() > 1
            else np.repeat(values.item(), len(chosen_np))
        )
        widen = _calibration_factor(self._z)
        for i, x in enumerate(chosen_np):
            k = lookup[tuple(np.round(x, 10))]
            conditions = self.space.decode(x)
            self._predicted[self.space.key(conditions)] = (float(mean[i]), float(std[i]))
            out.append(
                self._proposal(
                    conditions,
                    acquisition_value=float(vals[min(i, len(vals) - 1)]),
                    predicted_mean=float(mean[i]),
                    predicted_std=float(widen * std[i]),
                    provenance={
                        "stage": "model",
                        "model_prediction": [float(mean[i]), float(std[i])],
                        "calibration_factor": widen,
                        # before _MIN_FOR_GP measurements there is no GP: the twin's window
                        "acquisition": "qLogNEHVI" if pareto else "window" if models else "twin",
                        "prior_a": prior.a,
                        "prior_b": prior.b,
                        "prior_ligand_offsets": self._ligand_offsets(prior),
                        "prior_trust": trust,
                        "twin_reversed": [self.space.order[j] for j in self._reading.flips],
                        "twin_ligands": self._reading.ligands_read_as(self.space),
                        "hyperparameters": self._hyperparameters_json(),
                        "observations": len(ym),
                        "p_feasible": float(p_feasible[k]),
                        "warm_start": int(sum(o.warm_start for o in self.observations)),
                    },
                )
            )
        return out

    def _twin_std(self, X: np.ndarray, Xm: np.ndarray, misses: np.ndarray) -> np.ndarray:
        r"""How far the recalibrated twin may be off at ``X`` before a GP is fitted (fewer
        than :data:`_MIN_FOR_GP` measurements): :math:`2\tau` with nothing measured; after
        that the twin's largest miss :math:`s` at the measured points, vanishing towards them
        as a GP's posterior would,
        :math:`\sigma^2(x) = \sigma_n^2 + s^2 (1 - \max_i k(x, x_i)^2)`, with :math:`k`
        squared-exponential of length :data:`_TWIN_LENGTH` (unit range) and
        :data:`_OTHER_CATEGORY` for another ligand. The recalibration makes the twin right
        where it was measured; how right it is elsewhere only the distance can say, so a near
        miss is mended by a small step, not by a far point the twin puts on target."""
        tol = self.target.tolerance
        if len(Xm) == 0:
            return np.full(len(X), 2.0 * tol)
        cont = self._cont
        d2 = (((X[:, None, cont] - Xm[None, :, cont]) / _TWIN_LENGTH) ** 2).sum(-1)
        k = np.exp(-0.5 * d2)
        for j in self._cat:
            k = k * np.where(X[:, None, j] == Xm[None, :, j], 1.0, _OTHER_CATEGORY)
        s = max(float(np.abs(misses).max()), tol)
        noise = NOISE_FLOOR.get(self.target.observable, 0.0)
        return np.sqrt(noise**2 + s**2 * (1.0 - k.max(axis=1) ** 2))

    def _ligand_offsets(self, prior: Recalibration) -> dict[str, float]:
        if self._ligand is None:
            return {}
        return dict(zip(self.space.categorical["ligand"], prior.offsets, strict=True))

    def _hyperparameters_json(self) -> dict[str, dict[str, Any]]:
        return {
            key: {k: v.tolist() for k, v in state.items()}
            for key, state in self._hyperparameters.items()
        }

    # -- resume ---------------------------------------------------------------------------
    def restore(
        self,
        batches: Sequence[Sequence[Mapping[str, Any]]],
        observations: Sequence[Observation],
        provenance: Sequence[Mapping[str, Any]] = (),
    ) -> None:
        """Tell what was observed, mark the rest pending, skip the Sobol points already used,
        and start the next fit from the hyperparameters stored with the last proposal, as an
        uninterrupted planner would."""
        for prov in reversed(list(provenance)):
            if "hyperparameters" in prov:
                self._hyperparameters = {
                    key: {k: torch.tensor(v, dtype=torch.float64) for k, v in state.items()}
                    for key, state in prov["hyperparameters"].items()
                }
                break
        asked = [c for batch in batches for c in batch]
        if len(provenance) == len(asked):  # the model's predictions, to calibrate on again
            for conditions, prov in zip(asked, provenance, strict=True):
                if "model_prediction" in prov:
                    mean, std = prov["model_prediction"]
                    self._predicted[self.space.key(conditions)] = (float(mean), float(std))
        used = min(len(asked), self.initial_points)
        if used:
            self._sobol.fast_forward(used)
        self._initial_used = used
        self.tell(list(observations))
        observed = {self.space.key(o.conditions) for o in observations}
        for c in asked:
            if self.space.key(c) not in observed:
                self._pending[self.space.key(c)] = c

    def predict(self, conditions: Sequence[Mapping[str, Any]]) -> dict[str, np.ndarray]:
        """Predicted target observable and FWHM (mean, std) at ``conditions`` (the target's std
        calibrated like the proposals', see :func:`_calibration_factor`)."""
        X = np.array([self.space.encode(c) for c in conditions])
        Xa, y, sec, feasible = self._data()
        phys = self._physics(X)
        train_phys = self._physics(Xa[feasible])
        out: dict[str, np.ndarray] = {}
        for key, values, scale in (
            ("target", y, max(self.target.tolerance, 1.0)),
            ("fwhm", sec["fwhm"], 2.0),
        ):
            prior, model = self._surrogate(
                key, Xa[feasible], values[feasible], train_phys[key], scale
            )
            mean = prior.mean(phys[key], self._groups(X))
            std = np.full(len(X), 3.0)
            if model is not None:
                residual, std = _marginals(model, X, observation_noise=True)
                mean = mean + residual
                std = np.sqrt(std**2 + prior.variance(phys[key], self._groups(X)))
            elif key == "target" and self.physics_prior:  # before its GP: as proposals have it
                std = self._twin_std(X, Xa[feasible], values[feasible] - train_phys[key])
            if key == "target":  # as wide as its past predictions proved to need
                std = std * _calibration_factor(self._z)
            out[f"{key}_mean"], out[f"{key}_std"] = np.where(phys["valid"], mean, np.nan), std
        out["platelets"] = phys["platelets"]
        return out

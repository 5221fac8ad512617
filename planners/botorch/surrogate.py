"""The surrogate: BoTorch GPs on what the recalibrated twin misses, their fits, posteriors and
evidence, and the calibration of the reported uncertainty."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from botorch.fit import fit_gpytorch_mll
from botorch.models import SingleTaskGP
from gpytorch.constraints import GreaterThan
from gpytorch.likelihoods import GaussianLikelihood
from gpytorch.mlls import ExactMarginalLogLikelihood
from gpytorch.priors import LogNormalPrior

__all__ = [
    "CALIBRATION_PSEUDO",
    "FIT_FTOL",
    "MIN_FOR_EVIDENCE",
    "MIN_FOR_GP",
    "NOISE_FLOOR",
    "OTHER_CATEGORY",
    "TWIN_LENGTH",
    "calibration_factor",
    "evidence",
    "fit_gp",
    "learned",
    "marginals",
    "mixture_marginals",
    "twin_std",
    "warm_start_state",
]

NOISE_FLOOR = {"pl_peak_nm": 0.3, "edge_length_est_nm": 0.03, "pl_fwhm_nm": 0.3, "plqy_est": 0.01}
"""The smallest run-to-run scatter (standard deviation) a GP may fit, per observable: about
what repeated syntheses of one recipe scatter at the least (the twin's PL peak: 0.3-1.5 nm)."""

FIT_FTOL = 1e-6
"""L-BFGS stops when an iteration improves the marginal likelihood by less than this (relative):
warm-started from the last fit, the rest of the default 2e-9 is spent creeping along scales
that barely matter, at a few ms an iteration, on every ask."""

MIN_FOR_GP = 3
"""Measurements of the target before a GP models what the recalibrated twin misses. The
recalibration all but interpolates two measurements, and standardised, any two residuals are
:math:`\\pm 0.71`: a GP on them takes its amplitude from their difference, one degree of
freedom, which is no measure of how wrong the twin is away from them (on a lab with the
temperature law reversed, two misses of +17 nm sent the third experiment to another ligand,
47 nm off). Until then the twin's own uncertainty grows with the distance from what was
measured (:func:`twin_std`)."""

MIN_FOR_EVIDENCE = 3
"""Measurements before the twin's evidence is weighed against a model without it."""


def marginals(
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


def learned(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The fitted hyperparameters of a GP's state (what provenance records), without its
    outcome scaling or its constraints' bounds, which belong to the data of each fit."""
    return {
        k: v
        for k, v in state.items()
        if not k.startswith("outcome_transform") and "_constraint." not in k
    }


def warm_start_state(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """What the next fit starts from: the last fit's hyperparameters (L-BFGS then needs a
    fraction of the iterations), with the raw noise raised to at least -4 (softplus 0.018
    above its floor): a noise fitted down to its floor (softplus far below zero) would give
    the optimiser no gradient to leave it by when new measurements scatter more."""
    return {k: v.clamp_min(-4.0) if "raw_noise" in k else v for k, v in learned(state).items()}


def evidence(model: Any) -> float:
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


def mixture_marginals(
    parts: Sequence[tuple[float, np.ndarray, np.ndarray, np.ndarray]],
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of a mixture of Gaussians given as (weight, prior mean,
    residual mean, std) per branch."""
    total = sum(p[0] for p in parts)
    mean = sum(w * (prior + m) for w, prior, m, _ in parts) / total
    second = sum(w * (s**2 + (prior + m) ** 2) for w, prior, m, s in parts) / total
    return mean, np.sqrt(np.clip(second - mean**2, 0.0, None))


CALIBRATION_PSEUDO = 3.0
"""Prior weight, in measurements, of the model's own predictive scale (factor 1)."""


def calibration_factor(z: Sequence[float]) -> float:
    r"""How much wider the predictive standard deviation must be, learned from the planner's
    own one-step-ahead errors :math:`z_i = (y_i - \mu_i)/\sigma_i` (each prediction made when
    the point was proposed, before it was measured):

    .. math::  c^2 = \frac{k + n\,(q_{0.8}|z| / 1.2816)^2}{k + n}

    with :math:`k` = :data:`CALIBRATION_PSEUDO`. The 80th percentile of :math:`|z|` is
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
    return float(np.sqrt((CALIBRATION_PSEUDO + n * scale2) / (CALIBRATION_PSEUDO + n)))


def fit_gp(
    X: np.ndarray,
    y: np.ndarray,
    noise_floor: float,
    input_transform: Any,
    previous: Mapping[str, torch.Tensor] | None,
) -> SingleTaskGP:
    """A ``SingleTaskGP`` fitted to ``(X, y)`` by L-BFGS, starting from the hyperparameters of
    the last fit of the same quantity (``previous``, see :func:`warm_start_state`).

    Its noise is fitted, but never below ``noise_floor`` (the observable's
    :data:`NOISE_FLOOR`): from a handful of points the marginal likelihood happily explains
    everything as signal, and the planner would then trust one measurement as if it could not
    scatter."""
    train_X = torch.tensor(X)
    train_Y = torch.tensor(y).unsqueeze(-1)
    scale = float(np.std(y, ddof=1)) if len(y) > 1 else 1.0
    floor = (noise_floor / max(scale, 1e-9)) ** 2  # standardised
    likelihood = GaussianLikelihood(
        noise_prior=LogNormalPrior(loc=-4.0, scale=1.0),
        noise_constraint=GreaterThan(max(floor, 1e-6), initial_value=max(2 * floor, 1e-4)),
    )
    model = SingleTaskGP(train_X, train_Y, likelihood=likelihood, input_transform=input_transform)
    if previous is not None:
        model.load_state_dict(warm_start_state(previous), strict=False)
    try:
        fit_gpytorch_mll(
            ExactMarginalLogLikelihood(model.likelihood, model),
            optimizer_kwargs={"options": {"ftol": FIT_FTOL}},
        )
    except Exception:  # keep the starting hyperparameters if the fit does not converge
        model.eval()
    return model


TWIN_LENGTH = 0.25
"""Length (unit range) over which the recalibrated twin, right at a measured point, may be
as wrong as it was there (:func:`twin_std`)."""
OTHER_CATEGORY = 0.5
"""Correlation of the twin's error between two ligands (:func:`twin_std`)."""


def twin_std(
    X: np.ndarray,
    Xm: np.ndarray,
    misses: np.ndarray,
    continuous: Sequence[int],
    categorical: Sequence[int],
    tolerance: float,
    noise: float,
) -> np.ndarray:
    r"""How far the recalibrated twin may be off at ``X`` before a GP is fitted (fewer
    than :data:`MIN_FOR_GP` measurements): :math:`2\tau` with nothing measured; after
    that the twin's largest miss :math:`s` at the measured points ``Xm``, vanishing towards
    them as a GP's posterior would,
    :math:`\sigma^2(x) = \sigma_n^2 + s^2 (1 - \max_i k(x, x_i)^2)`, with :math:`k`
    squared-exponential of length :data:`TWIN_LENGTH` (unit range) and
    :data:`OTHER_CATEGORY` for another ligand. The recalibration makes the twin right
    where it was measured; how right it is elsewhere only the distance can say, so a near
    miss is mended by a small step, not by a far point the twin puts on target."""
    if len(Xm) == 0:
        return np.full(len(X), 2.0 * tolerance)
    cont = list(continuous)
    d2 = (((X[:, None, cont] - Xm[None, :, cont]) / TWIN_LENGTH) ** 2).sum(-1)
    k = np.exp(-0.5 * d2)
    for j in categorical:
        k = k * np.where(X[:, None, j] == Xm[None, :, j], 1.0, OTHER_CATEGORY)
    s = max(float(np.abs(misses).max()), tolerance)
    return np.sqrt(noise**2 + s**2 * (1.0 - k.max(axis=1) ** 2))

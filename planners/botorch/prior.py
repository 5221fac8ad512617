"""The physics prior: how the digital twin is read for a lab (:class:`Reading`), recalibrated on
its data (:class:`Recalibration`), and how far to trust it (:func:`trust_in_twin`).

The twin's noiseless predictions are simulated once per point (:class:`TwinPredictions`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from models.analysis import platelet_like
from planners.base import SearchSpace

__all__ = [
    "OFFSET_SD",
    "PHYSICS_KEYS",
    "PRIOR_LOG_ODDS",
    "READING_LOG_ODDS",
    "SCALE_SD",
    "SCATTER_FACTORS",
    "STRETCH_SD",
    "TWIN_MEMO_ROWS",
    "Reading",
    "Recalibration",
    "TwinPredictions",
    "linear_evidence",
    "platelet_chance",
    "recalibration_features",
    "trust_in_twin",
]

PRIOR_LOG_ODDS = 2.0
"""The twin's head start, in nats of evidence: it is trusted 7:1 until the data disagree."""

READING_LOG_ODDS = 2.0
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


OFFSET_SD = 5.0
"""Prior standard deviation, in noise scales, of the twin's recalibration offset: the common
one and each ligand's own."""

SCALE_SD = 0.05
"""Prior standard deviation of the scale :math:`b` (around 1) of a secondary goal's twin
(FWHM, PLQY), which multiplies the twin's value itself."""

STRETCH_SD = 0.3
"""Prior standard deviation of the target's stretch :math:`b` (around 1), which multiplies the
twin's distance from the target value: a lab whose colour responds 30 % more or less
steeply to the conditions than the twin's is as likely as not."""


def linear_evidence(
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
    offsets = OFFSET_SD**2 * (np.ones((n, n)) + same)
    stretch = phys - centre
    cov = scale**2 * (np.eye(n) + offsets) + STRETCH_SD**2 * np.outer(stretch, stretch)
    # (positive definite: the identity term; a Cholesky is ~10x cheaper than scipy.stats here,
    # and the reading search evaluates this hundreds of times an ask)
    chol = np.linalg.cholesky(cov)
    white = np.linalg.solve(chol, y - phys)
    log_det = 2.0 * np.log(np.diag(chol)).sum()
    return float(-0.5 * (white @ white + log_det + n * math.log(2 * math.pi)))


SCATTER_FACTORS = (1.0, 2.0, 4.0)
"""The lab's run-to-run scatter, in units of the target's noise scale, that the reading evidence
averages over (equal weights): a lab three times as noisy as the twin would otherwise see its
scatter as evidence that a ligand acts like another, and read the twin anew on every ask."""


def recalibration_features(
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
        scale_sd: float = SCALE_SD,
    ) -> Recalibration:
        r"""Ridge (MAP) fit towards :math:`a = a_\ell = 0`, :math:`b = 1`, with prior
        standard deviations :data:`OFFSET_SD` noise scales for the offsets and ``scale_sd``
        for :math:`b`: a small-data recalibration of the twin (Bayesian linear regression,
        whose posterior covariance is kept)."""
        if len(y) == 0:
            return cls(0.0, 1.0, (0.0,) * n_groups, centre)
        A = recalibration_features(phys, groups, n_groups, centre) / scale
        prior_precision = np.diag(
            [1.0 / OFFSET_SD**2, 1.0 / scale_sd**2, *[1.0 / OFFSET_SD**2] * n_groups]
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
        F = recalibration_features(phys, groups, len(self.offsets), self.centre)
        return np.einsum("ij,jk,ik->i", F, self.cov, F)

    def draws(self, phys: np.ndarray, groups: np.ndarray, n: int, seed: int) -> np.ndarray:
        """``n`` joint draws (rows) of the recalibrated mean's deviation from :meth:`mean`
        at the points, from its posterior (zeros before any data)."""
        if self.cov is None:
            return np.zeros((n, len(phys)))
        eps = np.random.default_rng(seed).standard_normal((n, len(self.cov)))
        F = recalibration_features(phys, groups, len(self.offsets), self.centre)
        return eps @ np.linalg.cholesky(self.cov).T @ F.T


def trust_in_twin(evidence_twin: float, evidence_free: float, stretch: float) -> float:
    r"""Posterior weight of the twin-based model against the prior-free one, from their
    evidence: :math:`\sigma(\log p_{twin} - \tfrac12((b - 1)/0.3)^2 - \log p_{free} +
    \text{head start})`. The twin's GP is judged on what the recalibration left, so the
    recalibration's own stretch :math:`b` pays its prior log-density (:data:`STRETCH_SD`): a
    twin stretched flat fits anything."""
    stretch_cost = 0.5 * ((stretch - 1.0) / STRETCH_SD) ** 2
    z = evidence_twin - stretch_cost - evidence_free + PRIOR_LOG_ODDS
    return float(1.0 / (1.0 + math.exp(-max(min(z, 50.0), -50.0))))


def platelet_chance(platelet_fraction: np.ndarray) -> np.ndarray:
    """Chance that a sample measures as platelets (:func:`models.analysis.platelet_like`) where
    the twin's mean platelet fraction is ``platelet_fraction``: batch-to-batch variability
    makes a mixed mean (0.1-0.5) come out either way, so the prior stays clear of it."""
    return np.clip((np.nan_to_num(platelet_fraction) - 0.1) / 0.4, 0.0, 1.0)


TWIN_MEMO_ROWS = 100_000
"""The most twin predictions a planner keeps (a few MB); past it they are simulated anew."""
PHYSICS_KEYS = ("target", "fwhm", "plqy", "valid", "platelets", "p_platelets")
"""The columns of the twin's prediction at a point."""


class TwinPredictions:
    """The twin's noiseless prediction at model-space points, one row of :data:`PHYSICS_KEYS`
    per point. Each point is simulated once (up to :data:`TWIN_MEMO_ROWS` points kept): the
    measured points are read anew under every candidate reading on every ask, the pool under
    each reading chosen.

    Parameters
    ----------
    route, space
        The route simulated and the space the points are encoded in.
    observable
        The target's observable (the ``target`` column).
    twin
        :class:`~models.twin.TwinParameters` of a calibrated twin (None: the default twin).
    """

    def __init__(self, route: str | None, space: SearchSpace, observable: str, twin: Any) -> None:
        self.route, self.space, self.observable, self.twin = route, space, observable, twin
        self.memo: dict[bytes, np.ndarray] = {}

    def __call__(self, X: np.ndarray) -> np.ndarray:
        keys = [row.tobytes() for row in np.round(X, 12)]
        missing = {k: i for i, k in enumerate(keys) if k not in self.memo}
        if missing and len(self.memo) + len(missing) > TWIN_MEMO_ROWS:
            # each ask adds its local candidates; a long campaign would otherwise hold them all
            self.memo.clear()
            missing = {k: i for i, k in enumerate(keys)}
        if missing:
            rows = X[list(missing.values())]
            self.memo.update(zip(missing, self._simulate(rows), strict=True))
        return np.array([self.memo[k] for k in keys]).reshape(len(X), -1)

    def _simulate(self, rows: np.ndarray) -> np.ndarray:
        from models.simulation import simulate

        batch = simulate(self.route, [self.space.decode(x) for x in rows], twin=self.twin)
        obs = batch.observables
        target = obs[self.observable]
        fwhm = obs["pl_fwhm_nm"]
        valid = np.isfinite(target) & np.isfinite(fwhm)
        material = batch.conditions.get("material", "CsPbBr3")
        return np.stack(
            [
                np.where(valid, target, 0.0),
                np.where(valid, fwhm, 0.0),
                np.nan_to_num(obs["plqy_est"]),
                valid,
                platelet_like(obs["pl_peak_nm"], fwhm, obs["abs_peak_nm"], material),
                platelet_chance(batch.population["platelet_fraction"]),
            ],
            axis=1,
        ).astype(float)

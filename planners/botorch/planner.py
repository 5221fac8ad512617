"""Bayesian optimisation towards a target emission wavelength or size (``kind: botorch``).

Model
-----
The measured target observable :math:`y(x)` (PL peak, or size estimate) is modelled as a
physics prior plus a Gaussian process on what the physics misses:

.. math::  y(x) = t + a + b\\,(\\phi(x) - t) + r(x), \\qquad r \\sim \\mathcal{GP}(0, k)

:math:`\\phi(x)` is the noiseless prediction of :mod:`models` for the route (the digital twin),
:math:`t` the target value; :math:`(a, b)` are calibrated on the data by Bayesian ridge
regression towards :math:`(0, 1)`, with an offset of each ligand's own beside :math:`a`
(:class:`~.prior.Recalibration`), so a lab whose chemistry differs from the twin pulls the prior to
itself as the campaign goes: :math:`a` where its colours are shifted, :math:`b` where they
respond more or less steeply. The acquisition draws the recalibration from its posterior, so
a scale guessed from two measurements is not taken as known. Where it differs in kind,
the twin is read differently (:class:`~.prior.Reading`): the inputs whose law runs the other way are
reversed, and a ligand that acts like another of the twin's is read as that one, each chosen by
the evidence of the recalibrated twin (:meth:`BoTorchPlanner._choose_reading`). How far to
trust the twin at all is its GP's evidence against a GP without it
(:func:`~.prior.trust_in_twin`); the acquisition averages the two. The residual GP is
BoTorch's ``SingleTaskGP`` (the ligand one-hot encoded, :meth:`BoTorchPlanner._one_hot`),
fitted in float64 by BoTorch's L-BFGS from the last fit's hyperparameters
(:func:`~.surrogate.warm_start_state`, stopping at :data:`~.surrogate.FIT_FTOL`); with
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

Before three measurements there is no GP on the target (:data:`~.surrogate.MIN_FOR_GP`): the
recalibrated twin is right where it was measured, and its uncertainty elsewhere grows with the
distance from there (:meth:`BoTorchPlanner._twin_std`), so a near miss is mended by a small
step.

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
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import partial
from typing import Any, NamedTuple

import numpy as np
import torch
from botorch.models.transforms.input import NumericToCategoricalEncoding
from botorch.optim import optimize_acqf_discrete
from linear_operator.utils.warnings import NumericalWarning
from scipy.special import logsumexp
from scipy.stats import qmc

from planners.base import Observation, Planner, PlannerError, Proposal, SearchSpace, Target
from planners.botorch.acquisition import (
    MC_SAMPLES,
    SCREEN,
    SECONDARY,
    Branch,
    Objectives,
    Secondary,
)
from planners.botorch.candidates import LOCAL, POOL, CandidateSet, local_candidates
from planners.botorch.prior import (
    PHYSICS_KEYS,
    READING_LOG_ODDS,
    SCALE_SD,
    SCATTER_FACTORS,
    STRETCH_SD,
    Reading,
    Recalibration,
    TwinPredictions,
    linear_evidence,
    trust_in_twin,
)
from planners.botorch.surrogate import (
    MIN_FOR_EVIDENCE,
    MIN_FOR_GP,
    NOISE_FLOOR,
    calibration_factor,
    evidence,
    fit_gp,
    learned,
    marginals,
    mixture_marginals,
    twin_std,
)

__all__ = ["BoTorchPlanner", "cpu_threads"]


class _Fitted(NamedTuple):
    """The models of one ask: the measured points of the target (``Xm``, ``ym``) and the
    twin's prediction there, the target's recalibrated twin and GP (None before
    :data:`~.surrogate.MIN_FOR_GP`), the secondary goals' (goal, recalibration, GP), and the
    GP that ignores the twin with the twin's trust against it."""

    Xm: np.ndarray
    ym: np.ndarray
    phys_train: dict[str, np.ndarray]
    prior: Recalibration
    target_model: Any
    secondaries: list[tuple[Secondary, Recalibration, Any]]
    free_model: Any
    trust: float

    @property
    def models(self) -> list[Any]:
        """The target's GP and the secondary goals' (none before the target's GP)."""
        if self.target_model is None:
            return []
        return [self.target_model, *(model for *_, model in self.secondaries)]


@contextmanager
def cpu_threads(n: int) -> Iterator[None]:
    """At most ``n`` threads in torch's intra-op pool and in the BLAS/OpenMP pools (numpy,
    scikit-learn) inside the block; the process's settings are put back after it."""
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        with threadpool_limits(limits=n):
            yield
    finally:
        torch.set_num_threads(before)


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
        threads: int = 1,
    ) -> None:
        super().__init__(space, target, seed)
        self.route = route
        self.threads = int(threads)
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
        self._twin = TwinPredictions(route, space, target.observable, twin)
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
    def _physics(self, X: np.ndarray, reading: Reading | None = None) -> dict[str, np.ndarray]:
        """The twin's prediction at ``X``, read as ``reading`` says (default: the reading
        chosen by :meth:`_choose_reading`)."""
        if not self.physics_prior or len(X) == 0:  # no prediction, and nowhere ruled out
            table = np.zeros((len(X), len(PHYSICS_KEYS)))
            table[:, PHYSICS_KEYS.index("valid")] = 1.0
        else:
            reading = self._reading if reading is None else reading
            table = self._twin(reading.apply(X, self._ligand))
        out = dict(zip(PHYSICS_KEYS, table.T, strict=True))
        out["valid"] = out["valid"] > 0.5
        out["platelets"] = out["platelets"] > 0.5
        return out

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
                ).random(POOL)
                self._pool_X = self._unit_to_X(u[:, : self.space.dim])
        return self._pool_X

    def _choose_reading(self, X: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
        r"""How the lab's chemistry differs in kind from the twin's, chosen by evidence: which
        continuous inputs run the other way (:math:`x_j \to 1 - x_j` in the unit range; all
        :math:`2^d` reversals are judged) and which of the twin's ligands each ligand of the
        lab acts like (coordinate ascent from the twin's own ligands). The judge is the
        evidence under the recalibrated twin (:func:`linear_evidence`), averaged over the lab's
        scatter (:data:`SCATTER_FACTORS`), less
        :data:`READING_LOG_ODDS` for a reversal and for each ligand read as another. A twin
        that gets a law's sign wrong (hotter giving smaller dots, say) or a ligand's
        character wrong keeps the rest of its structure; a GP without the twin cannot know it.

        Returns the twin's prediction at ``X`` under the reading chosen."""
        if not self.physics_prior or len(y) < MIN_FOR_EVIDENCE:
            return self._physics(X)
        scale = max(self.target.tolerance, 1.0)
        ligands = list(range(self._n_ligands))
        groups = self._groups(X)
        seen = sorted(set(groups.tolist())) if ligands else []

        def score(reading: Reading) -> float:
            phys = self._physics(X, reading)["target"]
            evidence = [
                linear_evidence(phys, y, groups, scale * f, self.target.value)
                for f in SCATTER_FACTORS
            ]
            mean_evidence = float(logsumexp(evidence, b=1.0 / len(evidence)))
            return mean_evidence - READING_LOG_ODDS * reading.changes()

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
        on what it misses (None before :data:`MIN_FOR_GP` measured values of the target, two
        of a secondary goal)."""
        ok = np.isfinite(values)
        n_groups = max(self._n_ligands, 1)
        if self.physics_prior:
            groups = self._groups(X[ok])
            # the target's twin is stretched about the target value, where the planner works
            centre, scale_sd = (
                (self.target.value, STRETCH_SD) if key == "target" else (0.0, SCALE_SD)
            )
            prior = Recalibration.fit(
                physics[ok], values[ok], groups, n_groups, noise, centre, scale_sd
            )
        else:
            prior = Recalibration(0.0, 0.0, (0.0,) * n_groups)
        model = None
        if ok.sum() >= (MIN_FOR_GP if self.physics_prior and key == "target" else 2):
            residual = values[ok] - prior.mean(physics[ok], self._groups(X[ok]))
            model = self._fit(X[ok], residual, key)
        return prior, model

    def _fit(self, X: np.ndarray, y: np.ndarray, key: str = "target") -> Any:
        """Fit a GP of quantity ``key`` (:func:`~.surrogate.fit_gp`), from the hyperparameters
        of its last fit, and keep the new ones for the next fit and for provenance."""
        observable = (
            self.target.observable
            if key.startswith("target")
            else next(g.observable for g in SECONDARY if g.key == key)
        )
        floor = NOISE_FLOOR.get(observable, 0.0)
        model = fit_gp(X, y, floor, self._one_hot(), self._hyperparameters.get(key))
        self._hyperparameters[key] = {
            k: v.detach().clone() for k, v in learned(model.state_dict()).items()
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
            with warnings.catch_warnings(), cpu_threads(self.threads):
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
        """Proposals from the models: fit them, build the candidates, and choose by the
        acquisition (or, before the target's GP, by the recalibrated twin's window)."""
        torch.manual_seed(0 if self.seed is None else self.seed + len(self.observations))
        Xm, ym = X[feasible], y[feasible]
        phys_train = self._choose_reading(Xm, ym)
        pool = self._pool_points()
        phys = self._physics(pool)
        fit = self._fit_models(Xm, ym, sec, feasible, phys_train)
        pending = np.array(
            [self.space.encode(c) for c in self.pending]
            + [self.space.encode(p.conditions) for p in already]
        ).reshape(-1, self.space.dim)
        cands = self._candidate_set(fit, pool, phys, X, feasible, pending)
        choose = self._choose_by_acquisition if fit.models else self._choose_by_twin
        chosen, values, mean, std = choose(q, fit, cands, pending)
        return self._proposals(chosen, values, mean, std, fit, cands)

    def _fit_models(
        self,
        Xm: np.ndarray,
        ym: np.ndarray,
        sec: dict[str, np.ndarray],
        feasible: np.ndarray,
        phys_train: dict[str, np.ndarray],
    ) -> _Fitted:
        """The target's recalibrated twin and GP, the secondary goals' (once the target has a
        GP: before, the twin's window alone decides), and the GP that ignores the twin with
        the twin's trust against it (once the data can judge it)."""
        tol = self.target.tolerance
        prior, target_model = self._surrogate("target", Xm, ym, phys_train["target"], max(tol, 1.0))
        secondaries = []
        for g in self._secondary if target_model is not None else ():
            prior_g, model = self._surrogate(
                g.key, Xm, sec[g.key][feasible], phys_train[g.key], g.noise
            )
            if model is not None:
                secondaries.append((g, prior_g, model))
        free_model, trust = None, 1.0  # (without the prior, the one model is prior-free)
        if self.physics_prior and len(ym) >= MIN_FOR_EVIDENCE:
            free_model = self._fit(Xm, ym, "target_free")
            trust = trust_in_twin(evidence(target_model), evidence(free_model), prior.b)
        return _Fitted(Xm, ym, phys_train, prior, target_model, secondaries, free_model, trust)

    def _candidate_set(
        self,
        fit: _Fitted,
        pool: np.ndarray,
        phys: dict[str, np.ndarray],
        X: np.ndarray,
        feasible: np.ndarray,
        pending: np.ndarray,
    ) -> CandidateSet:
        """The pool, refined around its best points by the models' mean (see
        :func:`~.candidates.local_candidates`), with the pending points (``X_pending`` is
        scored through the candidates) and the measured ones (a Pareto front's baseline too);
        the twin's warning (no emission, the other shape) weighs their feasibility from the
        start."""
        mean_pool = fit.prior.mean(phys["target"], self._groups(pool))
        if fit.models:
            mean_pool = mean_pool + marginals(fit.models[0], pool)[0]
        if fit.free_model is not None:
            trust = fit.trust
            mean_pool = trust * mean_pool + (1 - trust) * marginals(fit.free_model, pool)[0]
        best = np.argsort(np.abs(mean_pool - self.target.value) + 1e3 * ~phys["valid"])[:16]
        rng = np.random.default_rng(None if self.seed is None else self.seed + len(X))
        n_local = 0 if self._candidates is not None else LOCAL // 16
        local = local_candidates(
            pool[best], n_local, self._cont, rng, fit.Xm, fit.ym, self.target.value
        )
        local = np.vstack([local, pending]) if len(pending) else local
        local_phys = self._physics(local)
        points = np.vstack([pool, local, fit.Xm])
        cand_phys = {k: np.concatenate([phys[k], local_phys[k], fit.phys_train[k]]) for k in phys}
        learned_p = self._feasibility(X, feasible, points)
        p_feasible = (
            learned_p
            * np.where(cand_phys["valid"], 1.0, 0.02)
            * np.clip(self._shape_chance(cand_phys["p_platelets"]), 0.05, 1.0)
        )
        taken = np.vstack([pending, X])  # X: measured
        groups = self._groups(points)
        return CandidateSet.build(points, cand_phys, groups, learned_p, p_feasible, taken)

    def _choose_by_acquisition(
        self, q: int, fit: _Fitted, cands: CandidateSet, pending: np.ndarray
    ) -> tuple[np.ndarray, torch.Tensor, np.ndarray, np.ndarray]:
        """The best batch by the acquisition over the candidates (see :mod:`.acquisition`):
        the twin's branch and, once the data can judge it, the branch that ignores the twin,
        the twin's mean drawn from its recalibration's posterior. Returns the chosen points,
        their acquisition value, and the models' predictive mean and std there."""
        goals = [g for g, *_ in fit.secondaries]
        priors = [
            torch.tensor(p.mean(cands.phys[g.key], cands.groups)) for g, p, _ in fit.secondaries
        ]
        # a Pareto target needs a model of each of its objectives (from two measurements on)
        pareto = bool(self.target.pareto) and len(goals) == len(self.target.pareto)
        objectives = Objectives(
            cands.index_of,
            self.target.value,
            self.target.tolerance,
            goals,
            priors,
            self.secondary_weight,
            scalarise=not self.target.pareto,
        )
        choices = torch.tensor(cands.points[cands.free])
        X_pending = torch.tensor(pending) if len(pending) else None
        branches = self._branches(fit, cands)
        secondary_models = [m for *_, m in fit.secondaries]

        def acquisition(pending_t: torch.Tensor | None, hypervolume: bool) -> Any:
            return objectives.acquisition(
                branches, secondary_models, pending_t, hypervolume, fit.Xm, self.seed
            )

        if (X_pending is not None or pareto) and len(choices) > SCREEN:
            # joint posteriors with the pending points (or the measured ones, for the
            # hypervolume) cost (1 + n)^2 a candidate: only the best candidates for the
            # window on their own are worth that
            with torch.no_grad():
                alone = acquisition(None, hypervolume=False)(choices.unsqueeze(-2))
            choices = choices[alone.topk(SCREEN).indices]
        chosen, values = optimize_acqf_discrete(
            acquisition(X_pending, hypervolume=pareto), q=q, choices=choices, X_avoid=X_pending
        )
        chosen_np = chosen.numpy()
        rows = [cands.row(x) for x in chosen_np]
        parts = []
        for br in branches:
            residual, sd = marginals(br.gp, chosen_np, observation_noise=True)
            sd = np.sqrt(sd**2 + br.prior_var[rows])
            parts.append((br.weight, br.prior_mean[rows], residual, sd))
        mean, std = mixture_marginals(parts)
        return chosen_np, values, mean, std

    def _branches(self, fit: _Fitted, cands: CandidateSet) -> list[Branch]:
        """The models of the target the acquisition averages over, by the twin's trust."""
        target = cands.phys["target"]
        twin_mean = fit.prior.mean(target, cands.groups)
        draws = fit.prior.draws(target, cands.groups, MC_SAMPLES, self.seed or 0)
        twin_var = fit.prior.variance(target, cands.groups)
        nothing = np.zeros(len(cands.points))
        branches = [
            Branch(fit.trust, fit.target_model, cands.p_feasible, twin_mean, twin_var,
                   twin_mean + draws),
            Branch(1.0 - fit.trust, fit.free_model, cands.learned, nothing, nothing,
                   nothing[None]),
        ]  # fmt: skip
        return [br for br in branches if br.gp is not None and br.weight > 0.01]

    def _choose_by_twin(
        self, q: int, fit: _Fitted, cands: CandidateSet, pending: np.ndarray
    ) -> tuple[np.ndarray, torch.Tensor, np.ndarray, np.ndarray]:
        """Before the target's GP: the recalibrated twin's expected window score (its std
        from :meth:`_twin_std`), spread greedily over the best ``q``."""
        tol, target = self.target.tolerance, self.target.value
        mean_c = fit.prior.mean(cands.phys["target"], cands.groups)
        std_c = self._twin_std(cands.points, fit.Xm, fit.ym - fit.phys_train["target"])
        spread = tol**2 + std_c**2
        score = tol / np.sqrt(spread) * np.exp(-0.5 * (mean_c - target) ** 2 / spread)
        score = score * cands.p_feasible
        order = np.argsort(-score)
        picks = [i for i in order if cands.free[i]][:q]
        return cands.points[picks], torch.tensor(score[picks]), mean_c[picks], std_c[picks]

    def _proposals(
        self,
        chosen: np.ndarray,
        values: torch.Tensor,
        mean: np.ndarray,
        std: np.ndarray,
        fit: _Fitted,
        cands: CandidateSet,
    ) -> list[Proposal]:
        """The chosen points as proposals, each with its prediction (the std widened as far
        as past predictions proved to need) and what produced it."""
        vals = (
            values.reshape(-1).numpy()
            if values.numel() > 1
            else np.repeat(values.item(), len(chosen))
        )
        widen = calibration_factor(self._z)
        out = []
        for i, x in enumerate(chosen):
            conditions = self.space.decode(x)
            self._predicted[self.space.key(conditions)] = (float(mean[i]), float(std[i]))
            provenance = self._provenance(fit, cands, x, float(mean[i]), float(std[i]), widen)
            out.append(
                self._proposal(
                    conditions,
                    acquisition_value=float(vals[min(i, len(vals) - 1)]),
                    predicted_mean=float(mean[i]),
                    predicted_std=float(widen * std[i]),
                    provenance=provenance,
                )
            )
        return out

    def _provenance(
        self, fit: _Fitted, cands: CandidateSet, x: np.ndarray, mean: float, std: float,
        widen: float,
    ) -> dict[str, Any]:  # fmt: skip
        """What produced a model proposal: enough to explain and replay the decision."""
        pareto = bool(self.target.pareto) and len(fit.secondaries) == len(self.target.pareto)
        return {
            "stage": "model",
            "model_prediction": [mean, std],
            "calibration_factor": widen,
            # before MIN_FOR_GP measurements there is no GP: the twin's window
            "acquisition": "qLogNEHVI" if pareto else "window" if fit.models else "twin",
            "prior_a": fit.prior.a,
            "prior_b": fit.prior.b,
            "prior_ligand_offsets": self._ligand_offsets(fit.prior),
            "prior_trust": fit.trust,
            "twin_reversed": [self.space.order[j] for j in self._reading.flips],
            "twin_ligands": self._reading.ligands_read_as(self.space),
            "hyperparameters": self._hyperparameters_json(),
            "observations": len(fit.ym),
            "p_feasible": float(cands.p_feasible[cands.row(x)]),
            "warm_start": int(sum(o.warm_start for o in self.observations)),
        }

    def _twin_std(self, X: np.ndarray, Xm: np.ndarray, misses: np.ndarray) -> np.ndarray:
        """The recalibrated twin's uncertainty before a GP (:func:`~.surrogate.twin_std`)."""
        noise = NOISE_FLOOR.get(self.target.observable, 0.0)
        return twin_std(X, Xm, misses, self._cont, self._cat, self.target.tolerance, noise)

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
        snapshot: str | None = None,
    ) -> None:
        """Tell what was observed, mark the rest pending, skip the Sobol points already used,
        and start the next fit from the hyperparameters stored with the last proposal, as an
        uninterrupted planner would (it keeps no snapshot)."""
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
        self._resume(batches, observations)

    def predict(self, conditions: Sequence[Mapping[str, Any]]) -> dict[str, np.ndarray]:
        """Predicted target observable and FWHM (mean, std) at ``conditions`` (the target's std
        calibrated like the proposals', see :func:`calibration_factor`)."""
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
                residual, std = marginals(model, X, observation_noise=True)
                mean = mean + residual
                std = np.sqrt(std**2 + prior.variance(phys[key], self._groups(X)))
            elif key == "target" and self.physics_prior:  # before its GP: as proposals have it
                std = self._twin_std(X, Xa[feasible], values[feasible] - train_phys[key])
            if key == "target":  # as wide as its past predictions proved to need
                std = std * calibration_factor(self._z)
            out[f"{key}_mean"], out[f"{key}_std"] = np.where(phys["valid"], mean, np.nan), std
        out["platelets"] = phys["platelets"]
        return out

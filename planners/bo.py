"""Bayesian optimisation towards a target emission wavelength or size (``kind: botorch``).

Model
-----
The measured target observable :math:`y(x)` (PL peak, or size estimate) is modelled as a
physics prior plus a Gaussian process on what the physics misses:

.. math::  y(x) = a + b\\,\\phi(x) + r(x), \\qquad r \\sim \\mathcal{GP}(0, k)

:math:`\\phi(x)` is the noiseless prediction of :mod:`models` for the route (the digital twin);
:math:`(a, b)` are calibrated on the data by ridge regression towards :math:`(0, 1)`, so a lab
whose chemistry differs from the twin pulls the prior to itself as the campaign goes. The
residual GP is BoTorch's ``MixedSingleTaskGP`` (a categorical kernel for the ligand), fitted in
float64 with BoTorch's defaults; with ``physics_prior: false``, :math:`a = b = 0` and the GP
models :math:`y` itself. Secondary goals (``minimize: [pl_fwhm_nm]``,
``maximize: [plqy_est]``) add a GP each, with their own physics prior.

Acquisition
-----------
A Gaussian window around the target, :math:`w(y) = \\exp[-\\tfrac12((y - t)/\\tau)^2]` with
:math:`\\tau` the tolerance (times
:math:`\\exp(-\\lambda\\,\\mathrm{FWHM}/10\\,\\mathrm{nm})`
for a FWHM to minimise, :math:`\\exp(+\\lambda\\,\\mathrm{PLQY}/0.2)` for a PLQY to
maximise), is a ``GenericMCObjective``; ``qSimpleRegret`` on it is
:math:`\\mathbb{E}[\\max_{i \\le q} w(y_i)]`: for one point the expected window score, for a batch
that of the best point, so a batch spreads over the plausible hits. Experiments that failed or
gave nanoplatelets train a feasibility classifier (scikit-learn) whose probability multiplies
the objective; before any is seen, the twin's own prediction of no emission or of platelets
down-weights those regions. Pending points enter as ``X_pending``.

Optimisation
------------
Over a scrambled Sobol pool of the mixed space (4,096 points plus, each time, 512 local
perturbations of the best ones) with ``optimize_acqf_discrete``: categorical parameters are
handled exactly and the physics prior is evaluated once per candidate. With pending points
(experiments under way), the acquisition is first evaluated on each candidate alone and only
the best 512 are scored jointly with the pending points, whose joint posteriors cost
:math:`(1 + n_\\mathrm{pending})^2` times more.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from botorch.acquisition import GenericMCObjective, qSimpleRegret
from botorch.fit import fit_gpytorch_mll
from botorch.models import MixedSingleTaskGP, ModelListGP, SingleTaskGP
from botorch.optim import optimize_acqf_discrete
from botorch.sampling import SobolQMCNormalSampler
from gpytorch.mlls import ExactMarginalLogLikelihood
from scipy.stats import qmc

from models.analysis import is_platelet_like
from planners.base import Observation, Planner, PlannerError, Proposal, SearchSpace, Target

__all__ = ["BoTorchPlanner"]

_POOL = 4096
_LOCAL = 512
_MC_SAMPLES = 128
_SCREEN = 512  # candidates scored jointly with the pending points


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


@dataclass(frozen=True)
class Secondary:
    """A secondary goal: its key, observable, direction (+1 maximise), objective scale and the
    noise scale of its prior recalibration."""

    key: str
    observable: str
    sign: float
    scale: float
    noise: float


SECONDARY = (
    Secondary("fwhm", "pl_fwhm_nm", -1.0, 10.0, 2.0),
    Secondary("plqy", "plqy_est", +1.0, 0.2, 0.05),
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
        Sobol points before the model takes over (default 2 with the physics prior, else 5).
    physics_prior
        Use the digital twin as the GP's prior mean (default True for the built-in routes).
    feasibility
        Learn where experiments fail or give platelets, and avoid it (default True).
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
            initial_points if initial_points is not None else (2 if self.physics_prior else 5)
        )
        if self.initial_points < 0:
            raise PlannerError(f"initial_points must be >= 0, got {initial_points}")
        self.feasibility = feasibility
        self.secondary_weight = float(secondary_weight)
        self.warm_start = warm_start
        self._sobol = qmc.Sobol(d=max(space.dim, 1), scramble=True, seed=seed)
        self._initial_used = 0
        self._cat = [i for i, n in enumerate(space.order) if n in space.categorical]
        self._pool_X: np.ndarray | None = None
        self._pool_phys: dict[str, np.ndarray] = {}
        goals = (*target.minimize, *target.maximize)
        self._secondary = [g for g in SECONDARY if g.observable in goals]
        self._hyperparameters: dict[str, dict[str, torch.Tensor]] = {}
        self._twin = twin
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

    # -- physics prior --------------------------------------------------------------------
    def _physics(self, X: np.ndarray) -> dict[str, np.ndarray]:
        n = len(X)
        if not self.physics_prior or n == 0:
            return {
                "target": np.zeros(n),
                "fwhm": np.zeros(n),
                "plqy": np.zeros(n),
                "valid": np.ones(n, bool),
                "platelets": np.zeros(n, bool),
            }
        from models.simulation import simulate

        batch = simulate(self.route, [self.space.decode(x) for x in X], twin=self._twin)
        target = batch.observables[self.target.observable]
        fwhm = batch.observables["pl_fwhm_nm"]
        valid = np.isfinite(target) & np.isfinite(fwhm)
        platelets = np.array(
            [
                is_platelet_like({"pl_fwhm_nm": f, "pl_peak_nm": p})
                for f, p in zip(fwhm, batch.observables["pl_peak_nm"], strict=True)
            ]
        )
        return {
            "target": np.where(valid, target, 0.0),
            "fwhm": np.where(valid, fwhm, 0.0),
            "plqy": np.nan_to_num(batch.observables["plqy_est"]),
            "valid": valid,
            "platelets": platelets,
        }

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

    def _ensure_pool(self) -> None:
        """The pool and the twin's prediction over it (computed once)."""
        if not self._pool_phys:
            self._pool_phys = self._physics(self._pool_points())

    # -- data -----------------------------------------------------------------------------
    def _data(
        self,
    ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray], np.ndarray, np.ndarray]:
        """(X, target, secondary observables by key, feasible flag, measured flag)."""
        X, y, feasible, measured = [], [], [], []
        sec: dict[str, list[float]] = {g.key: [] for g in SECONDARY}
        for obs in self.observations:
            X.append(self.space.encode(obs.conditions))
            value = obs.observables.get(self.target.observable) if not obs.failed else None
            ok = value is not None and math.isfinite(float(value))
            measured.append(ok)
            y.append(float(value) if ok else np.nan)
            for g in SECONDARY:
                v = obs.observables.get(g.observable) if ok else None
                sec[g.key].append(float(v) if v is not None and math.isfinite(v) else np.nan)
            feasible.append(ok and not is_platelet_like(obs.observables))
        return (
            np.array(X).reshape(-1, self.space.dim),
            np.array(y),
            {k: np.array(v) for k, v in sec.items()},
            np.array(feasible, bool),
            np.array(measured, bool),
        )

    @staticmethod
    def _calibrate(phys: np.ndarray, y: np.ndarray, scale: float) -> tuple[float, float]:
        """Ridge fit of y ~ a + b phys towards (0, 1): a small-data recalibration of the twin."""
        if len(y) == 0:
            return 0.0, 1.0
        A = np.stack([np.ones_like(phys), phys], axis=1) / scale
        prior_precision = np.diag([1.0 / 5.0**2, 1.0 / 0.05**2])
        lhs = A.T @ A + prior_precision
        rhs = A.T @ (y / scale) + prior_precision @ np.array([0.0, 1.0])
        a, b = np.linalg.solve(lhs, rhs)
        return float(a), float(b)

    def _surrogate(
        self, key: str, X: np.ndarray, values: np.ndarray, physics: np.ndarray, noise: float
    ) -> tuple[float, float, Any]:
        """The twin's prediction recalibrated on the data, :math:`a + b\\phi`, and a GP on what
        it misses (None with fewer than two measured values)."""
        ok = np.isfinite(values)
        a, b = self._calibrate(physics[ok], values[ok], noise) if self.physics_prior else (0.0, 0.0)
        model = None
        if ok.sum() >= 2:
            model = self._fit(X[ok], values[ok] - (a + b * physics[ok]), key)
        return a, b, model

    def _fit(self, X: np.ndarray, y: np.ndarray, key: str = "target") -> Any:
        """Fit a GP, starting from the hyperparameters of the last fit of the same quantity
        (L-BFGS then needs a fraction of the iterations)."""
        train_X = torch.tensor(X)
        train_Y = torch.tensor(y).unsqueeze(-1)
        if self._cat:
            model = MixedSingleTaskGP(train_X, train_Y, cat_dims=self._cat)
        else:
            model = SingleTaskGP(train_X, train_Y)
        previous = self._hyperparameters.get(key)
        if previous is not None:
            model.load_state_dict(previous, strict=False)
        try:
            fit_gpytorch_mll(ExactMarginalLogLikelihood(model.likelihood, model))
        except Exception:  # keep the starting hyperparameters if the fit does not converge
            model.eval()
        self._hyperparameters[key] = {
            k: v.detach().clone()
            for k, v in model.state_dict().items()
            if not k.startswith("outcome_transform")
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

    # -- proposals ------------------------------------------------------------------------
    def _propose(self, n: int) -> list[Proposal]:
        proposals: list[Proposal] = []
        X, y, sec, feasible, measured = self._data()
        while (
            len(proposals) < n
            and self._initial_used < self.initial_points
            and (measured.sum() + len(proposals) < self.initial_points)
        ):
            u = self._sobol.random(1)[:, : self.space.dim]
            self._initial_used += 1
            proposals.append(
                self._proposal(
                    self.space.decode(self._unit_to_X(u)[0]), provenance={"stage": "initial_sobol"}
                )
            )
        if len(proposals) < n:
            proposals += self._model_proposals(
                n - len(proposals), X, y, sec, feasible, measured, proposals
            )
        return proposals

    def _model_proposals(
        self,
        q: int,
        X: np.ndarray,
        y: np.ndarray,
        sec: dict[str, np.ndarray],
        feasible: np.ndarray,
        measured: np.ndarray,
        already: list[Proposal],
    ) -> list[Proposal]:
        torch.manual_seed(0 if self.seed is None else self.seed + len(self.observations))
        self._ensure_pool()
        pool, phys = self._pool_X, self._pool_phys
        Xm, ym = X[measured], y[measured]
        phys_train = self._physics(Xm)
        tol = self.target.tolerance
        # secondary goals: (goal, prior calibration, model) for those with enough data
        secondaries = []
        for g in self._secondary:
            ag, bg, model = self._surrogate(
                g.key, Xm, sec[g.key][measured], phys_train[g.key], g.noise
            )
            if model is not None:
                secondaries.append((g, ag, bg, model))
        a, b, target_model = self._surrogate("target", Xm, ym, phys_train["target"], max(tol, 1.0))

        # refine around the best candidates of the prior or the data
        pending = np.array(
            [self.space.encode(c) for c in self.pending]
            + [self.space.encode(p.conditions) for p in already]
        ).reshape(-1, self.space.dim)
        models = []
        if target_model is not None:
            models = [target_model, *(model for *_, model in secondaries)]
        mean_pool = a + b * phys["target"]
        if models:
            mean_pool = mean_pool + _marginals(models[0], pool)[0]
        best = np.argsort(np.abs(mean_pool - self.target.value) + 1e3 * ~phys["valid"])[:16]
        rng = np.random.default_rng(None if self.seed is None else self.seed + len(X))
        n_local = 0 if self._candidates is not None else _LOCAL // 16
        local = np.repeat(pool[best], n_local, axis=0)
        cont = [j for j in range(self.space.dim) if j not in self._cat]
        local[:, cont] = np.clip(
            local[:, cont] + rng.normal(0, 0.03, (len(local), len(cont))), 0, 1
        )
        # pending points (from earlier asks) must be in the candidate set: X_pending is scored
        local = np.vstack([local, pending]) if len(pending) else local
        local_phys = self._physics(local)
        cand = np.vstack([pool, local])
        cand_phys = {k: np.concatenate([phys[k], local_phys[k]]) for k in phys}
        # the twin predicts where nothing emits or nanoplatelets form: avoid it from the start
        p_feasible = (
            self._feasibility(X, feasible, cand)
            * np.where(cand_phys["valid"], 1.0, 0.02)
            * np.where(cand_phys["platelets"], 0.1, 1.0)
        )

        lookup = {tuple(np.round(r, 10)): i for i, r in enumerate(cand)}
        prior_t = torch.tensor(a + b * cand_phys["target"])
        priors = [torch.tensor(ag + bg * cand_phys[g.key]) for g, ag, bg, _ in secondaries]
        weight = torch.tensor(p_feasible)
        target_value, w = self.target.value, self.secondary_weight
        goals = [g for g, *_ in secondaries] if models else []

        def index_of(Xt: torch.Tensor) -> torch.Tensor:
            rows = Xt.detach().reshape(-1, Xt.shape[-1]).numpy()
            idx = [lookup.get(tuple(np.round(r, 10)), -1) for r in rows]
            if min(idx) < 0:
                raise PlannerError("a point outside the candidate pool reached the objective")
            return torch.tensor(idx).reshape(Xt.shape[:-1])

        def window(samples: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
            idx = index_of(X)
            pl = prior_t[idx] + (samples[..., 0] if models else 0.0)
            score = torch.exp(-0.5 * ((pl - target_value) / tol) ** 2) * weight[idx]
            for j, (g, prior) in enumerate(zip(goals, priors, strict=True), start=1):
                value = prior[idx] + samples[..., j]
                score = score * torch.exp(g.sign * w * value / g.scale)
            return score

        choices = torch.tensor(cand)
        X_pending = torch.tensor(pending) if len(pending) else None
        if models:
            model = models[0] if len(models) == 1 else ModelListGP(*models)

            def acquisition(pending: torch.Tensor | None) -> qSimpleRegret:
                return qSimpleRegret(
                    model,
                    objective=GenericMCObjective(window),
                    X_pending=pending,
                    sampler=SobolQMCNormalSampler(torch.Size([_MC_SAMPLES]), seed=self.seed),
                )

            if X_pending is not None and len(choices) > _SCREEN:
                # joint posteriors with the pending points cost (1 + pending)^2 a candidate:
                # only the best candidates on their own are worth that
                with torch.no_grad():
                    alone = acquisition(None)(choices.unsqueeze(-2))
                choices = choices[alone.topk(_SCREEN).indices]
            chosen, values = optimize_acqf_discrete(
                acquisition(X_pending), q=q, choices=choices, X_avoid=X_pending
            )
            chosen_np = chosen.numpy()
            mean, std = _marginals(models[0], chosen_np)
        else:  # prior only: score the pool by the physics, spread a batch greedily
            score = np.exp(-0.5 * ((a + b * cand_phys["target"] - target_value) / tol) ** 2)
            score = score * p_feasible
            order = np.argsort(-score)
            taken = [tuple(np.round(r, 10)) for r in pending]
            picks = [i for i in order if tuple(np.round(cand[i], 10)) not in taken][:q]
            chosen_np = cand[picks]
            values = torch.tensor(score[picks])
            mean = np.zeros(len(picks))
            std = np.full(len(picks), 2.0 * tol)
        out = []
        vals = (
            values.reshape(-1).numpy()
            if values.numel() > 1
            else np.repeat(values.item(), len(chosen_np))
        )
        for i, x in enumerate(chosen_np):
            k = lookup[tuple(np.round(x, 10))]
            out.append(
                self._proposal(
                    self.space.decode(x),
                    acquisition_value=float(vals[min(i, len(vals) - 1)]),
                    predicted_mean=float(a + b * cand_phys["target"][k] + mean[i]),
                    predicted_std=float(std[i]),
                    provenance={
                        "stage": "model",
                        "prior_a": a,
                        "prior_b": b,
                        "hyperparameters": self._hyperparameters_json(),
                        "observations": len(ym),
                        "p_feasible": float(p_feasible[k]),
                        "warm_start": int(sum(o.warm_start for o in self.observations)),
                    },
                )
            )
        return out

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
                    key: {k: torch.tensor(v) for k, v in state.items()}
                    for key, state in prov["hyperparameters"].items()
                }
                break
        asked = [c for batch in batches for c in batch]
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
        """Predicted target observable and FWHM (mean, std) at ``conditions``."""
        X = np.array([self.space.encode(c) for c in conditions])
        Xa, y, sec, _, measured = self._data()
        phys = self._physics(X)
        train_phys = self._physics(Xa[measured])
        out: dict[str, np.ndarray] = {}
        for key, values, scale in (
            ("target", y, max(self.target.tolerance, 1.0)),
            ("fwhm", sec["fwhm"], 2.0),
        ):
            a, b, model = self._surrogate(
                key, Xa[measured], values[measured], train_phys[key], scale
            )
            mean = a + b * phys[key]
            std = np.full(len(X), 3.0)
            if model is not None:
                residual, std = _marginals(model, X, observation_noise=True)
                mean = mean + residual
            out[f"{key}_mean"], out[f"{key}_std"] = np.where(phys["valid"], mean, np.nan), std
        out["platelets"] = phys["platelets"]
        return out

"""Ax and BayBE behind QDLab's Planner interface (``planner: {kind: ax}`` / ``{kind: baybe}``).

So a lab can compare the general-purpose optimisers with QDLab's own planner on its own
chemistry, through the same campaign runner, database and reports.

Each peer is used in its documented way of matching a target value:

- **Ax** (``ax-platform``): the ``Client`` API minimising a user-computed distance metric,
  ``objective="-target_error"`` with ``target_error = |y - target|`` (Ax's recommendation for
  target matching), default generation strategy (Sobol initialisation, then BoTorch). With
  ``minimize: [pl_fwhm_nm]`` it is Ax's constrained optimisation: ``objective="-pl_fwhm_nm"``
  subject to ``target_error <= tolerance``; with ``pareto`` it is Ax's multi-objective
  optimisation, ``objective="-pl_fwhm_nm, plqy_est"`` under the same constraint, with the
  reference point (60 nm, 0) as its objective thresholds.
- **BayBE**: a ``Campaign`` with ``NumericalTarget.match_absolute(name, target)``, its native
  target-matching mode, over a hybrid (continuous + categorical) search space with the default
  recommender (random initialisation, then BoTorch). With ``minimize: [pl_fwhm_nm]`` it is
  BayBE's multi-target way, a ``DesirabilityObjective`` of a bell match (sigma: the tolerance)
  and a descending ramp of the FWHM over 8-40 nm, weighted 2:1. With ``pareto`` it is a
  ``ParetoObjective`` of the bell match, the FWHM (minimised) and the PLQY (maximised): BayBE
  has no outcome constraints, so the window is one more objective.

What each is told, in its own terms: Ax gets every experiment as a trial (one it did not
propose, a person's or a warm start's, is attached), a failed one marked failed and a proposal a
person rejected marked abandoned (Ax then holds both as pending, so it does not propose them
again); BayBE gets each measurement, a failure as a measurement 100 nm off target (it has no
failed state; left out, it would propose the same failing corner again), and the experiments
still running as its pending experiments.

A resumed campaign restores each from the snapshot it wrote of itself (Ax's JSON snapshot of its
``Client``, BayBE's ``Campaign.to_json``), kept with the campaign after every ask and tell; what
the campaign recorded after the last snapshot (a driver killed in between) is attached or told
on top, never asked for again.

Install with ``pip install -e '.[peers]'``; they are never required by the rest of QDLab
(:func:`planners.make_planner` names the extra when they are missing).
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from planners.base import Observation, Planner, Proposal, SearchSpace, Target

FAILED_OFFSET_NM = 100.0
"""How far off target a failed experiment is reported to the peers."""
FAILED_FWHM_NM = 60.0
"""The PL width a failed experiment is reported with, when the FWHM is a goal."""


def import_quietly(kind: str) -> None:
    """Import the package of peer ``kind`` (ImportError if it is not installed) without its
    log lines on the console: Ax prints one on import, at INFO, before a level can be set,
    then a few per trial."""
    before = logging.root.manager.disable
    logging.disable(logging.INFO)
    try:
        __import__(kind)  # the package is named as the kind
    finally:
        logging.disable(before)
    if kind == "ax":
        from ax.utils.common.logger import set_stderr_log_level

        set_stderr_log_level(logging.ERROR)


def _fwhm(obs: Observation) -> float:
    value = obs.observables.get("pl_fwhm_nm")
    return (
        float(value) if not obs.failed and value is not None and value == value else FAILED_FWHM_NM
    )


def _plqy(obs: Observation) -> float:
    value = obs.observables.get("plqy_est")
    return float(value) if not obs.failed and value is not None and value == value else 0.0


def _secondary(target: Target, obs: Observation) -> dict[str, float]:
    """The secondary observables the peers are told for ``target`` (a failure's stand-ins)."""
    data = {}
    if "pl_fwhm_nm" in target.minimize or target.pareto:
        data["pl_fwhm_nm"] = _fwhm(obs)
    if target.pareto:
        data["plqy_est"] = _plqy(obs)
    return data


class AxPlanner(Planner):
    """Ax ``Client`` minimising |y - target|."""

    name = "ax"
    version = "ax-platform"
    keeps_snapshots = True

    def __init__(self, space: SearchSpace, target: Target, seed: int | None = None) -> None:
        super().__init__(space, target, seed)
        import_quietly("ax")
        from ax.api.client import Client
        from ax.api.configs import ChoiceParameterConfig, RangeParameterConfig

        params = []
        for name in space.order:
            if name in space.continuous:
                lo, hi = space.continuous[name]
                params.append(
                    RangeParameterConfig(name=name, bounds=(lo, hi), parameter_type="float")
                )
            else:
                params.append(
                    ChoiceParameterConfig(
                        name=name,
                        values=list(space.categorical[name]),
                        parameter_type="str",
                        is_ordered=False,
                    )
                )
        self._client = Client(random_seed=seed)
        self._client.configure_experiment(parameters=params, name="qdlab_target")
        if target.pareto:  # bounds on objectives are Ax's objective thresholds
            self._client.configure_optimization(
                objective="-pl_fwhm_nm, plqy_est",
                outcome_constraints=[
                    f"target_error <= {target.tolerance}",
                    f"pl_fwhm_nm <= {FAILED_FWHM_NM}",
                    "plqy_est >= 0.0",
                ],
            )
        elif "pl_fwhm_nm" in target.minimize:
            self._client.configure_optimization(
                objective="-pl_fwhm_nm", outcome_constraints=[f"target_error <= {target.tolerance}"]
            )
        else:
            self._client.configure_optimization(objective="-target_error")
        self._running: dict[tuple, int] = {}  # conditions -> the trial Ax waits data for
        import ax

        self.version = f"ax-platform {ax.__version__}"

    def _propose(self, n: int) -> list[Proposal]:
        for key, conditions in self._pending.items():  # stored after the last snapshot
            if key not in self._running:
                self._running[key] = self._trial(conditions)
        trials = self._client.get_next_trials(max_trials=n)
        out = []
        for index, params in trials.items():
            conditions = {k: params[k] for k in self.space.order}
            self._running[self.space.key(conditions)] = index
            out.append(self._proposal(conditions, provenance={"ax_trial": index}))
        return out

    def _trial(self, conditions: Mapping[str, Any]) -> int:
        """The running trial of ``conditions``: Ax's own, or attached (Ax did not propose it)."""
        index = self._running.pop(self.space.key(conditions), None)
        if index is None:
            index = self._client.attach_trial({k: conditions[k] for k in self.space.order})
        return index

    def _learn(self, observations: list[Observation]) -> None:
        for obs in self._not_in_snapshot(observations):
            index = self._trial(obs.conditions)
            error = self.target.error(obs.observables)
            if obs.vetoed:
                self._client.mark_trial_abandoned(index)
            elif obs.failed or error == float("inf"):
                self._client.mark_trial_failed(index, failed_reason=obs.reason or "failed")
            else:
                data = {"target_error": error, **_secondary(self.target, obs)}
                self._client.complete_trial(index, raw_data=data)

    def cancel(self, conditions: Mapping[str, Any]) -> None:
        """A proposal that will never run is abandoned in Ax too."""
        index = self._running.pop(self.space.key(conditions), None)
        if index is not None:
            self._client.mark_trial_abandoned(index)
        super().cancel(conditions)

    def snapshot(self) -> str:
        """Ax's JSON snapshot of the ``Client`` (experiment, trials, generation strategy)."""
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp, "ax.json")
            self._client.save_to_json_file(str(path))
            return path.read_text()

    def _load(self, snapshot: str) -> None:
        """The ``Client`` of an Ax JSON snapshot, and which of its trials are running."""
        from ax.api.client import Client
        from ax.core.trial_status import TrialStatus

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp, "ax.json")
            path.write_text(snapshot)
            self._client = Client.load_from_json_file(str(path))
        for index, trial in self._client._experiment.trials.items():
            key = self.space.key(trial.arm.parameters)
            if trial.status == TrialStatus.RUNNING:
                self._running[key] = index
            elif trial.status.is_terminal:
                self._in_snapshot[key] += 1


class BayBEPlanner(Planner):
    """BayBE ``Campaign`` with a ``match_absolute`` target."""

    name = "baybe"
    version = "baybe"
    keeps_snapshots = True

    def __init__(self, space: SearchSpace, target: Target, seed: int | None = None) -> None:
        super().__init__(space, target, seed)
        import baybe
        from baybe import Campaign
        from baybe.parameters import CategoricalParameter, NumericalContinuousParameter
        from baybe.searchspace import SearchSpace as BSpace
        from baybe.targets import NumericalTarget
        from baybe.utils.random import set_random_seed

        if seed is not None:
            set_random_seed(seed)
        params = []
        for name in space.order:
            if name in space.continuous:
                params.append(NumericalContinuousParameter(name, space.continuous[name]))
            else:
                params.append(CategoricalParameter(name, list(space.categorical[name])))
        match = NumericalTarget.match_absolute(target.observable, target.value)
        objective = match.to_objective()
        if target.pareto:
            from baybe.objectives import ParetoObjective

            objective = ParetoObjective(
                [
                    NumericalTarget.match_bell(target.observable, target.value, target.tolerance),
                    NumericalTarget("pl_fwhm_nm", minimize=True),
                    NumericalTarget("plqy_est"),
                ]
            )
        elif "pl_fwhm_nm" in target.minimize:
            from baybe.objectives import DesirabilityObjective

            objective = DesirabilityObjective(
                [
                    NumericalTarget.match_bell(target.observable, target.value, target.tolerance),
                    NumericalTarget.normalized_ramp("pl_fwhm_nm", (8.0, 40.0), descending=True),
                ],
                weights=[2.0, 1.0],
            )
        self._campaign = Campaign(BSpace.from_product(params), objective)
        self.version = f"baybe {baybe.__version__}"

    def _propose(self, n: int) -> list[Proposal]:
        import pandas as pd

        order = list(self.space.order)
        pending = pd.DataFrame(self.pending, columns=order) if self.pending else None
        frame = self._campaign.recommend(batch_size=n, pending_experiments=pending)
        return [
            self._proposal(
                {
                    k: (v if isinstance(v, str) else float(v))
                    for k, v in row.items()
                    if k in self.space.order
                }
            )
            for _, row in frame.iterrows()
        ]

    def _learn(self, observations: Sequence[Observation]) -> None:
        import pandas as pd

        rows = []
        for obs in self._not_in_snapshot(observations):
            value = obs.observables.get(self.target.observable)
            if obs.failed or value is None:
                value = self.target.value + FAILED_OFFSET_NM
            row = {**obs.conditions, self.target.observable: float(value)}
            rows.append({**row, **_secondary(self.target, obs)})
        if rows:
            self._campaign.add_measurements(pd.DataFrame(rows))

    def snapshot(self) -> str:
        """BayBE's own JSON of the ``Campaign`` (space, objective, measurements)."""
        return self._campaign.to_json()

    def _load(self, snapshot: str) -> None:
        """The ``Campaign`` of a BayBE JSON snapshot, and what it has measured."""
        from baybe import Campaign

        self._campaign = Campaign.from_json(snapshot)
        for _, row in self._campaign.measurements.iterrows():
            self._in_snapshot[self.space.key(row)] += 1


PEERS = {"ax": AxPlanner, "baybe": BayBEPlanner}

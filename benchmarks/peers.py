"""Thin adapters that put general-purpose optimisers behind QDLab's Planner interface.

Each peer is used in its documented way of matching a target value:

- **Ax** (``ax-platform``): the ``Client`` API minimising a user-computed distance metric,
  ``objective="-target_error"`` with ``target_error = |y - target|`` (Ax's recommendation for
  target matching), default generation strategy (Sobol initialisation, then BoTorch).
- **BayBE**: a ``Campaign`` with ``NumericalTarget.match_absolute(name, target)``, its native
  target-matching mode, over a hybrid (continuous + categorical) search space with the default
  recommender (random initialisation, then BoTorch).

A failed experiment (no measurable PL, a device fault) is reported to both as a measurement
100 nm off target: left out, or marked failed in Ax, it teaches them nothing and they propose the
same failing corner again and again (seen here), which no lab user would accept.

Install with ``pip install -e '.[bench]'``; they are never dependencies of the product.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from planners import Observation, Planner, Proposal, SearchSpace, Target

FAILED_OFFSET_NM = 100.0
"""How far off target a failed experiment is reported to the peers."""


class AxPlanner(Planner):
    """Ax ``Client`` minimising |y - target|."""

    name = "ax"
    version = "ax-platform"

    def __init__(self, space: SearchSpace, target: Target, seed: int | None = None) -> None:
        super().__init__(space, target, seed)
        for name in ("ax", "ax.api", "ax.generation_strategy", "ax.service"):
            logging.getLogger(name).setLevel(logging.ERROR)
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
        self._client.configure_optimization(objective="-target_error")
        self._trials: dict[tuple, int] = {}
        import ax

        self.version = f"ax-platform {ax.__version__}"

    def _propose(self, n: int) -> list[Proposal]:
        trials = self._client.get_next_trials(max_trials=n)
        out = []
        for index, params in trials.items():
            conditions = {k: params[k] for k in self.space.order}
            self._trials[self.space.key(conditions)] = index
            out.append(self._proposal(conditions, provenance={"ax_trial": index}))
        return out

    def _learn(self, observations: list[Observation]) -> None:
        for obs in observations:
            index = self._trials.get(self.space.key(obs.conditions))
            if index is None:
                continue
            error = self.target.error(obs.observables)
            if obs.failed or error == float("inf"):
                error = FAILED_OFFSET_NM
            self._client.complete_trial(index, raw_data={"target_error": error})


class BayBEPlanner(Planner):
    """BayBE ``Campaign`` with a ``match_absolute`` target."""

    name = "baybe"
    version = "baybe"

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
        objective = NumericalTarget.match_absolute(target.observable, target.value).to_objective()
        self._campaign = Campaign(BSpace.from_product(params), objective)
        self.version = f"baybe {baybe.__version__}"

    def _propose(self, n: int) -> list[Proposal]:
        frame = self._campaign.recommend(batch_size=n)
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
        for obs in observations:
            value = obs.observables.get(self.target.observable)
            if obs.failed or value is None:
                value = self.target.value + FAILED_OFFSET_NM
            rows.append({**obs.conditions, self.target.observable: float(value)})
        if rows:
            self._campaign.add_measurements(pd.DataFrame(rows))


PEERS = {"ax": AxPlanner, "baybe": BayBEPlanner}

"""The BoTorch planner weighs the twin by its evidence, and repeats conditions only knowingly."""

import sys

import numpy as np
import pytest

from models import simulate
from planners import Observation, Target, make_planner
from tests.conftest import ROOT
from tests.test_planners import SPACE

sys.path.insert(0, str(ROOT / "benchmarks"))
from chemistry_family import inverted_temperature


def told(outcome_model, n, seed=0):
    """A BoTorch planner told ``n`` measurements at Sobol points of a chemistry."""
    planner = make_planner(
        "botorch", SPACE, Target("pl_peak_nm", 490.0, 1.0), seed, route="hot_injection"
    )
    rng = np.random.default_rng(seed)
    conditions = SPACE.from_unit(rng.random((n, SPACE.dim)))
    batch = simulate("hot_injection", conditions, rng, outcome_model=outcome_model)
    planner.tell(
        [
            Observation(c, {k: float(v[i]) for k, v in batch.observables.items()})
            for i, c in enumerate(conditions)
        ]
    )
    return planner


@pytest.mark.parametrize(
    ("outcome_model", "trusted"), [(None, True), (inverted_temperature, False)]
)
def test_the_twin_is_trusted_where_the_data_agree_and_not_where_they_contradict_it(
    outcome_model, trusted
):
    planner = told(outcome_model, 10)
    (proposal,) = planner.ask(1)
    trust = proposal.provenance["prior_trust"]
    assert (trust > 0.9) if trusted else (trust < 0.1), trust


def test_predictions_carry_the_measurement_noise():
    """A proposal's predicted std is that of a new measurement, never below the scatter of
    repeated syntheses (about 0.5 nm on the twin near 490 nm)."""
    planner = told(None, 12)
    stds = [p.predicted_std for p in planner.ask(3)]
    assert all(s > 0.2 for s in stds), stds


def test_measured_conditions_are_repeated_only_as_the_one_replicate_of_the_first_hit():
    planner = make_planner(
        "botorch", SPACE, Target("pl_peak_nm", 490.0, 1.0), 3, route="hot_injection"
    )
    rng = np.random.default_rng(3)
    asked, hit_at = [], None
    for _ in range(10):
        (p,) = planner.ask(1)
        asked.append(p)
        obs = simulate("hot_injection", [p.conditions], rng).observables
        observation = Observation(p.conditions, {k: float(v[0]) for k, v in obs.items()})
        planner.tell([observation])
        if hit_at is None and planner.target.hit(observation.observables, p.conditions):
            hit_at = len(asked) - 1
    assert hit_at is not None and hit_at < 8, "the twin's own chemistry: a hit within 8"
    keys = [SPACE.key(p.conditions) for p in asked]
    replicates = [i for i, p in enumerate(asked) if p.provenance.get("stage") == "replicate"]
    assert replicates == [hit_at + 1]
    assert keys[hit_at + 1] == keys[hit_at]
    assert len(set(keys)) == len(keys) - 1

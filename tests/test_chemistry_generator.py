"""The chemistry generator of benchmarks/: seeded, varied, valid outcome models by path."""

import sys

import numpy as np
import pytest

from models.simulation import load_outcome_model, simulate
from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
from chemistry_family import reachable_targets
from chemistry_generator import TUNING, VALIDATION, draw

SPACE = {"br_pb_ratio": [2, 30], "temperature_c": [90, 200],
         "ligand": ["oa_olam", "oa_olam_acid_rich", "olpa", "alkylammonium_br"],
         "time_s": [1, 120]}  # fmt: skip
HOT = {"br_pb_ratio": 10.0, "temperature_c": 150.0, "ligand": "olpa", "time_s": 30.0}


def test_a_seed_is_one_chemistry_and_tuning_and_validation_never_share_one():
    assert not set(TUNING) & set(VALIDATION) and len(TUNING) == len(VALIDATION) == 100
    again = draw(1003)(HOT, np.random.default_rng(5))
    assert draw(1003)(HOT, np.random.default_rng(5)) == again
    cold = {**HOT, "temperature_c": 100.0, "time_s": 5.0}
    outcomes = {
        tuple(round(float(v), 6) for c in (HOT, cold) for v in draw(seed)(c, None).values())
        for seed in range(20)
    }
    assert len(outcomes) == 20  # twenty seeds, twenty chemistries


def test_the_members_differ_from_the_twin_in_every_way_the_issue_names():
    said = " | ".join(draw(seed).description for seed in TUNING)
    for kind in ("reversed", "folded", "ligands swapped", "acts like", "ripening",
                 "platelet boundary", "scatter", "nothing emits", "growth x"):  # fmt: skip
        assert kind in said, kind
    speeds = [float(d.split("growth x")[1].split(";")[0]) for d in said.split(" | ")]
    assert min(speeds) < 0.1 and max(speeds) > 3.0  # slow and fast kinetics


@pytest.mark.parametrize("seed", [0, 7, 1000, 1042])
def test_a_member_loads_by_path_and_reaches_cube_colours_in_the_usual_space(seed):
    path = f"chemistry_generator:member_{seed}"
    outcome = load_outcome_model(path)
    assert outcome.__name__ == f"member_{seed}"
    rows = [{**HOT, "temperature_c": t, "br_pb_ratio": r} for t in (95, 150, 195) for r in (3, 25)]
    batch = simulate("hot_injection", rows, np.random.default_rng(0), outcome_model=path)
    assert batch.pl.shape[0] == len(rows)  # every population passed the outcome-model checks
    low, high = reachable_targets(outcome, SPACE, n=256)
    assert 420.0 < low < high < 520.0

"""A family of hot-injection chemistries that differ from QDLab's twin in kind.

Each member follows the outcome-model contract (``outcome(conditions, rng) -> population``, see
:mod:`models.synthesis`) and stands for a lab whose chemistry the twin gets wrong in a way an
affine recalibration cannot mend: other temperature or bromide laws, a solubility window,
slower or faster kinetics, strong per-ligand effects, noisier batches, a shifted platelet
boundary, a size that peaks inside the temperature range. Most are the twin's physics seen
through a distortion of its conditions, so their sizes, spectra and noise stay realistic while
the map from conditions to colour is not the one the planner's prior expects.

``python benchmarks/planner_efficiency.py --family`` runs the planners on every member, towards
:data:`TARGETS` (two cube wavelengths each member reaches, from :func:`reachable_targets`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from models.synthesis import hot_injection_outcome

Outcome = Callable[[Mapping[str, Any], np.random.Generator | None], Mapping[str, Any]]


def _twin(conditions: Mapping[str, Any], rng: np.random.Generator | None, **changed: Any) -> dict:
    return dict(hot_injection_outcome({**conditions, **changed}, rng))


def inverted_temperature(conditions: Mapping[str, Any], rng: np.random.Generator | None) -> dict:
    """Hotter gives smaller dots (the twin at 290 °C - T), platelets when hot."""
    return _twin(conditions, rng, temperature_c=290.0 - conditions["temperature_c"])


def inverted_bromide(conditions: Mapping[str, Any], rng: np.random.Generator | None) -> dict:
    """More bromide gives larger dots (the twin at Br/Pb 32 - r)."""
    return _twin(conditions, rng, br_pb_ratio=32.0 - conditions["br_pb_ratio"])


def solubility_window(conditions: Mapping[str, Any], rng: np.random.Generator | None) -> dict:
    """Outside Br/Pb 6-22 or above 185 °C the precursors precipitate: nothing emits."""
    out = _twin(conditions, rng)
    if not 6.0 <= conditions["br_pb_ratio"] <= 22.0 or conditions["temperature_c"] > 185.0:
        out.update(plqy=0.0, concentration=0.0)
    return out


def slow_kinetics(conditions: Mapping[str, Any], rng: np.random.Generator | None) -> dict:
    """Growth 40 times slower than the twin's: short reactions stay small."""
    return _twin(conditions, rng, time_s=max(conditions["time_s"] / 40.0, 0.05))


def ripening(conditions: Mapping[str, Any], rng: np.random.Generator | None) -> dict:
    """Ostwald ripening goes on after the twin's size settles: +25 % per decade of time."""
    out = _twin(conditions, rng)
    out["edge_length_nm"] *= 1.0 + 0.25 * math.log10(1.0 + conditions["time_s"] / 5.0)
    return out


_SWAPPED = {
    "oa_olam": "alkylammonium_br",
    "oa_olam_acid_rich": "olpa",
    "olpa": "oa_olam",
    "alkylammonium_br": "oa_olam_acid_rich",
}
_LIGAND_OFFSET_NM = {"oa_olam": 1.5, "oa_olam_acid_rich": -0.8, "olpa": 2.0, "alkylammonium_br": -1}


def ligand_effects(conditions: Mapping[str, Any], rng: np.random.Generator | None) -> dict:
    """Each ligand acts like another one of the twin's, with a size offset of its own."""
    ligand = conditions["ligand"]
    out = _twin(conditions, rng, ligand=_SWAPPED[ligand])
    out["edge_length_nm"] = max(out["edge_length_nm"] + _LIGAND_OFFSET_NM[ligand], 2.6)
    return out


def noisy_batches(conditions: Mapping[str, Any], rng: np.random.Generator | None) -> dict:
    """The twin's chemistry with three times its batch-to-batch size scatter."""
    out = _twin(conditions, rng)
    if rng is not None:
        out["edge_length_nm"] *= math.exp(rng.normal(0.0, 0.05))
        out["size_dispersion"] = min(out["size_dispersion"] * 1.4, 0.5)
    return out


def platelets_when_warm(conditions: Mapping[str, Any], rng: np.random.Generator | None) -> dict:
    """The platelet boundary 45 °C higher than the twin's (platelets up to ~160 °C)."""
    out = _twin(conditions, rng)
    cold = _twin(conditions, rng, temperature_c=max(conditions["temperature_c"] - 45.0, 60.0))
    out["platelet_fraction"] = cold["platelet_fraction"]
    out["platelet_layers"] = cold.get("platelet_layers", 3.0)
    return out


def temperature_peak(conditions: Mapping[str, Any], rng: np.random.Generator | None) -> dict:
    """The size peaks at 150 °C and falls on both sides (the twin at 200 - 2.2 |T - 150|)."""
    t = 200.0 - 2.2 * abs(conditions["temperature_c"] - 150.0)
    return _twin(conditions, rng, temperature_c=max(t, 60.0))


def twin(conditions: Mapping[str, Any], rng: np.random.Generator | None) -> dict:
    """The twin itself, through the same door (the reference: the prior is right)."""
    return _twin(conditions, rng)


FAMILY: dict[str, Outcome] = {
    "inverted_temperature": inverted_temperature,
    "inverted_bromide": inverted_bromide,
    "solubility_window": solubility_window,
    "slow_kinetics": slow_kinetics,
    "ripening": ripening,
    "ligand_effects": ligand_effects,
    "noisy_batches": noisy_batches,
    "platelets_when_warm": platelets_when_warm,
    "temperature_peak": temperature_peak,
}
"""The members that differ from the twin; :func:`twin` is the reference beside them."""


def reachable_targets(
    outcome: Outcome, space: Mapping[str, Any], n: int = 1024, quantiles=(0.3, 0.7)
) -> list[float]:
    """Cube PL wavelengths a member reaches in ``space``: quantiles of its noiseless outcome
    over a Sobol sample, rounded to 0.5 nm."""
    from scipy.stats import qmc

    from models.analysis import platelet_like
    from models.simulation import simulate
    from planners import SearchSpace

    search = SearchSpace.from_config(space)
    rows = search.from_unit(qmc.Sobol(search.dim, seed=11).random(n))
    batch = simulate("hot_injection", rows, outcome_model=outcome)
    obs = batch.observables
    cubes = ~platelet_like(obs["pl_peak_nm"], obs["pl_fwhm_nm"], obs["abs_peak_nm"])
    pl = obs["pl_peak_nm"][cubes & np.isfinite(obs["pl_peak_nm"])]
    return [round(float(np.quantile(pl, q)) * 2) / 2 for q in quantiles]

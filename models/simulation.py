"""The simulated lab in one call: conditions -> population -> spectra -> observables.

:func:`simulate` runs a batch of validated conditions through an outcome model (built-in or the
user's own, see :func:`load_outcome_model`), renders absorption and PL spectra, adds instrument
noise and extracts the observables a planner may see. Devices call the same pieces one sample at
a time; benchmarks and planners' physics priors call them vectorised.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from models.analysis import analyse_spectra
from models.errors import UserError
from models.optics import (
    EXCITATION_NM,
    WAVELENGTHS_NM,
    absorption_spectrum,
    add_noise,
    pl_spectrum,
    spectrometer_grid,
)
from models.parameters import get_route
from models.synthesis import POPULATION_KEYS, flow_outcome, hot_injection_outcome, larp_outcome
from models.twin import TwinParameters
from models.usercode import import_user_object

__all__ = [
    "BUILTIN_OUTCOME_MODELS",
    "OutcomeModel",
    "OutcomeModelError",
    "SimulatedBatch",
    "check_population",
    "load_outcome_model",
    "measure_spectra",
    "render_spectra",
    "simulate",
]

OutcomeModel = Callable[[Mapping[str, Any], np.random.Generator | None], Mapping[str, Any]]
"""``outcome(conditions, rng) -> population`` (see :mod:`models.synthesis`)."""

BUILTIN_OUTCOME_MODELS: dict[str, OutcomeModel] = {
    "hot_injection": hot_injection_outcome,
    "flow": flow_outcome,
    "larp": larp_outcome,
}

_POPULATION_RANGES: dict[str, tuple[float, float]] = {
    "edge_length_nm": (0.5, 1000.0),
    "size_dispersion": (0.0, 1.0),
    "platelet_fraction": (0.0, 1.0),
    "plqy": (0.0, 1.0),
    "concentration": (0.0, 100.0),
    "platelet_layers": (1.0, 6.0),
    "energy_shift_ev": (-0.2, 0.2),
}


class OutcomeModelError(UserError, ValueError):
    """A user outcome model cannot be imported or returned an invalid population."""


def load_outcome_model(path: str) -> OutcomeModel:
    """Import ``"package.module:function"`` and return the callable.

    Raises
    ------
    OutcomeModelError
        With the path and what went wrong (format, import, missing attribute, not callable).
    """
    module_name, sep, attr = path.partition(":")
    if not sep or not module_name or not attr:
        raise OutcomeModelError(
            f"outcome_model {path!r} must have the form 'package.module:function'"
        )
    top = module_name.split(".")[0]
    if top in sys.stdlib_module_names or top in ("builtins", "__main__"):
        raise OutcomeModelError(
            f"outcome_model {path!r}: {top} is Python's own library, not an outcome model; name "
            "a function 'outcome(conditions, rng)' of your package"
        )
    func = import_user_object(path, f"outcome_model {path!r}", OutcomeModelError)
    if not callable(func):
        raise OutcomeModelError(f"outcome_model {path!r}: {module_name} has no function {attr!r}")
    if not inspect.isfunction(func):
        raise OutcomeModelError(
            f"outcome_model {path!r}: {type(func).__name__} is not a Python function "
            "'outcome(conditions, rng)'"
        )
    try:
        inspect.signature(func).bind({}, None)
    except TypeError:
        raise OutcomeModelError(
            f"outcome_model {path!r}: takes {inspect.signature(func)}, not (conditions, rng)"
        ) from None
    return func


def check_population(population: Mapping[str, Any]) -> dict[str, NDArray[np.float64]]:
    """Validate an outcome model's result: every key of ``POPULATION_KEYS``, finite, in range."""
    missing = [k for k in POPULATION_KEYS if k not in population]
    if missing:
        raise OutcomeModelError(
            f"outcome model result lacks {missing}; it must return {list(POPULATION_KEYS)}"
        )
    checked: dict[str, NDArray[np.float64]] = {}
    for key in (*POPULATION_KEYS, "platelet_layers", "energy_shift_ev"):
        if key not in population:
            continue
        value = np.asarray(population[key], dtype=float)
        low, high = _POPULATION_RANGES[key]
        if not np.all(np.isfinite(value)) or np.any(value < low) or np.any(value > high):
            raise OutcomeModelError(
                f"outcome model returned {key} = {value.tolist()}, allowed range [{low}, {high}]"
            )
        checked[key] = value
    return checked


@dataclass(frozen=True)
class SimulatedBatch:
    """Result of :func:`simulate`: per-sample arrays of shape ``(n,)`` and spectra ``(n, w)``."""

    route: str
    conditions: dict[str, NDArray]
    population: dict[str, NDArray[np.float64]]
    wavelengths_nm: NDArray[np.float64]
    absorbance: NDArray[np.float64]
    pl: NDArray[np.float64]
    observables: dict[str, NDArray[np.float64]]

    def __len__(self) -> int:
        return len(self.absorbance)

    def record(self, i: int) -> dict[str, float | str]:
        """Conditions, population and observables of sample ``i`` as plain Python values."""
        out: dict[str, float | str] = {}
        for group in (self.conditions, self.population, self.observables):
            for key, values in group.items():
                value = values[i]
                out[key] = value.item() if isinstance(value, np.generic) else value
        return out


def render_spectra(
    population: Mapping[str, ArrayLike],
    wavelengths_nm: ArrayLike = WAVELENGTHS_NM,
    material: str = "CsPbBr3",
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Noiseless absorbance and PL spectra of a population of ``material``, each ``(n, w)``."""
    absorbance = absorption_spectrum(population, wavelengths_nm, material)
    a_exc = absorption_spectrum(population, [EXCITATION_NM], material)[:, 0]
    return absorbance, pl_spectrum(population, wavelengths_nm, a_exc, material)


def measure_spectra(
    absorbance: ArrayLike, pl: ArrayLike, rng: np.random.Generator
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Add the in-situ cell's noise: absorbance ±0.001 OD (+0.3 %), PL shot and read noise."""
    return (
        add_noise(absorbance, rng, relative=0.003, absolute=0.001),
        add_noise(pl, rng, absolute=3.0, shot_gain=1.0),
    )


def _columns(route_name: str, rows: Sequence[Mapping[str, Any]]) -> dict[str, NDArray]:
    route = get_route(route_name)
    validated = [route.validate(r) for r in rows]
    return {name: np.array([v[name] for v in validated]) for name in route.names}


def simulate(
    route: str,
    conditions: Mapping[str, Any] | Sequence[Mapping[str, Any]],
    rng: np.random.Generator | None = None,
    *,
    outcome_model: OutcomeModel | str | None = None,
    wavelengths_nm: ArrayLike | None = None,
    twin: TwinParameters | None = None,
) -> SimulatedBatch:
    """Simulate synthesis and in-situ measurement of one or many sets of conditions.

    Parameters
    ----------
    route
        ``hot_injection`` (or ``hot-injection``), ``flow`` or ``larp``.
    conditions
        One mapping, or a sequence of them; each is validated against the route's ranges
        (:class:`models.parameters.ParameterError` names the field and its range). A
        hot-injection condition ``material`` (``CsPbBr3`` by default, ``CsPbI3``, ``FAPbBr3``)
        says what is made; the other routes make CsPbBr3.
    rng
        Source of run-to-run variability and instrument noise; ``None`` gives the noiseless
        mean outcome and clean spectra.
    outcome_model
        A callable or ``"package.module:function"`` replacing the route's built-in model. A user
        model is called once per sample with scalar conditions.
    wavelengths_nm
        Spectrometer grid (default: the widest :func:`models.optics.spectrometer_grid` of the
        batch's materials).
    twin
        Calibrated parameters of the built-in models (:mod:`models.twin`).

    Returns
    -------
    SimulatedBatch
    """
    route_key = get_route(route).name
    rows = [conditions] if isinstance(conditions, Mapping) else list(conditions)
    columns = _columns(route_key, rows)
    materials = columns.get("material", np.full(len(rows), "CsPbBr3"))
    if isinstance(outcome_model, str):
        outcome_model = load_outcome_model(outcome_model)
    if outcome_model is None:
        raw = BUILTIN_OUTCOME_MODELS[route_key](columns, rng, twin=twin or TwinParameters())
        population = {k: np.atleast_1d(np.asarray(v, dtype=float)) for k, v in raw.items()}
    else:
        results = [
            check_population(outcome_model({k: v[i].item() for k, v in columns.items()}, rng))
            for i in range(len(rows))
        ]
        population = {k: np.array([r[k] for r in results]) for k in results[0]}
    if wavelengths_nm is None:
        wl = max((spectrometer_grid(m) for m in np.unique(materials)), key=len)
    else:
        wl = np.asarray(wavelengths_nm, dtype=float)
    absorbance = np.empty((len(rows), wl.size))
    pl = np.empty_like(absorbance)
    observables: dict[str, NDArray[np.float64]] = {}
    for material in np.unique(materials):  # each material's optics and sizing curve
        rows_of = materials == material
        absorbance[rows_of], pl[rows_of] = render_spectra(
            {k: v[rows_of] for k, v in population.items()}, wl, str(material)
        )
    if rng is not None:
        absorbance, pl = measure_spectra(absorbance, pl, rng)
    for material in np.unique(materials):
        rows_of = materials == material
        found = analyse_spectra(wl, absorbance[rows_of], pl[rows_of], str(material))
        for key, values in found.items():
            observables.setdefault(key, np.full(len(rows), np.nan))[rows_of] = values
    return SimulatedBatch(
        route=route_key,
        conditions=columns,
        population=population,
        wavelengths_nm=wl,
        absorbance=absorbance,
        pl=pl,
        observables=observables,
    )

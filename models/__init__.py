"""The physics of the simulated lab: outcome models, optics, spectral analysis.

Pure and vectorised (numpy in, numpy out); imports nothing from the other QDLab packages.
The names below are the public API; they load on first use, so that importing
``models.parameters`` (CLI help, config validation) does not pay for numpy and scipy.
"""

from models.lazy import lazy_names

_PUBLIC = {
    "LIGANDS": "models.parameters",
    "ROUTES": "models.parameters",
    "ParameterError": "models.parameters",
    "Route": "models.parameters",
    "get_route": "models.parameters",
    "OBSERVABLE_KEYS": "models.analysis",
    "analyse_spectra": "models.analysis",
    "WAVELENGTHS_NM": "models.optics",
    "sizing_curve": "models.optics",
    "OutcomeModel": "models.simulation",
    "OutcomeModelError": "models.simulation",
    "SimulatedBatch": "models.simulation",
    "load_outcome_model": "models.simulation",
    "simulate": "models.simulation",
    "POPULATION_KEYS": "models.synthesis",
    "flow_outcome": "models.synthesis",
    "hot_injection_outcome": "models.synthesis",
    "larp_outcome": "models.synthesis",
}

__all__ = sorted(_PUBLIC)

__getattr__ = lazy_names(__name__, _PUBLIC)

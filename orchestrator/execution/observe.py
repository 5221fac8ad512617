"""From a run's documents to the observables a planner may see.

The campaign runner reads the documents of an experiment back from the database (so only what
was persisted is ever told to a planner), takes the primary stream's last event and runs the
spectral analysis of :mod:`models.analysis` on the measured absorption and PL spectra, on the
wavelength axis and integration time recorded in the descriptor. A reading the instrument
flagged (saturated detector, spiky spectrum from a bubble) or a spectrum without PL does not
count as a measurement: :class:`MeasurementRejected` says why. A reading no sample can give (a
spectrum of another length than its wavelength axis, values that are not numbers or beyond any
detector, more light out than absorbed) is the instrument's fault, not the chemistry's:
:class:`InstrumentFault`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from models.analysis import analyse_spectra

__all__ = ["InstrumentFault", "MeasurementRejected", "observables_from_documents"]

MAX_COUNTS = 1e9
"""PL counts beyond any spectrometer's range."""
ABSORBANCE_RANGE = (-2.0, 20.0)
"""Absorbance (optical density) a cell can read."""
MAX_PLQY = 1.5
"""A PLQY estimate above this (more light out than absorbed, with margin for noise) is no
sample's."""


class MeasurementRejected(RuntimeError):
    """The run finished but its spectra cannot be trusted (the reason says why)."""


class InstrumentFault(RuntimeError):
    """The run finished but its readings are impossible: the instrument failed, not the
    chemistry (the reason names the reading)."""


def _checked(name: str, values: np.ndarray, points: int, low: float, high: float) -> np.ndarray:
    if values.shape != (points,):
        raise InstrumentFault(
            f"{name}: {values.size} points where the wavelength axis has {points}"
        )
    if not np.isfinite(values).all():
        raise InstrumentFault(f"{name}: values that are not numbers (NaN or infinite)")
    if values.min() < low or values.max() > high:
        raise InstrumentFault(
            f"{name}: readings from {values.min():.3g} to {values.max():.3g}, outside what "
            f"the instrument can read [{low:g}, {high:g}]"
        )
    return values


def _cell_keys(descriptor: Mapping[str, Any]) -> tuple[str, str, str]:
    keys = descriptor["data_keys"]
    for device, names in descriptor.get("object_keys", {}).items():
        pl, absorbance = f"{device}_pl", f"{device}_absorbance"
        if pl in names and absorbance in names:
            return device, pl, absorbance
    raise MeasurementRejected(f"no absorption/PL spectra among {sorted(keys)}")


def observables_from_documents(docs: Iterable[tuple[str, Mapping[str, Any]]]) -> dict[str, Any]:
    """Observables of the last primary event of a run (see the module docstring)."""
    descriptors: dict[str, Mapping[str, Any]] = {}
    last: tuple[Mapping[str, Any], Mapping[str, Any]] | None = None
    material = "CsPbBr3"
    for name, doc in docs:
        if name == "start":  # what the plan made sets the sizing curve the edge comes from
            material = (doc.get("conditions") or {}).get("material", material)
        elif name == "descriptor":
            descriptors[doc["uid"]] = doc
        elif name == "event":
            descriptor = descriptors[doc["descriptor"]]
            if descriptor.get("name") == "primary":
                last = (descriptor, doc)
    if last is None:
        raise MeasurementRejected("the run has no measurement (no primary event)")
    descriptor, event = last
    device, pl_key, abs_key = _cell_keys(descriptor)
    config = descriptor["configuration"][device]["data"]
    wavelengths = np.asarray(config[f"{device}_wavelengths"], dtype=float)
    integration_ms = float(config.get(f"{device}_integration_time", 100.0))
    data = event["data"]
    if data.get(f"{device}_saturated"):
        raise MeasurementRejected("detector saturated: shorten the integration time")
    if data.get(f"{device}_spikes", 0) >= 3:
        raise MeasurementRejected(
            f"spiky spectrum ({data[f'{device}_spikes']} spikes): bubble in the cell?"
        )
    n = wavelengths.size
    pl = _checked(pl_key, np.asarray(data[pl_key], dtype=float).ravel(), n, -MAX_COUNTS, MAX_COUNTS)
    pl = pl / (integration_ms / 100.0)
    absorbance = _checked(
        abs_key, np.asarray(data[abs_key], dtype=float).ravel(), n, *ABSORBANCE_RANGE
    )
    found = analyse_spectra(wavelengths, absorbance, pl, material)
    obs = {k: float(v[0]) for k, v in found.items()}
    if not math.isfinite(obs["pl_peak_nm"]):
        raise MeasurementRejected("no photoluminescence: nothing emitting in the cell")
    if obs["plqy_est"] > MAX_PLQY:
        raise InstrumentFault(
            f"{pl_key}: a PLQY of {obs['plqy_est']:.3g} (more light out than absorbed)"
        )
    return obs

"""From a run's documents to the observables a planner may see.

The campaign runner reads the documents of an experiment back from the database (so only what
was persisted is ever told to a planner), takes the primary stream's last event and runs the
spectral analysis of :mod:`models.analysis` on the measured absorption and PL spectra, on the
wavelength axis and integration time recorded in the descriptor. A reading the instrument
flagged (saturated detector, spiky spectrum from a bubble) or a spectrum without PL does not
count as a measurement: :class:`MeasurementRejected` says why.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from models.analysis import analyse_spectra

__all__ = ["MeasurementRejected", "observables_from_documents"]


class MeasurementRejected(RuntimeError):
    """The run finished but its spectra cannot be trusted (the reason says why)."""


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
    pl = np.asarray(data[pl_key], dtype=float) / (integration_ms / 100.0)
    absorbance = np.asarray(data[abs_key], dtype=float)
    found = analyse_spectra(wavelengths, absorbance, pl, material)
    obs = {k: float(v[0]) for k, v in found.items()}
    if not math.isfinite(obs["pl_peak_nm"]):
        raise MeasurementRejected("no photoluminescence: nothing emitting in the cell")
    return obs

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
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from db import Database
from db.records import Experiment, ExperimentStatus
from models.analysis import analyse_spectra

__all__ = [
    "IN_SITU_STREAM",
    "InstrumentFault",
    "MeasurementRejected",
    "campaign_trajectories",
    "grown_for_s",
    "measurements",
    "observables_from_documents",
    "runs_read_in_situ",
    "trajectory_from_documents",
]

IN_SITU_STREAM = "insitu"
"""The event stream of spectra taken while the dots grow (the plans' ``watch_growth``)."""
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


def _streams(
    docs: Iterable[tuple[str, Mapping[str, Any]]],
) -> tuple[str, list[tuple[str, Mapping[str, Any], Mapping[str, Any]]]]:
    """The material a run made and its events in order, each as (stream, descriptor, event)."""
    descriptors: dict[str, Mapping[str, Any]] = {}
    events = []
    material = "CsPbBr3"
    for name, doc in docs:
        if name == "start":  # what the plan made sets the sizing curve the edge comes from
            material = (doc.get("conditions") or {}).get("material", material)
        elif name == "descriptor":
            descriptors[doc["uid"]] = doc
        elif name == "event":
            descriptor = descriptors[doc["descriptor"]]
            events.append((descriptor.get("name", ""), descriptor, doc))
    return material, events


def measurements(docs: Iterable[tuple[str, Mapping[str, Any]]]) -> list[Mapping[str, Any]]:
    """The events of a run's primary stream, in order: its measurements (its ``baseline`` and
    in-situ readings are not)."""
    return [event for stream, _, event in _streams(docs)[1] if stream == "primary"]


def _flagged(device: str, data: Mapping[str, Any]) -> str | None:
    """Why the instrument says its reading cannot be trusted, if it does."""
    if data.get(f"{device}_saturated"):
        return "detector saturated: shorten the integration time"
    if data.get(f"{device}_spikes", 0) >= 3:
        return f"spiky spectrum ({data[f'{device}_spikes']} spikes): bubble in the cell?"
    return None


def _spectra(
    descriptor: Mapping[str, Any], data: Mapping[str, Any]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One event's wavelength axis, absorbance and PL (per 100 ms of integration), on the axis
    and integration time its descriptor recorded; :class:`InstrumentFault` for impossible
    readings."""
    device, pl_key, abs_key = _cell_keys(descriptor)
    config = descriptor["configuration"][device]["data"]
    wavelengths = np.asarray(config[f"{device}_wavelengths"], dtype=float)
    integration_ms = float(config.get(f"{device}_integration_time", 100.0))
    n = wavelengths.size
    pl = _checked(pl_key, np.asarray(data[pl_key], dtype=float).ravel(), n, -MAX_COUNTS, MAX_COUNTS)
    absorbance = _checked(
        abs_key, np.asarray(data[abs_key], dtype=float).ravel(), n, *ABSORBANCE_RANGE
    )
    return wavelengths, absorbance, pl / (integration_ms / 100.0)


def _analysed(
    descriptor: Mapping[str, Any], readings: Sequence[Mapping[str, Any]], material: str
) -> list[dict[str, float] | InstrumentFault]:
    """The observables of each reading's spectra (NaN where they show no line), all of one
    descriptor, analysed together; an :class:`InstrumentFault` in place of an impossible
    one."""
    out: list[dict[str, float] | InstrumentFault] = []
    good, spectra = [], []
    for data in readings:
        try:
            spectra.append(_spectra(descriptor, data))
        except InstrumentFault as exc:
            out.append(exc)
            continue
        good.append(len(out))
        out.append({})
    if spectra:
        wavelengths = spectra[0][0]
        absorbance = np.stack([a for _, a, _ in spectra])
        pl = np.stack([p for _, _, p in spectra])
        found = analyse_spectra(wavelengths, absorbance, pl, material)
        pl_key = _cell_keys(descriptor)[1]
        for row, i in enumerate(good):
            obs = {k: float(v[row]) for k, v in found.items()}
            if obs["plqy_est"] > MAX_PLQY:
                out[i] = InstrumentFault(
                    f"{pl_key}: a PLQY of {obs['plqy_est']:.3g} (more light out than absorbed)"
                )
            else:
                out[i] = obs
    return out


def observables_from_documents(docs: Iterable[tuple[str, Mapping[str, Any]]]) -> dict[str, Any]:
    """Observables of the last primary event of a run (see the module docstring)."""
    material, events = _streams(docs)
    primary = [(descriptor, event) for stream, descriptor, event in events if stream == "primary"]
    if not primary:
        raise MeasurementRejected("the run has no measurement (no primary event)")
    descriptor, event = primary[-1]
    flagged = _flagged(_cell_keys(descriptor)[0], event["data"])
    if flagged is not None:
        raise MeasurementRejected(flagged)
    (obs,) = _analysed(descriptor, [event["data"]], material)
    if isinstance(obs, InstrumentFault):
        raise obs
    if not math.isfinite(obs["pl_peak_nm"]):
        raise MeasurementRejected("no photoluminescence: nothing emitting in the cell")
    return obs


_GROWTH_READINGS = (
    ("flow_residence_time", "flow_coil", False),  # the in-line cell, after the coil
    ("cell_sample_age", None, False),  # a plate reader over a LARP well, at room temperature
)
"""Per kind of in-situ reading besides a flask's dip probe: its growth-time and temperature
keys, and whether the spectrometer saw the hot mixture or the product that left the coil."""


def _growth_keys(data: Mapping[str, Any]) -> tuple[str, str | None, bool]:
    """An in-situ reading's growth-time and temperature keys, and whether it saw the hot
    mixture: a reactor's dip probe reads ``<reactor>_growth_time`` and ``<reactor>_temperature``
    in the hot flask, else one of :data:`_GROWTH_READINGS`."""
    probe = next((k for k in data if k.endswith("_growth_time")), "reactor_growth_time")
    if probe in data or not any(k[0] in data for k in _GROWTH_READINGS):
        return probe, probe.removesuffix("_growth_time") + "_temperature", True
    return next(k for k in _GROWTH_READINGS if k[0] in data)


def trajectory_from_documents(
    docs: Iterable[tuple[str, Mapping[str, Any]]], stream: str = IN_SITU_STREAM
) -> list[dict[str, Any]]:
    """The observables of each reading of a run's in-situ ``stream``, in order, with its growth
    time (``growth_time_s``: time since injection in the flask, residence time in a flow coil,
    a LARP well's age under the plate reader),
    the reaction's temperature (``temperature_c``) and ``hot``: True where the spectrometer saw
    the hot mixture (bluer, broader, weaker than the product), False where it saw product that
    had left the reactor. NaN where no line showed yet; a reading the instrument flagged, or
    one no sample can give, is left out. Empty for a run without one."""
    material, events = _streams(docs)
    readings = [
        (descriptor, event["data"])
        for name, descriptor, event in events
        if name == stream and _flagged(_cell_keys(descriptor)[0], event["data"]) is None
    ]
    by_descriptor: dict[str, list[int]] = {}  # readings of one axis are analysed together
    for i, (descriptor, _) in enumerate(readings):
        by_descriptor.setdefault(descriptor["uid"], []).append(i)
    found: list[dict[str, float] | InstrumentFault] = [{}] * len(readings)
    for indices in by_descriptor.values():
        descriptor = readings[indices[0]][0]
        analysed = _analysed(descriptor, [readings[i][1] for i in indices], material)
        for i, obs in zip(indices, analysed, strict=True):
            found[i] = obs
    points = []
    for (_, data), obs in zip(readings, found, strict=True):
        if isinstance(obs, InstrumentFault):
            continue  # one impossible reading (a barely absorbing early mixture): not a point
        time_key, temperature_key, hot = _growth_keys(data)
        temperature = data.get(temperature_key, math.nan) if temperature_key else math.nan
        points.append(
            {
                "growth_time_s": float(data.get(time_key, math.nan)),
                "temperature_c": float(temperature),
                "hot": hot,
                **obs,
            }
        )
    return points


def grown_for_s(conditions: Mapping[str, Any]) -> float | None:
    """How long an experiment's dots grew before the product was measured: the quench time
    (hot injection), the time to measurement (LARP) or the residence time (flow)."""
    return conditions.get("time_s", conditions.get("residence_time_s"))


def runs_read_in_situ(db: Database, rows: Sequence[Experiment]) -> set[str]:
    """The runs of ``rows``' campaigns that stored in-situ readings (a database query; no
    run's documents are read)."""
    campaigns = {r.campaign_id for r in rows}
    return set().union(*(db.runs_with_stream(c, IN_SITU_STREAM) for c in campaigns))


def campaign_trajectories(
    db: Database, rows: Sequence[Experiment], limit: int | None = None
) -> list[tuple[Experiment, list[dict[str, Any]]]]:
    """The in-situ trajectories (:func:`trajectory_from_documents`) of the last ``limit``
    (None: all) measured experiments of ``rows`` that have one, in order. Only the runs the
    database says were read in situ are read back: none for a lab that reads nothing."""
    read = runs_read_in_situ(db, rows)
    found = []
    for r in reversed(rows):
        if limit is not None and len(found) >= limit:
            break
        if r.status == ExperimentStatus.DONE and r.run_uid in read:
            points = trajectory_from_documents(db.run_documents(r.run_uid))
            if points:
                found.append((r, points))
    return found[::-1]

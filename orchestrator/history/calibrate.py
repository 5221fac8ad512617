"""Twin calibration: fit the twin's free parameters to a lab's recorded observations.

Conditions are those the instruments recorded (the flask's temperature at injection, the growth
time at the quench), not the requested ones: a heater settles within its tolerance, and at
200 °C one degree moves the PL by about a nanometre.

Least squares (``scipy.optimize.least_squares``) of the twin's mean PL peak, FWHM and first
absorption peak (over noisy replicates, as a lab measures them) against the recorded ones, over
every completed experiment of the given campaigns that gave dots (platelet-like spectra do not
follow the sizing curve), in the parameters ``sizing_offset_ev``, ``log br_affinity_scale``,
``log size_scale`` and ``log dispersion_scale``. Residuals are scaled by 1 nm (PL peak), 2 nm
(FWHM) and 1.5 nm (absorption peak); the absorption-PL (Stokes) gap depends on size but not on
the sizing offset, which is what tells the two apart.
Uncertainties are the square roots of the diagonal of :math:`s^2 (J^T J)^{-1}` at the optimum
(:math:`s^2` the residual variance). The noise level is fitted as ``variability``: the recorded
PL scatter around the calibrated twin, over the twin's own run-to-run scatter at the same
conditions. The result is a YAML file a lab config names as ``simulator.twin``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from scipy.optimize import least_squares

from db import Database, DatabaseError
from db.records import Experiment, ExperimentStatus
from models.analysis import is_platelet_like
from models.simulation import simulate
from models.twin import TwinParameters
from orchestrator.execution.observe import measurements

__all__ = ["Calibration", "calibrate"]

_FREE = ("sizing_offset_ev", "br_affinity_scale", "size_scale", "dispersion_scale")
_LOG = {"br_affinity_scale", "size_scale", "dispersion_scale"}


@dataclass(frozen=True)
class Calibration:
    """The fitted twin, its uncertainties and the fit quality before and after."""

    twin: TwinParameters
    uncertainty: dict[str, float]
    experiments: int
    rmse_before_nm: dict[str, float]
    rmse_after_nm: dict[str, float]
    campaigns: list[int]

    def write(self, path: str | Path) -> Path:
        """Write the twin file a lab config can name (``simulator: {twin: FILE}``)."""
        values = self.twin.as_dict()
        data = {
            "parameters": {
                k: {"value": values[k], "uncertainty": self.uncertainty.get(k)} for k in values
            },
            "calibrated_from": {
                "campaigns": self.campaigns,
                "experiments": self.experiments,
                "at": datetime.now(UTC).isoformat(timespec="seconds"),
            },
            "fit_rmse_nm": {"before": self.rmse_before_nm, "after": self.rmse_after_nm},
        }
        out = Path(path)
        out.write_text(yaml.safe_dump(data, sort_keys=False))
        return out


def _observations(db: Database, campaign_ids: Sequence[int]) -> dict[str, list[Experiment]]:
    by_route: dict[str, list[Experiment]] = {}
    for cid in campaign_ids:
        campaign = db.campaign(cid)
        for r in db.experiments(cid):
            obs = r.observables or {}
            if (
                r.status == ExperimentStatus.DONE
                and obs.get("pl_peak_nm") is not None
                and obs.get("pl_fwhm_nm") is not None
                and not is_platelet_like(obs, r.conditions)
            ):
                realised = _realised_conditions(db, r)
                by_route.setdefault(campaign["route"], []).append(replace(r, conditions=realised))
    if not by_route:
        raise DatabaseError(
            f"campaigns {list(campaign_ids)} have no completed experiments "
            "with a measured PL peak to calibrate on"
        )
    return by_route


# readings of the synthesis devices that record what actually happened
_REALISED = {"reactor_injection_temperature": "temperature_c", "reactor_quench": "time_s"}


def _realised_conditions(db: Database, row: Experiment) -> dict[str, Any]:
    """The conditions as the instruments recorded them (injection temperature, growth time),
    falling back on the requested ones."""
    conditions = dict(row.conditions)
    if row.run_uid:
        events = measurements(db.run_documents(row.run_uid))
        if events:
            data = events[-1]["data"]
            for key, name in _REALISED.items():
                value = data.get(key)
                if name in conditions and isinstance(value, float) and np.isfinite(value):
                    conditions[name] = value
    return conditions


def _twin(theta: np.ndarray, variability: float = 1.0) -> TwinParameters:
    values = {
        k: (float(np.exp(v)) if k in _LOG else float(v)) for k, v in zip(_FREE, theta, strict=True)
    }
    return TwinParameters(**values, variability=variability)


_OBSERVED = ("pl_peak_nm", "pl_fwhm_nm", "abs_peak_nm")
_SCALE_NM = {"pl_peak_nm": 1.0, "pl_fwhm_nm": 2.0, "abs_peak_nm": 1.5}


_REPLICATES = 8


def _draws(route: str, rows: list[Experiment], twin: TwinParameters) -> dict[str, np.ndarray]:
    """Observable -> ``(replicates, experiments)``: the twin run on the recorded conditions as
    the lab runs them, with its run-to-run and instrument noise. The same random draws for
    every twin tried (common random numbers), so the least-squares objective stays smooth."""
    conditions = [r.conditions for r in rows]
    batch = simulate(route, conditions * _REPLICATES, np.random.default_rng(0), twin=twin)
    return {k: v.reshape(_REPLICATES, len(rows)) for k, v in batch.observables.items()}


def _predict(
    by_route: dict[str, list[Experiment]], twin: TwinParameters
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Observable -> (predicted, recorded) over every experiment (NaN where not measured).

    The prediction is the mean over noisy replicates, not the noiseless outcome: for small,
    still-growing dots the mean measured FWHM lies nanometres below the noiseless one, and a
    fit to single measurements must compare like with like."""
    out: dict[str, tuple[list, list]] = {k: ([], []) for k in _OBSERVED}
    for route, rows in by_route.items():
        draws = _draws(route, rows, twin)
        for k in _OBSERVED:
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # never measurable: NaN
                out[k][0].append(np.nanmean(draws[k], axis=0))
            out[k][1].append(
                [np.nan if r.observables.get(k) is None else r.observables[k] for r in rows]
            )
    return {
        k: (np.concatenate(p).astype(float), np.concatenate(o).astype(float))
        for k, (p, o) in out.items()
    }


def _rmse(by_route: dict[str, list[Experiment]], twin: TwinParameters) -> dict[str, float]:
    out = {}
    for k, (pred, obs) in _predict(by_route, twin).items():
        ok = np.isfinite(pred) & np.isfinite(obs)
        out[k.replace("_nm", "")] = float(np.sqrt(np.mean((pred - obs)[ok] ** 2)))
    return out


def _twin_scatter_nm(by_route: dict[str, list[Experiment]], twin: TwinParameters) -> float:
    """The twin's own run-to-run PL scatter at the recorded conditions (variability 1)."""
    spreads = [
        np.nanstd(_draws(route, rows, twin)["pl_peak_nm"], axis=0)
        for route, rows in by_route.items()
    ]
    return float(np.sqrt(np.nanmean(np.concatenate(spreads) ** 2)))


def calibrate(db: Database, campaign_ids: Sequence[int]) -> Calibration:
    """Fit the twin to the recorded observations of ``campaign_ids`` (see module docstring)."""
    by_route = _observations(db, campaign_ids)
    n = sum(len(v) for v in by_route.values())

    measured = {k: np.isfinite(obs) for k, (_, obs) in _predict(by_route, TwinParameters()).items()}

    def residuals(theta: np.ndarray) -> np.ndarray:
        parts = []
        for k, (pred, obs) in _predict(by_route, _twin(theta)).items():
            r = (pred - obs)[measured[k]] / _SCALE_NM[k]
            parts.append(np.where(np.isfinite(r), r, 30.0))  # predicted "not measurable": far
        return np.concatenate(parts)

    # soft-L1: a few mixed dot/platelet samples must not drag the sizing offset
    fit = least_squares(
        residuals,
        x0=np.zeros(len(_FREE)),
        x_scale=[0.01, 0.3, 0.3, 0.3],
        diff_step=1e-3,
        loss="soft_l1",
        f_scale=2.0,
    )
    dof = max(len(fit.fun) - len(_FREE), 1)
    s2 = float(fit.fun @ fit.fun) / dof
    cov = s2 * np.linalg.pinv(fit.jac.T @ fit.jac)
    sigma = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    fitted = _twin(fit.x)
    uncertainty = {}
    for k, theta, sd in zip(_FREE, fit.x, sigma, strict=True):
        # log-parameters: first-order propagation to the scale itself
        uncertainty[k] = float(np.exp(theta) * sd) if k in _LOG else float(sd)
    after = _rmse(by_route, fitted)
    scatter = _twin_scatter_nm(by_route, fitted)
    variability = float(np.clip(after["pl_peak"] / scatter, 0.1, 10.0)) if scatter > 0 else 1.0
    fitted = _twin(fit.x, variability)
    uncertainty["variability"] = float(variability / np.sqrt(2 * max(n - 1, 1)))
    return Calibration(
        fitted, uncertainty, n, _rmse(by_route, TwinParameters()), after, list(campaign_ids)
    )


def describe(result: Calibration) -> list[str]:
    """Lines a person reads: parameters with uncertainties, fit quality before and after."""
    lines = [f"calibrated on {result.experiments} experiments of campaigns {result.campaigns}"]
    for k, v in result.twin.as_dict().items():
        lines.append(f"  {k:<18} {v:10.4f} ± {result.uncertainty.get(k, float('nan')):.4f}")
    b, a = result.rmse_before_nm, result.rmse_after_nm
    for key, label in (("pl_peak", "PL peak"), ("pl_fwhm", "PL FWHM"), ("abs_peak", "abs peak")):
        lines.append(f"  {label} rmse: {b[key]:6.2f} nm (default twin) -> {a[key]:6.2f} nm")
    return lines


def as_mapping(result: Calibration) -> dict[str, Any]:
    """The calibration as JSON-ready data."""
    return {
        "parameters": result.twin.as_dict(),
        "uncertainty": result.uncertainty,
        "experiments": result.experiments,
        "rmse_before_nm": result.rmse_before_nm,
        "rmse_after_nm": result.rmse_after_nm,
        "campaigns": result.campaigns,
    }

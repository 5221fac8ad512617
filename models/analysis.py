"""Spectral analysis: what planners see, extracted from measured (noisy) spectra.

From an absorption and a PL spectrum on a common wavelength grid this module extracts

- ``pl_peak_nm``: the PL maximum, refined by a least-squares Gaussian (parabola in log
  intensity vs photon energy) over the points above 60 % of the smoothed maximum;
- ``pl_fwhm_nm``: full width at half maximum of the smoothed PL, crossings linearly interpolated;
- ``abs_peak_nm``: the first excitonic absorption peak, taken as the reddest significant minimum of
  the smoothed second derivative (the standard way to find an exciton on a rising continuum);
- ``edge_length_est_nm``: the inverse sizing curve applied to ``pl_peak_nm`` (the published
  calibration is size -> PL), or to ``abs_peak_nm`` when there is no PL; NaN beyond 50 nm;
- ``plqy_est``: relative PLQY, integrated PL over the light absorbed at the excitation wavelength,
  in the units of :data:`models.optics.PL_COUNTS_PER_ABSORBED`.

Everything is vectorised over the leading axis: spectra of shape ``(n, w)`` give arrays ``(n,)``.
A quantity that cannot be extracted (no PL, no exciton) is NaN, never a made-up number.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.ndimage import convolve1d
from scipy.signal import savgol_coeffs

from models.optics import EXCITATION_NM, HC_EV_NM, PL_COUNTS_PER_ABSORBED, get_material

__all__ = [
    "OBSERVABLE_KEYS",
    "analyse_spectra",
    "first_exciton_nm",
    "is_platelet_like",
    "pl_peak_and_fwhm",
    "platelet_like",
]

OBSERVABLE_KEYS: tuple[str, ...] = (
    "pl_peak_nm",
    "pl_fwhm_nm",
    "abs_peak_nm",
    "edge_length_est_nm",
    "plqy_est",
)
"""Keys of :func:`analyse_spectra`'s result, in that order."""


@lru_cache(maxsize=32)
def _savgol_kernel(window: int, deriv: int) -> NDArray[np.float64]:
    return savgol_coeffs(window, 3, deriv=deriv, use="conv")


def savgol(y: NDArray[np.float64], window: int, deriv: int = 0) -> NDArray[np.float64]:
    """Cubic Savitzky-Golay smoothing (or derivative, per grid step) along the last axis."""
    return convolve1d(y, _savgol_kernel(window, deriv), axis=-1, mode="nearest")


def _odd_window(points: float, n: int) -> int:
    w = max(5, round(points) | 1)
    return min(w, n - 1 if n % 2 == 0 else n)


def _crossing(
    y: NDArray[np.float64], x: NDArray[np.float64], i_in: NDArray, i_out: NDArray, level: NDArray
) -> NDArray[np.float64]:
    """x where ``y`` crosses ``level`` between grid indices ``i_out`` (below) and ``i_in``."""
    rows = np.arange(y.shape[0])
    y_in, y_out = y[rows, i_in], y[rows, i_out]
    frac = (y_in - level) / np.where(y_in != y_out, y_in - y_out, 1.0)
    return x[i_in] + frac * (x[i_out] - x[i_in])


def pl_peak_and_fwhm(
    wavelengths_nm: ArrayLike, pl: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """PL peak wavelength and FWHM (nm) of each spectrum in ``pl`` (shape ``(n, w)``)."""
    wl = np.asarray(wavelengths_nm, dtype=float)
    y = np.atleast_2d(np.asarray(pl, dtype=float))
    n, w = y.shape
    step = float(np.median(np.abs(np.diff(wl))))
    smooth = savgol(y, _odd_window(4.0 / step, w))
    rows = np.arange(n)
    idx = np.arange(w)[None, :]
    i_max = np.argmax(smooth, axis=1)
    y_max = smooth[rows, i_max]
    # noise floor from the spectrum's flattest stretch: a peak must stand well above it
    noise = np.median(np.abs(np.diff(y, axis=1)), axis=1) + 1e-12
    has_peak = y_max > 8.0 * noise

    def bounds(level: NDArray[np.float64]) -> tuple[NDArray, NDArray]:
        below = smooth < level[:, None]
        left = np.where(below & (idx < i_max[:, None]), idx, -1).max(axis=1)
        right = np.where(below & (idx > i_max[:, None]), idx, w).min(axis=1)
        return left, right

    half = 0.5 * y_max
    left, right = bounds(half)
    closed = (left >= 0) & (right < w)
    lo_x = _crossing(smooth, wl, np.clip(left + 1, 0, w - 1), np.clip(left, 0, w - 1), half)
    hi_x = _crossing(smooth, wl, np.clip(right - 1, 0, w - 1), np.clip(right, 0, w - 1), half)
    fwhm = np.where(closed & has_peak, np.abs(hi_x - lo_x), np.nan)

    # Gaussian refinement on the raw points above 60 % of the smoothed maximum
    top_left, top_right = bounds(0.6 * y_max)
    window = (idx > top_left[:, None]) & (idx < top_right[:, None]) & (y > 0)
    energy = HC_EV_NM / wl
    e0 = energy[i_max]
    x = energy[None, :] - e0[:, None]
    logy = np.log(np.where(window, y, 1.0))
    weight = np.where(window, y**2, 0.0)  # var(log y) ~ 1/y^2
    moments = [(weight * x**k).sum(axis=1) for k in range(5)]
    rhs = np.stack([(weight * x**k * logy).sum(axis=1) for k in range(3)], axis=1)
    gram = np.stack(
        [np.stack([moments[i + j] for j in range(3)], axis=1) for i in range(3)], axis=1
    )
    enough = window.sum(axis=1) >= 4
    gram[~enough] = np.eye(3)
    coef = np.linalg.solve(gram, rhs[..., None])[..., 0]
    curvature = coef[:, 2]
    shift = np.where(
        curvature < 0, -coef[:, 1] / (2.0 * np.where(curvature < 0, curvature, -1.0)), 0.0
    )
    half_span = np.abs(x).max(axis=1, where=window, initial=0.0)
    shift = np.where(np.abs(shift) <= half_span, shift, 0.0)  # keep the vertex inside the window
    peak = HC_EV_NM / (e0 + np.where(enough, shift, 0.0))
    return np.where(has_peak, peak, np.nan), fwhm


def first_exciton_nm(
    wavelengths_nm: ArrayLike, absorbance: ArrayLike, material: str = "CsPbBr3"
) -> NDArray[np.float64]:
    """First excitonic absorption peak (nm): reddest significant minimum of d²A/dλ².

    Significant means at least a quarter as deep as the deepest minimum and more than five
    standard deviations of the second derivative's noise, measured where ``material`` is
    transparent (40 nm beyond its bulk gap: above 560 nm for CsPbBr3). NaN when no exciton is
    resolved (dilute or bulk-like samples).
    """
    wl = np.asarray(wavelengths_nm, dtype=float)
    a = np.atleast_2d(np.asarray(absorbance, dtype=float))
    n, w = a.shape
    order = np.argsort(wl)  # work from blue to red
    wl, a = wl[order], a[:, order]
    step = float(np.median(np.diff(wl)))
    bulk_nm = HC_EV_NM / get_material(material).sizing.e_inf_ev
    # lines of one width in energy are wider in wavelength the redder: so is the window
    redder = bulk_nm / (HC_EV_NM / get_material("CsPbBr3").sizing.e_inf_ev)
    window = _odd_window(20.0 * redder**2 / step, w)
    d2 = savgol(a, window, deriv=2)
    transparent = wl > bulk_nm + 40.0
    noise = d2[:, transparent].std(axis=1) if transparent.sum() > 3 else np.zeros(n)
    edge = window // 2
    valid = np.zeros((n, w), dtype=bool)
    valid[:, edge : w - edge] = True
    interior = np.zeros((n, w), dtype=bool)
    interior[:, 1:-1] = (d2[:, 1:-1] < d2[:, :-2]) & (d2[:, 1:-1] <= d2[:, 2:])
    deepest = np.where(valid, d2, 0.0).min(axis=1)
    significant = (
        interior
        & valid
        & (d2 < 0.25 * deepest[:, None])
        & (d2 < -5.0 * noise[:, None])
        & (deepest[:, None] < 0)
    )
    idx = np.arange(w)[None, :]
    i_red = np.where(significant, idx, -1).max(axis=1)
    found = i_red > 0
    i = np.clip(i_red, 1, w - 2)
    rows = np.arange(n)
    y0, y1, y2 = d2[rows, i - 1], d2[rows, i], d2[rows, i + 1]
    denom = y0 - 2.0 * y1 + y2
    offset = np.where(denom > 0, 0.5 * (y0 - y2) / np.where(denom > 0, denom, 1.0), 0.0)
    return np.where(found, wl[i] + np.clip(offset, -1.0, 1.0) * step, np.nan)


def analyse_spectra(
    wavelengths_nm: ArrayLike, absorbance: ArrayLike, pl: ArrayLike, material: str = "CsPbBr3"
) -> dict[str, NDArray[np.float64]]:
    """Extract :data:`OBSERVABLE_KEYS` from absorption and PL spectra (see module docstring);
    the edge length comes from ``material``'s sizing curve."""
    wl = np.asarray(wavelengths_nm, dtype=float)
    a = np.atleast_2d(np.asarray(absorbance, dtype=float))
    y = np.atleast_2d(np.asarray(pl, dtype=float))
    pl_peak, pl_fwhm = pl_peak_and_fwhm(wl, y)
    abs_peak = first_exciton_nm(wl, a, material)
    curve = get_material(material).sizing
    edge = curve.edge_from_pl_nm(pl_peak)
    edge = np.where(np.isnan(edge), curve.edge_from_abs_nm(abs_peak), edge)
    edge = np.where((edge >= 1.0) & (edge <= 50.0), edge, np.nan)  # outside: not a size

    near = np.abs(wl - EXCITATION_NM) <= 2.0
    a_exc = a[:, near].mean(axis=1) if near.any() else np.full(a.shape[0], np.nan)
    absorbed = 1.0 - 10.0 ** (-np.clip(a_exc, 0.0, None))
    integrated = np.abs(np.trapezoid(y, wl, axis=1))
    with np.errstate(divide="ignore", invalid="ignore"):
        plqy = np.where(absorbed > 1e-3, integrated / (PL_COUNTS_PER_ABSORBED * absorbed), np.nan)
    return {
        "pl_peak_nm": pl_peak,
        "pl_fwhm_nm": pl_fwhm,
        "abs_peak_nm": abs_peak,
        "edge_length_est_nm": edge,
        "plqy_est": plqy,
    }


PLATELET_MAX_FWHM_EV = 0.11
"""Nanoplatelets' PL lines are narrower than this (in energy); most cubes' are broader."""
PLATELET_MAX_STOKES_EV = 0.03
"""A platelet's exciton absorbs within this of its PL line; strongly confined cubes have a
larger, size-dependent Stokes shift."""


def platelet_like(
    pl_peak_nm: ArrayLike,
    pl_fwhm_nm: ArrayLike,
    abs_peak_nm: ArrayLike = np.nan,
    material: ArrayLike = "CsPbBr3",
) -> NDArray[np.bool_]:
    """Whether measured spectra look like nanoplatelets rather than cubes, element-wise.

    Platelets emit narrow lines at discrete energies set by their thickness, no redder than the
    thickest line of the material (:attr:`models.optics.Material.platelet_pl_nm`; CsPbBr3
    488 nm), with a small Stokes shift. Three measured tests, all of which must pass: a PL
    FWHM below :data:`PLATELET_MAX_FWHM_EV`, a PL peak no more than 2 nm redder than the
    thickest line, and (where the first exciton was found) a Stokes shift below
    :data:`PLATELET_MAX_STOKES_EV`. On the twin's hot-injection samples this misses about 1 %
    of platelet-rich samples and calls about 2 % of cubes platelets (mixed populations).
    """
    peak = np.asarray(pl_peak_nm, dtype=float)
    fwhm = np.asarray(pl_fwhm_nm, dtype=float)
    absorb = np.asarray(abs_peak_nm, dtype=float)
    names = np.broadcast_to(np.asarray(material), np.broadcast(peak, fwhm, absorb).shape)
    thickest = np.vectorize(lambda m: get_material(str(m)).platelet_pl_nm[-1], otypes=[float])(
        names
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        width_ev = HC_EV_NM / (peak - fwhm / 2.0) - HC_EV_NM / (peak + fwhm / 2.0)
        stokes_ev = HC_EV_NM / absorb - HC_EV_NM / peak
        return (
            (width_ev < PLATELET_MAX_FWHM_EV)
            & (peak < thickest + 2.0)
            & ~(stokes_ev >= PLATELET_MAX_STOKES_EV)  # no exciton found: not evidence
        )


def is_platelet_like(
    observables: Mapping[str, Any], conditions: Mapping[str, Any] | None = None
) -> bool:
    """:func:`platelet_like` for one experiment: its observables, and its conditions for the
    material (CsPbBr3 when they name none). False without a PL line."""
    material = str((conditions or {}).get("material", "CsPbBr3"))

    def value(key: str) -> float:
        v = observables.get(key)
        return float(v) if isinstance(v, int | float) and math.isfinite(v) else math.nan

    return bool(
        platelet_like(value("pl_peak_nm"), value("pl_fwhm_nm"), value("abs_peak_nm"), material)
    )

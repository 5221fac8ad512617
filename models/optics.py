"""Optics of CsPbBr3 nanocrystals: sizing curve, absorption and photoluminescence spectra.

Sizing curve
------------
The first excitonic transition of a cube of edge length :math:`L` (nm) follows the
effective-mass confinement law with an effective size :math:`L + \\delta` (the exciton leaks
beyond the surface by about :math:`\\delta/2` on each side):

.. math::  E_1(L) = E_\\infty + \\frac{A}{(L + \\delta)^2}

and the emission is red-shifted from it by a size-dependent Stokes shift
:math:`S(L) = S_0 + S_2 / L^2` (~80 meV at 3.5 nm, ~20 meV at 12 nm; Brennan et al. 2017), so
:math:`E_\\mathrm{PL}(L) = E_1(L) - S(L)`. :math:`(E_\\infty, A, \\delta)` are least-squares fitted
to the published edge-length -> PL table (Ye et al., Chem. Soc. Rev. 2024, Table 1, shipped as
``models/data/size_vs_pl.csv``); :func:`fit_sizing_curve` repeats the fit.

Spectra
-------
Quantum-dot lines are Gaussian in energy. The PL full width combines, in quadrature, a homogeneous
width :math:`\\Gamma_h(L) = \\Gamma_0 + \\Gamma_2/L^2` (exciton-surface-phonon coupling grows as
the dot shrinks) and the inhomogeneous width of the size distribution,
:math:`2.3548\\,|dE_\\mathrm{PL}/dL|\\,\\sigma_L`. Nanoplatelets emit at discrete energies set by
their thickness in monolayers. Absorption holds the first exciton, a second transition and a
continuum, scaled by concentration. PL intensity is ``plqy`` times the light absorbed at the
excitation wavelength, which is how a relative PLQY is measured.

All functions are pure and vectorised: population arrays of shape ``(n,)`` give spectra of shape
``(n, n_wavelengths)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "EXCITATION_NM",
    "HC_EV_NM",
    "PLATELET_PL_NM",
    "PL_COUNTS_PER_ABSORBED",
    "WAVELENGTHS_NM",
    "SizingCurve",
    "SizingTableRow",
    "absorption_spectrum",
    "add_noise",
    "fit_sizing_curve",
    "load_sizing_table",
    "pl_fwhm_ev",
    "pl_spectrum",
    "sizing_curve",
]

HC_EV_NM = 1239.841984
"""Planck constant times the speed of light, eV nm: :math:`E = hc / \\lambda`."""

WAVELENGTHS_NM: NDArray[np.float64] = np.arange(350.0, 650.0 + 0.25, 0.5)
"""Default spectrometer grid: 350-650 nm in 0.5 nm steps (601 points)."""

EXCITATION_NM = 400.0
"""PL excitation wavelength; the PLQY estimate uses the absorbance here."""

PL_COUNTS_PER_ABSORBED = 2.0e5
"""Integrated PL counts (counts nm) for PLQY 1 and all excitation light absorbed."""

#: PL peak (nm) of CsPbBr3 nanoplatelets by thickness in monolayers (1 to 6);
#: 4 ML = 2.2-2.4 nm thick emits at ~472 nm (Zhang et al., flow synthesis).
PLATELET_PL_NM: NDArray[np.float64] = np.array([405.0, 433.0, 456.0, 471.0, 481.0, 488.0])

_STOKES_S0_EV = 0.012
_STOKES_S2_EV_NM2 = 0.9
_GAMMA_H0_MEV = 70.0
_GAMMA_H2_MEV_NM2 = 600.0
_PLATELET_FWHM_EV = 0.055
_FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))


@dataclass(frozen=True)
class SizingTableRow:
    """One row of the published size -> PL table (ranges as min and max)."""

    material: str
    size_min_nm: float
    size_max_nm: float
    pl_min_nm: float
    pl_max_nm: float

    @property
    def size_nm(self) -> float:
        """The row's representative edge length: the middle of its size range."""
        return 0.5 * (self.size_min_nm + self.size_max_nm)

    @property
    def pl_nm(self) -> float:
        """The middle of the row's PL range."""
        return 0.5 * (self.pl_min_nm + self.pl_max_nm)


def load_sizing_table(material: str = "CsPbBr3") -> list[SizingTableRow]:
    """Rows of the shipped size -> PL table for one material."""
    text = resources.files("models").joinpath("data/size_vs_pl.csv").read_text()
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    rows = []
    for line in lines[1:]:
        mat, *numbers = line.split(",")
        if mat == material:
            rows.append(SizingTableRow(mat, *(float(x) for x in numbers)))
    return rows


@dataclass(frozen=True)
class SizingCurve:
    """Edge length <-> transition energies of CsPbBr3 cubes (see the module docstring).

    Parameters
    ----------
    e_inf_ev, a_ev_nm2, delta_nm
        :math:`E_\\infty`, :math:`A` and :math:`\\delta` of
        :math:`E_1(L) = E_\\infty + A / (L + \\delta)^2`.
    """

    e_inf_ev: float
    a_ev_nm2: float
    delta_nm: float

    def exciton_ev(self, edge_nm: ArrayLike) -> NDArray[np.float64]:
        """First excitonic transition energy (absorption peak), eV."""
        edge = np.asarray(edge_nm, dtype=float)
        return self.e_inf_ev + self.a_ev_nm2 / (edge + self.delta_nm) ** 2

    def pl_ev(self, edge_nm: ArrayLike) -> NDArray[np.float64]:
        """PL peak energy: exciton minus Stokes shift, eV."""
        edge = np.asarray(edge_nm, dtype=float)
        return self.exciton_ev(edge) - stokes_shift_ev(edge)

    def pl_nm(self, edge_nm: ArrayLike) -> NDArray[np.float64]:
        """PL peak wavelength, nm."""
        return HC_EV_NM / self.pl_ev(edge_nm)

    def abs_nm(self, edge_nm: ArrayLike) -> NDArray[np.float64]:
        """First excitonic absorption peak wavelength, nm."""
        return HC_EV_NM / self.exciton_ev(edge_nm)

    def dpl_ev_dedge(self, edge_nm: ArrayLike) -> NDArray[np.float64]:
        """:math:`dE_\\mathrm{PL}/dL`, eV/nm (negative: bigger dots emit lower energy)."""
        edge = np.asarray(edge_nm, dtype=float)
        return -2.0 * self.a_ev_nm2 / (edge + self.delta_nm) ** 3 + (
            2.0 * _STOKES_S2_EV_NM2 / edge**3
        )

    def edge_from_abs_nm(self, abs_peak_nm: ArrayLike) -> NDArray[np.float64]:
        """Inverse sizing curve: edge length from the first absorption peak (NaN if bulk-like)."""
        energy = HC_EV_NM / np.asarray(abs_peak_nm, dtype=float)
        excess = energy - self.e_inf_ev
        with np.errstate(invalid="ignore", divide="ignore"):
            edge = np.sqrt(self.a_ev_nm2 / excess) - self.delta_nm
        return np.where(excess > 0, edge, np.nan)

    def edge_from_pl_nm(self, pl_peak_nm: ArrayLike) -> NDArray[np.float64]:
        """Inverse of :meth:`pl_nm` on 1-100 nm (NaN outside that span).

        Interpolation in a log-spaced table, polished by two Newton steps (exact to ~1e-9 nm).
        """
        target = HC_EV_NM / np.asarray(pl_peak_nm, dtype=float)
        table_edge, table_ev = self._pl_table()
        # pl_ev falls with edge length: interpolate on the reversed (rising) table
        edge = np.interp(target, table_ev[::-1], table_edge[::-1])
        for _ in range(2):
            edge = edge - (self.pl_ev(edge) - target) / self.dpl_ev_dedge(edge)
        inside = (target <= table_ev[0]) & (target >= table_ev[-1])
        return np.where(inside, edge, np.nan)

    def _pl_table(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        table = self.__dict__.get("_table")
        if table is None:
            edge = np.geomspace(1.0, 100.0, 4000)
            table = (edge, self.pl_ev(edge))
            object.__setattr__(self, "_table", table)  # a cache on a frozen dataclass
        return table


def stokes_shift_ev(edge_nm: ArrayLike) -> NDArray[np.float64]:
    """Size-dependent Stokes shift :math:`S_0 + S_2/L^2`, eV."""
    return _STOKES_S0_EV + _STOKES_S2_EV_NM2 / np.asarray(edge_nm, dtype=float) ** 2


def fit_sizing_curve(rows: list[SizingTableRow]) -> SizingCurve:
    """Least-squares fit of :math:`(E_\\infty, A, \\delta)` to the rows' representative points.

    Residuals are taken in PL wavelength at each row's middle size against the middle of its
    PL range.
    """
    from scipy.optimize import least_squares

    size = np.array([r.size_nm for r in rows])
    pl = np.array([r.pl_nm for r in rows])

    def residuals(p: NDArray[np.float64]) -> NDArray[np.float64]:
        return SizingCurve(*p).pl_nm(size) - pl

    fit = least_squares(residuals, x0=[2.38, 6.0, 0.5])
    return SizingCurve(*(float(v) for v in fit.x))


#: The calibrated curve: :func:`fit_sizing_curve` of the CsPbBr3 table (a test re-derives it).
sizing_curve = SizingCurve(e_inf_ev=2.383409, a_ev_nm2=6.432973, delta_nm=0.775320)


def pl_fwhm_ev(edge_nm: ArrayLike, size_dispersion: ArrayLike) -> NDArray[np.float64]:
    """Ensemble PL FWHM (eV): homogeneous and inhomogeneous widths in quadrature."""
    edge = np.asarray(edge_nm, dtype=float)
    homogeneous = 1e-3 * (_GAMMA_H0_MEV + _GAMMA_H2_MEV_NM2 / edge**2)
    sigma_edge = np.asarray(size_dispersion, dtype=float) * edge
    inhomogeneous = _FWHM_PER_SIGMA * np.abs(sizing_curve.dpl_ev_dedge(edge)) * sigma_edge
    return np.hypot(homogeneous, inhomogeneous)


def _gaussian_ev(
    energy: NDArray[np.float64], center: NDArray[np.float64], fwhm: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Unit-height Gaussian in energy; ``center``/``fwhm`` (n,) against ``energy`` (w,)."""
    sigma = fwhm[:, None] / _FWHM_PER_SIGMA
    return np.exp(-0.5 * ((energy[None, :] - center[:, None]) / sigma) ** 2)


def _platelet_weights(layers: NDArray[np.float64]) -> NDArray[np.float64]:
    """Share of platelets of 1..6 monolayers for a mean thickness ``layers`` (n,) -> (n, 6)."""
    n = np.arange(1, 7, dtype=float)
    w = np.exp(-0.5 * ((n[None, :] - np.clip(layers, 1.0, 6.0)[:, None]) / 0.45) ** 2)
    return w / w.sum(axis=1, keepdims=True)


def _population_arrays(
    population: Mapping[str, ArrayLike],
) -> tuple[NDArray[np.float64], ...]:
    edge = np.atleast_1d(np.asarray(population["edge_length_nm"], dtype=float))
    shape = edge.shape

    def get(key: str, default: float) -> NDArray[np.float64]:
        return np.broadcast_to(np.asarray(population.get(key, default), dtype=float), shape)

    return (
        edge,
        get("size_dispersion", 0.1),
        get("platelet_fraction", 0.0),
        get("plqy", 0.5),
        get("concentration", 1.0),
        get("platelet_layers", 3.0),
        get("energy_shift_ev", 0.0),
    )


def absorption_spectrum(
    population: Mapping[str, ArrayLike], wavelengths_nm: ArrayLike = WAVELENGTHS_NM
) -> NDArray[np.float64]:
    """Absorbance (OD, 1 cm) of the population on the wavelength grid, shape ``(n, w)``.

    Quantum dots: a first-exciton Gaussian (relatively sharper for smaller dots), a second
    transition, and a continuum that sets in above the exciton and rises towards the UV.
    Platelets: narrow excitonic lines at their emission energies plus a continuum.
    ``concentration`` 1 gives an absorbance of about 0.35 at 400 nm.
    """
    edge, dispersion, f_pl, _, conc, layers, shift = _population_arrays(population)
    energy = HC_EV_NM / np.asarray(wavelengths_nm, dtype=float)
    e1 = sizing_curve.exciton_ev(edge) + shift
    confinement = np.clip(e1 - shift - sizing_curve.e_inf_ev, 0.0, None)
    width = 1.15 * pl_fwhm_ev(edge, dispersion)
    exciton_height = 0.25 + 0.9 * confinement
    onset = e1 + 0.06 + 0.5 * confinement
    continuum = (1.0 + 0.5 * (energy[None, :] - onset[:, None])) / (
        1.0 + np.exp(-(energy[None, :] - onset[:, None]) / 0.035)
    )
    dots = (
        exciton_height[:, None] * _gaussian_ev(energy, e1, width)
        + 0.45 * exciton_height[:, None] * _gaussian_ev(energy, onset + 0.12, 1.5 * width)
        + continuum
    )

    plate_e = HC_EV_NM / PLATELET_PL_NM + 0.015  # small Stokes shift of platelets
    weights = _platelet_weights(layers)
    plates = np.zeros_like(dots)
    for k, e_k in enumerate(plate_e):
        w_k = weights[:, k][:, None]
        plates += w_k * (
            0.9 * np.exp(-0.5 * ((energy[None, :] - e_k) / 0.025) ** 2)
            + 1.0 / (1.0 + np.exp(-(energy[None, :] - e_k - 0.12) / 0.03))
        )
    return 0.35 * conc[:, None] * ((1.0 - f_pl)[:, None] * dots + f_pl[:, None] * plates)


def pl_spectrum(
    population: Mapping[str, ArrayLike],
    wavelengths_nm: ArrayLike = WAVELENGTHS_NM,
    absorbance_at_excitation: ArrayLike | None = None,
) -> NDArray[np.float64]:
    """PL spectrum (counts per nm) of the population, shape ``(n, w)``.

    Concentration enters through the light absorbed at the excitation wavelength.

    The integrated intensity is ``PL_COUNTS_PER_ABSORBED * plqy * (1 - 10**-A_exc)``, shared
    between dots and platelets by their fractions; each line is a Gaussian in energy
    normalised to unit area on the grid.
    """
    edge, dispersion, f_pl, plqy, _, layers, shift = _population_arrays(population)
    wl = np.asarray(wavelengths_nm, dtype=float)
    energy = HC_EV_NM / wl
    if absorbance_at_excitation is None:
        absorbance_at_excitation = absorption_spectrum(population, [EXCITATION_NM])[:, 0]
    absorbed = 1.0 - 10.0 ** (-np.asarray(absorbance_at_excitation, dtype=float))
    total = PL_COUNTS_PER_ABSORBED * plqy * absorbed

    dots = _gaussian_ev(energy, sizing_curve.pl_ev(edge) + shift, pl_fwhm_ev(edge, dispersion))
    weights = _platelet_weights(layers)
    plate_e = HC_EV_NM / PLATELET_PL_NM
    plates = weights @ np.exp(
        -0.5 * ((energy[None, :] - plate_e[:, None]) / (_PLATELET_FWHM_EV / _FWHM_PER_SIGMA)) ** 2
    )
    spacing = np.abs(np.gradient(wl))
    dots /= np.maximum((dots * spacing).sum(axis=1, keepdims=True), 1e-12)
    plates /= np.maximum((plates * spacing).sum(axis=1, keepdims=True), 1e-12)
    shape = (1.0 - f_pl)[:, None] * dots + f_pl[:, None] * plates
    return total[:, None] * shape


def add_noise(
    spectrum: ArrayLike,
    rng: np.random.Generator,
    relative: float = 0.0,
    absolute: float = 0.0,
    shot_gain: float = 0.0,
) -> NDArray[np.float64]:
    """Instrument noise: Gaussian with :math:`\\sigma^2 = a^2 + (r y)^2 + g |y|`.

    ``absolute`` is the read/dark noise floor, ``relative`` a multiplicative (lamp) noise and
    ``shot_gain`` the photon shot noise (counts per count).
    """
    y = np.asarray(spectrum, dtype=float)
    sigma = np.sqrt(absolute**2 + (relative * y) ** 2 + shot_gain * np.abs(y))
    return y + sigma * rng.standard_normal(y.shape)

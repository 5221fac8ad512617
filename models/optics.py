"""Optics of lead-halide perovskite nanocrystals (CsPbBr3, CsPbI3, FAPbBr3): sizing curves,
absorption and photoluminescence spectra.

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
``models/data/size_vs_pl.csv``); :func:`fit_sizing_curve` repeats the fit. Each material of
:data:`MATERIALS` has its curve from its own column (exciton Bohr diameters ~7 nm for CsPbBr3
and FAPbBr3, ~12 nm for CsPbI3, whose bulk limits come out at ~523, ~552 and ~713 nm).

Spectra
-------
Quantum-dot lines are Gaussian in energy. The PL full width combines, in quadrature, a homogeneous
width :math:`\\Gamma_h(L) = \\Gamma_0 + \\Gamma_2/L^2` (exciton-surface-phonon coupling grows as
the dot shrinks), the inhomogeneous width of the size distribution,
:math:`2.3548\\,|dE_\\mathrm{PL}/dL|\\,\\sigma_L`, and a size-independent disorder width
(shape and surface: what keeps weakly confined, green CsPbBr3 lines at ~18-20 nm).
Nanoplatelets emit at discrete energies set by their thickness in monolayers. Absorption holds
the first exciton and the continuum above it, scaled by concentration: cubes show no resolved
higher transition (the review, §3.1, attributes those to spheroidal dots). PL intensity is
``plqy`` times the light absorbed at the excitation wavelength, which is how a relative PLQY is
measured.

Hot spectra
-----------
A spectrum taken in situ is that of the hot reaction mixture, not of the quenched product at room
temperature (:func:`hot_population`): the gap of lead-halide perovskites widens on heating, so the
lines move to the blue by :data:`GAP_SHIFT_MEV_PER_K`; exciton-LO-phonon scattering broadens them
(:math:`\\Gamma_{LO}/(e^{E_{LO}/k T} - 1)`); and the PL is thermally quenched (an activated
non-radiative channel). All three are reversible: the quenched product shows none of them.

All functions are pure and vectorised: population arrays of shape ``(n,)`` give spectra of shape
``(n, n_wavelengths)``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from models.parameters import ParameterError

__all__ = [
    "EXCITATION_NM",
    "HC_EV_NM",
    "MATERIALS",
    "PLATELET_PL_NM",
    "PL_COUNTS_PER_ABSORBED",
    "WAVELENGTHS_NM",
    "Material",
    "SizingCurve",
    "SizingTableRow",
    "absorption_spectrum",
    "add_noise",
    "fit_sizing_curve",
    "get_material",
    "load_sizing_table",
    "pl_fwhm_ev",
    "pl_spectrum",
    "sizing_curve",
    "spectrometer_grid",
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

_GAMMA_H0_MEV = 70.0
_GAMMA_H2_MEV_NM2 = 600.0
_GAMMA_DISORDER_MEV = 40.0
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
    """Edge length <-> transition energies of perovskite cubes (see the module docstring).

    Parameters
    ----------
    e_inf_ev, a_ev_nm2, delta_nm
        :math:`E_\\infty`, :math:`A` and :math:`\\delta` of
        :math:`E_1(L) = E_\\infty + A / (L + \\delta)^2`.
    stokes_s0_ev, stokes_s2_ev_nm2
        :math:`S_0` and :math:`S_2` of the Stokes shift :math:`S(L) = S_0 + S_2/L^2`.
    knots
        ``(edge lengths, PL peaks)`` in nm, increasing: between the first and the last, the PL
        follows a monotone interpolation (PCHIP) of these points instead of the law, which then
        holds outside them, shifted to meet them (for a published column no confinement law
        follows within its ranges).
    """

    e_inf_ev: float
    a_ev_nm2: float
    delta_nm: float
    stokes_s0_ev: float = 0.012
    stokes_s2_ev_nm2: float = 0.9
    knots: tuple[tuple[float, ...], tuple[float, ...]] | None = None

    def stokes_ev(self, edge_nm: ArrayLike) -> NDArray[np.float64]:
        """Size-dependent Stokes shift :math:`S_0 + S_2/L^2`, eV."""
        return self.stokes_s0_ev + self.stokes_s2_ev_nm2 / np.asarray(edge_nm, dtype=float) ** 2

    def _confinement_ev(self, edge: NDArray[np.float64]) -> NDArray[np.float64]:
        return self.e_inf_ev + self.a_ev_nm2 / (edge + self.delta_nm) ** 2

    def _law_pl_ev(self, edge: NDArray[np.float64]) -> NDArray[np.float64]:
        return self._confinement_ev(edge) - self.stokes_ev(edge)

    def _confinement_dev(self, edge: NDArray[np.float64]) -> NDArray[np.float64]:
        return -2.0 * self.a_ev_nm2 / (edge + self.delta_nm) ** 3

    def _spline(self) -> tuple[Any, float, float, float, float]:
        """The PCHIP of the knots (PL energy against edge) and, beyond them, the offsets of the
        confinement law that continues them (its slope; the Stokes term, fitted on another
        material, would bend it back below ~2 nm)."""
        cached = self.__dict__.get("_spline_cache")
        if cached is None:
            from scipy.interpolate import PchipInterpolator

            assert self.knots is not None
            edges, pls = (np.asarray(k, dtype=float) for k in self.knots)
            spline = PchipInterpolator(edges, HC_EV_NM / pls, extrapolate=False)
            low, high = edges[0], edges[-1]
            cached = (
                spline,
                low,
                high,
                float(HC_EV_NM / pls[0] - self._confinement_ev(np.array(low))),
                float(HC_EV_NM / pls[-1] - self._confinement_ev(np.array(high))),
            )
            object.__setattr__(self, "_spline_cache", cached)  # a cache on a frozen dataclass
        return cached

    def pl_ev(self, edge_nm: ArrayLike) -> NDArray[np.float64]:
        """PL peak energy, eV."""
        edge = np.asarray(edge_nm, dtype=float)
        if self.knots is None:
            return self._law_pl_ev(edge)
        spline, low, high, below, above = self._spline()
        inside = np.clip(edge, low, high)
        return np.where(
            edge < low,
            self._confinement_ev(edge) + below,
            np.where(edge > high, self._confinement_ev(edge) + above, spline(inside)),
        )

    def exciton_ev(self, edge_nm: ArrayLike) -> NDArray[np.float64]:
        """First excitonic transition energy (absorption peak): PL plus Stokes shift, eV."""
        return self.pl_ev(edge_nm) + self.stokes_ev(edge_nm)

    def pl_nm(self, edge_nm: ArrayLike) -> NDArray[np.float64]:
        """PL peak wavelength, nm."""
        return HC_EV_NM / self.pl_ev(edge_nm)

    def abs_nm(self, edge_nm: ArrayLike) -> NDArray[np.float64]:
        """First excitonic absorption peak wavelength, nm."""
        return HC_EV_NM / self.exciton_ev(edge_nm)

    def dpl_ev_dedge(self, edge_nm: ArrayLike) -> NDArray[np.float64]:
        """:math:`dE_\\mathrm{PL}/dL`, eV/nm (negative: bigger dots emit lower energy)."""
        edge = np.asarray(edge_nm, dtype=float)
        if self.knots is None:
            return self._confinement_dev(edge) + 2.0 * self.stokes_s2_ev_nm2 / edge**3
        spline, low, high, _, _ = self._spline()
        inside = (edge >= low) & (edge <= high)
        return np.where(inside, spline(np.clip(edge, low, high), 1), self._confinement_dev(edge))

    def edge_from_abs_nm(self, abs_peak_nm: ArrayLike) -> NDArray[np.float64]:
        """Inverse sizing curve: edge length from the first absorption peak (NaN if bulk-like)."""
        return self._invert("exciton", HC_EV_NM / np.asarray(abs_peak_nm, dtype=float))

    def edge_from_pl_nm(self, pl_peak_nm: ArrayLike) -> NDArray[np.float64]:
        """Inverse of :meth:`pl_nm` on 1-100 nm (NaN outside that span)."""
        return self._invert("pl", HC_EV_NM / np.asarray(pl_peak_nm, dtype=float))

    def _invert(self, line: str, target: NDArray[np.float64]) -> NDArray[np.float64]:
        """The edge length (1-100 nm) at which the ``pl`` or ``exciton`` energy is ``target``:
        interpolation in a log-spaced table (exact to ~1e-9 nm after two Newton steps, on the
        PL curve)."""
        key = f"_table_{line}"
        table = self.__dict__.get(key)
        if table is None:
            edge = np.geomspace(1.0, 100.0, 4000)
            table = (edge, self.pl_ev(edge) if line == "pl" else self.exciton_ev(edge))
            object.__setattr__(self, key, table)  # a cache on a frozen dataclass
        table_edge, table_ev = table
        # the energy falls with edge length: interpolate on the reversed (rising) table
        edge = np.interp(target, table_ev[::-1], table_edge[::-1])
        if line == "pl":
            for _ in range(2):
                edge = edge - (self.pl_ev(edge) - target) / self.dpl_ev_dedge(edge)
        inside = (target <= table_ev[0]) & (target >= table_ev[-1])
        return np.where(inside, edge, np.nan)


def fit_sizing_curve(
    rows: list[SizingTableRow], interpolate: bool = False, smooth: bool = False
) -> SizingCurve:
    """Least-squares fit of :math:`(E_\\infty, A, \\delta)` to the rows' representative points.

    Residuals are taken in PL wavelength at each row's middle size against the middle of its
    PL range. ``interpolate``: the curve also passes through those points (see
    :class:`SizingCurve`'s ``knots``); ``smooth``: through the fitted law's own PL at the rows'
    sizes instead (smooth in size where a column jumps; the Stokes term, fitted on CsPbBr3,
    stays out of the law's continuation below them).
    """
    from scipy.optimize import least_squares

    size = np.array([r.size_nm for r in rows])
    pl = np.array([r.pl_nm for r in rows])

    def residuals(p: NDArray[np.float64]) -> NDArray[np.float64]:
        return SizingCurve(*p).pl_nm(size) - pl

    fit = least_squares(residuals, x0=[2.38, 6.0, 0.5])
    law = SizingCurve(*(float(v) for v in fit.x))
    if smooth:  # the law's PL, from the strongest confinement to beyond the table
        size = np.round(np.geomspace(2.5, 2.0 * size[-1], 12), 2)
        pl = np.round(law.pl_nm(size), 2)
    knots = (tuple(size.tolist()), tuple(pl.tolist())) if interpolate or smooth else None
    return SizingCurve(law.e_inf_ev, law.a_ev_nm2, law.delta_nm, knots=knots)


#: The calibrated curve: :func:`fit_sizing_curve` of the CsPbBr3 table (a test re-derives it).
sizing_curve = SizingCurve(e_inf_ev=2.383409, a_ev_nm2=6.432973, delta_nm=0.775320)


@dataclass(frozen=True)
class Material:
    """A lead-halide perovskite the twin makes: its sizing curve and its platelets' lines.

    Parameters
    ----------
    name
        ``CsPbBr3``, ``CsPbI3`` or ``FAPbBr3``.
    bohr_diameter_nm
        Exciton Bohr diameter: strong confinement below it (Ye et al. 2024).
    sizing
        Edge length <-> PL and absorption peaks of its cubes.
    platelet_pl_nm
        PL peaks of its nanoplatelets 1 to 6 monolayers thick.
    monolayer_nm
        Thickness of one monolayer (the pseudo-cubic lattice constant).
    """

    name: str
    bohr_diameter_nm: float
    sizing: SizingCurve
    platelet_pl_nm: tuple[float, ...]
    monolayer_nm: float


def _platelet_lines(e_inf_ev: float, scale: float) -> tuple[float, ...]:
    """Platelet lines of a material: CsPbBr3's confinement energies (above its bulk gap),
    times ``scale``, above the material's bulk gap ``e_inf_ev``."""
    confinement = HC_EV_NM / PLATELET_PL_NM - sizing_curve.e_inf_ev
    return tuple(float(v) for v in HC_EV_NM / (e_inf_ev + scale * confinement))


_CSPBI3 = SizingCurve(  # fit_sizing_curve(load_sizing_table("CsPbI3"), interpolate=True)
    e_inf_ev=1.753444,
    a_ev_nm2=21.35171,
    delta_nm=4.321124,
    knots=((4.0, 5.3, 6.1, 7.5, 10.8), (623.0, 636.0, 648.0, 663.0, 677.5)),
)
# the law alone, not its knots: FAPbBr3's column jumps (491 nm at 4.0 nm, 500 at 5.3, 515 at 6.1),
# and a curve through it is flat then steep, so line widths jumped to 36 nm at 505-510 nm; the
# law stays within 5 nm of every row
_FAPBBR3 = SizingCurve(  # fit_sizing_curve(load_sizing_table("FAPbBr3"), smooth=True)
    e_inf_ev=2.260075,
    a_ev_nm2=19.97979,
    delta_nm=3.832654,
    knots=(
        (2.5, 3.04, 3.7, 4.5, 5.48, 6.66, 8.11, 9.86, 12.0, 14.59, 17.75, 21.6),
        (
            476.44,
            481.74,
            489.19,
            497.65,
            506.37,
            514.62,
            522.15,
            528.63,
            534.06,
            538.43,
            541.86,
            544.5,
        ),
    ),
)

MATERIALS: dict[str, Material] = {
    "CsPbBr3": Material("CsPbBr3", 7.0, sizing_curve, tuple(PLATELET_PL_NM.tolist()), 0.59),
    # 2.5-2.6 nm thick (4 monolayers) platelets emit at 609-634 nm: CsPbBr3's platelet
    # confinement scaled by 0.970 puts 4 ML at the middle, 621.5 nm
    "CsPbI3": Material("CsPbI3", 12.0, _CSPBI3, _platelet_lines(_CSPBI3.e_inf_ev, 0.970), 0.63),
    # no FAPbBr3 platelet line in the review: CsPbBr3's confinement over FAPbBr3's gap
    "FAPbBr3": Material("FAPbBr3", 7.0, _FAPBBR3, _platelet_lines(_FAPBBR3.e_inf_ev, 1.0), 0.60),
}
"""The materials of the twin. CsPbI3's published size -> PL column is not concave in size, which
no confinement law follows within the rows' ranges, so its curve interpolates the rows inside the
table (``knots``) and follows the fitted law's slope outside it. FAPbBr3's column jumps by 15 nm
between 5.3 and 6.1 nm: its curve follows the fitted law, smooth and within 5 nm of every row."""


def spectrometer_grid(material: str = "CsPbBr3") -> NDArray[np.float64]:
    """A spectrometer grid that shows ``material``: :data:`WAVELENGTHS_NM`, or for a red
    material 350 nm to 90 nm beyond its bulk gap (800 nm for CsPbI3), in 0.5 nm steps."""
    red_end = math.ceil((HC_EV_NM / get_material(material).sizing.e_inf_ev + 90.0) / 50.0) * 50.0
    if red_end <= WAVELENGTHS_NM[-1]:
        return WAVELENGTHS_NM
    return np.arange(WAVELENGTHS_NM[0], red_end + 0.25, 0.5)


def get_material(name: str) -> Material:
    """The material called ``name``; :class:`~models.parameters.ParameterError` naming the
    allowed ones otherwise."""
    try:
        return MATERIALS[name]
    except KeyError:
        allowed = ", ".join(MATERIALS)
        raise ParameterError("material", f"material {name!r} is not one of {{{allowed}}}") from None


def pl_fwhm_ev(
    edge_nm: ArrayLike,
    size_dispersion: ArrayLike,
    material: str = "CsPbBr3",
    thermal_broadening_ev: ArrayLike = 0.0,
) -> NDArray[np.float64]:
    """Ensemble PL FWHM (eV): homogeneous, size-inhomogeneous and disorder widths in
    quadrature; a hot sample's extra phonon broadening (:func:`hot_population`) adds to the
    homogeneous one."""
    edge = np.asarray(edge_nm, dtype=float)
    homogeneous = 1e-3 * (_GAMMA_H0_MEV + _GAMMA_H2_MEV_NM2 / edge**2)
    homogeneous = homogeneous + np.asarray(thermal_broadening_ev, dtype=float)
    sigma_edge = np.asarray(size_dispersion, dtype=float) * edge
    curve = get_material(material).sizing
    inhomogeneous = _FWHM_PER_SIGMA * np.abs(curve.dpl_ev_dedge(edge)) * sigma_edge
    return np.sqrt(homogeneous**2 + inhomogeneous**2 + (1e-3 * _GAMMA_DISORDER_MEV) ** 2)


ROOM_C = 25.0
"""The temperature the sizing curves and line widths describe (a quenched product)."""
GAP_SHIFT_MEV_PER_K = 0.3
"""dE/dT of the lines, meV/K: positive for lead-halide perovskites (the gap widens on heating),
~0.3 meV/K for CsPbBr3 nanocrystals (Diroll et al., Adv. Funct. Mater. 2017, 27, 1606750);
taken for every material (an assumption for FAPbBr3 and CsPbI3)."""
LO_PHONON_MEV = 17.0
"""Energy of the LO phonon that broadens the exciton line, meV (CsPbBr3: 16-19 meV)."""
LO_COUPLING_MEV = 45.0
"""Exciton-LO-phonon coupling :math:`\\Gamma_{LO}`, meV (CsPbBr3 nanocrystals: 40-60 meV)."""
_QUENCH_ACTIVATION_EV = 0.3
_QUENCH_RATIO = 1.0e4
"""Thermal PL quenching, :math:`1/(1 + A e^{-E_a/kT})` relative to room temperature: an
assumption set so that the PL of the hot mixture at 150-180 °C is ~4-7x weaker than the
product's, as the reversible loss of CsPbBr3 nanocrystal PL on heating is reported (Diroll et
al. 2017)."""
_K_B_EV = 8.617333e-5


def hot_population(
    population: Mapping[str, ArrayLike], temperature_c: float
) -> dict[str, ArrayLike]:
    """``population`` as a spectrometer sees it in the mixture at ``temperature_c``: lines
    shifted to the blue by :data:`GAP_SHIFT_MEV_PER_K`, broadened by LO phonons, PL weaker by
    thermal quenching (all relative to :data:`ROOM_C`, where the population is described)."""
    t_k, room_k = temperature_c + 273.15, ROOM_C + 273.15

    def phonons(kelvin: float) -> float:
        return 1.0 / math.expm1(LO_PHONON_MEV * 1e-3 / (_K_B_EV * kelvin))

    def quenching(kelvin: float) -> float:
        return 1.0 / (1.0 + _QUENCH_RATIO * math.exp(-_QUENCH_ACTIVATION_EV / (_K_B_EV * kelvin)))

    hot = dict(population)
    hot["thermal_shift_ev"] = GAP_SHIFT_MEV_PER_K * 1e-3 * (temperature_c - ROOM_C)
    extra = LO_COUPLING_MEV * 1e-3 * (phonons(t_k) - phonons(room_k))
    hot["thermal_broadening_ev"] = max(extra, -0.5 * _GAMMA_H0_MEV * 1e-3)  # colder: narrower
    hot["plqy"] = np.asarray(population.get("plqy", 0.5)) * quenching(t_k) / quenching(room_k)
    return hot


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
        get("thermal_broadening_ev", 0.0),
        get("thermal_shift_ev", 0.0),
    )


def absorption_spectrum(
    population: Mapping[str, ArrayLike],
    wavelengths_nm: ArrayLike = WAVELENGTHS_NM,
    material: str = "CsPbBr3",
) -> NDArray[np.float64]:
    """Absorbance (OD, 1 cm) of the population on the wavelength grid, shape ``(n, w)``.

    Quantum dots: a first-exciton Gaussian (relatively sharper for smaller dots) and a continuum
    that sets in above the exciton and rises towards the UV.
    Platelets: narrow excitonic lines at their emission energies plus a continuum.
    ``concentration`` 1 gives an absorbance of about 0.35 at 400 nm.
    """
    edge, dispersion, f_pl, _, conc, layers, shift, hot, warm = _population_arrays(population)
    energy = HC_EV_NM / np.asarray(wavelengths_nm, dtype=float)
    mat = get_material(material)
    confinement = np.clip(mat.sizing.exciton_ev(edge) - mat.sizing.e_inf_ev, 0.0, None)
    e1 = mat.sizing.exciton_ev(edge) + shift + warm
    width = 1.15 * pl_fwhm_ev(edge, dispersion, material, hot)
    exciton_height = 0.25 + 0.9 * confinement
    onset = e1 + 0.06 + 0.5 * confinement
    continuum = (1.0 + 0.5 * (energy[None, :] - onset[:, None])) / (
        1.0 + np.exp(-(energy[None, :] - onset[:, None]) / 0.035)
    )
    dots = exciton_height[:, None] * _gaussian_ev(energy, e1, width) + continuum

    plate_e = HC_EV_NM / np.array(mat.platelet_pl_nm) + 0.015  # small Stokes shift
    weights = _platelet_weights(layers)
    plates = np.zeros_like(dots)
    for k, e_k in enumerate(plate_e):
        w_k = weights[:, k][:, None]
        e_k = e_k + warm[:, None]
        plates += w_k * (
            0.9
            * np.exp(
                -0.5 * ((energy[None, :] - e_k) / (0.025 + hot[:, None] / _FWHM_PER_SIGMA)) ** 2
            )
            + 1.0 / (1.0 + np.exp(-(energy[None, :] - e_k - 0.12) / 0.03))
        )
    return 0.35 * conc[:, None] * ((1.0 - f_pl)[:, None] * dots + f_pl[:, None] * plates)


def pl_spectrum(
    population: Mapping[str, ArrayLike],
    wavelengths_nm: ArrayLike = WAVELENGTHS_NM,
    absorbance_at_excitation: ArrayLike | None = None,
    material: str = "CsPbBr3",
) -> NDArray[np.float64]:
    """PL spectrum (counts per nm) of the population, shape ``(n, w)``.

    Concentration enters through the light absorbed at the excitation wavelength.

    The integrated intensity is ``PL_COUNTS_PER_ABSORBED * plqy * (1 - 10**-A_exc)``, shared
    between dots and platelets by their fractions; each line is a Gaussian in energy
    normalised to unit area on the grid.
    """
    edge, dispersion, f_pl, plqy, _, layers, shift, hot, warm = _population_arrays(population)
    wl = np.asarray(wavelengths_nm, dtype=float)
    energy = HC_EV_NM / wl
    if absorbance_at_excitation is None:
        absorbance_at_excitation = absorption_spectrum(population, [EXCITATION_NM], material)[:, 0]
    absorbed = 1.0 - 10.0 ** (-np.asarray(absorbance_at_excitation, dtype=float))
    total = PL_COUNTS_PER_ABSORBED * plqy * absorbed

    mat = get_material(material)
    dots = _gaussian_ev(
        energy, mat.sizing.pl_ev(edge) + shift + warm, pl_fwhm_ev(edge, dispersion, material, hot)
    )
    weights = _platelet_weights(layers)
    plate_e = HC_EV_NM / np.array(mat.platelet_pl_nm)
    plate_sigma = (_PLATELET_FWHM_EV + hot) / _FWHM_PER_SIGMA  # (n,)
    plates = np.einsum(
        "nk,nkw->nw",
        weights,
        np.exp(
            -0.5
            * (
                (energy[None, None, :] - plate_e[None, :, None] - warm[:, None, None])
                / plate_sigma[:, None, None]
            )
            ** 2
        ),
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

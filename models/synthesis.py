"""Outcome models: synthesis conditions -> nanocrystal population.

Every outcome model has the signature

``outcome(conditions: Mapping[str, float | str], rng: numpy.random.Generator | None) ->
Mapping[str, float]``

and returns the population keys in :data:`POPULATION_KEYS` (plus, optionally,
``platelet_layers``: mean platelet thickness in monolayers, and ``energy_shift_ev``: a shift of
the dots' transitions from the sizing curve). The built-in models also take ``twin``
(:class:`~models.twin.TwinParameters`), the free parameters a lab calibrates. They are
vectorised: condition values may be arrays of equal length (``ligand`` an array of names)
and the results are then arrays. ``rng=None`` gives the noiseless mean outcome; a generator
adds run-to-run variability of the magnitude seen between repeated syntheses.

Hot injection (Br-/Pb equilibrium, Dong et al., Nano Lett. 2018)
------------------------------------------------------------------
Excess bromide ``x = br_pb_ratio - 2`` (ZnBr2 on top of PbBr2) binds to the surface with a
Langmuir coverage :math:`\\theta = Kx / (1 + Kx)`, exothermically, so
:math:`K(T) = K_{140} \\exp[\\tfrac{\\Delta H}{R}(1/T - 1/T_{140})]` falls as T rises. Bound
bromide lowers the surface energy and with it the equilibrium size:

.. math::  L_{eq} = L_{min} + (L_{free}(T) - L_{min})(1 - \\theta), \\quad
           L_{free}(T) = L_{min} + \\Delta L \\, e^{(T - T_{ref}) / T_s}

where :math:`L_{free}` is the bulk-like size reached without extra bromide (4-15 nm over
140-200 °C for oleic acid/oleylamine, Protesescu 2015). The size dispersion shrinks with the
same coverage (more Br-, more uniform). How the dots grow
-----------------
A burst of nuclei (:math:`L_0` = 2.5 nm) at injection, then three stages in time:

- *growth* from the supersaturated solution relaxes the edge to :math:`L_{eq}` with a time
  constant :math:`\\tau = \\tau_{ref} e^{E_a/R (1/T - 1/T_{ref})} / (1 + a x)`: a few tenths of
  a second with excess bromide (saturated within ~1 s), ~6 s without (~25 s), ~110 s with
  oleylphosphonic acid at 100 °C (5 -> 9.2 nm over 45-600 s). The size distribution is broad
  while the dots grow and focuses as growth ends;
- *Ostwald ripening* once the monomer is spent: large dots grow at the expense of small ones,
  the mean edge creeps up (at most :data:`RIPENING_GAIN`) and the distribution defocuses towards
  the self-similar LSW width, on a clock :data:`RIPENING_CLOCK` times the growth's (~30 min at
  170 °C). Bound bromide (:math:`(1-\\theta)^2`) and phosphonic acid hold the surface, so
  equilibrium dots keep their size and colour (Dong et al.: the peak stays put);
- the *yield* (concentration) rises on a slower clock than the size, so PL intensity keeps
  growing after the size has settled.

Shape
-----
Below a temperature :math:`T_p` the product turns into nanoplatelets (logistic in T), thinner the
colder. :math:`T_p` is the ligand's (more oleic acid: higher, Almeida), raised by more
oleylammonium (Almeida), lowered by excess halide (a doubling of Br/Pb lowers it by
:data:`PLATELET_BR_C_PER_DOUBLING`: bromide-rich syntheses give small isotropic dots where
stoichiometric ones give platelets, Dong et al. against Bekenstein et al.), and shifted by the
lab's ``TwinParameters.platelet_shift_c``: the reports the review cites put it ~40 °C apart
(Bekenstein: cubes to platelets from 150 to 130 °C; Otero-Martinez: platelets only below
~100 °C), and the review calls this selectivity open.

Run-to-run scatter
------------------
Each route scatters by its own :class:`RouteScatter`: the size (which dominates the colour
scatter of strongly confined, blue dots, where the sizing curve is steep) and the line energy
itself (surface and composition from batch to batch, which dominates for weakly confined, green
ones). Flow mixes reproducibly (the review, §2.2.2) and scatters least; LARP, mixed by hand in a
vial at room temperature, most.

Materials (``material``: :data:`MATERIAL_CHEMISTRY`)
-----------------------------------------------------
CsPbI3 follows the same free-growth law (CsPbX3: 4-15 nm over 140-200 °C by injection
temperature, Protesescu 2015), with iodide binding the surface less than bromide; its black
perovskite phase turns into the non-emissive yellow phase at room temperature
(:func:`yellow_phase_fraction`), faster for larger crystals and slower with strongly binding
ligands, so a sample measured late has lost PL. The review states the instability but gives no
rate: the time constant (two hours at 5 nm) is this twin's assumption, to be calibrated.
FAPbBr3 grows from 3 nm at 50 °C to 14 nm at 200 °C (Otero-Martinez, reviewed by Ye et al.
2024), so it gives platelets only below ~60 °C. Their sizing curves are in
:data:`models.optics.MATERIALS`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from models.twin import TwinParameters

__all__ = [
    "L_MIN_NM",
    "MATERIAL_CHEMISTRY",
    "PLATELET_BR_C_PER_DOUBLING",
    "POPULATION_KEYS",
    "RIPENING_CLOCK",
    "RIPENING_GAIN",
    "ROUTE_SCATTER",
    "LigandChemistry",
    "MaterialChemistry",
    "RouteScatter",
    "flow_outcome",
    "hot_injection_outcome",
    "larp_outcome",
    "yellow_phase_fraction",
]

POPULATION_KEYS: tuple[str, ...] = (
    "edge_length_nm",
    "size_dispersion",
    "platelet_fraction",
    "plqy",
    "concentration",
)
"""Keys every outcome model returns (``platelet_layers`` is optional)."""

L_MIN_NM = 3.0
"""Smallest stable cube edge length (strong-confinement limit, ~460 nm emission)."""

_L_NUCLEUS_NM = 2.5
_DEFAULT_TWIN = TwinParameters()
_R = 8.314462618  # J / (mol K)
_K0 = 273.15


@dataclass(frozen=True)
class LigandChemistry:
    """How a ligand system shapes the hot-injection outcome (see the module docstring)."""

    delta_size_nm: float  # L_free - L_min at reference_c
    reference_c: float
    size_temperature_scale_c: float  # T_s
    br_affinity: float  # K at 140 °C, per unit excess Br/Pb
    platelet_below_c: float  # midpoint of the cube -> platelet transition
    growth_tau_s: float  # tau at reference_c without excess Br
    growth_activation_j: float
    br_growth_acceleration: float  # a
    plqy_max: float
    plqy_size_sensitivity: float  # 1: Naghadeh's size dependence in full; 0: none
    black_phase_stability: float  # how much longer it keeps CsPbI3 black than oa_olam does
    amount_size_sensitivity: float  # k: free growth times exp(-k (amount - 1))
    amount_platelet_shift_c: float  # platelet temperature raised by this times ln(amount)
    ripening: float = 1.0  # 0: the ligand holds the surface, no Ostwald ripening
    line_shift_ev: float = 0.0  # its dots' lines, above the sizing curve


LIGAND_CHEMISTRY: dict[str, LigandChemistry] = {
    # Almeida: 16.4 -> 4 nm by the oleylammonium amount and temperature; more -> platelets
    "oa_olam": LigandChemistry(
        1.6, 140.0, 29.8, 0.69, 115.0, 6.0, 40e3, 2.0, 0.90, 1.0, 1.0, 0.15, 15.0
    ),
    "oa_olam_acid_rich": LigandChemistry(
        1.4, 140.0, 32.0, 0.69, 140.0, 5.0, 40e3, 2.0, 0.80, 1.0, 0.7, 0.15, 15.0
    ),
    # phosphonic acid holds the surface itself, so excess bromide barely matters: 5 -> 9.2 nm
    # over 45-600 s at 100 °C whatever the Br/Pb; PLQY > 80 % over 5-9 nm
    "olpa": LigandChemistry(
        6.6, 100.0, 120.0, 0.002, -50.0, 110.0, 60e3, 0.0, 0.95, 0.3, 5.0, 0.1, 0.0, ripening=0.0
    ),
    # the ligand brings its own bromide: 17.5 -> 3.8 nm by its amount at fixed temperature,
    # PL 510 -> 465 nm: its dots emit ~55 meV above the size -> PL table's
    "alkylammonium_br": LigandChemistry(
        3.5,
        140.0,
        45.0,
        2.0,
        105.0,
        4.0,
        40e3,
        3.0,
        0.93,
        0.8,
        3.0,
        1.0,
        15.0,
        ripening=0.3,  # its own bromide holds the surface
        line_shift_ev=0.055,
    ),
}


@dataclass(frozen=True)
class MaterialChemistry:
    """How the perovskite being made changes the hot-injection outcome of a ligand system.

    ``size_delta_nm``, ``size_reference_c`` and ``size_temperature_scale_c`` replace the
    ligand's free-growth size law for oleic acid/oleylamine, other ligands scaled alike; NaN
    keeps it (CsPbX3: 4-15 nm over 140-200 °C, Protesescu 2015).
    """

    size_delta_nm: float
    size_reference_c: float
    size_temperature_scale_c: float
    halide_affinity: float  # times the ligand's bromide affinity
    platelet_shift_c: float  # added to the ligand's platelet temperature
    plqy_scale: float
    yellow_tau_s: float  # black -> yellow phase at room temperature, 5 nm, oa_olam (inf: never)


_NAN, _INF = float("nan"), float("inf")
MATERIAL_CHEMISTRY: dict[str, MaterialChemistry] = {
    "CsPbBr3": MaterialChemistry(_NAN, _NAN, _NAN, 1.0, 0.0, 1.0, _INF),
    # iodide binds the surface less than bromide; the black phase turns yellow in hours (the
    # two hours at 5 nm are an assumption: the review gives no rate)
    "CsPbI3": MaterialChemistry(_NAN, _NAN, _NAN, 0.7, 0.0, 0.9, 7200.0),
    # FAPbBr3: 14 -> 3 nm from 200 -> 50 °C (Otero-Martinez), so platelets only below ~60 °C
    "FAPbBr3": MaterialChemistry(11.0, 200.0, 40.0, 1.0, -55.0, 0.95, _INF),
}
"""Per material (the keys of :data:`models.optics.MATERIALS`)."""

_ADSORPTION_ENTHALPY_J = -50e3  # exothermic Br- binding: less coverage when hot
_DISPERSION_FREE = 0.14
_DISPERSION_MIN = 0.065
_DISPERSION_LSW = 0.20  # the self-similar width ripening defocuses towards

RIPENING_GAIN = 0.12
"""How much Ostwald ripening can add to the mean edge length once it has run its course."""
RIPENING_CLOCK = 600.0
"""Ostwald ripening's time constant, in units of the growth's without excess bromide (~30 min at
170 °C for oleic acid/oleylamine): slow enough that the size seen at ~25 s has settled to ~2 %."""
PLATELET_BR_C_PER_DOUBLING = 3.0
"""°C by which the cube/platelet boundary falls per doubling of Br/Pb (0 at Br/Pb 12)."""


@dataclass(frozen=True)
class RouteScatter:
    """Run-to-run scatter of one route: relative size noise (``size``), relative
    size-dispersion noise (``dispersion``) and line-energy noise (``line_ev``), all standard
    deviations at ``TwinParameters.variability`` 1."""

    size: float
    dispersion: float
    line_ev: float


ROUTE_SCATTER: dict[str, RouteScatter] = {
    "hot_injection": RouteScatter(0.02, 0.08, 0.003),
    "flow": RouteScatter(0.008, 0.04, 0.001),
    "larp": RouteScatter(0.03, 0.08, 0.005),
}
"""Per route (see the module docstring): flow scatters least, LARP most."""


def _as_array(value: ArrayLike) -> NDArray[np.float64]:
    return np.asarray(value, dtype=float)


def _per_sample(what: str, names: ArrayLike, table: Mapping[str, Any]) -> dict[str, NDArray]:
    """The numeric fields of ``table[name]`` for each of ``names``, as arrays shaped like it
    (``what`` names the condition in the error for an unknown name)."""
    names = np.asarray(names)
    unknown = set(np.unique(names).tolist()) - set(table)
    if unknown:
        allowed = ", ".join(table)
        raise ValueError(f"{what} {sorted(unknown)[0]!r} is not one of {{{allowed}}}")
    uniq, inverse = np.unique(names, return_inverse=True)
    fields = tuple(type(next(iter(table.values()))).__dataclass_fields__)
    rows = np.array([[getattr(table[str(u)], f) for f in fields] for u in uniq], dtype=float)
    values = rows[inverse.reshape(names.shape)]
    return {f: values[..., i] for i, f in enumerate(fields)}


def _ligand_table(ligand: ArrayLike) -> dict[str, NDArray[np.float64]]:
    """Per-sample ligand parameters as arrays shaped like ``ligand``."""
    return _per_sample("ligand", ligand, LIGAND_CHEMISTRY)


def _material_table(material: ArrayLike, shape: tuple[int, ...]) -> dict[str, NDArray]:
    """Per-sample material parameters, broadcast to ``shape``."""
    return _per_sample("material", np.broadcast_to(np.asarray(material), shape), MATERIAL_CHEMISTRY)


def yellow_phase_fraction(
    edge_nm: ArrayLike, ligand: ArrayLike, age_s: ArrayLike, material: ArrayLike = "CsPbI3"
) -> NDArray[np.float64]:
    """Share of the dots turned to the non-emissive yellow phase ``age_s`` after synthesis.

    Only CsPbI3's black perovskite phase degrades at room temperature: the yellow share is
    ``1 - exp(-age / tau)`` with ``tau = tau_0 * f_ligand * (5 nm / L)**2`` (faster for larger
    crystals, whose surface energy no longer holds the strained black phase; slower with
    strongly binding ligands; Ye et al. 2024). ``tau_0`` is two hours for oleic
    acid/oleylamine.
    """
    edge = np.asarray(edge_nm, dtype=float)
    shape = np.broadcast(edge, np.asarray(age_s, dtype=float), np.asarray(ligand)).shape
    tau0 = _material_table(material, shape)["yellow_tau_s"]
    stability = _ligand_table(np.broadcast_to(np.asarray(ligand), shape))["black_phase_stability"]
    return _yellow_share(edge, tau0, stability, age_s)


def _yellow_share(
    edge: NDArray[np.float64], tau0: ArrayLike, stability: ArrayLike, age_s: ArrayLike
) -> NDArray[np.float64]:
    tau = np.asarray(tau0) * stability * (5.0 / np.clip(edge, 1.0, None)) ** 2
    return 1.0 - np.exp(-np.asarray(age_s, dtype=float) / tau)


def _arrhenius(t_c: NDArray[np.float64], ref_c: ArrayLike, energy_j: ArrayLike) -> NDArray:
    """:math:`\\exp[E/R\\,(1/T - 1/T_{ref})]` with temperatures in °C."""
    return np.exp(np.asarray(energy_j) / _R * (1.0 / (t_c + _K0) - 1.0 / (np.asarray(ref_c) + _K0)))


def _logistic(z: ArrayLike) -> NDArray[np.float64]:
    return 1.0 / (1.0 + np.exp(-np.asarray(z, dtype=float)))


def _logit(p: NDArray[np.float64]) -> NDArray[np.float64]:
    p = np.clip(p, 1e-12, 1.0 - 1e-12)
    return np.log(p / (1.0 - p))


_LARGE_PLQY_FLOOR = 0.65


def _size_plqy(edge_nm: NDArray[np.float64]) -> NDArray[np.float64]:
    """Size factor of the PLQY: peaks near 5.7 nm (Naghadeh: 9.3/5.7/3.1 nm -> 54/91/76 %) and
    levels off at :data:`_LARGE_PLQY_FLOOR` for weakly confined crystals (50-90 % is typical
    of CsPbBr3 nanocrystals above ~9 nm; Naghadeh's 9.3 nm sample sits at the low end)."""
    log_ratio = np.log(edge_nm / 5.7)
    small = np.exp(-0.5 * (log_ratio / 0.985) ** 2)
    large = _LARGE_PLQY_FLOOR + (1.0 - _LARGE_PLQY_FLOOR) * np.exp(-0.5 * (log_ratio / 0.18) ** 2)
    return np.where(log_ratio < 0, small, large)


def _hot_injection_core(
    br_pb_ratio: NDArray[np.float64],
    temperature_c: NDArray[np.float64],
    ligand: ArrayLike,
    time_s: NDArray[np.float64],
    rng: np.random.Generator | None,
    extra_dispersion: ArrayLike = 0.0,
    twin: TwinParameters = _DEFAULT_TWIN,
    material: ArrayLike = "CsPbBr3",
    age_s: ArrayLike = 0.0,
    ligand_amount: ArrayLike = 1.0,
    scatter: RouteScatter = ROUTE_SCATTER["hot_injection"],
    platelet_layer_shift: ArrayLike = 0.0,
) -> dict[str, NDArray[np.float64]]:
    lig = _ligand_table(ligand)
    amount = np.asarray(ligand_amount, dtype=float)
    mat = _material_table(material, np.broadcast(temperature_c, lig["delta_size_nm"]).shape)
    excess_br = np.clip(br_pb_ratio - 2.0, 0.0, None)
    k_ads = (
        twin.br_affinity_scale
        * lig["br_affinity"]
        * mat["halide_affinity"]
        * _arrhenius(temperature_c, 140.0, -_ADSORPTION_ENTHALPY_J)
    )
    coverage = k_ads * excess_br / (1.0 + k_ads * excess_br)

    own = np.isfinite(mat["size_delta_nm"])  # its own size law, each ligand scaled alike
    ligand_share = lig["delta_size_nm"] / LIGAND_CHEMISTRY["oa_olam"].delta_size_nm
    delta = np.where(own, mat["size_delta_nm"] * ligand_share, lig["delta_size_nm"])
    reference = np.where(own, mat["size_reference_c"], lig["reference_c"])
    scale = np.where(own, mat["size_temperature_scale_c"], lig["size_temperature_scale_c"])
    # more capping ligand, less free growth (exp(-k (amount - 1)): 1 is the standard load)
    delta = delta * np.exp(-lig["amount_size_sensitivity"] * (amount - 1.0))
    l_free = L_MIN_NM + twin.size_scale * delta * np.exp((temperature_c - reference) / scale)
    l_eq = L_MIN_NM + (l_free - L_MIN_NM) * (1.0 - coverage)

    tau_free = lig["growth_tau_s"] * _arrhenius(
        temperature_c, lig["reference_c"], lig["growth_activation_j"]
    )
    tau = tau_free / (1.0 + lig["br_growth_acceleration"] * excess_br)
    progress = 1.0 - np.exp(-time_s / tau)
    ripened = (
        lig["ripening"]
        * (1.0 - coverage) ** 2
        * (1.0 - np.exp(-time_s / (RIPENING_CLOCK * tau_free)))
    )
    # yield grows without the bromide speed-up: intensity keeps rising after size settles
    tau_yield = 4.0 * tau_free
    concentration = (1.0 - np.exp(-time_s / tau_yield)) * (
        0.6 + 0.4 * _logistic((temperature_c - 120.0) / 20.0)
    )

    focused = (
        _DISPERSION_MIN
        + (_DISPERSION_FREE - _DISPERSION_MIN) * (1.0 - coverage)
        + 0.06 * (1.0 - progress)  # still growing: defocused
    )
    dispersion = (
        focused
        + 0.5 * (_DISPERSION_LSW - focused) * ripened  # ripening defocuses
        + np.asarray(extra_dispersion, dtype=float)
    ) * twin.dispersion_scale
    platelet_below_c = (
        lig["platelet_below_c"]
        + mat["platelet_shift_c"]
        + lig["amount_platelet_shift_c"] * np.log(amount)
        - PLATELET_BR_C_PER_DOUBLING * np.log2(np.clip(br_pb_ratio, 2.0, None) / 12.0)
        + twin.platelet_shift_c
    )
    platelet_fraction = _logistic((platelet_below_c - temperature_c) / 7.0)
    platelet_layers = np.clip(
        2.0 + (temperature_c - 60.0) / 25.0 + np.asarray(platelet_layer_shift), 1.5, 6.0
    )

    shape = np.broadcast(l_eq, time_s).shape
    line_shift = np.broadcast_to(twin.sizing_offset_ev + lig["line_shift_ev"], shape)
    if rng is not None:
        v = twin.variability
        l_eq = l_eq * np.exp(scatter.size * v * rng.standard_normal(shape))
        dispersion = dispersion * np.exp(scatter.dispersion * v * rng.standard_normal(shape))
        platelet_fraction = _logistic(_logit(platelet_fraction) + 0.3 * rng.standard_normal(shape))
        concentration = concentration * np.exp(0.05 * rng.standard_normal(shape))
        line_shift = line_shift + scatter.line_ev * v * rng.standard_normal(shape)

    grown = l_eq - (l_eq - _L_NUCLEUS_NM) * (1.0 - progress)
    edge = grown * (1.0 + RIPENING_GAIN * ripened)
    hot_quench = 1.0 - 0.2 * _logistic((temperature_c - 195.0) / 8.0)  # defects when too hot
    size_factor = 1.0 - lig["plqy_size_sensitivity"] * (1.0 - _size_plqy(edge))
    plqy = lig["plqy_max"] * size_factor * (1.0 - 0.55 * platelet_fraction) * hot_quench
    plqy = plqy * mat["plqy_scale"]
    yellow = _yellow_share(edge, mat["yellow_tau_s"], lig["black_phase_stability"], age_s)
    plqy = plqy * (1.0 - yellow)  # CsPbI3's yellow phase does not emit
    if rng is not None:
        plqy = plqy * np.exp(0.04 * rng.standard_normal(np.shape(plqy)))
    return {
        "edge_length_nm": edge,
        "size_dispersion": np.clip(dispersion, 0.03, 0.5),
        "platelet_fraction": np.clip(platelet_fraction, 0.0, 1.0),
        "plqy": np.clip(plqy, 0.0, 1.0),
        "concentration": np.clip(concentration, 0.0, None),
        "platelet_layers": platelet_layers,
        "energy_shift_ev": line_shift,
    }


def _scalars_if_scalar(
    result: dict[str, NDArray[np.float64]], conditions: Mapping[str, object]
) -> dict:
    if all(np.ndim(v) == 0 for v in conditions.values()):
        return {k: float(v) for k, v in result.items()}
    return result


def hot_injection_outcome(
    conditions: Mapping[str, ArrayLike],
    rng: np.random.Generator | None = None,
    twin: TwinParameters = _DEFAULT_TWIN,
) -> dict[str, float] | dict[str, NDArray[np.float64]]:
    """Population from hot injection (``br_pb_ratio, temperature_c, ligand, time_s``).

    Optional: ``material`` (``CsPbBr3`` by default, ``CsPbI3``, ``FAPbBr3``; for CsPbI3
    ``br_pb_ratio`` is the iodide/Pb ratio), ``ligand_amount`` (1 by default: the lab's
    standard ligand load; more caps growth, smaller dots) and ``age_s``, the time from synthesis to
    measurement (CsPbI3's yellow phase, :func:`yellow_phase_fraction`). See the module
    docstring for the mechanism; ranges are in :data:`models.parameters.ROUTES`.
    """
    result = _hot_injection_core(
        _as_array(conditions["br_pb_ratio"]),
        _as_array(conditions["temperature_c"]),
        conditions["ligand"],
        _as_array(conditions["time_s"]),
        rng,
        twin=twin,
        material=conditions.get("material", "CsPbBr3"),
        age_s=_as_array(conditions.get("age_s", 0.0)),
        ligand_amount=_as_array(conditions.get("ligand_amount", 1.0)),
    )
    return _scalars_if_scalar(result, conditions)


def flow_outcome(
    conditions: Mapping[str, ArrayLike],
    rng: np.random.Generator | None = None,
    twin: TwinParameters = _DEFAULT_TWIN,
) -> dict[str, float] | dict[str, NDArray[np.float64]]:
    """Population from a two-stream flow reactor.

    The hot-injection chemistry runs for ``residence_time_s`` with two changes from mixing the
    Cs-oleate and PbBr2 streams at ``flow_ratio`` (Cs/Pb stream rates): the Pb-Br stream is
    diluted, so the free-bromide excess that sets the size is scaled by ``2 / (1 + ratio)``;
    unequal streams, short residence times and a slow mixer (``mixer_rpm``, optional, default
    1000) mix poorly and broaden the size distribution;
    Cs-poor mixtures (ratio < 1) lower the yield and Cs-rich ones (ratio > 1.5) form
    Cs4PbBr6 that lowers the PLQY. Mixing also sets the platelets' thickness: a fast mixer
    nucleates them thinner (Zhang et al.: 2.2 nm, four monolayers, in flow), one monolayer less
    per doubling of ``mixer_rpm``. Flow scatters least of the routes (:data:`ROUTE_SCATTER`).
    """
    ratio = _as_array(conditions["flow_ratio"])
    residence = _as_array(conditions["residence_time_s"])
    # the flow reactor's mixer (a device setting, 1000 rpm by default): faster mixes better
    mixer_rpm = _as_array(conditions.get("mixer_rpm", 1000.0))
    br_pb = _as_array(conditions["br_pb_ratio"])
    effective_br_pb = 2.0 + np.clip(br_pb - 2.0, 0.0, None) * 2.0 / (1.0 + ratio)
    mixing = (0.03 * np.abs(np.log(ratio)) + 0.05 * np.exp(-residence / 3.0)) * (
        3.0 / (1.0 + 2.0 * mixer_rpm / 1000.0)
    )
    result = _hot_injection_core(
        effective_br_pb,
        _as_array(conditions["temperature_c"]),
        conditions["ligand"],
        residence,
        rng,
        extra_dispersion=mixing,
        twin=twin,
        scatter=ROUTE_SCATTER["flow"],
        platelet_layer_shift=-np.log2(np.maximum(mixer_rpm, 1.0) / 1000.0),  # 0 rpm: diffusion
    )
    result["concentration"] = result["concentration"] * np.minimum(ratio, 1.0)
    result["plqy"] = result["plqy"] * (1.0 - 0.4 * _logistic((ratio - 1.5) / 0.3))
    return _scalars_if_scalar(result, conditions)


def larp_outcome(
    conditions: Mapping[str, ArrayLike],
    rng: np.random.Generator | None = None,
    twin: TwinParameters = _DEFAULT_TWIN,
) -> dict[str, float] | dict[str, NDArray[np.float64]]:
    """Population from room-temperature ligand-assisted reprecipitation (LARP).

    ``precursor_ul`` of DMF precursor into 1 mL toluene sets the supersaturation: more precursor,
    larger dots, more yield, broader sizes. Dilution (less precursor) gives smaller dots that
    finish growing sooner (Akkerman et al., the review's Fig. 2a: "dilution -> smaller and
    faster"); extra oleylamine (``ligand_ul``) caps growth (smaller dots at an unchanged rate,
    better passivation, higher PLQY) and, in excess, turns dots into nanoplatelets. Growth and
    yield settle over tens of seconds (``time_s``).
    """
    precursor = _as_array(conditions["precursor_ul"])
    ligand = _as_array(conditions["ligand_ul"])
    time_s = _as_array(conditions["time_s"])
    l_eq = (
        L_MIN_NM + 4.0 * twin.size_scale * (precursor / 20.0) ** 0.35 / (1.0 + ligand / 15.0) ** 0.5
    )
    tau = 20.0 * (precursor / 20.0) ** 0.5
    progress = 1.0 - np.exp(-time_s / tau)
    dispersion = (0.10 + 0.04 * precursor / 100.0 + 0.05 * (1.0 - progress)) * (
        twin.dispersion_scale
    )
    platelet_fraction = _logistic((ligand - 28.0) / 5.0)
    concentration = (precursor / 50.0) * (1.0 - np.exp(-time_s / (3.0 * tau)))
    shape = np.broadcast(l_eq, time_s).shape
    line_shift = np.full(shape, twin.sizing_offset_ev)
    if rng is not None:
        scatter, v = ROUTE_SCATTER["larp"], twin.variability
        l_eq = l_eq * np.exp(scatter.size * v * rng.standard_normal(shape))
        dispersion = dispersion * np.exp(scatter.dispersion * v * rng.standard_normal(shape))
        concentration = concentration * np.exp(0.05 * rng.standard_normal(shape))
        line_shift = line_shift + scatter.line_ev * v * rng.standard_normal(shape)
    edge = l_eq - (l_eq - _L_NUCLEUS_NM) * (1.0 - progress)
    plqy = (
        (0.45 + 0.45 * ligand / (ligand + 8.0)) * _size_plqy(edge) * (1.0 - 0.5 * platelet_fraction)
    )
    result = {
        "edge_length_nm": edge,
        "size_dispersion": np.clip(dispersion, 0.03, 0.5),
        "platelet_fraction": platelet_fraction,
        "plqy": np.clip(plqy, 0.0, 1.0),
        "concentration": concentration,
        "platelet_layers": np.full(np.shape(edge), 3.0),
        "energy_shift_ev": line_shift,
    }
    return _scalars_if_scalar(result, conditions)

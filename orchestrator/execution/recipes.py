"""Recipes: synthesis conditions -> what the lab's devices must do (volumes, pump rates).

Pure functions of the conditions and the lab config. They refuse, with a
:class:`~models.parameters.ParameterError` naming the condition, anything the lab cannot
physically do (a flask that would overflow, a flow faster than the pumps), so a plan fails
before any device moves and a campaign config is checked at every corner of its space.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from devices.config import LabConfig
from models.parameters import ParameterError

__all__ = [
    "FlowRecipe",
    "HotInjectionRecipe",
    "LarpRecipe",
    "pipettable",
    "reagent_use",
    "recipe_for",
]


@dataclass(frozen=True)
class HotInjectionRecipe:
    """Volumes (µL) and reservoirs for one hot-injection batch."""

    pb_source: str
    pb_ul: float
    halide_source: str
    halide_ul: float
    ligand_source: str
    ligand_ul: float
    cation_source: str
    cation_ul: float

    @property
    def total_ul(self) -> float:
        return self.pb_ul + self.halide_ul + self.ligand_ul + self.cation_ul


@dataclass(frozen=True)
class FlowRecipe:
    """Pump rates (µL/min) and the coil settings for one steady state."""

    rates: Mapping[str, float]
    residence_time_s: float


@dataclass(frozen=True)
class LarpRecipe:
    """Volumes (µL) for one LARP well."""

    antisolvent_ul: float
    precursor_ul: float
    oleylamine_ul: float


def pipettable(volume_ul: float, minimum_ul: float) -> float:
    """The nearest volume the pipette can deliver: 0, or at least its minimum."""
    if volume_ul >= minimum_ul:
        return volume_ul
    return 0.0 if volume_ul < minimum_ul / 2 else minimum_ul


def _reservoir(lab: LabConfig, name: str) -> Any:
    return lab.robot.deck[name].contents


def hot_injection_recipe(
    conditions: Mapping[str, Any], lab: LabConfig, reactor: str = "reactor"
) -> HotInjectionRecipe:
    """Lead halide for ``batch_pb_umol`` of Pb, extra halide to reach ``br_pb_ratio`` (the
    halide/Pb ratio), ``ligand_amount`` times the standard ligand load, and the cation oleate,
    from the reservoirs of the ``material`` asked for (CsPbBr3 when not given), for the flask
    of ``reactor``."""
    rc = lab.reactor_config(reactor)
    sources = rc.sources(conditions.get("material", "CsPbBr3"))
    pb = _reservoir(lab, sources.pb_source)
    extra = _reservoir(lab, sources.halide_source)
    pb_ul = rc.batch_pb_umol / pb.pb_mm * 1e3
    halide_mm = extra.br_mm + extra.i_mm
    missing = conditions["br_pb_ratio"] * rc.batch_pb_umol - (pb.br_mm + pb.i_mm) * pb_ul * 1e-3
    halide_ul = max(missing, 0.0) / halide_mm * 1e3 if halide_mm > 0 else 0.0
    halide_ul = pipettable(halide_ul, lab.robot.min_volume_ul)
    ligand = conditions["ligand"]
    if ligand not in rc.ligand_sources:
        raise ParameterError(
            "ligand",
            f"ligand {ligand!r} has no reservoir in this lab "
            f"(reactor.ligand_sources: {sorted(rc.ligand_sources)})",
        )
    ligand_ul = rc.ligand_ul * conditions.get("ligand_amount", 1.0)
    recipe = HotInjectionRecipe(
        sources.pb_source,
        pb_ul,
        sources.halide_source,
        halide_ul,
        rc.ligand_sources[ligand],
        ligand_ul,
        sources.cation_source,
        rc.injection_ul,
    )
    capacity = lab.robot.deck[rc.flask].capacity_ul
    if recipe.total_ul > capacity:
        top = (capacity - pb_ul - ligand_ul - rc.injection_ul) * halide_mm * 1e-3
        highest = (top + (pb.br_mm + pb.i_mm) * pb_ul * 1e-3) / rc.batch_pb_umol
        raise ParameterError(
            "br_pb_ratio",
            f"br_pb_ratio = {conditions['br_pb_ratio']:g} needs {recipe.total_ul:.0f} µL in the "
            f"{capacity:.0f} µL flask; this lab reaches at most {highest:.1f}",
        )
    return recipe


def flow_recipe(conditions: Mapping[str, Any], lab: LabConfig) -> FlowRecipe:
    """Pump rates giving the residence time, stream ratio and Br/Pb asked for.

    The Cs pump carries Cs-oleate; the Pb-Br stream is split between the PbBr2 pump and the
    bromide pump so that ``Br/Pb = br_pb_ratio``.
    """
    flow = lab.flow
    if flow is None:
        raise ParameterError("route", "this lab has no flow reactor")
    pumps = flow.pumps
    cs = next((n for n, p in pumps.items() if p.source.cs_mm > 0), None)
    pb = next((n for n, p in pumps.items() if p.source.pb_mm > 0), None)
    br = next((n for n, p in pumps.items() if p.source.br_mm > 0 and p.source.pb_mm == 0), None)
    if cs is None or pb is None:
        raise ParameterError("route", "the flow reactor needs a Cs pump and a Pb pump")
    total = flow.coil_volume_ul / conditions["residence_time_s"] * 60.0
    ratio = conditions["flow_ratio"]
    cs_rate = total * ratio / (1.0 + ratio)
    pbbr_rate = total - cs_rate
    pb_src = pumps[pb].source
    want = conditions["br_pb_ratio"]
    if br is None:
        pb_rate, br_rate = pbbr_rate, 0.0
    else:
        # Br/Pb = (pb*Br_pb + br*Br_br) / (pb*Pb_pb), pb + br = pbbr_rate
        br_mm = pumps[br].source.br_mm
        frac = (want * pb_src.pb_mm - pb_src.br_mm) / (want * pb_src.pb_mm - pb_src.br_mm + br_mm)
        br_rate = max(frac, 0.0) * pbbr_rate
        pb_rate = pbbr_rate - br_rate
    rates = {cs: cs_rate, pb: pb_rate}
    if br is not None:
        rates[br] = br_rate
    for name, rate in rates.items():
        if rate > pumps[name].max_flow_ul_min:
            fastest = pumps[name].max_flow_ul_min / rate * conditions["residence_time_s"]
            raise ParameterError(
                "residence_time_s",
                f"residence_time_s = {conditions['residence_time_s']:g} needs pump {name} at "
                f"{rate:.0f} µL/min, above its {pumps[name].max_flow_ul_min:g} µL/min; "
                f"use at least {fastest:.1f} s",
            )
    return FlowRecipe(rates, conditions["residence_time_s"])


def larp_recipe(conditions: Mapping[str, Any], lab: LabConfig) -> LarpRecipe:
    """Antisolvent, precursor and oleylamine volumes for one well."""
    lp = lab.larp
    scale = lp.antisolvent_ul / 1000.0  # conditions are per mL of antisolvent
    precursor = pipettable(conditions["precursor_ul"] * scale, lab.robot.min_volume_ul)
    amine = pipettable(conditions["ligand_ul"] * scale, lab.robot.min_volume_ul)
    total = lp.antisolvent_ul + precursor + amine
    capacity = lab.robot.deck[lp.plate].capacity_ul
    if total > capacity:
        raise ParameterError("precursor_ul", f"{total:.0f} µL overflows a {capacity:g} µL well")
    return LarpRecipe(lp.antisolvent_ul, precursor, amine)


_RECIPES = {"hot_injection": hot_injection_recipe, "flow": flow_recipe, "larp": larp_recipe}


def reagent_use(
    route: str, conditions: Mapping[str, Any], lab: LabConfig, reactor: str = "reactor"
) -> dict[str, float]:
    """µL taken from each deck reservoir by one experiment of ``route`` (the recipe plus the
    solvent that fills the cell for its reference); empty for the flow route (its syringes
    are refilled by hand, not drawn by the robot)."""
    recipe = recipe_for(route, conditions, lab, reactor)
    use: dict[str, float] = {}

    def take(source: str, volume: float) -> None:
        use[source] = use.get(source, 0.0) + volume

    if isinstance(recipe, HotInjectionRecipe):
        take(recipe.pb_source, recipe.pb_ul)
        take(recipe.halide_source, recipe.halide_ul)
        take(recipe.ligand_source, recipe.ligand_ul)
        take(recipe.cation_source, recipe.cation_ul)
        take(lab.reactor_config(reactor).solvent, lab.cell.fill_ul)
    elif isinstance(recipe, LarpRecipe):
        lp = lab.larp
        take(lp.antisolvent, recipe.antisolvent_ul + lab.cell.fill_ul)
        take(lp.precursor, recipe.precursor_ul)
        take(lp.oleylamine, recipe.oleylamine_ul)
    return {k: v for k, v in use.items() if v > 0}


def recipe_for(
    route: str, conditions: Mapping[str, Any], lab: LabConfig, reactor: str = "reactor"
) -> Any:
    """The recipe of ``route`` for ``conditions`` on ``lab`` (hot injection: in ``reactor``)."""
    if route == "hot_injection":
        return hot_injection_recipe(conditions, lab, reactor)
    return _RECIPES[route](conditions, lab)

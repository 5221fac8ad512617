"""The simulated lab's shared physical state: liquids, samples, reactions, faults.

Devices never pass chemistry to each other through plan arguments. The robot moves liquid
between locations of this world; the reactor turns the flask's liquid into nanocrystals when it
injects and quenches; the flow reactor feeds its outlet to the cell; the cell measures whatever
sample sits in it. The physics comes from :mod:`models`: the world works out the conditions
from what was actually dispensed (Br/Pb from the moles of Pb and Br in the flask, ligand from
the ligand dispensed, growth time from the clock) and asks the route's outcome model.

Random streams are separate (chemistry, instrument noise, faults), all derived from one seed, so
that turning a fault on does not change the chemistry of the other experiments.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from devices.clock import VirtualClock
from devices.config import FaultConfig, LabConfig, LabwareConfig
from models.parameters import MATERIAL_NAMES
from models.simulation import (
    BUILTIN_OUTCOME_MODELS,
    OutcomeModel,
    check_population,
    load_outcome_model,
)
from models.twin import TwinParameters, load_twin

__all__ = ["Liquid", "Location", "Sample", "SimulatedWorld", "WorldError", "twin_of"]


def twin_of(config: LabConfig) -> TwinParameters:
    """The twin parameters a lab config names (the published defaults if none)."""
    twin = config.simulator.twin
    return TwinParameters() if twin is None else load_twin(twin)


class WorldError(RuntimeError):
    """A physical impossibility: over-filling, an empty reservoir, an unknown location."""


@dataclass(frozen=True)
class Sample:
    """Nanocrystals in a liquid: a mixture of populations with weights (dilution factors).

    ``conditions`` and ``route`` record what made the sample (for the record and for tests; the
    planner never sees them).
    """

    components: tuple[tuple[float, Mapping[str, float]], ...]
    route: str
    conditions: Mapping[str, Any]
    made_at: float

    def diluted(self, factor: float) -> Sample:
        """The same sample at ``factor`` times the concentration."""
        return replace(self, components=tuple((w * factor, p) for w, p in self.components))


_IONS = ("pb", "br", "cs", "i", "fa")
"""Ions a liquid keeps count of (µmol): lead, bromide, caesium, iodide, formamidinium."""


@dataclass
class Liquid:
    """Contents of a location: volume, moles of the ions that matter, and who added what."""

    volume_ul: float = 0.0
    pb_umol: float = 0.0
    br_umol: float = 0.0
    cs_umol: float = 0.0
    i_umol: float = 0.0
    fa_umol: float = 0.0
    role_ul: dict[str, float] = field(default_factory=dict)
    ligand_ul: dict[str, float] = field(default_factory=dict)
    sample: Sample | None = None

    def take(self, volume_ul: float) -> Liquid:
        """Remove ``volume_ul`` (well mixed) and return it."""
        f = volume_ul / self.volume_ul if self.volume_ul > 0 else 0.0
        part = Liquid(
            volume_ul=volume_ul,
            role_ul={k: v * f for k, v in self.role_ul.items()},
            ligand_ul={k: v * f for k, v in self.ligand_ul.items()},
            sample=self.sample,
            **{f"{ion}_umol": getattr(self, f"{ion}_umol") * f for ion in _IONS},
        )
        self.volume_ul -= volume_ul
        for ion in _IONS:
            setattr(
                self, f"{ion}_umol", getattr(self, f"{ion}_umol") - getattr(part, f"{ion}_umol")
            )
        self.role_ul = {k: v - part.role_ul[k] for k, v in self.role_ul.items()}
        self.ligand_ul = {k: v - part.ligand_ul[k] for k, v in self.ligand_ul.items()}
        if self.volume_ul <= 1e-9:
            self.sample = None
        return part

    def add(self, other: Liquid) -> None:
        """Mix ``other`` in; a sample is diluted by the volume fraction it ends up in."""
        total = self.volume_ul + other.volume_ul
        if total <= 0:
            return
        if other.sample is not None or self.sample is not None:
            parts = []
            if self.sample is not None:
                parts.append(self.sample.diluted(self.volume_ul / total))
            if other.sample is not None:
                parts.append(other.sample.diluted(other.volume_ul / total))
            first = parts[-1]
            self.sample = replace(first, components=tuple(c for s in parts for c in s.components))
        self.volume_ul = total
        for ion in _IONS:
            setattr(
                self, f"{ion}_umol", getattr(self, f"{ion}_umol") + getattr(other, f"{ion}_umol")
            )
        for k, v in other.role_ul.items():
            self.role_ul[k] = self.role_ul.get(k, 0.0) + v
        for k, v in other.ligand_ul.items():
            self.ligand_ul[k] = self.ligand_ul.get(k, 0.0) + v


@dataclass
class Location:
    """A place liquid can be: reservoir, vial, well, reactor flask, cell, waste."""

    name: str
    kind: str
    capacity_ul: float
    liquid: Liquid
    reaction_started_at: float | None = (
        None  # LARP wells: first contact of precursor and antisolvent
    )
    chemistry: np.random.Generator | None = None  # LARP wells: the batch's random stream


def copy_stream(rng: np.random.Generator) -> np.random.Generator:
    """A generator that draws what ``rng`` would draw next (``rng`` itself is untouched)."""
    copy = np.random.Generator(type(rng.bit_generator)())
    copy.bit_generator.state = rng.bit_generator.state
    return copy


def _liquid_from(cfg: LabwareConfig) -> Liquid:
    v = cfg.volume_ul
    c = cfg.contents
    return Liquid(
        volume_ul=v,
        **{f"{ion}_umol": getattr(c, f"{ion}_mm") * v * 1e-3 for ion in _IONS},
        role_ul={c.role: v} if v > 0 else {},
        ligand_ul={c.ligand: v} if (c.ligand and v > 0) else {},
    )


class SimulatedWorld:
    """Physical state shared by the simulated devices of one lab (see the module docstring).

    Parameters
    ----------
    config
        The validated lab config.
    clock
        The lab's virtual clock.
    seed
        Overrides ``config.simulator.seed``.
    outcome_models
        Route name -> callable or ``"package.module:function"``, on top of the config's.
    """

    def __init__(
        self,
        config: LabConfig,
        clock: VirtualClock,
        seed: int | None = None,
        outcome_models: Mapping[str, OutcomeModel | str] | None = None,
    ) -> None:
        self.config = config
        self.clock = clock
        self.lock = threading.RLock()
        self.seed = config.simulator.seed if seed is None else seed
        self.reseed()
        self.variability = config.simulator.variability
        self.fault_probability: dict[str, float] = config.simulator.faults.model_dump()
        self.twin = twin_of(config)
        self.outcome_models: dict[str, OutcomeModel] = {
            route: functools.partial(model, twin=self.twin)
            for route, model in BUILTIN_OUTCOME_MODELS.items()
        }
        for route, model in {**config.simulator.outcome_models, **(outcome_models or {})}.items():
            self.outcome_models[route] = (
                load_outcome_model(model) if isinstance(model, str) else model
            )
        self.locations: dict[str, Location] = {}
        for name, cfg in config.robot.deck.items():
            if cfg.kind == "plate":
                for r in range(cfg.rows):
                    for c in range(cfg.columns):
                        well = f"{name}:{chr(ord('A') + r)}{c + 1}"
                        self.locations[well] = Location(well, "well", cfg.capacity_ul, Liquid())
            else:
                self.locations[name] = Location(name, cfg.kind, cfg.capacity_ul, _liquid_from(cfg))
        self.hood_open = False  # the safety interlock: an operator (or a test) opens the hood
        self.cell_source: str = "robot"  # or "flow": what feeds the optical cell
        self.flow_outlet: Any = None  # set by the flow reactor: callable(now) -> Sample | None
        self.spectrometer_view = "cell"  # a reactor's name: its flask's dip probe; "plate"
        # each reactor's dip probe, by the reactor's name: callable(now) -> Sample | None
        self.flask_views: dict[str, Any] = {}
        self.growing_well: str | None = None  # the LARP well that started reacting last
        self.last_sample: Sample | None = None

    def reseed(self, *key: int) -> None:
        """Restart the random streams from (seed, *key): a campaign reseeds per experiment, so
        an experiment's chemistry and noise do not depend on what ran before it."""
        root = np.random.SeedSequence(
            [self.seed if self.seed is not None else 0, *key]
            if key or self.seed is not None
            else None
        )
        chem, noise, faults = root.spawn(3)
        self.chemistry_rng = np.random.default_rng(chem)
        self.noise_rng = np.random.default_rng(noise)
        self.fault_rng = np.random.default_rng(faults)

    # -- faults ---------------------------------------------------------------------------
    def fault(self, kind: str) -> bool:
        """Draw whether fault ``kind`` strikes this operation."""
        if kind not in self.fault_probability:
            raise KeyError(f"unknown fault {kind!r}; known: {sorted(self.fault_probability)}")
        p = self.fault_probability[kind]
        return p > 0 and bool(self.fault_rng.random() < p)

    def set_fault(self, kind: str, probability: float) -> None:
        """Change a fault's probability at run time (tests, demos)."""
        FaultConfig(**{kind: probability})  # validates name and range
        self.fault_probability[kind] = probability

    # -- liquids --------------------------------------------------------------------------
    def location(self, name: str) -> Location:
        """The location called ``name`` (``plate:A1`` for a well)."""
        try:
            return self.locations[name]
        except KeyError:
            raise WorldError(
                f"no location {name!r} on the deck; known: {', '.join(sorted(self.locations))}"
            ) from None

    def check_take(self, source: str, volume_ul: float) -> None:
        """Raise :class:`WorldError` if ``source`` holds less than ``volume_ul``."""
        src = self.location(source)
        if src.liquid.volume_ul + 1e-9 < volume_ul:
            raise WorldError(
                f"{source} holds {src.liquid.volume_ul:.10g} µL, cannot take {volume_ul:.10g} µL"
            )

    def check_receive(self, dest: str, volume_ul: float) -> None:
        """Raise :class:`WorldError` if ``volume_ul`` more would overflow ``dest``."""
        dst = self.location(dest)
        if dst.kind not in ("cell", "waste") and (
            dst.liquid.volume_ul + volume_ul > dst.capacity_ul + 1e-9
        ):
            raise WorldError(
                f"{dest} holds {dst.liquid.volume_ul:.10g} of {dst.capacity_ul:.10g} µL, "
                f"cannot add {volume_ul:.10g} µL"
            )

    def check_transfer(self, source: str, dest: str, volume_ul: float) -> None:
        """Raise :class:`WorldError` if moving ``volume_ul`` is impossible right now."""
        self.check_take(source, volume_ul)
        self.check_receive(dest, volume_ul)

    def take(self, source: str, volume_ul: float) -> Liquid:
        """Remove ``volume_ul`` (with any nanocrystals, grown until now) from ``source``."""
        with self.lock:
            self.check_take(source, volume_ul)
            src = self.location(source)
            self.materialise(src)
            return src.liquid.take(volume_ul)

    def receive(self, dest: str, liquid: Liquid) -> None:
        """Add ``liquid`` to ``dest``: a flow-through cell is flushed, a well may start LARP."""
        with self.lock:
            self.check_receive(dest, liquid.volume_ul)
            dst = self.location(dest)
            if dst.kind == "cell":  # the new liquid displaces the old
                dst.liquid = liquid
                self.cell_source = "robot"
            elif dst.kind == "waste":
                dst.liquid.volume_ul += liquid.volume_ul
            else:
                dst.liquid.add(liquid)
                roles = dst.liquid.role_ul
                if (
                    dst.reaction_started_at is None
                    and roles.get("larp_precursor", 0) > 0
                    and roles.get("antisolvent", 0) > 0
                ):
                    dst.reaction_started_at = self.clock.now()
                    dst.chemistry = self.chemistry_rng.spawn(1)[0]  # each well its own batch
                    self.growing_well = dest

    def transfer(self, source: str, dest: str, volume_ul: float) -> None:
        """Move liquid (and any nanocrystals in it) from ``source`` to ``dest``."""
        with self.lock:
            self.check_transfer(source, dest, volume_ul)
            self.receive(dest, self.take(source, volume_ul))

    def materialise(self, loc: Location) -> None:
        """Turn a LARP well's reagents into nanocrystals as of now (growth up to this moment)."""
        grown = self.well_sample(loc)
        if grown is not None:
            loc.liquid.sample = grown

    def well_sample(self, loc: Location) -> Sample | None:
        """A reacting LARP well's nanocrystals as grown by now (None for any other place); the
        batch's own random stream, so a well read over time is one batch at every moment."""
        if loc.reaction_started_at is None or loc.kind != "well":
            return None
        roles = loc.liquid.role_ul
        per_ml = 1000.0 / max(roles.get("antisolvent", 0.0), 1e-9)
        conditions = {
            "precursor_ul": roles.get("larp_precursor", 0.0) * per_ml,
            "ligand_ul": roles.get("oleylamine", 0.0) * per_ml,
            "time_s": max(self.clock.now() - loc.reaction_started_at, 1e-3),
        }
        stream = copy_stream(loc.chemistry) if loc.chemistry is not None else None
        return self.make_sample("larp", conditions, chemistry=stream)

    def viewed_age(self) -> float:
        """Seconds the sample the spectrometer reads has been growing: a well read through the
        plate reader since its reaction began; NaN for the other views (the flask's growth time
        is the reactor's own reading)."""
        with self.lock:
            if self.spectrometer_view == "plate" and self.growing_well is not None:
                started = self.location(self.growing_well).reaction_started_at
                if started is not None:
                    return self.clock.now() - started
            return float("nan")

    # -- chemistry ------------------------------------------------------------------------
    @staticmethod
    def material_of(liquid: Liquid) -> str:
        """The perovskite a reacting liquid makes: its majority A-site cation (Cs or FA) and
        majority halide (Br or I); :class:`WorldError` for one the physics does not know."""
        cation = "FA" if liquid.fa_umol > liquid.cs_umol else "Cs"
        halide = "I" if liquid.i_umol > liquid.br_umol else "Br"
        material = f"{cation}Pb{halide}3"
        if material not in MATERIAL_NAMES:
            raise WorldError(
                f"the flask would make {material}; the simulated lab makes {MATERIAL_NAMES}"
            )
        return material

    def make_sample(
        self,
        route: str,
        conditions: Mapping[str, Any],
        chemistry: np.random.Generator | None = None,
    ) -> Sample:
        """Run the route's outcome model on ``conditions`` and return the sample.
        ``chemistry``: the batch's own random stream (default: the world's), so a growing
        batch looked at in situ is the same batch at every moment."""
        rng = (chemistry or self.chemistry_rng) if self.variability else None
        population = check_population(self.outcome_models[route](dict(conditions), rng))
        population = {k: float(np.asarray(v).reshape(-1)[0]) for k, v in population.items()}
        sample = Sample(((1.0, population),), route, dict(conditions), self.clock.now())
        self.last_sample = sample
        return sample

    def cell_sample(self) -> Sample | None:
        """What the spectrometer sees now: through the dip probe, the reactor flask; in the cell,
        the flow outlet or the liquid the robot put there."""
        with self.lock:
            if self.spectrometer_view in self.flask_views:
                return self.flask_views[self.spectrometer_view](self.clock.now())
            if self.spectrometer_view == "plate":
                well = self.growing_well
                return None if well is None else self.well_sample(self.location(well))
            if self.cell_source == "flow" and self.flow_outlet is not None:
                return self.flow_outlet(self.clock.now())
            cell = self.location(self.config.cell.location)
            return cell.liquid.sample if cell.liquid.volume_ul > 0 else None

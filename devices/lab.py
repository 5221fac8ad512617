"""A lab: its devices, built from a lab config (``configs/labs/*.yaml``).

>>> lab = build_lab("configs/labs/sim.yaml")
>>> RE(bp.count([lab.cell]))
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ophyd import Device

from devices.cell import OpticalCell
from devices.clock import VirtualClock
from devices.config import (
    SHIPPED_LABS,
    ConfigError,
    HeaterConfig,
    LabConfig,
    load_lab_config,
)
from devices.epics import (
    CELL_READINGS,
    EpicsCell,
    EpicsClock,
    EpicsFlow,
    EpicsHeater,
    EpicsInterlock,
    EpicsReactor,
    EpicsRobot,
    PVs,
    PVUnreachable,
    pv_suffixes,
)
from devices.flow import FlowReactor, flow_reactor_class
from devices.heater import Heater, HeaterBackend, Timer
from devices.plugins import BUILTIN, start_instrument, start_plugin
from devices.reactor import HotInjectionReactor
from devices.robot import PipettingRobot
from devices.safety import Safety
from devices.simulated import SimCell, SimFlow, SimHeater, SimInterlock, SimReactor, SimRobot
from devices.world import SimulatedWorld
from models.simulation import OutcomeModel

__all__ = ["DEFAULT_LAB", "Lab", "build_lab"]

DEFAULT_LAB = SHIPPED_LABS / "sim.yaml"
"""The simulated lab shipped with QDLab."""


@dataclass
class Lab:
    """The devices of one lab, and the simulated world behind them (``None`` when the lab is
    driven over EPICS or SiLA 2: then the IOCs or the server hold the state)."""

    config: LabConfig
    clock: VirtualClock
    world: SimulatedWorld | None
    robot: PipettingRobot
    reactor: HotInjectionReactor
    flow: FlowReactor | None
    cell: OpticalCell
    timer: Timer
    safety: Safety
    pvs: PVs | None = None
    sila: Any = None
    """The :class:`~devices.sila.SilaLink` of a SiLA 2 lab."""
    reactors: dict[str, HotInjectionReactor] = field(default_factory=dict)
    """Every hot-injection reactor by name (``reactor`` first, then the lab config's
    ``reactors``)."""
    instruments: dict[str, Device] = field(default_factory=dict)
    """Instruments of kinds a package adds (the lab config's ``instruments``), by name."""

    def __post_init__(self) -> None:
        self.reactors = {"reactor": self.reactor, **self.reactors}

    def reactor_named(self, name: str) -> HotInjectionReactor:
        """The reactor ``name``; a :class:`~models.parameters.ParameterError` naming the
        reactors there are otherwise."""
        self.config.reactor_config(name)
        return self.reactors[name]

    @property
    def devices(self) -> list[Device]:
        """Every device, e.g. for baseline readings."""
        found = [self.robot, *self.reactors.values(), self.flow, self.cell, self.timer,
                 self.safety, *self.instruments.values()]  # fmt: skip
        return [d for d in found if d is not None]

    def reseed(self, seed: int | None, index: int) -> None:
        """Draw the twin's randomness of experiment ``index`` from (seed, index), in process, in
        a ``qdlab ioc`` (``epics.twin_control``) or a ``qdlab sila serve``
        (``sila2.twin_control``); a real lab has no randomness to seed."""
        if self.world is not None:
            self.world.reseed(seed, index)
        elif self.pvs is not None and self.config.epics.twin_control:
            world_seed = self.config.simulator.seed
            self.pvs.put("sim:RESEED", [world_seed or 0, seed or 0, index])
        elif self.sila is not None and self.config.sila2.twin_control:
            world_seed = self.config.simulator.seed
            self.sila.call("TwinControl", "Reseed", world_seed or 0, seed or 0, index)


def _attach_heater(
    heater: Heater, backend: HeaterBackend, clock: VirtualClock, cfg: HeaterConfig
) -> None:
    heater.attach(
        backend,
        clock,
        limits=(cfg.min_temperature_c, cfg.max_temperature_c),
        max_ramp_c_per_min=cfg.max_ramp_c_per_min,
        ramp_c_per_min=cfg.ramp_c_per_min,
        tolerance_c=cfg.tolerance_c,
        monitor_period_s=cfg.monitor_interval_s,
        monitor_deadband=cfg.monitor_deadband_c,
    )


def build_lab(
    source: str | Path | Mapping[str, Any] | LabConfig = DEFAULT_LAB,
    *,
    seed: int | None = None,
    clock_mode: str | None = None,
    outcome_models: Mapping[str, OutcomeModel | str] | None = None,
    liquid_handler: Any = None,
) -> Lab:
    """Build the lab's ophyd devices from a config path, mapping or :class:`LabConfig`.

    Parameters
    ----------
    source
        Lab config; the default is the shipped simulated lab.
    seed
        Overrides the config's simulator seed (chemistry, noise and faults all follow it).
    clock_mode
        ``"fast"`` or ``"realtime"``; overrides the config.
    outcome_models
        Route -> outcome model (callable or ``"pkg.module:function"``) replacing the physics.
    liquid_handler
        With ``robot.backend: pylabrobot``: the PyLabRobot ``LiquidHandlerBackend`` to drive
        (a real instrument's, built with its connection settings) instead of the config's.

    Raises
    ------
    devices.config.ConfigError
        The config is missing or invalid (the message names the field).
    """
    config = source if isinstance(source, LabConfig) else load_lab_config(source)
    if config.backend == "epics":
        return _build_epics_lab(config, liquid_handler)
    if config.backend == "sila2":
        try:
            from devices.sila import SilaClock, SilaLink
        except ImportError:
            raise ConfigError(
                "backend: sila2 needs the sila2 package: pip install 'qdlab[sila2]'"
            ) from None
        link = SilaLink(config.sila2)
        return _assemble(
            config, SilaClock(link), _SilaParts(link), sila=link, liquid_handler=liquid_handler
        )
    sim = config.simulator
    clock = VirtualClock(clock_mode or sim.clock, speed=sim.speed)
    world = SimulatedWorld(config, clock, seed=seed, outcome_models=outcome_models)
    parts = _SimulatedParts(config, clock, world)
    return _assemble(config, clock, parts, world=world, liquid_handler=liquid_handler)


class _SimulatedParts:
    """The simulated backends of one lab, on its world and clock."""

    def __init__(self, config: LabConfig, clock: VirtualClock, world: SimulatedWorld) -> None:
        self.config, self.clock, self.world = config, clock, world

    def robot(self, name: str) -> SimRobot:
        rb = self.config.robot
        return SimRobot(name, self.world, rb.max_volume_ul, rb.tips, rb.seconds_per_transfer)

    def heater(self, name: str, cfg: HeaterConfig, suffix: str) -> SimHeater:
        return SimHeater(name, self.clock, cfg, self.config.reactor.ambient_c, self.world.fault)

    def reactor(self, heater: HeaterBackend, name: str = "reactor") -> SimReactor:
        rc = self.config.reactor_config(name)
        # the flask reacts at what its heater reads (a plugin's heater too)
        return SimReactor(self.world, rc.flask, rc.cs_source, heater.temperature, name)

    def flow(self, name: str, coil: Any) -> SimFlow:
        return SimFlow(name, self.world, self.config.flow, coil)

    def cell(self, name: str) -> SimCell:
        return SimCell(name, self.world, self.config.cell)

    def interlock(self) -> SimInterlock:
        return SimInterlock(self.world)


class _SilaParts:
    """The SiLA 2 backends of one lab, on its server."""

    def __init__(self, link: Any) -> None:
        import devices.sila as sila  # sila2 and gRPC load only for a SiLA 2 lab

        self.sila, self.link = sila, link

    def robot(self, name: str) -> Any:
        return self.sila.SilaRobot(self.link)

    def heater(self, name: str, cfg: HeaterConfig, suffix: str) -> Any:
        return self.sila.SilaHeater(self.link, suffix)

    def reactor(self, heater: HeaterBackend, name: str = "reactor") -> Any:
        return self.sila.SilaReactor(self.link, name)

    def flow(self, name: str, coil: Any) -> Any:
        return self.sila.SilaFlow(self.link)

    def cell(self, name: str) -> Any:
        return self.sila.SilaCell(self.link)

    def interlock(self) -> Any:
        return self.sila.SilaInterlock(self.link)


class _EpicsParts:
    """The EPICS backends of one lab, on its PVs."""

    def __init__(self, pvs: PVs) -> None:
        self.pvs = pvs

    def robot(self, name: str) -> EpicsRobot:
        return EpicsRobot(self.pvs)

    def heater(self, name: str, cfg: HeaterConfig, suffix: str) -> EpicsHeater:
        return EpicsHeater(self.pvs, suffix)

    def reactor(self, heater: HeaterBackend, name: str = "reactor") -> EpicsReactor:
        return EpicsReactor(self.pvs, name)

    def flow(self, name: str, coil: Any) -> EpicsFlow:
        return EpicsFlow(self.pvs)

    def cell(self, name: str) -> EpicsCell:
        return EpicsCell(self.pvs)

    def interlock(self) -> EpicsInterlock:
        return EpicsInterlock(self.pvs)


class _Chooser:
    """The parts each instrument's backend offers: a plugin's where the instrument's section
    names one (:mod:`devices.plugins`) and the plugin offers that part, else the lab's."""

    def __init__(self, config: LabConfig, clock: VirtualClock, parts: Any) -> None:
        self.config, self.clock, self.parts = config, clock, parts
        self._plugins: dict[str, Any] = {}
        self.pvs: PVs | None = None

    def __call__(self, instrument: str, part: str) -> Any:
        name = self.config.section(instrument).backend
        if name == "epics" and self.config.backend != "epics" and part == "heater":
            return _EpicsParts(self._ordinary_iocs()).heater  # the rest stays the lab's
        if name is None or name in BUILTIN:
            return getattr(self.parts, part)
        if instrument not in self._plugins:
            self._plugins[instrument] = start_plugin(self.config, instrument, self.clock)
        return getattr(self._plugins[instrument], part, None) or getattr(self.parts, part)

    def _ordinary_iocs(self) -> PVs:
        """The PVs of the heaters this (simulated) lab takes from ordinary IOCs, connected."""
        if self.pvs is None:
            self.pvs = _connected(self.config)
        return self.pvs


def _assemble(
    config: LabConfig,
    clock: VirtualClock,
    parts: _SimulatedParts | _EpicsParts | _SilaParts,
    world: SimulatedWorld | None = None,
    pvs: PVs | None = None,
    sila: Any = None,
    liquid_handler: Any = None,
) -> Lab:
    """The lab's devices, each attached to its backend from ``parts`` (or a plugin's) and to
    its limits."""
    part = _Chooser(config, clock, parts)
    rb = config.robot
    robot = PipettingRobot(name="robot")
    if rb.backend == "pylabrobot":
        from devices.plr import PlrRobot

        ledger = parts.robot(robot.name) if isinstance(parts, _SimulatedParts) else None
        liquid = PlrRobot(robot.name, config, ledger, liquid_handler)
    else:
        liquid = part("robot", "robot")(robot.name)
    robot.attach(liquid, clock, rb.min_volume_ul, rb.max_volume_ul)

    reactors = {}
    for name in config.reactor_names:
        rc = config.reactor_config(name)
        reactor = reactors[name] = HotInjectionReactor(name=name)
        heater = part(name, "heater")(reactor.temperature.name, rc, f"{name}:heater")
        _attach_heater(reactor.temperature, heater, clock, rc)
        reactor.attach(
            part(name, "reactor")(heater, name),
            clock,
            stir_limits=(rc.min_stir_rpm, rc.max_stir_rpm),
            injection_limits=(rc.injection_min_ul, rc.injection_max_ul),
            injection_sources=rc.cation_sources,
        )

    flow = None
    if config.flow is not None:
        flow = flow_reactor_class(list(config.flow.pumps))(name="flow")
        coil = part("flow", "heater")(flow.coil.name, config.flow, "flow:coil")
        _attach_heater(flow.coil, coil, clock, config.flow)
        flow.attach(part("flow", "flow")(flow.name, coil), clock, config.flow)

    cell = OpticalCell(name="cell")
    cell.attach(part("cell", "cell")(cell.name), clock, config.cell)
    cell.view.positions = (  # the fibres this lab has
        "cell",
        *(n for n in config.reactor_names if config.reactor_config(n).in_situ_interval_s),
        *(["plate"] if config.larp.read_interval_s is not None else []),
    )
    pvs = pvs or part.pvs
    safety = Safety(name="safety")
    safety.attach(parts.interlock(), clock)
    timer = Timer(name="timer", clock=clock)
    instruments = {name: start_instrument(config, name, clock) for name in config.instruments}
    lab = Lab(config, clock, world, robot, reactors["reactor"], flow, cell, timer, safety, pvs,
              sila, reactors, instruments)  # fmt: skip
    if pvs is not None:
        _label_sources(lab, pvs)
    return lab


def _build_epics_lab(config: LabConfig, liquid_handler: Any = None) -> Lab:
    """The lab's devices with EPICS backends; every PV must connect first (nothing moves
    otherwise), and :class:`~devices.epics.PVUnreachable` names the ones that do not."""
    pvs = _connected(config)
    return _assemble(
        config, EpicsClock(pvs), _EpicsParts(pvs), pvs=pvs, liquid_handler=liquid_handler
    )


def _connected(config: LabConfig) -> PVs:
    """The lab's PVs (:func:`~devices.epics.pv_suffixes`), every one connected, or
    :class:`~devices.epics.PVUnreachable` naming those that did not (nothing moves then)."""
    pvs = PVs(config.epics)
    missing = pvs.unconnected(pv_suffixes(config))
    if missing:
        names = ", ".join(pvs.name(s) for s in missing[:8])
        more = f" and {len(missing) - 8} more" if len(missing) > 8 else ""
        raise PVUnreachable(
            f"lab {config.name!r}: {len(missing)} PV(s) did not connect within "
            f"{config.epics.connection_timeout_s:g} s: {names}{more} (is the IOC running? "
            "`qdlab lab check` lists them)"
        )
    return pvs


def _label_sources(lab: Lab, pvs: PVs) -> None:
    """Each reading an IOC serves says so in its descriptor: ``source: PV:<name>``."""
    served = set(pv_suffixes(lab.config))
    heaters = [(r.temperature, f"{name}:heater") for name, r in lab.reactors.items()]
    sources: list[tuple[Any, str]] = [
        *((r.growth_time, f"{name}:GROWTH") for name, r in lab.reactors.items()),
        (lab.robot.tips_remaining, "robot:TIPS"),  # (not served: a PyLabRobot robot)
        (lab.robot.held_ul, "robot:HELD"),
        (lab.safety.hood_open, "safety:HOOD_OPEN"),
        (lab.timer.elapsed, "CLOCK"),
        *((getattr(lab.cell, attr), suffix) for attr, suffix in CELL_READINGS.items()),
    ]
    if lab.flow is not None:
        heaters.append((lab.flow.coil, "flow:coil"))
        sources.append((lab.flow.pressure, "flow:PRESSURE"))
        for pump in lab.config.flow.pumps:
            device = getattr(lab.flow, pump)
            sources += [(device.flow_rate, f"flow:{pump}:RBV"),
                        (device.remaining_ul, f"flow:{pump}:REMAIN"),
                        (device.stalled, f"flow:{pump}:STALLED")]  # fmt: skip
    for heater, prefix in heaters:
        sources += [(heater.readback, f"{prefix}:RBV"), (heater.setpoint, f"{prefix}:SP")]
    for signal, suffix in sources:
        if suffix in served:  # (a mapped pump serves no REMAIN or STALLED)
            signal.source = f"PV:{pvs.name(suffix)}"

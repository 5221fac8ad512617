"""Lab configuration: which devices a lab has, their safe limits, deck, reagents and faults.

A lab config is YAML (``configs/labs/*.yaml``) validated by :class:`LabConfig`. Every limit a
device enforces comes from here. Unknown keys are refused, so a typo is an error, not a
silently ignored setting.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from models.configfile import ConfigError, read_yaml
from models.parameters import LIGANDS, MATERIAL_NAMES, ParameterError

__all__ = [
    "PRINTABLE_NAME",
    "SHIPPED_LABS",
    "CellConfig",
    "ConfigError",
    "FaultConfig",
    "FlowConfig",
    "HeaterConfig",
    "KindConfig",
    "LabConfig",
    "LabwareConfig",
    "LarpConfig",
    "MaterialSources",
    "PumpConfig",
    "ReactorConfig",
    "RobotConfig",
    "StepConfig",
    "StrictModel",
    "load_lab_config",
    "validation_message",
]


SHIPPED_LABS = Path(__file__).resolve().parents[1] / "configs" / "labs"
"""The lab configs QDLab ships; a campaign names one by its name alone (``lab: sim``)."""

_NUMBERS = (int, float, int | None, float | None)
PRINTABLE_NAME = r"^[^\x00-\x1f\x7f]{1,200}$"
"""A name a person gives (a campaign, a lab): 1 to 200 characters, none of them a control
character (an escape sequence would reach the terminal; a NUL, PostgreSQL refuses)."""


class StrictModel(BaseModel):
    """A config section: unknown keys, NaN and infinities, and booleans for numbers are
    refused."""

    # a NaN or an infinity is never a setting (a NaN limit would refuse every setpoint)
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _numbers_are_not_booleans(cls, value: Any, info: ValidationInfo) -> Any:
        """``budget: true`` is a mistake, not 1 (pydantic reads a boolean as a number)."""
        field = cls.model_fields.get(info.field_name or "")
        if isinstance(value, bool) and field is not None and field.annotation in _NUMBERS:
            raise ValueError("a number, not true/false")
        return value


def _ordered(config: BaseModel, low: str, high: str) -> None:
    """A ``[low, high]`` pair of a config must not be upside down."""
    lo, hi = getattr(config, low), getattr(config, high)
    if lo >= hi:
        raise ValueError(f"{low} ({lo:g}) must be below {high} ({hi:g})")


class Contents(StrictModel):
    """What a reservoir holds: concentrations (mM) and/or a ligand or solvent name."""

    pb_mm: float = Field(0.0, ge=0)
    br_mm: float = Field(0.0, ge=0)
    cs_mm: float = Field(0.0, ge=0)
    i_mm: float = Field(0.0, ge=0)
    fa_mm: float = Field(0.0, ge=0)
    ligand: str | None = None
    role: Literal[
        "precursor", "ligand", "solvent", "antisolvent", "larp_precursor", "oleylamine"
    ] = "precursor"

    @model_validator(mode="after")
    def _known_ligand(self) -> Contents:
        if self.ligand is not None and self.ligand not in LIGANDS:
            raise ValueError(f"ligand {self.ligand!r} is not one of {sorted(LIGANDS)}")
        return self


class LabwareConfig(StrictModel):
    """One deck position: a reservoir, vial, well plate, the reactor flask or the cell."""

    kind: Literal["reservoir", "vial", "plate", "reactor", "cell", "waste"]
    capacity_ul: float = Field(gt=0)
    volume_ul: float = Field(0.0, ge=0)
    contents: Contents = Contents(role="solvent")
    rows: int = Field(1, ge=1, le=16)
    columns: int = Field(1, ge=1, le=24)

    @model_validator(mode="after")
    def _fits(self) -> LabwareConfig:
        if self.volume_ul > self.capacity_ul:
            raise ValueError(f"volume_ul {self.volume_ul} exceeds capacity_ul {self.capacity_ul}")
        return self


class PyLabRobotConfig(StrictModel):
    """The liquid handler behind ``robot.backend: pylabrobot`` (:mod:`devices.plr`)."""

    backend: str = Field("chatterbox", pattern=r"^(chatterbox|pylabrobot(\.\w+)+:\w+)$")
    """``chatterbox`` (PyLabRobot's own simulation) or a PyLabRobot ``LiquidHandlerBackend``
    as ``pylabrobot.<module>:<Class>`` (``pylabrobot.liquid_handling.backends.hamilton.
    STAR_backend:STARBackend``), built with ``backend_options``."""
    backend_options: dict[str, Any] = Field(default_factory=dict)
    channels: int = Field(1, ge=1, le=16)
    tip_rack: str = Field(
        "pylabrobot.resources:hamilton_96_tiprack_1000uL", pattern=r"^pylabrobot(\.\w+)+:\w+$"
    )
    resources: dict[str, str] = Field(default_factory=dict)
    """Deck location -> the PyLabRobot resource it is (``pylabrobot.resources:
    cor_96_wellplate_360uL_Fb``); others are made from the deck config."""

    @field_validator("resources")
    @classmethod
    def _pylabrobot_only(cls, v: dict[str, str]) -> dict[str, str]:
        for location, path in v.items():
            if not re.fullmatch(r"pylabrobot(\.\w+)+:\w+", path):
                raise ValueError(
                    f"resources.{location}: {path!r} is not 'pylabrobot.<module>:<factory>'"
                )
        return v


class InstrumentConfig(StrictModel):
    """What every instrument's section may say: which backend drives it (None: the lab's),
    and the settings a backend from a package takes (:mod:`devices.plugins`)."""

    backend: str | None = Field(None, pattern=r"^[A-Za-z][A-Za-z0-9_\-]{0,63}$")
    backend_options: dict[str, Any] = Field(default_factory=dict)


class KindConfig(StrictModel):
    """An instrument of a kind a package adds (:mod:`devices.plugins`, entry-point group
    ``qdlab.instruments``): which kind, and the options its plugin takes."""

    kind: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_\-]{0,63}$")
    options: dict[str, Any] = Field(default_factory=dict)


class StepConfig(StrictModel):
    """One step a synthesis runs on its product before measuring it: ``step`` of the lab's
    instrument ``instrument`` (one of ``instruments``), with ``args``."""

    instrument: str = Field(pattern=r"^[a-z][a-z0-9_]{0,30}$")
    step: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
    args: dict[str, Any] = Field(default_factory=dict)


class RobotConfig(InstrumentConfig):
    """Pipetting robot: pipette range, tips, transfer speed and the deck; ``backend`` says what
    moves the liquid (None: the lab's backend; ``pylabrobot``: a PyLabRobot liquid handler,
    ``pylabrobot:`` says which; or a plugin)."""

    pylabrobot: PyLabRobotConfig = PyLabRobotConfig()
    min_volume_ul: float = Field(1.0, gt=0)
    max_volume_ul: float = Field(1000.0, gt=0)
    tips: int = Field(96, ge=0)
    seconds_per_transfer: float = Field(8.0, ge=0, le=3600.0)
    deck: dict[str, LabwareConfig]

    @model_validator(mode="after")
    def _range(self) -> RobotConfig:
        if self.min_volume_ul >= self.max_volume_ul:
            raise ValueError("min_volume_ul must be below max_volume_ul")
        return self


class HeaterConfig(InstrumentConfig):
    """A temperature-controlled vessel: safe limits, ramp, settle tolerance, thermal response."""

    min_temperature_c: float = 20.0
    max_temperature_c: float = Field(200.0, le=350.0)
    ramp_c_per_min: float = Field(30.0, gt=0)
    max_ramp_c_per_min: float = Field(30.0, gt=0)
    tolerance_c: float = Field(1.0, gt=0, le=20.0)  # wider is no temperature control
    time_constant_s: float = Field(10.0, gt=0, le=3600.0)
    overshoot_fraction: float = Field(0.02, ge=0, le=0.5)
    heat_timeout_s: float = Field(1800.0, gt=0)
    monitor_interval_s: float = Field(30.0, ge=0.1, le=3600.0)
    """A synthesis samples the vessel's temperature this often for its ``<heater>_monitor``
    stream (on the fast virtual clock; on a realtime clock or over EPICS the stream holds the
    temperature at the run's start only, for now) ..."""
    monitor_deadband_c: float = Field(0.5, ge=0.0, le=20.0)
    """... and records a sample that moved at least this far from the last one recorded (a
    held temperature adds nothing; EPICS's MDEL)."""

    @model_validator(mode="after")
    def _temperatures(self) -> HeaterConfig:
        _ordered(self, "min_temperature_c", "max_temperature_c")
        if self.ramp_c_per_min > self.max_ramp_c_per_min:
            raise ValueError(
                f"ramp_c_per_min ({self.ramp_c_per_min:g}) must be at most max_ramp_c_per_min "
                f"({self.max_ramp_c_per_min:g})"
            )
        return self


class MaterialSources(StrictModel):
    """The deck reservoirs hot injection makes one material from."""

    pb_source: str
    """Lead halide precursor in octadecene (PbBr2, PbI2)."""
    halide_source: str
    """Extra halide (ZnBr2, ZnI2) that brings the halide/Pb ratio up to the one asked for."""
    cation_source: str
    """What the injector injects: Cs-oleate or FA-oleate."""


class ReactorConfig(HeaterConfig):
    """Hot-injection reactor: heater limits and response, injection syringe, flask.

    CsPbBr3 is made from ``pb_source``, ``br_source`` and ``cs_source``; the other materials
    from their entries in ``materials`` (a lab without one cannot make it).
    """

    flask: str = "reactor_flask"
    pb_source: str = "pbbr2"
    br_source: str = "znbr2"
    ligand_sources: dict[str, str] = Field(
        default_factory=lambda: {name: f"ligand_{name}" for name in LIGANDS}
    )
    batch_pb_umol: float = Field(50.0, gt=0)
    ligand_ul: float = Field(1000.0, gt=0)
    injection_ul: float = Field(500.0, gt=0)
    waste: str = "waste"
    solvent: str = "octadecene"
    max_temperature_c: float = Field(220.0, le=350.0)
    ramp_c_per_min: float = Field(20.0, gt=0)
    time_constant_s: float = Field(15.0, gt=0, le=3600.0)
    ambient_c: float = 25.0
    injection_min_ul: float = Field(50.0, gt=0)
    injection_max_ul: float = Field(2000.0, gt=0)
    cs_source: str = "cs_oleate"
    materials: dict[str, MaterialSources] = Field(default_factory=dict)
    min_stir_rpm: float = 0.0
    max_stir_rpm: float = 1500.0
    in_situ_interval_s: float | None = Field(None, gt=0, allow_inf_nan=False)
    """With a dip probe in the flask: read its absorption and PL every this many seconds from
    injection to quench (the ``insitu`` stream); None: no probe. At least the spectrometer's
    acquisition time (:attr:`CellConfig.acquisition_s`)."""

    @model_validator(mode="after")
    def _ranges(self) -> ReactorConfig:
        _ordered(self, "injection_min_ul", "injection_max_ul")
        _ordered(self, "min_stir_rpm", "max_stir_rpm")
        unknown = sorted(set(self.materials) - set(MATERIAL_NAMES))
        if unknown:
            raise ValueError(
                f"materials: {unknown[0]!r} is not one of {{{', '.join(MATERIAL_NAMES)}}}"
            )
        return self

    def sources(self, material: str) -> MaterialSources:
        """The reservoirs ``material`` is made from (:class:`ParameterError` if none here)."""
        if material in self.materials:
            return self.materials[material]
        if material == "CsPbBr3":
            return MaterialSources(
                pb_source=self.pb_source, halide_source=self.br_source, cation_source=self.cs_source
            )
        made = ", ".join(sorted({"CsPbBr3", *self.materials}))
        raise ParameterError(
            "material",
            f"material {material!r} has no precursors in this lab (reactor.materials); "
            f"it makes {{{made}}}",
        )

    @property
    def cation_sources(self) -> tuple[str, ...]:
        """Every reservoir the injector may draw from (its selector valve's positions)."""
        names = [self.cs_source, *(m.cation_source for m in self.materials.values())]
        return tuple(dict.fromkeys(names))


class LarpConfig(StrictModel):
    """Room-temperature LARP by pipetting: where the reagents and the well plate are."""

    antisolvent: str = "toluene"
    precursor: str = "larp_precursor"
    oleylamine: str = "oleylamine"
    plate: str = "plate"
    antisolvent_ul: float = Field(1000.0, gt=0)
    mix_ul: float = Field(500.0, gt=0)
    read_interval_s: float | None = Field(None, gt=0, allow_inf_nan=False)
    """With a plate-reader fibre over the well: read its absorption and PL every this many
    seconds while the dots grow (the ``insitu`` stream); None: no plate reader. At least the
    spectrometer's acquisition time (:attr:`CellConfig.acquisition_s`)."""


class PumpConfig(StrictModel):
    """A syringe pump: its reagent, syringe size and flow-rate range."""

    source: Contents
    syringe_ul: float = Field(10000.0, gt=0)
    volume_ul: float | None = None
    max_flow_ul_min: float = Field(5000.0, gt=0)


class FlowConfig(HeaterConfig):
    """Flow reactor: pumps, heated coil (the heater fields), pressure limit."""

    pumps: dict[str, PumpConfig]
    coil_volume_ul: float = Field(1000.0, gt=0)
    max_ramp_c_per_min: float = Field(40.0, gt=0)
    mixer_rpm: float = Field(1000.0, ge=0)
    max_mixer_rpm: float = Field(3000.0, gt=0)
    max_pressure_kpa: float = Field(500.0, gt=0)
    kpa_per_ul_min: float = Field(0.02, gt=0)
    sweep_points: int = Field(0, ge=0, le=20)
    """A flow synthesis first measures the product at this many shorter residence times
    (``k/(n+1)`` of the one asked for, the pumps ramped up; each after its own washout) into
    its ``insitu`` stream: the growth curve of one experiment. 0: one measurement."""


def acquisition_s(integration_ms: float) -> float:
    """Seconds one absorption + PL acquisition takes (two exposures and the read-out)."""
    return 2 * integration_ms / 1000.0 + 0.2


class CellConfig(InstrumentConfig):
    """In-situ absorption/PL cell: spectrometer grid, integration time, detector."""

    location: str = "cell"
    fill_ul: float = Field(400.0, gt=0)
    wavelength_min_nm: float = Field(350.0, ge=150.0)  # UV-vis-NIR spectrometers: 150-2500 nm
    wavelength_max_nm: float = Field(650.0, le=2500.0)
    points: int = Field(601, ge=64, le=4096)
    integration_ms: float = Field(100.0, gt=0)
    min_integration_ms: float = Field(1.0, gt=0)
    max_integration_ms: float = Field(10000.0, gt=0)
    saturation_counts: float = Field(65535.0, gt=0)
    dark_counts: float = Field(400.0, ge=0)
    lamp_counts: float = Field(40000.0, gt=0)
    lamp_drift_per_hour: float = Field(0.005, ge=0)
    timeout_s: float = Field(30.0, gt=0)

    @property
    def acquisition_s(self) -> float:
        """The fastest the spectrometer takes spectra: :func:`acquisition_s` at
        ``integration_ms``."""
        return acquisition_s(self.integration_ms)

    @model_validator(mode="after")
    def _ranges(self) -> CellConfig:
        _ordered(self, "wavelength_min_nm", "wavelength_max_nm")
        _ordered(self, "min_integration_ms", "max_integration_ms")
        lo, hi = self.min_integration_ms, self.max_integration_ms
        if not lo <= self.integration_ms <= hi:
            raise ValueError(f"integration_ms {self.integration_ms:g} is outside [{lo:g}, {hi:g}]")
        return self


class FaultConfig(StrictModel):
    """Probability per operation of each injectable fault (simulated backends only)."""

    heater_timeout: float = Field(0.0, ge=0, le=1)
    heater_overshoot: float = Field(0.0, ge=0, le=1)
    pump_stall: float = Field(0.0, ge=0, le=1)
    coil_clog: float = Field(0.0, ge=0, le=1)
    spectrometer_timeout: float = Field(0.0, ge=0, le=1)
    spectrometer_saturation: float = Field(0.0, ge=0, le=1)
    spectrometer_glitch: float = Field(0.0, ge=0, le=1)
    """A corrupt frame from the detector (every count 1e300): an instrument fault."""
    cell_bubble: float = Field(0.0, ge=0, le=1)


class SimulatorConfig(StrictModel):
    """Simulated backend: clock, seed, run-to-run variability, user outcome models."""

    clock: Literal["fast", "realtime"] = "fast"
    speed: float = Field(1.0, ge=0.01, le=1e6)
    """Lab seconds per wall-clock second of a ``realtime`` clock (at 0.01 an hour of lab time
    takes four days of wall clock)."""
    seed: int | None = 0
    variability: bool = True
    outcome_models: dict[str, str] = Field(default_factory=dict)
    twin: str | dict[str, float] | None = None
    """Calibrated twin parameters: a YAML file from ``qdlab calibrate`` or a mapping."""
    faults: FaultConfig = FaultConfig()


class SafetyConfig(StrictModel):
    """What suspends a running plan until it clears (bluesky suspenders, installed by the
    campaign runner and the IPython session), and when a suspension becomes a safety abort."""

    interlock: bool = True
    """The fume-hood/door interlock: open suspends."""
    reactor_ceiling_c: float | None = Field(None, gt=0, le=400)
    """The reactor above this suspends; it resumes below ``(1 - resume_margin)`` times it."""
    pressure_limit_kpa: float | None = Field(None, gt=0)
    """The flow line above this suspends (the pumps' own cut-off is ``flow.max_pressure_kpa``)."""
    resume_margin: float = Field(0.05, ge=0, lt=1)
    abort_after_s: float = Field(120.0, gt=0, le=86400)
    """A suspension that has not cleared after this many (wall-clock) seconds aborts the run:
    the experiment fails with the reason and the campaign pauses."""
    poll_s: float = Field(0.1, gt=0, le=10)
    """How often the watched readings are read (wall-clock seconds)."""


PV_NAME = r"^[A-Za-z0-9_:.\-\[\]<>;$(){}]+$"
"""What a PV's name may hold (EPICS record names and fields, ``NAME.FIELD``)."""


class SetpointReadback(StrictModel):
    """An instrument an ordinary IOC serves as a setpoint and a readback (a hotplate's ``ao``
    and ``ai``, a motor record's ``VAL`` and ``RBV``): no QDLab PV is needed.

    ``settle`` says when a move is done: ``readback`` (the readback stays within ``tolerance``
    of the target for ``hold_s``, as ophyd-async's ``set_and_wait_for_value``), ``put_callback``
    (the IOC completes the put when it has arrived) or ``done`` (the ``done`` PV reads 1 with
    the readback within ``tolerance``, as a motor's ``DMOV``). ``timeout_s`` fails a move that
    has not settled, naming the PV and its last readback.
    """

    setpoint: str = Field(pattern=PV_NAME)
    readback: str = Field(pattern=PV_NAME)
    settle: Literal["readback", "put_callback", "done"] = "readback"
    done: str | None = Field(None, pattern=PV_NAME)
    stop: str | None = Field(None, pattern=PV_NAME)
    """Written 1 to stop a move (a motor's ``STOP``); without it, stopping holds the readback."""
    tolerance: float | None = Field(None, gt=0)
    """Units of the instrument (°C, µL/min); default: the instrument's own (``tolerance_c``)."""
    hold_s: float = Field(1.0, ge=0, le=3600)
    timeout_s: float = Field(600.0, gt=0, le=86400)

    @model_validator(mode="after")
    def _done_pv(self) -> SetpointReadback:
        if self.settle == "done" and self.done is None:
            raise ValueError("settle: done needs the done PV (e.g. 'PUMP1:m1.DMOV')")
        return self


class EpicsConfig(StrictModel):
    """Channel Access: where each device's PVs are (see docs/backends.md for the PV names).

    A PV's name is ``prefix`` + its suffix (``reactor:heater:SP``) unless ``pvs`` maps the
    suffix to a PV of an existing IOC. ``mapped`` serves a heater (``reactor:heater``,
    ``flow:coil``) or a pump (``flow:<pump>``) from an ordinary IOC's setpoint and readback
    (:class:`SetpointReadback`) instead of QDLab's PVs.
    """

    prefix: str = Field("QD:", min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_:.\-]+$")
    connection_timeout_s: float = Field(5.0, gt=0, le=300)
    request_timeout_s: float = Field(3600.0, gt=0, le=86400)
    """Longest a request (a move, a measurement) may take to complete, wall-clock seconds."""
    twin_control: bool = False
    """The IOCs are ``qdlab ioc``: reseed the twin per experiment, as in-process campaigns do."""
    pvs: dict[str, str] = Field(default_factory=dict)
    mapped: dict[str, SetpointReadback] = Field(default_factory=dict)


class SilaConfig(StrictModel):
    """SiLA 2: the server that serves the lab's instruments as the features in
    ``devices/sila_features`` (``qdlab sila serve`` serves the simulated lab that way)."""

    host: str = Field("127.0.0.1", min_length=1, max_length=253, pattern=r"^[A-Za-z0-9_.:\-]+$")
    port: int = Field(50052, ge=1, le=65535)
    insecure: bool = True
    """Plain gRPC (loopback, a closed lab network); ``false``: TLS, ``root_certs`` trusted."""
    root_certs: Path | None = None
    """PEM file of the certificate authority that signed the server's certificate."""
    connection_timeout_s: float = Field(5.0, gt=0, le=300)
    request_timeout_s: float = Field(3600.0, gt=0, le=86400)
    """Longest a command (a move, a measurement) may take to finish, wall-clock seconds."""
    twin_control: bool = False
    """The server is ``qdlab sila serve``: reseed the twin per experiment, as in-process
    campaigns do."""


_DEVICE_NAMES = frozenset({"robot", "reactor", "flow", "cell", "timer", "safety", "reactors"})
"""The lab's own device names, which a reactor of ``reactors`` cannot take."""


class LabConfig(StrictModel):
    """A whole lab. ``backend: simulated`` drives the devices with the physics of ``models``;
    ``backend: epics`` talks to IOCs over Channel Access (``epics:`` says where);
    ``backend: sila2`` to a SiLA 2 server (``sila2:`` says where)."""

    name: str = Field(pattern=PRINTABLE_NAME)
    backend: Literal["simulated", "epics", "sila2"] = "simulated"
    epics: EpicsConfig = EpicsConfig()
    sila2: SilaConfig = SilaConfig()
    robot: RobotConfig
    reactor: ReactorConfig = ReactorConfig()
    reactors: dict[str, ReactorConfig] = Field(default_factory=dict)
    """More hot-injection reactors, by name (``reactor_b: {flask: reactor_flask_b}``), each
    with a flask of its own on the deck and whatever it says beside; what it does not say is
    ``reactor``'s. ``reactor`` is the reactor named ``reactor``; a campaign (``reactor:``) and
    the plan (``hot_injection_synthesis(..., reactor=)``) choose among them by name."""
    larp: LarpConfig = LarpConfig()
    flow: FlowConfig | None = None
    cell: CellConfig = CellConfig()
    instruments: dict[str, KindConfig] = Field(default_factory=dict)
    """Instruments of kinds a package adds, by name (``spin: {kind: centrifuge}``): each is
    ``lab.instruments[name]``, and a synthesis's ``steps`` run their plan steps."""
    safety: SafetyConfig = SafetyConfig()
    simulator: SimulatorConfig = SimulatorConfig()

    @model_validator(mode="before")
    @classmethod
    def _reactors_inherit(cls, data: Any) -> Any:
        """Each of ``reactors`` is ``reactor`` with what it says changed."""
        if not isinstance(data, dict) or not isinstance(data.get("reactors"), dict):
            return data
        base = data.get("reactor") or {}
        if isinstance(base, BaseModel):
            base = base.model_dump(exclude_unset=True)
        extra = {
            name: _merged(base, own) if isinstance(own, dict) else own
            for name, own in data["reactors"].items()
        }
        return {**data, "reactors": extra}

    @field_validator("reactors")
    @classmethod
    def _reactor_names(cls, v: dict[str, ReactorConfig]) -> dict[str, ReactorConfig]:
        for name in v:
            if not re.fullmatch(r"[a-z][a-z0-9_]{0,30}", name) or name in _DEVICE_NAMES:
                raise ValueError(
                    f"reactors.{name}: a reactor's name is 1 to 31 lower-case letters, digits "
                    f"and '_', starting with a letter, and not one of {sorted(_DEVICE_NAMES)}"
                )
        return v

    @model_validator(mode="after")
    def _instrument_names(self) -> LabConfig:
        """A plugin's instrument has a name of its own and a kind that is installed."""
        from devices.plugins import instrument_kinds

        taken = _DEVICE_NAMES | set(self.reactors)
        kinds = sorted(instrument_kinds())
        for name, spec in self.instruments.items():
            if not re.fullmatch(r"[a-z][a-z0-9_]{0,30}", name) or name in taken:
                raise ValueError(
                    f"instruments.{name}: an instrument's name is 1 to 31 lower-case letters, "
                    f"digits and '_', starting with a letter, and not one of {sorted(taken)}"
                )
            if spec.kind not in kinds:
                raise ValueError(
                    f"instruments.{name}.kind: no instrument kind {spec.kind!r} is installed "
                    f"(installed: {', '.join(kinds) or 'none'}; a package's "
                    "'qdlab.instruments' entry point)"
                )
        return self

    @property
    def reactor_names(self) -> list[str]:
        """Every hot-injection reactor's name: ``reactor`` first."""
        return ["reactor", *self.reactors]

    def reactor_config(self, name: str) -> ReactorConfig:
        """The config of the reactor named ``name`` (``reactor`` or one of ``reactors``); a
        :class:`ParameterError` naming the reactors there are otherwise."""
        if name == "reactor":
            return self.reactor
        if name not in self.reactors:
            raise ParameterError(
                "reactor",
                f"no reactor {name!r} in lab {self.name!r}; it has {self.reactor_names}",
            )
        return self.reactors[name]

    @model_validator(mode="after")
    def _locations_exist(self) -> LabConfig:
        deck = self.robot.deck
        lp = self.larp
        places = [
            ("cell.location", self.cell.location),
            ("larp.antisolvent", lp.antisolvent),
            ("larp.precursor", lp.precursor),
            ("larp.oleylamine", lp.oleylamine),
            ("larp.plate", lp.plate),
        ]
        flasks: dict[str, str] = {}
        for name in self.reactor_names:
            r, key = self.reactor_config(name), self.field(name)
            if r.flask in flasks:
                raise ValueError(
                    f"{key}.flask: {r.flask!r} is {flasks[r.flask]}'s flask already; each "
                    "reactor has a flask of its own"
                )
            flasks[r.flask] = name
            places += [
                (f"{key}.flask", r.flask),
                (f"{key}.cs_source", r.cs_source),
                (f"{key}.pb_source", r.pb_source),
                (f"{key}.br_source", r.br_source),
                (f"{key}.waste", r.waste),
                (f"{key}.solvent", r.solvent),
                *((f"{key}.ligand_sources.{k}", v) for k, v in r.ligand_sources.items()),
                *(
                    (f"{key}.materials.{m}.{part}", place)
                    for m, sources in r.materials.items()
                    for part, place in sources.model_dump().items()
                ),
            ]
        for field, name in places:
            if name not in deck:
                raise ValueError(f"{field} {name!r} is not on the robot deck ({sorted(deck)})")
        return self

    def in_situ_setting(self, route: str, reactor: str = "reactor") -> tuple[str, bool]:
        """The setting that makes this lab read a route's growth in situ, and whether it is on
        (a dip probe in ``reactor``'s flask, a flow sweep, a plate reader over the LARP
        well)."""
        if route == "hot_injection":
            probe = self.reactor_config(reactor).in_situ_interval_s
            return f"{self.field(reactor)}.in_situ_interval_s", probe is not None
        if route == "flow":
            return "flow.sweep_points", self.flow is not None and self.flow.sweep_points > 0
        return "larp.read_interval_s", self.larp.read_interval_s is not None

    def at_speed(self, speedup: float | None) -> LabConfig:
        """This lab with its simulated clock at ``speedup`` lab seconds per wall-clock second
        (``None``: as fast as the CPU allows), as a workcell, ``qdlab ioc`` and ``qdlab sila
        serve`` run it."""
        clock = {"clock": "fast"} if speedup is None else {"clock": "realtime", "speed": speedup}
        return self.model_copy(update={"simulator": self.simulator.model_copy(update=clock)})

    def section(self, instrument: str) -> Any:
        """The config section of ``instrument`` (``robot``, ``reactor``, one of ``reactors``,
        ``flow``, ``cell``)."""
        if instrument in self.reactors:
            return self.reactors[instrument]
        return getattr(self, instrument)

    def field(self, instrument: str) -> str:
        """Where ``instrument``'s section is in the lab config (``reactors.reactor_b``)."""
        return f"reactors.{instrument}" if instrument in self.reactors else instrument

    def instrument_backend(self, instrument: str) -> str:
        """The backend that drives ``instrument``: its own, or the lab's."""
        return self.section(instrument).backend or self.backend

    @model_validator(mode="after")
    def _instrument_backends(self) -> LabConfig:
        from devices.plugins import installed

        plugins = sorted(installed())
        for instrument in ("robot", "reactor", *self.reactors, "flow", "cell"):
            section = self.section(instrument)
            chosen = None if section is None else section.backend
            own = [self.backend, *(["pylabrobot"] if instrument == "robot" else [])]
            heater = heater_key(self, instrument)
            if self.backend == "simulated" and heater is not None:
                own.append("epics")  # its heater from an ordinary IOC, the rest simulated
                if chosen == "epics" and heater not in self.epics.mapped:
                    raise ValueError(
                        f"{self.field(instrument)}.backend: epics in a simulated lab drives "
                        f"the {instrument}'s heater from an ordinary IOC: map it under "
                        f"epics.mapped.{heater} (setpoint, readback)"
                    )
            if chosen is None or chosen in own or chosen in plugins:
                continue
            raise ValueError(
                f"{self.field(instrument)}.backend: {chosen!r} cannot drive the {instrument} of a "
                f"{self.backend} lab; allowed: {', '.join([*own, *plugins])} (a plugin: a "
                "package's 'qdlab.backends' entry point), or leave it out"
            )
        return self

    @model_validator(mode="after")
    def _epics_names(self) -> LabConfig:
        """Every key under ``epics.pvs`` and ``epics.mapped`` names something this lab has (a
        misspelt one would silently leave the default PV in use)."""
        can_map = mappable(self)
        for key in self.epics.mapped:
            if key not in can_map:
                raise ValueError(
                    f"epics.mapped.{key}: not an instrument of this lab that a setpoint and "
                    f"readback can serve; allowed: {', '.join(can_map)}"
                )
        known = set(_every_suffix(self))
        for key in self.epics.pvs:
            if key not in known:
                near = difflib.get_close_matches(key, sorted(known), n=1)
                hint = f" (did you mean {near[0]!r}?)" if near else ""
                raise ValueError(
                    f"epics.pvs.{key}: not a PV suffix of this lab{hint}; the suffixes are "
                    "listed by `qdlab lab check` and docs/backends.md"
                )
        return self

    @model_validator(mode="after")
    def _probe(self) -> LabConfig:
        for field, interval in (
            ("reactor.in_situ_interval_s", self.reactor.in_situ_interval_s),
            ("larp.read_interval_s", self.larp.read_interval_s),
        ):
            if interval is not None and interval < self.cell.acquisition_s:
                raise ValueError(
                    f"{field} {interval:g} s is shorter than one acquisition "
                    f"({self.cell.acquisition_s:g} s at cell.integration_ms "
                    f"{self.cell.integration_ms:g}); allowed: >= {self.cell.acquisition_s:g} s"
                )
        return self


# The PVs an EPICS lab is served by (named here, where the lab is described, so that a
# config refuses a key naming no PV before any connection is tried).

CELL_READINGS = {
    "absorbance": "cell:ABS",
    "pl": "cell:PL",
    "pl_peak": "cell:PL_PEAK",
    "pl_fwhm": "cell:PL_FWHM",
    "abs_peak": "cell:ABS_PEAK",
    "plqy_est": "cell:PLQY",
    "pl_max_counts": "cell:PL_MAX",
    "saturated": "cell:SATURATED",
    "spikes": "cell:SPIKES",
    "reference_age": "cell:REF_AGE",
    "sample_age": "cell:SAMPLE_AGE",
}
"""Optical-cell component -> the PV suffix that carries it after ``cell:ACQ``."""

_HEATER = ("RBV", "SP", "RAMP", "TOL", "HOLD", "MSG")
_PUMP = ("RBV", "SP", "REMAIN", "STALLED", "STOP", "REFILL", "MSG")


def mappable(config: LabConfig) -> list[str]:
    """The instruments of a lab that an ordinary IOC's setpoint and readback can serve
    (``epics.mapped`` keys): its heaters and pumps."""
    out = [f"{name}:heater" for name in config.reactor_names]
    if config.flow is not None:
        out += ["flow:coil", *(f"flow:{p}" for p in config.flow.pumps)]
    return out


MAPPED_SUFFIX = {"setpoint": "SP", "readback": "RBV", "done": "DONE", "stop": "STOP"}
"""A mapped instrument's PVs, by the suffix each stands in for."""


def _instrument(config: LabConfig, prefix: str, own: tuple[str, ...]) -> list[str]:
    """An instrument's suffixes: QDLab's ``own``, or those of its mapped setpoint/readback."""
    mapped = config.epics.mapped.get(prefix)
    if mapped is None:
        return [f"{prefix}:{s}" for s in own]
    return [f"{prefix}:{s}" for key, s in MAPPED_SUFFIX.items() if getattr(mapped, key) is not None]


def heater_key(config: LabConfig, instrument: str) -> str | None:
    """The ``epics.mapped`` key of ``instrument``'s heater (``reactor_b:heater``,
    ``flow:coil``), or None for an instrument without one."""
    if instrument == "flow":
        return "flow:coil" if config.flow is not None else None
    return f"{instrument}:heater" if instrument in config.reactor_names else None


def pv_suffixes(config: LabConfig) -> list[str]:
    """Every PV suffix the lab's devices use: all of them over EPICS; in a simulated lab, those
    of the heaters its instruments take from ordinary IOCs (``backend: epics``)."""
    if config.backend == "epics":
        return _every_suffix(config)
    instruments = [*config.reactor_names, *(["flow"] if config.flow is not None else [])]
    return [
        suffix
        for name in instruments
        if config.section(name).backend == "epics"
        for suffix in _instrument(config, heater_key(config, name), _HEATER)
    ]


def _every_suffix(config: LabConfig) -> list[str]:
    """Every PV suffix a lab over EPICS has."""
    out = ["CLOCK", "SPEEDUP", "timer:WAIT", "timer:MSG"]
    for name in config.reactor_names:
        out += _instrument(config, f"{name}:heater", _HEATER)
        out += [f"{name}:{s}" for s in ("SOURCE", "INJECT", "QUENCH", "GROWTH", "MSG")]
    if config.robot.backend in (None, "epics"):
        out += [f"robot:{s}" for s in ("ACTION", "MSG", "TIPS", "HELD", "RELOAD", "DECK")]
        out += ["robot:VOLUMES", "robot:FRESH"]
    if config.flow is not None:
        out += _instrument(config, "flow:coil", _HEATER)
        for p in config.flow.pumps:
            out += _instrument(config, f"flow:{p}", _PUMP)
        out += ["flow:LIGAND", "flow:MIXER", "flow:PRESSURE", "flow:UNCLOG"]
    out += ["cell:DARK", "cell:REF", "cell:ACQ", "cell:MSG", *CELL_READINGS.values()]
    probes = [config.reactor_config(n).in_situ_interval_s for n in config.reactor_names]
    if any(p is not None for p in probes) or config.larp.read_interval_s is not None:
        out.append("cell:VIEW")  # the fibre switch: cell, a reactor's dip probe, plate
    out.append("safety:HOOD_OPEN")
    if config.epics.twin_control:
        out.append("sim:RESEED")
    return out


def validation_message(exc: ValidationError, source: str) -> str:
    """One line naming the first invalid field and what is allowed (and the value given, when
    it is short enough to read)."""
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "(top level)"
    msg = err["msg"]
    if err["type"] == "extra_forbidden":
        msg = "unknown key"
    given = err.get("input")
    shown = "" if isinstance(given, dict | list) or len(repr(given)) > 80 else f" (got {given!r})"
    return f"{source}: {where}: {msg}{shown}"


def _merged(base: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in changes.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merged(out[key], value)
        else:
            out[key] = value
    return out


def _with_base(
    data: Mapping[str, Any], path: Path, label: str, seen: tuple[Path, ...] = ()
) -> dict[str, Any]:
    """``base: other.yaml``: that lab's fields (and its own base's, in a chain), with this
    file's on top (mappings merged); a chain that comes back to a file is refused."""
    base = data["base"]
    if not isinstance(base, str):
        raise ConfigError(f"{label}: base: expected the path of a lab config, got {base!r}")
    base_path = path.parent / base
    chain = (*seen, path.resolve())
    if base_path.resolve() in chain:
        names = " -> ".join(p.name for p in (*chain, base_path.resolve()))
        raise ConfigError(f"{label}: base: the chain of bases comes back to a file ({names})")
    base_data, _ = read_yaml(base_path, "lab config")
    if not isinstance(base_data, Mapping):
        raise ConfigError(f"{label}: base {base!r}: expected a mapping at the top level")
    if "base" in base_data:
        base_data = _with_base(base_data, base_path, str(base_path), chain)
    return _merged(base_data, {k: v for k, v in data.items() if k != "base"})


def load_lab_config(source: str | Path | Mapping[str, Any]) -> LabConfig:
    """Read and validate a lab config from a YAML path or a mapping.

    Raises
    ------
    ConfigError
        Missing file, invalid YAML, or a field outside what is allowed (named in the message).
    """
    if isinstance(source, Mapping):
        data, label = dict(source), "lab config"
    else:
        data, _ = read_yaml(source, "lab config")
        label = str(source)
        if not isinstance(data, Mapping):
            raise ConfigError(f"{label}: expected a mapping at the top level")
        if "base" in data:
            data = _with_base(data, Path(source), label)
    try:
        config = LabConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(validation_message(exc, label)) from None
    twin = config.simulator.twin
    if isinstance(twin, str) and not isinstance(source, Mapping):
        resolved = (Path(source).parent / twin) if not Path(twin).is_absolute() else Path(twin)
        if not resolved.is_file():
            raise ConfigError(f"{label}: simulator.twin file {twin!r} does not exist")
        config = config.model_copy(
            update={
                "simulator": config.simulator.model_copy(update={"twin": str(resolved.resolve())})
            }
        )
    return config

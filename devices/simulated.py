"""The simulated backends: what each device does when the lab is the digital twin.

Every device class (:mod:`devices.heater`, :mod:`devices.reactor`, :mod:`devices.robot`,
:mod:`devices.flow`, :mod:`devices.cell`) declares its interface and checks its limits; the
classes here do the work on the :class:`~devices.world.SimulatedWorld` and the lab's
:class:`~devices.clock.VirtualClock`, with the physics of :mod:`models` and the injectable
faults of the lab config. A backend answers a request with an ophyd Status that finishes (or
fails, with the reason) after the simulated duration.

Thermal response of the simulated heater
----------------------------------------
After a new setpoint :math:`T_{sp}` at :math:`t_0`, the controller ramps its internal target at
``ramp`` °C/min for :math:`t_r = |T_{sp} - T_0| / \\mathrm{ramp}`; the vessel follows with a
first-order lag :math:`\\tau`:

.. math::  T(t) = T_0 + k\\,[t - \\tau(1 - e^{-t/\\tau})], \\quad t < t_r

and after the ramp relaxes exponentially onto :math:`T_{sp}`, plus a small overshoot bump
:math:`a\\,\\Delta T\\, (s/\\tau)\\, e^{1 - s/\\tau}` (:math:`s = t - t_r`). A move finishes
when the temperature has settled within the tolerance for good.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np
from ophyd.status import Status
from ophyd.utils import LimitError
from scipy.ndimage import median_filter

from devices.base import Step, run_step
from devices.cell import wavelength_grid
from devices.clock import VirtualClock
from devices.config import CellConfig, FlowConfig, HeaterConfig, PumpConfig, acquisition_s
from devices.flow import residence_time_s
from devices.robot import Aspirate, Dispense, RobotAction, Transfer
from devices.world import Liquid, Sample, SimulatedWorld, WorldError, copy_stream
from models.analysis import analyse_spectra
from models.optics import hot_population
from models.simulation import render_spectra
from models.synthesis import yellow_phase_fraction

__all__ = [
    "SimCell",
    "SimFlow",
    "SimHeater",
    "SimInterlock",
    "SimReactor",
    "SimRobot",
    "ThermalModel",
]

_PUMP_RESPONSE_S = 2.0

_READ_NOISE = 4.0
_REFERENCE_SCANS = 16  # lamp spectra averaged per absorbance measurement

_INJECTION_S = 1.0
_QUENCH_S = 5.0


class ThermalModel:
    """Simulated vessel temperature on the virtual clock (see the module docstring)."""

    def __init__(
        self, clock: VirtualClock, ambient_c: float, time_constant_s: float, overshoot: float
    ) -> None:
        self.clock = clock
        self.tau = time_constant_s
        self.overshoot = overshoot
        self._t0 = clock.now()
        self._start_c = ambient_c
        self._end_c = ambient_c
        self._ramp_c_per_s = 1.0
        self._bump = 0.0
        self._setpoint = ambient_c
        self._stalled = False
        self._grid = np.array([self._t0])
        self._temps = np.array([ambient_c])

    def temperature(self, t: float | np.ndarray | None = None) -> float | np.ndarray:
        """Vessel temperature (°C) at virtual time ``t`` (default: now)."""
        t = self.clock.now() if t is None else t
        dt = np.maximum(np.asarray(t, dtype=float) - self._t0, 0.0)
        delta = self._end_c - self._start_c
        t_ramp = abs(delta) / self._ramp_c_per_s
        k = np.sign(delta) * self._ramp_c_per_s
        tau = self.tau

        def lagged_ramp(s: np.ndarray) -> np.ndarray:
            return self._start_c + k * (s - tau * (1.0 - np.exp(-s / tau)))

        after = dt - t_ramp
        at_ramp_end = lagged_ramp(np.asarray(t_ramp))
        settling = self._end_c - (self._end_c - at_ramp_end) * np.exp(-np.maximum(after, 0) / tau)
        bump = (
            self._bump
            * delta
            * (np.maximum(after, 0) / tau)
            * np.exp(1 - np.maximum(after, 0) / tau)
        )
        value = np.where(dt < t_ramp, lagged_ramp(dt), settling + bump)
        return float(value) if np.ndim(value) == 0 else value

    def start(
        self,
        setpoint_c: float,
        ramp_c_per_min: float,
        overshoot_scale: float = 1.0,
        reach_fraction: float = 1.0,
    ) -> float:
        """Begin a move towards ``setpoint_c``; return the extreme temperature it will pass.

        ``reach_fraction`` < 1 models a heater that stalls short of the setpoint (a fault): it
        never settles.
        """
        now = self.clock.now()
        start = self.temperature(now)
        self._t0, self._start_c = now, start
        self._end_c = start + reach_fraction * (setpoint_c - start)
        self._ramp_c_per_s = ramp_c_per_min / 60.0
        self._bump = self.overshoot * overshoot_scale
        self._setpoint = setpoint_c
        self._stalled = reach_fraction < 1.0
        t_ramp = abs(self._end_c - start) / self._ramp_c_per_s
        self._grid = now + np.concatenate(
            [np.linspace(0.0, t_ramp, 200), t_ramp + np.linspace(0.0, 40.0 * self.tau, 4001)]
        )
        self._temps = self.temperature(self._grid)
        return float(self._temps.max() if setpoint_c >= start else self._temps.min())

    def settle_time(self, tolerance_c: float) -> float:
        """Seconds from the last start until within ``tolerance_c`` of the setpoint for good."""
        if self._stalled:
            return float("inf")
        outside = np.abs(self._temps - self._setpoint) > tolerance_c
        if not outside.any():
            return 0.0
        last = int(np.nonzero(outside)[0].max())
        if last + 1 >= len(self._grid):
            return float("inf")
        return float(self._grid[last + 1] - self._grid[0])


class SimHeater:
    """A simulated heater (see the module docstring): a :class:`ThermalModel`, an
    over-temperature interlock at the config's maximum, and the faults ``heater_timeout`` (it
    stalls short of the setpoint) and ``heater_overshoot``."""

    def __init__(
        self,
        name: str,
        clock: VirtualClock,
        config: HeaterConfig,
        ambient_c: float,
        fault: Callable[[str], bool],
    ) -> None:
        self.name = name
        self.clock = clock
        self.model = ThermalModel(
            clock, ambient_c, config.time_constant_s, config.overshoot_fraction
        )
        self.max_temperature_c = config.max_temperature_c
        self.timeout_s = config.heat_timeout_s
        self._fault = fault
        self._ramp_c_per_min = config.ramp_c_per_min

    def temperature(self) -> float:
        return float(self.model.temperature())

    def start(self, setpoint_c: float, ramp_c_per_min: float, tolerance_c: float) -> Status:
        stall = self._fault("heater_timeout")
        overshoot = 12.0 if self._fault("heater_overshoot") else 1.0
        self._ramp_c_per_min = ramp_c_per_min
        model = self.model
        hottest = model.start(
            setpoint_c, ramp_c_per_min, overshoot, reach_fraction=0.6 if stall else 1.0
        )
        # settle inside 90 % of the tolerance, as controllers do, so "settled" stays in tolerance
        settle = model.settle_time(0.9 * tolerance_c)
        if hottest > self.max_temperature_c:
            self.hold()
            error: BaseException = RuntimeError(
                f"{self.name}: over-temperature interlock tripped at {hottest:.1f} °C "
                f"(limit {self.max_temperature_c:g} °C) while heating to {setpoint_c:g} °C"
            )
            return run_step(self.clock, Step(0.0, error=error), self)
        if settle > self.timeout_s:
            error = TimeoutError(
                f"{self.name} did not settle at {setpoint_c:g} °C within {self.timeout_s:g} s "
                f"(reads {model.temperature(self.clock.now() + self.timeout_s):.1f} °C)"
            )
            return run_step(self.clock, Step(self.timeout_s, error=error), self)
        return run_step(self.clock, Step(settle), self)

    def hold(self) -> None:
        self.model.start(self.model.temperature(), self._ramp_c_per_min)


class SimReactor:
    """The simulated flask: reaction bookkeeping on the :class:`SimulatedWorld`."""

    def __init__(
        self,
        world: SimulatedWorld,
        flask: str,
        source: str,
        temperature: Callable[[], float] | None = None,
        name: str = "reactor",
    ) -> None:
        self.world = world
        self.name = name
        self.clock = world.clock
        self.flask = flask
        self.source = source
        self.injected_at: float | None = None
        self.injection_temperature_c: float | None = None
        self.quenched_at: float | None = None
        self._batch: np.random.Generator | None = None  # the chemistry stream at injection
        world.flask_views[name] = self.in_situ
        self.temperature = temperature  # the flask's, °C (its heater): what the probe sits in

    def growth_time(self) -> float:
        """Seconds since injection (frozen at the quench); NaN before injection."""
        if self.injected_at is None:
            return math.nan
        end = self.quenched_at if self.quenched_at is not None else self.clock.now()
        return end - self.injected_at

    def inject(self, volume_ul: float, temperature_c: float) -> Status:
        """Inject Cs-oleate into the loaded, hot flask."""
        flask = self.world.location(self.flask).liquid
        if flask.pb_umol <= 0:
            raise WorldError(f"{self.flask} holds no Pb precursor: load it first")
        if flask.sample is not None or (self.injected_at is not None and self.quenched_at is None):
            raise WorldError(f"{self.flask} has already reacted: empty it first")
        self.world.check_transfer(self.source, self.flask, volume_ul)

        def act() -> None:
            self.world.transfer(self.source, self.flask, volume_ul)
            self.injected_at = self.clock.now()
            self.injection_temperature_c = temperature_c
            self.quenched_at = None
            self._batch = copy_stream(self.world.chemistry_rng)

        return run_step(self.clock, Step(_INJECTION_S, action=act), self)

    def select_source(self, source: str) -> None:
        """Draw the next injection from the deck location ``source``."""
        self.world.location(source)  # raises for a location the deck does not have
        self.source = source

    def quench(self, growth_time_s: float) -> Status:
        """Quench ``growth_time_s`` after injection (at once if that moment has passed)."""
        if self.injected_at is None or self.quenched_at is not None:
            raise WorldError("nothing to quench: inject first")
        wait = max(0.0, self.injected_at + growth_time_s - self.clock.now())

        def act() -> None:
            self.quenched_at = self.clock.now() - _QUENCH_S
            flask = self.world.location(self.flask).liquid
            flask.sample = self.world.make_sample("hot_injection", self._conditions())

        return run_step(self.clock, Step(wait + _QUENCH_S, action=act), self)

    def _conditions(self) -> dict[str, Any]:
        """What the flask's contents, the injection and the growth so far make."""
        flask = self.world.location(self.flask).liquid
        ligands = flask.ligand_ul or {"oa_olam": 1.0}
        # the lab's standard load (reactor.ligand_ul per batch_pb_umol of Pb) is amount 1
        standard = self.world.config.reactor_config(self.name)
        per_pb = sum(flask.ligand_ul.values()) / flask.pb_umol if flask.ligand_ul else None
        return {
            "br_pb_ratio": (flask.br_umol + flask.i_umol) / flask.pb_umol,
            "temperature_c": self.injection_temperature_c,
            "ligand": max(ligands, key=ligands.get),
            "time_s": self.growth_time(),
            "material": self.world.material_of(flask),
            "ligand_amount": 1.0
            if per_pb is None
            else per_pb * standard.batch_pb_umol / standard.ligand_ul,
        }

    def in_situ(self, now: float) -> Sample | None:
        """What a dip probe in the flask sees at ``now``: nothing before injection; while the
        dots grow, the batch as grown so far (its own chemistry stream, so the trajectory ends
        at the product the quench fixes) in the mixture at the flask's temperature; after the
        quench, the product."""
        if self.injected_at is None or self._batch is None:
            return None
        flask = self.world.location(self.flask).liquid
        if self.quenched_at is not None:
            return flask.sample
        conditions = {**self._conditions(), "time_s": max(now - self.injected_at, 1e-3)}
        sample = self.world.make_sample(
            "hot_injection", conditions, chemistry=copy_stream(self._batch)
        )
        hot_c = self.temperature() if self.temperature is not None else conditions["temperature_c"]
        return replace(sample, conditions={**sample.conditions, "in_situ_c": hot_c})


class SimRobot:
    """The simulated deck and pipette: liquid moves between :class:`SimulatedWorld` locations,
    tips are counted, and each trip takes ``seconds_per_transfer``."""

    def __init__(
        self,
        name: str,
        world: SimulatedWorld,
        max_volume_ul: float,
        tips: int,
        seconds_per_transfer: float,
    ) -> None:
        self.name = name
        self.world = world
        self.clock = world.clock
        self.max_volume_ul = max_volume_ul
        self._tip_count = tips
        self._tip_on = False
        self._held_liquid: Liquid | None = None
        self._seconds_per_trip = seconds_per_transfer

    def locations(self) -> list[str]:
        return list(self.world.locations)

    def volume_of(self, location: str) -> float:
        return self.world.location(location).liquid.volume_ul

    def fresh_wells(self, plate: str) -> list[str]:
        return [
            name
            for name, loc in self.world.locations.items()
            if name.startswith(f"{plate}:")
            and loc.liquid.volume_ul == 0
            and loc.reaction_started_at is None
        ]

    def tips_left(self) -> int:
        return self._tip_count

    def held_ul(self) -> float:
        return self._held_liquid.volume_ul if self._held_liquid is not None else 0.0

    def reload_tips(self, count: int) -> None:
        self._tip_count = count

    def drop_tip(self) -> None:
        """Drop the tip (a transfer done as aspirates and dispenses, trip by trip)."""
        self._tip_on = False

    def check(self, action: RobotAction) -> None:
        self._plan(action)  # raises if impossible; nothing changes

    def do(self, action: RobotAction) -> Status:
        return run_step(self.clock, self._plan(action), self)

    def _need_tip(self) -> None:
        if not self._tip_on and self._tip_count <= 0:
            raise WorldError(f"{self.name} is out of tips: reload the tip rack")

    def _plan(self, action: RobotAction) -> Step:
        world = self.world
        trip = self._seconds_per_trip
        if isinstance(action, Transfer):
            self._need_tip()
            if self._held_liquid is not None:
                raise WorldError(f"{self.name} holds liquid: dispense it before a transfer")
            world.check_transfer(action.source, action.dest, action.volume_ul)
            trips = math.ceil(action.volume_ul / self.max_volume_ul)

            def act() -> None:
                world.transfer(action.source, action.dest, action.volume_ul)
                if not self._tip_on:
                    self._tip_count -= 1
                self._tip_on = False  # dropped after the transfer

            return Step(trip * trips, act)
        if isinstance(action, Aspirate):
            self._need_tip()
            if self.held_ul() + action.volume_ul > self.max_volume_ul:
                raise LimitError(
                    f"{self.name}: holding {self.held_ul():.10g} µL, cannot aspirate "
                    f"{action.volume_ul:.10g} µL more "
                    f"(pipette max {self.max_volume_ul:.10g} µL)"
                )
            world.check_take(action.source, action.volume_ul)

            def act() -> None:
                part = world.take(action.source, action.volume_ul)
                if self._held_liquid is None:
                    self._held_liquid = part
                else:
                    self._held_liquid.add(part)
                if not self._tip_on:
                    self._tip_count -= 1
                    self._tip_on = True

            return Step(trip / 2, act)
        if isinstance(action, Dispense):
            if self.held_ul() + 1e-9 < action.volume_ul:
                raise WorldError(
                    f"{self.name} holds {self.held_ul():.10g} µL, cannot dispense "
                    f"{action.volume_ul:.10g} µL"
                )
            world.check_receive(action.dest, action.volume_ul)

            def act() -> None:
                part = self._held_liquid.take(action.volume_ul)
                world.receive(action.dest, part)
                if self._held_liquid.volume_ul <= 1e-9:
                    self._held_liquid = None

            return Step(trip / 2, act)
        # Mix: liquid must be there to mix
        here = world.location(action.location)
        if here.liquid.volume_ul + 1e-9 < action.volume_ul:
            raise WorldError(
                f"{action.location} holds {here.liquid.volume_ul:.10g} µL, cannot mix "
                f"{action.volume_ul:.10g} µL"
            )
        self._need_tip()

        def act() -> None:
            if not self._tip_on:
                self._tip_count -= 1
            self._tip_on = False

        return Step(trip / 2 + 2.0 * action.cycles, act)


class SimCell:
    """The simulated spectrometer (see :mod:`devices.cell`): a lamp that drifts, dark counts,
    shot and read noise, the detector's saturation, and the faults ``spectrometer_timeout``,
    ``spectrometer_saturation``, ``spectrometer_glitch`` and ``cell_bubble``; or, in playback,
    recorded readings."""

    def __init__(self, name: str, world: SimulatedWorld, config: CellConfig) -> None:
        self.name = name
        self.world = world
        self.clock = world.clock
        self.config = config
        self._grid = wavelength_grid(config)
        self._dark: np.ndarray | None = None
        self._reference: np.ndarray | None = None
        self._reference_at = math.nan
        self._reading: dict[str, Any] = {}
        self._playback: list[dict[str, Any]] | None = None

    def play(self, readings: list[dict[str, Any]]) -> None:
        """Serve these readings (component name -> value), one per measurement, in order."""
        self._playback = list(readings)

    def reading(self) -> dict[str, Any]:
        return self._reading

    def select_view(self, view: str) -> None:
        self.world.spectrometer_view = view

    # -- instrument model -----------------------------------------------------------------
    def _lamp(self) -> np.ndarray:
        drift = 1.0 + self.config.lamp_drift_per_hour * self.world.clock.elapsed() / 3600.0
        shape = np.exp(-0.5 * ((self._grid - 480.0) / 160.0) ** 2)
        return self.config.lamp_counts * drift * shape

    def _noisy(self, counts: np.ndarray, scans: int = 1) -> np.ndarray:
        rng = self.world.noise_rng
        sigma = np.sqrt(np.abs(counts) + _READ_NOISE**2) / math.sqrt(scans)
        return counts + sigma * rng.standard_normal(counts.shape)

    def _dark_frame(self) -> np.ndarray:
        return self._noisy(np.full_like(self._grid, self.config.dark_counts), _REFERENCE_SCANS)

    def _sample_spectra(self) -> tuple[np.ndarray, np.ndarray]:
        sample = self.world.cell_sample()
        if sample is None:
            return np.zeros_like(self._grid), np.zeros_like(self._grid)
        populations = {
            k: np.array(
                [
                    p.get(k, np.nan) * (w if k == "concentration" else 1.0)
                    for w, p in sample.components
                ]
            )
            for k in sample.components[0][1]
        }
        material = sample.conditions.get("material", "CsPbBr3")
        if "in_situ_c" in sample.conditions:  # the hot reaction mixture, through the probe
            populations = hot_population(populations, sample.conditions["in_situ_c"])
        elif "material" in sample.conditions:  # hot injection: CsPbI3 yellows while it waits
            age_s = self.clock.now() - sample.made_at
            populations["plqy"] = populations["plqy"] * (
                1.0
                - yellow_phase_fraction(
                    populations["edge_length_nm"], sample.conditions["ligand"], age_s, material
                )
            )
        absorbance, pl = render_spectra(populations, self._grid, material)
        return absorbance.sum(axis=0), pl.sum(axis=0)

    def acquire_dark(self, integration_ms: float) -> Status:
        """Take a dark spectrum (shutter closed)."""

        def act() -> None:
            self._dark = self._dark_frame()

        return run_step(self.clock, Step(integration_ms / 1000.0 + 0.5, act), self)

    def acquire_reference(self, integration_ms: float) -> Status:
        """Take a lamp reference through the cell with solvent (the blank for absorbance)."""

        def act() -> None:
            if self._dark is None:
                self._dark = self._dark_frame()
            self._take_reference(blank_absorbance=self._sample_spectra()[0])

        return run_step(self.clock, Step(integration_ms / 1000.0 + 0.5, act), self)

    def _take_reference(self, blank_absorbance: np.ndarray | float = 0.0) -> None:
        """Lamp light through a blank of ``blank_absorbance`` (averaged scans), and when."""
        self._reference = self._noisy(
            self._lamp() * 10.0 ** (-blank_absorbance) + self.config.dark_counts,
            _REFERENCE_SCANS,
        )
        self._reference_at = self.clock.now()

    def measure(self, integration_ms: float) -> Status:
        """Acquire absorption and PL; the Status finishes after twice the integration time."""
        if self.world.fault("spectrometer_timeout"):
            error = TimeoutError(
                f"{self.name}: spectrometer did not answer within {self.config.timeout_s:g} s"
            )
            return run_step(self.clock, Step(self.config.timeout_s, error=error), self)

        def act() -> None:
            self._reading = (
                self._play_next() if self._playback is not None else self._measure(integration_ms)
            )

        return run_step(self.clock, Step(acquisition_s(integration_ms), act), self)

    def _play_next(self) -> dict[str, Any]:
        if not self._playback:
            raise RuntimeError(f"{self.name}: no recorded reading left to play back")
        return self._playback.pop(0)

    def _measure(self, integration_ms: float) -> dict[str, Any]:
        cfg = self.config
        if self._dark is None or self._reference is None:  # as the vendor software does
            self._dark = self._dark_frame()
            self._take_reference()
        true_abs, true_pl = self._sample_spectra()
        bubble = self.world.fault("cell_bubble")
        stray = 100.0 if self.world.fault("spectrometer_saturation") else 1.0

        transmitted = self._noisy(
            self._lamp() * 10.0 ** (-true_abs) + cfg.dark_counts, _REFERENCE_SCANS
        )
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = (transmitted - self._dark) / (self._reference - self._dark)
            absorbance = -np.log10(np.clip(ratio, 1e-4, None))
        scale = integration_ms / 100.0
        raw = self._noisy(true_pl * scale * stray + cfg.dark_counts)
        if bubble:
            rng = self.world.noise_rng
            hits = rng.choice(self._grid.size, size=8, replace=False)
            raw[hits] += rng.uniform(5e3, 2e4, hits.size)
            absorbance[hits] += rng.uniform(0.3, 1.0, hits.size)
        raw = np.minimum(raw, cfg.saturation_counts)
        saturated = bool(np.any(raw >= cfg.saturation_counts))
        pl = raw - self._dark

        residual = pl - median_filter(pl, size=7, mode="nearest")
        noise = 1.4826 * np.median(np.abs(residual)) + 1e-9
        spikes = int(np.sum(residual > 12.0 * noise))
        if self.world.fault("spectrometer_glitch"):  # a corrupt frame, as a USB link can give
            pl = np.full_like(pl, 1e300)
        with np.errstate(over="ignore", invalid="ignore"):
            obs = analyse_spectra(self._grid, absorbance, pl / scale)
        return {
            "absorbance": absorbance.tolist(),
            "pl": pl.tolist(),
            "pl_peak": float(obs["pl_peak_nm"][0]),
            "pl_fwhm": float(obs["pl_fwhm_nm"][0]),
            "abs_peak": float(obs["abs_peak_nm"][0]),
            "plqy_est": float(obs["plqy_est"][0]),
            "pl_max_counts": float(raw.max()),
            "saturated": int(saturated),
            "spikes": spikes,
            "reference_age": self.clock.now() - self._reference_at,
            "sample_age": self.world.viewed_age(),
        }


class _SimPump:
    """One simulated syringe: its rate and what is left, on the clock."""

    def __init__(self, name: str, clock: VirtualClock, config: PumpConfig) -> None:
        self.name = name
        self.clock = clock
        self.config = config
        self.stalled = False
        self._volume_at_change = config.syringe_ul if config.volume_ul is None else config.volume_ul
        self._changed_at = clock.now()
        self._rate_now = 0.0

    def remaining(self) -> float:
        used = self._rate_now * (self.clock.now() - self._changed_at) / 60.0
        return max(self._volume_at_change - used, 0.0)

    def rate(self) -> float:
        return self._rate_now if self.remaining() > 0 and not self.stalled else 0.0

    def apply(self, rate: float) -> None:
        self._volume_at_change = self.remaining()
        self._changed_at = self.clock.now()
        self._rate_now = rate

    def refill(self, volume_ul: float | None) -> None:
        self._volume_at_change = self.config.syringe_ul if volume_ul is None else volume_ul
        self._changed_at = self.clock.now()
        self.stalled = False


class SimFlow:
    """The simulated flow reactor (see :mod:`devices.flow`): pumps on the clock, the outlet's
    product from the flow route's physics with the coil's washout, pressure from the flow, and
    the faults ``pump_stall`` and ``coil_clog``."""

    def __init__(
        self, name: str, world: SimulatedWorld, config: FlowConfig, coil: SimHeater
    ) -> None:
        self.name = name
        self.world = world
        self.clock = world.clock
        self.config = config
        self.coil = coil
        self.pumps = {n: _SimPump(f"{name}_{n}", self.clock, c) for n, c in config.pumps.items()}
        self.ligand = "oa_olam"
        self.mixer_rpm = config.mixer_rpm
        self._clog = 1.0
        self._steady_key: tuple | None = None
        self._steady: Sample | None = None
        self._previous: Sample | None = None
        self._changed_at = 0.0
        world.flow_outlet = self.outlet_sample

    def rate(self, pump: str) -> float:
        return self.pumps[pump].rate()

    def remaining(self, pump: str) -> float:
        return self.pumps[pump].remaining()

    def stalled(self, pump: str) -> bool:
        return self.pumps[pump].stalled

    def stop_pump(self, pump: str) -> None:
        self.pumps[pump].apply(0.0)

    def refill(self, pump: str, volume_ul: float | None = None) -> None:
        self.pumps[pump].refill(volume_ul)

    def set_ligand(self, ligand: str) -> None:
        self.ligand = ligand

    def set_mixer(self, rpm: float) -> None:
        self.mixer_rpm = rpm

    def unclog(self) -> None:
        self._clog = 1.0

    def _total(self) -> float:
        return sum(p.rate() for p in self.pumps.values())

    def _residence(self) -> float:
        return residence_time_s(self.config.coil_volume_ul, self._total())

    def pressure(self) -> float:
        return self._total() * self.config.kpa_per_ul_min * self._clog

    def set_rate(self, pump: str, rate_ul_min: float) -> Status:
        target = self.pumps[pump]
        if self.world.fault("pump_stall") and rate_ul_min > 0:
            target.apply(0.0)
            target.stalled = True
            error = RuntimeError(
                f"{target.name} stalled (motor current limit); refill or service it"
            )
            return run_step(self.clock, Step(_PUMP_RESPONSE_S, error=error), self)
        if rate_ul_min > 0 and self.world.fault("coil_clog"):
            self._clog = 50.0
        target.apply(rate_ul_min)
        if rate_ul_min > 0:
            self.world.cell_source = "flow"
        if self.pressure() > self.config.max_pressure_kpa:
            pressure = self.pressure()
            for p in self.pumps.values():
                p.apply(0.0)
            limit = self.config.max_pressure_kpa
            error = RuntimeError(
                f"{self.name}: pressure {pressure:.0f} kPa above the {limit:g} kPa limit, "
                "pumps stopped (clogged coil?)"
            )
            return run_step(self.clock, Step(_PUMP_RESPONSE_S, error=error), self)
        return run_step(self.clock, Step(_PUMP_RESPONSE_S), self)

    def conditions(self) -> dict[str, Any] | None:
        """The flow-route conditions the pumps and coil run now (None when nothing flows)."""
        fluxes = {"pb": 0.0, "br": 0.0, "cs": 0.0}
        cs_rate = other_rate = 0.0
        for pump in self.pumps.values():
            rate, src = pump.rate(), pump.config.source
            fluxes["pb"] += rate * src.pb_mm
            fluxes["br"] += rate * src.br_mm
            fluxes["cs"] += rate * src.cs_mm
            if src.cs_mm > 0:
                cs_rate += rate
            else:
                other_rate += rate
        if fluxes["pb"] <= 0 or cs_rate <= 0:
            return None
        return {
            "br_pb_ratio": fluxes["br"] / fluxes["pb"],
            "temperature_c": round(round(self.coil.temperature(), 3), 1),
            "ligand": self.ligand,
            "residence_time_s": self._residence(),
            "flow_ratio": cs_rate / other_rate if other_rate > 0 else math.inf,
            "mixer_rpm": float(self.mixer_rpm),
        }

    def outlet_sample(self, now: float) -> Sample | None:
        """What flows through the cell at ``now``: washout mix of the old and new product."""
        conditions = self.conditions()
        if conditions is None:
            return self._steady
        key = tuple(
            sorted((k, round(v, 3) if isinstance(v, float) else v) for k, v in conditions.items())
        )
        if key != self._steady_key:
            self._previous = self._current_mix(now) if self._steady is not None else None
            self._steady_key = key
            self._steady = self.world.make_sample("flow", conditions)
            self._changed_at = now
        return self._current_mix(now)

    def _current_mix(self, now: float) -> Sample:
        tau = self._residence()
        new = 1.0 - math.exp(-(now - self._changed_at) / tau) if math.isfinite(tau) else 1.0
        if self._previous is None or new >= 1.0 - 1e-9:
            return self._steady
        parts = self._steady.diluted(new).components + self._previous.diluted(1 - new).components
        return Sample(parts, "flow", self._steady.conditions, self._steady.made_at)


class SimInterlock:
    """The simulated hood switch: the world's ``hood_open``."""

    def __init__(self, world: SimulatedWorld) -> None:
        self.world = world

    def hood_open(self) -> bool:
        return bool(self.world.hood_open)

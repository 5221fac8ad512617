"""The in-situ optical cell: absorption and PL spectrometer on one wavelength grid.

``trigger()`` integrates for ``integration_time`` and produces, as a real instrument would:

- ``absorbance`` from transmitted vs reference lamp intensity, both dark-corrected
  (:math:`A = -\\log_{10}[(I - D)/(I_0 - D)]`); the lamp drifts slowly after its reference was
  taken, so an old reference shows as a baseline offset;
- ``pl`` in detector counts (dark-subtracted), shot and read noise, clipped at the detector's
  saturation (``saturated`` flags it);
- scalar hints extracted from those spectra by :mod:`models.analysis` (``pl_peak``,
  ``pl_fwhm``, ``abs_peak``), and ``spikes``: how many points stand out of a running median, the
  signature of a bubble in the cell.

The sample is whatever the simulated world put in the cell (robot transfer or flow outlet).
Faults: a spectrometer that does not answer (the Status fails with :class:`TimeoutError`), stray
light that saturates the detector, and bubbles (spiky spectra).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from ophyd import Component as Cpt
from ophyd import Device, Signal
from ophyd.status import Status
from scipy.ndimage import median_filter

from devices.base import LimitedSignal, Step, run_step
from devices.clock import VirtualClock
from devices.config import CellConfig
from devices.world import SimulatedWorld
from models.analysis import analyse_spectra
from models.simulation import render_spectra

__all__ = ["OpticalCell"]

_READ_NOISE = 4.0
_REFERENCE_SCANS = 16  # lamp spectra averaged per absorbance measurement


class _Frame(Device):
    """A calibration frame of the spectrometer: ``trigger()`` acquires it."""

    def __init__(self, *args: Any, frame: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._frame = frame

    def trigger(self) -> Status:
        if self._frame == "dark":
            return self.parent.acquire_dark()
        return self.parent.acquire_reference()


class OpticalCell(Device):
    """In-situ absorption/PL cell (see the module docstring).

    ``dark_frame`` and ``reference_frame`` are Triggerable: ``bps.trigger(cell.reference_frame)``
    takes a lamp reference through whatever is in the cell (fill it with solvent first).
    """

    pl_peak = Cpt(Signal, value=math.nan, kind="hinted")
    pl_fwhm = Cpt(Signal, value=math.nan, kind="hinted")
    abs_peak = Cpt(Signal, value=math.nan, kind="hinted")
    plqy_est = Cpt(Signal, value=math.nan, kind="normal")
    pl_max_counts = Cpt(Signal, value=0.0, kind="normal")
    saturated = Cpt(Signal, value=0, kind="normal")
    spikes = Cpt(Signal, value=0, kind="normal")
    # spectra are published as lists of floats: JSON-native documents, and event-model's schema
    # validation walks a list ~8x faster than a numpy array
    absorbance = Cpt(Signal, value=[0.0], kind="normal")
    pl = Cpt(Signal, value=[0.0], kind="normal")
    wavelengths = Cpt(Signal, value=[0.0], kind="config")
    integration_time = Cpt(LimitedSignal, value=100.0, units="ms", kind="config")
    reference_age = Cpt(Signal, value=math.nan, kind="normal")
    dark_frame = Cpt(_Frame, frame="dark", kind="omitted")
    reference_frame = Cpt(_Frame, frame="reference", kind="omitted")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.clock: VirtualClock | None = None
        self.world: SimulatedWorld | None = None
        self.config: CellConfig | None = None
        self._grid = np.zeros(1)
        self._dark: np.ndarray | None = None
        self._reference: np.ndarray | None = None
        self._reference_at = math.nan
        self._playback: list[dict[str, Any]] | None = None

    def play(self, readings: list[dict[str, Any]]) -> None:
        """Playback: serve these recorded readings (data key -> value), one per trigger, in
        order, instead of measuring the sample."""
        self._playback = list(readings)

    def _play_next(self) -> None:
        if not self._playback:
            raise RuntimeError(f"{self.name}: no recorded reading left to play back")
        reading = self._playback.pop(0)
        now = self.clock.now()
        for key, value in reading.items():
            attr = key[len(self.name) + 1 :]
            getattr(self, attr).put(value, timestamp=now)

    def attach(self, world: SimulatedWorld, config: CellConfig) -> None:
        """Connect the simulated world and the spectrometer config (done by build_lab)."""
        self.world = world
        self.clock = world.clock
        self.config = config
        self._grid = np.linspace(config.wavelength_min_nm, config.wavelength_max_nm, config.points)
        now = self.clock.now()
        self.wavelengths.put(self._grid.tolist(), timestamp=now)
        self.integration_time.set_limits(config.min_integration_ms, config.max_integration_ms)
        self.integration_time.put(config.integration_ms)
        zeros = np.zeros_like(self._grid).tolist()
        self.absorbance.put(zeros, timestamp=now)
        self.pl.put(zeros, timestamp=now)

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
        absorbance, pl = render_spectra(populations, self._grid)
        return absorbance.sum(axis=0), pl.sum(axis=0)

    def acquire_dark(self) -> Status:
        """Take a dark spectrum (shutter closed)."""

        def act() -> None:
            self._dark = self._dark_frame()

        return run_step(self.clock, Step(self.integration_time.get() / 1000.0 + 0.5, act), self)

    def acquire_reference(self) -> Status:
        """Take a lamp reference through the cell with solvent (the blank for absorbance)."""

        def act() -> None:
            if self._dark is None:
                self._dark = self._dark_frame()
            self._take_reference(blank_absorbance=self._sample_spectra()[0])

        return run_step(self.clock, Step(self.integration_time.get() / 1000.0 + 0.5, act), self)

    def _take_reference(self, blank_absorbance: np.ndarray | float = 0.0) -> None:
        """Lamp light through a blank of ``blank_absorbance`` (averaged scans), and when."""
        self._reference = self._noisy(
            self._lamp() * 10.0 ** (-blank_absorbance) + self.config.dark_counts,
            _REFERENCE_SCANS,
        )
        self._reference_at = self.clock.now()

    def _measure(self) -> None:
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
        scale = self.integration_time.get() / 100.0
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
        obs = analyse_spectra(self._grid, absorbance, pl / scale)
        now = self.clock.now()
        for signal, value in (
            (self.absorbance, absorbance.tolist()),
            (self.pl, pl.tolist()),
            (self.pl_peak, float(obs["pl_peak_nm"][0])),
            (self.pl_fwhm, float(obs["pl_fwhm_nm"][0])),
            (self.abs_peak, float(obs["abs_peak_nm"][0])),
            (self.plqy_est, float(obs["plqy_est"][0])),
            (self.pl_max_counts, float(raw.max())),
            (self.saturated, int(saturated)),
            (self.spikes, spikes),
            (self.reference_age, now - self._reference_at),
        ):
            signal.put(value, timestamp=now)

    def trigger(self) -> Status:
        """Acquire absorption and PL; the Status finishes after the integration time."""
        integration_s = self.integration_time.get() / 1000.0
        if self.world.fault("spectrometer_timeout"):
            error = TimeoutError(
                f"{self.name}: spectrometer did not answer within {self.config.timeout_s:g} s"
            )
            return run_step(self.clock, Step(self.config.timeout_s, error=error), self)
        action = self._play_next if self._playback is not None else self._measure
        return run_step(self.clock, Step(2 * integration_s + 0.2, action), self)

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

The backend (:class:`CellBackend`) acquires; the simulated one
(:class:`devices.simulated.SimCell`) measures whatever the simulated world put in the cell (robot
transfer or flow outlet), with the faults: a spectrometer that does not answer (the Status fails
with :class:`TimeoutError`), stray light that saturates the detector, and bubbles (spiky
spectra).
"""

from __future__ import annotations

import math
from typing import Any, Protocol

import numpy as np
from ophyd import Component as Cpt
from ophyd import Device, Signal
from ophyd.status import Status

from devices.base import LimitedSignal, Reading, Selector, then
from devices.clock import VirtualClock
from devices.config import CellConfig

__all__ = ["CellBackend", "OpticalCell", "wavelength_grid"]


class CellBackend(Protocol):
    """What an :class:`OpticalCell` needs from whatever runs the spectrometer."""

    def acquire_dark(self, integration_ms: float) -> Status:
        """Take a dark spectrum (shutter closed)."""

    def acquire_reference(self, integration_ms: float) -> Status:
        """Take a lamp reference through what is in the cell (the blank)."""

    def measure(self, integration_ms: float) -> Status:
        """Acquire absorbance and PL; when the Status finishes, :meth:`reading` has them."""

    def reading(self) -> dict[str, Any]:
        """The last measurement: component name (``absorbance``, ``pl``, ``pl_peak``, ...) ->
        value."""

    def select_view(self, view: str) -> None:
        """Turn the fibre switch in front of the spectrometer: ``cell`` (the optical cell),
        ``reactor`` (a dip probe in the reactor flask) or ``plate`` (a plate reader over the
        growing LARP well)."""


class _Frame(Device):
    """A calibration frame of the spectrometer: ``trigger()`` acquires it."""

    def __init__(self, *args: Any, frame: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._frame = frame

    def trigger(self) -> Status:
        cell = self.parent
        acquire = (
            cell.backend.acquire_dark if self._frame == "dark" else cell.backend.acquire_reference
        )
        return acquire(cell.integration_time.get())


class _ViewSwitch(Selector):
    """The fibre switch in front of the spectrometer: what it looks through (the lab sets the
    positions it has fibres to)."""

    positions = ("cell", "reactor", "plate")
    backend_method = "select_view"


class OpticalCell(Device):
    """In-situ absorption/PL cell (see the module docstring).

    ``dark_frame`` and ``reference_frame`` are Triggerable: ``bps.trigger(cell.reference_frame)``
    takes a lamp reference through whatever is in the cell (fill it with solvent first).
    ``view`` switches the spectrometer between the cell, a dip probe in the reactor flask (a
    lab with ``reactor.in_situ_interval_s``: ``bps.mv(cell.view, "reactor")``) and a plate
    reader over the LARP well growing (``larp.read_interval_s``: ``"plate"``), where
    ``sample_age`` says how long the well has been growing.
    """

    pl_peak = Cpt(Reading, value=math.nan, kind="hinted")
    pl_fwhm = Cpt(Reading, value=math.nan, kind="hinted")
    abs_peak = Cpt(Reading, value=math.nan, kind="hinted")
    plqy_est = Cpt(Reading, value=math.nan, kind="normal")
    pl_max_counts = Cpt(Reading, value=0.0, kind="normal")
    saturated = Cpt(Reading, value=0, kind="normal")
    spikes = Cpt(Reading, value=0, kind="normal")
    # spectra are published as lists of floats: JSON-native documents, and event-model's schema
    # validation walks a list ~8x faster than a numpy array
    absorbance = Cpt(Reading, value=[0.0], kind="normal")
    pl = Cpt(Reading, value=[0.0], kind="normal")
    wavelengths = Cpt(Signal, value=[0.0], kind="config")
    integration_time = Cpt(LimitedSignal, value=100.0, units="ms", kind="config")
    reference_age = Cpt(Reading, value=math.nan, kind="normal")
    sample_age = Cpt(Reading, value=math.nan, kind="normal")
    view = Cpt(_ViewSwitch, value="cell", kind="config")
    dark_frame = Cpt(_Frame, frame="dark", kind="omitted")
    reference_frame = Cpt(_Frame, frame="reference", kind="omitted")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.clock: VirtualClock | None = None
        self.backend: CellBackend | None = None

    def play(self, readings: list[dict[str, Any]]) -> None:
        """Playback (simulated backend): serve these recorded readings (data key -> value), one
        per trigger, in order, instead of measuring the sample."""
        prefix = len(self.name) + 1
        self.backend.play([{key[prefix:]: v for key, v in r.items()} for r in readings])

    def attach(self, backend: CellBackend, clock: VirtualClock, config: CellConfig) -> None:
        """Connect the backend and the spectrometer config (done by build_lab)."""
        self.backend = backend
        self.clock = clock
        grid = wavelength_grid(config)
        now = clock.now()
        self.wavelengths.put(grid.tolist(), timestamp=now)
        self.integration_time.set_limits(config.min_integration_ms, config.max_integration_ms)
        self.integration_time.put(config.integration_ms)
        zeros = np.zeros_like(grid).tolist()
        self.absorbance.put(zeros, timestamp=now)
        self.pl.put(zeros, timestamp=now)

    def trigger(self) -> Status:
        """Acquire absorption and PL; the Status finishes after the integration time."""
        status = self.backend.measure(self.integration_time.get())

        def record() -> None:
            now = self.clock.now()
            for attr, value in self.backend.reading().items():
                getattr(self, attr).put(value, timestamp=now)

        return then(status, record, self)


def wavelength_grid(config: CellConfig) -> np.ndarray:
    """The spectrometer's wavelength grid, nm."""
    return np.linspace(config.wavelength_min_nm, config.wavelength_max_nm, config.points)

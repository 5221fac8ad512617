"""ophyd devices of a QDLab lab, each with a simulated backend driven by :mod:`models`.

Build a whole lab with :func:`build_lab`; the devices work with any bluesky plan. The names
below are the public API; they load on first use, so that importing ``devices.config`` (CLI
help, config validation) does not pay for ophyd, scipy and the simulated world.
"""

from models.lazy import lazy_names

_PUBLIC = {
    "OpticalCell": "devices.cell",
    "VirtualClock": "devices.clock",
    "ConfigError": "devices.config",
    "LabConfig": "devices.config",
    "load_lab_config": "devices.config",
    "FlowReactor": "devices.flow",
    "SyringePump": "devices.flow",
    "Heater": "devices.heater",
    "Timer": "devices.heater",
    "DEFAULT_LAB": "devices.lab",
    "Lab": "devices.lab",
    "build_lab": "devices.lab",
    "HotInjectionReactor": "devices.reactor",
    "Aspirate": "devices.robot",
    "Dispense": "devices.robot",
    "Mix": "devices.robot",
    "PipettingRobot": "devices.robot",
    "Transfer": "devices.robot",
    "SimulatedWorld": "devices.world",
    "WorldError": "devices.world",
}

__all__ = sorted(_PUBLIC)

__getattr__ = lazy_names(__name__, _PUBLIC)

"""ophyd devices of a QDLab lab, each with a simulated backend driven by :mod:`models`.

Build a whole lab with :func:`build_lab`; the devices work with any bluesky plan.
"""

from devices.cell import OpticalCell
from devices.clock import VirtualClock
from devices.config import ConfigError, LabConfig, load_lab_config
from devices.flow import FlowReactor, SyringePump
from devices.heater import Heater, Timer
from devices.lab import DEFAULT_LAB, Lab, build_lab
from devices.reactor import HotInjectionReactor
from devices.robot import Aspirate, Dispense, Mix, PipettingRobot, Transfer
from devices.world import SimulatedWorld, WorldError

__all__ = [
    "DEFAULT_LAB",
    "Aspirate",
    "ConfigError",
    "Dispense",
    "FlowReactor",
    "Heater",
    "HotInjectionReactor",
    "Lab",
    "LabConfig",
    "Mix",
    "OpticalCell",
    "PipettingRobot",
    "SimulatedWorld",
    "SyringePump",
    "Timer",
    "Transfer",
    "VirtualClock",
    "WorldError",
    "build_lab",
    "load_lab_config",
]

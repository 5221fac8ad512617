"""``qdlab lab check``: is every instrument's backend there (which, what version), does every PV
of an EPICS lab connect, and what does it hold?"""

from __future__ import annotations

from typing import Any

from devices.config import LabConfig
from devices.epics import PVs, pv_suffixes

__all__ = ["check_instruments", "check_lab", "lab_limits"]


def lab_limits(config: LabConfig) -> dict[str, tuple[float, float, str]]:
    """What the lab config lets each setpoint PV be asked for: suffix -> (low, high, unit)."""
    out = {
        "reactor:heater:SP": (
            config.reactor.min_temperature_c,
            config.reactor.max_temperature_c,
            "°C",
        )
    }
    if config.flow is not None:
        out["flow:coil:SP"] = (config.flow.min_temperature_c, config.flow.max_temperature_c, "°C")
        for pump, pc in config.flow.pumps.items():
            out[f"flow:{pump}:SP"] = (0.0, pc.max_flow_ul_min, "µL/min")
    return out


def check_lab(config: LabConfig) -> list[dict[str, Any]]:
    """One row per PV of the lab: ``pv``, ``suffix``, ``connected``, ``value``, ``limits``
    (text, ready to print) and ``problem`` (a setpoint whose IOC drive limits refuse part of
    what the lab config allows, naming both; else ``""``). A simulated lab has no PVs: no
    rows."""
    if config.backend != "epics":
        return []
    pvs = PVs(config.epics)
    suffixes = pv_suffixes(config)
    missing = set(pvs.unconnected(suffixes))
    allowed = lab_limits(config)
    rows = []
    for suffix in suffixes:
        row: dict[str, Any] = {
            "pv": pvs.name(suffix),
            "suffix": suffix,
            "connected": suffix not in missing,
            "value": "",
            "limits": "",
            "problem": "",
        }
        if row["connected"]:
            value = pvs.get(suffix)
            text = str(value)
            row["value"] = text if len(text) <= 40 else text[:37] + "..."
            limits = pvs.drive_limits(suffix)
            if limits is not None:
                row["limits"] = f"[{limits[0]:g}, {limits[1]:g}]"
            if limits is not None and suffix in allowed:
                low, high, unit = allowed[suffix]
                if low < limits[0] or high > limits[1]:
                    row["problem"] = (
                        f"the lab config allows [{low:g}, {high:g}] {unit} but the IOC takes "
                        f"only [{limits[0]:g}, {limits[1]:g}]: narrow the lab's limits"
                    )
        rows.append(row)
    return rows


def check_instruments(config: LabConfig) -> list[dict[str, Any]]:
    """One row per instrument: ``instrument``, ``backend``, ``ready`` and ``detail`` (what
    answered, with its version). A PyLabRobot robot's liquid handler is set up, as a campaign
    would (a real one connects then)."""
    import importlib.metadata as md

    lab_backend = f"{config.backend} (QDLab {md.version('qdlab')})"
    rows = []
    for name, present in (("reactor", True), ("flow", config.flow is not None), ("cell", True)):
        if present:
            rows.append({"instrument": name, "backend": config.backend, "ready": True,
                         "detail": lab_backend})  # fmt: skip
    rb = config.robot
    if rb.backend != "pylabrobot":
        rows.insert(0, {"instrument": "robot", "backend": config.backend, "ready": True,
                        "detail": lab_backend})  # fmt: skip
        return rows
    row = {"instrument": "robot", "backend": "pylabrobot", "ready": False, "detail": ""}
    try:
        from devices.plr import PlrRobot

        robot = PlrRobot("robot", config, None)
        row["ready"] = True
        row["detail"] = (
            f"PyLabRobot {md.version('pylabrobot')}, {type(robot.lh.backend).__name__}, "
            f"{len(robot.resources)} deck resources, {robot.tips_left()} tips"
        )
    except Exception as exc:  # the liquid handler did not set up: say why
        row["detail"] = f"{type(exc).__name__}: {exc}"
    rows.insert(0, row)
    return rows

"""``qdlab lab check``: is every instrument's backend there (which, what version, does it take
what the lab allows), does every PV of an EPICS lab connect, and what does it hold?"""

from __future__ import annotations

import importlib.metadata as md
from typing import Any

from devices.config import ConfigError, LabConfig, heater_key
from devices.epics import PVs, pv_suffixes
from devices.plugins import BUILTIN, installed, instrument_kinds, start_instrument, start_plugin

__all__ = ["check_instruments", "check_lab", "lab_limits"]


def lab_limits(config: LabConfig) -> dict[str, tuple[float, float, str]]:
    """What the lab config lets each setpoint PV be asked for: suffix -> (low, high, unit)."""
    out = {}
    for name in config.reactor_names:
        rc = config.reactor_config(name)
        out[f"{name}:heater:SP"] = (rc.min_temperature_c, rc.max_temperature_c, "°C")
    if config.flow is not None:
        out["flow:coil:SP"] = (config.flow.min_temperature_c, config.flow.max_temperature_c, "°C")
        for pump, pc in config.flow.pumps.items():
            out[f"flow:{pump}:SP"] = (0.0, pc.max_flow_ul_min, "µL/min")
    return out


def check_lab(config: LabConfig) -> list[dict[str, Any]]:
    """One row per PV of the lab: ``pv``, ``suffix``, ``connected``, ``value``, ``limits``
    (text, ready to print) and ``problem`` (a setpoint whose IOC drive limits refuse part of
    what the lab config allows, naming both; else ``""``). A simulated lab has no PVs (no
    rows) but those of the heaters it takes from ordinary IOCs (``backend: epics``)."""
    suffixes = pv_suffixes(config)
    if not suffixes:
        return []
    pvs = PVs(config.epics)
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
    """One row per instrument: ``instrument``, ``backend``, ``ready``, ``detail`` (what
    answered, with its version) and ``problem`` (a setpoint the instrument refuses part of what
    the lab config allows, naming both; else ``""``). A PyLabRobot robot's liquid handler is
    set up, as a campaign would (a real one connects then); a SiLA 2 lab's server is asked for
    its name, version and limits."""
    names = ["robot", *config.reactor_names, *(["flow"] if config.flow is not None else []), "cell"]
    rows = [
        {"instrument": n, "backend": config.backend, "ready": True, "detail": "", "problem": ""}
        for n in names
    ]
    if config.backend == "sila2":
        _check_sila(config, rows)
    else:
        for row in rows:
            row["detail"] = f"{config.backend} (QDLab {md.version('qdlab')})"
    for row in rows:
        chosen = config.instrument_backend(row["instrument"])
        if chosen not in BUILTIN:
            _check_plugin(config, row)
        elif chosen != config.backend and chosen == "epics":  # a heater from an ordinary IOC
            mapped = config.epics.mapped[heater_key(config, row["instrument"])]
            row.update(backend="epics", detail=f"heater {mapped.setpoint} -> {mapped.readback} "
                       f"(Channel Access); the rest {config.backend}")  # fmt: skip
    if config.robot.backend == "pylabrobot":
        rows[0].update(backend="pylabrobot", ready=False, detail="", problem="")
        try:
            from devices.plr import PlrRobot

            robot = PlrRobot("robot", config, None)
            rows[0]["ready"] = True
            rows[0]["detail"] = (
                f"PyLabRobot {md.version('pylabrobot')}, {type(robot.lh.backend).__name__}, "
                f"{len(robot.resources)} deck resources, {robot.tips_left()} tips"
            )
        except Exception as exc:  # the liquid handler did not set up: say why
            rows[0]["detail"] = f"{type(exc).__name__}: {exc}"
    return rows + [_check_kind(config, name) for name in config.instruments]


def _package(found: Any) -> str:
    """``name version`` of the package an entry point comes from."""
    return f"{found.dist.name} {found.dist.version}" if found.dist is not None else "?"


def _check_kind(config: LabConfig, name: str) -> dict[str, Any]:
    """The row of a plugin instrument: its device made, as a campaign would."""
    from devices.clock import VirtualClock

    kind = config.instruments[name].kind
    row = {"instrument": name, "backend": kind, "ready": False, "detail": "", "problem": ""}
    try:
        device = start_instrument(config, name, VirtualClock())
    except ConfigError as exc:
        row["problem"] = row["detail"] = str(exc)
        return row
    found = instrument_kinds()[kind]
    readings = ", ".join(device.read())
    row.update(ready=True, detail=f"plugin {found.value} from {_package(found)}; {readings}")
    return row


def _check_plugin(config: LabConfig, row: dict[str, Any]) -> None:
    """Start the plugin an instrument names, as a campaign would; say which package it is."""
    from devices.clock import VirtualClock

    name = config.instrument_backend(row["instrument"])
    row.update(backend=name, ready=False, detail="", problem="")
    try:
        start_plugin(config, row["instrument"], VirtualClock())
    except ConfigError as exc:
        row["problem"] = row["detail"] = str(exc)
        return
    found = installed()[name]
    row.update(ready=True, detail=f"plugin {found.value} from {_package(found)}")


def _check_sila(config: LabConfig, rows: list[dict[str, Any]]) -> None:
    """Fill the rows of a SiLA 2 lab: the server's name and version, and whether its heaters
    and pumps take what the lab config allows."""
    from devices.sila import SilaFlow, SilaHeater, SilaLink

    try:
        link = SilaLink(config.sila2)
        detail = f"{link.server_name()} at {config.sila2.host}:{config.sila2.port} " + (
            f"(sila2 {md.version('sila2')})"
        )
    except Exception as exc:  # the server is not there, or not the lab's: say why
        for row in rows:
            row.update(ready=False, detail=f"{type(exc).__name__}: {exc}")
        return
    by_name = {row["instrument"]: row for row in rows}
    for row in rows:
        row["detail"] = detail
    for suffix, (low, high, unit) in lab_limits(config).items():
        key = suffix.removesuffix(":SP")
        if key.endswith(("heater", "coil")):
            taken = SilaHeater(link, key).limits()
        else:
            taken = SilaFlow(link).rate_limits(key.removeprefix("flow:"))
        if low < taken[0] or high > taken[1]:
            row = by_name[key.split(":")[0]]
            row["problem"] = (
                f"{key}: the lab config allows [{low:g}, {high:g}] {unit} but the server takes "
                f"only [{taken[0]:g}, {taken[1]:g}]: narrow the lab's limits"
            )

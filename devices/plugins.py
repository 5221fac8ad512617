"""Backends from installed packages: the ``qdlab.backends`` entry-point group.

A package offers a backend by naming, in its ``pyproject.toml``, a callable that makes the
backends of the instruments it drives::

    [project.entry-points."qdlab.backends"]
    hotplate = "qdlab_hotplate:HotplateBackends"

and a lab config chooses it per instrument (``reactor.backend: hotplate``, with
``reactor.backend_options`` for its settings). QDLab calls it once per lab as
``HotplateBackends(config, clock, options)`` (the :class:`~devices.config.LabConfig`, the
lab's :class:`~devices.clock.VirtualClock`, the instrument's ``backend_options``) and asks the
object it returns for the parts it drives, each a method that returns the backend protocol of
:mod:`devices` (docs/backends.md, "A backend from a package"):

- ``robot``: ``robot(name)`` -> ``RobotBackend``;
- ``reactor`` and each of ``reactors``: ``heater(name, config, "<reactor>:heater")`` ->
  ``HeaterBackend``, ``reactor(heater, name)`` -> ``ReactorBackend``;
- ``flow``: ``heater(name, config, "flow:coil")`` -> ``HeaterBackend``, ``flow(name, coil)`` ->
  ``FlowBackend``;
- ``cell``: ``cell(name)`` -> ``CellBackend``.

A part the plugin does not offer (no such method) is the lab's own: a plugin that only heats
leaves the flask's chemistry to the simulated lab, which then reacts at the plugin heater's
temperature. Plugins are only ever named by the lab config the user passed, never by anything
read back from a database.
"""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points
from typing import Any

from models.configfile import ConfigError

__all__ = ["BUILTIN", "GROUP", "installed", "load", "start_plugin"]

GROUP = "qdlab.backends"
"""The entry-point group a package names its backends in."""

BUILTIN = ("simulated", "epics", "sila2", "pylabrobot")
"""Backends QDLab has itself (``pylabrobot``: the robot only)."""


def installed() -> dict[str, EntryPoint]:
    """The backends installed packages offer, by name."""
    return {ep.name: ep for ep in entry_points(group=GROUP) if ep.name not in BUILTIN}


def load(name: str, instrument: str) -> Any:
    """The callable the backend ``name`` names, for ``instrument``; a missing or broken plugin
    is a :class:`ConfigError` naming both (one line, exit code 2)."""
    found = installed().get(name)
    if found is None:
        offered = ", ".join(sorted(installed())) or "none installed"
        raise ConfigError(f"{instrument}.backend: no backend {name!r} (plugins: {offered})")
    try:
        return found.load()
    except Exception as exc:  # the package is broken: say which and why, without a traceback
        raise ConfigError(
            f"{instrument}.backend: the plugin {name!r} ({found.value}) did not load: "
            f"{type(exc).__name__}: {exc}"
        ) from None


def start_plugin(config: Any, instrument: str, clock: Any) -> Any:
    """The object the plugin ``instrument``'s section names makes for this lab (called with
    the lab config, the clock and the section's ``backend_options``); a plugin that fails to
    start is a :class:`ConfigError` naming the instrument and the backend."""
    section = config.section(instrument)
    field = config.field(instrument)
    factory = load(section.backend, field)
    try:
        return factory(config, clock, dict(section.backend_options))
    except Exception as exc:  # the plugin refused its options, or its instrument is not there
        raise ConfigError(
            f"{field}.backend: the plugin {section.backend!r} did not start: "
            f"{type(exc).__name__}: {exc}"
        ) from None

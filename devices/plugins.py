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

A package may also add a **kind of instrument** QDLab does not have (a centrifuge, a UV lamp,
a stirrer plate), with the plan steps it takes, through the entry-point group
``qdlab.instruments``::

    [project.entry-points."qdlab.instruments"]
    centrifuge = "qdlab_centrifuge:Centrifuge"

The entry point names an object with

- ``device(name, config, clock, options)`` -> an ophyd ``Device`` (readable; its movable parts
  ``set()`` returning Statuses), built once per lab;
- ``steps``: a mapping of step name -> ``step(device, sample, **args)``, a bluesky plan acting
  on the product in deck location ``sample``. A step raises ``ValueError`` naming the argument
  when called with one it cannot take: it is called before the synthesis's first message, so
  bad input fails before any device moves.

A lab config adds instruments of such a kind by name (``instruments: {spin: {kind:
centrifuge, options: {...}}}``); a campaign's ``steps`` (or the plans' ``steps=``) runs their
steps on each product before it is measured.
"""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points
from inspect import signature
from typing import Any

from models.configfile import ConfigError

__all__ = [
    "BUILTIN",
    "GROUP",
    "KINDS",
    "check_step",
    "installed",
    "instrument_kinds",
    "load",
    "load_kind",
    "start_instrument",
    "start_plugin",
]

GROUP = "qdlab.backends"
"""The entry-point group a package names its backends in."""

BUILTIN = ("simulated", "epics", "sila2", "pylabrobot")
"""Backends QDLab has itself (``pylabrobot``: the robot only)."""

KINDS = "qdlab.instruments"
"""The entry-point group a package names new kinds of instrument in."""


def installed() -> dict[str, EntryPoint]:
    """The backends installed packages offer, by name."""
    return {ep.name: ep for ep in entry_points(group=GROUP) if ep.name not in BUILTIN}


def instrument_kinds() -> dict[str, EntryPoint]:
    """The kinds of instrument installed packages offer, by name."""
    return {ep.name: ep for ep in entry_points(group=KINDS)}


def _loaded(found: EntryPoint | None, name: str, field: str, what: str, offered: list[str]) -> Any:
    """The object entry point ``found`` names; a missing or broken one a :class:`ConfigError`
    naming ``field`` and ``name`` (one line, exit code 2)."""
    if found is None:
        raise ConfigError(
            f"{field}: no {what} {name!r} (plugins: {', '.join(offered) or 'none installed'})"
        )
    try:
        return found.load()
    except Exception as exc:  # the package is broken: say which and why, without a traceback
        raise ConfigError(
            f"{field}: the plugin {name!r} ({found.value}) did not load: "
            f"{type(exc).__name__}: {exc}"
        ) from None


def load(name: str, instrument: str) -> Any:
    """The callable the backend ``name`` names, for ``instrument``; a missing or broken plugin
    is a :class:`ConfigError` naming both (one line, exit code 2)."""
    found = installed()
    return _loaded(found.get(name), name, f"{instrument}.backend", "backend", sorted(found))


def load_kind(kind: str, field: str) -> Any:
    """The instrument kind ``kind`` (its ``device`` and ``steps``), for the lab config's
    ``field``; a missing or broken one is a :class:`ConfigError` naming both."""
    found = instrument_kinds()
    loaded = _loaded(found.get(kind), kind, field, "instrument kind", sorted(found))
    if not callable(getattr(loaded, "device", None)) or not isinstance(
        getattr(loaded, "steps", None), dict
    ):
        raise ConfigError(
            f"{field}: the plugin {kind!r} ({found[kind].value}) is not an instrument kind: it "
            "needs device(name, config, clock, options) and a dict of steps"
        )
    return loaded


def start_instrument(config: Any, name: str, clock: Any) -> Any:
    """The ophyd device of the lab config's instrument ``name`` (``instruments.<name>``),
    made by its kind's plugin; one that fails to start is a :class:`ConfigError` naming it."""
    spec = config.instruments[name]
    field = f"instruments.{name}.kind"
    kind = load_kind(spec.kind, field)
    try:
        return kind.device(name, config, clock, dict(spec.options))
    except Exception as exc:  # the plugin refused its options, or its instrument is not there
        raise ConfigError(
            f"instruments.{name}: the plugin {spec.kind!r} did not start: "
            f"{type(exc).__name__}: {exc}"
        ) from None


def check_step(config: Any, index: int, step: Any) -> Any:
    """The plan step ``step`` (``instrument``, ``step``, ``args``) names, the ``index``-th of a
    synthesis's steps, if the lab config's instruments can run it; a :class:`ConfigError`
    naming ``steps[index]`` and what is allowed otherwise. (Values are the step's to check
    when it is called.)"""
    field = f"steps[{index}]"
    if step.instrument not in config.instruments:
        raise ConfigError(
            f"{field}.instrument: lab {config.name!r} has no instrument {step.instrument!r}; "
            f"its instruments: {sorted(config.instruments) or 'none'} (the lab config's "
            "instruments:)"
        )
    kind = load_kind(config.instruments[step.instrument].kind, f"{field}.instrument")
    if step.step not in kind.steps:
        raise ConfigError(
            f"{field}.step: a {config.instruments[step.instrument].kind} has no step "
            f"{step.step!r}; it has {sorted(kind.steps)}"
        )
    try:
        signature(kind.steps[step.step]).bind(None, "sample", **step.args)
    except TypeError as exc:
        raise ConfigError(f"{field}.args: {step.step}: {exc}") from None
    return kind.steps[step.step]


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

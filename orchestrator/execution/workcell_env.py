"""The RunEngine worker of a workcell: what bluesky-queueserver imports as its startup module.

``qdlab workcell serve`` starts an RE Manager with ``--startup-module
orchestrator.execution.workcell_env`` and passes the workcell's settings in the environment:
``QDLAB_WORKCELL_LAB`` (lab config), ``QDLAB_DB`` (campaign database), ``QDLAB_WORKCELL_NAME``
and ``QDLAB_WORKCELL_SPEEDUP`` (the simulated lab's lab seconds per wall-clock second, or
``max``). The worker's namespace then holds what the queue may name:

- ``RE``: a RunEngine whose every document goes to the campaign database, with
  ``RE.md["workcell"]`` set, so each run's start document names its workcell, and the lab
  config's safety suspenders installed;
- the lab's devices as named ophyd devices (``robot``, ``reactor``, ``cell``, ``timer``,
  ``safety`` and, with a flow line, ``flow``);
- QDLab's plans, each condition a typed parameter, and this workcell's devices;
- bluesky's ``count``, ``scan`` and ``mv``, which the queue accepts from its ``staff`` user group
  for a diagnostic (:data:`~orchestrator.execution.workcell_server.DIAGNOSTIC_PLANS`).

A queue item of a campaign carries ``campaign_id``, ``experiment_id``, ``experiment_index`` and
``seed`` in its ``md``; the simulated lab then draws the experiment's randomness from
(seed, index), as an in-process campaign does.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Generator, Mapping
from pathlib import Path
from typing import Any

from bluesky.plan_stubs import mv
from bluesky.plans import count, scan
from bluesky.utils import Msg

from db import Database
from db.tiled import TiledSink
from devices import build_lab
from orchestrator.execution import plans as _plans
from orchestrator.execution.engine import new_run_engine
from orchestrator.execution.safety import SafetyWatch
from orchestrator.execution.workcell_server import lab_config

__all__ = [
    "RE",
    "count",
    "flow_synthesis",
    "hot_injection_synthesis",
    "larp_synthesis",
    "measure_sample",
    "mv",
    "scan",
]

Plan = Generator[Msg, Any, Any]

_name = os.environ.get("QDLAB_WORKCELL_NAME", "workcell")
_lab = build_lab(lab_config(os.environ["QDLAB_WORKCELL_LAB"], os.environ["QDLAB_WORKCELL_SPEEDUP"]))

robot = _lab.robot
reactor = _lab.reactor
cell = _lab.cell
timer = _lab.timer
safety = _lab.safety
if _lab.flow is not None:
    flow = _lab.flow
# a lab's other reactors and its plugin instruments, each by its name (reactor_b, spin), where
# the name is not this module's
globals().update({n: r for n, r in _lab.reactors.items() if n not in globals()})
globals().update({n: d for n, d in _lab.instruments.items() if n not in globals()})


# the one RunEngine factory: the campaign database, tiled (`qdlab workcell serve --tiled URL`)
# and the safety watch, whose aborts raise SafetyAbort with the reason the agent reads
RE = new_run_engine(
    Database(os.environ.get("QDLAB_DB")),
    md={"workcell": _name},
    tiled=TiledSink(os.environ["QDLAB_TILED"]) if os.environ.get("QDLAB_TILED") else None,
    safety=SafetyWatch(_lab, _lab.config.safety),
    sigint=False,
)
if os.environ.get("QDLAB_WORKCELL_PIDFILE"):  # `qdlab workcell serve` watches this process
    Path(os.environ["QDLAB_WORKCELL_PIDFILE"]).write_text(str(os.getpid()))


def _campaign_md(md: Mapping[str, Any] | None) -> dict[str, Any]:
    """The item's metadata plus the workcell; reseeds the twin for a campaign's experiment."""
    md = {**(md or {}), "workcell": _name}
    if "experiment_index" in md:
        _lab.reseed(md.get("seed"), int(md["experiment_index"]))
    return md


def _temperature_range(route: str) -> tuple[float, float] | None:
    """What this workcell's heaters take for ``route`` (all its reactors, or its flow coil)."""
    config = _lab.config
    if route == "hot_injection":
        heaters = [config.reactor_config(n) for n in config.reactor_names]
    elif route == "flow" and config.flow is not None:
        heaters = [config.flow]
    else:
        return None
    return min(h.min_temperature_c for h in heaters), max(h.max_temperature_c for h in heaters)


def _queue_plan(route: str, extra: dict[str, tuple[Any, Any, dict[str, Any]]]) -> Any:
    """The queue plan of ``route`` on this workcell: each condition a keyword parameter of its
    type, with its range (the route's, narrowed to what this workcell's heaters take) or its
    choices, so the queue server refuses an item with a misspelt, missing, mistyped or
    out-of-range condition when it is added, not when it runs. ``extra``: the plan's other
    parameters, name -> (type, default, annotation)."""
    from bluesky_queueserver import parameter_annotation_decorator

    from models.parameters import ContinuousParameter, get_route

    spec = get_route(route)
    keyword = inspect.Parameter.KEYWORD_ONLY
    params, annotations = [], {}
    for p in spec.parameters:
        default = inspect.Parameter.empty if p.default is None else p.default
        if isinstance(p, ContinuousParameter):
            low, high = p.low, p.high
            if p.name == "temperature_c" and (heaters := _temperature_range(route)):
                low, high = max(low, heaters[0]), min(high, heaters[1])
            params.append(inspect.Parameter(p.name, keyword, default=default, annotation=float))
            unit = f" ({p.unit})" if p.unit else ""
            annotations[p.name] = {"description": p.description + unit, "min": low, "max": high}
        else:
            params.append(inspect.Parameter(p.name, keyword, default=default, annotation=str))
            choices = f"{p.name.title().replace('_', '')}Choices"
            annotations[p.name] = {"description": p.description, "annotation": choices,
                                   "enums": {choices: list(p.choices)}}  # fmt: skip
    for name, (kind, default, annotation) in extra.items():
        params.append(inspect.Parameter(name, keyword, default=default, annotation=kind))
        annotations[name] = annotation
    run = getattr(_plans, f"{route}_synthesis")

    def plan(**kwargs: Any) -> Plan:
        conditions = {k: kwargs.pop(k) for k in spec.names if k in kwargs}
        md = _campaign_md(kwargs.pop("md", None))
        return (yield from run(_lab, conditions, md=md, **kwargs))

    plan.__name__ = plan.__qualname__ = f"{route}_synthesis"
    plan.__doc__ = (
        f"{spec.description} on this workcell (orchestrator.execution.plans.{route}_synthesis)."
    )
    plan.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    described = {"description": plan.__doc__, "parameters": annotations}
    return parameter_annotation_decorator(described)(plan)


_MD = (dict | None, None, {"description": "extra start-document metadata (a campaign's ids)"})
_STEPS = (list | None, None, {"description": "steps of the workcell's plugin instruments on the "
                              "product: {instrument, step, args} each"})  # fmt: skip
_REACTOR = (str, "reactor", {"description": "which of the workcell's hot-injection reactors",
                             "annotation": "Reactors",
                             "enums": {"Reactors": _lab.config.reactor_names}})  # fmt: skip

hot_injection_synthesis = _queue_plan(
    "hot_injection", {"md": _MD, "reactor": _REACTOR, "steps": _STEPS}
)
flow_synthesis = _queue_plan("flow", {"md": _MD})
larp_synthesis = _queue_plan("larp", {"md": _MD, "steps": _STEPS})


def measure_sample(source: str, solvent: str | None = None, md: dict | None = None) -> Plan:
    """Measure the sample in deck location ``source`` (calibrating on ``solvent`` first).

    Parameters
    ----------
    source
        A deck location holding a sample.
    solvent
        A reservoir to take the cell's dark and reference frames through.
    md
        Extra start-document metadata.
    """
    return (yield from _plans.measure_sample(_lab, source, solvent, md=_campaign_md(md)))

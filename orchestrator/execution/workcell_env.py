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
- QDLab's plans, taking JSON arguments (conditions, metadata) and this workcell's devices.

A queue item of a campaign carries ``campaign_id``, ``experiment_id``, ``experiment_index`` and
``seed`` in its ``md``; the simulated lab then draws the experiment's randomness from
(seed, index), as an in-process campaign does.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Mapping
from pathlib import Path
from typing import Any

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
    "flow_synthesis",
    "hot_injection_synthesis",
    "larp_synthesis",
    "measure_sample",
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
# a lab's other reactors, each by its name (reactor_b), where the name is not this module's
globals().update({n: r for n, r in _lab.reactors.items() if n not in globals()})


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


def hot_injection_synthesis(
    conditions: dict, md: dict | None = None, reactor: str = "reactor", steps: list | None = None
) -> Plan:
    """Hot injection on this workcell (see :func:`orchestrator.plans.hot_injection_synthesis`).

    Parameters
    ----------
    conditions
        ``br_pb_ratio``, ``temperature_c``, ``ligand``, ``time_s``.
    md
        Extra start-document metadata (a campaign's ids).
    reactor
        Which of the workcell's hot-injection reactors.
    steps
        Steps of the workcell's plugin instruments on the product (``instrument``, ``step``,
        ``args`` each).
    """
    return (
        yield from _plans.hot_injection_synthesis(
            _lab, conditions, md=_campaign_md(md), reactor=reactor, steps=steps
        )
    )


def flow_synthesis(conditions: dict, md: dict | None = None) -> Plan:
    """Flow synthesis on this workcell (see :func:`orchestrator.plans.flow_synthesis`).

    Parameters
    ----------
    conditions
        ``br_pb_ratio``, ``temperature_c``, ``ligand``, ``residence_time_s``, ``flow_ratio``.
    md
        Extra start-document metadata (a campaign's ids).
    """
    return (yield from _plans.flow_synthesis(_lab, conditions, md=_campaign_md(md)))


def larp_synthesis(conditions: dict, md: dict | None = None, steps: list | None = None) -> Plan:
    """LARP in a fresh well on this workcell (see :func:`orchestrator.plans.larp_synthesis`).

    Parameters
    ----------
    conditions
        ``br_pb_ratio``, ``precursor_ul``, ``ligand_ul``, ``time_s``.
    md
        Extra start-document metadata (a campaign's ids).
    steps
        Steps of the workcell's plugin instruments on the product.
    """
    return (yield from _plans.larp_synthesis(_lab, conditions, md=_campaign_md(md), steps=steps))


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

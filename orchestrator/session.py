"""An interactive session, as on a beamline: ``from orchestrator.session import *``.

Gives ``RE`` (a RunEngine that stores every document in ``db`` and shows bluesky's
``BestEffortCallback`` table), ``lab`` (the simulated lab, or the lab config named by
``$QDLAB_LAB``, as ``qdlab ipython --lab`` sets it), ``db`` (``$QDLAB_DB`` or ``./qdlab.db``;
``qdlab ipython --db``), the plans, the standard plans and stubs as ``bp`` and ``bps``, and
``Transfer`` and ``Mix`` for the robot, and ``safety``: the lab config's suspenders (an open
hood suspends a plan until it closes; see :mod:`orchestrator.execution.safety`). ``RE.md`` is a
bluesky ``PersistentDict`` (in ``$XDG_STATE_HOME/qdlab/runengine-md``), so scan ids go on
counting across sessions::

    RE(hot_injection_synthesis(lab, dict(br_pb_ratio=12, temperature_c=140,
                                         ligand="oa_olam", time_s=10)))
"""

from __future__ import annotations

import os
from pathlib import Path

import bluesky.plan_stubs as bps
import bluesky.plans as bp
import matplotlib
from bluesky.callbacks.best_effort import BestEffortCallback
from bluesky.utils import PersistentDict

from db import Database
from db.tiled import TiledSink
from devices import DEFAULT_LAB, Mix, Transfer, build_lab
from orchestrator.execution.engine import new_run_engine
from orchestrator.execution.plans import (
    calibrate_cell,
    flow_synthesis,
    hot_injection_synthesis,
    larp_synthesis,
    measure_sample,
)
from orchestrator.execution.safety import SafetyWatch

__all__ = [
    "RE",
    "Mix",
    "Transfer",
    "bec",
    "bp",
    "bps",
    "calibrate_cell",
    "db",
    "flow_synthesis",
    "hot_injection_synthesis",
    "lab",
    "larp_synthesis",
    "measure_sample",
    "safety",
]


def _metadata_dir() -> Path:
    state = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(state) / "qdlab" / "runengine-md"


lab = build_lab(os.environ.get("QDLAB_LAB", DEFAULT_LAB))
db = Database()
safety = SafetyWatch(lab, lab.config.safety)  # the lab's suspenders (hood, ceilings)
tiled = os.environ.get("QDLAB_TILED")  # `qdlab ipython --tiled URL`
RE = new_run_engine(db, tiled=TiledSink(tiled) if tiled else None, safety=safety)
RE.md = PersistentDict(str(_metadata_dir()))
bec = BestEffortCallback()
if not matplotlib.get_backend().lower().startswith(("qt", "tk", "gtk", "wx", "macosx")):
    bec.disable_plots()  # no screen: the table only
RE.subscribe(bec)

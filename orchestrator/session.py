"""An interactive session, as on a beamline: ``from orchestrator.session import *``.

Gives ``RE`` (a RunEngine that stores every document in ``db`` and shows a live table), ``lab``
(the simulated lab, or the lab config named by ``$QDLAB_LAB``), ``db`` (``$QDLAB_DB`` or
``./qdlab.db``), the plans, the standard plans and stubs as ``bp`` and ``bps``, and ``Transfer``
and ``Mix`` for the robot::

    RE(hot_injection_synthesis(lab, dict(br_pb_ratio=12, temperature_c=140,
                                         ligand="oa_olam", time_s=10)))
"""

from __future__ import annotations

import os

import bluesky.plan_stubs as bps
import bluesky.plans as bp
from bluesky import RunEngine
from bluesky.callbacks import LiveTable

from db import Database, DocumentWriter
from devices import DEFAULT_LAB, Mix, Transfer, build_lab
from orchestrator.plans import (
    calibrate_cell,
    flow_synthesis,
    hot_injection_synthesis,
    larp_synthesis,
    measure_sample,
)

__all__ = [
    "RE",
    "Mix",
    "Transfer",
    "bp",
    "bps",
    "calibrate_cell",
    "db",
    "flow_synthesis",
    "hot_injection_synthesis",
    "lab",
    "larp_synthesis",
    "measure_sample",
]

lab = build_lab(os.environ.get("QDLAB_LAB", DEFAULT_LAB))
db = Database()
RE = RunEngine({})
RE.subscribe(DocumentWriter(db))
RE.subscribe(LiveTable(["cell_pl_peak", "cell_pl_fwhm", "cell_abs_peak", "cell_plqy_est"]))

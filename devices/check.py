"""``qdlab lab check``: does every PV of an EPICS lab connect, and what does it hold?"""

from __future__ import annotations

from typing import Any

from devices.config import LabConfig
from devices.epics import PVs, pv_suffixes

__all__ = ["check_lab"]


def check_lab(config: LabConfig) -> list[dict[str, Any]]:
    """One row per PV of the lab: ``pv``, ``suffix``, ``connected``, ``value`` and ``limits``
    (text, ready to print). A simulated lab has no PVs: no rows."""
    if config.backend != "epics":
        return []
    pvs = PVs(config.epics)
    suffixes = pv_suffixes(config)
    missing = set(pvs.unconnected(suffixes))
    rows = []
    for suffix in suffixes:
        row: dict[str, Any] = {
            "pv": pvs.name(suffix),
            "suffix": suffix,
            "connected": suffix not in missing,
            "value": "",
            "limits": "",
        }
        if row["connected"]:
            value = pvs.get(suffix)
            text = str(value)
            row["value"] = text if len(text) <= 40 else text[:37] + "..."
            sig = pvs.signal(suffix)
            low, high = sig.limits
            if low != high:
                row["limits"] = f"[{low:g}, {high:g}]"
        rows.append(row)
    return rows

"""Bluesky documents of a made-up spectroscopy run, to exercise storage without a RunEngine.

Used by the database tests and ``benchmarks/db_write_speed.py``: each event carries two
``points``-long spectra (``cell_pl``, ``cell_absorbance``) on a wavelength axis declared in the
descriptor's configuration, exactly as the optical cell emits them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from event_model import compose_run

__all__ = ["synthetic_run"]


def synthetic_run(
    events: int, points: int = 1024, metadata: Mapping[str, Any] | None = None, seed: int = 0
) -> list[tuple[str, dict[str, Any]]]:
    """(name, doc) pairs of a complete run with ``events`` events."""
    rng = np.random.default_rng(seed)
    wavelengths = np.linspace(350.0, 650.0, points).tolist()
    bundle = compose_run(metadata={"plan_name": "synthetic", **(metadata or {})})
    spectrum = {"source": "synthetic", "dtype": "array", "shape": [points], "object_name": "cell"}
    scalar = {"source": "synthetic", "dtype": "number", "shape": [], "object_name": "cell"}
    descriptor = bundle.compose_descriptor(
        name="primary",
        data_keys={"cell_pl": spectrum, "cell_absorbance": spectrum, "cell_pl_peak": scalar},
        object_keys={"cell": ["cell_pl", "cell_absorbance", "cell_pl_peak"]},
        configuration={
            "cell": {
                "data": {"cell_wavelengths": wavelengths},
                "timestamps": {"cell_wavelengths": 0.0},
                "data_keys": {"cell_wavelengths": {**spectrum, "dtype": "array"}},
            }
        },
    )
    docs: list[tuple[str, dict[str, Any]]] = [
        ("start", bundle.start_doc),
        ("descriptor", descriptor.descriptor_doc),
    ]
    for i in range(events):
        peak = 460.0 + i % 50
        data = {
            "cell_pl": rng.normal(0, 1, points).tolist(),
            "cell_absorbance": rng.normal(0, 1, points).tolist(),
            "cell_pl_peak": peak if i % 7 else float("nan"),
        }
        docs.append(
            (
                "event",
                descriptor.compose_event(
                    data=data, timestamps={k: 1.0 + i for k in data}, seq_num=i + 1
                ),
            )
        )
    docs.append(("stop", bundle.compose_stop()))
    return docs

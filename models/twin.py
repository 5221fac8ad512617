"""The free parameters of the digital twin, for calibrating it to a real lab.

:class:`TwinParameters` scales or shifts the mechanisms of :mod:`models.synthesis` and
:mod:`models.optics` that differ most from lab to lab:

- ``sizing_offset_ev``: shift of every excitonic transition of the dots (sizing curve offset);
- ``br_affinity_scale``: the Br- surface equilibrium constant :math:`K` (Dong et al.), scaled;
- ``size_scale``: the bulk-like size reached without extra bromide, :math:`\\Delta L`, scaled;
- ``dispersion_scale``: the size dispersion, scaled (PL linewidth);
- ``variability``: the run-to-run scatter of the outcomes, scaled (the noise level);
- ``platelet_shift_c``: where the cube/nanoplatelet boundary sits, °C added to its temperature
  (the reports the review cites put it ~40 °C apart: Bekenstein, cubes to platelets from 150 to
  130 °C; Otero-Martinez, platelets only below ~100 °C).

The defaults (0, 1, 1, 1, 1, 0) are the published-calibrated twin. ``qdlab calibrate`` fits them to
recorded campaigns and writes a YAML file that a lab config names as ``simulator.twin``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from models.configfile import ConfigError, read_yaml
from models.errors import UserError

__all__ = ["TwinError", "TwinParameters", "load_twin"]


class TwinError(UserError, ValueError):
    """A twin file or mapping is missing, unreadable or out of range."""


_RANGES = {
    "sizing_offset_ev": (-0.2, 0.2),
    "br_affinity_scale": (0.05, 20.0),
    "size_scale": (0.2, 5.0),
    "dispersion_scale": (0.2, 5.0),
    "variability": (0.0, 10.0),
    "platelet_shift_c": (-60.0, 60.0),
}


@dataclass(frozen=True)
class TwinParameters:
    """Free parameters of the twin (see the module docstring)."""

    sizing_offset_ev: float = 0.0
    br_affinity_scale: float = 1.0
    size_scale: float = 1.0
    dispersion_scale: float = 1.0
    variability: float = 1.0
    platelet_shift_c: float = 0.0

    def __post_init__(self) -> None:
        for f in fields(self):
            low, high = _RANGES[f.name]
            value = getattr(self, f.name)
            if not low <= value <= high:
                raise TwinError(f"twin {f.name} = {value:g} is outside [{low:g}, {high:g}]")

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> TwinParameters:
        """From ``{name: value}`` (or a calibration file's ``parameters: {name: {value: ...}}``)."""
        data = data.get("parameters", data)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise TwinError(f"twin: unknown parameter {unknown[0]!r}; known: {sorted(known)}")
        values = {k: (v["value"] if isinstance(v, Mapping) else v) for k, v in data.items()}
        return cls(**{k: float(v) for k, v in values.items()})

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def load_twin(
    source: str | Path | Mapping[str, Any], base_dir: Path | None = None
) -> TwinParameters:
    """Twin parameters from a YAML file (relative to ``base_dir``) or a mapping."""
    if isinstance(source, Mapping):
        return TwinParameters.from_mapping(source)
    path = Path(source)
    if not path.is_absolute() and base_dir is not None and (base_dir / path).is_file():
        path = base_dir / path
    try:
        data, _ = read_yaml(path, "twin file")
    except ConfigError as exc:
        raise TwinError(str(exc)) from None
    if not isinstance(data, Mapping):
        raise TwinError(f"twin file {path}: expected a mapping")
    return TwinParameters.from_mapping(data)

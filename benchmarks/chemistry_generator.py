"""Hot-injection chemistries drawn at random: a benchmark a planner cannot be fitted to.

:func:`draw` turns a seed into a whole outcome model (``outcome(conditions, rng) ->
population``, the contract of :mod:`models.synthesis`) unlike the twin's, each knob drawn on
its own:

- **laws**: each continuous input (Br/Pb, temperature, time) reaches the twin through a warp of
  its range: bent (a power 0.4-2.5), sometimes reversed (the law runs the other way), sometimes
  folded (the size peaks inside the range), squeezed into part of the twin's range (shifted and
  stretched);
- **kinetics**: growth 30 times slower to 10 times faster, and sometimes ripening that goes on
  after the twin's size settles;
- **ligands**: swapped (each acts like another of the twin's), two acting alike, offsets of their
  own;
- **colours**: the sizes stretched and shifted (a lab whose dots run larger or smaller);
- **shape**: the platelet boundary moved by -30 to +50 °C;
- **noise**: batch-to-batch scatter that grows across the temperature range;
- **infeasible regions**: a slab of one input where nothing emits (precursors precipitate);
- **quirks**: wider size distributions, dimmer dots.

Members 0-99 (:data:`TUNING`) are for developing a planner; members 1000-1099
(:data:`VALIDATION`) are for reporting on, and never looked at while tuning. A member is also an
outcome model by path: ``chemistry_generator:member_1003`` (with ``benchmarks/`` on the path),
which is how the campaign runner loads it. Each member's :attr:`description` says what was
drawn. The nine hand-written members of :mod:`chemistry_family` stay as a readable sample.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from models.parameters import get_route
from models.synthesis import hot_injection_outcome

__all__ = ["TUNING", "VALIDATION", "draw"]

TUNING = range(0, 100)
"""Seeds to develop on."""
VALIDATION = range(1000, 1100)
"""Seeds to report on (held out from development)."""

Outcome = Callable[[Mapping[str, Any], np.random.Generator | None], dict[str, Any]]
_ROUTE = get_route("hot_injection")
_LIGANDS = _ROUTE.parameter("ligand").choices
_CONTINUOUS = ("br_pb_ratio", "temperature_c", "time_s")


def _range(name: str) -> tuple[float, float]:
    p = _ROUTE.parameter(name)
    return float(p.low), float(p.high)


def _warp(rng: np.random.Generator, name: str) -> tuple[Callable[[float], float], str]:
    """A map of input ``name``'s range onto the twin's: bent, maybe reversed or folded,
    squeezed into part of the range; and what it is, in words."""
    lo, hi = _range(name)
    power = float(math.exp(rng.uniform(math.log(0.4), math.log(2.5))))
    reverse = name != "time_s" and rng.random() < 0.3
    fold = name == "temperature_c" and not reverse and rng.random() < 0.15
    a = float(rng.uniform(0.0, 0.3))
    b = float(rng.uniform(0.7, 1.0))
    log = name == "time_s"  # time acts on a log scale

    def warp(x: float) -> float:
        u = math.log(x / lo) / math.log(hi / lo) if log else (x - lo) / (hi - lo)
        u = min(max(u, 0.0), 1.0)
        if fold:
            u = 1.0 - abs(2.0 * u - 1.0)
        if reverse:
            u = 1.0 - u
        v = a + (b - a) * u**power
        return lo * (hi / lo) ** v if log else lo + (hi - lo) * v

    words = f"{name}^{power:.2f} into [{a:.2f}, {b:.2f}]"
    words += " reversed" if reverse else " folded" if fold else ""
    return warp, words


def draw(seed: int) -> Outcome:
    """The outcome model of member ``seed`` (the same seed, the same chemistry)."""
    rng = np.random.default_rng([seed, 20261207])
    words: list[str] = []
    warps: dict[str, Callable[[float], float]] = {}
    for name in _CONTINUOUS:
        warps[name], said = _warp(rng, name)
        words.append(said)
    speed = float(10.0 ** rng.uniform(-1.5, 1.0))
    words.append(f"growth x{speed:.2f}")
    ripening = float(rng.uniform(0.05, 0.3)) if rng.random() < 0.3 else 0.0
    if ripening:
        words.append(f"ripening +{ripening:.0%} a decade")
    ligands = dict(zip(_LIGANDS, _LIGANDS, strict=True))
    if rng.random() < 0.5:
        ligands = dict(zip(_LIGANDS, rng.permutation(_LIGANDS).tolist(), strict=True))
        words.append("ligands swapped")
    if rng.random() < 0.3:
        one, other = rng.choice(len(_LIGANDS), 2, replace=False)
        ligands[_LIGANDS[one]] = ligands[_LIGANDS[other]]
        words.append(f"{_LIGANDS[one]} acts like {_LIGANDS[other]}")
    offsets = {lig: float(rng.normal(0.0, 0.8)) if rng.random() < 0.5 else 0.0 for lig in _LIGANDS}
    stretch, shift = float(rng.uniform(0.88, 1.12)), float(rng.uniform(-0.6, 0.6))
    words.append(f"sizes x{stretch:.2f} {shift:+.2f} nm")
    platelet_shift = float(rng.uniform(-30.0, 50.0)) if rng.random() < 0.4 else 0.0
    if platelet_shift:
        words.append(f"platelet boundary {platelet_shift:+.0f} °C")
    scatter = float(rng.uniform(0.01, 0.05)) if rng.random() < 0.5 else 0.0
    scatter_growth = float(rng.uniform(0.0, 2.0))
    if scatter:
        words.append(f"scatter {scatter:.0%} growing x{1 + scatter_growth:.1f} with temperature")
    dead: tuple[str, float, bool] | None = None
    if rng.random() < 0.4:
        name = _CONTINUOUS[int(rng.integers(len(_CONTINUOUS)))]
        lo, hi = _range(name)
        width = float(rng.uniform(0.1, 0.3))
        above = bool(rng.random() < 0.5)
        edge = hi - width * (hi - lo) if above else lo + width * (hi - lo)
        dead = (name, edge, above)
        words.append(f"nothing emits with {name} {'>' if above else '<'} {edge:.3g}")
    dispersion = float(rng.uniform(0.8, 1.4))
    brightness = float(rng.uniform(0.5, 1.1))
    t_lo, t_hi = _range("temperature_c")

    def outcome(conditions: Mapping[str, Any], rng: np.random.Generator | None) -> dict:
        changed = {name: warps[name](float(conditions[name])) for name in _CONTINUOUS}
        changed["time_s"] = min(max(changed["time_s"] * speed, 0.05), 5_000.0)
        ligand = conditions["ligand"]
        twin_ligand = ligands[ligand]
        out = dict(hot_injection_outcome({**conditions, **changed, "ligand": twin_ligand}, rng))
        if platelet_shift:
            moved = {**changed, "temperature_c": changed["temperature_c"] - platelet_shift}
            moved["temperature_c"] = min(max(moved["temperature_c"], t_lo), t_hi)
            other = hot_injection_outcome({**conditions, **moved, "ligand": twin_ligand}, None)
            out["platelet_fraction"] = float(other["platelet_fraction"])
        edge = out["edge_length_nm"] * stretch + shift + offsets[ligand]
        if ripening:
            edge *= 1.0 + ripening * math.log10(1.0 + float(conditions["time_s"]) / 5.0)
        if scatter and rng is not None:
            u = (float(conditions["temperature_c"]) - t_lo) / (t_hi - t_lo)
            edge *= math.exp(rng.normal(0.0, scatter * (1.0 + scatter_growth * u)))
        out["edge_length_nm"] = max(edge, 2.6)
        out["size_dispersion"] = min(out["size_dispersion"] * dispersion, 0.5)
        out["plqy"] = min(out["plqy"] * brightness, 1.0)
        if dead is not None:
            name, edge_at, above = dead
            value = float(conditions[name])
            if (value > edge_at) if above else (value < edge_at):
                out.update(plqy=0.0, concentration=0.0)
        return out

    outcome.__name__ = outcome.__qualname__ = f"member_{seed}"
    outcome.__doc__ = f"Generated chemistry {seed}: " + "; ".join(words)
    outcome.description = "; ".join(words)  # type: ignore[attr-defined]
    return outcome


def __getattr__(name: str) -> Outcome:
    """``member_<seed>``: the member as a module attribute, so that a campaign's
    ``outcome_model: chemistry_generator:member_1003`` loads it."""
    prefix, _, seed = name.partition("_")
    if prefix == "member" and seed.isdigit():
        return draw(int(seed))
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

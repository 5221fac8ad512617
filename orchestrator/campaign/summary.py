"""How campaigns and their targets read in the terminal and in reports (one wording everywhere).

Experiments are numbered from 1 wherever a person reads them (tables, summaries, CSV, reports);
the database's ``index`` column counts from 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from orchestrator.campaign.config import TARGET_OBSERVABLES
from planners import Target

__all__ = ["describe_summary", "pareto_front", "pareto_text", "target_text"]

_LABELS = {"pl_peak_nm": "PL", "edge_length_nm": "edge length"}


def target_text(target: Mapping[str, Any]) -> str:
    """``PL 470 ± 1 nm cubes, min pl_fwhm_nm`` for a stored target (a ``TargetSpec`` dump;
    one stored before targets had a shape is of cubes, the default)."""
    tol = target.get("tolerance_nm", 1.0)
    key = next((k for k in _LABELS if target.get(k) is not None), None)
    text = f"{_LABELS[key]} {target[key]:g} ± {tol:g} nm" if key else "no target"
    shape = target.get("shape", "cubes")
    if shape != "any":
        text += f" {shape}"
    if target.get("layers") is not None:
        text += f" ({target['layers']} monolayers)"
    extras = [f"min {k}" for k in target.get("minimize") or []]
    extras += [f"max {k}" for k in target.get("maximize") or []]
    if target.get("pareto"):
        extras.append("Pareto " + " vs ".join(f"{v} {k}" for k, v in target["pareto"].items()))
    return ", ".join([text, *extras])


def pareto_front(rows: list[dict[str, Any]], target: Target) -> list[dict[str, Any]]:
    """The hits on the Pareto front of a ``pareto`` target, from ``Database.experiments`` rows:
    ``{experiment, pl_peak_nm, pl_fwhm_nm, plqy_est}`` each, narrowest line first (none for
    another target)."""
    if not target.pareto:
        return []
    done = [r for r in rows if r["status"] == "done" and r["observables"]]
    front = target.pareto_set([(r["observables"], r["conditions"]) for r in done])
    points = [
        {"experiment": done[i]["index"] + 1}
        | {k: float(done[i]["observables"][k]) for k in ("pl_peak_nm", "pl_fwhm_nm", "plqy_est")}
        for i in front
    ]
    return sorted(points, key=lambda p: p["pl_fwhm_nm"])


def pareto_text(point: Mapping[str, Any]) -> str:
    """``#18: PL 469.57 nm, FWHM 22.3 nm, PLQY 0.70`` for a point of :func:`pareto_front`."""
    return (
        f"#{point['experiment']}: PL {point['pl_peak_nm']:.2f} nm, "
        f"FWHM {point['pl_fwhm_nm']:.1f} nm, PLQY {point['plqy_est']:.2f}"
    )


def _fmt(value: Any, digits: int = 2) -> str:
    return value if isinstance(value, str) else f"{value:.{digits}f}"


def describe_summary(summary: Any, target: Mapping[str, Any]) -> list[str]:
    """The lines ``qdlab campaign run`` prints at the end: status, and the best experiment with
    the target's own observable (and FWHM when measured)."""
    hit = (
        f"target reached at experiment {summary.first_hit_experiment}"
        if summary.reached_target
        else "target not reached"
    )
    lines = [
        f"campaign {summary.campaign_id}: {summary.status} after {summary.experiments} "
        f"experiments, {hit} ({target_text(target)})"
    ]
    if summary.best:
        best = summary.best
        obs = best["observables"]
        key = next(k for k in _LABELS if target.get(k) is not None)
        shown = [f"{_LABELS[key]} {_fmt(obs.get(TARGET_OBSERVABLES[key]))} nm"]
        if key != "pl_peak_nm" and obs.get("pl_peak_nm") is not None:
            shown.append(f"PL {obs['pl_peak_nm']:.2f} nm")
        if obs.get("pl_fwhm_nm") is not None:
            shown.append(f"FWHM {obs['pl_fwhm_nm']:.1f} nm")
        conditions = ", ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
            for k, v in best["conditions"].items()
        )
        lines.append(f"best: experiment {best['experiment']}, {', '.join(shown)}; {conditions}")
    if summary.pareto_set is not None:
        front = summary.pareto_set
        listed = "; ".join(pareto_text(p) for p in front) or "no hit yet"
        lines.append(f"Pareto set ({len(front)} of the hits): {listed}")
    if summary.status == "paused":
        lines.append(f"[yellow]paused:[/yellow] {summary.reason}")
    return lines

"""Campaign reports: figures a person reads at a glance, in one self-contained HTML page.

:func:`write_report` writes into a folder:

- ``convergence.png``: |measured - target| per experiment (failed ones marked), the best so far,
  and the tolerance band, so whether and when the campaign converged is visible at once;
- ``spectra.png``: the measured PL and absorption spectra of every experiment, coloured from
  first (dark) to last (bright), the target wavelength marked;
- ``conditions.png``: the explored conditions, pairwise, coloured by the target observable;
- ``pareto.png`` (a ``target.pareto`` campaign): PLQY against FWHM of every measured sample,
  the hits marked and their Pareto front drawn, so the trade-off found is seen at once;
- ``growth.png`` (runs read in situ, a lab with ``reactor.in_situ_interval_s``): the PL peak of
  the hot mixture against growth time, one line per experiment, each ending at its quenched
  product's peak (a marker at the quench), so the growth and the hot-to-cold offset are seen;
- ``report.html``: the figures embedded (base64) with the campaign's summary and table.
"""

from __future__ import annotations

import base64
import html
import math
from pathlib import Path
from typing import Any

import numpy as np

from db import Database
from db.records import AuditEntry, Experiment, ExperimentStatus
from models.errors import UserError
from orchestrator.campaign.config import target_of
from orchestrator.campaign.summary import pareto_front, pareto_text, target_text
from orchestrator.execution.observe import campaign_trajectories, grown_for_s
from planners import Target

__all__ = ["export_trajectories", "write_comparison", "write_report"]


def _figure_setup() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _convergence(plt: Any, rows: list[Experiment], record: dict[str, Any], path: Path) -> None:
    target = target_of(record)
    observable, value, tol = target.observable, target.value, target.tolerance
    fig, ax = plt.subplots(figsize=(7.5, 4.2), dpi=110)
    points = _points(rows, target)
    failed = [r.number for r in rows if r.status == ExperimentStatus.FAILED]
    right = [(x, e) for x, e, ok in points if ok]
    wrong = [(x, e) for x, e, ok in points if not ok]
    if right:
        xs, errs = zip(*right, strict=True)
        ax.semilogy(xs, errs, "o", color="#1f77b4", alpha=0.7, label="|error| of experiment")
        ax.semilogy(
            *_best_so_far(rows, target), "-", color="#d62728", lw=2, drawstyle="steps-post",
            label="best so far",
        )  # fmt: skip
    if wrong:
        xs, errs = zip(*wrong, strict=True)
        ax.semilogy(xs, errs, "x", color="0.5", label=f"not {target.shape}: no hit")
    errs = [e for _, e, _ in points]
    ax.axhspan(1e-3, tol, color="#2ca02c", alpha=0.15, label=f"within ±{tol:g} nm")
    for i, x in enumerate(failed):
        ax.axvline(x, color="0.6", ls=":", lw=1, label="failed" if i == 0 else None)
    top = max(errs) * 2 if errs else 10 * tol
    ax.set_ylim(max(min([*errs, tol]) / 3, 1e-2), top)
    ax.set_xlabel("experiment")
    ax.set_ylabel(f"|{observable} - {value:g}| (nm)")
    ax.set_title("Convergence to the target")
    ax.legend(loc="upper right", fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _points(rows: list[Experiment], target: Target) -> list[tuple[int, float, bool]]:
    """(experiment, |error|, of the shape asked for) of every measured experiment."""
    return [
        (r.number, error, target.shape_ok(r.observables, r.conditions))
        for r in rows
        if r.status == ExperimentStatus.DONE
        and math.isfinite(error := target.error(r.observables or {}))
    ]


def _best_so_far(rows: list[Experiment], target: Target) -> tuple[list, list]:
    """(experiment, best |error| so far) after each measured experiment of the shape asked."""
    right = [(x, e) for x, e, ok in _points(rows, target) if ok]
    if not right:
        return [], []
    xs, errors = zip(*right, strict=True)
    return list(xs), np.minimum.accumulate(errors).tolist()


def write_comparison(db: Database, campaign_ids: list[int], out_dir: str | Path) -> Path:
    """One page comparing campaigns towards the same kind of target (e.g. two planners):
    best |error| so far against experiments for each, and a line each (planner, first hit);
    each campaign's own report in a sub-folder ``c<ID>/``. Returns the page."""
    plt = _figure_setup()
    campaigns = [db.campaign(cid) for cid in campaign_ids]
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise UserError(f"--report: {out} is a file, not a folder")
    out.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(7.5, 4.2), dpi=110)
    lines, lowest_best = [], []
    for campaign in campaigns:
        cid, rows = campaign["id"], db.experiments(campaign["id"])
        record = campaign["target"]
        planner = campaign["config"]["campaign"]["planner"]["kind"]
        target = target_of(record)
        xs, best = _best_so_far(rows, target)
        if xs:
            ax.semilogy(xs, best, "-o", drawstyle="steps-post", ms=3, label=f"{cid}: {planner}")
            lowest_best.append(best[-1])
        hits = [
            r
            for r in rows
            if r.status == ExperimentStatus.DONE and target.hit(r.observables, r.conditions)
        ]
        page = write_report(db, cid, out / f"c{cid}")
        lines.append(
            f"<tr><td><a href='c{cid}/{page.name}'>{cid}: {html.escape(campaign['name'])}</a></td>"
            f"<td>{html.escape(planner)}</td><td>{html.escape(target_text(record))}</td>"
            f"<td>{sum(r.status != ExperimentStatus.REJECTED for r in rows)}</td>"
            f"<td>{hits[0].number if hits else 'not reached'}</td>"
            f"<td>{f'{best[-1]:.2f}' if best else '-'}</td></tr>"
        )
    tol = target_of(campaigns[0]["target"]).tolerance
    lowest = min([*lowest_best, tol])
    ax.axhspan(1e-3, tol, color="#2ca02c", alpha=0.15, label=f"within ±{tol:g} nm")
    ax.set_ylim(bottom=max(lowest / 3, 1e-2))
    ax.set_xlabel("experiment")
    ax.set_ylabel("best |error| so far (nm)")
    ax.set_title("Experiments to the target")
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "comparison.png")
    plt.close(fig)
    data = base64.b64encode((out / "comparison.png").read_bytes()).decode()
    page = f"""<!doctype html><html><head><meta charset="utf-8">
<title>QDLab: campaigns {", ".join(map(str, campaign_ids))} compared</title>
<style>body{{font-family:sans-serif;max-width:1000px;margin:2em auto}}img{{max-width:100%}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:2px 8px}}</style>
</head><body><h1>Campaigns compared</h1>
<img alt="comparison" src="data:image/png;base64,{data}">
<table><tr><th>campaign</th><th>planner</th><th>target</th><th>experiments</th>
<th>first hit</th><th>best |error| nm</th></tr>{"".join(lines)}</table>
</body></html>"""
    path = out / "report.html"
    path.write_text(page)
    return path


def _spectra(
    plt: Any, db: Database, rows: list[dict[str, Any]], target: dict[str, Any], path: Path
) -> None:
    fig, (ax_pl, ax_abs) = plt.subplots(1, 2, figsize=(11, 4.2), dpi=110)
    cmap = plt.get_cmap("viridis")
    n = max(len(rows), 1)
    for r in rows:
        color = cmap(r.index / max(n - 1, 1))
        for sp in db.spectra(experiment_id=r.id, stream="primary"):
            x = sp.wavelengths_nm if sp.wavelengths_nm is not None else np.arange(sp.values.size)
            if sp.data_key.endswith("_pl"):
                peak = np.max(sp.values) or 1.0
                ax_pl.plot(x, sp.values / peak, color=color, lw=1, alpha=0.8)
            elif sp.data_key.endswith("_absorbance"):
                ax_abs.plot(x, sp.values, color=color, lw=1, alpha=0.8)
    if "pl_peak_nm" in target:
        ax_pl.axvline(target["pl_peak_nm"], color="k", ls="--", lw=1, label="target")
        ax_pl.legend(fontsize=8)
    # the window around what was asked for and what came out: blue, green or red
    lines = [
        v
        for v in [target.get("pl_peak_nm")]
        + [(r.observables or {}).get("pl_peak_nm") for r in rows]
        if isinstance(v, int | float) and np.isfinite(v)
    ] or [480.0]
    low, high = min(lines) - 70.0, max(lines) + 70.0
    ax_pl.set(
        xlim=(low, high), xlabel="wavelength (nm)", ylabel="PL (normalised)", title="Measured PL"
    )
    ax_abs.set(
        xlim=(350, high),
        xlabel="wavelength (nm)",
        ylabel="absorbance (OD)",
        title="Measured absorption",
    )
    sm = plt.cm.ScalarMappable(cmap=cmap, norm=plt.Normalize(1, n))
    fig.colorbar(sm, ax=[ax_pl, ax_abs], label="experiment", fraction=0.03)
    fig.savefig(path)
    plt.close(fig)


GROWTH_LINES = 40
"""The growth figure draws the last this many experiments read in situ."""


TRAJECTORY_FIELDS = (
    "growth_time_s",
    "temperature_c",
    "pl_peak_nm",
    "pl_fwhm_nm",
    "abs_peak_nm",
    "edge_length_est_nm",
    "plqy_est",
)
"""The columns of an in-situ point in :func:`export_trajectories`."""


def export_trajectories(db: Database, campaign_id: int, path: str | Path) -> int:
    """Write every in-situ point of a campaign as CSV, one row per reading (experiment, run,
    point, ``hot``: 1 for the hot mixture, 0 for product out of a flow coil, then
    :data:`TRAJECTORY_FIELDS`, empty where no line showed yet) with the experiment's measured
    product PL peak for comparison; return the row count."""
    import csv

    db.campaign(campaign_id)  # raises if there is no such campaign
    rows = 0
    with Path(path).open("w", newline="") as out:
        writer = csv.writer(out)
        header = ["experiment", "run_uid", "point", "hot", *TRAJECTORY_FIELDS, "product_pl_nm"]
        writer.writerow(header)
        for r, points in campaign_trajectories(db, db.experiments(campaign_id), limit=None):
            for i, p in enumerate(points, start=1):
                values = ("" if not math.isfinite(p[k]) else p[k] for k in TRAJECTORY_FIELDS)
                product = r.observables["pl_peak_nm"]
                writer.writerow([r.number, r.run_uid, i, int(p["hot"]), *values, product])
                rows += 1
    return rows


def _growth(plt: Any, found: list[tuple[Experiment, list]], target: dict, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(7.5, 4.2), dpi=110)
    cmap = plt.get_cmap("viridis")
    last = max((r.index for r, _ in found), default=1) or 1
    for r, points in found:
        color = cmap(r.index / last)
        t = [p["growth_time_s"] for p in points]
        ax.plot(t, [p["pl_peak_nm"] for p in points], color=color, lw=1.2, marker=".")
        quench = grown_for_s(r.conditions) or t[-1]
        ax.plot([quench], [r.observables["pl_peak_nm"]], color=color, marker="*", ms=9)
    if "pl_peak_nm" in target:
        ax.axhline(target["pl_peak_nm"], color="k", ls="--", lw=1, label="target (quenched)")
        ax.legend(fontsize=8)
    ax.set(
        xlabel="growth time (s)",
        ylabel="PL peak (nm)",
        title="In situ: the hot mixture while the dots grow (* the quenched product)",
    )
    fig.savefig(path)
    plt.close(fig)


def _conditions(plt: Any, rows: list[Experiment], config: dict[str, Any], path: Path) -> None:
    space = config.get("space", {})
    names = list(space)
    observable = "pl_peak_nm" if "pl_peak_nm" in config["target"] else "edge_length_est_nm"
    k = len(names)
    fig, axes = plt.subplots(k, k, figsize=(2.4 * k + 1.5, 2.2 * k), dpi=100, squeeze=False)
    values = {n: [] for n in names}
    colour, done = [], []
    for r in rows:
        obs = r.observables or {}
        v = obs.get(observable)
        ok = r.status == ExperimentStatus.DONE and v is not None and math.isfinite(v)
        done.append(ok)
        colour.append(v if ok else np.nan)
        for n in names:
            c = r.conditions[n]
            values[n].append(space[n].index(c) if isinstance(c, str) else c)
    done_mask = np.array(done, dtype=bool)
    scatter = None
    for i, yn in enumerate(names):
        for j, xn in enumerate(names):
            ax = axes[i, j]
            x, y = np.array(values[xn], dtype=float), np.array(values[yn], dtype=float)
            if i == j:
                ax.hist(x, bins=12, color="0.6")
            else:
                ax.scatter(x[~done_mask], y[~done_mask], marker="x", c="0.5", s=18)
                scatter = ax.scatter(
                    x[done_mask], y[done_mask], c=np.array(colour)[done_mask], cmap="turbo", s=22
                )
            if isinstance(space[xn][0], str):
                ax.set_xticks(range(len(space[xn])), space[xn], rotation=30, fontsize=6)
            if isinstance(space[yn][0], str) and i != j:
                ax.set_yticks(range(len(space[yn])), space[yn], fontsize=6)
            if i == k - 1:
                ax.set_xlabel(xn, fontsize=8)
            if j == 0:
                ax.set_ylabel(yn, fontsize=8)
            ax.tick_params(labelsize=6)
    if scatter is not None:
        fig.colorbar(scatter, ax=axes, label=f"{observable} (× = failed)", fraction=0.02)
    fig.suptitle("Explored conditions")
    fig.savefig(path)
    plt.close(fig)


def _pareto(plt: Any, rows: list[Experiment], record: dict[str, Any], path: Path) -> None:
    target = target_of(record)
    fig, ax = plt.subplots(figsize=(7.5, 4.6), dpi=110)
    done = [
        r
        for r in rows
        if r.status == ExperimentStatus.DONE
        and all(r.observables.get(k) is not None for k in ("pl_fwhm_nm", "plqy_est"))
    ]
    hits = [r for r in done if target.hit(r.observables, r.conditions)]
    others = [r for r in done if r not in hits]

    def xy(group: list[dict[str, Any]]) -> tuple[list[float], list[float]]:
        return [r.observables["pl_fwhm_nm"] for r in group], [
            r.observables["plqy_est"] for r in group
        ]

    if others:
        ax.plot(*xy(others), "o", color="0.75", ms=5, label="not a hit")
    if hits:
        label = f"hit (±{target.tolerance:g} nm, {target.shape})"
        ax.plot(*xy(hits), "o", color="#1f77b4", ms=6, label=label)
    front = pareto_front(rows, target)
    if front:
        fx = [p["pl_fwhm_nm"] for p in front]
        fy = [p["plqy_est"] for p in front]
        ax.plot(fx, fy, "-", color="#d62728", lw=1.5, drawstyle="steps-post")
        ax.plot(fx, fy, "*", color="#d62728", ms=13, label="Pareto set")
        for p in front:
            ax.annotate(
                f"#{p['experiment']}", (p["pl_fwhm_nm"], p["plqy_est"]),
                textcoords="offset points", xytext=(6, 4), fontsize=8,
            )  # fmt: skip
    ax.set_xlabel("PL FWHM (nm), narrower is better")
    ax.set_ylabel("PLQY (estimated), higher is better")
    ax.set_title("Line width against brightness: the trade-off among the hits")
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _table(rows: list[Experiment], names: list[str]) -> str:
    head = "".join(
        f"<th>{html.escape(h)}</th>"
        for h in ["#", "status", *names, "PL peak (nm)", "FWHM (nm)", "note"]
    )
    body = []
    for r in rows:
        obs = r.observables or {}
        cells = [str(r.number), r.status]
        for n in names:
            c = r.conditions[n]
            cells.append(c if isinstance(c, str) else f"{c:.4g}")
        for key in ("pl_peak_nm", "pl_fwhm_nm"):
            v = obs.get(key)
            cells.append("" if v is None else f"{v:.2f}")
        cells.append(r.failure_reason or "")
        body.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _pareto_section(rows: list[Experiment], record: dict[str, Any], images: list[str]) -> str:
    """The Pareto figure and the list of the front (nothing for another target)."""
    if not record.get("pareto"):
        return ""
    front = pareto_front(rows, target_of(record))
    items = "".join(f"<li>{html.escape(pareto_text(p))}</li>" for p in front) or "<li>no hit</li>"
    return f"<h2>Pareto set ({len(front)} of the hits)</h2>{''.join(images)}<ul>{items}</ul>"


def _audit_section(entries: list[AuditEntry]) -> str:
    """Who did what on the campaign (nothing if nobody did anything but run it)."""
    if not entries:
        return ""
    items = "".join(f"<li>{html.escape(e.line())}</li>" for e in entries)
    return f"<h2>Who did what</h2><ul>{items}</ul>"


def write_report(db: Database, campaign_id: int, out_dir: str | Path) -> Path:
    """Write the figures and ``report.html`` of a campaign into ``out_dir``; return the page."""
    plt = _figure_setup()
    campaign = db.campaign(campaign_id)  # an unknown campaign fails before anything is made
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out: {out} is a file, not a folder")
    out.mkdir(parents=True, exist_ok=True)
    config = campaign["config"]["campaign"]
    target = campaign["target"]  # a layers target's line resolved to its pl_peak_nm
    rows = db.experiments(campaign_id)
    figures = {
        "convergence.png": lambda p: _convergence(plt, rows, target, p),
        "spectra.png": lambda p: _spectra(plt, db, rows, target, p),
        "conditions.png": lambda p: _conditions(plt, rows, config, p),
    }
    if target.get("pareto"):
        figures["pareto.png"] = lambda p: _pareto(plt, rows, target, p)
    grown = campaign_trajectories(db, rows, GROWTH_LINES)
    if grown:
        figures["growth.png"] = lambda p: _growth(plt, grown, target, p)
    embedded: dict[str, str] = {}
    for name, draw in figures.items():
        path = out / name
        draw(path)
        data = base64.b64encode(path.read_bytes()).decode()
        embedded[name] = f'<img alt="{name}" src="data:image/png;base64,{data}">'
    pareto = [embedded["pareto.png"]] if "pareto.png" in embedded else []
    growth = embedded.get("growth.png", "")
    goal = target_text(target)
    page = f"""<!doctype html><html><head><meta charset="utf-8">
<title>QDLab campaign {campaign_id}: {html.escape(campaign["name"])}</title>
<style>body{{font-family:sans-serif;max-width:1200px;margin:2em auto}}img{{max-width:100%}}
table{{border-collapse:collapse;font-size:12px}}
td,th{{border:1px solid #ccc;padding:2px 6px}}</style>
</head><body>
<h1>Campaign {campaign_id}: {html.escape(campaign["name"])}</h1>
<p>Route <b>{html.escape(campaign["route"])}</b>, target <b>{html.escape(goal)}</b>,
planner <b>{html.escape(config["planner"]["kind"])}</b>. Status <b>{campaign["status"]}</b>
({html.escape(campaign["status_reason"] or "")}), {len(rows)} experiments.</p>
{embedded["convergence.png"]}
{_pareto_section(rows, target, pareto)}
{embedded["spectra.png"]}{embedded["conditions.png"]}
{f"<h2>Growth in situ</h2>{growth}" if growth else ""}
<h2>Experiments</h2>
{_table(rows, list(config["space"]))}
{_audit_section(db.audit(campaign_id))}
</body></html>"""
    page_path = out / "report.html"
    page_path.write_text(page)
    return page_path

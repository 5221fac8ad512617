"""The ``qdlab`` command line.

Heavy libraries (BoTorch, bluesky) are imported inside the commands that need them, so
``qdlab --help`` answers at once. Every error a user can cause ends in one line on stderr that
names the field and what is allowed, and exit code 2.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Annotated, Any

import click
import typer

from models.errors import UserError
from models.parameters import MAX_SEED, ROUTES, ParameterError, get_route
from orchestrator.config import target_of
from orchestrator.summary import describe_summary, pareto_front, pareto_text, target_text

app = typer.Typer(
    name="qdlab",
    help="QDLab: a self-driving lab for perovskite quantum dots.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """QDLab: a self-driving lab for perovskite quantum dots."""


#: CLI flag (python name) -> route parameter name.
_SIMULATE_FLAGS: dict[str, str] = {
    "br_pb": "br_pb_ratio",
    "temperature": "temperature_c",
    "ligand": "ligand",
    "time": "time_s",
    "residence_time": "residence_time_s",
    "flow_ratio": "flow_ratio",
    "precursor_ul": "precursor_ul",
    "ligand_ul": "ligand_ul",
    "material": "material",
    "ligand_amount": "ligand_amount",
}
_FLAG_OF = {param: "--" + flag.replace("_", "-") for flag, param in _SIMULATE_FLAGS.items()}


def _routes_help() -> str:
    lines = ["Routes, their parameters (flag and allowed range) and defaults:\n"]
    for route in ROUTES.values():
        lines.append(f"\b\n{route.name.replace('_', '-')}: {route.description}")
        for p in route.parameters:
            default = "" if p.default is None else f" (default {p.default})"
            lines.append(f"  {_FLAG_OF[p.name]:<17} {p.range_text()}{default}")
        example = ", ".join(f"{_FLAG_OF[k]} {v}" for k, v in route.example.items())
        lines.append(f"  defaults: {example}")
        lines.append("")
    return "\n".join(lines)


@app.command(
    help="Simulate one synthesis on the digital twin and analyse its spectra.\n\n" + _routes_help()
)
def simulate(
    route: Annotated[str, typer.Option(help="hot-injection, flow or larp")] = "hot-injection",
    br_pb: Annotated[float | None, typer.Option(help="Br/Pb molar ratio")] = None,
    temperature: Annotated[float | None, typer.Option(help="temperature, °C")] = None,
    ligand: Annotated[str | None, typer.Option(help="ligand system")] = None,
    time: Annotated[float | None, typer.Option(help="growth / wait time, s")] = None,
    residence_time: Annotated[float | None, typer.Option(help="flow: residence time, s")] = None,
    flow_ratio: Annotated[float | None, typer.Option(help="flow: Cs/Pb stream ratio")] = None,
    precursor_ul: Annotated[float | None, typer.Option(help="larp: precursor, µL")] = None,
    ligand_ul: Annotated[float | None, typer.Option(help="larp: oleylamine, µL")] = None,
    material: Annotated[
        str | None,
        typer.Option(help="hot-injection: CsPbBr3 (default), CsPbI3 (red) or FAPbBr3 (green)"),
    ] = None,
    ligand_amount: Annotated[
        float | None, typer.Option(help="hot-injection: ligand, × the standard load (1)")
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option(help="seed; omit for the noiseless mean", min=0, max=MAX_SEED),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    import numpy as np

    from models.simulation import simulate as run_simulation

    spec = get_route(route)
    given = {
        _SIMULATE_FLAGS[flag]: value
        for flag, value in locals().items()
        if flag in _SIMULATE_FLAGS and value is not None
    }
    for name in given:
        if name not in spec.names:
            raise ParameterError(
                name,
                f"{_FLAG_OF[name]} does not apply to route {spec.name.replace('_', '-')}; "
                f"its parameters are {', '.join(_FLAG_OF[n] for n in spec.names)}",
            )
    try:
        conditions = spec.validate({**spec.example, **given})
    except ParameterError as exc:  # say which flag, as the user typed it
        raise ParameterError(exc.field, f"{_FLAG_OF.get(exc.field, exc.field)}: {exc}") from None
    rng = None if seed is None else np.random.default_rng(seed)
    record = run_simulation(spec.name, conditions, rng).record(0)
    result = {"route": spec.name, "seed": seed, **record}
    if as_json:
        print(json.dumps({k: _json_value(v) for k, v in result.items()}))
    else:
        _print_record(result, spec.names)


db_app = typer.Typer(help="The campaign database.", no_args_is_help=True)
campaign_app = typer.Typer(help="Closed-loop campaigns.", no_args_is_help=True)
lab_app = typer.Typer(help="Lab configs and their instruments.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(campaign_app, name="campaign")
app.add_typer(lab_app, name="lab")

DbOption = Annotated[
    str | None,
    typer.Option("--db", help="database URL (default: $QDLAB_DB or sqlite:///qdlab.db)"),
]
TiledOption = Annotated[
    str | None,
    typer.Option(
        "--tiled",
        envvar="QDLAB_TILED",
        help="also write every run to this tiled catalog (API key from $TILED_API_KEY)",
    ),
]


@db_app.command("upgrade")
def db_upgrade(db: DbOption = None) -> None:
    """Create the database or migrate it to the newest schema."""
    from db import Database, safe_url

    database = Database(db, migrate=False)
    before = database.revision()
    database.upgrade()
    print(f"{safe_url(database.url)}: schema {before or 'empty'} -> {database.revision()}")


@campaign_app.command("export")
def campaign_export(
    campaign_id: Annotated[int, typer.Argument(help="campaign id")],
    out: Annotated[str, typer.Option("--out", help="file to write")],
    fmt: Annotated[str, typer.Option("--format", help="jsonl (documents) or csv")] = "jsonl",
    db: DbOption = None,
) -> None:
    """Export a campaign: its bluesky documents as JSONL, or its experiments as CSV."""
    from db import Database, export_csv, export_jsonl

    if fmt not in ("jsonl", "csv"):
        raise typer.BadParameter(f"--format {fmt!r} is not one of {{jsonl, csv}}")
    target = Path(out)
    if target.is_dir():
        raise UserError(f"--out: {out} is a folder; name the file to write")
    if not target.parent.is_dir():
        raise UserError(f"--out: folder {str(target.parent)!r} does not exist")
    database = Database(db, create=False)
    if fmt == "jsonl":
        n = export_jsonl(database, campaign_id, out)
        print(f"wrote {n} documents of campaign {campaign_id} to {out}")
    else:
        n = export_csv(database, campaign_id, out)
        print(f"wrote {n} experiments of campaign {campaign_id} to {out}")


def _quiet_bluesky(verbose: bool) -> None:
    """Failed runs are recorded with their reason; their tracebacks only with --verbose."""
    import logging

    for name in ("bluesky", "ophyd", "caproto"):  # a failure is the experiment's reason
        logging.getLogger(name).setLevel(logging.INFO if verbose else logging.CRITICAL)


def _run_campaign(runner: object, as_json: bool) -> None:
    """Run (or resume) a campaign with a progress bar; print how it ended.

    Exit codes: 0 finished, 1 paused (a lab fault), 2 refused (bad input, campaign driven by
    another process), 3 database unreachable, 130 interrupted (Ctrl-C).
    """
    from rich.console import Console

    with runner.claim():  # before the progress bar: a refusal is one line
        summary = _run_with_progress(runner, as_json)
    if as_json:
        print(summary.to_json())
    else:
        console = Console(soft_wrap=True)
        for line in describe_summary(summary, runner.loaded.target_record()):
            console.print(line)
    if summary.status == "paused":
        raise typer.Exit(1)


def _run_with_progress(runner: object, as_json: bool) -> object:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    from orchestrator.campaign import CampaignInterrupted

    console = Console(stderr=True, soft_wrap=True)
    columns = (
        TextColumn("campaign {task.fields[cid]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("best |error| {task.fields[best]}"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, disable=as_json, transient=False) as progress:
        task = progress.add_task(
            "run", total=runner.config.budget, cid=runner.campaign_id, best="-"
        )

        def on_progress(done: int, budget: int, best: float) -> None:
            shown = f"{best:.2f} nm" if best != float("inf") else "-"
            progress.update(task, completed=done, best=shown)

        runner.on_progress = on_progress
        try:
            return runner.run()
        except CampaignInterrupted:
            console.print(
                f"campaign {runner.campaign_id} paused; continue with "
                f"`qdlab campaign resume {runner.campaign_id}`"
            )
            raise typer.Exit(130) from None


@campaign_app.command("run")
def campaign_run(
    configs: Annotated[
        list[str], typer.Argument(help="campaign YAML (configs/campaigns/...), one or more")
    ],
    db: DbOption = None,
    budget: Annotated[int | None, typer.Option(help="override the config's budget")] = None,
    seed: Annotated[
        int | None, typer.Option(help="override the config's seed", min=0, max=MAX_SEED)
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print a one-line JSON summary")] = False,
    report: Annotated[str | None, typer.Option(help="write the report to this folder")] = None,
    verbose: Annotated[bool, typer.Option(help="show tracebacks of failed runs")] = False,
    tiled: TiledOption = None,
) -> None:
    """Run closed-loop campaigns, one after the other, each until its target is met or its
    budget is spent. With several, ``--report`` compares them on one page (e.g. two planners
    towards the same target) beside each one's own report."""
    from db import Database
    from orchestrator.campaign import CampaignRunner
    from orchestrator.config import load_campaign, reagent_warnings

    overrides = {"budget": budget, "seed": seed}
    loaded = [load_campaign(c, overrides) for c in configs]  # all, before anything is written
    for each in loaded:
        each.import_code()  # user code: only from a file the user passed, once it validated
        for line in reagent_warnings(each):
            print(f"warning: {line}", file=sys.stderr)
    _quiet_bluesky(verbose)
    database = Database(db)
    ran: list[int] = []
    try:
        for each in loaded:
            runner = CampaignRunner(database, each, tiled=tiled)
            ran.append(runner.campaign_id)
            _run_campaign(runner, as_json)
    finally:
        if report and ran:
            from orchestrator.report import write_comparison, write_report

            if len(configs) == 1:
                write_report(database, ran[0], report)
            else:
                write_comparison(database, ran, report)


@campaign_app.command("resume")
def campaign_resume(
    campaign_id: Annotated[int, typer.Argument(help="campaign id")],
    db: DbOption = None,
    budget: Annotated[
        int | None, typer.Option(help="run on to this many experiments (also when completed)")
    ] = None,
    outcome_model: Annotated[
        str | None,
        typer.Option(help="user outcome model 'package.module:function' to simulate with"),
    ] = None,
    planner_class: Annotated[
        str | None,
        typer.Option(help="the campaign's user planner 'package.module:Class', named again"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print a one-line JSON summary")] = False,
    verbose: Annotated[bool, typer.Option(help="show tracebacks of failed runs")] = False,
    tiled: TiledOption = None,
) -> None:
    """Continue a paused or interrupted campaign where it stopped, or extend a finished one."""
    from db import Database
    from orchestrator.campaign import CampaignRunner

    _quiet_bluesky(verbose)
    database = Database(db, create=False)
    runner = CampaignRunner.resume(
        database, campaign_id, budget, outcome_model, tiled=tiled, planner_class=planner_class
    )
    _run_campaign(runner, as_json)


@campaign_app.command("list")
def campaign_list(
    db: DbOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="print a JSON list")] = False,
) -> None:
    """List the campaigns in the database."""
    from rich.console import Console
    from rich.table import Table

    from db import Database

    rows = Database(db, create=False).campaigns()
    if as_json:
        print(
            json.dumps(
                [{k: r[k] for k in ("id", "name", "status", "experiments", "route")} for r in rows]
            )
        )
        return
    table = Table("id", "name", "route", "status", "n", "target", "created")
    for r in rows:
        table.add_row(
            str(r["id"]),
            r["name"],
            r["route"],
            r["status"],
            str(r["experiments"]),
            target_text(r["target"]),
            r["created_at"][:16].replace("T", " "),
        )
    Console().print(table)


def _shape(row: dict[str, Any]) -> str | None:
    """``cubes`` or ``platelets`` as the measured spectra of an experiment tell (None before
    it was measured)."""
    from models.analysis import is_platelet_like

    obs = row["observables"] or {}
    if row["status"] != "done" or obs.get("pl_peak_nm") is None:
        return None
    return "platelets" if is_platelet_like(obs, row["conditions"]) else "cubes"


@campaign_app.command("show")
def campaign_show(
    campaign_id: Annotated[int, typer.Argument(help="campaign id")],
    db: DbOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Show a campaign and its experiments."""
    from rich.console import Console
    from rich.table import Table

    from db import Database

    database = Database(db, create=False)
    campaign = database.campaign(campaign_id)
    rows = database.experiments(campaign_id)
    target = target_of(campaign["target"])
    if as_json:
        out = {k: campaign[k] for k in ("id", "name", "status", "status_reason", "route", "target")}
        out["experiments"] = [
            {
                "index": r["index"],
                "status": r["status"],
                "conditions": r["conditions"],
                "observables": r["observables"],
                "failure_reason": r["failure_reason"],
                "planner": r["planner_name"],
                "acquisition_value": r["acquisition_value"],
                "predicted_mean": r["predicted_mean"],
                "predicted_std": r["predicted_std"],
                "workcell": r["workcell"],
                "shape": _shape(r),
            }
            for r in rows
        ]
        if target.pareto:
            out["pareto_set"] = pareto_front(rows, target)
        print(json.dumps(out, default=str))
        return
    console = Console()
    console.print(
        f"campaign {campaign_id} [bold]{campaign['name']}[/bold]: {campaign['status']}"
        f" ({campaign['status_reason'] or ''}), route {campaign['route']}, target "
        f"{target_text(campaign['target'])}"
    )
    names = list(campaign["config"]["campaign"]["space"])
    table = Table("#", "status", *names, "PL nm", "FWHM nm", "shape", "by", "note")
    for r in rows:
        obs = r["observables"] or {}
        table.add_row(
            str(r["index"] + 1),
            r["status"],
            *(c if isinstance(c := r["conditions"][n], str) else f"{c:.4g}" for n in names),
            *("" if obs.get(k) is None else f"{obs[k]:.2f}" for k in ("pl_peak_nm", "pl_fwhm_nm")),
            _shape(r) or "",
            r["planner_name"] + (f" @ {r['workcell']}" if r["workcell"] else ""),
            r["failure_reason"] or "",
        )
    console.print(table)
    if target.pareto:
        front = pareto_front(rows, target)
        console.print(f"[bold]Pareto set[/bold] ({len(front)} of the hits, narrowest line first):")
        for point in front:
            console.print(f"  {pareto_text(point)}")
    waiting = [r for r in rows if r["status"] == "awaiting_approval"]
    if waiting:
        observable = next(iter(campaign["target"]))
        console.print(f"[bold]{len(waiting)} proposal(s) await approval[/bold] (predicted:")
        for r in waiting:
            mean, std = r["predicted_mean"], r["predicted_std"]
            guess = "no prediction" if mean is None else f"{observable} {mean:.1f}"
            if mean is not None and std is not None:
                guess += f" ± {std:.1f}"
            console.print(f"  #{r['index'] + 1}: {guess}")
        console.print(
            f"`qdlab campaign approve {campaign_id} N ... | --all`, "
            f"`qdlab campaign reject {campaign_id} N --reason TEXT`"
        )


@campaign_app.command("approve")
def campaign_approve(
    campaign_id: Annotated[int, typer.Argument(help="campaign id")],
    numbers: Annotated[
        list[int] | None, typer.Argument(help="experiment numbers (as `campaign show` lists)")
    ] = None,
    all_: Annotated[bool, typer.Option("--all", help="approve every proposal awaiting")] = False,
    db: DbOption = None,
) -> None:
    """Approve proposals awaiting approval: they run next."""
    from db import Database
    from orchestrator.approval import approve

    if bool(numbers) == all_:
        raise click.BadParameter("give experiment numbers or --all (not both)", param_hint="N")
    approved = approve(Database(db, create=False), campaign_id, None if all_ else numbers)
    print(f"campaign {campaign_id}: approved {', '.join(f'#{n}' for n in approved)}")


@campaign_app.command("pause")
def campaign_pause(
    campaign_id: Annotated[int, typer.Argument(help="campaign id")],
    reason: Annotated[str | None, typer.Option(help="why (stored with the status)")] = None,
    db: DbOption = None,
) -> None:
    """Pause a running campaign: the experiment under way finishes, no other starts."""
    from db import Database
    from orchestrator.approval import pause

    status = pause(Database(db, create=False), campaign_id, reason)
    then = "pauses after the experiment under way" if status != "paused" else "paused"
    print(f"campaign {campaign_id}: {then}; `qdlab campaign resume {campaign_id}` continues")


@campaign_app.command("reject")
def campaign_reject(
    campaign_id: Annotated[int, typer.Argument(help="campaign id")],
    number: Annotated[int, typer.Argument(help="experiment number (as `campaign show` lists)")],
    reason: Annotated[str, typer.Option(help="why (told to the planner and stored)")],
    db: DbOption = None,
) -> None:
    """Reject a proposal: it never runs, and the planner avoids it."""
    from db import Database
    from orchestrator.approval import reject

    reject(Database(db, create=False), campaign_id, number, reason)
    print(f"campaign {campaign_id}: rejected #{number}")


@campaign_app.command("add")
def campaign_add(
    campaign_id: Annotated[int, typer.Argument(help="campaign id")],
    conditions: Annotated[
        str, typer.Option(help='JSON, e.g. \'{"br_pb_ratio": 8, "temperature_c": 150, ...}\'')
    ],
    note: Annotated[str | None, typer.Option(help="why this experiment (stored)")] = None,
    db: DbOption = None,
) -> None:
    """Add a hand-chosen experiment (checked against the space and the lab's limits)."""
    from db import Database
    from orchestrator.approval import add, parse_conditions

    number = add(Database(db, create=False), campaign_id, parse_conditions(conditions), note)
    print(f"campaign {campaign_id}: added #{number} (provenance human); it runs next")


@campaign_app.command("report")
def campaign_report(
    campaign_id: Annotated[int, typer.Argument(help="campaign id")],
    out: Annotated[str, typer.Option("--out", help="folder for the figures and report.html")],
    db: DbOption = None,
) -> None:
    """Write the campaign's figures and a report.html that embeds them."""
    from db import Database
    from orchestrator.report import write_report

    page = write_report(Database(db, create=False), campaign_id, out)
    print(f"wrote {page}")


@app.command("suggest")
def suggest(
    target_nm: Annotated[float, typer.Option("--target-nm", help="PL peak to aim for, nm")],
    route: Annotated[str, typer.Option(help="hot-injection, flow or larp")] = "hot-injection",
    db: DbOption = None,
    top: Annotated[int, typer.Option(help="how many suggestions", min=1, max=100)] = 5,
    material: Annotated[
        str | None, typer.Option(help="hot-injection: only this material (default: any)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print a JSON list")] = False,
) -> None:
    """Inverse design without an experiment: conditions predicted closest to the target.

    The model is the BoTorch planner's: the physics of the route as prior mean, calibrated and
    corrected by every observation of the route stored in the database.
    """
    from orchestrator.suggest import suggest_conditions

    spec = get_route(route)
    if not 380.0 <= target_nm <= 700.0:
        raise ParameterError("target_nm", f"--target-nm {target_nm:g} is outside [380, 700] nm")
    from db import Database, DatabaseError, resolve_url, safe_url

    url = resolve_url(db)
    try:
        database: Database | None = Database(url, create=False)
        source = f"from {safe_url(url)}"
    except DatabaseError:
        if db is not None:  # the user named it: a mistake to report
            raise
        database, source = None, f"(no database at {safe_url(url)}: the physics alone)"
    rows, used = suggest_conditions(spec.name, target_nm, database, top, material)
    if as_json:
        print(
            json.dumps(
                {
                    "route": spec.name,
                    "target_nm": target_nm,
                    "observations": used,
                    "database": None if database is None else safe_url(url),
                    "suggestions": rows,
                }
            )
        )
        return
    from rich.console import Console
    from rich.table import Table

    title = f"{spec.name}: closest to {target_nm:g} nm ({used} stored observations {source})"
    table = Table(title=title)
    names = list(rows[0]["conditions"]) if rows else []
    for col in (*names, "PL nm", "FWHM nm"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            *(v if isinstance(v := r["conditions"][n], str) else f"{v:.4g}" for n in names),
            f"{r['pl_peak_nm']:.1f} ± {r['pl_peak_std_nm']:.1f}",
            f"{r['pl_fwhm_nm']:.1f} ± {r['pl_fwhm_std_nm']:.1f}",
        )
    Console().print(table)


@app.command("replay")
def replay(
    campaign_id: Annotated[int, typer.Argument(help="campaign to replay")],
    db: DbOption = None,
    lab: Annotated[str | None, typer.Option(help="lab config to replay on")] = None,
    outcome_model: Annotated[
        str | None, typer.Option(help="outcome model 'package.module:function' to replay with")
    ] = None,
    out: Annotated[str | None, typer.Option(help="folder for the parity plot")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the summary as JSON")] = False,
) -> None:
    """Re-run a campaign's recorded experiments on the simulated lab and compare."""
    from db import Database
    from orchestrator.replay import parity_plot, replay_campaign

    _quiet_bluesky(False)
    result = replay_campaign(Database(db, create=False), campaign_id, lab, outcome_model)
    summary = result.summary()
    if out:
        parity_plot(result, out)
    if as_json:
        print(json.dumps(summary))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(
        "#",
        "recorded PL",
        "replayed PL",
        "recorded FWHM",
        "replayed FWHM",
        "recorded abs",
        "replayed abs",
        title=f"replay {result.replay_id} of campaign {campaign_id}",
    )

    def fmt(v: float | None) -> str:
        return "-" if v is None else f"{v:.2f}"

    for r in result.rows:
        table.add_row(
            str(r["index"] + 1),
            *(
                fmt(r[f"{k}_{w}"])
                for k in ("pl_peak_nm", "pl_fwhm_nm", "abs_peak_nm")
                for w in ("recorded", "replayed")
            ),
        )
    console = Console(soft_wrap=True)
    console.print(table)
    console.print(
        ", ".join(
            f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in summary.items()
        )
    )


@app.command("backtest")
def backtest_command(
    campaign_id: Annotated[int, typer.Argument(help="recorded campaign")],
    planner: Annotated[str, typer.Option(help="random, sobol or botorch")] = "botorch",
    seeds: Annotated[int, typer.Option(help="how many seeds", min=1, max=100)] = 5,
    db: DbOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the result as JSON")] = False,
) -> None:
    """How many of a campaign's own experiments a planner needs to reach its target."""
    from db import Database
    from orchestrator.replay import backtest

    result = backtest(Database(db, create=False), campaign_id, planner, range(seeds))
    if as_json:
        print(json.dumps(result))
        return
    print(
        f"backtest of {planner} on campaign {campaign_id} ({result['pool']} recorded "
        f"experiments; goal: {result['goal']})"
    )
    print(f"{'order':<22} experiments to goal")
    for seed, n in enumerate(result["experiments_to_goal"]):
        print(f"{planner + ' seed ' + str(seed):<22} {n if n is not None else 'not reached'}")
    print(f"{planner + ' median':<22} {result['median']:g}")
    print(f"{'original order':<22} {result['original_order']}")
    print(f"{'random order median':<22} {result['random_order_median']:g}")


@app.command("calibrate")
def calibrate_command(
    campaign_ids: Annotated[list[int], typer.Argument(help="recorded campaigns to fit")],
    out: Annotated[str, typer.Option("--out", help="twin YAML to write")],
    db: DbOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the fit as JSON")] = False,
) -> None:
    """Fit the twin's free parameters to recorded campaigns and write a twin file.

    Name the file in a lab config (``simulator: {twin: FILE}``): the simulated lab and the
    BoTorch planner's physics prior then become this lab's own.
    """
    from db import Database
    from orchestrator.calibrate import as_mapping, calibrate, describe

    result = calibrate(Database(db, create=False), campaign_ids)
    result.write(out)
    if as_json:
        print(json.dumps({**as_mapping(result), "out": out}))
        return
    print("\n".join(describe(result)))
    print(f"wrote {out}")


@lab_app.command("check")
def lab_check(
    lab: Annotated[str, typer.Argument(help="lab config (YAML)")],
    campaign: Annotated[
        str | None,
        typer.Option(help="also: can the deck's reagents cover this campaign's budget?"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Connect to every PV of an EPICS lab and print PV, connected, value and limits; exit 4
    naming the PVs that did not connect (a simulated lab has no PVs). With --campaign, warn
    about each reservoir that cannot cover the campaign's budget at the space's worst corner."""
    import dataclasses

    from devices import load_lab_config
    from devices.check import check_lab
    from orchestrator.config import load_campaign, reagent_warnings

    config = load_lab_config(lab)
    if campaign is not None:
        loaded = dataclasses.replace(load_campaign(campaign), lab=config)
        for line in reagent_warnings(loaded) or [f"reagents: enough for {campaign}"]:
            print(line if line.startswith("reagents") else f"warning: {line}", file=sys.stderr)
    rows = check_lab(config)
    missing = [r["pv"] for r in rows if not r["connected"]]
    if not rows and not as_json:
        print(f"lab {config.name!r} is simulated (in process): no PVs to check")
    elif as_json:
        print(json.dumps(rows, indent=2))
    else:
        from rich.console import Console
        from rich.table import Table

        table = Table(title=f"lab {config.name!r} ({config.backend})")
        for column in ("PV", "connected", "value", "limits"):
            table.add_column(column)
        for r in rows:
            table.add_row(
                r["pv"], "yes" if r["connected"] else "[red]NO[/red]", r["value"], r["limits"]
            )
        Console().print(table)
    if missing:
        print(
            f"error: {len(missing)} of {len(rows)} PVs did not connect: {', '.join(missing)}",
            file=sys.stderr,
        )
        raise typer.Exit(4)


@app.command("ioc")
def ioc(
    lab: Annotated[
        str, typer.Option(help="the simulated lab to serve (its lab config)")
    ] = "configs/labs/sim.yaml",
    prefix: Annotated[str, typer.Option(help="PV prefix")] = "QD:",
    speedup: Annotated[
        str, typer.Option(help="lab seconds per wall-clock second, or 'max'")
    ] = "100",
) -> None:
    """Serve the simulated lab over EPICS Channel Access (caproto) until Ctrl-C.

    Interface and port come from EPICS_CAS_INTF_ADDR_LIST and EPICS_CAS_SERVER_PORT; point a
    lab with `backend: epics` (configs/labs/sim-epics.yaml) at it."""
    from devices import load_lab_config
    from devices.ioc import serve
    from orchestrator.workcell import parse_speedup

    config = load_lab_config(lab)
    rate = parse_speedup(speedup)
    if not prefix or len(prefix) > 40:
        raise click.BadParameter(f"{prefix!r}: 1 to 40 characters", param_hint="--prefix")
    print(
        f"serving lab {config.name!r} as {prefix}* (speed-up {speedup}); Ctrl-C stops",
        file=sys.stderr,
        flush=True,
    )
    serve(config, prefix, rate)


@app.command("dashboard")
def dashboard(
    db: DbOption = None,
    host: Annotated[str, typer.Option(help="address to bind (loopback unless told)")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(help="port", min=1, max=65535)] = 8000,
    token: Annotated[
        str | None,
        typer.Option(
            envvar="QDLAB_DASHBOARD_TOKEN",
            help="token for writes (approve, reject, add); none: read-only",
        ),
    ] = None,
) -> None:
    """Serve the live dashboard: campaigns, their convergence and spectra, approvals."""
    import uvicorn

    from db import Database, resolve_url, safe_url
    from orchestrator.dashboard import create_app

    url = resolve_url(db)
    Database(url, create=False).close()  # a missing database is one line, not a traceback
    mode = "writes need the token" if token else "read-only (no --token)"
    print(f"dashboard on http://{host}:{port} for {safe_url(url)}, {mode}", flush=True)
    uvicorn.run(create_app(url, token), host=host, port=port, log_level="warning")


@app.command("ipython")
def ipython(
    db: DbOption = None,
    lab: Annotated[
        str | None, typer.Option(help="lab config (default: $QDLAB_LAB or the simulated lab)")
    ] = None,
    tiled: TiledOption = None,
) -> None:
    """Start IPython with RE, lab, db and the plans loaded (orchestrator.session)."""
    import os

    from IPython import start_ipython

    from db import Database, resolve_url
    from devices import load_lab_config

    if lab is not None:
        load_lab_config(lab)  # a bad lab is one line here, not a traceback inside IPython
        os.environ["QDLAB_LAB"] = lab
    url = resolve_url(db)
    Database(url).close()
    os.environ["QDLAB_DB"] = url
    if tiled is not None:
        from db.tiled import TiledSink

        TiledSink(tiled)  # a wrong address is one line here, not a traceback inside IPython
        os.environ["QDLAB_TILED"] = tiled
    start_ipython(argv=["-i", "-c", "from orchestrator.session import *"])


def _json_value(value: object) -> object:
    return None if isinstance(value, float) and math.isnan(value) else value


def _print_record(result: dict, condition_names: tuple[str, ...]) -> None:
    from rich.console import Console
    from rich.table import Table

    from models.analysis import OBSERVABLE_KEYS
    from models.synthesis import POPULATION_KEYS

    table = Table(
        title=f"{result['route']}, {result.get('material', 'CsPbBr3')} (seed {result['seed']})",
        show_header=False,
    )
    table.add_column("quantity")
    table.add_column("value", justify="right")
    for title, keys in (
        ("conditions", condition_names),
        ("population (ground truth)", POPULATION_KEYS),
        ("observables (from spectra)", OBSERVABLE_KEYS),
    ):
        table.add_section()
        table.add_row(f"[bold]{title}[/bold]", "")
        for key in keys:
            value = result[key]
            table.add_row(key, value if isinstance(value, str) else f"{value:.4g}")
    Console().print(table)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: run the app, turning every user error into one line and exit 2."""
    try:
        code = app(args=argv, prog_name="qdlab", standalone_mode=False)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        print("aborted", file=sys.stderr)
        sys.exit(130)
    except click.ClickException as exc:  # usage errors: bad flag, bad value type
        print(f"error: {exc.format_message()}", file=sys.stderr)
        sys.exit(2)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(getattr(exc, "exit_code", 2))
    if isinstance(code, int) and code:  # typer returns typer.Exit codes when not standalone
        sys.exit(code)


import orchestrator.cli_workcell  # noqa: E402,F401  (registers `qdlab workcell`)

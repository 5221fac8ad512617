"""``qdlab campaign``: run, resume, inspect and steer closed-loop campaigns."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import click
import typer

from db.records import CampaignStatus, Experiment, ExperimentStatus
from models.errors import UserError
from models.parameters import MAX_SEED
from orchestrator.campaign.config import target_of
from orchestrator.campaign.summary import describe_summary, pareto_front, pareto_text, target_text
from orchestrator.cli.options import DbOption, TiledOption, quiet_bluesky, shown

app = typer.Typer(help="Closed-loop campaigns.", no_args_is_help=True)


@app.command("export")
def campaign_export(
    campaign_id: Annotated[int, typer.Argument(help="campaign id")],
    out: Annotated[str, typer.Option("--out", help="file to write")],
    fmt: Annotated[
        str,
        typer.Option(
            "--format", help="jsonl (documents), csv (experiments) or trajectories (in situ, CSV)"
        ),
    ] = "jsonl",
    db: DbOption = None,
) -> None:
    """Export a campaign: its bluesky documents (every stream) as JSONL, its experiments as
    CSV, or every in-situ reading of its experiments as CSV (trajectories)."""
    from db import Database, export_csv, export_jsonl
    from orchestrator.history.report import export_trajectories

    if fmt not in ("jsonl", "csv", "trajectories"):
        raise typer.BadParameter(f"--format {fmt!r} is not one of {{jsonl, csv, trajectories}}")
    target = Path(out)
    if target.is_dir():
        raise UserError(f"--out: {out} is a folder; name the file to write")
    if not target.parent.is_dir():
        raise UserError(f"--out: folder {str(target.parent)!r} does not exist")
    database = Database(db, create=False)
    if fmt == "jsonl":
        n = export_jsonl(database, campaign_id, out)
        print(f"wrote {n} documents of campaign {campaign_id} to {out}")
    elif fmt == "csv":
        n = export_csv(database, campaign_id, out)
        print(f"wrote {n} experiments of campaign {campaign_id} to {out}")
    else:
        n = export_trajectories(database, campaign_id, out)
        print(f"wrote {n} in-situ readings of campaign {campaign_id} to {out}")


def _run_campaign(runner: object, as_json: bool) -> None:
    """Run (or resume) a campaign with a progress bar; print how it ended.

    Exit codes: 0 finished, 1 paused (a lab fault), 2 refused (bad input, campaign driven by
    another process), 3 database unreachable, 130 interrupted (Ctrl-C).
    """
    from orchestrator.cli.options import console as rich_console

    with runner.claim():  # before the progress bar: a refusal is one line
        summary = _run_with_progress(runner, as_json)
    if as_json:
        print(summary.to_json())
    else:
        console = rich_console(soft_wrap=True)
        for line in describe_summary(summary, runner.loaded.target_record()):
            console.print(line)
    if summary.status == CampaignStatus.PAUSED:
        raise typer.Exit(1)


def _run_with_progress(runner: object, as_json: bool) -> object:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    from orchestrator.campaign.runner import CampaignInterrupted
    from orchestrator.cli.options import console as rich_console
    from orchestrator.cli.options import resume_hint

    console = rich_console(stderr=True, soft_wrap=True)
    columns = (
        TextColumn("campaign {task.fields[cid]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("best |error| {task.fields[best]}"),
        TimeElapsedColumn(),  # (a remaining-time estimate read as elapsed: it misled)
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
            hint = resume_hint(runner.campaign_id, runner.db.url)
            console.print(f"campaign {runner.campaign_id} paused; continue with {hint}")
            raise typer.Exit(130) from None


@app.command("publish")
def campaign_publish(
    campaign_id: Annotated[int, typer.Argument(help="campaign id")],
    tiled: Annotated[
        str,
        typer.Option(
            "--tiled", envvar="QDLAB_TILED", help="the catalog's URL (key from $TILED_API_KEY)"
        ),
    ],
    db: DbOption = None,
) -> None:
    """Write a stored campaign's runs to a tiled catalog from the database: a campaign run
    without --tiled, or runs the catalog missed while it was down. Runs already there are
    left as they are, so publishing twice writes nothing twice."""
    from db import Database
    from db.tiled import publish_campaign

    database = Database(db, create=False)
    database.campaign(campaign_id)  # (a campaign that is not there: one line)
    written, there = publish_campaign(database, campaign_id, tiled)
    print(f"campaign {campaign_id}: {written} run(s) written to {tiled}, {there} already there")


@app.command("run")
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
    budget is spent. With several, --report compares them on one page (e.g. two planners
    towards the same target) beside each one's own report."""
    from db import Database
    from orchestrator.campaign.config import load_campaign, reagent_warnings
    from orchestrator.campaign.runner import CampaignRunner

    overrides = {"budget": budget, "seed": seed}
    loaded = [load_campaign(c, overrides) for c in configs]  # all, before anything is written
    for each in loaded:
        each.import_code()  # user code: only from a file the user passed, once it validated
        for line in reagent_warnings(each):
            print(f"warning: {line}", file=sys.stderr)
    quiet_bluesky(verbose)
    database = Database(db)
    ran: list[int] = []
    try:
        for each in loaded:
            runner = CampaignRunner(database, each, tiled=tiled)
            ran.append(runner.campaign_id)
            _run_campaign(runner, as_json)
    finally:
        if report and ran:
            from orchestrator.history.report import write_comparison, write_report

            if len(configs) == 1:
                write_report(database, ran[0], report)
            else:
                write_comparison(database, ran, report)


@app.command("resume")
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
    from orchestrator.campaign.runner import CampaignRunner

    quiet_bluesky(verbose)
    database = Database(db, create=False)
    runner = CampaignRunner.resume(
        database, campaign_id, budget, outcome_model, tiled=tiled, planner_class=planner_class
    )
    _run_campaign(runner, as_json)


@app.command("list")
def campaign_list(
    db: DbOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="print a JSON list")] = False,
) -> None:
    """List the campaigns in the database."""
    from rich.table import Table

    from db import Database
    from orchestrator.cli.options import console as rich_console

    rows = Database(db, create=False).campaigns()
    if as_json:
        print(
            json.dumps(
                [{k: r[k] for k in ("id", "name", "status", "experiments", "route")} for r in rows]
            )
        )
        return
    table = Table("id", "name", "route", "status", "n", "target", "created")
    for c in rows:
        table.add_row(
            str(c["id"]),
            shown(c["name"]),
            shown(c["route"]),
            c["status"],
            str(c["experiments"]),
            target_text(c["target"]),
            c["created_at"][:16].replace("T", " "),
        )
    rich_console().print(table)


@app.command("show")
def campaign_show(
    campaign_id: Annotated[int, typer.Argument(help="campaign id")],
    db: DbOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Show a campaign and its experiments."""
    from rich.table import Table

    from db import Database
    from orchestrator.cli.options import console as rich_console

    database = Database(db, create=False)
    campaign = database.campaign(campaign_id)
    rows = database.experiments(campaign_id)
    target = target_of(campaign["target"])
    if as_json:
        out = {k: campaign[k] for k in ("id", "name", "status", "status_reason", "route", "target")}
        out["experiments"] = [
            {
                "number": r.number,
                "index": r.index,
                "status": r.status,
                "conditions": r.conditions,
                "observables": r.observables,
                "failure_reason": r.failure_reason,
                "note": r.provenance.get("note"),
                "planner": r.planner_name,
                "by": r.provenance.get("by"),
                "acquisition_value": r.acquisition_value,
                "predicted_mean": r.predicted_mean,
                "predicted_std": r.predicted_std,
                "workcell": r.workcell,
                "shape": r.shape,
            }
            for r in rows
        ]
        if target.pareto:
            out["pareto_set"] = pareto_front(rows, target)
        out["audit"] = [asdict(e) for e in database.audit(campaign_id)]
        print(json.dumps(out, default=str))
        return
    console = rich_console()
    why = f" ({shown(campaign['status_reason'])})" if campaign["status_reason"] else ""
    console.print(
        f"campaign {campaign_id} [bold]{shown(campaign['name'])}[/bold]: {campaign['status']}"
        f"{why}, route {shown(campaign['route'])}, target "
        f"{shown(target_text(campaign['target']))}"
    )
    names = list(campaign["config"]["campaign"]["space"])
    table = Table("#", "status", *names, "PL nm", "FWHM nm", "shape", "by", "note")
    for r in rows:
        obs = r.observables or {}
        table.add_row(
            str(r.number),
            "withdrawn" if (r.failure_reason or "").startswith("withdrawn") else r.status,
            *(shown(c) if isinstance(c := r.conditions[n], str) else f"{c:.4g}" for n in names),
            *("" if obs.get(k) is None else f"{obs[k]:.2f}" for k in ("pl_peak_nm", "pl_fwhm_nm")),
            r.shape or "",
            shown(r.chosen_by + (f" @ {r.workcell}" if r.workcell else "")),
            shown(r.failure_reason),
        )
    console.print(table)
    for r in rows:  # a person's note, whole (a narrow table would cut it)
        if r.provenance.get("note"):
            console.print(f"#{r.number} {r.chosen_by}'s note: {shown(r.provenance['note'])}")
    if target.pareto:
        front = pareto_front(rows, target)
        console.print(f"[bold]Pareto set[/bold] ({len(front)} of the hits, narrowest line first):")
        for point in front:
            console.print(f"  {pareto_text(point)}")
    _print_waiting(console, campaign, rows)
    audit = database.audit(campaign_id)
    if audit:
        console.print("[bold]Who did what[/bold]:")
        for entry in audit:
            console.print(f"  {shown(entry.line())}", highlight=False)


def _print_waiting(console: object, campaign: dict, rows: list[Experiment]) -> None:
    """The proposals awaiting approval, with what the planner predicts, and how to decide."""
    waiting = [r for r in rows if r.status == ExperimentStatus.AWAITING_APPROVAL]
    if not waiting:
        return
    observable = next(iter(campaign["target"]))
    console.print(f"[bold]{len(waiting)} proposal(s) await approval[/bold]; predicted:")
    for r in waiting:
        mean, std = r.predicted_mean, r.predicted_std
        guess = "no prediction" if mean is None else f"{observable} {mean:.1f}"
        if mean is not None and std is not None:
            guess += f" ± {std:.1f}"
        console.print(f"  #{r.number}: {guess}")
    cid = campaign["id"]
    console.print(
        f"`qdlab campaign approve {cid} N ... | --all`, "
        f"`qdlab campaign reject {cid} N --reason TEXT`"
    )


@app.command("approve")
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
    from orchestrator.campaign.approval import approve

    if bool(numbers) == all_:
        raise click.BadParameter("give experiment numbers or --all (not both)", param_hint="N")
    approved = approve(Database(db, create=False), campaign_id, None if all_ else numbers)
    print(f"campaign {campaign_id}: approved {', '.join(f'#{n}' for n in approved)}")


@app.command("pause")
def campaign_pause(
    campaign_id: Annotated[int, typer.Argument(help="campaign id")],
    reason: Annotated[str | None, typer.Option(help="why (stored with the status)")] = None,
    db: DbOption = None,
) -> None:
    """Pause a running campaign: the experiment under way finishes, no other starts."""
    from db import Database
    from orchestrator.campaign.approval import pause
    from orchestrator.cli.options import resume_hint

    database = Database(db, create=False)
    status = pause(database, campaign_id, reason)
    then = "pauses after the experiment under way" if status != CampaignStatus.PAUSED else "paused"
    print(f"campaign {campaign_id}: {then}; {resume_hint(campaign_id, database.url)} continues")


@app.command("reject")
def campaign_reject(
    campaign_id: Annotated[int, typer.Argument(help="campaign id")],
    number: Annotated[int, typer.Argument(help="experiment number (as `campaign show` lists)")],
    reason: Annotated[str, typer.Option(help="why (told to the planner and stored)")],
    db: DbOption = None,
) -> None:
    """Reject a proposal: it never runs, and the planner avoids it."""
    from db import Database
    from orchestrator.campaign.approval import reject

    reject(Database(db, create=False), campaign_id, number, reason)
    print(f"campaign {campaign_id}: rejected #{number}")


@app.command("add")
def campaign_add(
    campaign_id: Annotated[int, typer.Argument(help="campaign id")],
    conditions: Annotated[
        str, typer.Option(help='JSON, e.g. \'{"br_pb_ratio": 8, "temperature_c": 150, ...}\'')
    ],
    note: Annotated[str | None, typer.Option(help="why this experiment (stored)")] = None,
    db: DbOption = None,
) -> None:
    """Add a hand-chosen experiment (checked against the space and the lab's limits); a
    propose-only user's awaits an approver."""
    from db import Database
    from orchestrator.campaign.approval import add, parse_conditions
    from orchestrator.campaign.people import Action, acting_user

    database = Database(db, create=False)
    actor = acting_user(database)
    number = add(database, campaign_id, parse_conditions(conditions), note, actor=actor)
    if actor.may(Action.ADD):
        print(f"campaign {campaign_id}: added #{number} (provenance human); it runs next")
    else:
        print(f"campaign {campaign_id}: proposed #{number} (by {actor.name}); it awaits approval")


@app.command("report")
def campaign_report(
    campaign_id: Annotated[int, typer.Argument(help="campaign id")],
    out: Annotated[str, typer.Option("--out", help="folder for the figures and report.html")],
    db: DbOption = None,
) -> None:
    """Write the campaign's figures and a report.html that embeds them."""
    from db import Database
    from orchestrator.history.report import write_report

    page = write_report(Database(db, create=False), campaign_id, out)
    print(f"wrote {page}")

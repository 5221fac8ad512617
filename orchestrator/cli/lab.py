"""``qdlab lab``: lab configs and their instruments."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

app = typer.Typer(help="Lab configs and their instruments.", no_args_is_help=True)


@app.command("check")
def lab_check(
    lab: Annotated[str, typer.Argument(help="lab config (YAML)")],
    campaign: Annotated[
        str | None,
        typer.Option(help="also: can the deck's reagents cover this campaign's budget?"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Say each instrument's backend, whether it answers and its version; connect to every PV
    of an EPICS lab and print PV, connected, value and the IOC's drive limits. Exit 4 naming an
    instrument or PV that does not answer, 2 naming a setpoint whose IOC or SiLA 2 server
    refuses part of what the lab config allows. With --campaign, warn
    about each reservoir that cannot cover the campaign's budget at the space's worst corner."""
    import dataclasses

    from devices import load_lab_config
    from devices.check import check_instruments, check_lab
    from orchestrator.campaign.config import load_campaign, reagent_warnings

    config = load_lab_config(lab)
    if campaign is not None:
        loaded = dataclasses.replace(load_campaign(campaign), lab=config)
        for line in reagent_warnings(loaded) or [f"reagents: enough for {campaign}"]:
            print(line if line.startswith("reagents") else f"warning: {line}", file=sys.stderr)
    instruments = check_instruments(config)
    rows = check_lab(config)
    missing = [r["pv"] for r in rows if not r["connected"]]
    problems = [r for r in rows if r["problem"]]
    down = [r for r in instruments if not r["ready"]]
    refusing = [r for r in instruments if r["problem"]]
    if as_json:
        print(json.dumps({"instruments": instruments, "pvs": rows}, indent=2))
    else:
        from rich.table import Table

        from orchestrator.cli.options import console, shown

        kinds = Table(title=f"lab {shown(config.name)!r}: instruments")
        for column in ("instrument", "backend", "ready", "detail"):
            kinds.add_column(column)
        for r in instruments:
            ready = "yes" if r["ready"] else "[red]NO[/red]"
            detail = shown(r["detail"])
            if r["problem"]:
                detail += f"\n[red]{shown(r['problem'])}[/red]"
            kinds.add_row(r["instrument"], r["backend"], ready, detail)
        console().print(kinds)
    if not rows and not as_json:
        print(f"lab {config.name!r}: no PVs to check (nothing over EPICS)")
    elif rows and not as_json:
        table = Table(title=f"lab {shown(config.name)!r} ({config.backend})")
        for column in ("PV", "connected", "value", "limits"):
            table.add_column(column)
        for r in rows:
            table.add_row(
                shown(r["pv"]),
                "yes" if r["connected"] else "[red]NO[/red]",
                shown(r["value"]),
                f"[red]{shown(r['limits'])}[/red]" if r["problem"] else shown(r["limits"]),
            )
        console().print(table)
    for r in problems:
        print(f"error: PV {r['pv']}: {r['problem']}", file=sys.stderr)
    for r in down:
        if not r["problem"]:
            print(f"error: {r['instrument']} ({r['backend']}): {r['detail']}", file=sys.stderr)
    for r in refusing:
        print(f"error: {r['instrument']} ({r['backend']}): {r['problem']}", file=sys.stderr)
    if missing:
        print(
            f"error: {len(missing)} of {len(rows)} PVs did not connect: {', '.join(missing)}",
            file=sys.stderr,
        )
        raise typer.Exit(4)
    if any(not r["problem"] for r in down):  # an instrument that does not answer
        raise typer.Exit(4)
    if problems or refusing:
        raise typer.Exit(2)

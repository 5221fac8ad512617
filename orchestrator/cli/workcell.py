"""``qdlab workcell``: serve a workcell (an RE Manager for one lab) and see every workcell."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from orchestrator.cli.options import DbOption, TiledOption

app = typer.Typer(
    help="Workcells: a RunEngine per station on bluesky-queueserver.", no_args_is_help=True
)


@app.command("serve")
def workcell_serve(
    lab: Annotated[str, typer.Option(help="the workcell's lab config")],
    db: DbOption = None,
    name: Annotated[str, typer.Option(help="the workcell's name (campaigns dispatch by it)")] = (
        "A"
    ),
    redis: Annotated[str, typer.Option(help="Redis server host:port (keeps the queue)")] = (
        "127.0.0.1:6379"
    ),
    zmq: Annotated[str, typer.Option(help="the RE Manager's 0MQ control address")] = (
        "tcp://127.0.0.1:60615"
    ),
    zmq_info: Annotated[
        str | None, typer.Option(help="its 0MQ info address (default: control port + 10)")
    ] = None,
    http: Annotated[
        int | None,
        typer.Option(
            help="also serve the queue over REST (bluesky-httpserver) on this port; the API "
            "key comes from $QSERVER_HTTP_SERVER_SINGLE_USER_API_KEY",
            min=1,
            max=65535,
        ),
    ] = None,
    speedup: Annotated[
        str, typer.Option(help="simulated lab: lab seconds per wall-clock second, or 'max'")
    ] = "max",
    tiled: TiledOption = None,
    zmq_key_file: Annotated[
        str | None,
        typer.Option(
            help="encrypt the 0MQ control socket with this CurveZMQ private key (a file only "
            "its owner reads; `qserver-zmq-keys` makes a pair): only clients given the public "
            "key get in, and --zmq may then listen beyond loopback"
        ),
    ] = None,
) -> None:
    """Serve a workcell until Ctrl-C: an RE Manager whose worker holds the lab's devices and
    QDLab's plans, writing every document to the campaign database (and to a tiled catalog)."""
    from orchestrator.execution.workcell_server import serve

    serve(
        lab, db, name, redis, zmq, zmq_info, http, speedup, tiled=tiled, zmq_key_file=zmq_key_file
    )


@app.command("status")
def workcell_status(
    db: DbOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="print a JSON list")] = False,
) -> None:
    """Each registered workcell: its manager state, queue length and running item."""
    from rich.table import Table

    from db import Database
    from orchestrator.cli.options import console as rich_console
    from orchestrator.execution.workcell import Workcell, WorkcellError

    rows = []
    for w in Database(db, create=False).workcells():
        row = {"name": w["name"], "address": w["zmq"] or w["http"], "lab": w["lab"]}
        if w["stopped_at"] is not None:
            row["manager_state"] = "stopped"
        else:
            client = Workcell(w["name"], zmq=w["zmq"], http=None if w["zmq"] else w["http"])
            try:
                row.update(client.summary())
            except WorkcellError:
                row["manager_state"] = "unreachable"
            finally:
                client.close()
        rows.append(row)
    if as_json:
        print(json.dumps(rows))
        return
    table = Table("workcell", "address", "lab", "manager", "queue", "running")
    for r in rows:
        running = r.get("running") or ""
        if r.get("running_experiment"):
            running += f" ({r['running_experiment']})"
        table.add_row(
            r["name"],
            r["address"] or "",
            r["lab"],
            r["manager_state"],
            "" if r.get("queue") is None else str(r["queue"]),
            running,
        )
    rich_console().print(table)

"""Long-running servers and sessions: ``qdlab ioc``, ``sila serve``, ``dashboard``,
``ipython``."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Annotated

import click
import typer

from orchestrator.cli.options import DbOption, TiledOption

app = typer.Typer()


@app.command("ioc")
def ioc(
    lab: Annotated[
        str | None,
        typer.Option(help="the simulated lab to serve (its lab config; default: QDLab's sim.yaml)"),
    ] = None,
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
    from devices.lab import DEFAULT_LAB
    from orchestrator.execution.workcell_server import parse_speedup

    if not re.fullmatch(r"[A-Za-z0-9_:.\-]{1,40}", prefix):
        raise click.BadParameter(
            f"{prefix!r}: 1 to 40 letters, digits, '_', ':', '.' or '-' (an EPICS PV name)",
            param_hint="--prefix",
        )
    rate = parse_speedup(speedup)
    config = load_lab_config(lab or DEFAULT_LAB)
    print(
        f"serving lab {config.name!r} as {prefix}* (speed-up {speedup}); Ctrl-C stops",
        file=sys.stderr,
        flush=True,
    )
    serve(config, prefix, rate)


sila_app = typer.Typer(help="SiLA 2: serve the simulated lab's instruments as SiLA 2 features")


@sila_app.command("serve")
def sila_serve(
    lab: Annotated[
        str | None,
        typer.Option(help="the simulated lab to serve (its lab config; default: QDLab's sim.yaml)"),
    ] = None,
    host: Annotated[str, typer.Option(help="address to bind (loopback unless told)")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(help="port", min=1, max=65535)] = 50052,
    speedup: Annotated[
        str, typer.Option(help="lab seconds per wall-clock second, or 'max'")
    ] = "max",
    tls: Annotated[
        bool, typer.Option(help="TLS (with --cert/--key, or a self-signed certificate)")
    ] = False,
    cert: Annotated[
        Path | None, typer.Option(help="PEM certificate chain of the server (with --tls)")
    ] = None,
    key: Annotated[Path | None, typer.Option(help="PEM private key (with --tls)")] = None,
    ca_out: Annotated[
        Path | None,
        typer.Option(help="write the certificate clients must trust here (sila2.root_certs)"),
    ] = None,
) -> None:
    """Serve the simulated lab as a SiLA 2 server until Ctrl-C: plain gRPC, or TLS.

    The features are devices/sila_features/*.sila.xml; point a lab with `backend: sila2`
    (configs/labs/sim-sila2.yaml) at it."""
    import threading

    from devices import load_lab_config
    from devices.lab import DEFAULT_LAB
    from devices.sila_server import serve
    from orchestrator.execution.workcell_server import parse_speedup

    rate = parse_speedup(speedup)
    config = load_lab_config(lab or DEFAULT_LAB)
    if (cert is None) != (key is None) or (cert is not None and not tls):
        raise click.BadParameter("give --cert and --key together, with --tls", param_hint="--cert")
    if ca_out is not None and not tls:
        raise click.BadParameter("a plain gRPC server has no certificate", param_hint="--ca-out")
    pair = (cert.read_bytes(), key.read_bytes()) if cert is not None and key is not None else tls
    try:
        server = serve(config, host, port, rate, tls=pair)
    except RuntimeError as exc:  # grpc could not bind
        raise click.BadParameter(
            f"cannot serve on {host}:{port}: {exc}", param_hint="--port"
        ) from None
    if ca_out is not None:
        ca_out.write_bytes(server.certificate)
    print(
        f"serving lab {config.name!r} as SiLA 2 server {host}:{port}{' (TLS)' if tls else ''} "
        f"({', '.join(sorted(server.features))}); Ctrl-C stops",
        file=sys.stderr,
        flush=True,
    )
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop(grace_period=1.0)


app.add_typer(sila_app, name="sila")


@app.command("dashboard")
def dashboard(
    db: DbOption = None,
    host: Annotated[str, typer.Option(help="address to bind (loopback unless told)")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(help="port", min=1, max=65535)] = 8000,
    token_file: Annotated[
        str | None,
        typer.Option(
            help="file holding the token for writes: approve, reject, add, pause, resume (or "
            "$QDLAB_DASHBOARD_TOKEN); users' API keys write too; neither: read-only"
        ),
    ] = None,
    allow_host: Annotated[
        list[str] | None,
        typer.Option(help="another Host name the dashboard answers to (repeatable)"),
    ] = None,
) -> None:
    """Serve the live dashboard: campaigns, their convergence and spectra, approvals, who did
    what; with their API key (or the token), a person also approves, rejects, adds, pauses and
    resumes from it, as their role allows."""
    import uvicorn

    from db import Database, resolve_url, safe_url
    from orchestrator.campaign.people import has_users
    from orchestrator.dashboard import create_app
    from orchestrator.dashboard.security import loopback_names

    token = _token(token_file)
    url = resolve_url(db)
    database = Database(url, create=False)  # a missing database is one line, not a traceback
    users = has_users(database)
    database.close()
    hosts = loopback_names() | {host, *(allow_host or [])}
    if host not in loopback_names():
        print(
            f"warning: --host {host} exposes the dashboard beyond this machine; it answers to "
            f"Host {', '.join(sorted(hosts))} (--allow-host adds names)",
            file=sys.stderr,
        )
    if users:
        mode = "writes need a user's API key" + (" or the token" if token else "")
    else:
        mode = "writes need the token" if token else "read-only (no token, no users)"
    print(f"dashboard on http://{host}:{port} for {safe_url(url)}, {mode}", flush=True)
    uvicorn.run(create_app(url, token, hosts), host=host, port=port, log_level="warning")


def _token(path: str | None) -> str | None:
    """The dashboard's write token: from ``path``, else ``$QDLAB_DASHBOARD_TOKEN`` (never from
    the command line, where ``ps`` shows it to everyone on the machine)."""
    if path is None:
        return os.environ.get("QDLAB_DASHBOARD_TOKEN") or None
    try:
        token = Path(path).read_text().strip()
    except OSError as exc:
        raise click.BadParameter(f"{path}: {exc.strerror}", param_hint="--token-file") from None
    if len(token) < 16 or not token.isprintable() or " " in token:
        raise click.BadParameter(
            f"{path}: the token must be one line of at least 16 printable characters without "
            "spaces (e.g. `openssl rand -hex 32`)",
            param_hint="--token-file",
        )
    return token


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

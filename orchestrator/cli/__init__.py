"""The ``qdlab`` command line.

Heavy libraries (BoTorch, bluesky) are imported inside the commands that need them, so
``qdlab --help`` answers at once. Every error a user can cause ends in one line on stderr that
names the field and what is allowed, and exit code 2.
"""

from __future__ import annotations

import sys

import click
import typer

from models.errors import UserError
from orchestrator.cli import campaign, db, history, lab, servers, simulate, users, workcell

__all__ = ["app", "main"]

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


app.add_typer(simulate.app)
app.add_typer(db.app, name="db")
app.add_typer(campaign.app, name="campaign")
app.add_typer(lab.app, name="lab")
app.add_typer(workcell.app, name="workcell")
app.add_typer(users.app, name="user")
app.add_typer(history.app)
app.add_typer(servers.app)


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
    except OSError as exc:  # a path the user gave that cannot be written (a full disk, /proc)
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"error: {where}{exc.strerror or exc}", file=sys.stderr)
        sys.exit(2)
    if isinstance(code, int) and code:  # typer returns typer.Exit codes when not standalone
        sys.exit(code)

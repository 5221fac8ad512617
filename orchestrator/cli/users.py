"""``qdlab user``: the lab's users, their roles and API keys (an admin's commands)."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Annotated, Any

import typer

from orchestrator.cli.options import DbOption, shown

app = typer.Typer(
    help="Users: who may read, propose, run, approve or administer (roles), by API key.",
    no_args_is_help=True,
)

RoleOption = Annotated[str, typer.Option(help="viewer, proposer, operator, approver or admin")]


@app.command("add")
def user_add(
    name: Annotated[str, typer.Argument(help="the user's name (as the audit shows it)")],
    role: RoleOption,
    db: DbOption = None,
) -> None:
    """Add a user and print their API key, once (it is kept only as a hash). The lab's first
    user must be an admin; after that an admin adds users ($QDLAB_API_KEY)."""
    from db import Database
    from orchestrator.campaign.people import acting_user, add_user

    database = Database(db)
    actor = acting_user(database) if database.users() else None
    key = add_user(database, actor, name, role)
    print(f"user {name} ({role}) added; their API key, shown this once:")
    print(key)


@app.command("list")
def user_list(
    db: DbOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON list")] = False,
) -> None:
    """The users, their roles, and whether they are disabled (never their keys)."""
    from db import Database

    users = Database(db, create=False).users()
    if as_json:
        print(json.dumps([{**asdict(u), "created_at": u.created_at.isoformat()} for u in users]))
        return
    if not users:
        print("no users: the lab is open (every write allowed, by the login user)")
    for u in users:
        state = " (disabled)" if u.disabled else ""
        print(f"{shown(u.name)}: {u.role}{state}, added {u.created_at:%Y-%m-%d %H:%M}")


@app.command("key")
def user_key(
    name: Annotated[str, typer.Argument(help="the user")],
    db: DbOption = None,
) -> None:
    """Give a user a new API key (their old one stops working) and print it, once."""
    from orchestrator.campaign.people import new_user_key

    print(new_user_key(*_as_user(db), name))


@app.command("role")
def user_role(
    name: Annotated[str, typer.Argument(help="the user")],
    role: RoleOption,
    db: DbOption = None,
) -> None:
    """Change a user's role."""
    from orchestrator.campaign.people import change_user

    change_user(*_as_user(db), name, role=role)
    print(f"user {name} is now {role}")


@app.command("disable")
def user_disable(
    name: Annotated[str, typer.Argument(help="the user")],
    db: DbOption = None,
) -> None:
    """Disable a user: their key no longer works (the audit keeps what they did)."""
    from orchestrator.campaign.people import change_user

    change_user(*_as_user(db), name, disabled=True)
    print(f"user {name} is disabled")


def _as_user(url: str | None) -> tuple[Any, Any]:
    """The lab's database and who acts on it (``$QDLAB_API_KEY``'s user)."""
    from db import Database
    from orchestrator.campaign.people import acting_user

    database = Database(url, create=False)
    return database, acting_user(database)

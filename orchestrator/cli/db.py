"""``qdlab db``: the campaign database."""

from __future__ import annotations

import typer

from orchestrator.cli.options import DbOption

app = typer.Typer(help="The campaign database.", no_args_is_help=True)


@app.command("upgrade")
def db_upgrade(db: DbOption = None) -> None:
    """Create the database or migrate it to the newest schema."""
    from db import Database, safe_url

    database = Database(db, migrate=False)
    before = database.revision()
    database.upgrade()
    print(f"{safe_url(database.url)}: schema {before or 'empty'} -> {database.revision()}")

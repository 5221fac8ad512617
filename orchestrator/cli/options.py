"""Options and helpers every command group shares."""

from __future__ import annotations

import math
from typing import Annotated, Any

import typer

__all__ = ["DbOption", "TiledOption", "json_value", "quiet_bluesky", "resume_hint", "shown"]

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


def quiet_bluesky(verbose: bool) -> None:
    """Failed runs are recorded with their reason; their tracebacks only with --verbose."""
    import logging

    for name in ("bluesky", "ophyd", "caproto"):  # a failure is the experiment's reason
        logging.getLogger(name).setLevel(logging.INFO if verbose else logging.CRITICAL)


def json_value(value: object) -> object:
    """NaN as JSON null."""
    return None if isinstance(value, float) and math.isnan(value) else value


def console(**options: Any) -> Any:
    """A rich Console that prints text as it is: no ``:robot:`` turned into an emoji."""
    from rich.console import Console

    return Console(emoji=False, **options)


def shown(value: object) -> str:
    """A stored value as the terminal shows it: control characters (an escape sequence a name
    may hold) made visible, rich's markup escaped (a name may hold ``[bold]``)."""
    from rich.markup import escape

    text = "" if value is None else str(value)
    return escape("".join(c if c.isprintable() else repr(c)[1:-1] for c in text))


def resume_hint(campaign_id: int, url: str) -> str:
    """`qdlab campaign resume N` as a person can paste it: with ``--db`` when the campaign's
    database is not the one the command finds by itself (a password shown masked)."""
    from db.database import resolve_url, safe_url

    flag = "" if url == resolve_url(None) else f" --db {safe_url(url)}"
    return f"`qdlab campaign resume {campaign_id}{flag}`"

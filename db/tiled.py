"""Every run also in a tiled catalog, where bluesky users look for data (``--tiled URL``).

:class:`TiledSink` is a RunEngine callback around bluesky's own
:class:`~bluesky.callbacks.tiled_writer.TiledWriter`: each run lands in the catalog at ``URL``
as bluesky writes it (start metadata searchable, e.g. ``Key("start.campaign_id") == 3``; the
primary stream's spectra as arrays). QDLab's database stays the source of truth: a catalog that
cannot be reached, or refuses a document, costs a warning, never the experiment. The API key
comes from ``$TILED_API_KEY``, as for every tiled client.

The tiled client is an optional extra: ``pip install -e '.[tiled]'``.
"""

from __future__ import annotations

import contextlib
import io
import logging
from typing import Any

from models.errors import UserError

__all__ = ["TiledSink", "TiledUnavailable"]

log = logging.getLogger(__name__)


class TiledUnavailable(UserError, RuntimeError):
    """The tiled client is not installed, or the catalog cannot be reached."""


class TiledSink:
    """Write every document to the tiled catalog at ``uri`` (see the module docstring).

    Connecting happens here, so a wrong address is one line before anything runs.
    """

    def __init__(self, uri: str) -> None:
        try:
            from bluesky.callbacks.tiled_writer import TiledWriter
            from tiled.client import from_uri
        except ImportError:
            raise TiledUnavailable(
                "--tiled needs the tiled client: pip install -e '.[tiled]'"
            ) from None
        try:
            with contextlib.redirect_stderr(io.StringIO()):  # its own "Retrying…" spinner
                client = from_uri(uri)
        except Exception as exc:  # any failure to reach or log in is the catalog's
            raise TiledUnavailable(f"--tiled {uri}: {type(exc).__name__}: {exc}") from None
        self.uri = uri
        self._writer = TiledWriter(client, batch_size=1)

    def __call__(self, name: str, doc: dict[str, Any]) -> None:
        try:
            self._writer(name, doc)
        except Exception as exc:  # the catalog's trouble never costs the experiment
            log.warning(
                "tiled %s: %s document not written (%s: %s); QDLab's database has it",
                self.uri,
                name,
                type(exc).__name__,
                exc,
            )

"""Every run also in a tiled catalog, where bluesky users look for data (``--tiled URL``).

:class:`TiledSink` is a RunEngine callback. It keeps each run's documents and, once the run has
stopped, publishes it in one go (:func:`publish_run`) instead of a request per document: one
request per stream for the events (bluesky's own
:class:`~bluesky_tiled_plugins.TiledWriter`, batched), and each array reading (the
spectra) as an array node of its stream, so ``run["primary"].read()`` gives the spectra as 2-D
float arrays beside the scalar columns. Start metadata is searchable
(``Key("start.campaign_id") == 3``).

QDLab's database stays the source of truth. A catalog that cannot be reached, or refuses a
run, costs a warning, never the experiment: the run is kept and published again when a later
run stops and when the sink closes, and ``qdlab campaign publish ID --tiled URL``
(:func:`publish_campaign`) writes any stored campaign from the database, idempotently (a run
already complete in the catalog is left as it is; one left half-written is written again). The
API key comes from ``$TILED_API_KEY``, as for every tiled client.

The tiled client is an optional extra: ``pip install -e '.[tiled]'``.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import queue
import threading
import time
from collections.abc import Sequence
from typing import Any

from models.errors import UserError

__all__ = ["TiledSink", "TiledUnavailable", "connect", "publish_campaign", "publish_run"]

log = logging.getLogger(__name__)

Document = tuple[str, dict[str, Any]]


class TiledUnavailable(UserError, RuntimeError):
    """The tiled client is not installed, or the catalog cannot be reached."""


def connect(uri: str) -> Any:
    """The tiled client of the catalog at ``uri``; :class:`TiledUnavailable` in one line."""
    try:
        import bluesky_tiled_plugins  # noqa: F401  (bluesky's TiledWriter, used to write)
        from tiled.client import from_uri
    except ImportError:
        raise TiledUnavailable(
            "--tiled needs the tiled client: pip install -e '.[tiled]'"
        ) from None
    try:
        with contextlib.redirect_stderr(io.StringIO()):  # its own "Retrying…" spinner
            return from_uri(uri)
    except Exception as exc:  # any failure to reach or log in is the catalog's
        raise TiledUnavailable(f"--tiled {uri}: {type(exc).__name__}: {exc}") from None


def _array_keys(descriptor: dict[str, Any]) -> set[str]:
    """The readings of a stream that are arrays (a spectrum), written as array nodes."""
    return {k for k, v in descriptor.get("data_keys", {}).items() if v.get("shape")}


def publish_run(client: Any, documents: Sequence[Document]) -> bool:
    """Write one run (its documents in order, start to stop) to the catalog ``client``.

    Idempotent: a run the catalog already holds complete (with its stop) is left as it is
    (returns False); one it holds half-written is deleted and written again. Array readings
    go out of the events' table into an array node each, (events x points), per stream.
    """
    from bluesky_tiled_plugins import TiledWriter

    start = documents[0][1]
    if start["uid"] in client:
        if "stop" in client[start["uid"]].metadata:
            return False
        client[start["uid"]].delete(recursive=True, external_only=False)
    streams: dict[str, str] = {}  # descriptor uid -> stream name
    arrays: dict[str, dict[str, list[Any]]] = {}  # stream -> array key -> rows
    described: dict[str, dict[str, Any]] = {}  # array key -> its data key (units, source)
    writer = TiledWriter(client, batch_size=100_000)  # each stream's events in one request
    for name, doc in documents:
        if name == "descriptor":
            streams[doc["uid"]] = doc["name"]
            keys = _array_keys(doc)
            arrays.setdefault(doc["name"], {k: [] for k in keys})
            described.update({k: doc["data_keys"][k] for k in keys})
            if keys:
                kept = {k: v for k, v in doc["data_keys"].items() if k not in keys}
                objects = {o: [k for k in ks if k not in keys]
                           for o, ks in doc.get("object_keys", {}).items()}  # fmt: skip
                doc = {**doc, "data_keys": kept, "object_keys": objects}
        elif name == "event":
            stream = arrays.get(streams.get(doc["descriptor"], ""), {})
            if stream:
                for key, rows in stream.items():
                    rows.append(doc["data"][key])
                doc = {**doc, "data": {k: v for k, v in doc["data"].items() if k not in stream}}
        if name == "stop":
            _write_arrays(client[start["uid"]], arrays, described)
        writer(name, doc)
    return True


def _write_arrays(
    run: Any, arrays: dict[str, dict[str, list[Any]]], described: dict[str, dict[str, Any]]
) -> None:
    """Each stream's array readings as an (events x points) array node of the stream."""
    import numpy as np

    for stream, keys in arrays.items():
        for key, rows in keys.items():
            if rows:
                data = np.asarray(rows, dtype=float)
                run[stream].base.write_array(data, key=key, metadata=described[key])


def publish_campaign(db: Any, campaign_id: int, uri: str) -> tuple[int, int]:
    """Write every stored run of a campaign to the catalog at ``uri`` from QDLab's database
    (see :func:`publish_run`); returns (written, already there)."""
    client = connect(uri)
    written = skipped = 0
    for run in db.runs(campaign_id):
        documents = db.run_documents(run["uid"])
        if not documents or documents[-1][0] != "stop":
            continue  # a run still going (or cut short): its stop is not stored yet
        if publish_run(client, documents):
            written += 1
        else:
            skipped += 1
    return written, skipped


class TiledSink:
    """A RunEngine callback that publishes each run to the catalog at ``uri`` when it stops
    (see the module docstring). Connecting happens here, so a wrong address is one line
    before anything runs.

    With ``background``, a run is published on a thread of the sink's own, so the next
    experiment does not wait for the catalog; the owner then calls :meth:`close` before it
    exits (a campaign does, at its end). Without it (an IPython session, which may end at any
    moment), the RunEngine publishes each run as it stops.
    """

    RETRY_S = 30.0
    """A run the catalog did not take is tried again when a later run stops, at most this
    often, and when the sink closes."""

    def __init__(self, uri: str, background: bool = False) -> None:
        self.uri = uri
        self._client = connect(uri)
        self._runs: dict[str, list[Document]] = {}  # run uid -> its documents so far
        self._descriptors: dict[str, str] = {}  # descriptor uid -> run uid
        self._failed: list[list[Document]] = []
        self._failed_at = -math.inf
        self._stopped: queue.Queue[list[Document]] | None = None
        if background:
            self._stopped = queue.Queue()
            threading.Thread(target=self._work, name="tiled", daemon=True).start()

    def _work(self) -> None:
        assert self._stopped is not None
        while True:
            documents = self._stopped.get()
            self._stop(documents)
            self._stopped.task_done()

    def __call__(self, name: str, doc: dict[str, Any]) -> None:
        if name == "start":
            uid = doc["uid"]
            self._runs[uid] = []
        elif name in ("event", "event_page"):
            uid = self._descriptors.get(doc["descriptor"], "")
        else:
            uid = doc.get("run_start", "")
            if name == "descriptor":
                self._descriptors[doc["uid"]] = uid
        if uid not in self._runs:
            return  # a run that started before this sink was subscribed
        self._runs[uid].append((name, doc))
        if name == "stop" and self._stopped is not None:
            self._stopped.put(self._runs.pop(uid))
        elif name == "stop":
            self._stop(self._runs.pop(uid))

    def _stop(self, documents: list[Document]) -> None:
        self._failed.append(documents)
        self._publish(retry=time.monotonic() - self._failed_at >= self.RETRY_S)

    @property
    def waiting(self) -> list[str]:
        """Runs the catalog has not taken yet (it was unreachable or refused them)."""
        return [docs[0][1]["uid"] for docs in self._failed]

    def close(self) -> list[str]:
        """Publish what has stopped, trying once more what waits; return the uids of the runs
        still not in the catalog."""
        if self._stopped is not None:
            self._stopped.join()
        self._publish(retry=True)
        return self.waiting

    def _publish(self, retry: bool) -> None:
        """Publish the run that just stopped and, with ``retry``, those that wait."""
        todo, self._failed = (self._failed, []) if retry else (self._failed[-1:], self._failed[:-1])
        down = self._down()
        for documents in todo:
            try:
                if down:  # fail at once: the tiled client would retry for up to 45 s
                    raise TiledUnavailable(down)
                publish_run(self._client, documents)
            except Exception as exc:  # the catalog's trouble never costs the experiment
                self._failed.append(documents)
                self._failed_at = time.monotonic()
                log.warning(
                    "tiled %s: run %s not written (%s: %s); kept, and tried again after a "
                    "later run (QDLab's database has it: `qdlab campaign publish` writes it)",
                    self.uri,
                    documents[0][1]["uid"],
                    type(exc).__name__,
                    str(exc).splitlines()[0] if str(exc) else "",
                )

    def _down(self) -> str:
        """Why the catalog does not answer now, in a second or two ("" when it does)."""
        import httpx

        try:
            self._client.context.http_client.get(self.uri, timeout=2.0)
        except httpx.HTTPError as exc:
            return f"the catalog does not answer ({type(exc).__name__})"
        return ""

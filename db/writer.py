"""A bluesky callback that writes every document to the database as it is emitted.

Subscribe it to a RunEngine: ``RE.subscribe(DocumentWriter(db))``. Each document is committed in
its own transaction (or every ``commit_every`` documents, and always at a run's start and stop),
so a crash loses at most the uncommitted batch and a run whose stop document never arrived
stays visible as incomplete. Spectra (1-D numeric arrays of events) go to the ``spectra`` table
as float64 bytes, with their wavelength axis from the descriptor's configuration, and are put
back into the events on read (:meth:`db.Database.run_documents`).

A start document's ``campaign_id`` and ``experiment_index`` (or ``experiment_id``) metadata link
the run to its campaign and experiment.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Mapping
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError

from db.database import Database, dumps, sequence, spectra_keys
from db.schema import Campaign, Document, Experiment, Run, Spectrum, WavelengthGrid

__all__ = ["DocumentWriter"]


class DocumentWriter:
    """Persist event-model documents as they arrive (see the module docstring).

    Parameters
    ----------
    database
        Where to write.
    commit_every
        Documents per transaction (1: every document is durable when the callback returns).
    """

    def __init__(self, database: Database, *, commit_every: int = 1) -> None:
        self.database = database
        self.commit_every = max(1, int(commit_every))
        self._conn = database.engine.connect()
        self._seq: dict[str, int] = {}
        self._descriptor_run: dict[str, str] = {}
        self._spectral: dict[str, dict[str, int | None]] = {}
        self._stream: dict[str, str] = {}  # descriptor uid -> its stream's name
        self._uncommitted = 0

    def __call__(self, name: str, doc: Mapping[str, Any]) -> None:
        try:
            self._write(name, doc)
        except DBAPIError:
            # the server went away: roll back so the connection can reconnect, and let the
            # RunEngine (and the campaign runner above it) see the failure
            with contextlib.suppress(DBAPIError):
                self._conn.rollback()
            self._uncommitted = 0
            raise

    def _write(self, name: str, doc: Mapping[str, Any]) -> None:
        if name == "start":
            self._start(doc)
        run_uid = self._run_of(name, doc)
        stored: Mapping[str, Any] = doc
        spectra: list[dict[str, Any]] = []
        if name == "descriptor":
            self._descriptor_run[doc["uid"]] = run_uid
            self._spectral[doc["uid"]] = self._grids(doc)
            self._stream[doc["uid"]] = doc.get("name", "primary")
        elif name == "event":
            stored, spectra = self._split_event(run_uid, doc)
        seq = self._seq.get(run_uid, 0)
        self._seq[run_uid] = seq + 1
        self._conn.execute(
            insert(Document), {"run_uid": run_uid, "seq": seq, "name": name, "doc": dumps(stored)}
        )
        if spectra:
            self._conn.execute(insert(Spectrum), spectra)
        if name == "stop":
            self._conn.execute(
                update(Run)
                .where(Run.uid == run_uid)
                .values(
                    stop_time=doc["time"],
                    exit_status=doc.get("exit_status"),
                    reason=doc.get("reason") or None,
                )
            )
            self._seq.pop(run_uid, None)
        self._uncommitted += 1
        if name in ("start", "stop") or self._uncommitted >= self.commit_every:
            self.flush()

    def flush(self) -> None:
        """Commit what has been written."""
        self._conn.commit()
        self._uncommitted = 0

    def close(self) -> None:
        """Commit and release the connection."""
        self.flush()
        self._conn.close()

    # -- helpers --------------------------------------------------------------------------
    def _start(self, doc: Mapping[str, Any]) -> None:
        conn = self._conn
        campaign_id = doc.get("campaign_id")
        if (
            campaign_id is not None
            and conn.scalar(select(Campaign.id).where(Campaign.id == campaign_id)) is None
        ):
            campaign_id = None  # metadata from another database: keep the run, unlinked
        experiment_id = doc.get("experiment_id")
        if experiment_id is None and campaign_id is not None and "experiment_index" in doc:
            experiment_id = conn.scalar(
                select(Experiment.id).where(
                    Experiment.campaign_id == campaign_id,
                    Experiment.index == doc["experiment_index"],
                )
            )
        conn.execute(
            insert(Run),
            {
                "uid": doc["uid"],
                "campaign_id": campaign_id,
                "experiment_id": experiment_id,
                "plan_name": doc.get("plan_name"),
                "start_time": doc["time"],
            },
        )
        self._seq[doc["uid"]] = 0

    def _run_of(self, name: str, doc: Mapping[str, Any]) -> str:
        if name == "start":
            return doc["uid"]
        if name in ("descriptor", "stop", "resource", "stream_resource"):
            return doc["run_start"]
        if name in ("event", "event_page"):
            return self._descriptor_run[doc["descriptor"]]
        # datum / datum_page / stream_datum belong to the latest open run
        return next(reversed(self._seq))

    def _grids(self, descriptor: Mapping[str, Any]) -> dict[str, int | None]:
        grids: dict[str, int | None] = {}
        for key, axis in spectra_keys(descriptor).items():
            if axis is None:
                grids[key] = None
                continue
            device = descriptor["data_keys"][key]["object_name"]
            values = sequence(descriptor["configuration"][device]["data"][axis])
            grids[key] = self._grid_id(values)
        return grids

    def _grid_id(self, values: Any) -> int:
        blob = values.tobytes()
        digest = hashlib.sha256(blob).hexdigest()
        query = select(WavelengthGrid.id).where(WavelengthGrid.digest == digest)
        found = self._conn.scalar(query)
        if found is not None:
            return found
        try:
            with self._conn.begin_nested():
                self._conn.execute(
                    insert(WavelengthGrid),
                    {"digest": digest, "points": len(values), "values": blob},
                )
        except IntegrityError:  # another writer stored the same grid first
            pass
        return self._conn.scalar(query)

    def _split_event(
        self, run_uid: str, doc: Mapping[str, Any]
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        keys = self._spectral.get(doc["descriptor"], {})
        data = dict(doc["data"])
        rows = []
        for key, grid_id in keys.items():
            value = data.get(key)
            if value is None:
                continue
            values = sequence(value)
            rows.append(
                {
                    "run_uid": run_uid,
                    "event_uid": doc["uid"],
                    "seq_num": doc["seq_num"],
                    "data_key": key,
                    "grid_id": grid_id,
                    "points": len(values),
                    "values": values.tobytes(),
                    "stream": self._stream.get(doc["descriptor"], "primary"),
                }
            )
            data[key] = None  # put back on read from the spectra table
        return {**doc, "data": data}, rows

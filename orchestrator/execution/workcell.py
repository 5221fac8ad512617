"""Workcells: a RunEngine per station, run by bluesky-queueserver, and the campaign's view of one.

A workcell is an RE Manager (bluesky-queueserver, its queue kept in Redis) whose worker holds
one lab's devices and QDLab's plans (:mod:`orchestrator.execution.workcell_env`) and writes
every document to the campaign database. Operators see and stop it with the queue server's own
tools (``qserver``, bluesky-httpserver); a campaign dispatches experiments to it as queue items.

- :mod:`orchestrator.execution.workcell_server` (``qdlab workcell serve``) starts one and
  registers it in the database;
- :class:`Workcell` (here) is the client a campaign uses: submit an experiment, and find where
  each of the campaign's experiments is (queued, running, finished) by its experiment id.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from models.errors import UserError

__all__ = ["NAME_PATTERN", "PLAN_OF_ROUTE", "ItemState", "Workcell", "WorkcellError"]

NAME_PATTERN = r"^[A-Za-z0-9_.\-]{1,100}$"
"""A workcell's name: 1 to 100 letters, digits, '_', '.' or '-'."""
PLAN_OF_ROUTE = {
    "hot_injection": "hot_injection_synthesis",
    "flow": "flow_synthesis",
    "larp": "larp_synthesis",
}
_REQUEST_TIMEOUT_S = 2.0
ENVIRONMENT_TIMEOUT_S = 120.0
"""How long a worker environment may take to open."""


class WorkcellError(UserError):
    """A workcell cannot be served or reached; the message names the flag or config field."""


@dataclass(frozen=True)
class ItemState:
    """Where an experiment's queue item is: ``queued``, ``running`` or ``finished``; a finished
    item has the queue server's ``exit_status`` (``completed``, ``failed``, ``aborted``, ...),
    its runs and its message."""

    where: str
    item_uid: str
    exit_status: str | None = None
    run_uids: tuple[str, ...] = ()
    message: str = ""
    error: str = ""  # the exception that ended it, as its traceback's last line names it
    attempt: str = ""  # which dispatch of the experiment it is (kept when put back)

    @property
    def worker_died(self) -> bool:
        """The worker process died under the item (what the manager records when ``serve``
        has it destroy the environment)."""
        return "RE Worker environment was destroyed" in self.message

    @property
    def instrument_fault(self) -> bool:
        """An instrument stopped answering under the item: no result of the chemistry."""
        from devices.base import INSTRUMENT_UNREACHABLE  # ophyd: not at the CLI's start-up

        return self.error in INSTRUMENT_UNREACHABLE

    def reason(self, workcell: str) -> str:
        """A failed item's reason, as an experiment's failure reason."""
        message = self.message.removeprefix("Plan failed:").strip()
        if self.instrument_fault:
            return f"workcell {workcell}: {self.error}: {message}"
        if self.worker_died:
            return f"workcell {workcell}: its worker died mid-plan ({message})"
        return f"workcell {workcell}: {message or f'plan {self.exit_status}'}"


class Workcell:
    """A campaign's view of one workcell (an RE Manager), over 0MQ or bluesky-httpserver.

    Parameters
    ----------
    name
        The workcell's name (recorded with each experiment it runs).
    zmq
        The RE Manager's control address, ``tcp://host:port``; with ``zmq_public_key`` (its
        CurveZMQ public key, else ``$QSERVER_ZMQ_PUBLIC_KEY``) for an encrypted one.
    http
        Or the URL of its bluesky-httpserver, with ``api_key``.
    user
        Who the items added are submitted as (the acting QDLab user; over HTTP the server
        names the user by ``api_key`` instead).
    """

    def __init__(
        self,
        name: str,
        zmq: str | None = None,
        http: str | None = None,
        api_key: str | None = None,
        timeout: float = _REQUEST_TIMEOUT_S,
        zmq_public_key: str | None = None,
        user: str | None = None,
    ) -> None:
        self.name, self.user = name, user
        self.address = zmq or http or ""
        if zmq is None and http is None:
            raise WorkcellError(f"workcell {name!r}: give its zmq or http address")
        self._zmq, self._http, self._api_key, self._timeout = zmq, http, api_key, timeout
        self._zmq_key = zmq_public_key
        self._api = self._connect()
        self._history_uid: str | None = None
        self._history: list[dict[str, Any]] = []

    def __repr__(self) -> str:
        return f"Workcell({self.name!r}, {self.address!r})"

    def _connect(self) -> Any:
        if self._zmq is not None:
            from bluesky_queueserver_api.zmq import REManagerAPI

            api = REManagerAPI(
                zmq_control_addr=self._zmq,
                zmq_public_key=self._zmq_key,
                timeout_recv=self._timeout,
                timeout_send=self._timeout,
            )
            if self.user:
                api.user = self.user
            return api
        from bluesky_queueserver_api.http import REManagerAPI as HttpAPI

        api = HttpAPI(http_server_uri=self._http, timeout=self._timeout)
        if self._api_key:
            api.set_authorization_key(api_key=self._api_key)
        return api

    def reconnect(self) -> None:
        """A new connection (a 0MQ request that timed out leaves its socket unusable)."""
        with contextlib.suppress(Exception):
            self._api.close()
        self._api = self._connect()
        self._history_uid = None

    def close(self) -> None:
        """Close the connection."""
        self._api.close()

    # -- state ----------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """The RE Manager's status; :class:`WorkcellError` if it does not answer."""
        try:
            return self._api.status(reload=True)
        except Exception as exc:
            raise WorkcellError(
                f"workcell {self.name!r}: no RE Manager answers at {self.address} "
                f"({type(exc).__name__})"
            ) from None

    def open(self, wait_s: float = ENVIRONMENT_TIMEOUT_S, process: Any = None) -> None:
        """Open the worker environment if it is closed, and have a failed plan stop the queue
        (the queue server's default: nothing more runs on a workcell whose plan failed, a
        safety abort above all, until the campaign's agent has seen why). ``process`` is the
        manager's process when we started it: its exit ends the wait."""
        deadline = time.monotonic() + wait_s
        status = None
        while status is None:
            try:
                status = self._api.status(reload=True)
            except Exception:
                if process is not None and process.poll() is not None:
                    raise WorkcellError(f"workcell {self.name!r}: the RE Manager exited") from None
                if time.monotonic() > deadline:
                    raise WorkcellError(
                        f"workcell {self.name!r}: no RE Manager answers at {self.address}"
                    ) from None
                time.sleep(0.2)
        if not status["worker_environment_exists"]:
            if status["manager_state"] == "idle":
                self._api.environment_open()
            while True:
                status = self.status()
                if status["worker_environment_exists"] and status["manager_state"] != (
                    "creating_environment"
                ):
                    break
                if status["manager_state"] == "idle" and not status["worker_environment_exists"]:
                    raise WorkcellError(
                        f"workcell {self.name!r}: its worker environment failed to open "
                        "(the RE Manager's log says why)"
                    )
                if time.monotonic() > deadline:
                    raise WorkcellError(f"workcell {self.name!r}: the environment did not open")
                time.sleep(0.2)
        if status["plan_queue_mode"].get("ignore_failures"):
            self._api.queue_mode_set(ignore_failures=False)

    def submit(
        self, plan: str, conditions: Mapping[str, Any], md: Mapping[str, Any], **kwargs: Any
    ) -> str:
        """Add an experiment to the queue (``kwargs``: the plan's other parameters, e.g. its
        ``reactor``) and start the queue; return the item's uid."""
        from bluesky_queueserver_api import BPlan

        # each condition a parameter of its own: the queue server checks them when it is added
        response = self._api.item_add(BPlan(plan, **dict(conditions), md=dict(md), **kwargs))
        self.start()
        return response["item"]["item_uid"]

    def start(self, status: Mapping[str, Any] | None = None) -> None:
        """Start the queue if the manager is idle with items waiting (``status``: the
        manager's status, if just read)."""
        status = status or self._api.status(reload=True)
        if (
            status["manager_state"] == "idle"
            and status["worker_environment_exists"]
            and status["items_in_queue"] > 0
        ):
            with contextlib.suppress(Exception):  # started meanwhile (another client)
                self._api.queue_start()

    def recover(self) -> None:
        """After the worker process died: let the manager destroy the environment (its
        running item is recorded as failed, with "RE Worker environment was destroyed", and
        put back at the front of the queue), then open a new one."""
        self._api.environment_destroy()
        deadline = time.monotonic() + 30
        while self.status()["worker_environment_exists"] and time.monotonic() < deadline:
            time.sleep(0.2)
        self.open()

    def restart_manager(self, wait_s: float = 60.0) -> None:
        """Have the queue server's watchdog restart the RE Manager (its worker, and a plan it
        runs, go on); return once the new manager answers. The manager reads its queue back
        from Redis and its worker's state from the worker."""
        with contextlib.suppress(Exception):  # it never answers: its loop is blocked for good
            self._api.send_request(method="manager_kill")
        self.reconnect()
        deadline = time.monotonic() + wait_s
        while True:
            try:
                if self._api.status(reload=True)["manager_state"] != "initializing":
                    return
            except Exception:
                self.reconnect()
            if time.monotonic() > deadline:
                raise WorkcellError(f"workcell {self.name!r}: its RE Manager did not come back")
            time.sleep(0.5)

    def remove(self, item_uid: str) -> bool:
        """Take an item out of the queue; False if it is no longer there (it started)."""
        try:
            self._api.item_remove(uid=item_uid)
        except Exception as exc:
            if "not in the queue" in str(exc):
                return False
            raise
        return True

    def items(
        self, campaign_uid: str, status: Mapping[str, Any] | None = None
    ) -> dict[int, list[ItemState]]:
        """Where each experiment of campaign ``campaign_uid`` is on this workcell, by id: its
        finished items (oldest first), then its running or queued item, if any.

        The queue and the running item are read in one request, the history after them: an
        item moving on meanwhile is seen in one of the two, never in neither. (The queue
        server puts an item whose worker died back at the front of the queue.) ``status``: the
        manager's status, read just before.
        """
        # the client's own cache keys the queue by its uid, which a Redis restart can leave
        # unchanged while the queue went: always ask
        status = status or self._api.status(reload=True)
        queue = self._api.send_request(method="queue_get")
        found: dict[int, list[ItemState]] = {}
        if status["plan_history_uid"] != self._history_uid:
            self._history = self._api.send_request(method="history_get")["items"]
            self._history_uid = status["plan_history_uid"]
        for item in self._history:
            eid = _experiment_of(item, campaign_uid)
            if eid is not None:
                result = item.get("result", {})
                found.setdefault(eid, []).append(
                    ItemState(
                        "finished",
                        item["item_uid"],
                        result.get("exit_status"),
                        tuple(result.get("run_uids") or ()),
                        (result.get("msg") or "").strip(),
                        _error_type(result.get("traceback") or ""),
                        _attempt(item),
                    )
                )
        running = queue.get("running_item") or {}
        eid = _experiment_of(running, campaign_uid)
        if eid is not None:
            found.setdefault(eid, []).append(
                ItemState("running", running["item_uid"], attempt=_attempt(running))
            )
        for item in queue["items"]:
            eid = _experiment_of(item, campaign_uid)
            if eid is not None:
                found.setdefault(eid, []).append(
                    ItemState("queued", item["item_uid"], attempt=_attempt(item))
                )
        return found

    def summary(self) -> dict[str, Any]:
        """Manager state, queue length and running item (what ``qdlab workcell status``
        prints)."""
        status = self.status()
        running = self._api.send_request(method="queue_get").get("running_item") or {}
        md = running.get("kwargs", {}).get("md") or {}
        return {
            "name": self.name,
            "address": self.address,
            "manager_state": status["manager_state"],
            "environment": status["worker_environment_exists"],
            "queue": status["items_in_queue"],
            "history": status["items_in_history"],
            "running": running.get("name"),
            "running_experiment": (
                f"c{md['campaign_id']}-e{int(md['experiment_index']) + 1}"
                if "campaign_id" in md and "experiment_index" in md
                else None
            ),
        }


def _error_type(traceback: str) -> str:
    """The exception class a traceback ends with (``devices.epics.PVUnreachable: PV ...``
    gives ``PVUnreachable``), or ''."""
    lines = traceback.strip().splitlines()
    head = lines[-1].split(":", 1)[0] if lines else ""
    name = head.rsplit(".", 1)[-1]
    return name if name.isidentifier() else ""


def _attempt(item: Mapping[str, Any]) -> str:
    return str(((item.get("kwargs") or {}).get("md") or {}).get("attempt", ""))


def _experiment_of(item: Mapping[str, Any], campaign_uid: str) -> int | None:
    md = (item.get("kwargs") or {}).get("md") or {}
    if md.get("campaign_uid") == campaign_uid and "experiment_id" in md:
        return int(md["experiment_id"])
    return None

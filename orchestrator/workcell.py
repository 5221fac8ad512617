"""Workcells: a RunEngine per station, run by bluesky-queueserver, and the campaign's view of one.

A workcell is an RE Manager (bluesky-queueserver, its queue kept in Redis) whose worker holds
one lab's devices and QDLab's plans (:mod:`orchestrator.workcell_env`) and writes every document
to the campaign database. Operators see and stop it with the queue server's own tools
(``qserver``, bluesky-httpserver); a campaign dispatches experiments to it as queue items.

- :func:`serve` (``qdlab workcell serve``) starts one and registers it in the database;
- :class:`Workcell` is the client a campaign agent uses: submit an experiment, and find where
  each of the campaign's experiments is (queued, running, finished) by its experiment id.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from devices.config import LabConfig, load_lab_config
from models.errors import UserError

__all__ = [
    "DEVICE_NAMES",
    "NAME_PATTERN",
    "PLAN_NAMES",
    "ItemState",
    "Workcell",
    "WorkcellError",
    "lab_config",
    "parse_speedup",
    "permissions",
    "serve",
]

PLAN_NAMES = ("hot_injection_synthesis", "flow_synthesis", "larp_synthesis", "measure_sample")
"""The plans a workcell's queue accepts (its permissions list exactly these)."""
DEVICE_NAMES = ("robot", "reactor", "cell", "timer", "safety", "flow")
"""The devices a workcell's worker names (``flow`` only on a lab with a flow line)."""
NAME_PATTERN = r"^[A-Za-z0-9_.\-]{1,100}$"
"""A workcell's name: 1 to 100 letters, digits, '_', '.' or '-'."""
PLAN_OF_ROUTE = {
    "hot_injection": "hot_injection_synthesis",
    "flow": "flow_synthesis",
    "larp": "larp_synthesis",
}
_REQUEST_TIMEOUT_S = 2.0
_ENVIRONMENT_TIMEOUT_S = 120.0


class WorkcellError(UserError):
    """A workcell cannot be served or reached; the message names the flag or config field."""


def parse_speedup(text: str, flag: str = "--speedup") -> float | None:
    """Lab seconds per wall-clock second: a number in (0, 1e6], or ``max`` (None: the virtual
    clock runs as fast as it can)."""
    if text == "max":
        return None
    try:
        rate = float(text)
    except ValueError:
        rate = math.nan
    if not 0 < rate <= 1e6:
        raise WorkcellError(f"{flag}: {text!r} must be a number in (0, 1e6] or 'max'")
    return rate


def lab_config(source: str | Path, speedup: str = "max") -> LabConfig:
    """The lab config of a workcell: ``source`` with its simulated clock at ``speedup``."""
    config = load_lab_config(source)
    rate = parse_speedup(speedup)
    clock = {"clock": "fast"} if rate is None else {"clock": "realtime", "speed": rate}
    return config.model_copy(update={"simulator": config.simulator.model_copy(update=clock)})


def permissions(lab: LabConfig) -> dict[str, Any]:
    """The queue server's user-group permissions: exactly QDLab's plans and the lab's devices
    (with their components), no functions."""
    devices = [d for d in DEVICE_NAMES if d != "flow" or lab.flow is not None]
    rules = {
        "allowed_plans": [f":^({'|'.join(PLAN_NAMES)})$"],
        "forbidden_plans": [None],
        "allowed_devices": [f":^({'|'.join(devices)})$:?.*"],
        "forbidden_devices": [None],
        "allowed_functions": [None],
        "forbidden_functions": [":.*"],
    }
    return {"user_groups": {"root": rules, "primary": rules}}


def _host_port(address: str, flag: str, default_port: int) -> tuple[str, int]:
    text = address.split("://", 1)[-1].rstrip("/")
    host, _, port = text.rpartition(":")
    if not host:
        host, port = text, str(default_port)
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise WorkcellError(f"{flag}: {address!r} is not host:port (port 1-65535)")
    return host, int(port)


def _answers(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _check_free(host: str, port: int, flag: str) -> None:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as 0MQ binds: TIME_WAIT is fine
        try:
            s.bind((host, port))
        except OSError as exc:
            raise WorkcellError(
                f"{flag}: cannot listen on {host}:{port} ({exc.strerror})"
            ) from None


def serve(
    lab: str,
    db: str | None,
    name: str,
    redis: str = "127.0.0.1:6379",
    zmq: str = "tcp://127.0.0.1:60615",
    zmq_info: str | None = None,
    http: int | None = None,
    speedup: str = "max",
    ready: Any = None,
    tiled: str | None = None,
) -> None:
    """Serve workcell ``name`` until SIGINT/SIGTERM: an RE Manager for lab ``lab`` with its
    queue in Redis at ``redis`` and its documents in database ``db``; with ``http``, also
    bluesky-httpserver on that port (API key from ``$QSERVER_HTTP_SERVER_SINGLE_USER_API_KEY``).

    Everything that can be refused (the lab, the database, Redis, the addresses) is checked
    before any server starts. ``ready`` (a callable) is told the control address once the
    worker environment is open. ``tiled``: the worker also writes every run to this tiled
    catalog (:class:`db.tiled.TiledSink`).
    """
    from db import Database

    if not re.fullmatch(NAME_PATTERN, name):
        raise WorkcellError(f"--name: {name!r} must be 1 to 100 letters, digits, '_', '.' or '-'")
    config = lab_config(lab, speedup)
    database = Database(db)
    if tiled is not None:
        from db.tiled import TiledSink

        TiledSink(tiled)  # a wrong address is refused here, before any server starts
    redis_host, redis_port = _host_port(redis, "--redis", 6379)
    if not _answers(redis_host, redis_port):
        raise WorkcellError(f"--redis: no Redis server answers at {redis_host}:{redis_port}")
    zmq_host, zmq_port = _host_port(zmq, "--zmq", 60615)
    if zmq_info is None:
        zmq_info = f"tcp://{zmq_host}:{zmq_port + 10}"
    info_host, info_port = _host_port(zmq_info, "--zmq-info", 60625)
    _check_free(zmq_host, zmq_port, "--zmq")
    _check_free(info_host, info_port, "--zmq-info")
    if http is not None:
        _check_free("127.0.0.1", http, "--http")
        key = os.environ.get("QSERVER_HTTP_SERVER_SINGLE_USER_API_KEY", "")
        if not key.isalnum():
            raise WorkcellError(
                "--http: set QSERVER_HTTP_SERVER_SINGLE_USER_API_KEY to the API key clients use "
                "(letters and digits only, e.g. `openssl rand -hex 32`)"
            )
    control = f"tcp://{zmq_host}:{zmq_port}"
    state = Path(tempfile.mkdtemp(prefix=f"qdlab-workcell-{name}-"))
    (state / "permissions.yaml").write_text(yaml.safe_dump(permissions(config)))
    # filled in when the worker environment opens
    (state / "existing_plans_and_devices.yaml").write_text(
        "existing_plans: {}\nexisting_devices: {}\n"
    )
    env = {
        **os.environ,
        "QDLAB_WORKCELL_LAB": str(Path(lab).resolve()),
        "QDLAB_WORKCELL_NAME": name,
        "QDLAB_WORKCELL_SPEEDUP": speedup,
        "QDLAB_DB": database.url,
        "QDLAB_WORKCELL_PIDFILE": str(state / "worker.pid"),
        **({"QDLAB_TILED": tiled} if tiled else {}),
    }
    bin_dir = Path(sys.executable).parent
    manager_cmd = [
        str(bin_dir / "start-re-manager"),
        "--startup-module", "orchestrator.workcell_env",
        "--redis-addr", f"{redis_host}:{redis_port}",
        "--redis-name-prefix", f"qdlab_{name}",
        "--zmq-control-addr", control,
        "--zmq-info-addr", f"tcp://{info_host}:{info_port}",
        "--user-group-permissions", str(state / "permissions.yaml"),
        "--user-group-permissions-reload", "ON_STARTUP",
        "--existing-plans-devices", str(state / "existing_plans_and_devices.yaml"),
        "--update-existing-plans-devices", "ENVIRONMENT_OPEN",
        "--quiet",
    ]  # fmt: skip
    children = [subprocess.Popen(manager_cmd, env=env, start_new_session=True)]
    stopping = []

    def stop(signum: int, frame: Any) -> None:
        stopping.append(signum)

    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    http_url = None
    try:
        client = Workcell(name, zmq=control)
        client.open(wait_s=_ENVIRONMENT_TIMEOUT_S, process=children[0])
        if http is not None:
            http_env = {
                **env,
                "QSERVER_ZMQ_CONTROL_ADDRESS": control,
                "QSERVER_ZMQ_INFO_ADDRESS": f"tcp://{info_host}:{info_port}",
            }
            http_cmd = [
                str(bin_dir / "start-bluesky-httpserver"),
                "--host", "127.0.0.1", "--port", str(http),
            ]  # fmt: skip
            with open(state / "http.log", "w") as log:  # its log prints its settings: keep it
                children.append(
                    subprocess.Popen(
                        http_cmd, env=http_env, stdout=log, stderr=log, start_new_session=True
                    )
                )
            deadline = time.monotonic() + 60
            while not _answers("127.0.0.1", http):
                if children[-1].poll() is not None or time.monotonic() > deadline:
                    raise WorkcellError(f"--http: bluesky-httpserver did not start on port {http}")
                time.sleep(0.2)
            http_url = f"http://127.0.0.1:{http}"
        database.register_workcell(
            name,
            zmq=control,
            http=http_url,
            lab=config.name,
            host=socket.gethostname(),
            pid=os.getpid(),
        )
        print(
            f"workcell {name!r} ready: lab {config.name!r}, queue at {control}"
            + (f", REST at {http_url}" if http_url else "")
            + "; Ctrl-C stops it",
            file=sys.stderr,
            flush=True,
        )
        if ready is not None:
            ready(control)
        pidfile = state / "worker.pid"
        while not stopping and all(c.poll() is None for c in children):
            time.sleep(0.2)
            if pidfile.exists() and not _alive(int(pidfile.read_text() or 0)):
                # the manager does not notice a worker killed under it: tell it, start anew
                pidfile.unlink()
                print(f"workcell {name!r}: its worker died; reopening", file=sys.stderr)
                client.recover()
                print(f"workcell {name!r} ready again", file=sys.stderr, flush=True)
        if not stopping:
            raise WorkcellError(f"workcell {name!r}: its RE Manager exited")
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        for child in reversed(children):
            _stop_process(child)
        with contextlib.suppress(Exception):  # the database may be the reason we stop
            database.workcell_stopped(name)
        for f in state.iterdir():
            f.unlink()
        state.rmdir()


def _alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie, killed and not yet reaped, does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def _stop_process(process: subprocess.Popen, timeout: float = 10.0) -> None:
    """SIGTERM the process group, SIGKILL it if it has not exited within ``timeout``."""
    if process.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


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

    @property
    def worker_died(self) -> bool:
        """The worker process died under the item (what the manager records when ``serve``
        has it destroy the environment)."""
        return "RE Worker environment was destroyed" in self.message

    def reason(self, workcell: str) -> str:
        """A failed item's reason, as an experiment's failure reason."""
        message = self.message.removeprefix("Plan failed:").strip()
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
        The RE Manager's control address, ``tcp://host:port``.
    http
        Or the URL of its bluesky-httpserver, with ``api_key``.
    """

    def __init__(
        self,
        name: str,
        zmq: str | None = None,
        http: str | None = None,
        api_key: str | None = None,
        timeout: float = _REQUEST_TIMEOUT_S,
    ) -> None:
        self.name = name
        self.address = zmq or http or ""
        if zmq is None and http is None:
            raise WorkcellError(f"workcell {name!r}: give its zmq or http address")
        self._zmq, self._http, self._api_key, self._timeout = zmq, http, api_key, timeout
        self._api = self._connect()
        self._history_uid: str | None = None
        self._history: list[dict[str, Any]] = []

    def __repr__(self) -> str:
        return f"Workcell({self.name!r}, {self.address!r})"

    def _connect(self) -> Any:
        if self._zmq is not None:
            from bluesky_queueserver_api.zmq import REManagerAPI

            return REManagerAPI(
                zmq_control_addr=self._zmq, timeout_recv=self._timeout, timeout_send=self._timeout
            )
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

    def open(self, wait_s: float = _ENVIRONMENT_TIMEOUT_S, process: Any = None) -> None:
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

    def submit(self, plan: str, conditions: Mapping[str, Any], md: Mapping[str, Any]) -> str:
        """Add an experiment to the queue and start the queue; return the item's uid."""
        from bluesky_queueserver_api import BPlan

        response = self._api.item_add(BPlan(plan, dict(conditions), md=dict(md)))
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
                    )
                )
        running = queue.get("running_item") or {}
        eid = _experiment_of(running, campaign_uid)
        if eid is not None:
            found.setdefault(eid, []).append(ItemState("running", running["item_uid"]))
        for item in queue["items"]:
            eid = _experiment_of(item, campaign_uid)
            if eid is not None:
                found.setdefault(eid, []).append(ItemState("queued", item["item_uid"]))
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


def _experiment_of(item: Mapping[str, Any], campaign_uid: str) -> int | None:
    md = (item.get("kwargs") or {}).get("md") or {}
    if md.get("campaign_uid") == campaign_uid and "experiment_id" in md:
        return int(md["experiment_id"])
    return None

"""``qdlab workcell serve``: start a workcell (an RE Manager for one lab, its queue in Redis)
and register it in the campaign database.

Everything that can be refused (the lab, the database, Redis, the addresses) is checked before
any server starts; the worker's namespace is :mod:`orchestrator.execution.workcell_env`.
"""

from __future__ import annotations

import contextlib
import ipaddress
import math
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from db import Database
from devices.config import LabConfig, load_lab_config
from orchestrator.execution.workcell import (
    ENVIRONMENT_TIMEOUT_S,
    NAME_PATTERN,
    Workcell,
    WorkcellError,
)

__all__ = [
    "DEVICE_NAMES",
    "DIAGNOSTIC_PLANS",
    "PLAN_NAMES",
    "lab_config",
    "parse_speedup",
    "permissions",
    "serve",
]

PLAN_NAMES = ("hot_injection_synthesis", "flow_synthesis", "larp_synthesis", "measure_sample")
"""The plans a workcell's queue accepts from anyone (its permissions list exactly these)."""

DIAGNOSTIC_PLANS = ("count", "scan", "mv")
"""bluesky's own plans a workcell's queue also accepts from its ``staff`` user group, on the
workcell's devices, for a diagnostic (a device's own limits refuse a move outside them before
anything moves)."""


DEVICE_NAMES = ("robot", "reactor", "cell", "timer", "safety", "flow")
"""The devices a workcell's worker names (``flow`` only on a lab with a flow line; each of the
lab config's ``reactors`` by its name besides)."""


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
    return load_lab_config(source).at_speed(parse_speedup(speedup))


def permissions(lab: LabConfig) -> dict[str, Any]:
    """The queue server's user-group permissions: QDLab's plans (``primary``, what campaigns
    and other clients submit as), those and bluesky's :data:`DIAGNOSTIC_PLANS` (``staff``), on
    the lab's devices (with their components); no functions."""
    devices = [d for d in DEVICE_NAMES if d != "flow" or lab.flow is not None]
    devices += list(lab.reactors)  # the lab's other reactors, each by its name
    devices += list(lab.instruments)  # and the instruments of kinds a package adds

    def rules(plans: tuple[str, ...]) -> dict[str, Any]:
        return {
            "allowed_plans": [f":^({'|'.join(plans)})$"],
            "forbidden_plans": [None],
            "allowed_devices": [f":^({'|'.join(devices)})$:?.*"],
            "forbidden_devices": [None],
            "allowed_functions": [None],
            "forbidden_functions": [":.*"],
        }

    staff = rules(PLAN_NAMES + DIAGNOSTIC_PLANS)
    return {"user_groups": {"root": staff, "primary": rules(PLAN_NAMES), "staff": staff}}


def _host_port(address: str, flag: str, default_port: int) -> tuple[str, int]:
    text = address.split("://", 1)[-1].rstrip("/")
    host, _, port = text.rpartition(":")
    if not host:
        host, port = text, str(default_port)
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise WorkcellError(f"{flag}: {address!r} is not host:port (port 1-65535)")
    return host, int(port)


def _loopback(host: str) -> bool:
    """Whether ``host`` names this machine's loopback interface."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host == "localhost"


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


@dataclass(frozen=True)
class _Settings:
    """A workcell's checked settings (nothing started yet)."""

    name: str
    lab: str
    config: LabConfig
    database: Database
    redis: str
    control: str
    info: str
    http: int | None
    speedup: str
    tiled: str | None
    zmq_key: str | None  # the control socket's CurveZMQ private key
    connect: str  # where this host reaches the control socket

    @property
    def zmq_public_key(self) -> str | None:
        """The key a client needs to reach an encrypted control socket."""
        return None if self.zmq_key is None else zmq_public_key(self.zmq_key)


def zmq_public_key(private_key: str) -> str:
    """The CurveZMQ public key (Z85) of a private key."""
    import zmq

    return zmq.curve_public(private_key.encode()).decode()


def _private_key(path: str | None) -> str | None:
    """The control socket's CurveZMQ private key: from file ``path`` (readable by its owner
    only, as an ssh key), else ``$QSERVER_ZMQ_PRIVATE_KEY_FOR_SERVER`` (the queue server's own
    variable), else None."""
    if path is None:
        key = os.environ.get("QSERVER_ZMQ_PRIVATE_KEY_FOR_SERVER") or None
        where = "$QSERVER_ZMQ_PRIVATE_KEY_FOR_SERVER"
    else:
        where = "--zmq-key-file"
        try:
            if os.stat(path).st_mode & 0o077:
                raise WorkcellError(f"{where}: {path} is readable by others; chmod 600 it")
            key = Path(path).read_text().strip()
        except OSError as exc:
            raise WorkcellError(f"{where}: cannot read {path} ({exc.strerror})") from None
    if key is not None:
        try:
            zmq_public_key(key)
            if len(key) != 40:
                raise ValueError
        except ValueError:
            raise WorkcellError(
                f"{where}: not a CurveZMQ private key (40 Z85 characters, the private key "
                "`qserver-zmq-keys` prints)"
            ) from None
    return key


def _checked(
    lab: str,
    db: str | None,
    name: str,
    redis: str,
    zmq: str,
    zmq_info: str | None,
    http: int | None,
    speedup: str,
    tiled: str | None,
    zmq_key_file: str | None,
) -> _Settings:
    """Refuse what cannot be served (the lab, the database, Redis, the addresses), naming the
    flag, before anything starts."""
    if not re.fullmatch(NAME_PATTERN, name):
        raise WorkcellError(f"--name: {name!r} must be 1 to 100 letters, digits, '_', '.' or '-'")
    zmq_host, zmq_port = _host_port(zmq, "--zmq", 60615)
    zmq_key = _private_key(zmq_key_file)
    if not _loopback(zmq_host) and zmq_key is None:
        raise WorkcellError(
            f"--zmq: {zmq} would open the queue to the network without authentication; keep "
            "it on loopback, or give --zmq-key-file (the CurveZMQ private key "
            "`qserver-zmq-keys` makes: only clients given its public key get in), or --http "
            "(bluesky-httpserver with an API key)"
        )
    config = lab_config(lab, speedup)
    database = Database(db)
    if tiled is not None:
        from db.tiled import TiledSink

        TiledSink(tiled)  # a wrong address is refused here, before any server starts
    redis_host, redis_port = _host_port(redis, "--redis", 6379)
    if not _answers(redis_host, redis_port):
        raise WorkcellError(f"--redis: no Redis server answers at {redis_host}:{redis_port}")
    if zmq_info is None:
        zmq_info = f"tcp://{zmq_host if _loopback(zmq_host) else '127.0.0.1'}:{zmq_port + 10}"
    info_host, info_port = _host_port(zmq_info, "--zmq-info", 60625)
    if not _loopback(info_host):
        raise WorkcellError(
            f"--zmq-info: {zmq_info} would publish the worker's console to the network "
            "unencrypted (the queue server encrypts only its control socket); keep it on "
            "loopback"
        )
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
    return _Settings(
        name,
        lab,
        config,
        database,
        f"{redis_host}:{redis_port}",
        f"tcp://{zmq_host}:{zmq_port}",
        f"tcp://{info_host}:{info_port}",
        http,
        speedup,
        tiled,
        zmq_key,
        f"tcp://{'127.0.0.1' if zmq_host in ('0.0.0.0', '*') else zmq_host}:{zmq_port}",
    )


def _manager(s: _Settings, state: Path) -> tuple[list[str], dict[str, str]]:
    """The RE Manager's command line and environment (the worker reads its settings there:
    :mod:`orchestrator.execution.workcell_env`)."""
    (state / "permissions.yaml").write_text(yaml.safe_dump(permissions(s.config)))
    # filled in when the worker environment opens
    (state / "existing_plans_and_devices.yaml").write_text(
        "existing_plans: {}\nexisting_devices: {}\n"
    )
    env = {
        **os.environ,
        "QDLAB_WORKCELL_LAB": str(Path(s.lab).resolve()),
        "QDLAB_WORKCELL_NAME": s.name,
        "QDLAB_WORKCELL_SPEEDUP": s.speedup,
        "QDLAB_DB": s.database.url,
        "QDLAB_WORKCELL_PIDFILE": str(state / "worker.pid"),
        **({"QDLAB_TILED": s.tiled} if s.tiled else {}),
        **({"QSERVER_ZMQ_PRIVATE_KEY_FOR_SERVER": s.zmq_key} if s.zmq_key else {}),
    }
    command = [
        str(Path(sys.executable).parent / "start-re-manager"),
        "--startup-module", "orchestrator.execution.workcell_env",
        "--redis-addr", s.redis,
        "--redis-name-prefix", f"qdlab_{s.name}",
        "--zmq-control-addr", s.control,
        "--zmq-info-addr", s.info,
        "--user-group-permissions", str(state / "permissions.yaml"),
        "--user-group-permissions-reload", "ON_STARTUP",
        "--existing-plans-devices", str(state / "existing_plans_and_devices.yaml"),
        "--update-existing-plans-devices", "ENVIRONMENT_OPEN",
        "--quiet",
    ]  # fmt: skip
    return command, env


def _start_http(s: _Settings, env: dict[str, str], state: Path) -> subprocess.Popen:
    """bluesky-httpserver in front of the manager, on loopback port ``s.http``."""
    assert s.http is not None
    http_env = {
        **env,
        "QSERVER_ZMQ_CONTROL_ADDRESS": s.connect,
        "QSERVER_ZMQ_INFO_ADDRESS": s.info,
        **({"QSERVER_ZMQ_PUBLIC_KEY": s.zmq_public_key} if s.zmq_key else {}),
    }
    http_env.pop("QSERVER_ZMQ_PRIVATE_KEY_FOR_SERVER", None)
    command = [
        str(Path(sys.executable).parent / "start-bluesky-httpserver"),
        "--host", "127.0.0.1", "--port", str(s.http),
    ]  # fmt: skip
    with open(state / "http.log", "w") as log:  # its log prints its settings: keep it
        process = subprocess.Popen(
            command, env=http_env, stdout=log, stderr=log, start_new_session=True
        )
    deadline = time.monotonic() + 60
    while not _answers("127.0.0.1", s.http):
        if process.poll() is not None or time.monotonic() > deadline:
            _stop_process(process)
            raise WorkcellError(f"--http: bluesky-httpserver did not start on port {s.http}")
        time.sleep(0.2)
    return process


STUCK_S = 5.0
"""How long an RE Manager may execute its queue with an idle worker before ``serve`` restarts
it (moving from one item to the next takes milliseconds)."""


def _watch(
    s: _Settings, client: Workcell, children: list[subprocess.Popen], state: Path, stopping: list
) -> None:
    """Until a signal: reopen the worker environment when its process dies (the manager does
    not notice a worker killed under it), and restart a manager stuck by a Redis outage
    (:func:`_unstick`); :class:`WorkcellError` if a server exits."""
    pidfile = state / "worker.pid"
    stuck_since: float | None = None
    next_look = 0.0
    while not stopping and all(c.poll() is None for c in children):
        time.sleep(0.2)
        if pidfile.exists() and not _alive(int(pidfile.read_text() or 0)):
            pidfile.unlink()
            print(f"workcell {s.name!r}: its worker died; reopening", file=sys.stderr)
            client.recover()
            print(f"workcell {s.name!r} ready again", file=sys.stderr, flush=True)
        if time.monotonic() >= next_look:
            next_look = time.monotonic() + 1.0
            stuck_since = _unstick(s, client, stuck_since)
    if not stopping:
        raise WorkcellError(f"workcell {s.name!r}: its RE Manager exited")


def _stuck(status: dict[str, Any]) -> bool:
    """The manager executes its queue while its worker is idle, with no plan to report.

    What a Redis that went away as a plan ended leaves: the manager's handling of the plan's
    report fails on Redis, and bluesky-queueserver 0.0.25 never tries again, so nothing more
    starts until the manager restarts."""
    return (
        status["manager_state"] == "executing_queue"
        and status.get("worker_environment_state") == "idle"
        and status.get("re_state") == "idle"
    )


def _unstick(s: _Settings, client: Workcell, since: float | None) -> float | None:
    """Restart the RE Manager once it has been stuck (:func:`_stuck`) for :data:`STUCK_S` and
    Redis answers again (a restarted manager reads its queue there); return since when it is
    stuck, or None."""
    try:
        status = client.status()
    except WorkcellError:  # restarting, or busy: look again later
        client.reconnect()
        return since
    if not _stuck(status):
        return None
    now = time.monotonic()
    if since is None or now - since < STUCK_S or not _answers(*_host_port(s.redis, "", 6379)):
        return now if since is None else since
    print(
        f"workcell {s.name!r}: its RE Manager has executed its queue with an idle worker for "
        f"{now - since:.0f} s (Redis at {s.redis} went away as a plan ended); restarting the "
        "manager",
        file=sys.stderr,
        flush=True,
    )
    client.restart_manager()
    print(f"workcell {s.name!r} ready again", file=sys.stderr, flush=True)
    return None


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
    zmq_key_file: str | None = None,
) -> None:
    """Serve workcell ``name`` until SIGINT/SIGTERM: an RE Manager for lab ``lab`` with its
    queue in Redis at ``redis`` and its documents in database ``db``; with ``http``, also
    bluesky-httpserver on that port (API key from ``$QSERVER_HTTP_SERVER_SINGLE_USER_API_KEY``).

    Everything that can be refused (the lab, the database, Redis, the addresses) is checked
    before any server starts. ``ready`` (a callable) is told the control address once the
    worker environment is open. ``tiled``: the worker also writes every run to this tiled
    catalog (:class:`db.tiled.TiledSink`). ``zmq_key_file``: the control socket's CurveZMQ
    private key (else ``$QSERVER_ZMQ_PRIVATE_KEY_FOR_SERVER``); only clients given its public
    key reach the queue, which may then listen beyond loopback.
    """
    s = _checked(lab, db, name, redis, zmq, zmq_info, http, speedup, tiled, zmq_key_file)
    state = Path(tempfile.mkdtemp(prefix=f"qdlab-workcell-{name}-"))
    command, env = _manager(s, state)
    children = [subprocess.Popen(command, env=env, start_new_session=True)]
    stopping: list[int] = []

    def stop(signum: int, frame: Any) -> None:
        stopping.append(signum)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        client = Workcell(name, zmq=s.connect, zmq_public_key=s.zmq_public_key)
        client.open(wait_s=ENVIRONMENT_TIMEOUT_S, process=children[0])
        http_url = None
        if http is not None:
            children.append(_start_http(s, env, state))
            http_url = f"http://127.0.0.1:{http}"
        s.database.register_workcell(
            name,
            zmq=_registered(s.control),
            http=http_url,
            lab=s.config.name,
            host=socket.gethostname(),
            pid=os.getpid(),
        )
        print(
            f"workcell {name!r} ready: lab {s.config.name!r}, queue at {s.control}"
            + (f" (encrypted; clients give public key {s.zmq_public_key})" if s.zmq_key else "")
            + (f", REST at {http_url}" if http_url else "")
            + "; Ctrl-C stops it",
            file=sys.stderr,
            flush=True,
        )
        if ready is not None:
            ready(s.control)
        _watch(s, client, children, state, stopping)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for child in reversed(children):
            _stop_process(child)
        with contextlib.suppress(Exception):  # the database may be the reason we stop
            s.database.workcell_stopped(name)
        for f in state.iterdir():
            f.unlink()
        state.rmdir()


def _registered(control: str) -> str:
    """The control address as other hosts reach it (a socket on every interface is reached by
    this host's name)."""
    host, port = _host_port(control, "--zmq", 60615)
    return f"tcp://{socket.getfqdn()}:{port}" if host in ("0.0.0.0", "*") else control


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

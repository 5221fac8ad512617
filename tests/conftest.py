"""Shared fixtures: a repository root and a helper to run the real ``qdlab`` console script."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import caproto.client.common as caproto_client
import pytest
from bluesky import RunEngine
from event_model import DocumentNames, schema_validators

from devices import build_lab

ROOT = Path(__file__).resolve().parents[1]

RETIRED_SEARCH_S = "2"
"""How often a Channel Access client of the tests resends a search unanswered for 8 minutes
(caproto's default: once a minute). The tests' IOCs serve on one port per session: an IOC a
test starts long after the last one stopped must be found again within the test's timeouts."""
caproto_client.RETRY_RETIRED_SEARCHES_INTERVAL = float(RETIRED_SEARCH_S)  # this process


def qdlab(*args: str, timeout: float = 120.0, **kwargs) -> subprocess.CompletedProcess[str]:
    """Run ``qdlab ARGS`` as a user would (a subprocess) and return the completed process."""
    return subprocess.run(
        [sys.executable, "-m", "orchestrator", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=kwargs.pop("cwd", ROOT),
        **kwargs,
    )


def start_qdlab(*args: str, capture: bool = False, env=None) -> subprocess.Popen:
    """``qdlab ARGS`` in the background (to be killed, interrupted or waited for)."""
    out = subprocess.PIPE if capture else subprocess.DEVNULL
    return subprocess.Popen(
        [sys.executable, "-m", "orchestrator", *args],
        cwd=ROOT,
        env=env,
        stdout=out,
        stderr=out,
        text=True,
    )


@pytest.fixture
def spawn():
    """:func:`start_qdlab` for a test: whatever is still running at its end is killed."""
    started: list[subprocess.Popen] = []

    def start(*args: str, **kwargs) -> subprocess.Popen:
        proc = start_qdlab(*args, **kwargs)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


@pytest.fixture
def run_qdlab():
    """:func:`qdlab` as a fixture."""
    return qdlab


@pytest.fixture
def lab():
    """A fresh simulated lab on a fast virtual clock, seed 0."""
    return build_lab(seed=0)


@pytest.fixture
def RE():
    """A real RunEngine that keeps every document it emits in ``RE.docs``."""
    engine = RunEngine({})
    engine.docs = []
    engine.subscribe(lambda name, doc: engine.docs.append((name, doc)))
    return engine


def wait_for(predicate, timeout: float = 60.0, what: str = "a condition"):
    """Poll ``predicate`` until it returns something truthy (returned); fail after ``timeout``."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def primary_events(docs) -> list[dict]:
    """The events of the primary stream in ``docs`` (a synthesis also records ``baseline``)."""
    from orchestrator.execution.observe import measurements

    return list(measurements(docs))


def validate_documents(docs):
    """Validate every (name, doc) pair with event-model's JSON schemas; return the count."""
    for name, doc in docs:
        schema_validators[DocumentNames(name)].validate(doc)
    return len(docs)


def _start_throwaway_postgres():
    """Start a loopback PostgreSQL cluster (as .ci/run does); return (url, stop) or a reason."""
    import glob
    import os
    import shutil
    import socket
    import tempfile

    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
    if not bins:
        return None, "PostgreSQL is not installed here (.ci/run installs it with apt-get)"
    bin_dir = bins[-1]
    as_root = os.geteuid() == 0
    if as_root and shutil.which("su") is None:
        return None, "cannot run PostgreSQL as root and no 'su' to switch user"
    tmp_root = Path(tempfile.mkdtemp(prefix="qdlab-pg-"))  # reachable by the postgres user
    data = tmp_root / "pgdata"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    def run(cmd: str) -> subprocess.CompletedProcess:
        full = ["su", "postgres", "-c", cmd] if as_root else ["bash", "-c", cmd]
        return subprocess.run(full, capture_output=True, text=True, timeout=120)

    if as_root:
        subprocess.run(["chown", "-R", "postgres", str(tmp_root)], check=False)
    init = run(f"{bin_dir}/initdb -D {data} -A trust -U postgres")
    if init.returncode:
        return None, f"initdb failed: {init.stderr.strip().splitlines()[-1:]}"
    start = run(
        f"{bin_dir}/pg_ctl -D {data} -o '-k {tmp_root} -h 127.0.0.1 -p {port}' "
        f"-l {tmp_root}/log -w start"
    )
    if start.returncode:
        return None, f"pg_ctl start failed: {start.stderr.strip().splitlines()[-1:]}"

    def stop() -> None:
        run(f"{bin_dir}/pg_ctl -D {data} -m fast stop")
        shutil.rmtree(tmp_root, ignore_errors=True)

    def pause() -> None:  # the server goes away, its data stays
        run(f"{bin_dir}/pg_ctl -D {data} -m fast stop")

    def restart() -> None:
        run(
            f"{bin_dir}/pg_ctl -D {data} -o '-k {tmp_root} -h 127.0.0.1 -p {port}' "
            f"-l {tmp_root}/log -w start"
        )

    stop.pause, stop.restart = pause, restart
    return f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres", stop


@pytest.fixture
def own_postgres():
    """A PostgreSQL server of this test alone, which it may stop and restart: (url, control),
    ``control.pause()`` stops the server, ``control.restart()`` brings it back."""
    url, control = _start_throwaway_postgres()
    if url is None:
        pytest.skip(f"PostgreSQL outage tests skipped: {control}")
    yield url, control
    control()


@pytest.fixture(scope="session")
def postgres_server():
    """URL of a PostgreSQL server: CI's ($QDLAB_TEST_POSTGRES_URL) or one started here."""
    import os

    url = os.environ.get("QDLAB_TEST_POSTGRES_URL")
    stop = None
    if not url:
        url, stop = _start_throwaway_postgres()
        if url is None:
            pytest.skip(f"PostgreSQL tests skipped: {stop}")
    yield url
    if stop is not None:
        stop()


@pytest.fixture
def postgres_url(postgres_server):
    """A fresh, empty database on the test server (dropped afterwards)."""
    import uuid

    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"qdlab_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(postgres_server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield make_url(postgres_server).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    """Each database test runs on a SQLite file and on a real PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'qdlab.db'}"
    return request.getfixturevalue("postgres_url")


def _free_port() -> int:
    """A port free for both TCP and UDP on loopback (Channel Access uses both)."""
    import socket

    for _ in range(50):
        with socket.socket() as tcp, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            tcp.bind(("127.0.0.1", 0))
            port = tcp.getsockname()[1]
            try:
                udp.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port for both TCP and UDP on loopback")


def epics_loopback_env(port: int, more: Sequence[int] = ()) -> dict[str, str]:
    """Channel Access on loopback only, on ``port``, for IOCs and clients alike; clients also
    search the ports ``more``, where other IOCs may serve (a unicast search reaches one server
    per port only)."""
    return {
        "EPICS_CA_AUTO_ADDR_LIST": "NO",
        "EPICS_CA_ADDR_LIST": " ".join(["127.0.0.1", *(f"127.0.0.1:{p}" for p in more)]),
        "EPICS_CA_SERVER_PORT": str(port),
        "EPICS_CAS_SERVER_PORT": str(port),
        "EPICS_CAS_INTF_ADDR_LIST": "127.0.0.1",
        "EPICS_CAS_AUTO_BEACON_ADDR_LIST": "NO",
        "EPICS_CAS_BEACON_ADDR_LIST": "127.0.0.1",
        "CAPROTO_CLIENT_RETRY_RETIRED_SEARCHES_INTERVAL_SEC": RETIRED_SEARCH_S,  # subprocesses
    }


class _ServerProcess:
    """A server the tests start as a process: ready once :meth:`_probe` answers."""

    what = "server"
    proc: subprocess.Popen | None = None

    def _probe(self, timeout: float) -> None:
        raise NotImplementedError

    def _launch(self, args: list[str], env: dict[str, str] | None, timeout: float) -> None:
        self.proc = subprocess.Popen(
            args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            env=env,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.what} exited: {self.proc.stderr.read()[-500:]}")
            try:
                self._probe(0.5)
                return
            except Exception:  # not serving yet
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.what} did not answer within {timeout:g} s")

    def kill(self) -> None:
        """kill -9, as a crash would."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def _connect_all(self, prefix: str, suffixes: list[str], timeout: float) -> None:
        """Connect this process to an IOC's PVs, however long a loaded machine takes to answer
        the searches (the channels are then the ones a lab's devices reuse, and a test's 5 s
        connection timeout measures the lab, not the machine's load)."""
        from devices.config import EpicsConfig
        from devices.epics import PVs

        pvs = PVs(EpicsConfig(prefix=prefix, connection_timeout_s=timeout))
        missing = pvs.unconnected(suffixes)
        if missing:
            self.stop()
            raise RuntimeError(f"{self.what}: {len(missing)} PVs did not connect: {missing[:5]}")


class IOC(_ServerProcess):
    """``qdlab ioc`` serving the simulated lab on loopback, on this session's CA port."""

    what = "qdlab ioc"

    def __init__(self, speedup: str = "max", lab: str = "configs/labs/sim.yaml") -> None:
        self.speedup, self.lab = speedup, lab

    def _probe(self, timeout: float) -> None:
        from caproto.sync.client import read

        read("QD:CLOCK", timeout=timeout, repeater=False)

    def start(self, timeout: float = 30.0) -> IOC:
        args = [sys.executable, "-m", "orchestrator", "ioc", "--lab", self.lab,
                "--speedup", self.speedup]  # fmt: skip
        from devices.config import load_lab_config
        from devices.epics import pv_suffixes

        self._launch(args, None, timeout)
        config = load_lab_config(ROOT / self.lab).model_copy(update={"backend": "epics"})
        self._connect_all("QD:", pv_suffixes(config), timeout)
        return self


class SilaServerProcess(_ServerProcess):
    """``qdlab sila serve`` serving the simulated lab on a free loopback port."""

    what = "qdlab sila serve"

    def __init__(
        self, speedup: str = "max", lab: str = "configs/labs/sim.yaml", ca: Path | None = None
    ) -> None:
        self.speedup, self.lab, self.port = speedup, lab, _free_port()
        self.ca = ca
        """Where a TLS server (self-signed) writes the certificate to trust; None: plain."""

    def _probe(self, timeout: float) -> None:
        import grpc

        target = f"127.0.0.1:{self.port}"
        if self.ca is None:
            channel = grpc.insecure_channel(target)
        else:
            if not self.ca.exists():  # written once the server is up
                raise RuntimeError("not serving yet")
            roots = grpc.ssl_channel_credentials(root_certificates=self.ca.read_bytes())
            channel = grpc.secure_channel(target, roots)
        with channel:
            grpc.channel_ready_future(channel).result(timeout=timeout)

    def start(self, timeout: float = 30.0) -> SilaServerProcess:
        args = [sys.executable, "-m", "orchestrator", "sila", "serve", "--lab", self.lab,
                "--port", str(self.port), "--speedup", self.speedup]  # fmt: skip
        if self.ca is not None:
            args += ["--tls", "--ca-out", str(self.ca)]
        self._launch(args, None, timeout)
        return self

    def lab_config(self, tmp: Path, **sila2: object) -> Path:
        """A lab config of the SiLA 2 lab (configs/labs/sim-sila2.yaml) pointed at this server."""
        import yaml

        path = tmp / f"sila-{self.port}.yaml"
        base = str(ROOT / "configs" / "labs" / "sim-sila2.yaml")
        path.write_text(yaml.safe_dump({"base": base, "sila2": {"port": self.port, **sila2}}))
        return path


@pytest.fixture
def sila_server():
    """A fresh ``qdlab sila serve`` at maximum speed-up (the test may kill and restart it)."""
    server = SilaServerProcess().start()
    yield server
    server.stop()


class OrdinaryIOC(_ServerProcess):
    """``python -m tests.iocs.<module> --prefix <prefix>`` on a CA port of its own, as another
    IOC of the lab (its clients search there too: :func:`epics_ports`)."""

    def __init__(self, module: str, port: int, pvs: tuple[str, ...]) -> None:
        self.module, self.port, self.pvs = module, port, pvs
        self.probe = pvs[0]
        self.what = module
        self.prefix = f"T{uuid.uuid4().hex[:6]}:"  # no clash with another test's IOC

    def _probe(self, timeout: float) -> None:
        self.get(self.probe, timeout=timeout)

    def start(self, timeout: float = 30.0) -> OrdinaryIOC:
        port = str(self.port)
        env = {**os.environ, "EPICS_CA_SERVER_PORT": port, "EPICS_CAS_SERVER_PORT": port}
        self._launch(
            [sys.executable, "-m", f"tests.iocs.{self.module}", "--prefix", self.prefix],
            env, timeout,
        )  # fmt: skip
        self._connect_all(self.prefix, list(self.pvs), timeout)
        return self

    def pv(self, name: str) -> str:
        return self.prefix + name

    def put(self, name: str, value: object) -> None:
        from caproto.sync.client import write

        # generous: the test's own timeouts are on the lab, not on this helper's searches
        write(self.pv(name), value, notify=True, timeout=30, repeater=False)

    def get(self, name: str, timeout: float = 30.0) -> object:
        from caproto.sync.client import read

        return read(self.pv(name), timeout=timeout, repeater=False).data[0]


@pytest.fixture(scope="session")
def epics_ports() -> Iterator[list[int]]:
    """This session's Channel Access ports on loopback: ``qdlab ioc`` serves on the first, the
    tests' ordinary IOCs (tests/iocs, :func:`ordinary_iocs`) on the others; the environment
    points the IOCs the tests start and every client (this process's and subprocesses') at
    them, and only there. The ordinary IOCs serve all session long: a client's search sent to a
    loopback port where nothing listens comes back as an ICMP error that ends its sending to
    the other ports too."""
    import os

    ports = [_free_port() for _ in range(3)]
    os.environ.update(epics_loopback_env(ports[0], ports[1:]))
    hotplate = ("TEMP:RBV", "TEMP:SP", "RATE", "LOCK")
    pump = ("RATE.RBV", "RATE", "RATE.DMOV", "RATE.STOP")
    iocs = {"hotplate": OrdinaryIOC("hotplate", ports[1], hotplate),
            "syringe_pump": OrdinaryIOC("syringe_pump", ports[2], pump)}  # fmt: skip
    try:
        for server in iocs.values():
            server.start()
        _ORDINARY_IOCS.update(iocs)
        yield ports
    finally:
        for server in iocs.values():
            server.stop()


_ORDINARY_IOCS: dict[str, OrdinaryIOC] = {}


@pytest.fixture(scope="session")
def ordinary_iocs(epics_ports: list[int]) -> dict[str, OrdinaryIOC]:
    """The session's ordinary IOCs by module name (``hotplate``, ``syringe_pump``)."""
    return _ORDINARY_IOCS


@pytest.fixture(scope="session")
def epics_port(epics_ports: list[int]) -> int:
    """The port ``qdlab ioc`` serves on (see :func:`epics_ports`)."""
    return epics_ports[0]


@pytest.fixture
def ioc(epics_port):
    """A fresh ``qdlab ioc`` at maximum speed-up (the test may kill and restart it)."""
    server = IOC().start()
    yield server
    server.stop()


class RedisServer:
    """A throwaway ``redis-server`` on a free loopback port; nothing saved to disk unless
    ``persist`` (then a restart reads back what it held when it stopped, as a lab's Redis
    does)."""

    def __init__(self, tmp: Path, persist: bool = False) -> None:
        self.tmp, self.port, self.persist = tmp, _free_port(), persist
        self.proc: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> RedisServer:
        import shutil
        import socket
        import time

        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("redis-server is not installed here (the Makefile installs it with apt)")
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "3600 1" if self.persist else "",
             "--appendonly", "no", "--dir", str(self.tmp)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        pytest.skip(f"redis-server did not start on port {self.port} within {timeout:g} s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


@pytest.fixture
def redis_server(tmp_path_factory):
    """A real Redis of the test's own (it starts in milliseconds) for its queue servers."""
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


class WorkcellServer:
    """``qdlab workcell serve`` (an RE Manager and its worker) on free loopback ports."""

    def __init__(
        self,
        name: str,
        db_url: str,
        redis: str,
        speedup: str = "max",
        api_key: str | None = None,
        lab: str = "configs/labs/sim.yaml",
        tiled: str | None = None,
        zmq_key_file: str | None = None,
    ) -> None:
        self.name, self.db_url, self.redis, self.speedup = name, db_url, redis, speedup
        self.zmq_key_file = zmq_key_file
        self.lab, self.tiled = lab, tiled
        self.zmq = f"tcp://127.0.0.1:{_free_port()}"
        self.zmq_info = f"tcp://127.0.0.1:{_free_port()}"
        self.api_key = api_key  # given: also serve REST (bluesky-httpserver) with this key
        self.http = f"http://127.0.0.1:{_free_port()}" if api_key else None
        self.proc: subprocess.Popen | None = None
        self.log = ""

    def start(self, timeout: float = 120.0) -> WorkcellServer:
        import os
        import tempfile
        import time

        # read while the server writes to it; closed by stop()
        self._log = tempfile.NamedTemporaryFile("w+", prefix=f"workcell-{self.name}-")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "orchestrator", "workcell", "serve",
             "--lab", self.lab, "--db", self.db_url, "--name", self.name,
             "--redis", self.redis, "--zmq", self.zmq, "--zmq-info", self.zmq_info,
             "--speedup", self.speedup,
             *(["--http", self.http.rsplit(":", 1)[1]] if self.http else []),
             *(["--tiled", self.tiled] if self.tiled else []),
             *(["--zmq-key-file", self.zmq_key_file] if self.zmq_key_file else [])],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=self._log, text=True,
            env={**os.environ, "QSERVER_HTTP_SERVER_SINGLE_USER_API_KEY": self.api_key or ""},
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._log.seek(0)
            self.log = self._log.read()
            if "ready" in self.log:
                return self
            if self.proc.poll() is not None:
                raise RuntimeError(f"workcell {self.name} exited: {self.log[-800:]}")
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"workcell {self.name} not ready within {timeout:g} s: {self.log}")

    def read_log(self) -> str:
        """What the server wrote to stderr so far."""
        self._log.seek(0)
        self.log = self._log.read()
        return self.log

    def worker_pid(self) -> int | None:
        """The RE Worker process (the one under the manager that has the database open)."""
        import os

        parents = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    stat = Path(f"/proc/{entry}/stat").read_text()
                except OSError:
                    continue
                parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
        found, todo = [], [self.proc.pid]
        while todo:
            pid = todo.pop()
            kids = [p for p, parent in parents.items() if parent == pid]
            found += kids
            todo += kids
        target = self.db_url.removeprefix("sqlite:///")
        for pid in found:
            try:
                fds = os.listdir(f"/proc/{pid}/fd")
            except OSError:
                continue
            for fd in fds:
                try:
                    if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                        return pid
                except OSError:
                    continue
        return None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        if self.proc is not None:
            self._log.close()


TILED_SERVER_PYTHON = ROOT / ".venv" / "tiled-server" / "bin" / "python"


class TiledServer(_ServerProcess):
    """``tiled serve catalog --temp`` on a loopback port, with an API key; it can be stopped
    and started again on the same port and key (a catalog that went away and came back, empty
    as ``--temp`` is). Its log is a file (it writes much)."""

    what = "tiled serve"

    def __init__(self, workdir: Path) -> None:
        import secrets

        self.workdir, self.key, self.port = workdir, secrets.token_hex(16), _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> TiledServer:
        import urllib.request

        log = (self.workdir / "tiled.log").open("a")
        self.proc = subprocess.Popen(
            [str(TILED_SERVER_PYTHON), "-m", "tiled", "serve", "catalog", "--temp",
             "--api-key", self.key, "--host", "127.0.0.1", "--port", str(self.port)],
            stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                log_text = (self.workdir / "tiled.log").read_text()
                pytest.fail(f"tiled serve exited: {log_text[-500:]}")
            try:
                urllib.request.urlopen(f"{self.url}/api/v1/", timeout=1)
                return self
            except OSError:
                time.sleep(0.2)
        self.stop()
        pytest.fail("tiled serve did not answer within 60 s")


@pytest.fixture
def tiled(tmp_path, monkeypatch):
    """A real ``tiled serve catalog --temp`` on loopback (its own venv, made by the Makefile),
    its API key in ``$TILED_API_KEY`` for the clients; yields the :class:`TiledServer`."""
    if not TILED_SERVER_PYTHON.exists():
        pytest.skip("the tiled server is not installed here (`make install` puts it in .venv)")
    server = TiledServer(tmp_path).start()
    monkeypatch.setenv("TILED_API_KEY", server.key)
    yield server
    server.stop()


@pytest.fixture
def tiled_server(tiled):
    """The URL of :func:`tiled`'s server."""
    return tiled.url


# Debian's chromium, headless, as root, on a machine with no outside network (Playwright's own
# browser download is not used): no sandbox, GPU, QUIC or background connections
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def browser():
    """Debian's Chromium driven by Playwright (skipped, saying why, where it is missing)."""
    import shutil

    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed (the Makefile installs it with apt)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        engine = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield engine
        engine.close()

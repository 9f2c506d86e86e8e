"""Several server processes, one PostGIS database, one Redis: live events cross process boundaries.

Each test starts real OS processes with the production command
(``gunicorn -k gevent -w 1 'server:create_app()'``, ``JAUAP_ASYNC_MODE=gevent``) and a private
``redis-server`` on a free loopback port, so the Socket.IO pub/sub channel is never shared with
another test run or a developer's Redis. Everything is stopped by fixture finalizers, also on failure.

PostGIS only: SpatiaLite is a file for one process, the embedded default; several processes
mean a server database. ``JAUAP_TEST_WORKER_CLASS=gthread`` runs the same tests on threaded workers.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from sqlalchemy import select

from server.config import REPO_ROOT
from server.extensions import db
from server.models import Appeal, Sector
from tests.conftest import APPEAL, PASSWORD, make_app, make_staff
from tests.realtime_server import Listener

# Only the PostGIS half of the session-wide ``backend`` fixture (under CI=true it fails without PostGIS).
pytestmark = [pytest.mark.postgis, pytest.mark.parametrize("backend", ["postgis"], indirect=True)]

DELIVERY_S = 2.0  # the goal: an event caused on one process reaches clients of another within 2 s
SECRET = "multiprocess-test-secret-0123456789-abcdefghij"
WORKER_CLASS = os.environ.get("JAUAP_TEST_WORKER_CLASS", "gevent")  # gevent (production) | gthread
START_TIMEOUT_S = 30.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


class RedisServer:
    """A private ``redis-server`` on a free loopback port, no persistence."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.log = workdir / f"redis-{self.port}.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> RedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("redis-server is not installed")
        cmd = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
               "--dir", str(self.workdir), "--logfile", str(self.log)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}:\n{_tail(self.log)}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return self
            time.sleep(0.05)
        raise RuntimeError(f"redis-server did not answer PING on port {self.port}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)


class ServerProcess:
    """One production-style Jauap process: gunicorn, one worker, on a free loopback port."""

    def __init__(self, name: str, database_url: str, redis_url: str, workdir: Path):
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = workdir / f"server-{name}.log"
        self.instance = workdir / f"instance-{name}"
        self.database_url = database_url
        self.redis_url = redis_url
        self.proc: subprocess.Popen | None = None

    def command(self) -> list[str]:
        gunicorn = Path(sys.executable).with_name("gunicorn")
        cmd = [str(gunicorn) if gunicorn.exists() else "gunicorn", "-w", "1", "--bind", f"127.0.0.1:{self.port}",
               "--graceful-timeout", "3", "--log-level", "warning"]
        if WORKER_CLASS == "gevent":
            cmd += ["-k", "gevent"]
        else:
            cmd += ["-k", "gthread", "--threads", "8"]
        return [*cmd, "server:create_app()"]

    def start(self) -> ServerProcess:
        env = {
            **os.environ,
            "DATABASE_URL": self.database_url,
            "JAUAP_REDIS_URL": self.redis_url,
            "JAUAP_ASYNC_MODE": "gevent" if WORKER_CLASS == "gevent" else "threading",
            "JAUAP_SECRET_KEY": SECRET,
            "JAUAP_INSTANCE_PATH": str(self.instance),
            "JAUAP_CONNECTION_SWEEP_S": "1",
        }
        with open(self.log, "wb") as out:
            # Own session, so stop() can end the master and its worker together.
            self.proc = subprocess.Popen(self.command(), cwd=REPO_ROOT, env=env, stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server {self.name} exited with {self.proc.returncode}:\n{_tail(self.log)}")
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return self
            time.sleep(0.1)
        raise RuntimeError(f"server {self.name} not ready in {START_TIMEOUT_S:.0f} s:\n{_tail(self.log)}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)

    def token(self, username: str) -> str:
        res = requests.post(f"{self.url}/api/v1/auth/token", json={"username": username, "password": PASSWORD},
                            timeout=10)
        assert res.status_code == 200, res.text
        return res.json()["token"]

    def post_appeal(self, token: str, **overrides) -> requests.Response:
        return requests.post(f"{self.url}/api/v1/appeals", json={**APPEAL, **overrides},
                             headers={"Authorization": f"Bearer {token}"}, timeout=30)


@pytest.fixture
def database(backend, tmp_path):
    """A fresh migrated PostGIS copy with an operator, a dispatcher and a field worker per unit.

    Returns (url, {sector code: unit code}, {sector code: (lon, lat) inside it}).
    """
    from geoalchemy2.shape import to_shape

    url = backend.copy("mp")
    app = make_app(url, tmp_path / "instance-setup")
    with app.app_context():
        make_staff("operator", username="op")
        make_staff("dispatcher", username="disp")
        for n in range(1, 7):
            make_staff("field_staff", unit=f"U{n}", username=f"f{n}")
        units, points = {}, {}
        for sector in db.session.scalars(select(Sector)):
            units[sector.code] = sector.unit.code
            p = to_shape(sector.geom).representative_point()
            points[sector.code] = (p.x, p.y)
        db.session.remove()
        db.engine.dispose()
    return url, units, points


@pytest.fixture
def redis_server(tmp_path):
    server = RedisServer(tmp_path).start()
    yield server
    server.stop()


@pytest.fixture
def start_servers(database, redis_server, tmp_path):
    """``start_servers("a", "b")`` -> the started processes; all are stopped at the end, also on failure."""
    started: list[ServerProcess] = []

    def start(*names: str) -> list[ServerProcess]:
        out = []
        for name in names:
            proc = ServerProcess(name, database[0], redis_server.url, tmp_path)
            started.append(proc)
            out.append(proc.start())
        return out

    yield start
    for proc in started:
        proc.stop()


@pytest.fixture
def listeners():
    """Socket.IO clients to close at the end."""
    opened: list[Listener] = []

    def connect(url: str, token: str) -> Listener:
        listener = Listener(url, token)
        opened.append(listener)
        return listener.connect()

    yield connect
    for listener in opened:
        listener.close()


def _received_within(listener: Listener, wanted: set[tuple[int, str]], since: float, timeout: float) -> float | None:
    """Seconds from ``since`` until ``listener`` holds every (appeal id, kind) in ``wanted``, or None."""

    def have(events):
        return wanted <= {(p["appeal"]["id"], kind) for kind, p in events}

    if listener.wait_for(have, timeout=max(0.0, since + timeout - time.monotonic())):
        return time.monotonic() - since
    return None


def test_events_caused_on_one_process_reach_clients_of_another_within_2s(database, start_servers, listeners):
    _url, sector_units, points = database
    a, b = start_servers("a", "b")
    op = b.token("op")
    centre_a = listeners(a.url, a.token("disp"))
    field_a = {n: listeners(a.url, a.token(f"f{n}")) for n in range(1, 7)}
    # the other direction too: a client of B hears what was posted to A
    centre_b = listeners(b.url, b.token("disp"))

    sent: dict[int, str] = {}
    for code in sorted(points):
        lon, lat = points[code]
        res = b.post_appeal(op, lon=lon, lat=lat, description=f"multi-process delivery to {code}")
        posted = time.monotonic()
        assert res.status_code == 201, res.text
        assert res.json()["sector"]["code"] == code
        appeal_id = res.json()["id"]
        sent[appeal_id] = sector_units[code]
        wanted = {(appeal_id, "appeal.registered"), (appeal_id, "appeal.routed")}
        took = _received_within(centre_a, wanted, posted, DELIVERY_S)
        assert took is not None, f"dispatcher on A missed {wanted} from B within {DELIVERY_S} s"
        unit = sector_units[code]
        took = _received_within(field_a[int(unit[1:])], wanted, posted, DELIVERY_S)
        assert took is not None, f"field worker of {unit} on A missed {wanted} from B within {DELIVERY_S} s"

    res = a.post_appeal(a.token("op"), description="posted to A, heard on B")
    posted = time.monotonic()
    assert res.status_code == 201, res.text
    assert _received_within(centre_b, {(res.json()["id"], "appeal.registered")}, posted, DELIVERY_S) is not None
    sent[res.json()["id"]] = sector_units[res.json()["sector"]["code"]]

    assert centre_a.wait_for(lambda ev: {p["appeal"]["id"] for _k, p in ev} >= set(sent), timeout=DELIVERY_S)
    time.sleep(0.3)  # anything misrouted would have arrived by now
    assert centre_a.appeal_ids() == set(sent)
    assert centre_b.appeal_ids() == set(sent)
    for n, listener in field_a.items():
        mine = {appeal_id for appeal_id, unit in sent.items() if unit == f"U{n}"}
        assert listener.appeal_ids() == mine, f"field worker of U{n} saw another unit's events"


def test_losing_redis_degrades_realtime_only(database, redis_server, start_servers, listeners, tmp_path):
    url, _units, _points = database
    a, b = start_servers("a", "b")
    op = b.token("op")
    centre_a = listeners(a.url, a.token("disp"))
    before = b.post_appeal(op, description="before Redis stops")
    assert before.status_code == 201
    assert centre_a.wait_for(lambda ev: any(p["appeal"]["id"] == before.json()["id"] for _k, p in ev), DELIVERY_S)

    redis_server.stop()
    started = time.monotonic()
    during = [b.post_appeal(op, description=f"while Redis is down {i}") for i in range(3)]
    elapsed = time.monotonic() - started
    assert [r.status_code for r in during] == [201, 201, 201], [r.text[:300] for r in during]
    assert elapsed < 10, f"intake slowed to {elapsed:.1f} s for 3 appeals without Redis"
    ids = [r.json()["id"] for r in during]
    # stored, and readable from the other process
    disp_headers = {"Authorization": f"Bearer {a.token('disp')}"}
    for appeal_id in ids:
        got = requests.get(f"{a.url}/api/v1/appeals/{appeal_id}", headers=disp_headers, timeout=10)
        assert got.status_code == 200
    app = make_app(url, tmp_path / "instance-check")
    with app.app_context():
        stored = set(db.session.scalars(select(Appeal.id).where(Appeal.id.in_(ids))))
        db.session.remove()
        db.engine.dispose()
    assert stored == set(ids)
    assert requests.get(f"{a.url}/readyz", timeout=5).status_code == 200
    assert requests.get(f"{b.url}/readyz", timeout=5).status_code == 200
    # nothing crossed while the queue was down (the clients catch up with GET /api/v1/events)
    assert not set(ids) & centre_a.appeal_ids()

    # Redis back: each process's subscriber reconnects by itself (python-socketio retries after 1, 2, 4 ... s)
    redis_server.start()
    deadline = time.monotonic() + 20
    recovered = False
    while not recovered and time.monotonic() < deadline:
        res = b.post_appeal(op, description="after Redis is back")
        assert res.status_code == 201
        recovered = centre_a.wait_for(lambda ev, i=res.json()["id"]: any(p["appeal"]["id"] == i for _k, p in ev),
                                      timeout=1.0)
    assert recovered, "live events did not resume within 20 s of Redis coming back"


def test_a_frozen_redis_does_not_hang_intake(database, redis_server, start_servers):
    _url, _units, _points = database
    (b,) = start_servers("b")
    op = b.token("op")
    assert b.post_appeal(op).status_code == 201
    os.kill(redis_server.proc.pid, signal.SIGSTOP)  # frozen, as behind a network partition
    try:
        started = time.monotonic()
        with contextlib.suppress(requests.Timeout):
            res = requests.post(f"{b.url}/api/v1/appeals", json={**APPEAL, "description": "Redis frozen"},
                                headers={"Authorization": f"Bearer {op}"}, timeout=8)
            assert res.status_code == 201
        assert time.monotonic() - started < 8, "POST /api/v1/appeals hung on a frozen Redis"
    finally:
        os.kill(redis_server.proc.pid, signal.SIGCONT)

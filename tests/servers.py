"""Real server processes for tests: a private ``redis-server`` and Jauap started as in production.

Shared by ``tests/test_multiprocess.py`` (several gunicorn processes, one Redis) and
``tests/test_faults.py`` / ``bench/faults.py`` (``kill -9`` and restart, a database behind a proxy).

* :class:`ServerProcess` - ``gunicorn -k gevent -w 1 'server:create_app()'`` (the production command of
  the README) on a free loopback port, or the embedded default ``flask serve`` (``embedded=True``,
  SQLite + SpatiaLite, one process with the outbox worker inside). Each runs in its own session so
  :meth:`ServerProcess.stop` / :meth:`ServerProcess.kill` end the master and its worker together.
  Restarting the same object reuses its port and instance folder (keys, photos).
* :class:`RedisServer` - a private ``redis-server`` on a free port, no persistence.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from bench._servers import RedisMissing
from bench._servers import RedisServer as _RedisServer
from server.config import REPO_ROOT
from tests.conftest import APPEAL, PASSWORD

SECRET = "multiprocess-test-secret-0123456789-abcdefghij"
WORKER_CLASS = os.environ.get("JAUAP_TEST_WORKER_CLASS", "gevent")  # gevent (production) | gthread
START_TIMEOUT_S = 30.0


def free_port() -> int:
    """A TCP port nothing listens on right now (loopback)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tail(path: Path, lines: int = 40) -> str:
    """The last ``lines`` lines of a log file ('' if it cannot be read)."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def stop_group(proc: subprocess.Popen | None) -> None:
    """SIGTERM a server started with ``start_new_session=True`` and its children; SIGKILL after 10 s."""
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)


class RedisServer(_RedisServer):
    """``bench/_servers.py``'s private ``redis-server``; the test is skipped where it is not installed."""

    def start(self) -> RedisServer:
        """Start it, or skip the test without the binary."""
        try:
            return super().start()
        except RedisMissing:
            pytest.skip("redis-server is not installed")


class ServerProcess:
    """One Jauap process on a free loopback port: production gunicorn (one worker), or ``flask serve``."""

    def __init__(self, name: str, database_url: str, redis_url: str | None, workdir: Path, *,
                 embedded: bool = False, extra_env: dict[str, str] | None = None):
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = workdir / f"server-{name}.log"
        self.instance = workdir / f"instance-{name}"
        self.database_url = database_url
        self.redis_url = redis_url
        self.embedded = embedded
        self.extra_env = dict(extra_env or {})
        self.proc: subprocess.Popen | None = None

    def command(self) -> list[str]:
        if self.embedded:
            flask = Path(sys.executable).with_name("flask")
            return [str(flask) if flask.exists() else "flask", "serve", "--host", "127.0.0.1",
                    "--port", str(self.port)]
        gunicorn = Path(sys.executable).with_name("gunicorn")
        cmd = [str(gunicorn) if gunicorn.exists() else "gunicorn", "-w", "1", "--bind", f"127.0.0.1:{self.port}",
               "--graceful-timeout", "3", "--log-level", "warning"]
        if WORKER_CLASS == "gevent":
            cmd += ["-k", "gevent"]
        else:
            cmd += ["-k", "gthread", "--threads", "8"]
        return [*cmd, "server:create_app()"]

    def environment(self) -> dict[str, str]:
        env = {
            **os.environ,
            "DATABASE_URL": self.database_url,
            "JAUAP_ASYNC_MODE": "gevent" if WORKER_CLASS == "gevent" and not self.embedded else "threading",
            "JAUAP_SECRET_KEY": SECRET,
            "JAUAP_INSTANCE_PATH": str(self.instance),
            "JAUAP_CONNECTION_SWEEP_S": "1",
            "FLASK_APP": "server:create_app",
        }
        env.pop("JAUAP_REDIS_URL", None)
        if self.redis_url:
            env["JAUAP_REDIS_URL"] = self.redis_url
        env.update(self.extra_env)
        return env

    def start(self, timeout: float = START_TIMEOUT_S) -> ServerProcess:
        with open(self.log, "ab") as out:
            # Own session, so stop() can end the master and its worker together.
            self.proc = subprocess.Popen(self.command(), cwd=REPO_ROOT, env=self.environment(), stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server {self.name} exited with {self.proc.returncode}:\n{tail(self.log)}")
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return self
            time.sleep(0.05)
        raise RuntimeError(f"server {self.name} not ready in {timeout:.0f} s:\n{tail(self.log)}")

    def kill(self) -> None:
        """``kill -9`` every process of the server (gunicorn's master and worker) at once; wait for the end."""
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        stop_group(self.proc)

    def token(self, username: str, password: str = PASSWORD) -> str:
        res = requests.post(f"{self.url}/api/v1/auth/token", json={"username": username, "password": password},
                            timeout=10)
        assert res.status_code == 200, res.text
        return res.json()["token"]

    def post_appeal(self, token: str, **overrides) -> requests.Response:
        return requests.post(f"{self.url}/api/v1/appeals", json={**APPEAL, **overrides},
                             headers={"Authorization": f"Bearer {token}"}, timeout=30)

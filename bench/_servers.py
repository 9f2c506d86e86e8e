"""Starting and stopping the gunicorn server the benchmarks measure (shared by intake, outbox and fanout).

Each bench builds its own gunicorn options (worker class, threads, backlog...); what they share is here:
a private ``redis-server`` (:class:`RedisServer`, also used by the tests), the command's common part
(:func:`gunicorn_command`), the environment (:func:`server_env`), the start in its own session
(:func:`launch`), waiting for ``/readyz`` (:func:`wait_ready`) and the stop of the master and its
workers on every exit path (:func:`stop_server`). Stdlib only, loopback only.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
SECRET = "bench-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz"


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def gunicorn_command(app_spec: str, port: int, *options: str) -> list[str]:
    """``gunicorn <app_spec> --bind 127.0.0.1:<port> --log-level warning <options>`` (the venv's gunicorn first)."""
    gunicorn = Path(sys.executable).with_name("gunicorn")
    return [str(gunicorn) if gunicorn.exists() else "gunicorn", app_spec, "--bind", f"127.0.0.1:{port}",
            "--log-level", "warning", *options]


def server_env(dsn: str, instance: str, **extra: str) -> dict[str, str]:
    """This process's environment for the server: database, secret, instance folder, bench paths, ``extra``."""
    env = {
        **os.environ,
        "DATABASE_URL": dsn,
        "JAUAP_SECRET_KEY": SECRET,
        "JAUAP_INSTANCE_PATH": instance,
        # one bench operator posts far faster than a person: lift the per-account appeal limit
        "JAUAP_APPEAL_LIMITS": "10000000/60",
        # the repository first (bench/geo.py must not shadow the geo package), then bench/ for the bench apps
        "PYTHONPATH": os.pathsep.join([str(REPO), str(BENCH)]),
    }
    env.update(extra)
    return env


def launch(cmd: list[str], env: dict[str, str], log: Callable[[str], None], note: str = "") -> subprocess.Popen:
    """Start ``cmd`` in the repository, in its own session (a terminal Ctrl-C reaches only the bench)."""
    log("starting: " + " ".join(cmd[1:]) + note)
    return subprocess.Popen(cmd, cwd=REPO, env=env, start_new_session=True)


def wait_ready(proc: subprocess.Popen, port: int, timeout: float = 60.0) -> None:
    """Wait until ``GET /readyz`` answers 200; raise if the server exits first or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {proc.returncode} before it was ready")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/readyz")
            status = conn.getresponse().status
            conn.close()
            if status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"/readyz did not answer 200 within {timeout:.0f} s")


def stop_server(proc: subprocess.Popen | None, log: Callable[[str], None] | None = None,
                timeout: float = 15.0) -> None:
    """SIGTERM to the server's process group (master and workers); SIGKILL to it after ``timeout`` s."""
    if proc is None or proc.poll() is not None:
        return
    if log is not None:
        log("stopping gunicorn")
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)  # its own session: the master and its workers only
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        if log is not None:
            log(f"gunicorn did not stop in {timeout:g} s: killing its process group")
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)


def _interrupt(_signum, _frame):
    raise KeyboardInterrupt


def sigterm_as_interrupt() -> None:
    """SIGTERM to the bench behaves like Ctrl-C: unwind, so every ``finally`` stops what it started."""
    signal.signal(signal.SIGTERM, _interrupt)


class RedisMissing(RuntimeError):
    """``redis-server`` is not installed on this machine."""


class RedisServer:
    """A private ``redis-server`` on a free loopback port, no persistence (so nothing else shares its pub/sub)."""

    def __init__(self, workdir: str | Path):
        self.workdir = Path(workdir)
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.log = self.workdir / f"redis-{self.port}.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> RedisServer:
        """Start it and wait until it answers PING; :class:`RedisMissing` without the binary."""
        binary = shutil.which("redis-server")
        if binary is None:
            raise RedisMissing("redis-server is not installed")
        cmd = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
               "--dir", str(self.workdir), "--logfile", str(self.log)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}:\n{self.tail()}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return self
            time.sleep(0.05)
        raise RuntimeError(f"redis-server did not answer PING on port {self.port}")

    def tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines of its log ('' if it cannot be read)."""
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        """Terminate it (kill after 10 s); a no-op when it is not running."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)

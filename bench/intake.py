"""Intake throughput: ``POST /api/v1/appeals`` against ``GET /healthz`` on one real server.

Usage::

    python bench/intake.py [--seconds 20] [--concurrency 16] [--workers 2] [--floor]
                           [--dsn postgresql://postgres@127.0.0.1:5432/jauap_bench_intake]

What it does:

1. (Re)creates the bench database (drop, create, ``CREATE EXTENSION postgis``), runs the
   migrations to head, loads ``sectors_geojson/turkestan.geojson`` and creates an operator
   with a bearer token - in-process, exactly as the test-suite does.
2. Starts ONE gunicorn (``server:create_app()``) on a free loopback port and waits for
   ``/readyz``. The same server serves both phases.
3. Drives it from separate client processes (spawned, stdlib only), each connection a
   persistent HTTP/1.1 keep-alive socket with pre-built requests, bounded in time and count:
   phase A ``GET /healthz``, phase B ``POST /api/v1/appeals`` (random point inside the city,
   random type/topic, a unique ``Idempotency-Key`` per request). Each phase has a warm-up
   whose requests are not counted. Any non-2xx answer or socket failure is an error.
4. With ``--floor``: stops Jauap and serves the FLOOR app (``bench/_floor_intake.py``: its
   POST does one INSERT of a located row + COMMIT, nothing else) with the same gunicorn command,
   database, engine options and load, and measures the same two phases on it. No implementation
   of the endpoint does less per request, so the floor's own ``POST / healthz`` ratio bounds
   Jauap's; "Jauap appeals rps / floor POST rps" says how close Jauap comes to it.
5. Prints requests, rps, p50/p95/p99 latency and errors per phase, the ratio
   appeals_rps / healthz_rps against the goal (>= 0.5) with PASS/FAIL (and the floor's figures
   and ratios), and one final JSON line. gunicorn is shut down on every exit path (also
   Ctrl-C); the bench database is kept for inspection and recreated on the next run.

Server configuration: ``gthread``, 2 workers x 8 threads (one process per core):

* ``gthread`` keeps connections alive and overlaps one worker's database round-trips
  (psycopg releases the GIL while it waits on PostgreSQL), so one process per core is
  enough; the threads only have to cover the database waits.
* ``sync`` serves one request per process and closes the connection after each response
  (no keep-alive): every request pays a TCP connect and 16 clients need 16 processes.
  Measured: healthz about half of gthread's rps, appeals no better.
* ``gevent`` works (psycopg >= 3.1.14 detects gevent's monkey-patching by itself; the
  care needed is to never ``--preload`` the app, so psycopg is imported after the patch)
  and measured the same appeals rps as gthread, but with a much worse healthz tail
  (p99 about 200 ms against about 45 ms): greenlets are not preempted, so one CPU-heavy
  request delays every other request of that worker.
* ``4 x 4`` threads and a shorter GIL switch interval (``--switch-interval``) measured no
  better within the noise of this shared 2-core machine.

The per-request CPU figures (server workers, PostgreSQL backends, load generator, read from
/proc) are the ones to compare code changes by: they move much less than rps when other
work shares the machine. ``--client-procs`` sets the load processes (they share the cores
with the server and PostgreSQL, so they are few and cheap: about 0.08 ms CPU a request).
Exit status: 0 on PASS, 1 on FAIL (a missed ratio or any error), 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing as mp
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from array import array
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import _servers
from _servers import SECRET, free_port, gunicorn_command, launch, server_env, sigterm_as_interrupt, wait_ready

__all__ = ["SECRET", "free_port", "prepare_database", "recreate_database", "serve", "start_server", "stop_server",
           "wait_ready", "warn_if_busy"]

REPO = Path(__file__).resolve().parent.parent
SECTOR_FILE = REPO / "sectors_geojson" / "turkestan.geojson"
DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/jauap_bench_intake"
GOAL_RATIO = 0.5
TYPES = ("complaint", "incident", "proposal", "consultation")
TOPICS = ("roads", "water_supply", "heating", "waste_collection", "street_lighting")
LON_RANGE = (68.20, 68.30)
LAT_RANGE = (43.27, 43.33)
MAX_REQUESTS_PER_CONN = 2_000_000  # the count bound; the time bound normally ends a phase first


def log(msg: str) -> None:
    print(f"[intake-bench] {msg}", file=sys.stderr, flush=True)


# --- 1. database -------------------------------------------------------------------------


def _admin_dsn(dsn: str) -> tuple[str, str]:
    parts = urlsplit(dsn)
    name = parts.path.lstrip("/")
    if not name:
        raise SystemExit("--dsn must name a database")
    return urlunsplit(parts._replace(path="/postgres")), name


def recreate_database(dsn: str) -> None:
    import psycopg

    admin, name = _admin_dsn(dsn)
    with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        )
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    with psycopg.connect(dsn, autocommit=True, connect_timeout=5) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")


def prepare_database(dsn: str, instance: str) -> str:
    """Migrate, load sectors, create an operator; returns a bearer token."""
    from datetime import UTC, datetime

    from flask_migrate import upgrade

    from server import create_app
    from server.config import Config
    from server.extensions import db
    from server.models.types import utcnow
    from server.services.sectors import load_sector_set
    from server.services.staff import create_staff, issue_token

    app = create_app(Config(secret_key=SECRET, instance_path=instance, database_url=dsn))
    with app.app_context():
        log("migrating to head")
        upgrade(directory=str(REPO / "migrations"))
        log(f"loading sectors from {SECTOR_FILE.relative_to(REPO)}")
        load_sector_set(SECTOR_FILE, datetime(2026, 1, 5, tzinfo=UTC), loaded_by="bench")
        staff = create_staff("bench-operator", "operator", "bench-password-123", now=utcnow())
        token, _row = issue_token(staff, utcnow(), 24)
        db.session.commit()
        db.session.remove()
        db.engine.dispose()
    return token


# --- 2. server -----------------------------------------------------------------------------


def start_server(args, port: int, instance: str, app_spec: str = "server:create_app()") -> subprocess.Popen:
    """gunicorn serving ``app_spec`` (Jauap, or the floor app from ``bench/``) with the bench's settings."""
    cmd = gunicorn_command(
        app_spec, port,
        "--workers", str(args.workers),
        "--worker-class", args.worker_class,
        "--keep-alive", "30",
        "--backlog", "256",
        "--graceful-timeout", "10",
    )
    if args.switch_interval > 0:
        # A gunicorn config file in the throwaway instance folder: only a post_fork hook.
        conf = Path(instance) / "gunicorn_bench_conf.py"
        conf.write_text(
            "import sys\n\n\ndef post_fork(server, worker):\n"
            f"    sys.setswitchinterval({args.switch_interval!r})\n"
        )
        cmd += ["--config", str(conf)]
    if args.worker_class == "gthread":
        cmd += ["--threads", str(args.threads)]
    elif args.worker_class == "gevent":
        cmd += ["--worker-connections", str(max(64, args.concurrency * 2))]
    return launch(cmd, server_env(args.dsn, instance, FLASK_APP="server:create_app"), log)


def stop_server(proc: subprocess.Popen | None) -> None:
    """Stop gunicorn (master and workers), by SIGKILL if it has not stopped in 15 s; None or stopped: nothing."""
    _servers.stop_server(proc, log)


def serve(args, instance: str, app_spec: str = "server:create_app()") -> tuple[subprocess.Popen, int]:
    """:func:`start_server` on a free port and wait for ``/readyz``: (process, port)."""
    port = free_port()
    server = start_server(args, port, instance, app_spec)
    try:
        wait_ready(server, port)
    except BaseException:
        stop_server(server)
        raise
    log(f"server ready on 127.0.0.1:{port}")
    return server, port


# --- 3. load generator (runs in spawned processes: stdlib only) ---------------------------------


class Conn:
    """A minimal HTTP/1.1 keep-alive client: send pre-built bytes, read one response."""

    def __init__(self, port: int):
        self.port = port
        self.sock: socket.socket | None = None
        self.buf = b""

    def close(self) -> None:
        if self.sock is not None:
            with contextlib.suppress(OSError):
                self.sock.close()
        self.sock = None
        self.buf = b""

    def _connect(self) -> None:
        self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=30)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def _recv(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("server closed the connection")
        self.buf += chunk

    def request(self, raw: bytes) -> tuple[int, bytes]:
        if self.sock is None:
            self._connect()
        self.sock.sendall(raw)
        while b"\r\n\r\n" not in self.buf:
            self._recv()
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        length, close = 0, lines[0].startswith(b"HTTP/1.0")
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection":
                close = value.strip().lower() == b"close"
            elif name == b"transfer-encoding":
                raise ConnectionError("chunked responses are not supported by this client")
        while len(self.buf) < length:
            self._recv()
        body, self.buf = self.buf[:length], self.buf[length:]
        if close:
            self.close()
        return status, body


def _healthz_request(_rnd: random.Random) -> bytes:
    return b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


def _appeal_request(rnd: random.Random, token: str) -> bytes:
    kind = rnd.choice(TYPES)
    body = {
        "type": kind,
        "topic": rnd.choice(TOPICS),
        "description": f"Bench appeal {uuid.uuid4().hex[:8]}: water on the road near house {rnd.randint(1, 200)}.",
        "lat": round(rnd.uniform(*LAT_RANGE), 6),
        "lon": round(rnd.uniform(*LON_RANGE), 6),
        "accuracy_m": rnd.choice((5, 10, 25, 50)),
        "channel": "phone",
        "citizen": {"name": "Bench Citizen", "phone": f"+7 70{rnd.randint(0, 9)} {rnd.randint(0, 9_999_999):07d}",
                    "language": rnd.choice(("kk", "ru", "en"))},
    }
    payload = json.dumps(body, separators=(",", ":")).encode()
    head = (
        "POST /api/v1/appeals HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {token}\r\nIdempotency-Key: bench-{uuid.uuid4().hex}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
    )
    return head.encode() + payload


def _client_thread(port, phase, token, t_measure, t_end, seed, out):
    rnd = random.Random(seed)
    conn = Conn(port)
    lat = array("d")
    errors, samples, done = 0, [], 0
    try:
        while done < MAX_REQUESTS_PER_CONN:
            raw = _healthz_request(rnd) if phase == "healthz" else _appeal_request(rnd, token)
            t0 = time.monotonic()
            if t0 >= t_end:
                break
            try:
                status, body = conn.request(raw)
                ok = 200 <= status < 300
            except (OSError, ValueError, IndexError) as exc:
                conn.close()
                status, body, ok = 0, repr(exc).encode(), False
            t1 = time.monotonic()
            done += 1
            if t0 < t_measure or t1 > t_end:
                continue  # warm-up, or finished after the window: not counted
            if ok:
                lat.append((t1 - t0) * 1000.0)
            else:
                errors += 1
                if len(samples) < 3:
                    samples.append(f"{status}: {body[:200].decode(errors='replace')}")
    finally:
        conn.close()
    out.append((lat, errors, samples))


def client_process(port, phase, token, threads, t_start, warmup, seconds, seed):
    """One load process: ``threads`` keep-alive connections, results for the measured window."""
    import threading

    t_measure = t_start + warmup
    t_end = t_measure + seconds
    out: list = []
    workers = [
        threading.Thread(target=_client_thread, args=(port, phase, token, t_measure, t_end, seed * 1000 + i, out))
        for i in range(threads)
    ]
    while time.monotonic() < t_start:
        time.sleep(0.005)
    cpu = time.process_time()
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    cpu = time.process_time() - cpu
    lat = array("d")
    errors, samples = 0, []
    for part_lat, part_err, part_samples in out:
        lat.extend(part_lat)
        errors += part_err
        samples.extend(part_samples)
    return lat.tobytes(), errors, samples[:3], cpu


def run_phase(pool, args, port: int, phase: str, token: str, server_pid: int) -> dict:
    procs = max(1, min(args.client_procs, args.concurrency))
    per_proc = [args.concurrency // procs + (1 if i < args.concurrency % procs else 0) for i in range(procs)]
    t_start = time.monotonic() + 0.5
    log(f"phase {phase}: {args.warmup:g} s warm-up + {args.seconds:g} s, {args.concurrency} connections "
        f"in {procs} process(es)")
    jobs = [
        pool.apply_async(client_process, (port, phase, token, n, t_start, args.warmup, args.seconds, i + 1))
        for i, n in enumerate(per_proc)
    ]
    # Whole-machine CPU use over the measured window: near 100 % means CPU-bound, well below it
    # with high latency means requests wait on something else (a lock, the database).
    # The CPU the server's workers and the database's backends spent per request is robust to other
    # load on the machine (unlike rps), so it is the figure to compare configurations and code by.
    _sleep_until(t_start + args.warmup)
    cpu0, srv0, pg0 = cpu_sample(), proc_ticks(worker_pids(server_pid)), proc_ticks(backend_pids(args.dsn))
    _sleep_until(t_start + args.warmup + args.seconds)
    cpu1, srv1, pg1 = cpu_sample(), proc_ticks(srv0), proc_ticks(pg0)
    lat = array("d")
    errors, samples, client_cpu = 0, [], 0.0
    for job in jobs:
        raw, err, smp, cpu = job.get(timeout=args.warmup + args.seconds + 120)
        client_cpu += cpu
        part = array("d")
        part.frombytes(raw)
        lat.extend(part)
        errors += err
        samples.extend(smp)
    res = summarise(phase, sorted(lat), errors, args.seconds, samples)
    res["cpu_busy_pct"] = cpu_busy_pct(cpu0, cpu1)
    res["server_cpu_ms_per_req"] = cpu_ms_per_request(srv0, srv1, res["ok"] + errors)
    res["db_cpu_ms_per_req"] = cpu_ms_per_request(pg0, pg1, res["ok"] + errors)
    res["client_cpu_ms_per_req"] = round(client_cpu * 1000.0 / max(1, res["ok"] + errors), 3)
    return res


def worker_pids(master: int) -> list[int]:
    """The gunicorn master's worker processes (Linux /proc), or []."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == master:
            pids.append(int(stat.parent.name))
    return pids


def backend_pids(dsn: str) -> list[int]:
    """PostgreSQL backends connected to the bench database (local server only), or []."""
    import psycopg

    admin, name = _admin_dsn(dsn)
    try:
        with psycopg.connect(admin, autocommit=True, connect_timeout=3) as conn:
            rows = conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", (name,)).fetchall()
    except psycopg.Error:
        return []
    return [r[0] for r in rows]


def proc_ticks(pids) -> dict[int, int]:
    """utime + stime (clock ticks) of each pid still alive."""
    out = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        out[pid] = int(fields[11]) + int(fields[12])
    return out


def cpu_ms_per_request(before: dict[int, int], after: dict[int, int], requests: int) -> float | None:
    if not before or not requests:
        return None
    ticks = sum(after[pid] - before[pid] for pid in before if pid in after)
    return round(ticks * 1000.0 / os.sysconf("SC_CLK_TCK") / requests, 3)


def _sleep_until(deadline: float) -> None:
    delay = deadline - time.monotonic()
    if delay > 0:
        time.sleep(delay)


def cpu_sample() -> tuple[int, int] | None:
    """(busy, total) jiffies of the whole machine from /proc/stat, or None off Linux."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def cpu_busy_pct(before, after) -> float | None:
    if before is None or after is None or after[1] == before[1]:
        return None
    return round(100.0 * (after[0] - before[0]) / (after[1] - before[1]), 1)


def warn_if_busy() -> None:
    """Other work on the machine skews every figure: say so before measuring."""
    before = cpu_sample()
    time.sleep(1.0)
    busy = cpu_busy_pct(before, cpu_sample())
    if busy is not None and busy > 15:
        log(f"WARNING: the machine is already {busy:.0f} % busy before the bench starts; figures will be low")


def _pct(sorted_ms, q: float) -> float:
    if not sorted_ms:
        return float("nan")
    return sorted_ms[min(len(sorted_ms) - 1, max(0, round(q * len(sorted_ms)) - 1))]


def summarise(phase, sorted_ms, errors, seconds, samples) -> dict:
    return {
        "phase": phase,
        "requests": len(sorted_ms) + errors,
        "ok": len(sorted_ms),
        "rps": round(len(sorted_ms) / seconds, 1),
        "p50_ms": round(_pct(sorted_ms, 0.50), 2),
        "p95_ms": round(_pct(sorted_ms, 0.95), 2),
        "p99_ms": round(_pct(sorted_ms, 0.99), 2),
        "errors": errors,
        "error_samples": samples,
    }


def print_phase(res: dict) -> None:
    print(f"{res['phase']:>8}: {res['requests']:7d} requests  {res['rps']:8.1f} rps  "
          f"p50 {res['p50_ms']:7.2f} ms  p95 {res['p95_ms']:7.2f} ms  p99 {res['p99_ms']:7.2f} ms  "
          f"errors {res['errors']}", flush=True)
    print(f"{'':>8}  machine CPU busy {res['cpu_busy_pct']} %, CPU per request: server "
          f"{res['server_cpu_ms_per_req']} ms, PostgreSQL {res['db_cpu_ms_per_req']} ms, "
          f"load generator {res['client_cpu_ms_per_req']} ms", flush=True)
    for sample in res["error_samples"]:
        print(f"          error: {sample}", flush=True)


# --- main --------------------------------------------------------------------------------------


def run_floor(pool, args, instance: str, token: str) -> dict:
    """The floor app (one INSERT + commit per POST) on the same server settings, database and load."""
    from _floor_intake import create_table

    create_table(args.dsn)
    log("floor app: bench/_floor_intake.py")
    server, port = serve(args, instance, app_spec="_floor_intake:create_app()")
    out: dict = {"server": server}
    try:
        for phase in ("healthz", "appeals"):
            res = run_phase(pool, args, port, phase, token, server.pid)
            res["phase"] = f"floor {phase}"
            print_phase(res)
            out[phase] = res
    except BaseException:
        stop_server(server)  # the caller only learns of the floor server from a normal return
        raise
    return out


def print_floor(floor: dict, healthz: dict, appeals: dict) -> dict:
    """The floor's ratio next to Jauap's, and how close Jauap's POST comes to the floor's."""

    def div(a, b):
        return round(a / b, 3) if b else None

    f_h, f_a = floor["healthz"], floor["appeals"]
    figures = {
        "healthz": {k: v for k, v in f_h.items() if k not in ("phase", "error_samples")},
        "appeals": {k: v for k, v in f_a.items() if k not in ("phase", "error_samples")},
        "floor_ratio": div(f_a["rps"], f_h["rps"]),
        "jauap_ratio": div(appeals["rps"], healthz["rps"]),
        "jauap_appeals_over_floor_appeals": div(appeals["rps"], f_a["rps"]),
        "jauap_healthz_over_floor_healthz": div(healthz["rps"], f_h["rps"]),
        "floor_post_over_jauap_healthz": div(f_a["rps"], healthz["rps"]),
    }
    print(f"   floor: floor POST rps / floor healthz rps = {figures['floor_ratio']} (goal {GOAL_RATIO}: "
          f"{'reachable' if (figures['floor_ratio'] or 0) >= GOAL_RATIO else 'UNREACHABLE even for the floor'}); "
          f"Jauap {figures['jauap_ratio']}", flush=True)
    print(f"          Jauap appeals rps / floor POST rps = {figures['jauap_appeals_over_floor_appeals']}; "
          f"floor POST rps / Jauap healthz rps = {figures['floor_post_over_jauap_healthz']}; "
          f"Jauap healthz / floor healthz = {figures['jauap_healthz_over_floor_healthz']}", flush=True)
    return figures


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=20.0, help="measured seconds per phase (default 20)")
    p.add_argument("--warmup", type=float, default=3.0, help="warm-up seconds before each phase (default 3)")
    p.add_argument("--concurrency", type=int, default=16, help="keep-alive connections (default 16)")
    p.add_argument("--workers", type=int, default=2, help="gunicorn worker processes (default 2)")
    p.add_argument("--worker-class", default="gthread", choices=("gthread", "sync", "gevent"))
    p.add_argument("--threads", type=int, default=8, help="threads per gthread worker (default 8)")
    p.add_argument("--switch-interval", type=float, default=0.0,
                   help="sys.setswitchinterval() in each worker, seconds (default 0: keep Python's 0.005)")
    p.add_argument("--client-procs", type=int, default=2, help="load-generator processes (default 2)")
    p.add_argument("--dsn", default=DEFAULT_DSN, help=f"bench database, recreated (default {DEFAULT_DSN})")
    p.add_argument("--floor", action="store_true",
                   help="also measure the floor app (bench/_floor_intake.py) with the same server and load")
    return p.parse_args(argv)


def _ignore_sigint() -> None:
    # Load processes leave Ctrl-C to the main process, which stops them and gunicorn in order.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def main(argv=None) -> int:
    args = parse_args(argv)
    sys.path.insert(0, str(REPO))
    sigterm_as_interrupt()
    server = None
    with tempfile.TemporaryDirectory(prefix="jauap-bench-") as instance:
        try:
            warn_if_busy()
            log(f"recreating {args.dsn}")
            recreate_database(args.dsn)
            token = prepare_database(args.dsn, instance)
            server, port = serve(args, instance)
            ctx = mp.get_context("spawn")
            with ctx.Pool(max(1, min(args.client_procs, args.concurrency)), initializer=_ignore_sigint) as pool:
                healthz = run_phase(pool, args, port, "healthz", token, server.pid)
                print_phase(healthz)
                appeals = run_phase(pool, args, port, "appeals", token, server.pid)
                print_phase(appeals)
                if args.floor:
                    stop_server(server)
                    floor = run_floor(pool, args, instance, token)
                    server = floor.pop("server")
        except KeyboardInterrupt:
            log("interrupted")
            return 130
        finally:
            stop_server(server)
    ratio = appeals["rps"] / healthz["rps"] if healthz["rps"] else 0.0
    passed = ratio >= GOAL_RATIO and healthz["errors"] == 0 and appeals["errors"] == 0
    print(f"   ratio: appeals_rps / healthz_rps = {ratio:.3f} (goal >= {GOAL_RATIO}) "
          f"{'PASS' if passed else 'FAIL'}", flush=True)
    summary = {
        "bench": "intake",
        "server": {"worker_class": args.worker_class, "workers": args.workers,
                   "threads": args.threads if args.worker_class == "gthread" else None,
                   "switch_interval": args.switch_interval or None},
        "concurrency": args.concurrency,
        "client_procs": args.client_procs,
        "seconds": args.seconds,
        "warmup": args.warmup,
        "healthz": {k: v for k, v in healthz.items() if k not in ("phase", "error_samples")},
        "appeals": {k: v for k, v in appeals.items() if k not in ("phase", "error_samples")},
        "ratio": round(ratio, 3),
        "goal": GOAL_RATIO,
        "pass": passed,
    }
    if args.floor:
        summary["floor"] = print_floor(floor, healthz, appeals)
    print(json.dumps(summary), flush=True)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())

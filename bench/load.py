"""Load: 200 staff, citizen reports with photos and 150 live sockets against production-style servers.

Usage::

    python bench/load.py [--seconds 180] [--warmup 30] [--processes 2] [--history 10000]
                         [--field 120] [--operators 40] [--dispatchers 24] [--inspectors 16]
                         [--citizens 20] [--sockets 150]
                         [--dsn postgresql://postgres@127.0.0.1:5432/jauap_bench_load]

What it does:

1. (Re)creates the bench database (``bench/intake.py``'s helpers: migrate, sectors), then, in
   process: ``--history`` appeals of the past year with full histories (the demo-year generator,
   ``server.services.demo.seed_year``, as ``bench/analytics.py`` does; the demo crew is taken off duty
   afterwards), the simulated people - field staff (round-robin over units U1..U6, on duty), operators,
   dispatchers, inspectors - each with a bearer token, and ``--appeals-per-field`` open appeals assigned
   to each field worker at points inside their unit's sectors (``bench/fanout.py``'s ``sector_points``).
2. Starts a private ``redis-server`` and ``--processes`` production processes: ``gunicorn -k gevent
   -w 1 'server:create_app()'`` (``bench/intake.py``'s ``start_server``) with ``JAUAP_ASYNC_MODE=gevent``
   and ``JAUAP_REDIS_URL`` (Socket.IO message queue and shared rate limits), plus one ``flask worker``.
   There is no proxy here: every simulated person is bound to one process (person i -> process
   i mod N), their HTTP requests and their socket alike, as the proxy's ``ip_hash`` does. The server
   trusts one proxy hop (``JAUAP_PROXY_HOPS=1``) and each citizen report carries its own address in
   ``X-Forwarded-For``: the per-address report limit (``JAUAP_REPORT_LIMITS``) keeps its production
   value and refuses nothing, so the bench measures throughput, not the limiter.
3. Baseline, idle: ``GET /healthz`` 200 times one after another on each process.
4. Opens ``--sockets`` Socket.IO connections (python-socketio ``AsyncClient``, websocket) in a separate
   spawned process (locust's gevent monkey-patching never touches it): every dispatcher and a few
   inspectors (room ``centre``: every event) and field staff of every unit (their sector rooms and
   own room), each on their person's process. Every appeal event is stamped on receipt; one socket
   after another calls ``echo`` twice a second (the socket round trip under load).
5. Runs locust headless (``bench/locustfile.py``: field staff, dispatchers, operators, inspectors,
   citizens, and a ``/healthz`` probe per process) for ``--warmup`` + ``--seconds``; users are spawned
   during the first half of the warm-up; only requests started in the measured window count.
   Progress every 5 s.
6. Prints p50/p95/p99 per class (reads = GET, writes = POST) and per role and request, requests/s,
   errors, the event delivery latency, CPU use, the ratios to the ``/healthz`` baseline under the
   same load, what PostgreSQL's backends of the bench database were waiting for (``pg_stat_activity``
   sampled once a second, and what the holder of an advisory lock - the audit chain's - was doing),
   PASS/FAIL per goal and one JSON line.

Experiments (not production): ``--worker-class gthread`` (OS threads, ``JAUAP_ASYNC_MODE=threading``),
``--offload-images`` (the photo work in gevent's thread pool, ``load:offloaded_app()``), ``--processes 1``.

Event delivery latency: from the moment the write request is SENT by the load generator to the
moment a subscribed socket receives the event (every receiving socket is one sample). It covers the
whole request (the server emits after its commit, before the answer is written) and the fan-out, i.e.
what a dispatcher sees after a field worker presses "accept". Events are matched to the writes by
appeal id (registration number for new appeals) and kind; a successful write none of the sockets hears
within 10 s of its answer is "undelivered".

Goals: 0 server errors (5xx, broken HTTP connections, dropped sockets); p95 reads < 500 ms; p95 writes
< 800 ms; p95 event delivery < 1 s; every event delivered. Exit status 0 when all pass, 1 otherwise,
130 on Ctrl-C. Every process started here is stopped on every exit path; the bench database is kept.

The server processes, PostgreSQL, Redis, locust and the socket process share this machine's cores:
latencies include the load generator's own scheduling delay.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import multiprocessing as mp
import os
import queue
import random
import signal
import subprocess
import sys
import tempfile
import time
from argparse import Namespace
from pathlib import Path

from _servers import RedisServer
from fanout import sector_points
from intake import (
    SECRET,
    backend_pids,
    cpu_busy_pct,
    cpu_sample,
    free_port,
    prepare_database,
    proc_ticks,
    recreate_database,
    start_server,
    stop_server,
    wait_ready,
    warn_if_busy,
    worker_pids,
)

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/jauap_bench_load"
PASSWORD = "bench-load-password-109"
GOALS = {"read_p95_ms": 500.0, "write_p95_ms": 800.0, "delivery_p95_ms": 1000.0}
UNDELIVERED_AFTER_S = 10.0
# seconds each role waits between two actions (locust's between(a, b))
WAIT = {"field": (4, 12), "dispatcher": (3, 9), "operator": (8, 20), "inspector": (6, 15), "citizen": (20, 40)}


def log(msg: str) -> None:
    """One progress line on stderr."""
    print(f"[load-bench] {msg}", file=sys.stderr, flush=True)


def pct(sorted_values: list[float], q: float) -> float | None:
    """The q-quantile (nearest rank) of an ascending list, or None."""
    if not sorted_values:
        return None
    return sorted_values[min(len(sorted_values) - 1, max(0, round(q * len(sorted_values)) - 1))]


def dist(values) -> dict:
    """n, p50, p95, p99, max of latencies in ms."""
    ordered = sorted(values)

    def r(v):
        return None if v is None else round(v, 1)

    return {"n": len(ordered), "p50": r(pct(ordered, 0.5)), "p95": r(pct(ordered, 0.95)),
            "p99": r(pct(ordered, 0.99)), "max": r(ordered[-1] if ordered else None)}


# --- 1. the database: history, people, work -----------------------------------------------------------


def prepare_people(args, instance: str) -> dict:
    """History, staff with tokens, open work; returns the people, rosters and ids the load needs."""
    from sqlalchemy import func, select, text, update

    from server import create_app
    from server.cli import demo_staff
    from server.config import Config
    from server.extensions import db
    from server.models import AppealEvent, Sector, Staff
    from server.models.types import utcnow
    from server.schemas import AppealIn
    from server.services import dispatch
    from server.services import staff as staff_service
    from server.services.demo import seed_year
    from server.services.intake import register_appeal
    from server.services.lifecycle import Actor
    from server.services.staff import create_staff, issue_token

    prepare_database(args.dsn, instance)  # migrate, sectors, an operator
    app = create_app(Config(secret_key=SECRET, instance_path=instance, database_url=args.dsn))
    counts = {"field": args.field, "operator": args.operators, "dispatcher": args.dispatchers,
              "inspector": args.inspectors}
    role_of = {"field": "field_staff", "operator": "operator", "dispatcher": "dispatcher", "inspector": "inspector"}
    people: dict[str, list[dict]] = {k: [] for k in counts}
    # Hash one password once for every account made here (a hash costs ~0.3 s of CPU): nobody logs in
    # with a password (the simulated people have bearer tokens), so the accounts' passwords do not matter.
    one_hash = staff_service.generate_password_hash(PASSWORD)
    staff_service.generate_password_hash = lambda _password: one_hash
    with app.app_context():
        now = utcnow()
        if args.history:
            demo_staff(now)
            db.session.commit()
            t0 = time.perf_counter()
            seed_year(args.history, now=now, rng=random.Random(109), batch=5000,
                      progress=lambda done, total: log(f"history: {done}/{total} appeals"))
            log(f"history of {args.history} appeals in {time.perf_counter() - t0:.0f} s")
        # nobody but the simulated people takes new work
        db.session.execute(update(Staff).values(on_duty=False))
        sectors = list(db.session.scalars(select(Sector)))
        sector_unit = {s.code: s.unit.code for s in sectors}
        unit_sectors: dict[str, list[str]] = {}
        for code, unit in sorted(sector_unit.items()):
            unit_sectors.setdefault(unit, []).append(code)
        t0 = time.perf_counter()
        index = 0
        for key, n in counts.items():
            for i in range(n):
                unit = f"U{i % 6 + 1}" if key == "field" else None
                staff = create_staff(f"load-{key}-{i:03d}", role_of[key], PASSWORD, unit_code=unit, now=now,
                                     full_name=f"Load {key.title()} {i:03d}")
                token, _row = issue_token(staff, now, 24)
                people[key].append({"id": staff.id, "token": token, "unit": unit, "host": index % args.processes})
                index += 1
        db.session.flush()
        log(f"{index} staff with tokens in {time.perf_counter() - t0:.0f} s")
        points = sector_points(per_sector=max(200, args.field * args.appeals_per_field // 3))
        operator, dispatcher = Actor("staff", "operator"), Actor("staff", "dispatcher")
        t0 = time.perf_counter()
        for i, person in enumerate(people["field"]):
            for a in range(args.appeals_per_field):
                code = unit_sectors[person["unit"]][(i + a) % len(unit_sectors[person["unit"]])]
                lon, lat = points[code][(i * args.appeals_per_field + a) % len(points[code])]
                body = AppealIn(type="complaint", topic="roads", description=f"Load bench pothole {i}-{a}",
                                lat=lat, lon=lon, accuracy_m=10, channel="phone")
                appeal = register_appeal(body, actor=operator, now=now).appeal  # nobody on duty: routed
                dispatch.reassign(appeal, dispatcher, now, staff_id=person["id"])
        db.session.execute(update(Staff).where(Staff.id.in_([p["id"] for p in people["field"]]))
                           .values(on_duty=True))
        events_after = db.session.scalar(select(func.max(AppealEvent.id))) or 0
        db.session.commit()
        log(f"{args.field * args.appeals_per_field} open appeals assigned in {time.perf_counter() - t0:.0f} s")
        db.session.execute(text("ANALYZE"))
        db.session.commit()
        db.session.remove()
        db.engine.dispose()
    unit_staff: dict[str, list[int]] = {}
    for p in people["field"]:
        unit_staff.setdefault(p["unit"], []).append(p["id"])
    lons = [x for pts in points.values() for x, _y in pts]
    lats = [y for pts in points.values() for _x, y in pts]
    bbox = f"{min(lons) - 0.01:.5f},{min(lats) - 0.01:.5f},{max(lons) + 0.01:.5f},{max(lats) + 0.01:.5f}"
    return {"people": people, "sector_unit": sector_unit, "unit_sectors": unit_sectors, "unit_staff": unit_staff,
            "points": {code: pts[:200] for code, pts in points.items()}, "bbox": bbox, "events_after": events_after}


def make_photos(folder: Path, prefix: str, n: int, seed: int) -> list[str]:
    """``n`` distinct 1600 x 1200 JPEGs like the pages' canvas output (``bench/outbox.py``'s ``canvas_photo``)."""
    from outbox import canvas_photo

    out = []
    for i in range(n):
        path = folder / f"{prefix}-{i:02d}.jpg"
        path.write_bytes(canvas_photo(f"{prefix} {i}", seed + i))
        out.append(str(path))
    return out


# --- 2. processes ----------------------------------------------------------------------------------


def offloaded_app():
    """Experiment (``--offload-images``): ``server:create_app()`` with the photo work on real threads.

    ``server.media.process_upload`` (hash, decode, two re-encodes: pure CPU, no I/O, Pillow and
    hashlib release the GIL) runs in gevent's thread pool, so the worker's event loop keeps serving
    the other requests meanwhile instead of stalling ~0.1 s per photo. Loaded by gunicorn as
    ``load:offloaded_app()``; nothing in ``server/`` changes.
    """
    import gevent

    from server import create_app, media

    original = media.process_upload

    def process_upload(*args, **kwargs):
        return gevent.get_hub().threadpool.apply(original, args, kwargs)

    media.process_upload = process_upload
    return create_app()


class Fleet:
    """Redis, the gunicorn processes and the flask worker; stopped in reverse order."""

    def __init__(self, args, instance: str):
        self.args, self.instance = args, instance
        self.redis: RedisServer | None = None
        self.servers: list[subprocess.Popen] = []
        self.ports: list[int] = []
        self.worker: subprocess.Popen | None = None

    def start(self) -> Fleet:
        """Start Redis, the server processes and the flask worker; wait until they are ready."""
        self.redis = RedisServer(self.instance).start()
        log(f"private redis-server on {self.redis.url}")
        # start_server passes os.environ on to gunicorn: the production settings go there
        os.environ.update({"JAUAP_REDIS_URL": self.redis.url, "JAUAP_PROXY_HOPS": "1",
                           "JAUAP_ASYNC_MODE": "gevent" if self.args.worker_class == "gevent" else "threading"})
        os.environ.pop("JAUAP_REPORT_LIMITS", None)  # the production default
        opts = Namespace(dsn=self.args.dsn, workers=1, worker_class=self.args.worker_class, threads=self.args.threads,
                         switch_interval=0.0,
                         concurrency=self.args.field + self.args.operators + self.args.dispatchers
                         + self.args.inspectors + self.args.citizens + self.args.sockets)
        for _ in range(self.args.processes):
            port = free_port()
            spec = "load:offloaded_app()" if self.args.offload_images else "server:create_app()"
            self.servers.append(start_server(opts, port, self.instance, app_spec=spec))
            self.ports.append(port)
        for proc, port in zip(self.servers, self.ports, strict=True):
            wait_ready(proc, port)
        if not self.args.no_worker:
            env = {**os.environ, "DATABASE_URL": self.args.dsn, "JAUAP_SECRET_KEY": SECRET,
                   "JAUAP_INSTANCE_PATH": self.instance, "FLASK_APP": "server:create_app",
                   "JAUAP_ASYNC_MODE": "threading", "PYTHONPATH": str(REPO)}
            cmd = [sys.executable, "-m", "flask", "worker"]
            log("starting: flask worker")
            self.worker = subprocess.Popen(cmd, cwd=REPO, env=env, start_new_session=True,
                                           stdout=subprocess.DEVNULL)
        log(f"{len(self.servers)} server process(es) ready on ports {self.ports}")
        return self

    @property
    def hosts(self) -> list[str]:
        """The base URL of each server process."""
        return [f"http://127.0.0.1:{p}" for p in self.ports]

    def server_pids(self) -> list[int]:
        """Masters and their workers."""
        return [pid for proc in self.servers for pid in (proc.pid, *worker_pids(proc.pid))]

    def stop(self) -> None:
        """Stop everything this fleet started."""
        if self.worker is not None and self.worker.poll() is None:
            self.worker.terminate()
            try:
                self.worker.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.worker.kill()
                self.worker.wait(timeout=5)
        for proc in self.servers:
            stop_server(proc)
        if self.redis is not None:
            self.redis.stop()


def healthz_idle(ports: list[int], n: int) -> dict:
    """``n`` sequential ``GET /healthz`` per process on a keep-alive connection, before any load."""
    rtts = []
    for port in ports:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        for _ in range(n):
            t0 = time.perf_counter()
            conn.request("GET", "/healthz")
            res = conn.getresponse()
            res.read()
            rtts.append((time.perf_counter() - t0) * 1000.0)
        conn.close()
    return dist(rtts)


# --- 3. the sockets (a spawned process: asyncio, no gevent) ------------------------------------------------


def listener_process(plan: list[tuple[str, str]], commands, answers, out_path: str) -> None:
    """Hold one connection per (url, token) of ``plan``; stamp every appeal event; dump on "stop"."""
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_listen(plan, commands, answers, out_path))


async def _listen(plan, commands, answers, out_path):
    import socketio

    records: list[tuple] = []  # (kind, appeal id, reg_no, t_receipt, socket index)
    drops: list[str] = []
    echoes: list[tuple[float, float]] = []
    stopping = False

    def handlers(client, index):
        def on_message(kind, payload):
            t = time.time()
            if kind == "appeal.events":
                for p in payload["events"]:
                    records.append((p["kind"], p["appeal"]["id"], p["appeal"]["reg_no"], t, index))
            elif kind.startswith("appeal."):
                records.append((kind, payload["appeal"]["id"], payload["appeal"]["reg_no"], t, index))

        async def on_disconnect(*_args):
            if not stopping:
                drops.append(f"socket {index} disconnected at {time.time():.3f}")

        client.on("*", on_message)
        client.on("disconnect", on_disconnect)

    gate = asyncio.Semaphore(10)

    async def connect(index, url, token):
        client = socketio.AsyncClient(reconnection=False)
        handlers(client, index)
        async with gate:
            await client.connect(url, auth={"token": token}, transports=["websocket"], wait_timeout=30)
        return client

    outcome = await asyncio.gather(*(connect(i, u, t) for i, (u, t) in enumerate(plan)), return_exceptions=True)
    clients = [c for c in outcome if not isinstance(c, BaseException)]
    errors = [repr(e)[:200] for e in outcome if isinstance(e, BaseException)]
    answers.put(("connected", len(clients), errors[:3]))

    async def echo_loop():
        i = 0
        while True:
            await asyncio.sleep(0.5)
            client = clients[i % len(clients)]
            i += 1
            t0 = time.perf_counter()
            try:
                await client.call("echo", {"i": i}, timeout=10)
            except Exception as exc:  # a lost echo is reported, not fatal
                drops.append(f"echo failed: {exc!r}")
                continue
            echoes.append((time.time(), (time.perf_counter() - t0) * 1000.0))

    echo_task = asyncio.create_task(echo_loop()) if clients else None
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, commands.get)  # "stop"
    stopping = True
    if echo_task:
        echo_task.cancel()
    Path(out_path).write_text(json.dumps({"records": records, "drops": drops, "echoes": echoes}))
    with contextlib.suppress(Exception):
        await asyncio.wait_for(asyncio.gather(*(c.disconnect() for c in clients), return_exceptions=True), 10)
    answers.put(("stopped", len(records), None))


def socket_plan(people: dict, hosts: list[str], n: int) -> tuple[list[tuple[str, str]], dict]:
    """Who holds the ``n`` sockets: every dispatcher, up to 6 inspectors, then field staff (round-robin units)."""
    centre = people["dispatcher"] + people["inspector"][:6]
    chosen = (centre + people["field"])[:n]  # field staff are already round-robin over the units
    plan = [(hosts[p["host"]], p["token"]) for p in chosen]
    groups = {"centre": sum(1 for p in chosen if p["unit"] is None)}
    for p in chosen:
        if p["unit"]:
            groups[p["unit"]] = groups.get(p["unit"], 0) + 1
    return plan, groups


class Sockets:
    """The listener process and its command/answer queues."""

    def __init__(self, plan, out_path: str):
        ctx = mp.get_context("spawn")
        self.commands, self.answers = ctx.Queue(), ctx.Queue()
        self.out_path = out_path
        self.n = len(plan)
        self.proc = ctx.Process(target=listener_process, args=(plan, self.commands, self.answers, out_path),
                                daemon=True)

    def _wait(self, kind: str, timeout: float):
        deadline = time.monotonic() + timeout
        while True:
            try:
                msg = self.answers.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                raise RuntimeError(f"the socket process did not answer '{kind}' in {timeout:.0f} s") from None
            if msg[0] == kind:
                return msg

    def start(self) -> Sockets:
        """Spawn the process and wait until every socket is connected."""
        t0 = time.monotonic()
        self.proc.start()
        _kind, connected, errors = self._wait("connected", 180)
        if connected != self.n:
            raise RuntimeError(f"only {connected}/{self.n} sockets connected: {errors}")
        log(f"{connected} sockets connected in {time.monotonic() - t0:.1f} s")
        return self

    def collect(self) -> dict:
        """Stop listening; the records, drops and echo round trips."""
        self.commands.put("stop")
        self._wait("stopped", 120)
        return json.loads(Path(self.out_path).read_text())

    def stop(self) -> None:
        """Make sure the process is gone."""
        if self.proc.is_alive():
            with contextlib.suppress(Exception):
                self.commands.put("stop")
            self.proc.join(timeout=15)
            if self.proc.is_alive():
                self.proc.terminate()
                self.proc.join(timeout=5)


# --- 4. what PostgreSQL's backends wait for -------------------------------------------------------------


class WaitSampler:
    """Samples ``pg_stat_activity`` of the bench database once a second (a thread): backends per
    (state, wait event) on average, and the statements most often found waiting on a lock."""

    def __init__(self, dsn: str):
        import threading

        self.dsn = dsn
        self.stop_event = threading.Event()
        self.samples = 0
        self.states: dict[str, int] = {}
        self.waiting: dict[str, int] = {}
        self.holders: dict[str, int] = {}  # what the holder of an advisory lock (the audit chain's) is doing
        self.first_ticks: dict[int, int] = {}  # CPU clock ticks of each backend when first / last seen
        self.last_ticks: dict[int, int] = {}
        self.started = time.monotonic()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        from urllib.parse import urlsplit

        import psycopg

        name = urlsplit(self.dsn).path.lstrip("/")
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            while not self.stop_event.wait(1.0):
                rows = conn.execute(
                    "SELECT state, coalesce(wait_event_type || ':' || wait_event, 'running'), left(query, 70), pid "
                    "FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", (name,)).fetchall()
                for pid, ticks in proc_ticks([r[3] for r in rows]).items():
                    # a backend first seen after the first sample started inside the window: count it from 0
                    self.first_ticks.setdefault(pid, ticks if self.samples == 0 else 0)
                    self.last_ticks[pid] = ticks
                holders = conn.execute(
                    "SELECT a.state, coalesce(a.wait_event_type || ':' || a.wait_event, 'running') "
                    "FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                    "WHERE l.locktype = 'advisory' AND l.granted AND a.datname = %s", (name,)).fetchall()
                for state, wait in holders:
                    key = f"{state} / {wait}"
                    self.holders[key] = self.holders.get(key, 0) + 1
                self.samples += 1
                for state, wait, query, _pid in rows:
                    key = f"{state} / {wait}"
                    self.states[key] = self.states.get(key, 0) + 1
                    if wait.startswith("Lock:"):
                        what = f"{wait}: {' '.join(query.split())}"
                        self.waiting[what] = self.waiting.get(what, 0) + 1

    def start(self) -> WaitSampler:
        """Start sampling."""
        self.thread.start()
        return self

    def finish(self) -> dict:
        """Stop; average backends per state and per waiting statement."""
        self.stop_event.set()
        self.thread.join(timeout=5)
        n = max(1, self.samples)

        def top(counts: dict[str, int], k: int) -> dict[str, float]:
            return {key: round(v / n, 2) for key, v in sorted(counts.items(), key=lambda kv: -kv[1])[:k]}

        ticks = sum(self.last_ticks[pid] - self.first_ticks[pid] for pid in self.last_ticks)
        cores = round(ticks / os.sysconf("SC_CLK_TCK") / max(1e-9, time.monotonic() - self.started), 2)
        return {"samples": self.samples, "cpu_cores": cores, "backends": top(self.states, 8),
                "lock_waits": top(self.waiting, 5),
                "advisory_lock_holder": top(self.holders, 5)}


# --- 5. locust ----------------------------------------------------------------------------------------


def run_locust(args, config_path: str, total_users: int) -> subprocess.Popen:
    """``locust --headless -f bench/locustfile.py`` for warm-up + measured seconds (its own process)."""
    locust = Path(sys.executable).with_name("locust")
    spawn_rate = max(1.0, total_users / max(1.0, args.warmup / 2))
    cmd = [str(locust) if locust.exists() else "locust", "--headless", "-f", str(REPO / "bench" / "locustfile.py"),
           "--users", str(total_users), "--spawn-rate", f"{spawn_rate:.1f}",
           "--run-time", f"{int(args.warmup + args.seconds)}s", "--stop-timeout", "15", "--only-summary",
           "--loglevel", "WARNING", "--host", "http://127.0.0.1"]
    env = {**os.environ, "JAUAP_LOAD_CONFIG": config_path,
           "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "bench")])}
    log("starting: locust " + " ".join(cmd[1:]))
    return subprocess.Popen(cmd, cwd=REPO, env=env, start_new_session=True, stdout=subprocess.DEVNULL)


# --- 6. figures ----------------------------------------------------------------------------------------


def analyse(run: dict, heard: dict, args, t_measure: float, t_end: float) -> dict:
    """Latency per class, role and request; errors; event delivery; baseline ratios."""
    samples = run["samples"]
    window = [s for s in samples if s[0] is not None and t_measure <= s[0] <= t_end]
    by_class: dict[str, list[float]] = {"read": [], "write": []}
    by_role: dict[str, list[float]] = {}
    by_name: dict[str, list[float]] = {}
    healthz = []
    for _t0, cls, name, ms, _status, outcome in window:
        if outcome not in ("ok", "conflict"):
            continue
        if cls == "healthz":
            healthz.append(ms)
            continue
        kind = "read" if name.startswith("GET ") else "write"
        by_class[kind].append(ms)
        by_role.setdefault(f"{cls} {kind}s", []).append(ms)
        by_name.setdefault(name, []).append(ms)
    outcomes: dict[str, int] = {}
    for s in samples:  # errors count over the whole run, warm-up included
        outcomes[s[5]] = outcomes.get(s[5], 0) + 1
    measured = sum(1 for s in window if s[1] != "healthz")
    delivery = match_events(run["sends"], heard["records"], t_measure, t_end)
    echo = [ms for t, ms in heard["echoes"] if t_measure <= t <= t_end]
    out = {
        "requests": measured,
        "rps": round(measured / args.seconds, 1),
        "read": dist(by_class["read"]),
        "write": dist(by_class["write"]),
        "healthz_under_load": dist(healthz),
        "roles": {k: dist(v) for k, v in sorted(by_role.items())},
        "requests_by_name": {k: dist(v) for k, v in sorted(by_name.items())},
        "outcomes": outcomes,
        "server_errors": outcomes.get("server_error", 0) + outcomes.get("broken", 0),
        "refused": outcomes.get("refused", 0),
        "conflicts": outcomes.get("conflict", 0),
        "socket_drops": len(heard["drops"]),
        "delivery": delivery,
        "echo_under_load": dist(echo),
        "error_samples": run["errors"][:10] + heard["drops"][:5],
    }
    hz = out["healthz_under_load"]["p95"]
    ec = out["echo_under_load"]["p95"]
    out["ratios"] = {
        "read_p95_over_healthz_p95": round(out["read"]["p95"] / hz, 1) if hz and out["read"]["p95"] else None,
        "write_p95_over_healthz_p95": round(out["write"]["p95"] / hz, 1) if hz and out["write"]["p95"] else None,
        "delivery_p95_over_echo_p95": round(delivery["all"]["p95"] / ec, 1) if ec and delivery["all"]["p95"] else None,
    }
    return out


def match_events(sends: list, records: list, t_measure: float, t_end: float) -> dict:
    """Latency from each write's send to each socket's receipt of its event (appeal id or reg_no + kind)."""
    heard: dict[tuple, list[tuple[float, int]]] = {}
    for kind, appeal_id, reg_no, t, sock in records:
        heard.setdefault(("id", appeal_id, kind), []).append((t, sock))
        if kind == "appeal.registered":
            heard.setdefault(("reg", reg_no, kind), []).append((t, sock))
    for receipts in heard.values():
        receipts.sort()
    by_key: dict[tuple, list[tuple[float, float]]] = {}
    for key_type, key, kind, t_send, t_answer in sends:
        by_key.setdefault((key_type, key, kind), []).append((t_send, t_answer))
    latencies: dict[str, list[float]] = {}
    counted, undelivered, examples = 0, 0, []
    for key, starts in by_key.items():
        starts.sort()
        receipts = heard.get(key, [])
        for i, (t_send, t_answer) in enumerate(starts):
            until = starts[i + 1][0] if i + 1 < len(starts) else float("inf")
            if not (t_measure <= t_send <= t_end):
                continue
            counted += 1
            first: dict[int, float] = {}
            for t, sock in receipts:
                # the event is emitted after the commit, just before the answer: a slow request is not a lost event
                if t_send <= t < until and t - t_answer <= UNDELIVERED_AFTER_S and sock not in first:
                    first[sock] = t
            if not first:
                undelivered += 1
                if len(examples) < 5:
                    examples.append(f"{key[2]} {key[0]}={key[1]} sent {t_send:.3f}")
                continue
            latencies.setdefault(key[2], []).extend((t - t_send) * 1000.0 for t in first.values())
    every = [v for vs in latencies.values() for v in vs]
    return {"writes": counted, "undelivered": undelivered, "undelivered_examples": examples,
            "all": dist(every), "by_kind": {k: dist(v) for k, v in sorted(latencies.items())}}


def fmt(d: dict) -> str:
    """One distribution as text."""
    if not d["n"]:
        return "n 0"
    return f"n {d['n']:6d}  p50 {d['p50']:7.1f}  p95 {d['p95']:7.1f}  p99 {d['p99']:7.1f}  max {d['max']:8.1f} ms"


def print_figures(res: dict, idle: dict, cpu: dict) -> None:
    """The tables on stdout."""
    print(f"requests in the measured window: {res['requests']} ({res['rps']} requests/s); "
          f"server errors {res['server_errors']}, dropped sockets {res['socket_drops']}, "
          f"other refusals {res['refused']}, expected conflicts (409) {res['conflicts']}", flush=True)
    print(f"  {'reads (GET)':<28} {fmt(res['read'])}")
    print(f"  {'writes (POST)':<28} {fmt(res['write'])}")
    print(f"  {'healthz under load':<28} {fmt(res['healthz_under_load'])}")
    print(f"  {'healthz idle (baseline)':<28} {fmt(idle)}")
    print(f"  {'socket echo under load':<28} {fmt(res['echo_under_load'])}")
    print("per role:")
    for name, d in res["roles"].items():
        print(f"  {name:<28} {fmt(d)}")
    print("per request:")
    for name, d in res["requests_by_name"].items():
        print(f"  {name[:60]:<60} {fmt(d)}")
    dl = res["delivery"]
    print(f"event delivery (write sent -> socket receipt): {dl['writes']} writes, undelivered {dl['undelivered']}")
    print(f"  {'all events':<28} {fmt(dl['all'])}")
    for kind, d in dl["by_kind"].items():
        print(f"  {kind:<28} {fmt(d)}")
    print(f"ratios: read p95 / healthz p95 = {res['ratios']['read_p95_over_healthz_p95']}, write p95 / healthz p95 = "
          f"{res['ratios']['write_p95_over_healthz_p95']}, delivery p95 / echo p95 = "
          f"{res['ratios']['delivery_p95_over_echo_p95']}")
    print(f"CPU (measured window): machine {cpu['machine_busy_pct']} % busy; cores used: servers "
          f"{cpu['servers']}, PostgreSQL {cpu['postgres']}, locust {cpu['locust']}, sockets {cpu['sockets']}")
    for text in res["error_samples"]:
        print(f"  sample: {text}")
    sys.stdout.flush()


def goals(res: dict) -> dict[str, bool]:
    """Goal -> passed."""

    def p(d):
        return d["p95"] if d["p95"] is not None else float("inf")

    return {
        "0 server errors (5xx, broken connections, dropped sockets)": res["server_errors"] == 0
        and res["socket_drops"] == 0,
        f"p95 reads < {GOALS['read_p95_ms']:.0f} ms": p(res["read"]) < GOALS["read_p95_ms"],
        f"p95 writes < {GOALS['write_p95_ms']:.0f} ms": p(res["write"]) < GOALS["write_p95_ms"],
        f"p95 event delivery < {GOALS['delivery_p95_ms']:.0f} ms": p(res["delivery"]["all"]) < GOALS["delivery_p95_ms"],
        "every event delivered": res["delivery"]["undelivered"] == 0 and res["delivery"]["writes"] > 0,
    }


# --- main ----------------------------------------------------------------------------------------------


def parse_args(argv=None):
    """The command line."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=180.0, help="measured seconds (default 180)")
    p.add_argument("--warmup", type=float, default=30.0, help="warm-up seconds, users spawned in the first half")
    p.add_argument("--processes", type=int, default=2, help="gunicorn -k gevent -w 1 processes (default 2)")
    p.add_argument("--worker-class", default="gevent", choices=("gevent", "gthread"),
                   help="gevent: production (default); gthread: an experiment (JAUAP_ASYNC_MODE=threading)")
    p.add_argument("--threads", type=int, default=128,
                   help="threads per gthread worker (default 128: each websocket holds one)")
    p.add_argument("--offload-images", action="store_true",
                   help="experiment: run the photo work in gevent's thread pool (load:offloaded_app())")
    p.add_argument("--field", type=int, default=120, help="field staff users (default 120)")
    p.add_argument("--operators", type=int, default=40, help="operator users (default 40)")
    p.add_argument("--dispatchers", type=int, default=24, help="dispatcher users (default 24)")
    p.add_argument("--inspectors", type=int, default=16, help="inspector users (default 16)")
    p.add_argument("--citizens", type=int, default=20, help="citizen users submitting reports (default 20)")
    p.add_argument("--sockets", type=int, default=150, help="live Socket.IO connections (default 150)")
    p.add_argument("--appeals-per-field", type=int, default=4, help="open appeals assigned to each field worker")
    p.add_argument("--history", type=int, default=10000, help="past-year appeals generated first (default 10000)")
    p.add_argument("--no-worker", action="store_true", help="do not run `flask worker`")
    p.add_argument("--dsn", default=DEFAULT_DSN, help=f"bench database, recreated (default {DEFAULT_DSN})")
    return p.parse_args(argv)


def _interrupt(_signum, _frame):
    raise KeyboardInterrupt


def cores(before: dict, after: dict, seconds: float) -> float | None:
    """CPU cores used by the pids of ``before`` over ``seconds``."""
    if not before or seconds <= 0:
        return None
    ticks = sum(after[pid] - before[pid] for pid in before if pid in after)
    return round(ticks / os.sysconf("SC_CLK_TCK") / seconds, 2)


def main(argv=None) -> int:
    """Prepare, serve, load, measure; exit status 0 when every goal passes."""
    args = parse_args(argv)
    sys.path.insert(0, str(REPO))
    signal.signal(signal.SIGTERM, _interrupt)
    fleet = sockets = runner = None
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="jauap-load-bench-") as instance:
        try:
            warn_if_busy()
            log(f"recreating {args.dsn}")
            recreate_database(args.dsn)
            prep = prepare_people(args, instance)
            folder = Path(instance) / "photos"
            folder.mkdir()
            field_photos = make_photos(folder, "field", 12, 1)
            citizen_photos = make_photos(folder, "citizen", 12, 101)
            fleet = Fleet(args, instance).start()
            idle = healthz_idle(fleet.ports, 200)
            log(f"healthz idle: p50 {idle['p50']} ms, p95 {idle['p95']} ms")
            plan, groups = socket_plan(prep["people"], fleet.hosts, args.sockets)
            log(f"opening {len(plan)} sockets (rooms: {groups})")
            sockets = Sockets(plan, str(Path(instance) / "heard.json")).start()
            out_path = Path(instance) / "locust-out.json"
            counts = {"field": args.field, "operator": args.operators, "dispatcher": args.dispatchers,
                      "inspector": args.inspectors, "citizen": args.citizens}
            config = {**prep, "hosts": fleet.hosts, "counts": counts, "wait": WAIT, "out": str(out_path),
                      "field_photos": field_photos, "citizen_photos": citizen_photos}
            config_path = Path(instance) / "load-config.json"
            config_path.write_text(json.dumps(config))
            total = sum(counts.values()) + len(fleet.hosts)
            runner = run_locust(args, str(config_path), total)
            # CPU over (roughly) the measured window: locust needs ~2 s to start before its clock runs
            time.sleep(args.warmup + 2.0)
            t_cpu0 = time.monotonic()
            waits = WaitSampler(args.dsn).start()
            machine0 = cpu_sample()
            srv0, pg0 = proc_ticks(fleet.server_pids()), proc_ticks(backend_pids(args.dsn))
            loc0, sock0 = proc_ticks([runner.pid]), proc_ticks([sockets.proc.pid])
            time.sleep(max(1.0, args.seconds - 5.0))  # the end sample while every process still runs
            t_cpu = time.monotonic() - t_cpu0
            machine1 = cpu_sample()
            srv1, pg1, loc1, sock1 = proc_ticks(srv0), proc_ticks(pg0), proc_ticks(loc0), proc_ticks(sock0)
            cpu = {"machine_busy_pct": cpu_busy_pct(machine0, machine1), "servers": cores(srv0, srv1, t_cpu),
                   "postgres": cores(pg0, pg1, t_cpu), "locust": cores(loc0, loc1, t_cpu),
                   "sockets": cores(sock0, sock1, t_cpu)}
            pg_waits = waits.finish()
            cpu["postgres"] = pg_waits["cpu_cores"]  # every backend of the window, also those opened in it
            runner.wait(timeout=args.seconds + 120)
            heard = sockets.collect()
            if not out_path.exists():
                raise RuntimeError(f"locust exited with {runner.returncode} without writing its figures")
            run = json.loads(out_path.read_text())
        except KeyboardInterrupt:
            log("interrupted")
            return 130
        finally:
            if runner is not None and runner.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(runner.pid, signal.SIGTERM)
                runner.wait(timeout=30)
            if sockets is not None:
                sockets.stop()
            if fleet is not None:
                fleet.stop()
    t_measure = run["t_test_start"] + args.warmup
    res = analyse(run, heard, args, t_measure, t_measure + args.seconds)
    print(f"{args.processes} x gunicorn -k {args.worker_class} -w 1 + Redis; users: {counts} + "
          f"{len(fleet.hosts)} healthz probes; {len(plan)} sockets {groups}; {args.seconds:g} s measured after "
          f"{args.warmup:g} s warm-up",
          flush=True)
    print_figures(res, idle, cpu)
    print(f"PostgreSQL backends of the bench database, average over {pg_waits['samples']} samples (1/s):")
    for key, v in pg_waits["backends"].items():
        print(f"  {v:6.2f}  {key}")
    for key, v in pg_waits["lock_waits"].items():
        print(f"  {v:6.2f}  waiting  {key}")
    print("the holder of an advisory lock (the audit chain's), share of samples:")
    for key, v in pg_waits["advisory_lock_holder"].items():
        print(f"  {v:6.2f}  {key}")
    passed = goals(res)
    for goal, ok in passed.items():
        print(f"  {goal}: {'PASS' if ok else 'FAIL'}", flush=True)
    elapsed = time.monotonic() - started
    print(f"whole run: {elapsed:.0f} s", flush=True)
    summary = {"bench": "load", "processes": args.processes, "worker_class": args.worker_class,
               "offload_images": args.offload_images, "users": counts,
               "sockets": len(plan),
               "socket_rooms": groups, "seconds": args.seconds, "warmup": args.warmup, "history": args.history,
               "healthz_idle": idle, "cpu": cpu, "postgres_waits": pg_waits,
               **{k: v for k, v in res.items() if k != "error_samples"},
               "goals": passed, "pass": all(passed.values()), "run_seconds": round(elapsed)}
    print(json.dumps(summary), flush=True)
    return 0 if all(passed.values()) else 1


if __name__ == "__main__":
    sys.exit(main())

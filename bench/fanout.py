"""Live-event fan-out: how fast and how cheaply appeal events reach many Socket.IO clients.

Usage::

    python bench/fanout.py [--clients 500] [--events 200] [--small 10] [--client-procs 4]
                           [--worker-class gevent|gthread] [--redis-url URL] [--floor | --floor-only]
                           [--dsn postgresql://postgres@127.0.0.1:5432/jauap_bench_fanout]

What it does, in one run (progress on stderr, results on stdout):

1. (Re)creates the bench database, migrates it, loads the sectors and creates an operator
   (``bench/intake.py``'s helpers), then two field workers per unit U1..U6 (one on duty, so
   every routed appeal is auto-assigned) and two dispatchers, each with a bearer token.
2. For each mode - ``single`` (no message queue) and ``redis`` (``JAUAP_REDIS_URL`` set: a private
   ``redis-server`` on a free loopback port unless ``--redis-url`` is given) - starts one server
   process with the production command, ``gunicorn -k gevent -w 1`` and ``JAUAP_ASYNC_MODE=gevent``,
   on ``fanout:instrumented_app()`` (``server:create_app()`` + the emit stamp described below).
3. In each mode, with 0, then ``--small``, then ``--clients`` Socket.IO clients (websocket, spread
   over spawned client processes: ~2 % in the dispatchers' ``centre`` room, the rest round-robin
   over the field workers of the six units, i.e. their ``sector:<code>`` rooms):

   * echo: ``call('echo')`` -> ack round trips, one at a time (the baseline);
   * latency: ``--events`` appeals POSTed one after another (each to a random point inside a sector,
     round-robin over the sectors), waiting until every expected delivery has arrived (at most 2 s).
     Each appeal causes 3 events - ``appeal.registered``, ``appeal.routed``, ``appeal.assigned`` -
     sent to ``centre`` + the unit's sector rooms (+ the assignee, already in them) as ONE
     ``appeal.events`` message (server/realtime/publish.py batches the events of one commit);
     the clients unpack it and stamp each event with the message's receipt time.
     MEASURED: emit -> receipt = the client's ``time.time()`` when the event arrives minus the
     server's ``time.time()`` taken just before ``socketio.Server.emit`` (same machine, same clock).
     The server stamp comes from a bench-side wrapper (``fanout:instrumented_app()`` adds
     ``bench_emit_t`` to each ``appeal.*`` payload; nothing in ``server/`` changes). "POST response ->
     receipt" is shown for reference only: it is negative, because the view still builds its answer
     (database reads) after the emit while the sends already go out. "event 'at' -> receipt" adds
     the whole intake (``at`` is stamped when the request starts).
   * synthetic (no intake): single appeal-shaped events emitted from inside the server by a
     bench-only Socket.IO event ``bench.emit`` (also added by the wrapper), one at a time, each
     waited for; first to a room nobody is in (the trigger alone), then to ``centre`` + one unit's
     sector rooms. Server CPU = utime+stime of the gunicorn master and worker (``/proc/<pid>/stat``)
     over the batch; per delivery "marginal" = (CPU to the rooms - CPU to nobody) / deliveries.
     The CPU goal compares that at ``--clients`` and at ``--small``. (Intake CPU cannot be
     subtracted reliably from the POST batches: it grows as the appeal table grows.)
   * throughput (at ``--clients`` only): ``--events`` appeals POSTed by 4 threads at once;
     deliveries per second from the first POST to the last receipt.

4. With ``--floor`` (or ``--floor-only``): the FLOOR, ``bench/_floor_fanout.py`` - a bare
   python-socketio server (no Jauap code, no database) under the same command and async mode,
   the same client fleet and rooms, the same synthetic one-event emits - at ``--small`` and
   ``--clients``; its p50 / echo and p99 are printed next to Jauap's as FLOOR rows. If the bare
   library misses a goal on this machine, no Jauap change can meet it.
5. Prints the figures, a goal table with PASS/FAIL, and one final JSON line. Exit status 0 when
   every Jauap goal passes. All processes started here are stopped on every exit path; loopback only.

Goals (appeal.assigned emit -> receipt at --clients, per mode): p50 / echo p50 <= 2x; p99 <= 5 ms;
marginal server CPU per delivery at --clients / at --small <= 2x; and across modes at --clients:
emit -> receipt p50 redis / single <= 2x; deliveries/s redis / single >= 0.5x.

The clients, the server and PostgreSQL share this machine's cores: receipt stamps include
the client processes' own scheduling delay, so the figures are upper bounds of the server's part.
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
import resource
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime
from pathlib import Path

from _servers import (
    SECRET,
    RedisMissing,
    RedisServer,
    free_port,
    gunicorn_command,
    launch,
    server_env,
    sigterm_as_interrupt,
    stop_server,
    wait_ready,
)
from intake import cpu_busy_pct, cpu_sample, prepare_database, recreate_database, warn_if_busy

REPO = Path(__file__).resolve().parent.parent
SECTOR_FILE = REPO / "sectors_geojson" / "turkestan.geojson"
DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/jauap_bench_fanout"
STAFF_PASSWORD = "bench-password-123"
KINDS = ("appeal.registered", "appeal.routed", "appeal.assigned", "appeal.unrouted")
WAIT_PER_EVENT_S = 2.0
THROUGHPUT_THREADS = 4
SYNTHETIC_DELIVERIES = 20_000  # deliveries aimed at per synthetic batch (300..2000 emits)
GOALS = {"p50_over_echo": 2.0, "p99_ms": 5.0, "cpu_ratio": 2.0, "redis_latency_ratio": 2.0,
         "redis_throughput_ratio": 0.5}


def log(msg: str) -> None:
    print(f"[fanout-bench] {msg}", file=sys.stderr, flush=True)


def raise_fd_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 65536
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def pct(values, q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def r3(x):
    return None if x is None else round(x, 3)


# --- database and people -----------------------------------------------------------------------


def prepare_people(dsn: str, instance: str) -> dict:
    """Field workers (one on duty per unit), dispatchers, tokens; the sector -> unit map; sector shapes."""
    from sqlalchemy import select

    from server import create_app
    from server.config import Config
    from server.extensions import db
    from server.models import Sector
    from server.models.types import utcnow
    from server.services.staff import create_staff, issue_token

    operator_token = prepare_database(dsn, instance)
    app = create_app(Config(secret_key=SECRET, instance_path=instance, database_url=dsn))
    people = {"operator": operator_token, "centre": [], "units": {}}
    with app.app_context():
        now = utcnow()
        for n in (1, 2):
            staff = create_staff(f"bench-disp-{n}", "dispatcher", STAFF_PASSWORD, now=now)
            people["centre"].append(issue_token(staff, now, 24)[0])
        for u in range(1, 7):
            unit = f"U{u}"
            people["units"][unit] = []
            for suffix in ("a", "b"):
                staff = create_staff(f"bench-f{u}-{suffix}", "field_staff", STAFF_PASSWORD, unit_code=unit, now=now)
                staff.on_duty = suffix == "a"
                people["units"][unit].append(issue_token(staff, now, 24)[0])
        people["sector_unit"] = {s.code: s.unit.code for s in db.session.scalars(select(Sector))}
        people["unit_sectors"] = {}
        for code, unit in sorted(people["sector_unit"].items()):
            people["unit_sectors"].setdefault(unit, []).append(code)
        db.session.commit()
        db.session.remove()
        db.engine.dispose()
    return people


def sector_points(per_sector: int, seed: int = 109) -> dict[str, list[tuple[float, float]]]:
    """Random points strictly inside each sector of the sector file (rejection sampling)."""
    import shapely
    from shapely.geometry import shape

    rnd = random.Random(seed)
    out = {}
    for feature in json.loads(SECTOR_FILE.read_text())["features"]:
        geom = shape(feature["geometry"]).buffer(-0.0005)  # ~50 m inside: never a border case
        shapely.prepare(geom)
        minx, miny, maxx, maxy = geom.bounds
        pts = []
        for _ in range(per_sector * 200):
            if len(pts) >= per_sector:
                break
            x, y = rnd.uniform(minx, maxx), rnd.uniform(miny, maxy)
            if shapely.contains_xy(geom, x, y):
                pts.append((round(x, 6), round(y, 6)))
        out[feature["properties"]["code"]] = pts
    return out


# --- the server, instrumented from outside ------------------------------------------------------------


def instrumented_app():
    """``server:create_app()`` with one bench-side addition: every ``appeal.*`` payload carries
    ``bench_emit_t``, the server's ``time.time()`` just before ``socketio.Server.emit`` is called.

    Loaded by gunicorn as ``fanout:instrumented_app()`` (``bench/`` on PYTHONPATH); nothing in
    ``server/`` changes. Clients compare it with their own ``time.time()`` on receipt (same machine,
    same clock): that difference is the emit -> receipt latency.
    """
    import socketio

    original = socketio.Server.emit

    def emit(self, event, data=None, *args, **kwargs):
        if isinstance(data, dict) and isinstance(event, str) and event.startswith("appeal."):
            data = {**data, "bench_emit_t": time.time()}
        return original(self, event, data, *args, **kwargs)

    socketio.Server.emit = emit
    from server import create_app

    app = create_app()
    sio = app.extensions["jauap_sio_server"]

    def bench_emit(sid, data):
        """Bench only: emit one appeal-shaped event to ``data['rooms']`` (never to the caller)."""
        seq = int(data["seq"])
        payload = {**SYNTHETIC, "id": -seq, "appeal": {**SYNTHETIC["appeal"], "id": -seq}}
        sio.emit("appeal.assigned", payload, to=list(data["rooms"]), skip_sid=sid, namespace="/")
        return {"ok": True}

    sio.on("bench.emit", bench_emit, namespace="/")
    return app


# The shape and size of a real appeal.assigned payload (server/realtime/publish.py event_payload).
SYNTHETIC = {
    "id": 0, "kind": "appeal.assigned", "at": "2026-11-24T12:00:00+00:00", "from_status": "routed",
    "to_status": "assigned",
    "appeal": {"id": 0, "reg_no": "TRK-2026-000000", "type": "complaint", "topic": "roads", "status": "assigned",
               "sector": "S1", "unit": "U1", "assignee_id": 1, "lon": 68.2712, "lat": 43.2975,
               "due_at": "2026-11-27T12:00:00+00:00"},
    "data": {"assignee_id": 1, "open_assignments": 3, "distance_m": 812.4, "rule": "fewest_open_then_nearest"},
}


# --- processes: redis, server ---------------------------------------------------------------------


class Server:
    """The production command for one process: gunicorn, one worker."""

    def __init__(self, args, instance: str, redis_url: str | None, app_spec: str = "fanout:instrumented_app()"):
        self.args = args
        self.instance = instance
        self.redis_url = redis_url
        self.app_spec = app_spec
        self.port = free_port()
        self.proc = None

    def start(self) -> Server:
        cmd = gunicorn_command(self.app_spec, self.port, "-w", "1", "--graceful-timeout", "5", "--keep-alive", "60",
                               "--backlog", "2048")
        if self.args.worker_class == "gevent":
            cmd += ["-k", "gevent", "--worker-connections", str(max(1000, 2 * self.args.clients + 100))]
        else:
            cmd += ["-k", "gthread", "--threads", str(max(16, self.args.clients + 50))]
        env = server_env(self.args.dsn, self.instance,
                         JAUAP_ASYNC_MODE="gevent" if self.args.worker_class == "gevent" else "threading")
        env.pop("JAUAP_REDIS_URL", None)
        if self.redis_url:
            env["JAUAP_REDIS_URL"] = self.redis_url
        self.proc = launch(cmd, env, log, f"  (JAUAP_REDIS_URL={self.redis_url})" if self.redis_url else "")
        try:
            wait_ready(self.proc, self.port)
        except BaseException:
            self.stop()
            raise
        return self

    def pids(self) -> list[int]:
        """The master and its workers."""
        try:
            children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
        except OSError:
            children = []
        return [self.proc.pid, *map(int, children)]

    def cpu_s(self) -> float:
        total = 0
        for pid in self.pids():
            with contextlib.suppress(OSError, IndexError):
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])
        return total / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        """Stop the master and its worker (SIGKILL after 15 s)."""
        stop_server(self.proc)


# --- Socket.IO client processes (spawned) ---------------------------------------------------------


def client_process(url: str, tokens: list[str], cmds, results, counter, number: int) -> None:
    """Hold ``len(tokens)`` websocket connections; stamp every appeal event on receipt; answer commands."""
    raise_fd_limit()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_client_loop(url, tokens, cmds, results, counter, number))


async def _client_loop(url, tokens, cmds, results, counter, number):
    import socketio

    records: list[tuple[str, int, str, float | None, float]] = []

    def recorder(kind):
        def on_event(payload):
            t_recv = time.time()
            records.append((kind, payload["appeal"]["id"], payload["at"], payload.get("bench_emit_t"), t_recv))
            with counter.get_lock():
                counter.value += 1
        return on_event

    def on_batch(message):
        # "appeal.events": several events of one commit in one message, stamped once before the emit
        t_recv = time.time()
        emit_t = message.get("bench_emit_t")
        for payload in message["events"]:
            records.append((payload["kind"], payload["appeal"]["id"], payload["at"], emit_t, t_recv))
        with counter.get_lock():
            counter.value += len(message["events"])

    gate = asyncio.Semaphore(16)

    async def connect(token):
        client = socketio.AsyncClient(reconnection=False)
        for kind in KINDS:
            client.on(kind, recorder(kind))
        client.on("appeal.events", on_batch)
        async with gate:
            await client.connect(url, auth={"token": token}, transports=["websocket"], wait_timeout=30)
        return client

    outcome = await asyncio.gather(*(connect(t) for t in tokens), return_exceptions=True)
    clients = [c for c in outcome if not isinstance(c, BaseException)]
    errors = [repr(e)[:200] for e in outcome if isinstance(e, BaseException)]
    results.put(("connected", number, len(clients), errors[:3]))
    loop = asyncio.get_running_loop()
    while True:
        cmd, arg = await loop.run_in_executor(None, cmds.get)
        if cmd == "echo":
            per_client, sample = arg
            rtts = []
            for client in clients[:sample]:
                for i in range(per_client):
                    t0 = time.perf_counter()
                    answer = await client.call("echo", {"i": i}, timeout=10)
                    rtts.append((time.perf_counter() - t0) * 1000.0)
                    assert answer == {"ok": True, "data": {"i": i}}, answer
            results.put(("echo", number, rtts))
        elif cmd == "collect":
            results.put(("records", number, records[:]))
            records.clear()
        else:  # stop
            break
    with contextlib.suppress(Exception):
        await asyncio.wait_for(asyncio.gather(*(c.disconnect() for c in clients), return_exceptions=True), 5)
    results.put(("stopped", number, None))


class ClientFleet:
    """``n`` clients over ``procs`` spawned processes; which room each client is in is known here."""

    def __init__(self, url: str, people: dict, n: int, procs: int):
        self.ctx = mp.get_context("spawn")
        self.url = url
        self.counter = self.ctx.Value("q", 0)
        self.results = self.ctx.Queue()
        n_centre = max(1, n // 50)
        units = sorted(people["units"])
        self.members: list[tuple[str, str]] = []  # (room group: "centre" or unit code, token)
        for i in range(n_centre):
            self.members.append(("centre", people["centre"][i % len(people["centre"])]))
        for i in range(n - n_centre):
            unit = units[i % len(units)]
            tokens = people["units"][unit]
            self.members.append((unit, tokens[(i // len(units)) % len(tokens)]))
        self.per_group: dict[str, int] = {}
        for group, _token in self.members:
            self.per_group[group] = self.per_group.get(group, 0) + 1
        procs = max(1, min(procs, n))
        self.cmds = [self.ctx.Queue() for _ in range(procs)]
        shares = [[t for i, (_g, t) in enumerate(self.members) if i % procs == p] for p in range(procs)]
        self.procs = [self.ctx.Process(target=client_process, args=(url, shares[p], self.cmds[p], self.results,
                                                                    self.counter, p), daemon=True)
                      for p in range(procs)]

    def cpu_s(self) -> float:
        """utime + stime of the client processes."""
        total = 0
        for p in self.procs:
            with contextlib.suppress(OSError, IndexError):
                fields = Path(f"/proc/{p.pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])
        return total / os.sysconf("SC_CLK_TCK")

    def recipients(self, unit: str | None) -> int:
        """Connections an appeal event of ``unit`` reaches: the centre and that unit's sector rooms."""
        return self.per_group.get("centre", 0) + (self.per_group.get(unit, 0) if unit else 0)

    def _gather(self, kind: str, timeout: float) -> list:
        got, deadline = [], time.monotonic() + timeout
        while len(got) < len(self.procs):
            try:
                msg = self.results.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                raise RuntimeError(f"client processes did not answer '{kind}' in {timeout:.0f} s") from None
            if msg[0] == kind:
                got.append(msg)
        return got

    def start(self) -> ClientFleet:
        t0 = time.monotonic()
        for p in self.procs:
            p.start()
        answers = self._gather("connected", 180)
        connected = sum(a[2] for a in answers)
        errors = [e for a in answers for e in a[3]]
        if connected != len(self.members):
            raise RuntimeError(f"only {connected}/{len(self.members)} clients connected: {errors}")
        log(f"{connected} clients connected in {time.monotonic() - t0:.1f} s over {len(self.procs)} processes "
            f"(rooms: {dict(sorted(self.per_group.items()))})")
        return self

    def echo(self, per_client: int, sample: int) -> list[float]:
        rtts = []
        for cmds in self.cmds:  # one process at a time: unloaded round trips
            cmds.put(("echo", (per_client, sample)))
            rtts += self._gather_one("echo", 120)
        return rtts

    def _gather_one(self, kind: str, timeout: float):
        deadline = time.monotonic() + timeout
        while True:
            msg = self.results.get(timeout=max(0.1, deadline - time.monotonic()))
            if msg[0] == kind:
                return msg[2]

    def collect(self) -> list[tuple[str, int, str, float | None, float]]:
        for cmds in self.cmds:
            cmds.put(("collect", None))
        return [r for msg in self._gather("records", 120) for r in msg[2]]

    def stop(self) -> None:
        for cmds, p in zip(self.cmds, self.procs, strict=True):
            if p.is_alive():
                cmds.put(("stop", None))
        deadline = time.monotonic() + 15
        for p in self.procs:
            p.join(timeout=max(0.1, deadline - time.monotonic()))
            if p.is_alive():
                p.terminate()
                p.join(timeout=5)


# --- load: POST appeals -------------------------------------------------------------------------------


class Poster:
    """POSTs appeals over one keep-alive connection, round-robin over the sectors."""

    def __init__(self, port: int, token: str, points: dict, sector_unit: dict, seed: int):
        self.port = port
        self.token = token
        self.points = points
        self.sector_unit = sector_unit
        self.codes = sorted(points)
        self.rnd = random.Random(seed)
        self.i = seed
        self.conn = None

    def post(self) -> tuple[float, float, dict]:
        code = self.codes[self.i % len(self.codes)]
        self.i += 1
        lon, lat = self.rnd.choice(self.points[code])
        body = json.dumps({
            "type": "complaint", "topic": self.rnd.choice(("roads", "water_supply", "street_lighting")),
            "description": f"Fan-out bench appeal {uuid.uuid4().hex[:8]}", "lat": lat, "lon": lon,
            "accuracy_m": 10, "channel": "phone",
            "citizen": {"name": "Bench Citizen", "phone": f"+7 701 {self.rnd.randint(0, 9_999_999):07d}",
                        "language": "ru"},
        }).encode()
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json",
                   "Idempotency-Key": f"fanout-{uuid.uuid4().hex}"}
        for attempt in (1, 2):  # a keep-alive connection the server closed while idle: reconnect once
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            t_sent = time.time()
            try:
                self.conn.request("POST", "/api/v1/appeals", body=body, headers=headers)
                res = self.conn.getresponse()
                data = res.read()
                break
            except (ConnectionError, http.client.HTTPException):
                self.close()
                if attempt == 2:
                    raise
        t_resp = time.time()
        if res.status != 201:
            raise RuntimeError(f"POST /api/v1/appeals answered {res.status}: {data[:300]!r}")
        return t_sent, t_resp, json.loads(data)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.conn = None


def expected_deliveries(appeal: dict, fleet: ClientFleet | None, sector_unit: dict) -> int:
    if fleet is None:
        return 0
    sector = (appeal.get("sector") or {}).get("code")
    unit = sector_unit.get(sector) if sector else None
    n_events = 3 if appeal["status"] == "assigned" else 2
    return n_events * fleet.recipients(unit)


def latency_batch(server: Server, poster: Poster, fleet: ClientFleet | None, n: int, sector_unit: dict) -> dict:
    """``n`` appeals one after another, each waited for until delivered; server CPU over the batch."""
    sent: dict[int, tuple[float, float]] = {}
    expected = 0
    timeouts = 0
    cpu0 = server.cpu_s()
    client0 = fleet.cpu_s() if fleet is not None else 0.0
    machine0 = cpu_sample()
    t0 = time.monotonic()
    for _ in range(n):
        t_sent, t_resp, appeal = poster.post()
        sent[appeal["id"]] = (t_sent, t_resp)
        expected += expected_deliveries(appeal, fleet, sector_unit)
        if fleet is not None:
            deadline = time.monotonic() + WAIT_PER_EVENT_S
            while fleet.counter.value < expected and time.monotonic() < deadline:
                time.sleep(0.001)
            timeouts += fleet.counter.value < expected
    cpu = server.cpu_s() - cpu0
    out = {"appeals": n, "seconds": round(time.monotonic() - t0, 2), "server_cpu_s": round(cpu, 3),
           "machine_busy_pct": cpu_busy_pct(machine0, cpu_sample()), "expected_deliveries": expected,
           "waits_timed_out": timeouts}
    if fleet is not None:
        out["client_cpu_s"] = round(fleet.cpu_s() - client0, 3)
        records = [r for r in fleet.collect() if r[1] in sent]
        fleet.counter.value = 0
        out.update(latencies(records, sent))
        out["deliveries"] = len(records)
    return out


_SEQ = iter(range(1, 10**9))


def connect_control(url: str, token: str):
    """A plain client that only triggers synthetic emits (it is skipped by them)."""
    import socketio

    control = socketio.Client(reconnection=False)
    control.connect(url, auth={"token": token}, transports=["websocket"], wait_timeout=10)
    return control


def synthetic_batch(server: Server, fleet: ClientFleet, control, unit_sectors: dict, n: int, empty: bool) -> dict:
    """``n`` single appeal-shaped emits from inside the server (``bench.emit``), one at a time, each waited for.

    No intake work at all: server CPU here is the trigger + the fan-out. ``empty``: to a room nobody is
    in, which measures the trigger alone (and the Redis hop in redis mode).
    """
    units = sorted(unit_sectors)
    expected, timeouts, seqs = 0, 0, set()
    server0, client0, machine0, t0 = server.cpu_s(), fleet.cpu_s(), cpu_sample(), time.monotonic()
    for i in range(n):
        unit = units[i % len(units)]
        rooms = ["sector:-nobody-"] if empty else ["centre", *(f"sector:{c}" for c in unit_sectors[unit])]
        seq = next(_SEQ)
        seqs.add(-seq)
        answer = control.call("bench.emit", {"rooms": rooms, "seq": seq}, timeout=10)
        if answer != {"ok": True}:
            raise RuntimeError(f"bench.emit answered {answer!r}")
        if not empty:
            expected += fleet.recipients(unit)
            deadline = time.monotonic() + WAIT_PER_EVENT_S
            while fleet.counter.value < expected and time.monotonic() < deadline:
                time.sleep(0.0005)
            timeouts += fleet.counter.value < expected
    out = {"events": n, "seconds": round(time.monotonic() - t0, 2), "server_cpu_s": round(server.cpu_s() - server0, 3),
           "client_cpu_s": round(fleet.cpu_s() - client0, 3), "machine_busy_pct": cpu_busy_pct(machine0, cpu_sample()),
           "expected_deliveries": expected,
           "waits_timed_out": timeouts}
    records = [r for r in fleet.collect() if r[1] in seqs]
    fleet.counter.value = 0
    ms = [(r[4] - r[3]) * 1000.0 for r in records if r[3] is not None]
    out["deliveries"] = len(records)
    out["emit_to_receipt_ms"] = {"p50": r3(pct(ms, 0.5)), "p99": r3(pct(ms, 0.99)), "max": r3(max(ms, default=None)),
                                 "n": len(ms)}
    return out


def latencies(records, sent) -> dict:
    """emit -> receipt (the measure), and for reference: POST response -> receipt, request start -> receipt."""
    emit = {"all": [], "appeal.assigned": []}
    after_resp, after_at, first = [], [], {}
    for kind, appeal_id, _at, emit_t, t_recv in records:
        if emit_t is not None:
            first[(appeal_id, kind)] = min(first.get((appeal_id, kind), t_recv), t_recv)
    spread = []
    for kind, appeal_id, at, emit_t, t_recv in records:
        if appeal_id not in sent or emit_t is None:
            continue
        ms = (t_recv - emit_t) * 1000.0
        emit["all"].append(ms)
        spread.append((t_recv - first[(appeal_id, kind)]) * 1000.0)
        if kind == "appeal.assigned":
            emit[kind].append(ms)
            after_resp.append((t_recv - sent[appeal_id][1]) * 1000.0)
            after_at.append((t_recv - datetime.fromisoformat(at).timestamp()) * 1000.0)

    def dist(values):
        return {"p50": r3(pct(values, 0.5)), "p99": r3(pct(values, 0.99)), "max": r3(max(values, default=None)),
                "n": len(values)}

    return {
        "assigned_emit_to_receipt_ms": dist(emit["appeal.assigned"]),
        "all_emit_to_receipt_ms": dist(emit["all"]),
        "first_to_last_receipt_ms": dist(spread),
        "assigned_post_response_to_receipt_ms": dist(after_resp),
        "assigned_request_start_to_receipt_ms": dist(after_at),
    }


def throughput_batch(port: int, token: str, points, sector_unit, fleet: ClientFleet, n: int) -> dict:
    """``n`` appeals from THROUGHPUT_THREADS threads at once; deliveries per second until the last receipt."""
    posters = [Poster(port, token, points, sector_unit, seed=1000 + i) for i in range(THROUGHPUT_THREADS)]
    lock = threading.Lock()
    state = {"left": n, "expected": 0, "first": None, "errors": []}

    def work(poster):
        while True:
            with lock:
                if state["left"] <= 0:
                    return
                state["left"] -= 1
            try:
                t_sent, _t_resp, appeal = poster.post()
            except Exception as exc:
                with lock:
                    state["errors"].append(repr(exc)[:200])
                return
            with lock:
                state["first"] = t_sent if state["first"] is None else min(state["first"], t_sent)
                state["expected"] += expected_deliveries(appeal, fleet, sector_unit)

    threads = [threading.Thread(target=work, args=(p,)) for p in posters]
    t_start = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    posted_s = time.time() - t_start
    deadline = time.monotonic() + 10
    while fleet.counter.value < state["expected"] and time.monotonic() < deadline:
        time.sleep(0.005)
    for p in posters:
        p.close()
    records = fleet.collect()
    fleet.counter.value = 0
    if state["errors"]:
        raise RuntimeError(f"throughput POSTs failed: {state['errors'][:3]}")
    last = max((r[4] for r in records), default=t_start)
    span = last - (state["first"] or t_start)
    return {"appeals": n, "appeals_per_s": round(n / posted_s, 1), "deliveries": len(records),
            "expected_deliveries": state["expected"], "seconds": round(span, 3),
            "deliveries_per_s": round(len(records) / span, 1) if span > 0 else None}


def synthetic_phase(server: Server, fleet: ClientFleet, people: dict, name: str) -> dict:
    """Fan-out CPU and latency without intake: synthetic emits to nobody (the trigger), then to the rooms."""
    per_event = sum(fleet.recipients(u) for u in people["unit_sectors"]) / len(people["unit_sectors"])
    n_synth = max(300, min(2000, round(SYNTHETIC_DELIVERIES / per_event)))
    log(f"[{name}] {len(fleet.members)} clients: {n_synth} synthetic emits to nobody, then to ~{per_event:.1f} "
        "clients each")
    control = connect_control(fleet.url, people["operator"])
    try:
        empty = synthetic_batch(server, fleet, control, people["unit_sectors"], n_synth, empty=True)
        synth = synthetic_batch(server, fleet, control, people["unit_sectors"], n_synth, empty=False)
    finally:
        threading.Thread(target=control.disconnect, daemon=True).start()
    deliveries = synth["deliveries"] or 1
    synth["trigger_only_server_cpu_s"] = empty["server_cpu_s"]
    synth["server_cpu_ms_per_delivery"] = r3(synth["server_cpu_s"] * 1000.0 / deliveries)
    synth["server_cpu_ms_per_delivery_marginal"] = r3(
        max(0.0, synth["server_cpu_s"] - empty["server_cpu_s"]) * 1000.0 / deliveries)
    synth["client_cpu_ms_per_delivery"] = r3(synth["client_cpu_s"] * 1000.0 / deliveries)
    return synth


# --- one mode -----------------------------------------------------------------------------------------


def run_mode(name: str, args, people: dict, points, instance: str, redis_url: str | None) -> dict:
    log(f"=== mode {name} ===")
    server = Server(args, instance, redis_url).start()
    result: dict = {"mode": name}
    try:
        poster = Poster(server.port, people["operator"], points, people["sector_unit"], seed=7)
        latency_batch(server, poster, None, 20, people["sector_unit"])  # warm-up (imports, caches, pool)
        log(f"[{name}] baseline: {args.events} appeals with no client connected")
        result["clients_0"] = latency_batch(server, poster, None, args.events, people["sector_unit"])
        for n in (args.small, args.clients):
            log(f"[{name}] {n} clients: connecting")
            fleet = ClientFleet(f"http://127.0.0.1:{server.port}", people, n, args.client_procs).start()
            try:
                echo = fleet.echo(args.echo_per_client, args.echo_sample)
                phase = {"echo_ms": {"p50": r3(pct(echo, 0.5)), "p99": r3(pct(echo, 0.99)), "n": len(echo)}}
                phase["synthetic"] = synthetic_phase(server, fleet, people, name)
                log(f"[{name}] {n} clients: echo p50 {phase['echo_ms']['p50']} ms; latency batch")
                latency_batch(server, poster, fleet, 10, people["sector_unit"])  # warm-up
                phase["latency"] = latency_batch(server, poster, fleet, args.events, people["sector_unit"])
                if n == args.clients:
                    log(f"[{name}] {n} clients: throughput batch")
                    phase["throughput"] = throughput_batch(server.port, people["operator"], points,
                                                           people["sector_unit"], fleet, args.events)
            finally:
                fleet.stop()
            result[f"clients_{n}"] = phase
        log(f"[{name}] baseline again: {args.events} appeals with no client connected")
        again = latency_batch(server, poster, None, args.events, people["sector_unit"])
        poster.close()
    finally:
        server.stop()
    first = result["clients_0"]
    base_cpu = (first["server_cpu_s"] + again["server_cpu_s"]) / 2
    result["clients_0"] = {"appeals": args.events, "server_cpu_s_each": [first["server_cpu_s"], again["server_cpu_s"]],
                           "cpu_ms_per_appeal": round(base_cpu * 1000.0 / args.events, 3)}
    for n in (args.small, args.clients):
        lat = result[f"clients_{n}"]["latency"]
        lat["cpu_ms_per_delivery_gross"] = r3(lat["server_cpu_s"] * 1000.0 / (lat["deliveries"] or 1))
    return result


# --- the floor: bare python-socketio --------------------------------------------------------------------


def run_floor(args, instance: str) -> dict:
    """bench/_floor_fanout.py (no Jauap code, no database) under the same command, clients and synthetic emits."""
    log("=== floor: bare python-socketio ===")
    units = [f"U{n}" for n in range(1, 7)]
    people = {"operator": "centre", "centre": ["centre"], "units": {u: [u] for u in units},
              "unit_sectors": {u: [u] for u in units}}
    server = Server(args, instance, None, app_spec="_floor_fanout:app").start()
    result: dict = {"mode": "floor"}
    try:
        for n in (args.small, args.clients):
            log(f"[floor] {n} clients: connecting")
            fleet = ClientFleet(f"http://127.0.0.1:{server.port}", people, n, args.client_procs).start()
            try:
                echo = fleet.echo(args.echo_per_client, args.echo_sample)
                phase = {"echo_ms": {"p50": r3(pct(echo, 0.5)), "p99": r3(pct(echo, 0.99)), "n": len(echo)}}
                phase["synthetic"] = synthetic_phase(server, fleet, people, "floor")
            finally:
                fleet.stop()
            result[f"clients_{n}"] = phase
    finally:
        server.stop()
    return result


def print_floor(floor: dict, results: dict, args) -> list[dict]:
    """The floor's figures, its goal rows, and Jauap's latency next to it."""
    rows = []
    for n in (args.small, args.clients):
        phase = floor[f"clients_{n}"]
        syn, echo = phase["synthetic"], phase["echo_ms"]
        d = syn["emit_to_receipt_ms"]
        print(f"\n[floor] {n:4d} clients: echo p50 {echo['p50']} ms p99 {echo['p99']} ms; one event to ~"
              f"{syn['expected_deliveries'] / max(1, syn['events']):.0f} clients ({syn['events']} emits): "
              f"emit -> receipt p50 {d['p50']} ms p99 {d['p99']} ms max {d['max']} ms; server CPU per delivery "
              f"{syn['server_cpu_ms_per_delivery_marginal']} ms (marginal); machine {syn['machine_busy_pct']} % busy")
    big = floor[f"clients_{args.clients}"]
    p50, p99 = big["synthetic"]["emit_to_receipt_ms"]["p50"], big["synthetic"]["emit_to_receipt_ms"]["p99"]
    echo = big["echo_ms"]["p50"]
    ratio = p50 / echo if p50 is not None and echo else None
    rows.append({"goal": f"FLOOR one event emit->receipt p50 / echo p50, {args.clients} clients", "mode": "floor",
                 "value": r3(ratio), "limit": f"<= {GOALS['p50_over_echo']}x",
                 "pass": ratio is not None and ratio <= GOALS["p50_over_echo"]})
    rows.append({"goal": f"FLOOR one event emit->receipt p99, {args.clients} clients (ms)", "mode": "floor",
                 "value": r3(p99), "limit": f"<= {GOALS['p99_ms']} ms",
                 "pass": p99 is not None and p99 <= GOALS["p99_ms"]})
    for mode, res in results.items():
        jb = res[f"clients_{args.clients}"]
        j_syn = jb["synthetic"]["emit_to_receipt_ms"]["p50"]
        j_post = jb["latency"]["assigned_emit_to_receipt_ms"]["p50"]
        print(f"[{mode} vs floor] {args.clients} clients: p50 one synthetic event {j_syn} ms vs floor {p50} ms "
              f"(x{r3(j_syn / p50) if j_syn and p50 else None}); appeal.assigned after a POST {j_post} ms "
              f"(x{r3(j_post / p50) if j_post and p50 else None})")
    return rows


# --- report -------------------------------------------------------------------------------------------


def print_mode(res: dict, args) -> None:
    name = res["mode"]
    base = res["clients_0"]
    print(f"\n[{name}] no clients: {base['appeals']} appeals, server CPU {base['server_cpu_s_each']} s for a batch "
          f"before and after the client phases ({base['cpu_ms_per_appeal']} ms per appeal: intake)")
    for n in (args.small, args.clients):
        phase = res[f"clients_{n}"]
        lat, syn, echo = phase["latency"], phase["synthetic"], phase["echo_ms"]
        print(f"[{name}] {n:4d} clients: echo round trip p50 {echo['p50']} ms p99 {echo['p99']} ms (n={echo['n']})")
        d = syn["emit_to_receipt_ms"]
        print(f"        synthetic single emits ({syn['events']}): emit -> receipt p50 {d['p50']} ms p99 {d['p99']} ms "
              f"max {d['max']} ms; deliveries {syn['deliveries']}/{syn['expected_deliveries']}; machine "
              f"{syn['machine_busy_pct']} % busy")
        print(f"          server CPU per delivery {syn['server_cpu_ms_per_delivery']} ms (marginal, trigger removed: "
              f"{syn['server_cpu_ms_per_delivery_marginal']} ms); client processes "
              f"{syn['client_cpu_ms_per_delivery']} ms")
        print(f"        POSTed appeals ({lat['appeals']}, 3 events each), deliveries {lat['deliveries']}/"
              f"{lat['expected_deliveries']} (waits over {WAIT_PER_EVENT_S:g} s: {lat['waits_timed_out']}); machine "
              f"{lat['machine_busy_pct']} % busy:")
        for key, label in (("assigned_emit_to_receipt_ms", "appeal.assigned emit -> receipt"),
                           ("all_emit_to_receipt_ms", "all 3 kinds emit -> receipt"),
                           ("first_to_last_receipt_ms", "first client's receipt -> each receipt"),
                           ("assigned_post_response_to_receipt_ms", "(ref) POST response -> receipt"),
                           ("assigned_request_start_to_receipt_ms", "(ref) event 'at' -> receipt")):
            d = lat[key]
            print(f"          {label:40s} p50 {d['p50']:>8} ms  p99 {d['p99']:>8} ms  max {d['max']:>8} ms  n={d['n']}")
        print(f"          server CPU {lat['server_cpu_s']} s (per delivery, intake included: "
              f"{lat['cpu_ms_per_delivery_gross']} ms), client processes {lat['client_cpu_s']} s")
        if "throughput" in phase:
            t = phase["throughput"]
            print(f"        throughput ({THROUGHPUT_THREADS} posting threads): {t['appeals_per_s']} appeals/s, "
                  f"{t['deliveries_per_s']} deliveries/s ({t['deliveries']}/{t['expected_deliveries']} in "
                  f"{t['seconds']} s)")


def goals(results: dict, args) -> list[dict]:
    rows = []

    def row(goal, mode, value, limit, ok):
        rows.append({"goal": goal, "mode": mode, "value": r3(value), "limit": limit,
                     "pass": bool(ok) if value is not None else False})

    def ratio(a, b):
        return a / b if a is not None and b else None

    for mode, res in results.items():
        big = res[f"clients_{args.clients}"]
        small = res[f"clients_{args.small}"]
        p50 = big["latency"]["assigned_emit_to_receipt_ms"]["p50"]
        p99 = big["latency"]["assigned_emit_to_receipt_ms"]["p99"]
        r = ratio(p50, big["echo_ms"]["p50"])
        row(f"appeal.assigned emit->receipt p50 / echo p50, {args.clients} clients", mode, r,
            f"<= {GOALS['p50_over_echo']}x", r is not None and r <= GOALS["p50_over_echo"])
        row(f"appeal.assigned emit->receipt p99, {args.clients} clients (ms)", mode, p99, f"<= {GOALS['p99_ms']} ms",
            p99 is not None and p99 <= GOALS["p99_ms"])
        r = ratio(big["synthetic"]["server_cpu_ms_per_delivery_marginal"],
                  small["synthetic"]["server_cpu_ms_per_delivery_marginal"])
        row(f"server CPU per delivery, {args.clients} / {args.small} clients", mode, r, f"<= {GOALS['cpu_ratio']}x",
            r is not None and r <= GOALS["cpu_ratio"])
    if "single" in results and "redis" in results:
        s = results["single"][f"clients_{args.clients}"]
        q = results["redis"][f"clients_{args.clients}"]
        key = "assigned_emit_to_receipt_ms"
        r = ratio(q["latency"][key]["p50"], s["latency"][key]["p50"])
        row(f"emit->receipt p50 redis / single, {args.clients} clients", "both", r,
            f"<= {GOALS['redis_latency_ratio']}x", r is not None and r <= GOALS["redis_latency_ratio"])
        r = ratio(q["throughput"]["deliveries_per_s"], s["throughput"]["deliveries_per_s"])
        row(f"deliveries/s redis / single, {args.clients} clients", "both", r,
            f">= {GOALS['redis_throughput_ratio']}x", r is not None and r >= GOALS["redis_throughput_ratio"])
    return rows


def print_goals(rows) -> None:
    print("\n| goal | mode | value | limit | result |\n|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['goal']} | {r['mode']} | {r['value']} | {r['limit']} | {'PASS' if r['pass'] else 'FAIL'} |")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clients", type=int, default=500, help="Socket.IO clients in the big phase (default 500)")
    p.add_argument("--small", type=int, default=10, help="clients in the small phase (default 10)")
    p.add_argument("--events", type=int, default=200, help="appeals per measured batch, 3 events each (default 200)")
    p.add_argument("--client-procs", type=int, default=4, help="client processes (default 4)")
    p.add_argument("--echo-sample", type=int, default=25, help="clients per process doing echo (default 25)")
    p.add_argument("--echo-per-client", type=int, default=4, help="echo calls per sampled client (default 4)")
    p.add_argument("--worker-class", default="gevent", choices=("gevent", "gthread"),
                   help="gunicorn worker class (default gevent, the production one)")
    p.add_argument("--modes", default="single,redis", help="comma list of single,redis (default both)")
    p.add_argument("--redis-url", default=None, help="use this Redis instead of a private redis-server")
    p.add_argument("--dsn", default=DEFAULT_DSN, help=f"bench database, recreated (default {DEFAULT_DSN})")
    p.add_argument("--floor", action="store_true",
                   help="also measure the floor: a bare python-socketio server (bench/_floor_fanout.py)")
    p.add_argument("--floor-only", action="store_true", help="measure only the floor (no database, no Jauap)")
    args = p.parse_args(argv)
    if not (1 <= args.small < args.clients <= 5000) or not (1 <= args.events <= 10_000):
        p.error("need 1 <= --small < --clients <= 5000 and 1 <= --events <= 10000")
    return args


class _Done(Exception):
    """Nothing more to measure (``--floor-only``)."""


def main(argv=None) -> int:
    args = parse_args(argv)
    sys.path.insert(0, str(REPO))
    sigterm_as_interrupt()
    log(f"open-file limit {raise_fd_limit()}")
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    results: dict = {}
    floor = None
    redis = None
    if args.floor_only:
        modes, args.floor = [], True
    with tempfile.TemporaryDirectory(prefix="jauap-fanout-") as instance:
        try:
            warn_if_busy()
            if args.floor:
                floor = run_floor(args, instance)
            if not modes:
                raise _Done
            log(f"recreating {args.dsn}")
            recreate_database(args.dsn)
            people = prepare_people(args.dsn, instance)
            points = sector_points(64)
            for mode in modes:
                redis_url = None
                if mode == "redis":
                    if args.redis_url:
                        redis_url = args.redis_url
                    else:
                        try:
                            redis = RedisServer(instance).start()
                        except RedisMissing as exc:
                            raise SystemExit(f"{exc} (or pass --redis-url)") from None
                        redis_url = redis.url
                        log(f"private redis-server on {redis_url}")
                results[mode] = run_mode(mode, args, people, points, instance, redis_url)
        except _Done:
            pass
        except KeyboardInterrupt:
            log("interrupted")
            return 130
        finally:
            if redis is not None:
                redis.stop()
    for res in results.values():
        print_mode(res, args)
    rows = goals(results, args)
    passed = bool(rows) and all(r["pass"] for r in rows)
    if floor is not None:
        rows += print_floor(floor, results, args)
    print_goals(rows)
    summary = {"bench": "fanout", "server": f"gunicorn -k {args.worker_class} -w 1", "clients": args.clients,
               "small": args.small, "events_per_batch": args.events, "client_procs": args.client_procs,
               "measured": "appeal.assigned: client time.time() on receipt minus server time.time() just before "
                           "socketio.Server.emit (bench-side wrapper fanout:instrumented_app)",
               "results": results, "floor": floor, "goals": rows, "pass": passed}
    print(json.dumps(summary), flush=True)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())

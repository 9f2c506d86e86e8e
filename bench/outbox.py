"""Field outbox replay: 20 devices come back online at once and replay their queued actions, photos included.

Usage::

    python bench/outbox.py [--devices 20] [--appeals 4] [--workers 2] [--threads 8]
                           [--dsn postgresql://postgres@127.0.0.1:5432/jauap_bench_outbox]

What it does:

1. (Re)creates the bench database, migrates it and loads the sectors (``bench/intake.py``'s
   helpers), then creates one field staff member per device (round-robin over units U1..U6) and,
   per device, ``--appeals`` + 1 appeals at random points inside that unit's sectors
   (``bench/fanout.py``'s ``sector_points``), each assigned to that device's person by a dispatcher.
2. Starts ONE gunicorn (``server:create_app()``, gthread, ``--workers`` x ``--threads``) on a free
   loopback port over PostGIS, as ``bench/intake.py`` does, and waits for ``/readyz``.
3. Builds each device's offline outbox before the clock starts: per appeal ``accept``, ``depart``,
   ``arrive`` (at the appeal point), a "before" photo, an "after" photo, ``resolve``, i.e. 6 actions;
   4 appeals + the ``accept`` of a fifth = 25 actions per device, each with its own client UUID.
   Photos are 1600 x 1200 canvas-like JPEGs (no EXIF, as the field app sends them), about 0.4 MB.
4. Each device (a thread with its own keep-alive HTTP session) logs in as its own person
   (``POST /api/v1/auth/token``) and, on a common start signal, replays its outbox in order.
   Every action is sent TWICE - the second time as if the first reply had been lost - and the
   two answers must be the same JSON (the first photo answer is 201, its replay 200).
   Progress is printed every 2 s.
5. Prints: seconds until every device's outbox was accepted (goal < 120 s), duplicates (goal 0),
   server errors (5xx or a broken connection; goal 0), replay mismatches and other refusals
   (must be 0 too), and one JSON line. Duplicates are counted in the database: the field events
   of the bench appeals (accepted, en_route, on_site, resolved, photo_added) minus the client
   actions stored (each accepted UUID makes exactly one event), plus any (appeal, step) that
   happened more than once, plus attachments beyond two per visited appeal.

Exit status 0 when every goal passes, 1 otherwise, 130 on Ctrl-C. gunicorn is stopped on every
exit path; the bench database is kept for inspection and recreated on the next run.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from _servers import SECRET, sigterm_as_interrupt
from fanout import sector_points
from intake import prepare_database, recreate_database, serve, stop_server, warn_if_busy

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/jauap_bench_outbox"
PASSWORD = "bench-field-password-109"
GOAL_SECONDS = 120.0
STEP_KINDS = ("appeal.accepted", "appeal.en_route", "appeal.on_site", "appeal.resolved")


def log(msg: str) -> None:
    print(f"[outbox-bench] {msg}", file=sys.stderr, flush=True)


# --- 1. people and appeals ------------------------------------------------------------------------


def prepare_devices(dsn: str, instance: str, devices: int, appeals: int) -> list[dict]:
    """One field staff member per device, each with ``appeals + 1`` appeals assigned: [{username, appeals}]."""
    from sqlalchemy import select

    from server import create_app
    from server.config import Config
    from server.extensions import db
    from server.models import Sector
    from server.models.types import utcnow
    from server.schemas import AppealIn
    from server.services import dispatch
    from server.services.intake import register_appeal
    from server.services.lifecycle import Actor
    from server.services.staff import create_staff

    prepare_database(dsn, instance)  # migrate, sectors, an operator
    app = create_app(Config(secret_key=SECRET, instance_path=instance, database_url=dsn))
    points = sector_points(per_sector=devices * (appeals + 1))
    operator, dispatcher = Actor("staff", "operator"), Actor("staff", "dispatcher")
    out = []
    with app.app_context():
        now = utcnow()
        unit_sectors: dict[str, list[str]] = {}
        for sector in db.session.scalars(select(Sector)):
            unit_sectors.setdefault(sector.unit.code, []).append(sector.code)
        for d in range(devices):
            unit = f"U{d % 6 + 1}"
            person = create_staff(f"bench-device-{d:02d}", "field_staff", PASSWORD, unit_code=unit, now=now)
            ids = []
            for a in range(appeals + 1):
                code = unit_sectors[unit][a % len(unit_sectors[unit])]
                lon, lat = points[code].pop()
                body = AppealIn(type="complaint", topic="roads", description=f"Bench pothole {d}-{a}",
                                lat=lat, lon=lon, accuracy_m=10, channel="phone")
                appeal = register_appeal(body, actor=operator, now=now).appeal  # nobody on duty: routed
                dispatch.reassign(appeal, dispatcher, now, staff_id=person.id)
                ids.append({"id": appeal.id, "lat": lat, "lon": lon})
            out.append({"username": person.username, "appeals": ids})
        db.session.commit()
        db.session.remove()
        db.engine.dispose()
    return out


# --- 2. the outbox --------------------------------------------------------------------------------


def canvas_photo(label: str, seed: int) -> bytes:
    """A 1600 x 1200 JPEG like the field app's canvas output: no EXIF, some texture, unique content."""
    from PIL import Image, ImageDraw

    w, h = 1600, 1200
    base = Image.linear_gradient("L").resize((w, h))
    noise = Image.effect_noise((w, h), 10 + seed % 5)
    image = Image.merge("RGB", (base, noise, Image.blend(base, noise, 0.4)))
    ImageDraw.Draw(image).text((40, 40), label, fill=(255, 255, 255))
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=85)
    return buf.getvalue()


@dataclass
class Action:
    """One queued request of a device's outbox."""

    label: str
    path: str
    key: str
    json: dict | None = None
    form: dict | None = None
    photo: bytes | None = None


def build_outbox(device: dict, index: int) -> list[Action]:
    """The device's queue: per appeal accept, depart, arrive, before photo, after photo, resolve; then one accept."""
    queue = []
    *visits, last = device["appeals"]
    for a, appeal in enumerate(visits):
        base = f"/api/v1/appeals/{appeal['id']}"
        here = {"lat": appeal["lat"] + 0.0002, "lon": appeal["lon"], "accuracy_m": 12.0}  # ~22 m off the point

        def step(action, position=None, _base=base, _a=a):
            body = {"action": action, "device_time": "2026-03-02T10:30:00+05:00"}
            if position:
                body["position"] = position
            return Action(f"{action} #{_a}", f"{_base}/transitions", str(uuid.uuid4()), json=body)

        def photo(kind, _base=base, _a=a, _here=here):
            data = canvas_photo(f"device {index} appeal {_a} {kind}", index * 10 + _a)
            form = {"kind": kind, "sha256": hashlib.sha256(data).hexdigest(), "lat": str(_here["lat"]),
                    "lon": str(_here["lon"]), "accuracy_m": "12", "device_time": "2026-03-02T11:00:00+05:00"}
            return Action(f"{kind} photo #{_a}", f"{_base}/photos", str(uuid.uuid4()), form=form, photo=data)

        queue += [step("accept"), step("depart", here), step("arrive", here), photo("before"), photo("after"),
                  step("resolve", here)]
    queue.append(Action("accept #last", f"/api/v1/appeals/{last['id']}/transitions", str(uuid.uuid4()),
                        json={"action": "accept"}))
    return queue


# --- 3. the devices ---------------------------------------------------------------------------------


@dataclass
class Tally:
    """Shared counters (under one lock)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    accepted: int = 0
    requests: int = 0
    server_errors: int = 0
    refused: int = 0
    mismatches: int = 0
    samples: list[str] = field(default_factory=list)
    finished_at: dict[int, float] = field(default_factory=dict)

    def note(self, **counts) -> None:
        with self.lock:
            for name, n in counts.items():
                setattr(self, name, getattr(self, name) + n)

    def sample(self, text: str) -> None:
        with self.lock:
            if len(self.samples) < 10:
                self.samples.append(text)


def send(session, base: str, action: Action, headers: dict):
    """One HTTP request for ``action``: (status, json or None); raises on a broken connection."""
    hdrs = {**headers, "Idempotency-Key": action.key}
    if action.photo is not None:
        files = {"file": ("photo.jpg", action.photo, "image/jpeg")}
        res = session.post(base + action.path, data=action.form, files=files, headers=hdrs, timeout=120)
    else:
        res = session.post(base + action.path, json=action.json, headers=hdrs, timeout=120)
    try:
        body = res.json()
    except ValueError:
        body = None
    return res.status_code, body


def run_device(index: int, device: dict, queue: list[Action], base: str, start: threading.Barrier,
               tally: Tally, t0: list[float]) -> None:
    """Log in, wait for the common start, replay the outbox in order, each action twice."""
    import requests

    session = requests.Session()
    login = session.post(base + "/api/v1/auth/token", json={"username": device["username"], "password": PASSWORD},
                         timeout=30)
    login.raise_for_status()
    headers = {"Authorization": f"Bearer {login.json()['token']}"}
    start.wait()
    for action in queue:
        answers = []
        for attempt in ("first", "replay"):
            try:
                status, body = send(session, base, action, headers)
            except requests.RequestException as exc:
                tally.note(requests=1, server_errors=1)
                tally.sample(f"device {index} {action.label} ({attempt}): {type(exc).__name__}: {exc}")
                answers.append(None)
                continue
            tally.note(requests=1)
            if status >= 500:
                tally.note(server_errors=1)
                tally.sample(f"device {index} {action.label} ({attempt}): HTTP {status} {body}")
            elif status >= 300:
                tally.note(refused=1)
                tally.sample(f"device {index} {action.label} ({attempt}): HTTP {status} {body}")
            answers.append((status, body))
        first, replay = answers
        if first and replay and first[0] < 300 and replay[0] < 300:
            tally.note(accepted=1)
            expected_replay = 200 if first[0] == 201 else first[0]
            if replay[1] != first[1] or replay[0] != expected_replay:
                tally.note(mismatches=1)
                tally.sample(f"device {index} {action.label}: the replay answered differently")
    with tally.lock:
        tally.finished_at[index] = time.monotonic() - t0[0]


def progress(tally: Tally, total: int, t0: list[float], done: threading.Event) -> None:
    while not done.wait(2.0):
        with tally.lock:
            log(f"{time.monotonic() - t0[0]:6.1f} s: {tally.accepted}/{total} actions accepted, "
                f"{tally.requests} requests, {tally.server_errors} server errors, {tally.refused} refused")


# --- 4. the database's view ----------------------------------------------------------------------------


def count_duplicates(dsn: str, devices: list[dict]) -> dict:
    """What the database holds for the bench appeals, and how much of it is duplicated."""
    import psycopg

    visited = [a["id"] for d in devices for a in d["appeals"][:-1]]
    last = [d["appeals"][-1]["id"] for d in devices]
    ids = visited + last
    with psycopg.connect(dsn, autocommit=True) as conn:
        actions = conn.execute("SELECT count(*) FROM client_action").fetchone()[0]
        rows = conn.execute(
            "SELECT appeal_id, kind, count(*) FROM appeal_event WHERE appeal_id = ANY(%s) AND kind = ANY(%s) "
            "GROUP BY appeal_id, kind", (ids, [*STEP_KINDS, "appeal.photo_added"])).fetchall()
        photos = dict(conn.execute("SELECT appeal_id, count(*) FROM attachment WHERE appeal_id = ANY(%s) "
                                   "GROUP BY appeal_id", (ids,)).fetchall())
    events = sum(n for _a, _k, n in rows)
    repeated_steps = sum(n - 1 for _a, kind, n in rows if kind in STEP_KINDS and n > 1)
    extra_photos = sum(max(0, n - 2) for n in photos.values())
    return {
        "client_actions": actions,
        "field_events": events,
        "attachments": sum(photos.values()),
        "duplicates": max(0, events - actions) + repeated_steps + extra_photos,
    }


# --- main ------------------------------------------------------------------------------------------


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--devices", type=int, default=20, help="simulated field devices (default 20)")
    p.add_argument("--appeals", type=int, default=4, help="full visits per device (default 4: 4 x 6 + 1 = 25 actions)")
    p.add_argument("--workers", type=int, default=2, help="gunicorn worker processes (default 2)")
    p.add_argument("--threads", type=int, default=8, help="threads per gthread worker (default 8)")
    p.add_argument("--dsn", default=DEFAULT_DSN, help=f"bench database, recreated (default {DEFAULT_DSN})")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    # serve() reads the intake bench's server options from this namespace.
    args.worker_class, args.switch_interval, args.concurrency = "gthread", 0.0, args.devices
    sys.path.insert(0, str(REPO))
    sigterm_as_interrupt()
    server = None
    with tempfile.TemporaryDirectory(prefix="jauap-outbox-bench-") as instance:
        try:
            warn_if_busy()
            log(f"recreating {args.dsn}")
            recreate_database(args.dsn)
            devices = prepare_devices(args.dsn, instance, args.devices, args.appeals)
            log(f"{len(devices)} devices, each with {args.appeals + 1} assigned appeals; building the outboxes")
            queues = [build_outbox(d, i) for i, d in enumerate(devices)]
            total = sum(len(q) for q in queues)
            megabytes = sum(len(a.photo or b"") for q in queues for a in q) / 1e6
            log(f"{total} queued actions ({sum(1 for q in queues for a in q if a.photo)} photos, "
                f"{megabytes:.0f} MB), each to be sent twice")
            server, port = serve(args, instance)
            base = f"http://127.0.0.1:{port}"
            tally, t0 = Tally(), [0.0]
            start = threading.Barrier(len(devices) + 1)
            threads = [threading.Thread(target=run_device, args=(i, d, q, base, start, tally, t0), daemon=True)
                       for i, (d, q) in enumerate(zip(devices, queues, strict=True))]
            for t in threads:
                t.start()
            done = threading.Event()
            start.wait()  # every device is logged in: go
            t0[0] = time.monotonic()
            reporter = threading.Thread(target=progress, args=(tally, total, t0, done), daemon=True)
            reporter.start()
            for t in threads:
                t.join()
            elapsed = time.monotonic() - t0[0]
            done.set()
            db = count_duplicates(args.dsn, devices)
        except KeyboardInterrupt:
            log("interrupted")
            return 130
        finally:
            stop_server(server)
    finish = sorted(tally.finished_at.values())
    all_accepted = tally.accepted == total
    goals = {
        "all accepted in < 120 s": all_accepted and elapsed < GOAL_SECONDS,
        "duplicates == 0": db["duplicates"] == 0,
        "server errors == 0": tally.server_errors == 0,
        "replays answered identically": tally.mismatches == 0 and tally.refused == 0,
    }
    print(f"devices {len(devices)}, actions {total} ({tally.requests} requests, every action twice)", flush=True)
    print(f"time until all accepted: {elapsed:.1f} s (first device done {finish[0]:.1f} s, median "
          f"{finish[len(finish) // 2]:.1f} s); accepted {tally.accepted}/{total}", flush=True)
    print(f"duplicates: {db['duplicates']} (client actions stored {db['client_actions']}, field events "
          f"{db['field_events']}, attachments {db['attachments']})", flush=True)
    print(f"server errors: {tally.server_errors}; other refusals: {tally.refused}; replay mismatches: "
          f"{tally.mismatches}", flush=True)
    for text in tally.samples:
        print(f"  sample: {text}", flush=True)
    for goal, ok in goals.items():
        print(f"  {goal}: {'PASS' if ok else 'FAIL'}", flush=True)
    summary = {"bench": "outbox", "devices": len(devices), "actions": total, "requests": tally.requests,
               "seconds": round(elapsed, 1), "accepted": tally.accepted, **db,
               "server_errors": tally.server_errors, "refused": tally.refused, "mismatches": tally.mismatches,
               "server": {"worker_class": "gthread", "workers": args.workers, "threads": args.threads},
               "pass": all(goals.values())}
    print(json.dumps(summary), flush=True)
    return 0 if all(goals.values()) else 1


if __name__ == "__main__":
    sys.exit(main())

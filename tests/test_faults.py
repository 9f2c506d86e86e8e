"""Faults: the server killed under load, the database going away, with real processes and databases.

* **Server killed.** ``kill -9`` of the whole server (gunicorn's master and worker, or the embedded
  ``flask serve``) again and again while operators register appeals (``POST /api/v1/appeals`` with an
  ``Idempotency-Key``) and field staff upload photos (``POST /api/v1/appeals/<id>/photos`` with a
  client UUID, as the field app's outbox sends them). A supervisor restarts the server after each
  kill; the clients retry every unacknowledged submission with the same key until it is answered
  2xx. Afterwards every acknowledged appeal and photo exists exactly once, every attachment row's
  files exist and hold what the row says (and so does what the server serves), and no file under
  its final, content-addressed name is half written. On SQLite the pragmas are checked on a live
  connection and ``PRAGMA integrity_check`` must say ``ok``.
* **Database stopped mid-load** (PostGIS): the server reaches PostgreSQL through
  :class:`tests.tcp_proxy.TcpProxy`; stopping the proxy is, for this server only, the database
  going away (the machine's shared PostgreSQL keeps running for everyone else). While it is down,
  API calls and pages answer 503 with ``Retry-After`` (the API with the JSON error shape), never
  500 and never hanging; no partial rows are written; after it returns the service answers again
  within 30 s (the recovery time is measured).

The long runs (20 kills x 200 submissions on both backends) are ``slow``; a short variant runs in
every push. ``bench/faults.py`` runs the full figures with progress output.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import random
import sqlite3
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from server.extensions import db
from server.models import Appeal, AppealEvent, Attachment, ClientAction, Sector
from tests.conftest import APPEAL, PASSWORD, make_app
from tests.servers import ServerProcess
from tests.tcp_proxy import TcpProxy

RECOVERY_GOAL_S = 30.0
REQUEST_TIMEOUT_S = 20.0


def _quiet(_msg: str) -> None:
    pass


# --- the people and appeals the load works on ------------------------------------------------------


@dataclass
class Cast:
    """Who submits: operators (appeals) and field staff with accepted appeals to add photos to."""

    operators: list[str]
    field: list[tuple[str, list[int]]]  # (username, [accepted appeal ids assigned to them])
    tracking_tokens: list[str]  # of the prepared appeals (the citizen's page reads the database)
    prepared_appeals: int


def prepare_cast(url: str, workdir: Path, operators: int = 8, appeals_each: int = 2) -> Cast:
    """Staff and appeals on the database at ``url``: ``operators`` operators, one field worker per unit
    with ``appeals_each`` appeals assigned and accepted (photos may then be added to them)."""
    from geoalchemy2.shape import to_shape

    from server.models.types import utcnow
    from server.schemas import AppealIn
    from server.services import dispatch
    from server.services.intake import register_appeal
    from server.services.lifecycle import Actor
    from server.services.staff import create_staff

    app = make_app(url, workdir / "instance-setup")
    with app.app_context():
        now = utcnow()
        ops = [create_staff(f"op{i}", "operator", PASSWORD, now=now).username for i in range(operators)]
        dispatcher = create_staff("disp", "dispatcher", PASSWORD, now=now)
        points: dict[str, tuple[float, float]] = {}
        unit_sector: dict[str, str] = {}
        for sector in db.session.scalars(select(Sector).order_by(Sector.code)):
            p = to_shape(sector.geom).representative_point()
            points[sector.code] = (p.x, p.y)
            unit_sector.setdefault(sector.unit.code, sector.code)
        crew, tokens, prepared = [], [], 0
        for unit in sorted(unit_sector):
            person = create_staff(f"field-{unit.lower()}", "field_staff", PASSWORD, unit_code=unit, now=now)
            lon, lat = points[unit_sector[unit]]
            ids = []
            for a in range(appeals_each):
                body = AppealIn(type="complaint", topic="roads", description=f"Fault drill {unit}-{a}",
                                lat=lat, lon=lon, accuracy_m=10, channel="phone")
                appeal = register_appeal(body, actor=Actor.of(dispatcher), now=now).appeal
                dispatch.reassign(appeal, Actor.of(dispatcher), now, staff_id=person.id)
                dispatch.accept(appeal, Actor.of(person), now)
                ids.append(appeal.id)
                tokens.append(appeal.tracking_token)
                prepared += 1
            crew.append((person.username, ids))
        db.session.commit()
        db.session.remove()
        db.engine.dispose()
    return Cast(operators=ops, field=crew, tracking_tokens=tokens, prepared_appeals=prepared)


def make_photo(label: str, seed: int, size: tuple[int, int] = (640, 480)) -> bytes:
    """A JPEG like the field app's canvas output (no EXIF), with unique content."""
    from PIL import Image, ImageDraw

    rng = random.Random(seed)
    image = Image.effect_noise(size, 20 + seed % 40).convert("RGB")
    draw = ImageDraw.Draw(image)
    for _ in range(6):
        x, y = rng.randrange(size[0]), rng.randrange(size[1])
        draw.rectangle((x, y, x + 60, y + 40), fill=(rng.randrange(256), rng.randrange(256), rng.randrange(256)))
    draw.text((10, 10), label, fill=(255, 255, 255))
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=85)
    return buf.getvalue()


# --- submissions and the clients that retry them ---------------------------------------------------------------------


@dataclass
class Submission:
    """One appeal or photo to submit until acknowledged, always under the same key."""

    kind: str  # appeal | photo
    user: str
    path: str
    key: str
    body: dict | None = None
    form: dict | None = None
    photo: bytes | None = None
    attempts: int = 0
    status: int | None = None  # of the acknowledging answer (2xx), or of a refusal
    answer: dict | None = None
    refused: str | None = None  # a 4xx answer: not retried, fails the run


def build_submissions(cast: Cast, count: int, tag: str) -> list[Submission]:
    """``count`` submissions, half appeals by the operators and half photos by the field staff, interleaved."""
    out = []
    for i in range(count):
        if i % 2 == 0:
            body = {**APPEAL, "description": f"Fault drill appeal {tag}-{i}", "lat": APPEAL["lat"] + i * 1e-5}
            out.append(Submission("appeal", cast.operators[(i // 2) % len(cast.operators)], "/api/v1/appeals",
                                  f"{tag}-appeal-{i}", body=body))
        else:
            user, appeal_ids = cast.field[(i // 2) % len(cast.field)]
            appeal_id = appeal_ids[(i // (2 * len(cast.field))) % len(appeal_ids)]
            data = make_photo(f"{tag} photo {i}", i)
            form = {"kind": "before", "sha256": hashlib.sha256(data).hexdigest(), "accuracy_m": "12",
                    "device_time": "2026-03-02T11:00:00+05:00"}
            out.append(Submission("photo", user, f"/api/v1/appeals/{appeal_id}/photos", str(uuid.uuid4()),
                                  form=form, photo=data))
    return out


@dataclass
class Answer:
    """One HTTP attempt as a client saw it."""

    path: str
    started: float
    ended: float
    status: int | None  # None: no answer (connection refused or cut, timeout)
    error: str | None = None
    retry_after: str | None = None
    error_code: str | None = None


@dataclass
class Load:
    """Client threads that submit until every submission is acknowledged, retrying on the same key."""

    base: str
    tokens: dict[str, str]
    submissions: list[Submission]
    threads: int = 12
    deadline_s: float = 600.0
    lock: threading.Lock = field(default_factory=threading.Lock)
    answers: list[Answer] = field(default_factory=list)
    acked: int = 0
    done: threading.Event = field(default_factory=threading.Event)
    paced: bool = False  # when True a new submission starts only with a token from allow()
    _budget: threading.Semaphore = field(default_factory=lambda: threading.Semaphore(0))

    def allow(self, n: int) -> None:
        """Let ``n`` more submissions start (paced loads)."""
        if n > 0:
            self._budget.release(n)

    def _send(self, session: requests.Session, sub: Submission) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.tokens[sub.user]}", "Idempotency-Key": sub.key}
        if sub.photo is not None:
            return session.post(self.base + sub.path, data=sub.form,
                                files={"file": ("photo.jpg", sub.photo, "image/jpeg")}, headers=headers,
                                timeout=REQUEST_TIMEOUT_S)
        return session.post(self.base + sub.path, json=sub.body, headers=headers, timeout=REQUEST_TIMEOUT_S)

    def note(self, answer: Answer) -> None:
        with self.lock:
            self.answers.append(answer)

    def _submit(self, session: requests.Session, sub: Submission, stop_at: float) -> None:
        while time.monotonic() < stop_at:
            sub.attempts += 1
            started = time.monotonic()
            try:
                res = self._send(session, sub)
            except requests.RequestException as exc:
                self.note(Answer(sub.path, started, time.monotonic(), None, error=type(exc).__name__))
                session.close()  # a fresh connection after a cut one
                time.sleep(0.1)
                continue
            answer = Answer(sub.path, started, time.monotonic(), res.status_code,
                            retry_after=res.headers.get("Retry-After"))
            body = None
            with contextlib.suppress(ValueError):
                body = res.json()
            if isinstance(body, dict) and isinstance(body.get("error"), dict):
                answer.error_code = body["error"].get("code")
            self.note(answer)
            if 200 <= res.status_code < 300:
                sub.status, sub.answer = res.status_code, body
                with self.lock:
                    self.acked += 1
                return
            if res.status_code >= 500:  # 503 while the database is away: retry the same key
                time.sleep(0.2)
                continue
            sub.status, sub.refused = res.status_code, res.text[:300]
            return
        sub.refused = sub.refused or "never acknowledged before the deadline"

    def _worker(self, queue: list[Submission], stop_at: float) -> None:
        session = requests.Session()
        while True:
            while self.paced and not self._budget.acquire(timeout=0.2):
                if not queue or time.monotonic() > stop_at:
                    return
            with self.lock:
                if not queue:
                    return
                sub = queue.pop(0)
            self._submit(session, sub, stop_at)

    def run(self) -> float:
        """Submit everything (blocking); returns the seconds it took."""
        queue = list(self.submissions)
        stop_at = time.monotonic() + self.deadline_s
        started = time.monotonic()
        workers = [threading.Thread(target=self._worker, args=(queue, stop_at), daemon=True)
                   for _ in range(self.threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        self.done.set()
        return time.monotonic() - started

    def start(self) -> threading.Thread:
        """Run in the background; ``done`` is set at the end."""
        t = threading.Thread(target=self.run, daemon=True)
        t.start()
        return t


def login_all(server: ServerProcess, cast: Cast) -> dict[str, str]:
    """A bearer token per person (tokens live in the database: they survive restarts)."""
    return {name: server.token(name) for name in [*cast.operators, *(u for u, _ids in cast.field)]}


# --- kill -9 -------------------------------------------------------------------------------------------------------


def kill_run(server: ServerProcess, cast: Cast, *, kills: int, submissions: int, tag: str, threads: int = 12,
             seed: int = 109, say: Callable[[str], None] = _quiet) -> tuple[Load, dict]:
    """Submit ``submissions`` items while killing the server ``kills`` times (restarting it each time).

    The k-th kill comes once k/(kills+1) of the submissions are acknowledged (plus a random
    few milliseconds), so the kills spread over the whole run, each with requests in flight: the
    clients may start only half a segment's worth of submissions beyond the next kill's mark, so
    a fast server cannot finish the run before every kill has happened.
    """
    rng = random.Random(seed)
    subs = build_submissions(cast, submissions, tag)
    load = Load(server.url, login_all(server, cast), subs, threads=threads, paced=True)
    marks = [(k + 1) * submissions // (kills + 1) for k in range(kills)]
    ahead = max(1, submissions // (kills + 1) // 2)
    allowed = 0

    def allow_upto(n: int) -> None:
        nonlocal allowed
        n = min(n, submissions)
        load.allow(n - allowed)
        allowed = max(allowed, n)

    restarts: list[float] = []
    started = time.monotonic()
    allow_upto(marks[0] + ahead if marks else submissions)
    load.start()
    for k, mark in enumerate(marks):
        while load.acked < mark and not load.done.is_set():
            time.sleep(0.005)
        if load.done.is_set():
            break
        time.sleep(rng.uniform(0, 0.05))
        in_flight = sum(1 for s in subs if s.attempts and s.status is None)
        server.kill()
        t0 = time.monotonic()
        allow_upto(marks[k + 1] + ahead if k + 1 < len(marks) else submissions)
        server.start()
        restarts.append(time.monotonic() - t0)
        say(f"kill {k + 1}/{kills} at {load.acked} acknowledged, {in_flight} in flight; "
            f"restarted in {restarts[-1]:.1f} s")
    allow_upto(submissions)
    load.done.wait()
    elapsed = time.monotonic() - started
    statuses = Counter("no answer" if a.status is None else str(a.status) for a in load.answers)
    figures = {
        "kills": len(restarts),
        "submissions": submissions,
        "acknowledged": sum(1 for s in subs if s.status is not None and s.refused is None),
        "refused": [f"{s.kind} {s.key}: {s.status} {s.refused}" for s in subs if s.refused],
        "attempts": sum(s.attempts for s in subs),
        "answers": dict(statuses),
        "seconds": round(elapsed, 1),
        "restart_s": {"median": round(sorted(restarts)[len(restarts) // 2], 2) if restarts else None,
                      "max": round(max(restarts), 2) if restarts else None},
    }
    return load, figures


def check_exactly_once(url: str, server: ServerProcess, cast: Cast, subs: list[Submission], workdir: Path) -> dict:
    """What the database and the media folder hold after a fault run; ``problems`` lists every broken promise.

    The server must be running (served files are fetched through it).
    """
    problems: list[str] = []
    appeals = [s for s in subs if s.kind == "appeal"]
    photos = [s for s in subs if s.kind == "photo"]
    media_root = server.instance / "media"
    app = make_app(url, workdir / "instance-check")
    with app.app_context():
        # Appeals: one row per key, the acknowledged one, numbered, with its registration event.
        rows = db.session.execute(select(Appeal.idempotency_key, Appeal.id, Appeal.reg_no)
                                  .where(Appeal.idempotency_key.in_([s.key for s in appeals]))).all()
        by_key: dict[str, list] = {}
        for key, appeal_id, reg_no in rows:
            by_key.setdefault(key, []).append((appeal_id, reg_no))
        for s in appeals:
            found = by_key.get(s.key, [])
            if s.answer is None:
                continue
            if len(found) != 1:
                problems.append(f"appeal {s.key}: {len(found)} rows")
            elif found[0] != (s.answer["id"], s.answer["reg_no"]):
                problems.append(f"appeal {s.key}: acknowledged {s.answer['id']} {s.answer['reg_no']}, stored {found}")
        total = db.session.scalar(select(func.count()).select_from(Appeal))
        expected_total = cast.prepared_appeals + len(appeals)
        if total != expected_total:
            problems.append(f"{total} appeals stored, expected {expected_total} (duplicates or strays)")
        unnumbered = db.session.scalar(select(func.count()).select_from(Appeal).where(Appeal.reg_no.like("~%")))
        if unnumbered:
            problems.append(f"{unnumbered} appeals without a registration number")
        registered = dict(db.session.execute(
            select(AppealEvent.appeal_id, func.count()).where(AppealEvent.kind == "appeal.registered")
            .group_by(AppealEvent.appeal_id)).all())
        all_ids = list(db.session.scalars(select(Appeal.id)))
        bad_events = [i for i in all_ids if registered.get(i) != 1]
        if bad_events:
            problems.append(f"appeals without exactly one appeal.registered event: {bad_events[:10]}")

        # Photos: one client action per UUID, one attachment per acknowledged photo, one event each.
        photo_appeals = [i for _u, ids in cast.field for i in ids]
        actions = Counter(db.session.scalars(select(ClientAction.client_uuid)
                                             .where(ClientAction.client_uuid.in_([s.key for s in photos]))))
        attachments = db.session.scalars(select(Attachment).where(Attachment.appeal_id.in_(photo_appeals))).all()
        by_public = {a.public_id: a for a in attachments}
        for s in photos:
            if s.answer is None:
                continue
            if actions.get(s.key) != 1:
                problems.append(f"photo {s.key}: {actions.get(s.key, 0)} client actions")
            if s.answer["id"] not in by_public:
                problems.append(f"photo {s.key}: acknowledged {s.answer['id']} is not stored")
            elif by_public[s.answer["id"]].sha256 != s.form["sha256"]:
                problems.append(f"photo {s.key}: stored with another digest")
        if len(attachments) != len(photos):
            problems.append(f"{len(attachments)} attachments stored for {len(photos)} photos")
        photo_events = db.session.scalar(select(func.count()).select_from(AppealEvent)
                                         .where(AppealEvent.kind == "appeal.photo_added"))
        if photo_events != len(attachments):
            problems.append(f"{photo_events} appeal.photo_added events for {len(attachments)} attachments")
        rows_files = [(a.public_id, a.sha256, a.size_bytes) for a in attachments]
        db.session.remove()
        db.engine.dispose()

    # No row points at a missing or partial file.
    from PIL import Image

    from server import media

    for public_id, sha, size in rows_files:
        original = media.original_path(media_root, sha)
        if not original.exists():
            problems.append(f"photo {public_id}: original file missing")
            continue
        data = original.read_bytes()
        if len(data) != size or hashlib.sha256(data).hexdigest() != sha:
            problems.append(f"photo {public_id}: original file does not match its row")
        for variant in ("thumb", "large"):
            path = media.derived_path(media_root, sha, variant)
            try:
                with Image.open(path) as im:
                    im.load()  # a truncated JPEG fails here
            except (OSError, SyntaxError) as exc:
                problems.append(f"photo {public_id}: {variant} unreadable ({exc})")

    # No final file is half written (they are written under a temporary name, fsynced, then renamed).
    originals = [p for p in (media_root / "originals").rglob("*") if p.is_file() and not p.name.startswith(".tmp-")]
    for path in originals:
        if hashlib.sha256(path.read_bytes()).hexdigest() != path.name:
            problems.append(f"{path}: content does not match its name")
    temporaries = [p for p in media_root.rglob(".tmp-*")]

    # What the server serves is what the row says.
    tokens = {u: server.token(u) for u, _ids in cast.field}
    served = 0
    for s in photos:
        if s.answer is None:
            continue
        headers = {"Authorization": f"Bearer {tokens[s.user]}"}
        res = requests.get(f"{server.url}{s.answer['urls']['original']}", headers=headers, timeout=20)
        if res.status_code != 200 or hashlib.sha256(res.content).hexdigest() != s.form["sha256"]:
            problems.append(f"photo {s.answer['id']}: served original is {res.status_code}, not the upload")
        thumb = requests.get(f"{server.url}{s.answer['urls']['thumb']}", headers=headers, timeout=20)
        if thumb.status_code != 200 or not thumb.content.startswith(b"\xff\xd8"):
            problems.append(f"photo {s.answer['id']}: thumb served as {thumb.status_code}")
        served += 1
    # Files whose row was never committed (killed in between) are harmless orphans: counted, never served.
    without_row = {p.name for p in originals} - {sha for _p, sha, _s in rows_files}
    return {"problems": problems, "appeals": len(appeals), "photos": len(photos), "attachments": len(rows_files),
            "original_files": len(originals), "files_without_row": len(without_row),
            "orphan_temporary_files": len(temporaries), "served_checked": served}


def sqlite_file(url: str) -> str:
    """The file of a ``sqlite:///`` URL."""
    return make_url(url).database


def sqlite_live_pragmas(url: str, workdir: Path) -> dict:
    """journal_mode and synchronous on a connection the app itself opens (server.database's hooks)."""
    app = make_app(url, workdir / "instance-pragmas")
    with app.app_context():
        with db.engine.connect() as conn:
            mode = conn.exec_driver_sql("PRAGMA journal_mode").scalar()
            sync = conn.exec_driver_sql("PRAGMA synchronous").scalar()
        db.engine.dispose()
    return {"journal_mode": mode, "synchronous": sync}


def sqlite_integrity(url: str) -> dict:
    """``PRAGMA integrity_check`` and ``foreign_key_check`` on the file (plain sqlite3, no SpatiaLite needed)."""
    with contextlib.closing(sqlite3.connect(sqlite_file(url))) as conn:
        integrity = [r[0] for r in conn.execute("PRAGMA integrity_check")]
        foreign = conn.execute("PRAGMA foreign_key_check").fetchall()
    return {"integrity_check": integrity[0] if integrity == ["ok"] else integrity[:10],
            "foreign_key_violations": len(foreign)}


def kill_scenario(backend, workdir: Path, *, kills: int, submissions: int, threads: int = 12,
                  say: Callable[[str], None] = _quiet) -> dict:
    """The whole kill test on one backend: prepare, run, check; returns the figures (``problems`` empty = pass)."""
    url = backend.copy("kill")
    cast = prepare_cast(url, workdir)
    embedded = backend.name == "spatialite"
    server = ServerProcess(f"kill-{backend.name}", url, None, workdir, embedded=embedded,
                           extra_env={"JAUAP_OUTBOX_INTERVAL_S": "1"})
    figures: dict = {"backend": backend.name, "server": "flask serve" if embedded else "gunicorn -k gevent -w 1"}
    try:
        server.start()
        if embedded:
            figures["pragmas"] = sqlite_live_pragmas(url, workdir)
            say(f"live connection: {figures['pragmas']}")
        load, run = kill_run(server, cast, kills=kills, submissions=submissions, threads=threads,
                             tag=f"kill-{backend.name}", say=say)
        figures.update(run)
        figures.update(check_exactly_once(url, server, cast, load.submissions, workdir))
    finally:
        server.stop()
    if embedded:
        figures.update(sqlite_integrity(url))
    return figures


def assert_kill_figures(figures: dict, kills: int) -> None:
    """The promises of the kill test, as assertions."""
    assert figures["kills"] == kills, figures
    assert figures["refused"] == [], figures["refused"]
    assert figures["acknowledged"] == figures["submissions"]
    assert figures["problems"] == [], figures["problems"]
    assert "500" not in figures["answers"], figures["answers"]
    if figures["backend"] == "spatialite":
        assert figures["pragmas"] == {"journal_mode": "wal", "synchronous": 2}  # 2 = FULL
        assert figures["integrity_check"] == "ok"
        assert figures["foreign_key_violations"] == 0


# One backend in every push: the embedded default (SpatiaLite); the slow run covers PostGIS too.
@pytest.mark.parametrize("backend", ["spatialite"], indirect=True)
def test_kill_9_three_times_during_40_submissions_loses_and_doubles_nothing(backend, tmp_path):
    figures = kill_scenario(backend, tmp_path, kills=3, submissions=40, threads=8)
    assert_kill_figures(figures, 3)
    assert figures["attempts"] > figures["submissions"]  # the kills did interrupt requests


@pytest.mark.slow
def test_kill_9_twenty_times_during_200_submissions(backend, tmp_path):
    figures = kill_scenario(backend, tmp_path, kills=20, submissions=200)
    assert_kill_figures(figures, 20)


# --- the database going away ---------------------------------------------------------------------------------------


def proxied_url(url: str, proxy: TcpProxy) -> str:
    """``url`` with its host and port replaced by the proxy's."""
    return make_url(url).set(host=proxy.host, port=proxy.port).render_as_string(hide_password=False)


@dataclass
class Prober:
    """Reads and pages in a loop (an operator's list, a citizen's tracking page, ``/readyz``)."""

    base: str
    token: str
    tracking_token: str
    load: Load
    stop: threading.Event = field(default_factory=threading.Event)

    def _once(self, session: requests.Session, path: str, headers: dict) -> None:
        started = time.monotonic()
        try:
            res = session.get(self.base + path, headers=headers, timeout=REQUEST_TIMEOUT_S)
        except requests.RequestException as exc:
            self.load.note(Answer(path, started, time.monotonic(), None, error=type(exc).__name__))
            session.close()
            return
        code = None
        with contextlib.suppress(ValueError, AttributeError, KeyError, TypeError):
            code = res.json()["error"]["code"]
        self.load.note(Answer(path, started, time.monotonic(), res.status_code,
                              retry_after=res.headers.get("Retry-After"), error_code=code))

    def run(self) -> None:
        session = requests.Session()
        api = {"Authorization": f"Bearer {self.token}"}
        page = {"Accept": "text/html"}
        while not self.stop.is_set():
            self._once(session, "/api/v1/appeals?per_page=5", api)
            self._once(session, f"/t/{self.tracking_token}", page)
            time.sleep(0.05)


def wait_recovered(base: str, token: str, timeout: float) -> dict:
    """Seconds until an authenticated read, then a write, answer 2xx again (None: not within ``timeout``).

    Each probe waits for its answer (up to the time left): under the clients' retry storm a write can
    queue behind the photos being processed, and that wait counts as part of the recovery.
    """
    started = time.monotonic()
    headers = {"Authorization": f"Bearer {token}"}
    out: dict = {"read_s": None, "write_s": None}

    def left() -> float:
        return max(0.5, timeout - (time.monotonic() - started))

    while out["read_s"] is None and time.monotonic() - started < timeout:
        with contextlib.suppress(requests.RequestException):
            if requests.get(f"{base}/api/v1/appeals?per_page=1", headers=headers, timeout=left()).status_code == 200:
                out["read_s"] = round(time.monotonic() - started, 2)
                break
        time.sleep(0.1)
    key = f"recovery-probe-{uuid.uuid4()}"
    while out["read_s"] is not None and time.monotonic() - started < timeout:
        with contextlib.suppress(requests.RequestException):
            write = requests.post(f"{base}/api/v1/appeals", headers={**headers, "Idempotency-Key": key},
                                  json=APPEAL, timeout=left())
            if write.status_code in (200, 201):
                out["write_s"] = round(time.monotonic() - started, 2)
                break
        time.sleep(0.1)
    return out


def db_stop_scenario(backend, workdir: Path, *, outage_s: float, submissions: int, threads: int = 8,
                     say: Callable[[str], None] = _quiet) -> dict:
    """Load -> proxy down for ``outage_s`` -> proxy up; figures of the answers, recovery and invariants."""
    url = backend.copy("dbstop")
    cast = prepare_cast(url, workdir)
    real = make_url(url)
    proxy = TcpProxy(real.host or "127.0.0.1", real.port or 5432).start()
    # The appeal limit is not under test here: clients retry every 0.2 s through the outage.
    server = ServerProcess("dbstop", proxied_url(url, proxy), None, workdir,
                           extra_env={"JAUAP_APPEAL_LIMITS": "100000/60"})
    figures: dict = {"backend": backend.name, "outage_s": outage_s}
    try:
        server.start()
        tokens = login_all(server, cast)
        subs = build_submissions(cast, submissions, "dbstop")
        load = Load(server.url, tokens, subs, threads=threads)
        prober = Prober(server.url, tokens[cast.operators[0]], cast.tracking_tokens[0], load)
        probe_thread = threading.Thread(target=prober.run, daemon=True)
        probe_thread.start()
        load.start()
        while load.acked < submissions // 4 and not load.done.is_set():
            time.sleep(0.01)
        say(f"{load.acked} acknowledged; stopping the database (proxy) for {outage_s:g} s")
        down_at = time.monotonic()
        proxy.stop()
        time.sleep(outage_s)
        up_at = time.monotonic()
        proxy.start()
        recovery = wait_recovered(server.url, tokens[cast.operators[-1]], RECOVERY_GOAL_S + 30)
        say(f"database back; a read answered after {recovery['read_s']} s, a write after {recovery['write_s']} s")
        load.done.wait(timeout=300)
        prober.stop.set()
        probe_thread.join(timeout=30)
        # Answers to requests sent while the database was away (and answered before it came back).
        during = [a for a in load.answers if a.started >= down_at + 0.05 and a.ended <= up_at]
        statuses = Counter("no answer" if a.status is None else str(a.status) for a in during)
        bad = [a for a in during if a.status != 503 or not a.retry_after
               or (a.path.startswith("/api/") and a.error_code != "service_unavailable")]
        pages = [a for a in during if a.path.startswith("/t/")]
        figures.update({
            "answers_while_down": dict(statuses),
            "pages_while_down": dict(Counter(str(a.status) for a in pages)),
            "not_503_with_retry_after": [f"{a.path} {a.status} {a.error or a.error_code} ra={a.retry_after}"
                                         for a in bad[:10]],
            "slowest_answer_while_down_s": round(max((a.ended - a.started for a in during), default=0), 2),
            "answers_500_overall": sum(1 for a in load.answers if a.status == 500),
            "recovery_s": recovery["write_s"],  # both a read and a write answered normally again
            "recovery_read_s": recovery["read_s"],
            "acknowledged": sum(1 for s in subs if s.status is not None and s.refused is None),
            "submissions": submissions,
            "refused": [f"{s.kind} {s.key}: {s.status} {s.refused}" for s in subs if s.refused],
        })
        # the recovery probes wrote appeals without keys of the run: count them in
        extra = _count_probe_appeals(url, workdir)
        cast_for_check = Cast(cast.operators, cast.field, cast.tracking_tokens, cast.prepared_appeals + extra)
        figures.update(check_exactly_once(url, server, cast_for_check, subs, workdir))
    finally:
        server.stop()
        proxy.stop()
    return figures


def _count_probe_appeals(url: str, workdir: Path) -> int:
    app = make_app(url, workdir / "instance-probes")
    with app.app_context():
        n = db.session.scalar(select(func.count()).select_from(Appeal)
                              .where(Appeal.idempotency_key.like("recovery-probe-%")))
        db.session.remove()
        db.engine.dispose()
    return n


def assert_db_stop_figures(figures: dict) -> None:
    """The promises of the database-stop test, as assertions."""
    assert figures["answers_while_down"], "no request was answered while the database was away"
    assert figures["pages_while_down"], "no page was requested while the database was away"
    assert figures["not_503_with_retry_after"] == [], figures
    assert figures["answers_500_overall"] == 0, figures
    assert figures["slowest_answer_while_down_s"] < 10, figures
    assert figures["recovery_s"] is not None and figures["recovery_s"] < RECOVERY_GOAL_S, figures
    assert figures["refused"] == [], figures["refused"]
    assert figures["acknowledged"] == figures["submissions"]
    assert figures["problems"] == [], figures["problems"]


@pytest.mark.postgis
@pytest.mark.parametrize("backend", ["postgis"], indirect=True)
def test_database_stopped_mid_load_answers_503_then_recovers(backend, tmp_path):
    figures = db_stop_scenario(backend, tmp_path, outage_s=3.0, submissions=40)
    assert_db_stop_figures(figures)


@pytest.mark.slow
@pytest.mark.postgis
@pytest.mark.parametrize("backend", ["postgis"], indirect=True)
def test_database_stopped_for_15_s_under_load(backend, tmp_path):
    figures = db_stop_scenario(backend, tmp_path, outage_s=15.0, submissions=200)
    assert_db_stop_figures(figures)


@pytest.mark.postgis
@pytest.mark.parametrize("backend", ["postgis"], indirect=True)
def test_an_unreachable_database_is_a_503_with_retry_after_in_any_language(backend, tmp_path):
    """In-process: the error handler itself must not need the database (it used to ask it for the
    user's language, fail again and end in a 500)."""
    from tests.conftest import bearer, make_staff

    url = backend.copy("down")
    real = make_url(url)
    proxy = TcpProxy(real.host or "127.0.0.1", real.port or 5432).start()
    app = make_app(proxied_url(url, proxy), tmp_path / "instance")
    app.config["PROPAGATE_EXCEPTIONS"] = False  # as in production: errors reach the handlers
    cut_after_view = threading.Event()

    @app.after_request  # runs before the app's own hooks (the audit's commit of contact views)
    def _cut(response):
        if cut_after_view.is_set():
            cut_after_view.clear()
            proxy.stop()
        return response

    try:
        with app.app_context():
            headers = bearer(make_staff("operator", username="op-down"))
        client = app.test_client()
        created = client.post("/api/v1/appeals", json=APPEAL, headers=headers)
        assert created.status_code == 201
        tracking = created.json["tracking_token"]
        proxy.stop()
        answers = {
            "list": client.get("/api/v1/appeals", headers=headers),
            "create": client.post("/api/v1/appeals", json=APPEAL, headers={**headers, "Idempotency-Key": "down-1"}),
            "kk": client.get("/api/v1/appeals", headers={**headers, "Accept-Language": "kk"}),
        }
        # A person at a page gets a page, in their language (no JSON body, nothing read from the database).
        pages = {lang: client.get(f"/t/{tracking}", headers={"Accept": "text/html", "Accept-Language": lang})
                 for lang in ("en", "kk")}
        for name, res in [*answers.items(), *pages.items()]:
            assert res.status_code == 503, (name, res.status_code, res.data[:300])
            assert res.headers["Retry-After"] == "5", name
        for name, res in answers.items():
            assert res.json["error"]["code"] == "service_unavailable", name
        assert pages["en"].mimetype == "text/html" and "Temporarily unavailable" in pages["en"].get_data(True)
        assert '<html lang="kk">' in pages["kk"].get_data(True)
        assert "Temporarily unavailable" not in pages["kk"].get_data(True)  # translated
        assert answers["list"].json["error"]["message"] != answers["kk"].json["error"]["message"]  # translated
        assert client.get("/readyz").status_code == 503
        proxy.start()
        assert client.get("/api/v1/appeals", headers=headers).status_code == 200
        again = client.post("/api/v1/appeals", json=APPEAL, headers={**headers, "Idempotency-Key": "down-1"})
        assert again.status_code == 201

        # The database goes after the answer was made, before the session's rollback at teardown:
        # the answer stands (it used to become a 500) and the dead connection is dropped.
        cut_after_view.set()
        assert client.get("/readyz").status_code == 200
        assert client.get("/readyz").status_code == 503
        proxy.start()
        assert client.get("/readyz").status_code == 200

        # The database goes after the view committed, while an after_request hook (the audit of the
        # contact shown) commits: still a 503 to retry, and the retry finds the stored appeal.
        cut_after_view.set()
        late = client.post("/api/v1/appeals", json=APPEAL, headers={**headers, "Idempotency-Key": "down-2"})
        assert late.status_code == 503, late.data[:300]
        assert late.headers["Retry-After"] == "5" and late.json["error"]["code"] == "service_unavailable"
        proxy.start()
        retried = client.post("/api/v1/appeals", json=APPEAL, headers={**headers, "Idempotency-Key": "down-2"})
        assert retried.status_code == 200  # stored by the first try: the same appeal, not a second one
        with app.app_context():
            assert db.session.scalar(select(func.count()).select_from(Appeal)
                                     .where(Appeal.idempotency_key == "down-2")) == 1
    finally:
        proxy.stop()
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


def _limited_app(url: str, instance: Path, **limits):
    """An app whose PostgreSQL time limits are ``limits`` (fields of Config), errors to the handlers."""
    from dataclasses import replace

    from server import create_app
    from server.config import TestConfig

    app = create_app(replace(TestConfig(url, str(instance)), **limits))
    app.config["PROPAGATE_EXCEPTIONS"] = False
    return app


def _answer_within(seconds: float, call: Callable):
    """Run ``call`` in a thread; (response, elapsed) - or fail if it is still waiting after ``seconds``."""
    box: dict = {}

    def run():
        started = time.monotonic()
        box["response"] = call()
        box["elapsed"] = time.monotonic() - started

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout=seconds)
    assert not thread.is_alive(), f"no answer within {seconds} s: the request hangs with the database"
    return box["response"], box["elapsed"]


@pytest.mark.postgis
@pytest.mark.parametrize("backend", ["postgis"], indirect=True)
def test_a_database_that_accepts_but_never_answers_costs_a_503_not_a_hung_worker(backend, tmp_path):
    """Before connect_timeout was set, this request waited for ever (the worker was lost to the hang)."""
    from tests.conftest import bearer, make_staff

    url = backend.copy("hang")
    real = make_url(url)
    proxy = TcpProxy(real.host or "127.0.0.1", real.port or 5432).start()
    app = _limited_app(proxied_url(url, proxy), tmp_path / "instance", db_connect_timeout_s=2)
    try:
        with app.app_context():
            headers = bearer(make_staff("operator", username="op-hang"))
            db.session.remove()
            db.engine.dispose()  # no pooled connection: the next request must connect through the hang
        client = app.test_client()
        proxy.freeze()
        res, elapsed = _answer_within(20, lambda: client.get("/api/v1/appeals", headers=headers))
        assert res.status_code == 503 and res.headers["Retry-After"] == "5", res.data[:300]
        assert res.json["error"]["code"] == "service_unavailable"
        assert elapsed < 8, elapsed
        proxy.thaw()
        assert client.get("/api/v1/appeals", headers=headers).status_code == 200
    finally:
        proxy.thaw()
        proxy.stop()
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


@pytest.mark.postgis
@pytest.mark.parametrize("backend", ["postgis"], indirect=True)
def test_a_row_lock_held_by_a_stuck_transaction_costs_a_503_and_the_retry_goes_through(backend, tmp_path):
    """A transaction that holds an appeal's row lock and never ends (a hung client, a forgotten psql):
    before lock_timeout was set, every write to that appeal queued behind it for ever."""
    import psycopg

    from tests.conftest import bearer, make_staff

    url = backend.copy("lock")
    app = _limited_app(url, tmp_path / "instance", db_lock_timeout_ms=1000)
    real = make_url(url)
    blocker = psycopg.connect(host=real.host, port=real.port, user=real.username, dbname=real.database)
    try:
        with app.app_context():
            headers = bearer(make_staff("operator", username="op-lock"))
            db.session.remove()
        client = app.test_client()
        created = client.post("/api/v1/appeals", json=APPEAL, headers=headers)
        assert created.status_code == 201
        appeal_id = created.json["id"]
        blocker.execute("SELECT id FROM appeal WHERE id = %s FOR UPDATE", (appeal_id,))  # and keep it
        step = {"action": "reject", "reason": "test: spam"}
        key = {**headers, "Idempotency-Key": str(uuid.uuid4())}
        res, elapsed = _answer_within(20, lambda: client.post(f"/api/v1/appeals/{appeal_id}/transitions",
                                                              json=step, headers=key))
        assert res.status_code == 503 and res.headers["Retry-After"] == "5", res.data[:300]
        assert elapsed < 6, elapsed
        blocker.rollback()  # the stuck transaction ends
        again = client.post(f"/api/v1/appeals/{appeal_id}/transitions", json=step, headers=key)
        assert again.status_code == 200 and again.json["status"] == "rejected", again.data[:300]
        with app.app_context():
            kinds = db.session.scalars(select(AppealEvent.kind).where(AppealEvent.appeal_id == appeal_id))
            assert Counter(kinds)["appeal.rejected"] == 1
            db.session.remove()
    finally:
        blocker.close()
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


def test_postgres_connections_carry_the_time_limits():
    from server.config import Config

    args = Config(database_url="postgresql+psycopg://u@h/db", db_lock_timeout_ms=1234).postgres_connect_args()
    assert "-c lock_timeout=1234" in args["options"] and "-c statement_timeout=30000" in args["options"]
    assert args["connect_timeout"] == 5 and args["tcp_user_timeout"] > 0

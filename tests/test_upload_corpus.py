"""The hostile-upload corpus (tests/corpus/) pushed through every upload path.

Paths: the field photo upload (``POST /api/v1/appeals/<id>/photos`` as the assignee), the citizen
report (``POST /api/v1/public/reports``, multipart with photos) and the messenger media path (the
worker's ``media_fetch.fetch_due`` with the Telegram download served by the local provider stub).

For every item: the expected 4xx with its error code and the message in the user's language (Kazakh
here), or, for a real photo, acceptance as content-addressed files whose derivatives are re-encoded
JPEGs; nothing stored for a refusal (no row, no file, no appeal).

Time (< 1 s) and memory (< 100 MB growth) are measured against a real gunicorn process: before each
item the worker's peak RSS is reset (``/proc/<pid>/clear_refs`` = 5), after it ``VmHWM`` - ``VmRSS``
before is the growth, so Pillow's C allocations count. The messenger path runs in this process and is
measured the same way on ``/proc/self``.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import select
import socket
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from http.client import HTTPResponse
from pathlib import Path

import pytest
import requests
from flask_babel import force_locale
from PIL import Image
from sqlalchemy import func
from sqlalchemy import select as sql_select

from server import media
from server.api.messages import MESSAGES
from server.config import REPO_ROOT
from server.extensions import db
from server.models import Appeal, Attachment, MediaFetch
from server.models.types import utcnow
from server.ratelimit import limiter
from server.schemas import AppealIn
from server.services import citizen_portal as portal
from server.services import dispatch, media_fetch
from server.services.intake import register_appeal
from server.services.lifecycle import Actor
from tests.channel_fixtures import configured_providers
from tests.conftest import APPEAL, FreshUserClient, appeal_body, bearer, make_app, make_staff
from tests.corpus.build import ACCEPT, Item, Refuse, body_items, items, multipart
from tests.fixtures.photos import on_site, unit_of_default_point
from tests.servers import stop_group

# Pillow warns about big canvases when it opens their header; the pipeline refuses them right after.
pytestmark = pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")

CORPUS = items()
MAX_SECONDS = 1.0
MAX_GROWTH_MB = 100
LANG = "kk"
HOSTILE_MARKERS = (b"<script", b"onerror", b"onload", b"<html", b"PK\x03\x04")


def kk_message_pattern(code: str) -> re.Pattern:
    """The Kazakh message of ``code`` with its ``%(limit)s`` placeholder as a number."""
    with force_locale(LANG):
        template = str(MESSAGES[code])
    with force_locale("en"):
        english = str(MESSAGES[code])
    assert template != english, f"{code} has no Kazakh translation"
    return re.compile(re.escape(template).replace(re.escape("%(limit)s"), r"[\d\s,. ]+"))


def assert_refusal(status: int, body: dict, expect: Refuse, name: str) -> None:
    assert status == expect.status and body["error"]["code"] == expect.code, (name, status, body)
    assert kk_message_pattern(expect.code).fullmatch(body["error"]["message"]), (name, body)


def files_under(root: Path) -> set[str]:
    """Every file below ``root`` (relative paths), temporary ones included."""
    if not root.exists():
        return set()
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def stored_paths(data: bytes) -> set[str]:
    """The files an accepted photo may add (relative to the media folder): its content-addressed set."""
    digest = media.sha256_hex(data)
    root = Path(".")
    return {str(media.original_path(root, digest)),
            *(str(media.derived_path(root, digest, v)) for v in media.VARIANTS)}


def assert_clean_jpeg(data: bytes, name: str) -> None:
    """A re-encoded derivative: a JPEG that carries none of the upload's hostile bytes."""
    assert data[:3] == b"\xff\xd8\xff", name
    assert Image.open(io.BytesIO(data)).format == "JPEG"
    assert not any(marker in data for marker in HOSTILE_MARKERS), name


# --- the pipeline alone: what the limits decide ----------------------------------------------------------


def corpus_item(name: str) -> Item:
    return next(item for item in CORPUS if item.name == name)


@pytest.mark.parametrize("name", ["png_zlib_zero_bomb", "webp_zero_bomb", "jpeg_progressive_zero_bomb"])
def test_decompression_bombs_are_refused_from_the_header_without_decoding(monkeypatch, name):
    from PIL import ImageFile, WebPImagePlugin

    def never(self):
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", never)
    monkeypatch.setattr(WebPImagePlugin.WebPImageFile, "load", never)
    data = corpus_item(name).data
    with pytest.raises(media.MediaError) as exc:
        media.process_upload(data, media.sha256_hex(data))
    assert exc.value.code == "image_too_many_pixels"
    assert exc.value.params["limit"] < media.MAX_PIXELS  # the format's decoding limit, not the general one


def test_a_long_thin_jpeg_is_decoded_at_a_reduced_scale():
    data = corpus_item("jpeg_panorama_64000x1000").data
    facts, image = media.inspect_image(data)
    assert (facts.width, facts.height) == (64000, 1000)
    assert image.size == (8000, 125)  # 1/8 scale: 4 MB of pixels instead of 256 MB
    assert max(Image.open(io.BytesIO(media.derive(image)["large"])).size) == 2048


# --- in-process: the functional outcome on both backends ------------------------------------------------


@pytest.fixture
def visit(client, db_session):
    """An appeal whose assignee (a Kazakh-speaking field worker) is on site: (headers, appeal_id)."""
    unit = unit_of_default_point(client)
    worker = make_staff("field_staff", unit=unit, language=LANG)
    dispatch.set_duty(worker, True, utcnow())
    db.session.commit()
    headers = bearer(worker)
    result = register_appeal(AppealIn(**appeal_body()), actor=Actor("staff", "operator"), now=utcnow())
    db.session.commit()
    assert result.appeal.assignee_id == worker.id
    on_site(client, headers, result.appeal.id)
    return headers, result.appeal.id


def photo_form(item: Item) -> tuple[bytes, str]:
    return multipart([("kind", "before"), ("sha256", media.sha256_hex(item.data))],
                     [("file", item.filename, item.content_type, item.data)])


def report_fields(photo_hashes: list[str]) -> list[tuple[str, str]]:
    return [("type", "complaint"), ("topic", "roads"), ("description", "A pothole by the bus stop."),
            ("lat", str(APPEAL["lat"])), ("lon", str(APPEAL["lon"])), ("accuracy_m", "12"),
            ("language", LANG), ("consent", "true"), ("consent_version", portal.CONSENT_VERSION),
            ("photos_sha256", ",".join(photo_hashes))]


def report_form(item: Item) -> tuple[bytes, str]:
    return multipart(report_fields([media.sha256_hex(item.data)]),
                     [("photo", item.filename, item.content_type, item.data)])


def attachments(appeal_id: int | None = None) -> int:
    query = sql_select(func.count(Attachment.id))
    if appeal_id is not None:
        query = query.where(Attachment.appeal_id == appeal_id)
    return db.session.scalar(query)


def appeals() -> int:
    return db.session.scalar(sql_select(func.count(Appeal.id)))


def test_every_item_through_the_field_photo_upload(client, visit, app):
    headers, appeal_id = visit
    instance = Path(app.instance_path) / "media"
    problems = []
    for item in CORPUS:
        before_files, before_rows = files_under(instance), attachments(appeal_id)
        body, ctype = photo_form(item)
        res = client.post(f"/api/v1/appeals/{appeal_id}/photos", data=body, content_type=ctype,
                          headers={**headers, "Idempotency-Key": str(uuid.uuid4())})
        added = files_under(instance) - before_files
        try:
            if isinstance(item.expect_http, Refuse):
                assert_refusal(res.status_code, res.json, item.expect_http, item.name)
                assert res.json["error"]["fields"][0]["field"] == "file"
                assert attachments(appeal_id) == before_rows and added == set(), (item.name, added)
            else:
                assert res.status_code in (200, 201), (item.name, res.json)
                assert attachments(appeal_id) == before_rows + (res.status_code == 201)
                assert added <= stored_paths(item.data), (item.name, added)
                urls = res.json["urls"]
                for variant in ("thumb", "large"):
                    served = client.get(urls[variant], headers=headers)
                    assert served.mimetype == "image/jpeg"
                    assert_clean_jpeg(served.data, item.name)
                original = client.get(urls["original"], headers=headers)
                # The original (with its harmless metadata) only ever goes out as its image type, sandboxed.
                assert original.data == item.data
                assert original.mimetype == media.MIME[media.sniff_format(item.data)]
                assert original.headers["X-Content-Type-Options"] == "nosniff"
                assert original.headers["Content-Security-Policy"] == "default-src 'none'; sandbox"
        except AssertionError as exc:
            problems.append(f"{item.name}: {exc}")
    assert problems == []


@pytest.fixture
def report_client(client, app):
    limiter(app).reset()
    yield client
    limiter(app).reset()


def test_every_item_through_the_citizen_report(report_client, app):
    client = report_client
    instance = Path(app.instance_path) / "media"
    problems = []
    for item in CORPUS:
        limiter(app).reset()  # the corpus is many more reports than one address may file
        token = client.get("/api/v1/public/report/form").json["csrf_token"]
        before_files, before_rows, before_appeals = files_under(instance), attachments(), appeals()
        body, ctype = report_form(item)
        res = client.post("/api/v1/public/reports", data=body, content_type=ctype,
                          headers={"X-CSRFToken": token, "Idempotency-Key": str(uuid.uuid4()),
                                   "Accept-Language": LANG})
        added = files_under(instance) - before_files
        try:
            if isinstance(item.expect_http, Refuse):
                assert_refusal(res.status_code, res.json, item.expect_http, item.name)
                assert res.json["error"]["fields"][0]["field"] == "photo"
                assert (appeals(), attachments(), added) == (before_appeals, before_rows, set()), item.name
            else:
                assert res.status_code == 201, (item.name, res.json)
                assert appeals() == before_appeals + 1
                assert attachments() == before_rows + 1
                assert added <= stored_paths(item.data), (item.name, added)
                for variant in ("thumb", "large"):
                    path = media.derived_path(instance, media.sha256_hex(item.data), variant)
                    assert_clean_jpeg(path.read_bytes(), item.name)
        except AssertionError as exc:
            problems.append(f"{item.name}: {exc}")
    assert problems == []


def test_request_level_items_on_both_routes(client, visit, app):
    """Oversize bodies and thousands of parts: refused with a 4xx, nothing stored (in-process)."""
    headers, appeal_id = visit
    limiter(app).reset()
    instance = Path(app.instance_path) / "media"
    routes = [(f"/api/v1/appeals/{appeal_id}/photos", media.MAX_REQUEST_BYTES,
               [("kind", "before"), ("sha256", "0" * 64)], "file", headers),
              ("/api/v1/public/reports", portal.MAX_REQUEST_BYTES, report_fields(["0" * 64]), "photo", None)]
    for path, limit, fields, file_field, auth in routes:
        for item in body_items(fields, file_field, limit):
            if item.content_length is not None:
                continue  # a lying Content-Length needs a real socket: see the server test below
            hdrs = dict(auth or {"X-CSRFToken": client.get("/api/v1/public/report/form").json["csrf_token"]})
            before = (files_under(instance), attachments(), appeals())
            res = client.post(path, data=item.body, content_type=item.content_type,
                              headers={**hdrs, "Idempotency-Key": str(uuid.uuid4()), "Accept-Language": LANG})
            assert_refusal(res.status_code, res.json, item.expect, f"{path} {item.name}")
            assert (files_under(instance), attachments(), appeals()) == before, (path, item.name)
    limiter(app).reset()


# --- the messenger path: the worker fetches from the provider stub ------------------------------------------


def _proc_status(pid: int | str) -> dict[str, int]:
    out = {}
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            if key in ("VmHWM", "VmRSS"):
                out[key] = int(value.split()[0]) * 1024
    return out


def reset_peak(pid: int | str) -> int:
    """Reset the process's peak RSS; returns its RSS now (bytes)."""
    with open(f"/proc/{pid}/clear_refs", "w") as fh:
        fh.write("5")
    return _proc_status(pid)["VmRSS"]


def peak_growth_mb(pid: int | str, rss_before: int) -> float:
    return (_proc_status(pid)["VmHWM"] - rss_before) / 2**20


def test_every_item_through_the_messenger_media_fetch(app, db_session):
    instance = Path(app.instance_path) / "media"
    result = register_appeal(AppealIn(**appeal_body(channel="telegram")), actor=Actor("staff", "operator"),
                             now=utcnow())
    db.session.commit()
    appeal_id = result.appeal.id
    problems, figures = [], []
    with configured_providers(app) as stub:
        for n, item in enumerate(CORPUS):
            file_id = f"corpus-{n}-{item.name}"
            stub.add_telegram_file(file_id, item.data, path=f"photos/file_{n}.jpg")
            now = utcnow()
            row = MediaFetch(channel="telegram", media_ref=file_id, appeal_id=appeal_id, state="pending",
                             next_attempt_at=now - timedelta(seconds=1), created_at=now)
            db.session.add(row)
            db.session.commit()
            before_files, before_rows = files_under(instance), attachments(appeal_id)
            rss = reset_peak("self")
            started = time.perf_counter()
            counts = media_fetch.fetch_due(now)
            seconds = time.perf_counter() - started
            growth = peak_growth_mb("self", rss)
            figures.append((item.name, seconds, growth))
            db.session.refresh(row)
            added = files_under(instance) - before_files
            try:
                assert counts["claimed"] == 1, (item.name, counts)
                assert seconds < item.max_seconds and growth < MAX_GROWTH_MB, (item.name, seconds, growth)
                if isinstance(item.expect, Refuse):
                    assert row.state == "dead" and row.last_error == f"refused: {item.expect.code}", \
                        (item.name, row.state, row.last_error)
                    assert attachments(appeal_id) == before_rows and added == set(), (item.name, added)
                else:
                    assert row.state == "sent" and row.attachment_id is not None, (item.name, row.last_error)
                    assert added <= stored_paths(item.data), (item.name, added)
                    photo = db.session.get(Attachment, row.attachment_id)
                    assert photo.kind == "citizen" and photo.sha256 == media.sha256_hex(item.data)
            except AssertionError as exc:
                problems.append(f"{item.name}: {exc}")
    assert problems == [], problems


# --- a real server: time and memory per item ----------------------------------------------------------------


SECRET = "upload-corpus-secret-0123456789-abcdefghijkl"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Gunicorn:
    """One production-style process (gunicorn, one gthread worker) on a SpatiaLite file."""

    def __init__(self, database_url: str, workdir: Path, worker_class: str = "gthread"):
        self.worker_class = worker_class
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.instance = workdir / "instance-server"
        self.log = workdir / "server.log"
        self.database_url = database_url
        self.proc: subprocess.Popen | None = None

    def start(self) -> Gunicorn:
        gunicorn = Path(sys.executable).with_name("gunicorn")
        workers = ["-k", "gevent"] if self.worker_class == "gevent" else ["-k", "gthread", "--threads", "4"]
        cmd = [str(gunicorn), "-w", "1", *workers, "--bind", f"127.0.0.1:{self.port}",
               "--graceful-timeout", "3", "--log-level", "warning", "server:create_app()"]
        mode = "gevent" if self.worker_class == "gevent" else "threading"
        env = {**os.environ, "DATABASE_URL": self.database_url, "JAUAP_SECRET_KEY": SECRET,
               "JAUAP_INSTANCE_PATH": str(self.instance), "JAUAP_ASYNC_MODE": mode,
               "JAUAP_REPORT_LIMITS": "100000/600", "JAUAP_REDIS_URL": ""}
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited: {self.log.read_text(errors='replace')[-2000:]}")
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{self.url}/readyz", timeout=2).status_code == 200 and self.worker_pid():
                    return self
            time.sleep(0.1)
        raise RuntimeError("gunicorn not ready in 30 s")

    def worker_pid(self) -> int | None:
        """The worker process (the master only supervises)."""
        try:
            children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
        except OSError:
            return None
        return int(children[0]) if children else None

    def stop(self) -> None:
        stop_group(self.proc)


def raw_post(port: int, path: str, headers: dict, body: bytes, content_length: int | None = None,
             timeout: float = 10.0) -> tuple[int, dict, bytes]:
    """POST over a plain socket, so the Content-Length may lie; stops sending as soon as the server answers."""
    length = len(body) if content_length is None else content_length
    head = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", f"Content-Length: {length}", "Connection: close",
            *(f"{k}: {v}" for k, v in headers.items())]
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
        view = memoryview(body)
        with contextlib.suppress(OSError):  # the server may answer (413) and close before the body is all sent
            for start in range(0, len(view), 64 * 1024):
                if select.select([sock], [], [], 0)[0]:
                    break
                sock.sendall(view[start:start + 64 * 1024])
        response = HTTPResponse(sock)
        response.begin()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        sock.close()


@pytest.fixture
def server(backend, tmp_path, request):
    """A gunicorn process (``worker_class`` parameter) with a Kazakh field worker on site at an appeal.

    Yields (server, bearer headers, appeal id, database URL).
    """
    url = backend.copy("corpus")
    app = make_app(url, tmp_path / "instance-setup")
    app.test_client_class = FreshUserClient
    with app.app_context():
        client = app.test_client()
        unit = unit_of_default_point(client)
        worker = make_staff("field_staff", unit=unit, username="corpus-field", language=LANG)
        dispatch.set_duty(worker, True, utcnow())
        db.session.commit()
        headers = bearer(worker)
        result = register_appeal(AppealIn(**appeal_body()), actor=Actor("staff", "operator"), now=utcnow())
        db.session.commit()
        appeal_id = result.appeal.id
        on_site(client, headers, appeal_id)
        db.session.remove()
        db.engine.dispose()
    proc = Gunicorn(url, tmp_path, getattr(request, "param", "gthread")).start()
    try:
        with app.app_context():  # for the Kazakh messages the answers are compared with
            yield proc, headers, appeal_id, url
    finally:
        proc.stop()


def _counts() -> tuple[int, int]:
    out = (attachments(), appeals())
    db.session.remove()
    return out


# Per push: SpatiaLite on threaded workers, once through. Slow: PostGIS on gevent workers (production), the
# corpus three times, and the process must not grow from round to round (nothing kept per refused upload).
@pytest.mark.parametrize(("backend", "server", "rounds"), [
    ("spatialite", "gthread", 1),
    pytest.param("postgis", "gevent", 3, marks=pytest.mark.slow),
], indirect=["backend", "server"])
def test_a_real_server_refuses_every_item_in_under_a_second_and_100_mb(server, rounds, tmp_path):
    proc, headers, appeal_id, _url = server
    pid = proc.worker_pid()
    session = requests.Session()
    form = session.get(f"{proc.url}/api/v1/public/report/form", timeout=10).json()
    cookie = "; ".join(f"{c.name}={c.value}" for c in session.cookies)
    report_headers = {"X-CSRFToken": form["csrf_token"], "Cookie": cookie}
    base_rows, base_appeals = _counts()
    photo_path = f"/api/v1/appeals/{appeal_id}/photos"
    cases = []
    for item in CORPUS:
        cases.append(("photo", item.name, photo_path, headers, *photo_form(item), None, item.expect_http,
                      item.data, item.max_seconds))
        cases.append(("report", item.name, "/api/v1/public/reports", report_headers, *report_form(item), None,
                      item.expect_http, item.data, item.max_seconds))
    for route, path, limit, fields, file_field, hdrs in (
            ("photo", photo_path, media.MAX_REQUEST_BYTES, [("kind", "before"), ("sha256", "0" * 64)], "file",
             headers),
            ("report", "/api/v1/public/reports", portal.MAX_REQUEST_BYTES, report_fields(["0" * 64]), "photo",
             report_headers)):
        for b in body_items(fields, file_field, limit):
            cases.append((route, b.name, path, hdrs, b.body, b.content_type, b.content_length, b.expect, None,
                          MAX_SECONDS))

    # Warm up: the first photo of each format loads the decoders once (not per item).
    for fmt in ("JPEG", "PNG", "WEBP"):
        warm = Item(f"warm-{fmt}", "warm", _image(fmt), ACCEPT)
        raw_post(proc.port, photo_path, {**headers, "Idempotency-Key": str(uuid.uuid4()),
                                         "Content-Type": photo_form(warm)[1]}, photo_form(warm)[0])
    files_before = files_under(proc.instance / "media")
    accepted = {"photo": 3, "report": 0}
    allowed_files = set().union(*(stored_paths(_image(f)) for f in ("JPEG", "PNG", "WEBP")))
    problems, figures = [], []
    rss_after_round = []
    for _round in range(rounds):
        for route, name, path, hdrs, body, ctype, length, expect, data, max_seconds in cases:
            rss = reset_peak(pid)
            started = time.perf_counter()
            status, _h, raw = raw_post(proc.port, path, {**hdrs, "Content-Type": ctype, "Accept-Language": LANG,
                                                         "Idempotency-Key": str(uuid.uuid4())}, body, length)
            seconds = time.perf_counter() - started
            growth = peak_growth_mb(pid, rss)
            figures.append((route, name, status, seconds, growth))
            try:
                assert seconds < max_seconds, f"{seconds:.2f} s"
                assert growth < MAX_GROWTH_MB, f"{growth:.0f} MB"
                payload = json.loads(raw)
                if isinstance(expect, Refuse):
                    assert_refusal(status, payload, expect, name)
                else:
                    assert status == 201, payload
                    accepted[route] += 1
                    allowed_files |= stored_paths(data)
            except (AssertionError, ValueError) as exc:
                problems.append(f"{route} {name}: {exc}")
        rss_after_round.append(_proc_status(pid)["VmRSS"] / 2**20)
    report = "\n".join(f"{r:6s} {n:30s} {s} {t * 1000:7.1f} ms {g:6.1f} MB" for r, n, s, t, g in figures)
    print(report)
    assert problems == [], "\n".join(problems) + "\n" + report
    # Nothing is kept per upload: the worker does not grow from one round of the corpus to the next.
    assert rss_after_round[-1] - rss_after_round[0] < 20, rss_after_round
    # Nothing stored by a refusal: the rows and the files are exactly the accepted photos'.
    rows, appeal_count = _counts()
    assert rows - base_rows == accepted["photo"] + accepted["report"]
    assert appeal_count - base_appeals == accepted["report"]
    added = files_under(proc.instance / "media") - files_before
    assert {f for f in added if "/.tmp-" in f or f.rsplit("/", 1)[-1].startswith(".tmp-")} == set()
    assert added <= allowed_files, added - allowed_files
    assert proc.proc.poll() is None  # still serving


def _image(fmt: str) -> bytes:
    picture = Image.new("RGB", (64, 48), (10, 120, 30) if fmt == "JPEG" else (120, 10, 30))
    buf = io.BytesIO()
    picture.save(buf, fmt)
    return buf.getvalue()


def test_the_corpus_readme_lists_every_item():
    readme = (REPO_ROOT / "tests" / "corpus" / "README.md").read_text(encoding="utf-8")
    names = [item.name for item in CORPUS] + [b.name for b in body_items([], "file", 1024)]
    assert [n for n in names if f"`{n}`" not in readme] == []

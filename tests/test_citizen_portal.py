"""The citizen's side on the web: /report (consent, validation, rate limit, idempotency, photos) and
/t/<token> (a public-safe view, "after" photo derivatives, confirm/dispute within the window)."""

from __future__ import annotations

import io
import json
import uuid
from datetime import timedelta

import pytest
from flask_babel import force_locale
from PIL import Image
from sqlalchemy import func, select

from server import media
from server.api.messages import message
from server.config import REPO_ROOT
from server.extensions import db
from server.models import Appeal, AppealEvent, Attachment, Citizen, Feedback
from server.models.types import utcnow
from server.ratelimit import Limit, MemoryCounters, RateLimiter, client_address, limiter, parse_limits
from server.services import citizen_portal as portal
from server.services.evidence import media_root
from server.services.lifecycle import SYSTEM, Actor, transition
from server.services.staff import create_staff
from tests.conftest import PASSWORD, make_staff

POINT = {"lat": 43.2975, "lon": 68.2510}
NAME, PHONE = "Aigerim Testqyzy", "+7 701 555 9876"


@pytest.fixture(autouse=True)
def fresh_limits(request):
    """Each test through the app starts with no report counted (one app is shared per backend)."""
    if "client" not in request.fixturenames:
        yield
        return
    app = request.getfixturevalue("app")
    limiter(app).reset()
    yield
    limiter(app).reset()


def jpeg(colour=(200, 30, 30), size=(64, 48)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, "JPEG", quality=85)
    return buf.getvalue()


def sha(data: bytes) -> str:
    return media.sha256_hex(data)


def form_token(client, **kwargs) -> str:
    res = client.get("/api/v1/public/report/form", **kwargs)
    assert res.status_code == 200, res.json
    return res.json["csrf_token"]


def fields(**overrides) -> dict:
    base = {"type": "complaint", "topic": "roads", "description": "A deep pothole at the bus stop.",
            "lat": str(POINT["lat"]), "lon": str(POINT["lon"]), "accuracy_m": "12", "name": NAME, "phone": PHONE,
            "language": "kk", "consent": "true", "consent_version": portal.CONSENT_VERSION}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def report(client, token=None, *, key=None, photos=(), query="", headers=None, **overrides):
    """POST a report; ``photos`` are bytes (their true SHA-256 is sent unless given as (bytes, sha))."""
    token = token if token is not None else form_token(client)
    data = fields(**overrides)
    pairs = [p if isinstance(p, tuple) else (p, sha(p)) for p in photos]
    if pairs and "photos_sha256" not in overrides:
        data["photos_sha256"] = ",".join(h for _b, h in pairs)
    data["photo"] = [(io.BytesIO(b), f"p{i}.jpg", "image/jpeg") for i, (b, _h) in enumerate(pairs)]
    hdrs = {"X-CSRFToken": token, "Idempotency-Key": key or str(uuid.uuid4()), **(headers or {})}
    if key == "":
        hdrs.pop("Idempotency-Key")
    return client.post(f"/api/v1/public/reports{query}", data=data, headers=hdrs,
                       content_type="multipart/form-data")


def appeals() -> int:
    return db.session.scalar(select(func.count()).select_from(Appeal))


def by_reg(reg_no: str) -> Appeal:
    return db.session.scalar(select(Appeal).where(Appeal.reg_no == reg_no))


def token_of(res) -> str:
    return res.json["tracking_url"].rsplit("/", 1)[1]


def answer(appeal: Appeal, now, text="The pothole was filled with asphalt.", *, field=None, inspector=None):
    """Take the appeal through the work to ``answered`` by the state machine (as the people would)."""
    field = field or make_staff("field_staff", unit=appeal.unit.code)
    inspector = inspector or make_staff("inspector")
    if appeal.status in ("routed", "reopened"):
        transition(appeal, "assign", SYSTEM, now)
        appeal.assignee_id = field.id
    for action in ("accept", "arrive", "resolve"):
        transition(appeal, action, Actor.of(field), now)
    transition(appeal, "verify", Actor.of(inspector), now)
    transition(appeal, "answer", SYSTEM, now, data={"answer": text})
    appeal.answer_text = text
    db.session.commit()
    return field, inspector


def add_after_photo(appeal: Appeal, field, now) -> Attachment:
    data = jpeg((20, 160, 40), (300, 200))
    processed = media.process_upload(data, sha(data))
    media.store(media_root(), processed)
    photo = Attachment(public_id=uuid.uuid4().hex[:20], appeal_id=appeal.id, kind="after",
                       sha256=processed.facts.sha256, mime="image/jpeg", size_bytes=len(data), width=300,
                       height=200, uploaded_by_id=field.id, created_at=now)
    db.session.add(photo)
    db.session.commit()
    return photo


def feedback(client, token, body, csrf=None):
    csrf = csrf or client.get(f"/api/v1/public/tracking/{token}").json["csrf_token"]
    return client.post(f"/api/v1/public/tracking/{token}/feedback", json=body, headers={"X-CSRFToken": csrf})


# --- the report ---------------------------------------------------------------------------------


def test_report_page_form_and_consent_text_in_every_language(client):
    page = client.get("/report")
    assert page.status_code == 200 and b'data-js="form"' in page.data
    form = client.get("/api/v1/public/report/form", headers={"Accept-Language": "kk-KZ,ru"})
    assert form.json["consent_version"] == portal.CONSENT_VERSION
    assert form.json["language"] == "kk" and form.json["max_photos"] == 3
    assert form.headers["Cache-Control"] == "no-store"
    # The consent text the version stands for exists in all three languages, and every citizen string too.
    catalogs = {code: json.loads((REPO_ROOT / "pwa" / "shared" / "i18n" / f"{code}.json").read_text("utf-8"))
                for code in ("kk", "ru", "en")}
    for code, catalog in catalogs.items():
        assert catalog.get(f"citizen.consent.{portal.CONSENT_VERSION}"), code
    keys = {code: {k for k in c if k.startswith("citizen.")} for code, c in catalogs.items()}
    assert keys["kk"] == keys["ru"] == keys["en"]
    assert all(catalogs["kk"][k] != catalogs["en"][k] for k in keys["en"] if k != "citizen.report.phone")


def test_report_registers_a_web_appeal_with_consent_and_photos(client):
    photos = [jpeg(), jpeg((10, 10, 200))]
    before = utcnow()
    res = report(client, photos=photos)
    assert res.status_code == 201, res.json
    assert res.json["tracking_url"].startswith("/t/") and res.json["stage"] in ("routed", "assigned")
    appeal = by_reg(res.json["reg_no"])
    assert appeal.channel == "web" and appeal.created_by_id is None and appeal.sector is not None
    assert appeal.accuracy_m == 12 and appeal.tracking_token == token_of(res)
    citizen = db.session.get(Citizen, appeal.citizen_id)
    assert (citizen.name, citizen.phone, citizen.language) == (NAME, PHONE, "kk")
    assert citizen.consent_version == portal.CONSENT_VERSION and citizen.consent_at >= before
    stored = list(db.session.scalars(select(Attachment).where(Attachment.appeal_id == appeal.id)
                                     .order_by(Attachment.id)))
    assert [(p.kind, p.sha256, p.uploaded_by_id) for p in stored] == [("citizen", sha(b), None) for b in photos]
    for p in stored:  # content-addressed original and its clean derivatives are on disk
        assert media.original_path(media_root(), p.sha256).read_bytes() in photos
        assert media.derived_path(media_root(), p.sha256, "thumb").is_file()
    kinds = [(e.kind, e.actor_kind) for e in appeal.events]
    assert kinds[0] == ("appeal.registered", "citizen")
    assert kinds.count(("appeal.photo_added", "citizen")) == 2


def test_a_report_without_contact_still_records_the_consent(client):
    res = report(client, name=None, phone=None, lat=None, lon=None, accuracy_m=None, address="Tauke khan ave 5")
    assert res.status_code == 201, res.json
    appeal = by_reg(res.json["reg_no"])
    citizen = db.session.get(Citizen, appeal.citizen_id)
    assert citizen.channel == "web" and citizen.name is None and citizen.consent_version == portal.CONSENT_VERSION
    assert appeal.location is None and appeal.address == "Tauke khan ave 5" and appeal.status == "unrouted"


def test_validation_errors_name_the_field_in_the_users_language(client):
    token = form_token(client)
    res = report(client, token, description="", lat="143.5", headers={"Accept-Language": "kk-KZ,ru"})
    assert res.status_code == 400 and res.json["error"]["code"] == "validation_failed"
    by_field = {f["field"]: f for f in res.json["error"]["fields"]}
    assert set(by_field) == {"description", "lat"}
    with force_locale("kk"):
        expected = message("string_too_short")
    assert expected != "must not be empty"
    assert by_field["description"]["message"] == f"description: {expected}"
    # ?lang= (the page's language switch) wins over the browser's languages.
    res = report(client, token, type="pothole", query="?lang=ru", headers={"Accept-Language": "en"})
    with force_locale("ru"):
        prefix = message("literal_error", expected="X").split("X")[0]
    assert prefix != "must be one of: "
    assert res.json["error"]["fields"][0]["message"].startswith(f"type: {prefix}")
    # A point or an address is required; lat without lon is refused.
    res = report(client, token, lat=None, lon=None)
    assert res.status_code == 400 and res.json["error"]["fields"][0]["code"] == "location_required"
    res = report(client, token, lon=None)
    assert res.json["error"]["fields"][0]["field"] == "lon"
    assert appeals() == 0


def test_consent_is_required_and_must_be_the_current_text(client):
    res = report(client, consent="false")
    assert res.status_code == 422 and res.json["error"]["code"] == "consent_required"
    assert res.json["error"]["fields"][0]["field"] == "consent"
    res = report(client, consent=None)
    assert res.status_code == 422 and res.json["error"]["code"] == "consent_required"
    res = report(client, consent_version="2020-01")
    assert res.status_code == 422 and res.json["error"]["code"] == "consent_outdated"
    assert appeals() == 0 and db.session.scalar(select(func.count()).select_from(Citizen)) == 0


def test_reports_are_rate_limited_per_address(client):
    token = form_token(client)
    first = None
    for i in range(5):
        res = report(client, token, description=f"Broken street light number {i}.")
        assert res.status_code == 201, res.json
        first = first or res
    res = report(client, token, headers={"Accept-Language": "ru"})
    assert res.status_code == 429 and res.json["error"]["code"] == "report_rate_limited"
    assert 0 < int(res.headers["Retry-After"]) <= 600
    minutes = res.json["error"]["detail"]["retry_after"] // 60 + (res.json["error"]["detail"]["retry_after"] % 60 > 0)
    with force_locale("ru"):
        assert res.json["error"]["message"] == message("report_rate_limited", minutes=max(1, minutes))
    assert appeals() == 5
    # Another address (behind a trusted proxy) is counted apart.
    app = client.application
    app.config["JAUAP_PROXY_HOPS"] = 1
    try:
        ok = report(client, token, headers={"X-Forwarded-For": "198.51.100.7"})
        assert ok.status_code == 201, ok.json
    finally:
        app.config["JAUAP_PROXY_HOPS"] = 0
    assert appeals() == 6


def test_limits_count_windows_and_the_day():
    limits = parse_limits("5/600,50/86400")
    assert limits == [Limit(5, 600), Limit(50, 86400)]
    rl = RateLimiter()
    t0 = 86400.0 * 20833  # a window boundary of both (a UTC midnight in 2027)
    assert all(rl.hit("report", "a", limits, t0 + i) is None for i in range(5))
    assert rl.hit("report", "a", limits, t0 + 5) == 595  # seconds left in this 10-minute window
    assert rl.hit("report", "b", limits, t0 + 5) is None  # another client
    assert rl.hit("report", "a", limits, t0 + 600) is None  # the next window
    for k in range(1, 10):  # 5 more per window until the daily 50
        for i in range(5 if k > 1 else 4):
            rl.hit("report", "a", limits, t0 + 600 * k + i)
    assert rl.hit("report", "a", limits, t0 + 6000) is not None
    wait = rl.hit("report", "a", limits, t0 + 6600)
    assert wait == 86400 - 6600  # the day is used up: wait for the next one
    with pytest.raises(ValueError):
        parse_limits("0/60")


def test_client_address_trusts_only_the_configured_proxies():
    from flask import Flask

    with Flask(__name__).test_request_context("/", environ_base={"REMOTE_ADDR": "10.0.0.2"},
                                  headers={"X-Forwarded-For": "6.6.6.6, 203.0.113.9"}):
        from flask import request

        assert client_address(request, 0) == "10.0.0.2"  # no proxy: the header is the client's word only
        assert client_address(request, 1) == "203.0.113.9"  # what our proxy saw
        assert client_address(request, 2) == "6.6.6.6"
        assert client_address(request, 3) == "10.0.0.2"  # fewer hops than promised: not trusted


def test_redis_counters_are_shared_and_a_dead_redis_falls_back_to_memory():
    import redis

    url = "redis://127.0.0.1:6379/15"
    try:
        redis.Redis.from_url(url, socket_connect_timeout=0.5).ping()
    except redis.exceptions.RedisError:
        pytest.skip("no local Redis")
    prefix = f"jauap-test-{uuid.uuid4().hex[:8]}:rl"
    one, two = RateLimiter(url, prefix), RateLimiter(url, prefix)  # two processes
    limits = [Limit(2, 600)]
    now = 1_800_000_000.0
    try:
        assert one.hit("report", "x", limits, now) is None
        assert two.hit("report", "x", limits, now) is None
        assert one.hit("report", "x", limits, now) == 600
        assert one.memory._counts == {}  # counted in Redis, not here
        ttl = one.redis.client.ttl(f"{prefix}:report:x:600:{int(now // 600)}")
        assert 600 <= ttl <= 660
    finally:
        for key in one.redis.client.scan_iter(f"{prefix}:*"):
            one.redis.client.delete(key)
    dead = RateLimiter("redis://127.0.0.1:1/0", prefix)
    assert dead.hit("report", "x", limits, now) is None
    assert dead.hit("report", "x", limits, now) is None
    assert dead.hit("report", "x", limits, now) == 600  # still limited, per process
    assert isinstance(dead.memory, MemoryCounters)


def test_a_retried_submission_never_makes_a_second_appeal(client):
    token = form_token(client)
    key = str(uuid.uuid4())
    photo = jpeg()
    first = report(client, token, key=key, photos=[photo])
    again = report(client, token, key=key, photos=[photo])
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json == first.json
    assert appeals() == 1 and db.session.scalar(select(func.count()).select_from(Attachment)) == 1
    # The same key with another report, or other photos, is refused.
    res = report(client, token, key=key, photos=[photo], description="Something else entirely.")
    assert res.status_code == 422 and res.json["error"]["code"] == "idempotency_key_reused"
    res = report(client, token, key=key, photos=[jpeg((0, 0, 0))])
    assert res.status_code == 422
    # The key is required, and must be a UUID.
    assert report(client, token, key="").json["error"]["code"] == "report_key_required"
    assert report(client, token, key="call-1").json["error"]["code"] == "bad_client_uuid"
    # Retries do not use up the rate limit.
    for _ in range(6):
        assert report(client, token, key=key, photos=[photo]).status_code == 200
    assert appeals() == 1


def test_writes_need_the_csrf_token_of_the_session(client):
    res = report(client, token="")
    assert res.status_code == 400 and res.json["error"]["code"] == "csrf_failed"
    other = client.application.test_client()
    res = report(other, token=form_token(client))  # a token from another browser session
    assert res.status_code == 400 and res.json["error"]["code"] == "csrf_failed"
    assert appeals() == 0


@pytest.mark.parametrize(("upload", "status", "code"), [
    (jpeg() + b"<html><script>alert(1)</script></html>", 422, "image_trailing_data"),
    (b"<svg xmlns='http://www.w3.org/2000/svg' onload='alert(1)'/>", 415, "unsupported_image_type"),
    (b"%PDF-1.4 not a photo", 415, "unsupported_image_type"),
    ((jpeg(), "0" * 64), 422, "hash_mismatch"),
    (b"\xff\xd8\xff" + b"\0" * (portal.MAX_PHOTO_BYTES), 413, "image_too_large"),
])
def test_hostile_photos_are_refused_and_nothing_is_saved(client, upload, status, code):
    res = report(client, photos=[upload])
    assert res.status_code == status, res.json
    assert res.json["error"]["code"] == code and res.json["error"]["fields"][0]["field"] == "photo"
    assert appeals() == 0 and db.session.scalar(select(func.count()).select_from(Attachment)) == 0


def test_at_most_three_photos_each_with_its_hash(client):
    res = report(client, photos=[jpeg((i, 0, 0)) for i in range(4)])
    assert res.status_code == 422 and res.json["error"]["code"] == "too_many_photos"
    res = report(client, photos=[jpeg()], photos_sha256="")
    assert res.status_code == 422 and res.json["error"]["code"] == "photo_hash_count"
    assert appeals() == 0


# --- tracking -------------------------------------------------------------------------------------


def test_tracking_shows_progress_and_the_answer_but_no_personal_data(client):
    res = report(client, photos=[jpeg()], description="Call me on 8 777 000 1122 about the pit.")
    token = token_of(res)
    appeal = by_reg(res.json["reg_no"])
    now = utcnow()
    field = create_staff("field-marat-k", "field_staff", PASSWORD, unit_code=appeal.unit.code,
                         full_name="Marat Kaliyev", now=now)
    inspector = create_staff("insp-dana-s", "inspector", PASSWORD, full_name="Dana Seitova", now=now)
    transition(appeal, "assign", SYSTEM, now)
    appeal.assignee_id = field.id
    transition(appeal, "decline", Actor.of(field), now, reason="Marat Kaliyev is off sick today")
    db.session.commit()
    answer(appeal, now, field=field, inspector=inspector)
    add_after_photo(appeal, field, now)

    page = client.get(f"/t/{token}")
    assert page.status_code == 200
    assert page.headers["Cache-Control"] == "no-store" and page.headers["Referrer-Policy"] == "no-referrer"
    data = client.get(f"/api/v1/public/tracking/{token}?lang=ru")
    assert data.status_code == 200 and data.headers["Cache-Control"] == "no-store"
    view = data.json
    assert view["reg_no"] == appeal.reg_no and view["stage"] == "answered"
    assert view["topic"]["code"] == "roads" and view["topic"]["name"] == appeal.topic.name_ru
    assert view["answer"]["text"] == "The pothole was filled with asphalt."
    # Public stages only, in order; the decline shows as the way back to the unit, without its reason.
    assert [s["stage"] for s in view["timeline"]] == ["registered", "routed", "assigned", "routed", "assigned",
                                                      "accepted", "on_site", "resolved", "verified", "answered"]
    assert len(view["photos"]) == 1 and view["feedback"]["open"] is True
    for body in (page.get_data(as_text=True), data.get_data(as_text=True)):
        for secret in (NAME, PHONE, "Marat", "Kaliyev", "Dana", "Seitova", "field-marat-k", "insp-dana-s",
                       "off sick", "8 777 000 1122", "pothole at", "assignee", "reason", "actor"):
            assert secret not in body, secret
    assert set(view) == {"reg_no", "type", "topic", "stage", "created_at", "due_at", "timeline", "answer", "photos",
                         "feedback", "csrf_token"}


def test_unknown_tokens_get_404_everywhere(client):
    res = report(client, photos=[jpeg()])
    real = token_of(res)
    for bad in ("nope", real[:-1] + ("A" if real[-1] != "A" else "B"), "x" * 80):
        assert client.get(f"/t/{bad}").status_code == 404
        assert client.get(f"/api/v1/public/tracking/{bad}").status_code == 404
        assert client.get(f"/api/v1/public/tracking/{bad}/photos/abc/thumb").status_code == 404
        res = client.post(f"/api/v1/public/tracking/{bad}/feedback", json={"verdict": "confirm"},
                          headers={"X-CSRFToken": form_token(client)})
        assert res.status_code == 404


def test_after_photos_are_served_as_derivatives_only_for_their_own_token(client):
    res = report(client, photos=[jpeg()])
    other = report(client, description="Another street, another hole.")
    appeal = by_reg(res.json["reg_no"])
    field, _ = answer(appeal, utcnow())
    photo = add_after_photo(appeal, field, utcnow())
    token = token_of(res)
    urls = client.get(f"/api/v1/public/tracking/{token}").json["photos"][0]
    for variant in ("thumb", "large"):
        got = client.get(urls[variant])
        assert got.status_code == 200 and got.mimetype == "image/jpeg"
        assert got.headers["Cache-Control"] == "no-store" and got.headers["X-Content-Type-Options"] == "nosniff"
        assert got.data == media.derived_path(media_root(), photo.sha256, variant).read_bytes()
        assert b"Exif" not in got.data[:200]
    base = f"/api/v1/public/tracking/{token}/photos"
    assert client.get(f"{base}/{photo.public_id}/original").status_code == 404
    citizen_photo = db.session.scalar(select(Attachment).where(Attachment.appeal_id == appeal.id,
                                                               Attachment.kind == "citizen"))
    assert client.get(f"{base}/{citizen_photo.public_id}/thumb").status_code == 404
    foreign = f"/api/v1/public/tracking/{token_of(other)}/photos/{photo.public_id}/thumb"
    assert client.get(foreign).status_code == 404


# --- the verdict ----------------------------------------------------------------------------------


def test_confirm_closes_the_answered_appeal_once(client, monkeypatch):
    res = report(client)
    token, appeal = token_of(res), by_reg(res.json["reg_no"])
    assert feedback(client, token, {"verdict": "confirm"}).json["error"]["code"] == "feedback_not_open"
    answer(appeal, utcnow())
    sent = []
    monkeypatch.setattr("server.realtime.publish.emit_all", lambda messages: sent.extend(messages))
    got = feedback(client, token, {"verdict": "confirm", "rating": 5, "comment": "Thank you!"})
    assert got.status_code == 200, got.json
    assert got.json["stage"] == "closed" and got.json["feedback"]["open"] is False
    assert got.json["feedback"]["given"]["verdict"] == "confirm" and got.json["feedback"]["given"]["rating"] == 5
    db.session.refresh(appeal)
    assert appeal.status == "closed" and appeal.closed_at is not None
    row = db.session.scalar(select(Feedback).where(Feedback.appeal_id == appeal.id))
    assert (row.verdict, row.rating, row.comment) == ("confirm", 5, "Thank you!")
    last = appeal.events[-1]
    assert (last.kind, last.actor_kind, last.data["rating"], last.data["feedback_id"]) == (
        "appeal.closed", "citizen", 5, row.id)
    assert [m.kind for m in sent] == ["appeal.closed"]  # published live, after the commit
    again = feedback(client, token, {"verdict": "dispute", "comment": "Changed my mind"})
    assert again.status_code == 422 and again.json["error"]["code"] == "feedback_already_given"


def test_dispute_reopens_with_the_comment_and_goes_back_to_the_unit(client, monkeypatch):
    res = report(client)
    token, appeal = token_of(res), by_reg(res.json["reg_no"])
    field, _ = answer(appeal, utcnow())
    field.on_duty = True
    db.session.commit()
    sent = []
    monkeypatch.setattr("server.realtime.publish.emit_all", lambda messages: sent.extend(messages))
    got = feedback(client, token, {"verdict": "dispute", "rating": 1, "comment": "The hole is still there."})
    assert got.status_code == 200, got.json
    db.session.refresh(appeal)
    assert appeal.status == "assigned" and appeal.assignee_id == field.id and appeal.unit_id == field.unit_id
    reopened, assigned = appeal.events[-2:]
    assert (reopened.kind, reopened.actor_kind, reopened.from_status, reopened.to_status) == (
        "appeal.reopened", "citizen", "answered", "reopened")
    assert reopened.data["reason"] == "The hole is still there." and reopened.data["rating"] == 1
    assert assigned.kind == "appeal.assigned" and assigned.data["assignee_id"] == field.id
    assert [p["kind"] for m in sent for p in (m.payload["events"] if m.kind == "appeal.events" else [m.payload])] == [
        "appeal.reopened", "appeal.assigned"]
    assert got.json["stage"] == "assigned" and got.json["feedback"]["open"] is False
    assert got.json["feedback"]["given"]["verdict"] == "dispute" and got.json["feedback"]["until"] is None
    # A new answer opens a new cycle: the citizen may judge again.
    answer(appeal, utcnow(), field=field)
    again = client.get(f"/api/v1/public/tracking/{token}").json["feedback"]
    assert again["open"] is True and again["given"] is None


def test_a_dispute_with_nobody_on_duty_waits_in_the_unit_queue(client):
    res = report(client)
    token, appeal = token_of(res), by_reg(res.json["reg_no"])
    answer(appeal, utcnow())
    unit = appeal.unit_id
    got = feedback(client, token, {"verdict": "dispute", "comment": "Not fixed at all"})
    assert got.status_code == 200 and got.json["stage"] == "reopened"
    db.session.refresh(appeal)
    assert (appeal.status, appeal.assignee_id, appeal.unit_id) == ("reopened", None, unit)


def test_a_dispute_needs_a_comment_and_ratings_are_1_to_5(client):
    res = report(client)
    token, appeal = token_of(res), by_reg(res.json["reg_no"])
    answer(appeal, utcnow())
    got = feedback(client, token, {"verdict": "dispute", "comment": "  "})
    assert got.status_code == 400 and got.json["error"]["fields"][0]["field"] == "comment"
    assert got.json["error"]["fields"][0]["code"] == "dispute_comment_required"
    for rating in (0, 6, -1, 2.5, "5"):
        got = feedback(client, token, {"verdict": "confirm", "rating": rating})
        assert got.status_code == 400 and got.json["error"]["fields"][0]["field"] == "rating", rating
    assert feedback(client, token, {"verdict": "maybe"}).status_code == 400
    assert db.session.scalar(select(func.count()).select_from(Feedback)) == 0
    assert feedback(client, token, {"verdict": "confirm", "rating": 1}).status_code == 200


@pytest.mark.parametrize(("days_ago", "allowed"), [(14.9, True), (15.1, False)])
def test_the_verdict_window_is_15_days_from_the_answer(client, days_ago, allowed):
    res = report(client)
    token, appeal = token_of(res), by_reg(res.json["reg_no"])
    answer(appeal, utcnow())
    appeal.answered_at = utcnow() - timedelta(days=days_ago)
    db.session.commit()
    view = client.get(f"/api/v1/public/tracking/{token}").json
    assert view["feedback"]["open"] is allowed
    got = feedback(client, token, {"verdict": "dispute", "comment": "Still broken"})
    if allowed:
        assert got.status_code == 200
    else:
        assert got.status_code == 422 and got.json["error"]["code"] == "feedback_window_closed"
        db.session.refresh(appeal)
        assert appeal.status == "answered"
        assert db.session.scalar(select(func.count()).select_from(AppealEvent).where(
            AppealEvent.appeal_id == appeal.id, AppealEvent.kind == "appeal.reopened")) == 0


def test_a_verdict_on_an_appeal_the_centre_already_closed_is_recorded_without_a_step(client):
    res = report(client)
    token, appeal = token_of(res), by_reg(res.json["reg_no"])
    answer(appeal, utcnow())
    transition(appeal, "close", SYSTEM, utcnow())
    db.session.commit()
    got = feedback(client, token, {"verdict": "confirm", "rating": 4})
    assert got.status_code == 200 and got.json["stage"] == "closed"
    assert appeal.events[-1].kind == "appeal.feedback" and appeal.events[-1].to_status == "closed"


# --- the pages, statically ------------------------------------------------------------------------

CITIZEN_PWA = REPO_ROOT / "pwa" / "citizen"


def test_every_key_the_citizen_pages_use_is_in_the_three_catalogs():
    import re

    from server.models import APPEAL_TYPES, STATUSES

    catalogs = {code: json.loads((REPO_ROOT / "pwa" / "shared" / "i18n" / f"{code}.json").read_text("utf-8"))
                for code in ("kk", "ru", "en")}
    used = {f"citizen.stage.{portal.public_stage(s)}" for s in STATUSES}
    used |= {f"citizen.type.{t}" for t in APPEAL_TYPES} | {f"citizen.feedback.rating_{n}" for n in range(1, 6)}
    used |= {"citizen.feedback.given_confirm", "citizen.feedback.given_dispute", "event.feedback",
             f"citizen.consent.{portal.CONSENT_VERSION}"}
    for path in CITIZEN_PWA.rglob("*"):
        text = path.read_text("utf-8") if path.suffix in (".html", ".js") else ""
        used |= set(re.findall(r'data-i18n="([^"]+)"', text))
        for attr in re.findall(r'data-i18n-attr="([^"]+)"', text):
            used |= {pair.split(":", 1)[1].strip() for pair in attr.split(";")}
        used |= set(re.findall(r'"((?:citizen|common|lang)\.[a-z0-9_.]+)"', text))
        assert "innerHTML" not in text and "insertAdjacentHTML" not in text, path.name
    for code, catalog in catalogs.items():
        assert sorted(k for k in used if k not in catalog) == [], code
        for key in used:  # the same placeholders in every language
            assert set(re.findall(r"\{(\w+)\}", catalog[key])) == set(re.findall(r"\{(\w+)\}", catalogs["en"][key]))
    assert len(used) >= 90  # the scan found the pages' keys


@pytest.mark.parametrize("page", ["report.html", "track.html"])
def test_citizen_pages_have_no_inline_script_or_remote_assets(page):
    from tests.browser.test_pwa_static import _Inline

    parser = _Inline()
    parser.feed((CITIZEN_PWA / page).read_text("utf-8"))
    assert parser.problems == []

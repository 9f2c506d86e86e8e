"""Photo evidence: hostile uploads refused by content, clean derivatives, EXIF, storage, serving by role."""

from __future__ import annotations

import io
import os
import re
import uuid
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from PIL import Image, ImageFile
from sqlalchemy import func, select

from geo import geodesic_distance_m
from server import media
from server.extensions import db
from server.models import AppealEvent, Attachment
from tests.conftest import PASSWORD
from tests.fixtures.photos import (
    POINT,
    assigned_appeal,
    field_worker,
    multipart,
    on_site,
    photo,
    png_bomb,
    sha,
    step,
    unit_of_default_point,
    upload,
)

# Pillow warns about images over ~89 MP when it opens their header; the pipeline refuses them right after.
pytestmark = pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")

ALMATY = ZoneInfo("Asia/Almaty")
# 300 m east-north-east of the default appeal point.
GPS_NEAR = (POINT["lat"] + 0.001, POINT["lon"] + 0.0035)


def refused(data: bytes) -> media.MediaError:
    with pytest.raises(media.MediaError) as exc:
        media.process_upload(data, sha(data), ALMATY)
    return exc.value


# --- the pipeline, without HTTP --------------------------------------------------------------------


@pytest.mark.parametrize(("fmt", "mime"), [("JPEG", "image/jpeg"), ("PNG", "image/png"), ("WEBP", "image/webp")])
def test_jpeg_png_and_webp_are_accepted_by_content(fmt, mime):
    data = photo(fmt, size=(800, 600))
    out = media.process_upload(data, sha(data), ALMATY)
    assert (out.facts.format, out.facts.mime, out.facts.width, out.facts.height) == (fmt, mime, 800, 600)
    assert out.facts.sha256 == sha(data) and out.facts.size_bytes == len(data)


@pytest.mark.parametrize("data", [
    photo("GIF"),
    photo("BMP"),
    photo("TIFF"),
    b"<html><body><script>alert(1)</script></body></html>",
    b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n",
    b"",
], ids=["gif", "bmp", "tiff", "html", "pdf", "empty"])
def test_anything_else_is_unsupported_whatever_it_is_called(data):
    error = refused(data)
    assert (error.code, error.status) == ("unsupported_image_type", 415)


def test_pixel_bomb_is_refused_from_the_header_without_decoding(monkeypatch):
    def never(self):
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", never)
    bomb = png_bomb(10_000, 10_000)
    assert len(bomb) < 200  # 100 megapixels claimed by a few bytes
    error = refused(bomb)
    assert (error.code, error.status) == ("image_too_many_pixels", 422)
    just_over = refused(png_bomb(8000, 8001))  # 64.008 MP: over our limit, under Pillow's own warning
    assert just_over.code == "image_too_many_pixels"


def test_too_many_bytes_is_413_before_anything_else():
    error = refused(b"\xff\xd8\xff" + b"\x00" * media.MAX_BYTES)
    assert (error.code, error.status) == ("image_too_large", 413)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_truncated_files_are_corrupt(fmt):
    data = photo(fmt, size=(640, 480))
    for cut in (len(data) // 2, len(data) - 1):
        error = refused(data[:cut])
        assert error.code == "image_corrupt", (fmt, cut)


def test_a_png_with_a_broken_crc_is_corrupt():
    data = bytearray(photo("PNG"))
    data[40] ^= 0xFF  # inside the IDAT chunk
    assert refused(bytes(data)).code == "image_corrupt"


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_data_after_the_image_end_is_refused(fmt):
    polyglot = photo(fmt) + b"<html><script>fetch('/api/v1/appeals').then(r => r.text())</script></html>"
    error = refused(polyglot)
    assert (error.code, error.status) == ("image_trailing_data", 422)


def test_progressive_jpeg_with_restart_markers_ends_exactly_at_eoi():
    image = Image.new("RGB", (700, 500), (30, 90, 200))
    buf = io.BytesIO()
    image.save(buf, "JPEG", progressive=True, restart_marker_blocks=4, quality=90)
    data = buf.getvalue()
    assert media.image_end(data, "JPEG") == len(data)
    assert media.process_upload(data, sha(data), ALMATY).facts.width == 700


def test_client_hash_must_match_the_bytes():
    data = photo()
    with pytest.raises(media.MediaError) as exc:
        media.process_upload(data, sha(data + b"x"), ALMATY)
    assert exc.value.code == "hash_mismatch"
    assert media.process_upload(data, sha(data).upper(), ALMATY)  # hex case does not matter


def test_exif_gps_and_time_are_read():
    data = photo(gps=(43.2975, 68.251), taken="2026:03:02 14:40:05", offset="+05:00")
    facts = media.process_upload(data, sha(data), ALMATY).facts
    assert facts.exif_lat == pytest.approx(43.2975, abs=1e-6) and facts.exif_lon == pytest.approx(68.251, abs=1e-6)
    assert facts.exif_time == datetime(2026, 3, 2, 9, 40, 5, tzinfo=UTC)
    south_west = photo(gps=(-33.86, -70.65), taken="2026:03:02 14:40:05")  # no offset tag: the city's time
    facts = media.process_upload(south_west, sha(south_west), ALMATY).facts
    assert (round(facts.exif_lat, 4), round(facts.exif_lon, 4)) == (-33.86, -70.65)
    assert facts.exif_time == datetime(2026, 3, 2, 9, 40, 5, tzinfo=UTC)
    plain = photo()
    facts = media.process_upload(plain, sha(plain), ALMATY).facts
    assert (facts.exif_lat, facts.exif_lon, facts.exif_time) == (None, None, None)


def test_derivatives_are_small_upright_jpegs_without_any_metadata():
    # 3000 x 2000 stored sideways (orientation 6: rotate 90° clockwise to display), GPS, time and an ICC profile.
    data = photo(size=(3000, 2000), gps=(43.3, 68.25), taken="2026:03:02 10:00:00", orientation=6, icc=True)
    source = Image.open(io.BytesIO(data))
    assert source.getexif().get_ifd(0x8825) and "icc_profile" in source.info  # the test input really has them
    out = media.process_upload(data, sha(data), ALMATY)
    assert (out.facts.width, out.facts.height) == (2000, 3000)  # as displayed
    for variant, side in (("large", 2048), ("thumb", 320)):
        image = Image.open(io.BytesIO(out.derivatives[variant]))
        assert image.format == "JPEG"
        assert max(image.size) == side and image.size[0] < image.size[1], (variant, image.size)  # upright
        assert len(image.getexif()) == 0 and not image.getexif().get_ifd(0x8825)
        assert not {"exif", "icc_profile", "xmp", "XML:com.adobe.xmp", "comment"} & set(image.info), image.info
        assert b"Exif" not in out.derivatives[variant][:4096]


def test_transparent_png_is_flattened_on_white():
    data = photo("PNG", size=(100, 100), mode="RGBA")
    thumb = Image.open(io.BytesIO(media.process_upload(data, sha(data), ALMATY).derivatives["thumb"]))
    assert thumb.mode == "RGB"


def test_storage_is_content_addressed_atomic_and_immutable(tmp_path):
    data = photo()
    processed = media.process_upload(data, sha(data), ALMATY)
    path = media.store(tmp_path, processed)
    digest = sha(data)
    assert path == tmp_path / "originals" / digest[:2] / digest[2:4] / digest
    assert path.read_bytes() == data and (path.stat().st_mode & 0o777) == 0o440
    for variant in ("large", "thumb"):
        assert media.derived_path(tmp_path, digest, variant).read_bytes() == processed.derivatives[variant]
    assert not [p for p in tmp_path.rglob(".tmp-*")]  # no temporary left behind
    before = path.stat().st_mtime_ns
    media.store(tmp_path, processed)  # the same content again: nothing rewritten
    assert path.stat().st_mtime_ns == before
    with pytest.raises(ValueError):
        media.original_path(tmp_path, "../../etc/passwd")


def test_a_failed_write_leaves_no_partial_file(tmp_path, monkeypatch):
    target = tmp_path / "ab" / "file"

    def broken_fsync(fd):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError):
        media.write_atomic(target, b"x" * 1000)
    assert not target.exists() and list(target.parent.iterdir()) == []


# --- over HTTP, on both databases ------------------------------------------------------------------


@pytest.fixture
def visit(client, db_session):
    """An appeal whose assignee is on site: (worker, headers, appeal_id, unit)."""
    unit = unit_of_default_point(client)
    worker, headers = field_worker(unit)
    appeal_id = assigned_appeal(unit, worker)
    on_site(client, headers, appeal_id)
    return worker, headers, appeal_id, unit


def test_gps_photo_is_stored_with_exif_and_distance_and_announced(client, visit, app):
    worker, headers, appeal_id, _u = visit
    data = photo(gps=GPS_NEAR, taken="2026:03:02 14:40:05", offset="+05:00")
    res = upload(client, headers, appeal_id, data, "before", lat=POINT["lat"], lon=POINT["lon"], accuracy_m=9,
                 device_time="2026-03-02T14:41:00+05:00")
    assert res.status_code == 201, res.json
    body = res.json
    expected = geodesic_distance_m(GPS_NEAR[1], GPS_NEAR[0], POINT["lon"], POINT["lat"])
    assert body["kind"] == "before" and body["sha256"] == sha(data) and body["mime"] == "image/jpeg"
    assert body["exif"]["distance_m"] == pytest.approx(expected, abs=0.2) and 250 < expected < 350
    assert body["exif"]["lat"] == pytest.approx(GPS_NEAR[0], abs=1e-6)  # the uploader may see it
    assert body["exif"]["time"].startswith("2026-03-02T09:40:05")
    assert set(body["urls"]) == {"thumb", "large", "original"} and body["urls"]["original"]
    row = db.session.scalar(select(Attachment).where(Attachment.public_id == body["id"]))
    assert (row.exif_lat, row.exif_lon) == pytest.approx(GPS_NEAR, abs=1e-6)
    assert row.exif_time == datetime(2026, 3, 2, 9, 40, 5, tzinfo=UTC)
    assert row.device_accuracy_m == 9 and row.device_time == datetime(2026, 3, 2, 9, 41, tzinfo=UTC)
    assert row.uploaded_by_id == worker.id and row.size_bytes == len(data)
    assert media.original_path(media.Path(app.instance_path) / "media", sha(data)).read_bytes() == data
    event = db.session.scalar(select(AppealEvent).where(AppealEvent.appeal_id == appeal_id,
                                                        AppealEvent.kind == "appeal.photo_added"))
    assert event.from_status == event.to_status == "on_site"
    assert event.data == {"photo": body["id"], "kind": "before", "exif_distance_m": body["exif"]["distance_m"]}
    appeal = client.get(f"/api/v1/appeals/{appeal_id}", headers=headers).json
    assert [p["id"] for p in appeal["photos"]] == [body["id"]]


def test_photos_are_served_clean_with_safe_headers(client, visit):
    _w, headers, appeal_id, _u = visit
    data = photo(size=(2600, 1400), gps=GPS_NEAR, taken="2026:03:02 10:00:00")
    created = upload(client, headers, appeal_id, data, "before").json
    for variant, side in (("thumb", 320), ("large", 2048)):
        res = client.get(created["urls"][variant], headers=headers)
        assert res.status_code == 200 and res.mimetype == "image/jpeg"
        assert res.headers["Cache-Control"] == "no-store" and res.headers["X-Content-Type-Options"] == "nosniff"
        image = Image.open(io.BytesIO(res.data))
        assert max(image.size) == side and len(image.getexif()) == 0 and "exif" not in image.info
    original = client.get(created["urls"]["original"], headers=headers)
    assert original.status_code == 200 and original.data == data and original.mimetype == "image/jpeg"
    assert original.headers["Cache-Control"] == "no-store"
    assert client.get(f"/api/v1/photos/{created['id']}/huge", headers=headers).status_code == 404


def test_who_may_see_photos_and_originals(client, visit, as_role):
    _w, headers, appeal_id, unit = visit
    data = photo(gps=GPS_NEAR)
    created = upload(client, headers, appeal_id, data, "before").json
    urls = created["urls"]
    other_unit = "U2" if unit != "U2" else "U3"
    # Another unit's field staff: the appeal, its photo list and every file are 404, like a wrong id.
    _o, stranger = field_worker(other_unit)
    for path in (urls["thumb"], urls["large"], urls["original"], f"/api/v1/appeals/{appeal_id}/photos"):
        res = client.get(path, headers=stranger)
        assert res.status_code == 404, path
    missing = client.get("/api/v1/photos/no-such-photo/thumb", headers=stranger)
    assert missing.json == client.get(urls["thumb"], headers=stranger).json
    # A colleague in the unit sees the photo but not the original nor its GPS position.
    _c, colleague = field_worker(unit)
    listed = client.get(f"/api/v1/appeals/{appeal_id}/photos", headers=colleague).json
    assert listed[0]["urls"]["original"] is None and listed[0]["exif"]["lat"] is None
    assert listed[0]["exif"]["distance_m"] == created["exif"]["distance_m"]
    assert client.get(urls["thumb"], headers=colleague).status_code == 200
    refused = client.get(urls["original"], headers=colleague)
    assert refused.status_code == 403 and refused.json["error"]["code"] == "original_restricted"
    for role, allowed in (("inspector", True), ("qc_analyst", True), ("dispatcher", True), ("operator", False),
                          ("analyst", False), ("admin", False)):
        _s, who = as_role(role)
        assert client.get(urls["thumb"], headers=who).status_code == 200, role
        assert (client.get(urls["original"], headers=who).status_code == 200) is allowed, role
    _h, head = as_role("unit_head", unit=unit)
    assert client.get(urls["original"], headers=head).status_code == 200
    assert client.get(urls["thumb"]).status_code == 401


@pytest.mark.parametrize(("data", "name", "ctype", "status", "code"), [
    (photo("GIF"), "photo.jpg", "image/jpeg", 415, "unsupported_image_type"),
    (b"<html><script>alert(1)</script></html>", "photo.jpg", "image/jpeg", 415, "unsupported_image_type"),
    (png_bomb(), "photo.png", "image/png", 422, "image_too_many_pixels"),
    (photo()[:-300], "photo.jpg", "image/jpeg", 422, "image_corrupt"),
    (photo() + b"<html><body>gotcha</body></html>", "photo.jpg", "image/jpeg", 422, "image_trailing_data"),
], ids=["gif-renamed", "html-renamed", "pixel-bomb", "truncated", "polyglot"])
def test_hostile_uploads_are_refused_and_store_nothing(client, visit, app, data, name, ctype, status, code):
    _w, headers, appeal_id, _u = visit
    res = upload(client, headers, appeal_id, data, "before", filename=name, content_type=ctype)
    assert res.status_code == status and res.json["error"]["code"] == code, res.json
    assert res.json["error"]["fields"][0]["field"] == "file"
    assert db.session.scalar(select(func.count(Attachment.id)).where(Attachment.appeal_id == appeal_id)) == 0
    assert not media.original_path(media.Path(app.instance_path) / "media", sha(data)).exists()


def test_wrong_client_hash_is_refused(client, visit):
    _w, headers, appeal_id, _u = visit
    data = photo()
    res = upload(client, headers, appeal_id, data, "before", digest=sha(b"something else"))
    assert res.status_code == 422 and res.json["error"]["code"] == "hash_mismatch"
    bad = upload(client, headers, appeal_id, data, "before", digest="xyz")
    assert bad.status_code == 400 and bad.json["error"]["fields"][0]["field"] == "sha256"


def test_size_limits_are_per_route(client, visit):
    _w, headers, appeal_id, _u = visit
    big = b"\xff\xd8\xff" + os.urandom(media.MAX_BYTES)  # 12 MiB + 3 bytes: the route reads it, the pipeline refuses
    res = upload(client, headers, appeal_id, big, "before")
    assert res.status_code == 413 and res.json["error"]["code"] == "image_too_large"
    huge = b"\xff\xd8\xff" + bytes(media.MAX_REQUEST_BYTES)  # beyond the route's body limit
    res = upload(client, headers, appeal_id, huge, "before")
    assert res.status_code == 413 and res.json["error"]["code"] == "body_too_large"
    # Elsewhere the app-wide 1 MiB limit still holds.
    elsewhere = client.post(f"/api/v1/appeals/{appeal_id}/transitions", data=b"{" + b" " * (2 * 1024 * 1024) + b"}",
                            headers=headers, content_type="application/json")
    assert elsewhere.status_code == 413 and elsewhere.json["error"]["code"] == "body_too_large"


def test_a_browser_session_uploads_more_than_the_default_limit_with_csrf(client, visit):
    worker, _h, appeal_id, _u = visit
    page = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True)).group(1)
    assert client.post("/login", data={"username": worker.username, "password": PASSWORD,
                                       "csrf_token": token}).status_code == 302
    token = client.get("/api/v1/auth/csrf").json["csrf_token"]  # the session's token after login
    noisy = Image.frombytes("RGB", (800, 700), os.urandom(800 * 700 * 3))
    buf = io.BytesIO()
    noisy.save(buf, "PNG")  # noise does not compress: about 1.7 MB
    data = buf.getvalue()
    assert len(data) > 1024 * 1024  # over the app-wide limit
    form = multipart(data, "before", filename="p.png", content_type="image/png")
    no_csrf = client.post(f"/api/v1/appeals/{appeal_id}/photos", data=form, content_type="multipart/form-data",
                          headers={"Idempotency-Key": str(uuid.uuid4())})
    assert no_csrf.status_code == 400 and no_csrf.json["error"]["code"] == "csrf_failed"
    form = multipart(data, "before", filename="p.png", content_type="image/png")
    ok = client.post(f"/api/v1/appeals/{appeal_id}/photos", data=form, content_type="multipart/form-data",
                     headers={"Idempotency-Key": str(uuid.uuid4()), "X-CSRFToken": token})
    assert ok.status_code == 201, ok.json


def test_upload_replay_gives_the_same_photo(client, visit):
    _w, headers, appeal_id, _u = visit
    data, key = photo(), str(uuid.uuid4())
    first = upload(client, headers, appeal_id, data, "before", key=key)
    again = upload(client, headers, appeal_id, data, "before", key=key)
    assert (first.status_code, again.status_code) == (201, 200) and first.json == again.json
    assert db.session.scalar(select(func.count(Attachment.id)).where(Attachment.appeal_id == appeal_id)) == 1
    other = upload(client, headers, appeal_id, photo(color=(9, 9, 9)), "before", key=key)
    assert other.status_code == 422 and other.json["error"]["code"] == "idempotency_mismatch"


def test_photos_only_from_the_assignee_at_work(client, as_role):
    unit = unit_of_default_point(client)
    worker, headers = field_worker(unit)
    appeal_id = assigned_appeal(unit, worker)
    data = photo()
    early = upload(client, headers, appeal_id, data, "before")  # assigned, not yet accepted
    assert early.status_code == 409 and early.json["error"]["detail"] == {"status": "assigned",
                                                                         "assigned_to_you": True}
    assert step(client, headers, appeal_id, "accept").status_code == 200
    after_too_soon = upload(client, headers, appeal_id, data, "after")  # "after" only on site
    assert after_too_soon.status_code == 409 and after_too_soon.json["error"]["code"] == "appeal_changed"
    assert upload(client, headers, appeal_id, data, "before").status_code == 201
    _c, colleague = field_worker(unit)
    not_theirs = upload(client, colleague, appeal_id, data, "before")
    assert not_theirs.status_code == 409 and not_theirs.json["error"]["detail"]["assigned_to_you"] is False
    _d, dispatcher = as_role("dispatcher")
    assert upload(client, dispatcher, appeal_id, data, "before").status_code == 403
    assert client.post(f"/api/v1/appeals/{appeal_id}/photos", json={"kind": "before"},
                       headers=headers).status_code == 415
    no_file = client.post(f"/api/v1/appeals/{appeal_id}/photos", data={"kind": "before", "sha256": sha(data)},
                          headers=headers, content_type="multipart/form-data")
    assert no_file.status_code == 422 and no_file.json["error"]["code"] == "file_required"


def test_a_database_failure_leaves_no_row_and_only_harmless_files(client, visit, monkeypatch):
    from server.services import evidence

    _w, headers, appeal_id, _u = visit

    def failing_attach(*args, **kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(evidence, "_attach", failing_attach)
    data = photo(color=(5, 6, 7))
    res = upload(client, headers, appeal_id, data, "before")
    assert res.status_code == 500
    assert db.session.scalar(select(func.count(Attachment.id)).where(Attachment.appeal_id == appeal_id)) == 0
    assert db.session.scalar(select(func.count(AppealEvent.id)).where(
        AppealEvent.appeal_id == appeal_id, AppealEvent.kind == "appeal.photo_added")) == 0
    monkeypatch.undo()
    # The retry stores the row; the orphaned files of the first try are simply the same files.
    assert upload(client, headers, appeal_id, data, "before").status_code == 201


def test_openapi_documents_the_multipart_upload(client, db_session):
    doc = client.get("/api/v1/openapi.json").json
    op = doc["paths"]["/api/v1/appeals/{appeal_id}/photos"]["post"]
    schema = op["requestBody"]["content"]["multipart/form-data"]["schema"]
    # One object with the fields and the file part (PhotoIn forbids other fields: an allOf could not be met).
    assert schema["properties"]["file"] == {"type": "string", "format": "binary"} and "file" in schema["required"]
    assert set(schema["properties"]) >= {"kind", "sha256", "lat", "lon", "accuracy_m", "device_time"}
    assert "Idempotency-Key" in [p["name"] for p in op["parameters"]]
    assert "/api/v1/photos/{public_id}/{variant}" in doc["paths"]


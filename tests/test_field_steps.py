"""Field steps over HTTP: device data, the geofence, the after photo, exactly-once replay, 409 on stale work."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from server.extensions import db
from server.models import Appeal, AppealEvent, ClientAction
from tests.conftest import make_staff
from tests.fixtures.photos import (
    AT_POINT,
    TWO_KM_AWAY,
    assigned_appeal,
    field_worker,
    on_site,
    photo,
    step,
    unit_of_default_point,
    upload,
)


@pytest.fixture
def work(client):
    """A field worker with an appeal assigned to them: (worker, headers, appeal_id, unit)."""
    unit = unit_of_default_point(client)
    worker, headers = field_worker(unit)
    return worker, headers, assigned_appeal(unit, worker), unit


def events_of(appeal_id: int, kind: str | None = None) -> list[AppealEvent]:
    query = select(AppealEvent).where(AppealEvent.appeal_id == appeal_id).order_by(AppealEvent.id)
    if kind:
        query = query.where(AppealEvent.kind == kind)
    return list(db.session.scalars(query))


def test_the_whole_visit_records_device_time_position_and_the_geofence(client, work):
    _w, headers, appeal_id, _u = work
    when = datetime(2026, 3, 2, 9, 15, tzinfo=UTC)
    res = step(client, headers, appeal_id, "accept", device_time=when, position=AT_POINT)
    assert res.status_code == 200 and res.json["status"] == "accepted"
    assert step(client, headers, appeal_id, "depart").json["status"] == "en_route"
    near = {"lat": AT_POINT["lat"] + 0.0005, "lon": AT_POINT["lon"], "accuracy_m": 12.0}  # about 55 m off
    arrived = step(client, headers, appeal_id, "arrive", position=near, device_time="2026-03-02T14:40:00+05:00")
    assert arrived.status_code == 200 and arrived.json["status"] == "on_site" and arrived.json["flagged"] is False
    assert upload(client, headers, appeal_id, photo(), "before").status_code == 201
    assert upload(client, headers, appeal_id, photo(color=(0, 150, 0)), "after").status_code == 201
    done = step(client, headers, appeal_id, "resolve", position=AT_POINT)
    assert done.status_code == 200, done.json
    body = done.json
    assert body["status"] == "resolved" and body["flagged"] is False
    assert [p["kind"] for p in body["photos"]] == ["before", "after"]
    accepted = events_of(appeal_id, "appeal.accepted")[0].data
    assert accepted["device_time"] == "2026-03-02T09:15:00+00:00"
    assert accepted["position"] == {"lat": AT_POINT["lat"], "lon": AT_POINT["lon"], "accuracy_m": 8.0}
    on_site_event = events_of(appeal_id, "appeal.on_site")[0].data
    assert on_site_event["device_time"] == "2026-03-02T14:40:00+05:00"
    assert on_site_event["geofence"]["inside"] is True and 50 < on_site_event["geofence"]["distance_m"] < 60
    assert on_site_event["geofence"]["radius_m"] == 100.0 and "flagged" not in on_site_event
    assert db.session.get(Appeal, appeal_id).flagged_at is None


def test_resolve_needs_an_after_photo_of_this_visit(client, work):
    _w, headers, appeal_id, _u = work
    on_site(client, headers, appeal_id)
    upload(client, headers, appeal_id, photo(), "before")
    key = str(uuid.uuid4())
    refused = step(client, headers, appeal_id, "resolve", position=AT_POINT, key=key)
    assert refused.status_code == 422 and refused.json["error"]["code"] == "after_photo_required"
    assert upload(client, headers, appeal_id, photo(color=(1, 2, 3)), "after").status_code == 201
    # A refused step stored nothing: the same UUID may be retried and now succeeds.
    again = step(client, headers, appeal_id, "resolve", position=AT_POINT, key=key)
    assert again.status_code == 200 and again.json["status"] == "resolved"


def test_resolution_2_km_away_needs_a_reason_and_is_flagged(client, work, as_role):
    _w, headers, appeal_id, _u = work
    on_site(client, headers, appeal_id)
    upload(client, headers, appeal_id, photo(), "after")
    refused = step(client, headers, appeal_id, "resolve", position=TWO_KM_AWAY)
    assert refused.status_code == 422
    error = refused.json["error"]
    assert error["code"] == "geofence_reason_required" and error["fields"][0]["field"] == "reason"
    assert 1950 < error["detail"]["distance_m"] < 2050 and error["detail"]["radius_m"] == 100.0
    assert db.session.get(Appeal, appeal_id).status == "on_site"  # nothing changed
    ok = step(client, headers, appeal_id, "resolve", position=TWO_KM_AWAY,
              reason="The valve is in the pumping station, 2 km up the street")
    assert ok.status_code == 200 and ok.json["status"] == "resolved" and ok.json["flagged"] is True
    data = events_of(appeal_id, "appeal.resolved")[0].data
    assert data["flagged"] is True and data["geofence"]["inside"] is False and data["geofence"]["why"] == "outside"
    assert data["reason"].startswith("The valve")
    assert db.session.get(Appeal, appeal_id).flagged_at is not None
    # The inspector's list.
    _i, inspector = as_role("inspector")
    flagged = client.get("/api/v1/appeals?flagged=true", headers=inspector).json
    assert [a["id"] for a in flagged["items"]] == [appeal_id] and flagged["items"][0]["flagged"] is True
    unflagged = client.get("/api/v1/appeals?flagged=false", headers=inspector).json
    assert appeal_id not in [a["id"] for a in unflagged["items"]]
    bad = client.get("/api/v1/appeals?flagged=maybe", headers=inspector)
    assert bad.status_code == 400 and bad.json["error"]["fields"][0]["field"] == "flagged"


@pytest.mark.parametrize(("position", "why"), [
    (None, "no_position"),
    ({**AT_POINT, "accuracy_m": 800.0}, "poor_accuracy"),  # worse than JAUAP_GEOFENCE_MAX_ACCURACY_M: no position
])
def test_arrival_without_a_usable_fix_needs_a_reason(client, work, position, why):
    _w, headers, appeal_id, _u = work
    step(client, headers, appeal_id, "accept")
    refused = step(client, headers, appeal_id, "arrive", position=position)
    assert refused.status_code == 422 and refused.json["error"]["code"] == "geofence_reason_required"
    ok = step(client, headers, appeal_id, "arrive", position=position, reason="GPS lost between the buildings")
    assert ok.status_code == 200 and ok.json["flagged"] is True
    assert events_of(appeal_id, "appeal.on_site")[0].data["geofence"]["why"] == why


def test_a_fix_without_accuracy_is_judged_by_the_minimum_radius(client, work):
    _w, headers, appeal_id, _u = work
    step(client, headers, appeal_id, "accept")
    fix = {"lat": AT_POINT["lat"] + 0.00135, "lon": AT_POINT["lon"], "accuracy_m": None}  # about 150 m off
    refused = step(client, headers, appeal_id, "arrive", position=fix)
    assert refused.status_code == 422 and refused.json["error"]["detail"]["radius_m"] == 100.0
    near = {"lat": AT_POINT["lat"] + 0.0006, "lon": AT_POINT["lon"]}  # about 67 m off, accuracy not sent
    assert step(client, headers, appeal_id, "arrive", position=near).json["flagged"] is False


def test_a_poor_but_acceptable_accuracy_widens_the_fence(client, work):
    _w, headers, appeal_id, _u = work
    step(client, headers, appeal_id, "accept")
    fix = {"lat": AT_POINT["lat"] + 0.00225, "lon": AT_POINT["lon"], "accuracy_m": 300.0}  # about 250 m off
    res = step(client, headers, appeal_id, "arrive", position=fix)
    assert res.status_code == 200 and res.json["flagged"] is False
    fence = events_of(appeal_id, "appeal.on_site")[0].data["geofence"]
    assert fence["inside"] is True and fence["radius_m"] == 300.0 and 240 < fence["distance_m"] < 260


def test_same_uuid_five_times_is_one_step_with_the_same_answer(client, work):
    _w, headers, appeal_id, _u = work
    key = str(uuid.uuid4())
    answers = [step(client, headers, appeal_id, "accept", key=key, device_time="2026-03-02T09:00:00+05:00")
               for _ in range(5)]
    assert [a.status_code for a in answers] == [200] * 5
    assert all(a.json == answers[0].json for a in answers)
    assert len(events_of(appeal_id, "appeal.accepted")) == 1
    assert db.session.scalar(select(func.count(ClientAction.id)).where(ClientAction.client_uuid == key)) == 1
    # The key is canonicalised: upper case is the same UUID.
    assert step(client, headers, appeal_id, "accept", key=key.upper(),
                device_time="2026-03-02T09:00:00+05:00").json == answers[0].json
    mismatch = step(client, headers, appeal_id, "accept", key=key, device_time="2026-03-02T09:01:00+05:00")
    assert mismatch.status_code == 422 and mismatch.json["error"]["code"] == "idempotency_mismatch"


def test_a_uuid_is_personal_and_must_be_a_uuid(client, work):
    _worker, headers, appeal_id, unit = work
    key = str(uuid.uuid4())
    assert step(client, headers, appeal_id, "accept", key=key).status_code == 200
    _other, other_headers = field_worker(unit)
    stolen = step(client, other_headers, appeal_id, "accept", key=key)
    assert stolen.status_code == 422 and stolen.json["error"]["code"] == "idempotency_mismatch"
    bad = client.post(f"/api/v1/appeals/{appeal_id}/transitions", json={"action": "depart"},
                      headers={**headers, "Idempotency-Key": "not-a-uuid"})
    assert bad.status_code == 400 and bad.json["error"]["code"] == "bad_client_uuid"


def test_reassigned_appeal_answers_409_appeal_changed(client, work, as_role):
    _worker, headers, appeal_id, unit = work
    assert step(client, headers, appeal_id, "accept").status_code == 200
    colleague, colleague_headers = field_worker(unit)
    _d, dispatcher = as_role("dispatcher")
    moved = client.post(f"/api/v1/appeals/{appeal_id}/reassign", json={"staff_id": colleague.id}, headers=dispatcher)
    assert moved.status_code == 200
    # The first worker's queued "depart" replays after the reassignment.
    stale = step(client, headers, appeal_id, "depart", position=AT_POINT)
    assert stale.status_code == 409
    assert stale.json["error"]["code"] == "appeal_changed"
    assert stale.json["error"]["detail"] == {"status": "assigned", "assigned_to_you": False}
    # A step no longer legal from the status is stale too, even for the assignee.
    assert step(client, colleague_headers, appeal_id, "accept").status_code == 200
    twice = step(client, colleague_headers, appeal_id, "accept")
    assert twice.status_code == 409 and twice.json["error"]["detail"] == {"status": "accepted",
                                                                         "assigned_to_you": True}


def test_moved_to_another_unit_is_409_for_the_former_assignee_and_404_for_others(client, work, as_role):
    _worker, headers, appeal_id, unit = work
    other_unit = "U2" if unit != "U2" else "U3"
    _d, dispatcher = as_role("dispatcher")
    assert client.post(f"/api/v1/appeals/{appeal_id}/reassign", json={"unit": other_unit},
                       headers=dispatcher).status_code == 200
    stale = step(client, headers, appeal_id, "accept")
    assert stale.status_code == 409 and stale.json["error"]["detail"]["assigned_to_you"] is False
    _n, never = field_worker(unit)
    assert step(client, never, appeal_id, "accept").status_code == 404


def test_decline_and_cannot_resolve_need_reasons_and_record_the_device(client, work):
    worker, headers, appeal_id, _u = work
    assert step(client, headers, appeal_id, "decline").json["error"]["code"] == "reason_required"
    declined = step(client, headers, appeal_id, "decline", reason="Flat tyre", position=AT_POINT)
    assert declined.status_code == 200 and declined.json["status"] == "routed"
    data = events_of(appeal_id, "appeal.declined")[0].data
    assert data["reason"] == "Flat tyre" and data["position"]["accuracy_m"] == 8.0 and data["assignee_id"] == worker.id


def test_cannot_resolve_returns_the_work_to_the_unit_queue(client, work):
    worker, headers, appeal_id, _u = work
    on_site(client, headers, appeal_id)
    res = step(client, headers, appeal_id, "cannot_resolve", reason="Needs an excavator", position=AT_POINT)
    assert res.status_code == 200 and res.json["status"] == "routed"
    appeal = db.session.get(Appeal, appeal_id)
    assert appeal.assignee_id is None
    assert events_of(appeal_id, "appeal.cannot_resolve")[0].data["assignee_id"] == worker.id


def test_other_roles_cannot_take_field_steps(client, work, as_role):
    _w, _h, appeal_id, _u = work
    _d, dispatcher = as_role("dispatcher")
    res = step(client, dispatcher, appeal_id, "accept")
    assert res.status_code == 403 and res.json["error"]["code"] == "role_not_allowed"


def test_bad_device_fields_are_named(client, work):
    _w, headers, appeal_id, _u = work
    res = step(client, headers, appeal_id, "accept", device_time="yesterday", position={"lat": 95, "lon": 68})
    assert res.status_code == 400
    fields = {f["field"] for f in res.json["error"]["fields"]}
    assert {"device_time", "position.lat"} <= fields
    naive = step(client, headers, appeal_id, "accept", device_time="2026-03-02T09:00:00")
    assert naive.status_code == 400 and naive.json["error"]["fields"][0]["code"] == "bad_timestamp"


# --- real commits, many threads -----------------------------------------------------------------


def test_100_threads_posting_one_uuid_make_exactly_one_resolution(committed_app):
    app = committed_app
    client = app.test_client()
    with app.app_context():
        unit = unit_of_default_point(client)
        worker, headers = field_worker(unit)
        appeal_id = assigned_appeal(unit, worker)
    on_site(client, headers, appeal_id)
    assert upload(client, headers, appeal_id, photo(), "after").status_code == 201
    key = str(uuid.uuid4())
    barrier = threading.Barrier(100)

    def post(_):
        one = app.test_client()
        barrier.wait()
        res = step(one, headers, appeal_id, "resolve", key=key, position=AT_POINT,
                   device_time="2026-03-02T15:00:00+05:00")
        return res.status_code, res.get_json()

    with ThreadPoolExecutor(max_workers=100) as pool:
        results = list(pool.map(post, range(100)))
    assert [s for s, _ in results] == [200] * 100, [r for r in results if r[0] != 200][:2]
    assert all(body == results[0][1] for _s, body in results)
    assert results[0][1]["status"] == "resolved"
    with app.app_context():
        resolved = db.session.scalar(select(func.count(AppealEvent.id)).where(
            AppealEvent.appeal_id == appeal_id, AppealEvent.kind == "appeal.resolved"))
        stored = db.session.scalar(select(func.count(ClientAction.id)).where(ClientAction.client_uuid == key))
        assert (resolved, stored) == (1, 1)


def test_concurrent_uploads_with_one_uuid_store_one_photo(committed_app):
    from server.models import Attachment

    app = committed_app
    client = app.test_client()
    with app.app_context():
        unit = unit_of_default_point(client)
        worker, headers = field_worker(unit)
        appeal_id = assigned_appeal(unit, worker)
        make_staff("inspector")
    step(client, headers, appeal_id, "accept")
    data, key = photo(size=(1200, 900)), str(uuid.uuid4())
    barrier = threading.Barrier(10)

    def post(_):
        one = app.test_client()
        barrier.wait()
        res = upload(one, headers, appeal_id, data, "before", key=key)
        return res.status_code, res.get_json()

    with ThreadPoolExecutor(max_workers=10) as pool:
        results = list(pool.map(post, range(10)))
    assert sorted(s for s, _ in results) == [200] * 9 + [201], results[:2]
    assert len({body["id"] for _s, body in results}) == 1
    with app.app_context():
        assert db.session.scalar(select(func.count(Attachment.id))) == 1
        assert db.session.scalar(select(func.count(AppealEvent.id)).where(
            AppealEvent.kind == "appeal.photo_added")) == 1


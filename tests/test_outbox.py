"""Pushes as outbox rows: queued with the change that causes them, delivered by the worker to a real
(local) push service, retried with backoff, dropped on 404/410, never sent twice by concurrent workers."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from notifications import DeliveryResult
from server.extensions import db
from server.models import ApiToken, Appeal, AppealEvent, OutboundMessage, PushSubscription
from server.models.types import utcnow
from server.services import dispatch, outbox, push
from server.worker import deliver_forever, run_forever, tick
from tests.conftest import APPEAL, bearer, make_staff
from tests.push_endpoint import PushEndpoint


def unit_of_default_point(client) -> str:
    return client.get("/api/v1/sectors/lookup?lat=43.2975&lon=68.251").json["sector"]["code"].replace("S", "U")


def rows(**where) -> list[OutboundMessage]:
    query = select(OutboundMessage).order_by(OutboundMessage.id)
    for name, value in where.items():
        query = query.where(getattr(OutboundMessage, name) == value)
    return list(db.session.scalars(query))


def subscribe(client, headers, endpoint) -> object:
    sub = endpoint.subscribe()
    assert client.post("/api/v1/push/subscriptions", json=sub.as_json(), headers=headers).status_code == 201
    return sub


@pytest.fixture
def local_push(app, db_session):
    app.config["JAUAP_PUSH_ALLOW_LOOPBACK"] = True
    app.extensions.pop("jauap_channels", None)
    with PushEndpoint(expected_key=push.public_key()) as ep:
        yield ep
    app.config["JAUAP_PUSH_ALLOW_LOOPBACK"] = False
    app.extensions.pop("jauap_channels", None)


@pytest.fixture
def field(client, local_push):
    """An on-duty field worker of the default point's unit with one subscribed phone, and an operator."""
    worker = make_staff("field_staff", unit=unit_of_default_point(client))
    dispatch.set_duty(worker, True, utcnow())
    db.session.commit()
    headers = bearer(worker)
    phone = subscribe(client, headers, local_push)
    return worker, headers, phone, bearer(make_staff("operator"))


def assign_one(client, operator_headers, **body) -> dict:
    res = client.post("/api/v1/appeals", json={**APPEAL, **body}, headers=operator_headers)
    assert res.status_code == 201 and res.json["status"] == "assigned", res.json
    return res.json


# --- queueing ------------------------------------------------------------------------


def test_an_assignment_queues_one_push_for_the_assignees_device(client, field):
    worker, _h, _phone, op = field
    appeal = assign_one(client, op)
    [row] = rows(staff_id=worker.id)
    assert row.channel == "webpush" and row.state == "pending" and row.attempts == 0
    assert row.payload == {"kind": "appeal.assigned", "appeal_id": appeal["id"], "reg_no": appeal["reg_no"],
                           "url": f"/field/#/appeal/{appeal['id']}"}
    event_id = db.session.scalar(select(AppealEvent.id).where(AppealEvent.appeal_id == appeal["id"],
                                                              AppealEvent.kind == "appeal.assigned"))
    assert row.dedupe_key == f"push:ev{event_id}:s{row.subscription_id}"


def test_the_same_event_never_queues_twice(client, field):
    _w, _h, _phone, op = field
    appeal = assign_one(client, op)
    events = list(db.session.scalars(select(AppealEvent).where(AppealEvent.appeal_id == appeal["id"])))
    assert push.queue_for_events(events, utcnow()) == 0
    assert len(rows(appeal_id=appeal["id"])) == 1


def test_a_reassignment_pushes_to_the_new_assignee_only(client, field, local_push):
    first, _h, _phone, _op = field
    appeal = assign_one(client, _op)
    second = make_staff("field_staff", unit=first.unit.code)
    phone2 = subscribe(client, bearer(second), local_push)
    disp = bearer(make_staff("dispatcher"))
    res = client.post(f"/api/v1/appeals/{appeal['id']}/reassign", json={"staff_id": second.id}, headers=disp)
    assert res.status_code == 200, res.json
    assert [r.staff_id for r in rows(appeal_id=appeal["id"])] == [first.id, second.id]
    sub2 = db.session.scalar(select(PushSubscription).where(PushSubscription.endpoint == phone2.endpoint))
    assert rows(staff_id=second.id)[0].subscription_id == sub2.id


def test_a_rolled_back_change_queues_nothing(committed_app, monkeypatch):
    committed_app.config["JAUAP_PUSH_ALLOW_LOOPBACK"] = True
    client = committed_app.test_client()
    unit = unit_of_default_point(client)
    with committed_app.app_context():
        worker = make_staff("field_staff", unit=unit)
        dispatch.set_duty(worker, True, utcnow())
        db.session.commit()
        worker_headers, op = bearer(worker), bearer(make_staff("operator"))
        db.session.remove()
    with PushEndpoint() as ep:
        subscribe(client, worker_headers, ep)

    # The change fails after the push was queued, before the commit: the whole unit of work goes.
    def fail(_events):
        raise RuntimeError("boom")

    monkeypatch.setattr("server.realtime.publish.prepare", fail)
    res = client.post("/api/v1/appeals", json=APPEAL, headers=op)
    assert res.status_code == 500
    monkeypatch.undo()
    with committed_app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Appeal)) == 0
        assert db.session.scalar(select(func.count()).select_from(OutboundMessage)) == 0
        # ... while the same request that commits queues its push with it.
        assert client.post("/api/v1/appeals", json=APPEAL, headers=op).status_code == 201
        db.session.remove()
        assert db.session.scalar(select(func.count()).select_from(OutboundMessage)) == 1


def test_an_ended_login_gets_no_pushes(client, field):
    worker, _h, _phone, op = field
    db.session.execute(update(ApiToken).where(ApiToken.staff_id == worker.id)
                       .values(expires_at=utcnow() - timedelta(minutes=1)))
    db.session.commit()
    assign_one(client, op)
    assert rows(staff_id=worker.id) == []
    assert push.purge_stale_subscriptions(utcnow()) == 1


def test_logout_drops_the_device_and_its_queued_pushes(client, field, local_push):
    worker, headers, _phone, op = field
    assign_one(client, op)
    assert len(rows(staff_id=worker.id)) == 1
    assert client.delete("/api/v1/auth/token", headers=headers).status_code == 204
    assert rows(staff_id=worker.id) == []
    assert outbox.deliver_due(utcnow())["claimed"] == 0 and local_push.count == 0


def test_sla_warning_is_pushed_once_when_due_within_the_window(client, field, local_push):
    worker, _h, _phone, op = field
    soon = assign_one(client, op)
    later = assign_one(client, op, description="Another pothole, two streets away.")
    now = utcnow()
    db.session.execute(update(Appeal).where(Appeal.id == soon["id"]).values(due_at=now + timedelta(hours=3)))
    db.session.execute(update(Appeal).where(Appeal.id == later["id"]).values(due_at=now + timedelta(hours=30)))
    db.session.commit()
    result = tick(now)
    assert result["sla_warned"] == 1 and "escalated" in result
    [warning] = rows(staff_id=worker.id, appeal_id=soon["id"])[1:]
    assert warning.payload["kind"] == "sla.warning" and warning.payload["appeal_id"] == soon["id"]
    assert db.session.get(Appeal, soon["id"]).sla_warned_at is not None
    assert db.session.get(Appeal, later["id"]).sla_warned_at is None
    assert "sla_warned" not in tick(now + timedelta(minutes=1))  # once
    outbox.deliver_due(now)
    assert sorted(r.json["kind"] for r in local_push.received) == ["appeal.assigned", "appeal.assigned",
                                                                   "sla.warning"]


# --- delivery ------------------------------------------------------------------------


def test_delivered_push_decrypts_to_the_queued_payload_without_personal_data(client, field, local_push):
    _w, _h, phone, op = field
    assign_one(client, op)
    [row] = rows()
    assert outbox.deliver_due(utcnow()) == {"claimed": 1, "sent": 1, "retry": 0, "dead": 0}
    assert local_push.errors == []
    [got] = local_push.received
    assert got.subscription_id == phone.id and got.json == row.payload
    assert len(got.plaintext) <= 512
    for personal in (APPEAL["citizen"]["name"], APPEAL["citizen"]["phone"], APPEAL["description"], "43.29", "68.25"):
        assert personal.encode() not in got.plaintext
    db.session.expire_all()
    row = db.session.get(OutboundMessage, row.id)
    assert row.state == "sent" and row.attempts == 1 and row.sent_at is not None and row.lease_until is None
    assert db.session.get(PushSubscription, row.subscription_id).last_success_at is not None
    assert outbox.deliver_due(utcnow())["claimed"] == 0  # sent once


@pytest.mark.parametrize("status", [404, 410])
def test_gone_subscription_is_deleted(client, field, local_push, status):
    worker, _h, phone, op = field
    assign_one(client, op)
    local_push.script(phone, status)
    assert outbox.deliver_due(utcnow())["dead"] == 1
    db.session.expire_all()
    assert db.session.scalar(select(PushSubscription).where(PushSubscription.staff_id == worker.id)) is None
    [row] = rows(staff_id=worker.id)
    assert row.state == "dead" and row.last_status == status and row.subscription_id is None
    assign_one(client, op, description="A second pothole.")  # nothing left to push to
    assert len(rows(staff_id=worker.id)) == 1


def test_429_and_500_are_retried_with_backoff_then_delivered(client, field, local_push):
    _w, _h, phone, op = field
    assign_one(client, op)
    local_push.script(phone, (429, {"Retry-After": "120"}), 500)
    now = utcnow()
    assert outbox.deliver_due(now)["retry"] == 1
    db.session.expire_all()
    [row] = rows()
    assert row.state == "pending" and row.last_status == 429 and row.attempts == 1
    assert row.next_attempt_at >= now + timedelta(seconds=120)  # Retry-After honoured
    assert outbox.deliver_due(now + timedelta(seconds=60))["claimed"] == 0  # not yet due
    second = row.next_attempt_at
    assert outbox.deliver_due(second)["retry"] == 1
    db.session.expire_all()
    row = rows()[0]
    assert row.last_status == 500 and row.attempts == 2
    wait = (row.next_attempt_at - second).total_seconds()
    assert 5 <= wait <= 10  # attempt 2: 10 s base, half of it jittered
    assert outbox.deliver_due(row.next_attempt_at)["sent"] == 1
    assert local_push.attempts(phone) == 3 and len(local_push.received) == 1


def test_backoff_grows_exponentially_with_jitter_and_a_cap():
    import random

    rng = random.Random(7)
    waits = [outbox.backoff_seconds(n, rng=rng) for n in range(1, 12)]
    for n, wait in enumerate(waits, start=1):
        base = min(3600, 5 * 2 ** (n - 1))
        assert base / 2 <= wait <= base
    assert outbox.backoff_seconds(1, retry_after=300) == 300


def test_gives_up_after_the_maximum_attempts(app, client, field, local_push, monkeypatch):
    _w, _h, phone, op = field
    monkeypatch.setitem(app.config, "JAUAP_OUTBOX_MAX_ATTEMPTS", 3)
    assign_one(client, op)
    local_push.script(phone, 500, 500, 500, 500)
    when = utcnow()
    for _ in range(3):
        outbox.deliver_due(when)
        when += timedelta(hours=2)
    db.session.expire_all()
    [row] = rows()
    assert row.state == "dead" and row.attempts == 3 and local_push.attempts(phone) == 3


def test_a_crashed_workers_lease_is_taken_over_and_its_late_answer_ignored(client, field, local_push):
    _w, _h, _phone, op = field
    assign_one(client, op)
    now = utcnow()
    [stale] = outbox.claim_due(now)  # a worker claims, then dies before sending
    assert outbox.deliver_due(now)["claimed"] == 0  # leased: nobody else takes it yet
    after_lease = now + timedelta(seconds=outbox.lease_seconds(outbox.BATCH) + 1)
    assert outbox.deliver_due(after_lease)["sent"] == 1
    # The dead worker wakes up: its claim is fenced off, the row stays as the new owner left it.
    assert outbox.record(stale, DeliveryResult.retry(500), now, 8) == ""
    db.session.expire_all()
    [row] = rows()
    assert row.state == "sent" and row.attempts == 2 and local_push.count == 1


# --- the worker process ---------------------------------------------------------------


def _committed_setup(app, endpoint):
    """A subscribed on-duty worker and one assignment (committed), on ``app``."""
    client = app.test_client()
    unit = unit_of_default_point(client)
    with app.app_context():
        worker = make_staff("field_staff", unit=unit)
        dispatch.set_duty(worker, True, utcnow())
        db.session.commit()
        worker_headers, op = bearer(worker), bearer(make_staff("operator"))
        db.session.remove()
    subscribe(client, worker_headers, endpoint)
    assert client.post("/api/v1/appeals", json=APPEAL, headers=op).status_code == 201


def test_the_worker_loop_delivers_within_seconds(committed_app):
    committed_app.config["JAUAP_PUSH_ALLOW_LOOPBACK"] = True
    with committed_app.app_context():
        key = push.public_key()
    with PushEndpoint(expected_key=key) as ep:
        _committed_setup(committed_app, ep)
        stop = threading.Event()
        loop = threading.Thread(target=deliver_forever, args=(committed_app, 0.2, stop), daemon=True)
        loop.start()
        try:
            assert ep.wait_for(1, timeout_s=10), ep.errors
        finally:
            stop.set()
            loop.join(5)
        assert ep.received[0].json["kind"] == "appeal.assigned"


def test_worker_once_runs_a_pass_and_a_delivery(committed_app):
    committed_app.config["JAUAP_PUSH_ALLOW_LOOPBACK"] = True
    with committed_app.app_context():
        key = push.public_key()
    with PushEndpoint(expected_key=key) as ep:
        _committed_setup(committed_app, ep)
        run_forever(committed_app, 0, iterations=1)
        assert ep.count == 1


@pytest.mark.parametrize("workers", [4])
def test_concurrent_workers_never_send_a_row_twice(committed_app, backend, workers):
    """SKIP LOCKED on PostGIS (BEGIN IMMEDIATE on SpatiaLite): N workers, each row exactly once."""
    committed_app.config["JAUAP_PUSH_ALLOW_LOOPBACK"] = True
    total = 120
    with committed_app.app_context():
        key = push.public_key()
    with PushEndpoint(expected_key=key, delay_s=0.002) as ep:
        with committed_app.app_context():
            staff = make_staff("field_staff")
            bearer(staff)
            token = db.session.scalar(select(ApiToken.id).where(ApiToken.staff_id == staff.id))
            phones = [ep.subscribe() for _ in range(4)]
            subs = []
            for phone in phones:
                sub, _new = push.subscribe(staff, token, phone.endpoint, phone.p256dh, phone.auth, None, utcnow())
                subs.append(sub)
            now = utcnow()
            for i in range(total):
                db.session.add(OutboundMessage(
                    channel="webpush", dedupe_key=f"t{i}", subscription_id=subs[i % len(subs)].id,
                    staff_id=staff.id, payload={"kind": "appeal.assigned", "appeal_id": i, "reg_no": f"TRK-T-{i:06d}",
                                                "url": f"/field/#/appeal/{i}"},
                    state="pending", attempts=0, next_attempt_at=now, created_at=now))
            db.session.commit()
            db.session.remove()
        start = threading.Barrier(workers)
        sent_by: dict[int, int] = {}
        failures: list[BaseException] = []

        def work(n: int) -> None:
            try:
                start.wait()
                with committed_app.app_context():
                    sent = 0
                    while True:
                        result = outbox.deliver_due(utcnow(), limit=5)
                        if not result["claimed"]:
                            break
                        sent += result["sent"]
                    db.session.remove()
                sent_by[n] = sent
            except BaseException as exc:  # surfaced below
                failures.append(exc)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(workers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert not failures, failures
        assert ep.errors == []
        seen = [r.json["appeal_id"] for r in ep.received]
        assert len(seen) == total and sorted(set(seen)) == list(range(total))  # every row, exactly once
        assert sum(sent_by.values()) == total
        if backend.name == "postgis":
            assert sum(1 for n in sent_by.values() if n) >= 2, sent_by  # the work really was shared
        with committed_app.app_context():
            states = db.session.execute(select(OutboundMessage.state, OutboundMessage.attempts)).all()
            assert {(s, a) for s, a in states} == {("sent", 1)}
            db.session.remove()


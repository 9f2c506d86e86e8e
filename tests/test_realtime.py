"""Live events over real Socket.IO clients on loopback: auth at connect, rooms, catch-up, cutting access."""

from __future__ import annotations

import random
import time

import pytest
import socketio as sio_client
from sqlalchemy import select

from server.extensions import db
from server.models import Sector, Staff
from tests.conftest import APPEAL, PASSWORD, make_staff
from tests.realtime_server import Listener, LiveServer, sector_points


def token_for(client, username):
    return client.post("/api/v1/auth/token", json={"username": username, "password": PASSWORD}).json["token"]


@pytest.fixture
def live(committed_app):
    committed_app.config["JAUAP_CONNECTION_SWEEP_S"] = 0.5
    with LiveServer(committed_app) as server:
        yield server


@pytest.fixture
def people(committed_app):
    """An operator, a dispatcher, and a field worker + head in every unit."""
    with committed_app.app_context():
        make_staff("operator", username="op")
        make_staff("dispatcher", username="disp")
        for n in range(1, 7):
            make_staff("field_staff", unit=f"U{n}", username=f"f{n}")
            make_staff("unit_head", unit=f"U{n}", username=f"h{n}")
        db.session.commit()
        sectors = {s.code: s.unit.code for s in db.session.scalars(select(Sector))}
    client = committed_app.test_client()
    return client, sectors


@pytest.mark.parametrize("auth", [None, {"token": "not-a-token"}, {"token": ""}, {"nope": 1}, "token"])
def test_connect_refused_without_valid_credentials(live, auth):
    client = sio_client.Client(reconnection=False)
    with pytest.raises(sio_client.exceptions.ConnectionError):
        client.connect(live.url, auth=auth, transports=["websocket"], wait_timeout=1)
    assert not client.connected


def test_unit_staff_get_their_sectors_events_and_never_anothers(live, people, committed_app):
    client, sector_units = people
    op_headers = {"Authorization": f"Bearer {token_for(client, 'op')}"}
    listeners = {n: Listener(live.url, token_for(client, f"f{n}")).connect() for n in range(1, 7)}
    centre = Listener(live.url, token_for(client, "disp")).connect()
    points = sector_points(committed_app)
    rng = random.Random(42)
    sent: dict[int, str] = {}
    try:
        for _ in range(24):  # randomised trials over the six sectors
            code = rng.choice(sorted(points))
            lon, lat = points[code]
            res = client.post("/api/v1/appeals", json={**APPEAL, "lon": lon, "lat": lat}, headers=op_headers)
            assert res.status_code == 201 and res.json["sector"]["code"] == code
            sent[res.json["id"]] = sector_units[code]
        assert centre.wait_for(lambda ev: {p["appeal"]["id"] for _k, p in ev} >= set(sent), timeout=5)
        for n, listener in listeners.items():
            mine = {a for a, unit in sent.items() if unit == f"U{n}"}
            assert listener.wait_for(lambda ev, mine=mine: {p["appeal"]["id"] for _k, p in ev} >= mine, timeout=5)
            assert listener.appeal_ids() == mine, f"unit U{n} saw foreign events"
            for _kind, payload in listener.events:
                assert "citizen" not in payload["appeal"] and APPEAL["citizen"]["phone"] not in str(payload)
    finally:
        for listener in [*listeners.values(), centre]:
            listener.close()


def test_events_missed_while_disconnected_are_recovered(live, people, committed_app):
    client, _units = people
    op_headers = {"Authorization": f"Bearer {token_for(client, 'op')}"}
    disp_token = token_for(client, "disp")
    listener = Listener(live.url, disp_token).connect()
    first = client.post("/api/v1/appeals", json=APPEAL, headers=op_headers).json
    assert listener.wait_for(lambda ev: any(p["appeal"]["id"] == first["id"] for _k, p in ev))
    last_seen = max(listener.ids())
    listener.close()
    missed = [client.post("/api/v1/appeals", json={**APPEAL, "description": f"m{i}"}, headers=op_headers).json["id"]
              for i in range(3)]
    catch_up = client.get(f"/api/v1/events?after={last_seen}", headers={"Authorization": f"Bearer {disp_token}"}).json
    got = {e["appeal"]["id"] for e in catch_up["items"]}
    assert set(missed) <= got
    assert all(e["id"] > last_seen for e in catch_up["items"])
    ids = [e["id"] for e in catch_up["items"]]
    assert ids == sorted(ids)
    # a unit member's catch-up shows nothing of other units
    f_token = token_for(client, "f2")
    theirs = client.get("/api/v1/events?after=0", headers={"Authorization": f"Bearer {f_token}"}).json["items"]
    assert all(e["appeal"]["unit"] == "U2" for e in theirs)


def test_moving_a_person_to_another_unit_moves_their_connection_within_5s(live, people, committed_app):
    client, _units = people
    with committed_app.app_context():
        make_staff("admin", username="root")
        db.session.commit()
    admin = {"Authorization": f"Bearer {token_for(client, 'root')}"}
    op_headers = {"Authorization": f"Bearer {token_for(client, 'op')}"}
    worker_id = None
    with committed_app.app_context():
        worker_id = db.session.scalar(select(Staff.id).where(Staff.username == "f1"))
    listener = Listener(live.url, token_for(client, "f1")).connect()
    start = time.monotonic()
    assert client.patch(f"/api/v1/staff/{worker_id}", json={"unit": "U2"}, headers=admin).status_code == 200
    assert listener.disconnected.wait(5), "old connection was not cut within 5 s"
    assert time.monotonic() - start < 5
    # reconnecting gives the new unit's rooms
    again = Listener(live.url, listener.token).connect()
    points = sector_points(committed_app)
    with committed_app.app_context():
        u2_code = db.session.scalar(select(Sector.code).join(Sector.unit).where(Sector.unit.has(code="U2")))
        u1_code = db.session.scalar(select(Sector.code).join(Sector.unit).where(Sector.unit.has(code="U1")))
    in_u2 = client.post("/api/v1/appeals", json={**APPEAL, "lon": points[u2_code][0], "lat": points[u2_code][1]},
                        headers=op_headers).json
    in_u1 = client.post("/api/v1/appeals", json={**APPEAL, "lon": points[u1_code][0], "lat": points[u1_code][1]},
                        headers=op_headers).json
    assert again.wait_for(lambda ev: any(p["appeal"]["id"] == in_u2["id"] for _k, p in ev))
    time.sleep(0.3)
    assert in_u1["id"] not in again.appeal_ids()
    again.close()


def test_disabling_or_revoking_cuts_live_connections(live, people, committed_app):
    client, _units = people
    with committed_app.app_context():
        make_staff("admin", username="root2")
        db.session.commit()
        worker_id = db.session.scalar(select(Staff.id).where(Staff.username == "f3"))
    admin = {"Authorization": f"Bearer {token_for(client, 'root2')}"}
    token = token_for(client, "f4")
    revoked = Listener(live.url, token).connect()
    client.delete("/api/v1/auth/token", headers={"Authorization": f"Bearer {token}"})
    assert revoked.disconnected.wait(5)
    disabled = Listener(live.url, token_for(client, "f3")).connect()
    client.patch(f"/api/v1/staff/{worker_id}", json={"active": False}, headers=admin)
    assert disabled.disconnected.wait(5)
    with pytest.raises(sio_client.exceptions.ConnectionError):
        Listener(live.url, disabled.token).connect()


def test_socket_events_check_their_own_permission(live, people):
    client, _units = people
    centre = Listener(live.url, token_for(client, "op")).connect()
    refused = centre.client.call("position", {"lat": 43.3, "lon": 68.25}, timeout=5)
    assert refused == {"ok": False, "error": "forbidden"}
    assert centre.client.call("echo", {"x": 1}, timeout=5) == {"ok": True, "data": {"x": 1}}
    field = Listener(live.url, token_for(client, "f5")).connect()
    assert field.client.call("position", {"lat": 43.3, "lon": 68.25, "accuracy_m": 8}, timeout=5) == {"ok": True}
    again = field.client.call("position", {"lat": 43.3, "lon": 68.25}, timeout=5)
    assert again["ok"] is False and again["error"] == "position_too_frequent"
    bad = field.client.call("position", {"lat": "north"}, timeout=5)
    assert bad["ok"] is False
    centre.close()
    field.close()


def test_the_events_of_one_commit_arrive_as_one_message_oldest_first(live, people, committed_app):
    client, _units = people
    op_headers = {"Authorization": f"Bearer {token_for(client, 'op')}"}
    messages: list[tuple[str, dict]] = []
    raw = sio_client.Client(reconnection=False)
    raw.on("*", lambda name, data: messages.append((name, data)))  # every message, unpacked by nobody
    raw.connect(live.url, auth={"token": token_for(client, "disp")}, transports=["websocket"], wait_timeout=5)
    try:
        appeal = client.post("/api/v1/appeals", json=APPEAL, headers=op_headers).json
        deadline = time.monotonic() + 5
        while not messages and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.3)  # anything else this commit sent would have arrived by now
    finally:
        raw.disconnect()
    assert [name for name, _data in messages] == ["appeal.events"]
    events = messages[0][1]["events"]
    assert [e["kind"] for e in events][:2] == ["appeal.registered", "appeal.routed"]
    assert {e["appeal"]["id"] for e in events} == {appeal["id"]}
    assert [e["id"] for e in events] == sorted(e["id"] for e in events)
    assert all(e["appeal"]["reg_no"] == appeal["reg_no"] for e in events)

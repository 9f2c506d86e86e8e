"""Web Push: the VAPID key, the endpoint guard, the sender against a real local push service, the API."""

from __future__ import annotations

import base64
import os
import stat
import threading

import pytest
import requests
from sqlalchemy import select

from notifications import DeliveryResult, Registry, UnknownChannel
from notifications.webpush import (
    JWT_LIFETIME_S,
    KEY_FILE,
    EndpointPolicy,
    InsecureKeyFile,
    WebPushSender,
    classify,
    load_or_create_key,
    parse_retry_after,
    public_key_b64,
)
from server.extensions import db
from server.models import ApiToken, PushSubscription
from server.services import push
from tests.conftest import PASSWORD, make_staff
from tests.push_endpoint import PushEndpoint

PAYLOAD = {"kind": "appeal.assigned", "appeal_id": 42, "reg_no": "TRK-2026-000042", "url": "/field/#/appeal/42"}


def recipient(sub) -> dict:
    return {"endpoint": sub.endpoint, "p256dh": sub.p256dh, "auth": sub.auth}


@pytest.fixture
def key(tmp_path):
    return load_or_create_key(tmp_path)


@pytest.fixture
def endpoint(key):
    with PushEndpoint(expected_key=public_key_b64(key)) as ep:
        yield ep


@pytest.fixture
def sender(key):
    s = WebPushSender(key, "mailto:ops@example.org", policy=EndpointPolicy(allow_loopback_http=True))
    yield s
    s.close()


# --- the VAPID key ------------------------------------------------------------


def test_vapid_key_is_created_0600_and_stable_across_restarts(tmp_path):
    first = load_or_create_key(tmp_path / "instance")
    path = tmp_path / "instance" / KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(os.listdir(path.parent)) == [KEY_FILE]  # no temporary file left behind
    again = load_or_create_key(tmp_path / "instance")  # a restart reads the same key
    assert public_key_b64(again) == public_key_b64(first)
    raw = base64.urlsafe_b64decode(public_key_b64(first) + "=")
    assert len(raw) == 65 and raw[0] == 4  # uncompressed P-256 point, base64url without padding
    assert "=" not in public_key_b64(first)


def test_vapid_key_readable_by_others_is_refused(tmp_path):
    load_or_create_key(tmp_path)
    os.chmod(tmp_path / KEY_FILE, 0o640)
    with pytest.raises(InsecureKeyFile, match="chmod 600"):
        load_or_create_key(tmp_path)


def test_processes_starting_together_agree_on_one_key(tmp_path):
    keys, barrier = [], threading.Barrier(6)

    def start():
        barrier.wait()
        keys.append(public_key_b64(load_or_create_key(tmp_path)))

    threads = [threading.Thread(target=start) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(keys)) == 1 and len(keys) == 6


# --- which endpoints the worker may call -------------------------------------------


@pytest.mark.parametrize("url,allowed", [
    ("https://fcm.googleapis.com/fcm/send/abc:def", True),
    ("https://updates.push.services.mozilla.com/wpush/v2/gAAAA", True),
    ("https://web.push.apple.com/QGx", True),
    ("https://wns2-db5p.notify.windows.com/w/?token=x", True),
    ("https://evil.example/push", False),  # not a push service
    ("https://fcm.googleapis.com.evil.example/x", False),
    ("https://10.0.0.5/push", False),  # private address
    ("https://127.0.0.1/push", False),
    ("https://[::1]/push", False),
    ("https://fcm.googleapis.com:8443/x", False),  # odd port
    ("https://user:pw@fcm.googleapis.com/x", False),
    ("http://fcm.googleapis.com/x", False),  # plain http
    ("http://127.0.0.1:8000/push/x", False),  # loopback only when allowed
    ("ftp://fcm.googleapis.com/x", False),
    ("https://fcm.googleapis.com/x y", False),
    ("https://fcm.googleapis.com/" + "a" * 1100, False),
])
def test_endpoint_policy_production(url, allowed):
    assert EndpointPolicy().allows(url) is allowed


def test_endpoint_policy_loopback_for_tests_only():
    policy = EndpointPolicy.of(["push.example"], allow_loopback_http=True)
    assert policy.allows("http://127.0.0.1:4567/push/x")
    assert not policy.allows("http://localhost:4567/push/x")
    assert not policy.allows("http://10.1.2.3/push/x")
    assert policy.allows("https://push.example/x") and not policy.allows("https://fcm.googleapis.com/x")


# --- the sender against the local push service -------------------------------------


def test_push_arrives_encrypted_with_valid_vapid_and_decrypts_to_the_payload(endpoint, sender):
    sub = endpoint.subscribe()
    result = sender.send(recipient(sub), PAYLOAD)
    assert result == DeliveryResult("ok", 201)
    assert endpoint.errors == []
    [got] = endpoint.received
    assert got.json == PAYLOAD and len(got.plaintext) <= 512
    assert got.claims["aud"] == endpoint.origin and got.claims["sub"] == "mailto:ops@example.org"
    assert got.headers["Content-Encoding"] == "aes128gcm" and int(got.headers["TTL"]) > 0


def test_the_push_service_refuses_a_token_signed_with_another_key(endpoint, tmp_path):
    stranger = WebPushSender(load_or_create_key(tmp_path / "stranger"), "mailto:x@example.org",
                             policy=EndpointPolicy(allow_loopback_http=True))
    result = stranger.send(recipient(endpoint.subscribe()), PAYLOAD)
    assert result.outcome == "permanent" and result.status == 403
    assert endpoint.errors and "another key" in endpoint.errors[0]


def test_vapid_token_is_cached_per_origin_until_shortly_before_expiry(key, endpoint):
    clock = [1_000_000.0]
    s = WebPushSender(key, "mailto:ops@example.org", policy=EndpointPolicy(allow_loopback_http=True),
                      clock=lambda: clock[0])
    first = s.authorization(endpoint.origin + "/push/a")
    assert s.authorization(endpoint.origin + "/push/b") == first  # same origin: same signed token
    assert s.authorization("https://fcm.googleapis.com/fcm/send/x") != first  # another audience
    clock[0] += JWT_LIFETIME_S - 3600
    assert s.authorization(endpoint.origin + "/push/a") == first
    clock[0] += 3600 - 300  # five minutes before expiry: re-signed
    assert s.authorization(endpoint.origin + "/push/a") != first


@pytest.mark.parametrize("status,outcome", [(201, "ok"), (202, "ok"), (404, "gone"), (410, "gone"),
                                            (429, "retry"), (500, "retry"), (503, "retry"),
                                            (400, "permanent"), (413, "permanent")])
def test_replies_map_to_outcomes(endpoint, sender, status, outcome):
    sub = endpoint.subscribe()
    endpoint.script(sub, status)
    result = sender.send(recipient(sub), PAYLOAD)
    assert (result.outcome, result.status) == (outcome, status)


def test_retry_after_is_honoured(endpoint, sender):
    sub = endpoint.subscribe()
    endpoint.script(sub, (429, {"Retry-After": "120"}))
    assert sender.send(recipient(sub), PAYLOAD).retry_after == 120
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 1445412480 - 60) == 60
    assert parse_retry_after("soon", 0) is None
    assert parse_retry_after("99999999", 0) == 24 * 3600  # clamped
    assert classify(503, "30").retry_after == 30


def test_unreachable_push_service_is_retried(sender):
    with PushEndpoint() as ep:
        sub = ep.subscribe()
    result = sender.send(recipient(sub), PAYLOAD)  # the port is closed now
    assert result.outcome == "retry" and result.status is None


def test_payload_is_trimmed_to_the_contract_and_limited_to_512_bytes(endpoint, sender):
    sub = endpoint.subscribe()
    leaky = {**PAYLOAD, "citizen_name": "Aigerim S.", "phone": "+7 701 555 1234"}
    assert sender.send(recipient(sub), leaky).ok
    assert endpoint.received[-1].json == PAYLOAD  # the personal fields never left
    huge = {**PAYLOAD, "reg_no": "X" * 600}
    result = sender.send(recipient(sub), huge)
    assert result.outcome == "permanent" and "512" in result.error
    assert endpoint.attempts(sub) == 1  # refused before any POST


def test_bad_endpoint_or_keys_are_permanent_without_a_request(sender):
    assert sender.send({"endpoint": "https://10.0.0.1/x", "p256dh": "x", "auth": "y"}, PAYLOAD).outcome == "permanent"
    bad = {"endpoint": "http://127.0.0.1:9/push/x", "p256dh": "AAAA", "auth": "AAAA"}
    assert sender.send(bad, PAYLOAD).outcome == "permanent"


def test_registry_by_name(sender):
    reg = Registry()
    reg.register(sender)
    assert reg.get("webpush") is sender and "webpush" in reg and reg.names() == ["webpush"]
    with pytest.raises(UnknownChannel):
        reg.get("sms")


def test_keep_alive_reuses_one_connection(endpoint, sender):
    sub = endpoint.subscribe()
    for _ in range(5):
        assert sender.send(recipient(sub), PAYLOAD).ok
    adapter = sender.session.get_adapter(sub.endpoint)
    pools = list(adapter.poolmanager.pools._container.values())
    assert len(pools) == 1 and pools[0].num_connections == 1


# --- the API ----------------------------------------------------------------------


@pytest.fixture
def loopback(app, db_session):
    """Let subscriptions point at the local push service (test setting, refused in production)."""
    app.config["JAUAP_PUSH_ALLOW_LOOPBACK"] = True
    app.extensions.pop("jauap_channels", None)
    yield
    app.config["JAUAP_PUSH_ALLOW_LOOPBACK"] = False
    app.extensions.pop("jauap_channels", None)


@pytest.fixture
def local_push(app, loopback):
    with PushEndpoint(expected_key=push.public_key()) as ep:
        yield ep


def test_push_key_is_the_instance_key(app, client, as_role):
    _s, headers = as_role("field_staff")
    res = client.get("/api/v1/push/key", headers=headers)
    assert res.status_code == 200
    assert res.json == {"public_key": public_key_b64(load_or_create_key(app.instance_path))}
    assert stat.S_IMODE(os.stat(os.path.join(app.instance_path, KEY_FILE)).st_mode) == 0o600


@pytest.mark.parametrize("role,status", [("field_staff", 200), ("unit_head", 200), ("dispatcher", 200),
                                         ("operator", 200), ("admin", 403)])
def test_push_policy_by_role(client, as_role, role, status):
    _s, headers = as_role(role)
    assert client.get("/api/v1/push/key", headers=headers).status_code == status


def test_push_needs_a_login(client):
    assert client.get("/api/v1/push/key").status_code == 401
    assert client.post("/api/v1/push/subscriptions", json={}).status_code in (400, 401)


def test_subscribe_is_an_upsert_tied_to_the_login(client, as_role, local_push):
    staff, headers = as_role("field_staff")
    sub = local_push.subscribe()
    first = client.post("/api/v1/push/subscriptions", json=sub.as_json(), headers=headers)
    assert first.status_code == 201 and first.json["endpoint"] == sub.endpoint
    # Browsers send toJSON() as is (with expirationTime): accepted, and a repeat is 200.
    again = client.post("/api/v1/push/subscriptions", json={**sub.as_json(), "expirationTime": None},
                        headers=headers)
    assert again.status_code == 200
    rows = db.session.scalars(select(PushSubscription).where(PushSubscription.staff_id == staff.id)).all()
    assert len(rows) == 1
    token = db.session.scalars(select(ApiToken).where(ApiToken.staff_id == staff.id)).one()
    assert rows[0].token_id == token.id and rows[0].p256dh == sub.p256dh and rows[0].auth == sub.auth
    assert "keys" not in first.json  # keys never leave the server again


def test_subscription_input_is_validated(client, as_role, local_push):
    _s, headers = as_role("field_staff")
    good = local_push.subscribe().as_json()
    bad_key = {**good, "keys": {"p256dh": "AAAA", "auth": good["keys"]["auth"]}}
    res = client.post("/api/v1/push/subscriptions", json=bad_key, headers=headers)
    assert res.status_code == 400
    assert [f["field"] for f in res.json["error"]["fields"]] == ["keys.p256dh"]
    assert res.json["error"]["fields"][0]["code"] == "bad_push_key"
    not_a_point = {**good, "keys": {"p256dh": base64.urlsafe_b64encode(b"\x04" + b"\x01" * 64).decode().rstrip("="),
                                    "auth": good["keys"]["auth"]}}
    assert client.post("/api/v1/push/subscriptions", json=not_a_point, headers=headers).status_code == 400
    short_auth = {**good, "keys": {"p256dh": good["keys"]["p256dh"], "auth": "AAAA"}}
    assert client.post("/api/v1/push/subscriptions", json=short_auth, headers=headers).json["error"]["fields"][0][
        "field"] == "keys.auth"
    extra = {**good, "user_id": 1}
    assert client.post("/api/v1/push/subscriptions", json=extra, headers=headers).status_code == 400


@pytest.mark.parametrize("url", ["https://169.254.169.254/latest/meta-data", "http://10.0.0.5/push",
                                 "https://intranet.local/push", "http://localhost:5000/push/x",
                                 "https://evil.example/push", "file:///etc/passwd"])
def test_subscription_endpoints_that_would_be_ssrf_are_refused(client, as_role, local_push, url):
    _s, headers = as_role("field_staff")
    body = {**local_push.subscribe().as_json(), "endpoint": url}
    res = client.post("/api/v1/push/subscriptions", json=body, headers=headers)
    assert res.status_code == 422 and res.json["error"]["code"] == "push_endpoint_not_allowed"
    assert res.json["error"]["fields"][0]["field"] == "endpoint"
    assert db.session.scalar(select(PushSubscription).where(PushSubscription.endpoint == url)) is None


def test_loopback_endpoints_need_the_test_setting(client, as_role):
    _s, headers = as_role("field_staff")
    with PushEndpoint() as ep:
        res = client.post("/api/v1/push/subscriptions", json=ep.subscribe().as_json(), headers=headers)
    assert res.status_code == 422 and res.json["error"]["code"] == "push_endpoint_not_allowed"


def test_unsubscribe_removes_only_the_callers_own(client, as_role, local_push):
    _a, alice = as_role("field_staff")
    _b, bob = as_role("field_staff")
    sub = local_push.subscribe()
    assert client.post("/api/v1/push/subscriptions", json=sub.as_json(), headers=alice).status_code == 201
    res = client.delete("/api/v1/push/subscriptions", json={"endpoint": sub.endpoint}, headers=bob)
    assert res.status_code == 204
    assert db.session.scalar(select(PushSubscription).where(PushSubscription.endpoint == sub.endpoint))
    assert client.delete("/api/v1/push/subscriptions", json={"endpoint": sub.endpoint},
                         headers=alice).status_code == 204
    assert db.session.scalar(select(PushSubscription).where(PushSubscription.endpoint == sub.endpoint)) is None


def test_revoking_a_token_removes_that_devices_subscription_only(client, local_push):
    staff = make_staff("field_staff", username="two-phones")
    tokens = [client.post("/api/v1/auth/token", json={"username": "two-phones", "password": PASSWORD}).json["token"]
              for _ in range(2)]
    phones = [local_push.subscribe(), local_push.subscribe()]
    for token, phone in zip(tokens, phones, strict=True):
        res = client.post("/api/v1/push/subscriptions", json=phone.as_json(),
                          headers={"Authorization": f"Bearer {token}"})
        assert res.status_code == 201
    assert client.delete("/api/v1/auth/token", headers={"Authorization": f"Bearer {tokens[0]}"}).status_code == 204
    left = db.session.scalars(select(PushSubscription.endpoint).where(PushSubscription.staff_id == staff.id)).all()
    assert left == [phones[1].endpoint]


def test_browser_logout_removes_the_browsers_subscription(client, local_push):
    import re

    make_staff("field_staff", username="web-field")
    page = client.get("/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    assert client.post("/login", data={"username": "web-field", "password": PASSWORD,
                                       "csrf_token": csrf}).status_code == 302
    csrf = client.get("/api/v1/auth/csrf").json["csrf_token"]
    sub = local_push.subscribe()
    res = client.post("/api/v1/push/subscriptions", json=sub.as_json(), headers={"X-CSRFToken": csrf})
    assert res.status_code == 201
    row = db.session.scalar(select(PushSubscription).where(PushSubscription.endpoint == sub.endpoint))
    assert row.token_id is not None
    assert client.post("/logout", data={"csrf_token": csrf}).status_code == 302
    assert db.session.scalar(select(PushSubscription).where(PushSubscription.endpoint == sub.endpoint)) is None


def test_the_key_endpoint_makes_no_outbound_request(client, as_role, monkeypatch):
    # Nothing in a request handler calls a push service: requests is never used while serving.
    def refuse(*_a, **_k):
        raise AssertionError("a request handler made an HTTP request")

    monkeypatch.setattr(requests.Session, "request", refuse)
    _s, headers = as_role("field_staff")
    assert client.get("/api/v1/push/key", headers=headers).status_code == 200


def test_field_app_logout_removes_the_browsers_subscription(client, local_push):
    make_staff("field_staff", username="pwa-field")
    assert client.post("/api/v1/auth/session", json={"username": "pwa-field", "password": PASSWORD}).status_code == 200
    csrf = {"X-CSRFToken": client.get("/api/v1/auth/csrf").json["csrf_token"]}
    sub = local_push.subscribe()
    assert client.post("/api/v1/push/subscriptions", json=sub.as_json(), headers=csrf).status_code == 201
    assert client.delete("/api/v1/auth/session", headers=csrf).status_code == 204
    assert db.session.scalar(select(PushSubscription).where(PushSubscription.endpoint == sub.endpoint)) is None

"""Authentication (session + bearer), CSRF, the policy table and object-level visibility."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from server.extensions import db
from server.models import ApiToken, Appeal
from server.models.types import utcnow
from server.security import POLICY, PUBLIC
from tests.conftest import APPEAL, PASSWORD, bearer, count_rows, make_staff

pytestmark = pytest.mark.usefixtures("db_session")


def test_every_route_has_a_policy(app):
    missing = [r.rule for r in app.url_map.iter_rules() if r.endpoint not in POLICY]
    assert missing == [], f"routes without a policy entry: {missing}"


def test_a_route_without_policy_is_denied(committed_app):
    # A route the policy table does not know: default deny, even for a logged-in admin.
    committed_app.add_url_rule("/probe-unlisted", "probe_unlisted", lambda: "secret")
    with committed_app.app_context():
        headers = bearer(make_staff("admin"))
    res = committed_app.test_client().get("/probe-unlisted", headers=headers)
    assert res.status_code == 403 and b"secret" not in res.data


def test_token_login_and_me(client):
    staff = make_staff("dispatcher", username="disp-1")
    res = client.post("/api/v1/auth/token", json={"username": "disp-1", "password": PASSWORD})
    assert res.status_code == 200
    token = res.json["token"]
    me = client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200 and me.json["username"] == staff.username and me.json["role"] == "dispatcher"


@pytest.mark.parametrize("creds", [{"username": "disp-2", "password": "wrong-password"},
                                   {"username": "nobody", "password": PASSWORD}])
def test_bad_credentials_get_401(client, creds):
    make_staff("dispatcher", username="disp-2")
    res = client.post("/api/v1/auth/token", json=creds)
    assert res.status_code == 401 and res.json["error"]["code"] == "bad_credentials"


def test_token_missing_bad_expired_revoked_or_disabled_user(client):
    staff = make_staff("operator", username="op-tok")
    token = client.post("/api/v1/auth/token", json={"username": "op-tok", "password": PASSWORD}).json["token"]
    auth = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/v1/appeals").status_code == 401
    assert client.get("/api/v1/appeals", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert client.get("/api/v1/appeals", headers=auth).status_code == 200
    row = ApiToken.query.filter_by(staff_id=staff.id).one()
    row.expires_at = utcnow() - timedelta(seconds=1)
    db.session.flush()
    assert client.get("/api/v1/appeals", headers=auth).status_code == 401
    row.expires_at = utcnow() + timedelta(hours=1)
    staff.active = False
    db.session.flush()
    assert client.get("/api/v1/appeals", headers=auth).status_code == 401
    staff.active = True
    db.session.flush()
    assert client.delete("/api/v1/auth/token", headers=auth).status_code == 204
    assert client.get("/api/v1/appeals", headers=auth).status_code == 401


def _login(client, username):
    page = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True)).group(1)
    return client.post("/login", data={"username": username, "password": PASSWORD, "csrf_token": token})


def test_browser_session_login_and_csrf_on_writes(client):
    make_staff("operator", username="op-web")
    assert _login(client, "op-web").status_code == 302
    assert client.get("/api/v1/appeals").status_code == 200
    # A write with the cookie but without the CSRF token is refused and saves nothing.
    res = client.post("/api/v1/appeals", json=APPEAL)
    assert res.status_code == 400 and res.json["error"]["code"] == "csrf_failed"
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    ok = client.post("/api/v1/appeals", json=APPEAL, headers={"X-CSRFToken": token})
    assert ok.status_code == 201, ok.json


def test_a_bearer_header_beside_a_cookie_session_does_not_skip_csrf(client, as_role):
    # A cookie session stays a cookie session whatever Authorization header rides along: only a caller the
    # bearer token itself authenticated may write without the CSRF token.
    make_staff("operator", username="op-mixed")
    assert _login(client, "op-mixed").status_code == 302
    before = count_rows(Appeal)
    for header in ("Bearer not-a-token", "Bearer "):
        res = client.post("/api/v1/appeals", json=APPEAL, headers={"Authorization": header})
        assert res.status_code == 400 and res.json["error"]["code"] == "csrf_failed", res.json
    assert count_rows(Appeal) == before
    # A real token is still enough on its own (no cookie, no CSRF token).
    _op, headers = as_role("operator")
    fresh = client.application.test_client()
    assert fresh.post("/api/v1/appeals", json=APPEAL, headers=headers).status_code == 201


def test_login_page_rejects_wrong_password_and_open_redirects(client):
    make_staff("operator", username="op-redir")
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    bad = client.post("/login", data={"username": "op-redir", "password": "nope-nope", "csrf_token": token})
    assert bad.status_code == 401
    ok = client.post("/login?next=https://evil.example/", data={"username": "op-redir", "password": PASSWORD,
                                                               "csrf_token": token})
    assert ok.status_code == 302 and ok.headers["Location"] in ("/", "http://localhost/")


def test_login_without_csrf_token_is_refused(client):
    make_staff("operator", username="op-nocsrf")
    res = client.post("/login", data={"username": "op-nocsrf", "password": PASSWORD})
    assert res.status_code == 400


@pytest.mark.parametrize("role", ["analyst", "methodologist", "pr_manager", "inspector", "qc_analyst", "admin",
                                  "unit_head", "field_staff"])
def test_roles_that_may_not_register_appeals_get_403(client, as_role, role):
    _s, headers = as_role(role)
    res = client.post("/api/v1/appeals", json=APPEAL, headers=headers)
    assert res.status_code == 403 and res.json["error"]["code"] == "forbidden"


def test_unit_staff_see_only_their_sector_and_get_404_elsewhere(client, as_role):
    _op, op_headers = as_role("operator")
    created = client.post("/api/v1/appeals", json=APPEAL, headers=op_headers).json
    home_unit = "U" + created["sector"]["code"][1:]
    other_unit = "U2" if home_unit != "U2" else "U3"
    _h, home = as_role("field_staff", unit=home_unit)
    _o, other = as_role("field_staff", unit=other_unit)
    assert client.get(f"/api/v1/appeals/{created['id']}", headers=home).status_code == 200
    foreign = client.get(f"/api/v1/appeals/{created['id']}", headers=other)
    assert foreign.status_code == 404 and foreign.json["error"]["code"] == "appeal_not_found"
    missing = client.get("/api/v1/appeals/99999999", headers=other)
    assert missing.status_code == 404 and missing.json == foreign.json  # indistinguishable
    listed = client.get("/api/v1/appeals", headers=other).json
    assert created["id"] not in [a["id"] for a in listed["items"]]
    transition = client.post(f"/api/v1/appeals/{created['id']}/transitions", json={"action": "accept"},
                             headers=other)
    assert transition.status_code == 404


def test_contact_fields_only_for_roles_that_may_see_them(client, as_role):
    _op, op_headers = as_role("operator")
    created = client.post("/api/v1/appeals", json=APPEAL, headers=op_headers).json
    assert created["citizen"]["phone"] == APPEAL["citizen"]["phone"]
    unit = "U" + created["sector"]["code"][1:]
    for role, unit_code in [("analyst", None), ("pr_manager", None), ("methodologist", None), ("admin", None),
                            ("field_staff", unit)]:
        _s, headers = as_role(role, unit=unit_code)
        one = client.get(f"/api/v1/appeals/{created['id']}", headers=headers).json
        assert one["citizen"] is None, role
        listed = client.get("/api/v1/appeals", headers=headers).get_data(as_text=True)
        assert APPEAL["citizen"]["phone"] not in listed, role
    _h, head = as_role("unit_head", unit=unit)
    assert client.get(f"/api/v1/appeals/{created['id']}", headers=head).json["citizen"]["name"]


def test_public_endpoints_need_no_login(client):
    for path in ("/healthz", "/readyz", "/api/v1/topics", "/api/v1/sectors", "/api/v1/openapi.json",
                 "/api/v1/sectors/lookup?lat=43.2975&lon=68.251"):
        assert client.get(path).status_code == 200, path
    assert {e for e, rule in POLICY.items() if rule == PUBLIC} >= {"web.healthz", "api.openapi"}

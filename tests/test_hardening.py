"""HTTP hardening (issue 7 part 4): security headers, cookies, session rotation, cross-origin writes, rate limits,
and production's refusal of unsafe settings."""

from __future__ import annotations

import re
import uuid

import pytest
from flask import Response

from server.config import Config, TestConfig, UnsafeConfigError
from server.extensions import db
from server.hardening import add_security_headers, content_security_policy, tile_source
from server.ratelimit import Limit, RateLimiter, limiter, parse_limits
from tests.conftest import PASSWORD, appeal_body, bearer, make_app, make_staff

REDIS_URL = "redis://127.0.0.1:6379/0"
EVIL = "https://evil.example"


def _csp(res) -> dict[str, list[str]]:
    out = {}
    for part in res.headers["Content-Security-Policy"].split(";"):
        name, *values = part.split()
        out[name] = values
    return out


def _login(client, username: str, **kwargs):
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    return client.post("/login", data={"username": username, "password": PASSWORD, "csrf_token": token}, **kwargs)


def _csrf(client) -> str:
    return client.get("/api/v1/auth/csrf").json["csrf_token"]


@pytest.fixture
def low_limits(app, monkeypatch):
    """Low login and appeal limits for one test, on fresh in-process counters."""
    monkeypatch.setitem(app.config, "JAUAP_LOGIN_LIMITS", "3/3600")
    monkeypatch.setitem(app.config, "JAUAP_APPEAL_LIMITS", "2/3600")
    limiter(app).reset()
    yield
    limiter(app).reset()


# --- headers ---------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/login", "/static/css/app.css", "/vendor/leaflet/leaflet.css",
                                  "/api/v1/topics", "/api/v1/openapi.json", "/field/", "/report", "/nope"])
def test_security_headers_on_pages_api_and_static(client, path):
    res = client.get(path)
    assert res.status_code in (200, 404)
    assert res.headers["X-Content-Type-Options"] == "nosniff"
    assert res.headers["X-Frame-Options"] == "DENY"
    assert res.headers["Referrer-Policy"] in ("same-origin", "no-referrer")
    csp = _csp(res)
    assert csp["frame-ancestors"] == ["'none'"] and csp["object-src"] == ["'none'"]


def test_csp_forbids_inline_script_and_style(client):
    csp = _csp(client.get("/"))
    assert csp["script-src"] == ["'self'"]  # no 'unsafe-inline', no 'unsafe-eval', no hosts
    assert "'unsafe-inline'" not in csp["style-src"]
    assert csp["base-uri"] == ["'self'"] and csp["form-action"] == ["'self'"] and csp["worker-src"] == ["'self'"]
    assert {"'self'", "data:", "blob:"} <= set(csp["img-src"])
    assert "ws://localhost" in csp["connect-src"] and "wss://localhost" in csp["connect-src"]


def test_server_pages_carry_no_inline_script_or_style(client):
    for path in ("/", "/login", "/api/v1/docs"):
        html = client.get(path).get_data(as_text=True)
        assert "<style" not in html and " style=" not in html
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), path


def test_csp_admits_the_configured_tile_host(client, monkeypatch, app):
    monkeypatch.setitem(app.config, "JAUAP_TILE_URL", "https://{s}.tile.example.org/{z}/{x}/{y}.png")
    csp = _csp(client.get("/"))
    assert "https://*.tile.example.org" in csp["img-src"]
    assert tile_source("https://tiles.example.org/{z}/{x}/{y}.png") == "https://tiles.example.org"
    assert tile_source("https://a.{s}.example.org/{z}.png") == "https:"  # wildcard only leftmost
    assert tile_source(None) is None
    assert "tile" not in content_security_policy(None, "localhost")


def test_a_stricter_header_set_by_a_view_is_kept(app):
    with app.test_request_context("/api/v1/appeals/1/photos/x/original"):
        res = Response("jpeg", headers={"Content-Security-Policy": "default-src 'none'; sandbox",
                                        "Referrer-Policy": "no-referrer"})
        add_security_headers(res)
    assert res.headers["Content-Security-Policy"] == "default-src 'none'; sandbox"
    assert res.headers["Referrer-Policy"] == "no-referrer"


def test_hsts_only_over_https(client, app, monkeypatch):
    assert "Strict-Transport-Security" not in client.get("/").headers
    assert client.get("/", base_url="https://localhost").headers["Strict-Transport-Security"].startswith("max-age=")
    # X-Forwarded-Proto is anyone's to send unless a trusted proxy is declared.
    assert "Strict-Transport-Security" not in client.get("/", headers={"X-Forwarded-Proto": "https"}).headers
    monkeypatch.setitem(app.config, "JAUAP_PROXY_HOPS", 1)
    assert "Strict-Transport-Security" in client.get("/", headers={"X-Forwarded-Proto": "https"}).headers
    monkeypatch.setitem(app.config, "JAUAP_PROXY_HOPS", 0)
    monkeypatch.setitem(app.config, "SESSION_COOKIE_SECURE", True)  # TLS is in front (production requires it)
    assert "Strict-Transport-Security" in client.get("/").headers


def test_no_store_on_personal_data_and_caching_kept_on_public_files(client, db_session):
    op = make_staff("operator")
    headers = bearer(op)
    assert client.get("/api/v1/auth/me", headers=headers).headers["Cache-Control"] == "no-store"
    assert client.get("/api/v1/appeals", headers=headers).headers["Cache-Control"] == "no-store"
    assert client.get("/api/v1/topics", headers=headers).headers["Cache-Control"] == "no-store"
    assert "no-store" not in client.get("/api/v1/topics").headers.get("Cache-Control", "")
    assert "no-store" not in client.get("/vendor/leaflet/leaflet.css").headers.get("Cache-Control", "")
    assert "no-store" not in client.get("/field/").headers.get("Cache-Control", "")
    assert _login(client, op.username).status_code == 302
    page = client.get("/operator/")
    assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"
    assert client.get("/").headers["Cache-Control"] == "no-store"  # it names who is logged in


# --- cookies and the session --------------------------------------------------


def test_session_cookie_flags(client, app, db_session, monkeypatch):
    op = make_staff("operator")
    cookie = _login(client, op.username).headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    monkeypatch.setitem(app.config, "SESSION_COOKIE_SECURE", True)
    client.post("/logout", headers={"X-CSRFToken": _csrf(client)})
    cookie = _login(client, op.username, base_url="https://localhost").headers["Set-Cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_production_turns_secure_cookies_on_by_default(monkeypatch):
    monkeypatch.setenv("JAUAP_ENV", "production")
    monkeypatch.delenv("JAUAP_SECURE_COOKIES", raising=False)
    cfg = Config.from_env().to_flask()
    assert cfg["SESSION_COOKIE_SECURE"] and cfg["REMEMBER_COOKIE_SECURE"] and cfg["SESSION_COOKIE_HTTPONLY"]


def test_session_rotates_at_login(client, app, db_session):
    op = make_staff("operator")
    page = client.get("/login").get_data(as_text=True)
    before_token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    before_cookie = client.get_cookie("jauap_session").value
    res = client.post("/login", data={"username": op.username, "password": PASSWORD, "csrf_token": before_token})
    assert res.status_code == 302
    after_cookie = client.get_cookie("jauap_session").value
    assert after_cookie != before_cookie
    assert client.get("/api/v1/auth/me").status_code == 200
    # The cookie planted before login (session fixation) does not carry the login.
    stranger = app.test_client()
    stranger.set_cookie("jauap_session", before_cookie)
    assert stranger.get("/api/v1/auth/me").status_code == 401
    # The CSRF token from before login is not valid after it: a new one was issued.
    after_token = _csrf(client)
    assert after_token != before_token
    assert client.post("/logout", headers={"X-CSRFToken": before_token}).status_code == 400
    assert client.post("/logout", headers={"X-CSRFToken": after_token}).status_code == 302


# --- cross-origin writes ---------------------------------------------------------


def test_cross_origin_write_with_a_cookie_is_refused(client, db_session):
    op = make_staff("operator")
    _login(client, op.username)
    token = _csrf(client)
    for headers in ({"Origin": EVIL}, {"Referer": f"{EVIL}/page"}, {"Origin": "null"},
                    {"Origin": "https://localhost"}):  # same host, another scheme: another origin
        res = client.post("/api/v1/appeals", json=appeal_body(), headers={"X-CSRFToken": token, **headers})
        assert res.status_code == 403, headers
        assert res.json["error"]["code"] == "cross_origin" and res.json["error"]["message"]
    assert client.post("/logout", headers={"X-CSRFToken": token, "Origin": EVIL}).status_code == 403
    ok = client.post("/api/v1/appeals", json=appeal_body(),
                     headers={"X-CSRFToken": token, "Origin": "http://localhost"})
    assert ok.status_code == 201, ok.json
    ok = client.post("/api/v1/appeals", json=appeal_body(),
                     headers={"X-CSRFToken": token, "Referer": "http://localhost/operator/"})
    assert ok.status_code == 201, ok.json


def test_cross_origin_login_form_is_refused(client, db_session):
    op = make_staff("operator")
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    res = client.post("/login", data={"username": op.username, "password": PASSWORD, "csrf_token": token},
                      headers={"Origin": EVIL})
    assert res.status_code == 403 and res.json["error"]["code"] == "cross_origin"


def test_bearer_clients_listed_origins_and_signed_endpoints_are_exempt(client, app, db_session, monkeypatch):
    op = make_staff("operator")
    res = client.post("/api/v1/appeals", json=appeal_body(), headers={**bearer(op), "Origin": EVIL})
    assert res.status_code == 201, res.json
    # Open311 writes come from other servers and carry their api_key: never a cross_origin refusal.
    res = client.post("/open311/v2/requests.json", data={"service_code": "roads"}, headers={"Origin": EVIL})
    assert "cross_origin" not in res.get_data(as_text=True), res.get_data(as_text=True)
    monkeypatch.setitem(app.config, "JAUAP_CORS_ORIGINS", [EVIL])
    _login(client, op.username, headers={"Origin": EVIL})
    res = client.post("/api/v1/appeals", json=appeal_body(), headers={"X-CSRFToken": _csrf(client), "Origin": EVIL})
    assert res.status_code == 201, res.json


# --- rate limits -------------------------------------------------------------------


def test_login_limit_per_address_and_username_with_retry_after(client, db_session, low_limits):
    op = make_staff("operator")
    for _ in range(3):
        assert client.post("/api/v1/auth/token", json={"username": op.username, "password": "wrong-one"}
                           ).status_code == 401
    res = client.post("/api/v1/auth/token", json={"username": op.username, "password": PASSWORD},
                      headers={"Accept-Language": "en"})
    assert res.status_code == 429
    assert res.json["error"]["code"] == "login_rate_limited" and "min" in res.json["error"]["message"]
    assert 0 < int(res.headers["Retry-After"]) <= 3600
    # The username is locked from another address too...
    other = {"REMOTE_ADDR": "10.9.8.7"}
    assert client.post("/api/v1/auth/session", json={"username": op.username, "password": PASSWORD},
                       environ_base=other).status_code == 429
    # ...and the address is locked for other usernames.
    assert client.post("/api/v1/auth/token", json={"username": "someone-else", "password": "x"}
                       ).status_code == 429


def test_successful_logins_cost_nothing(client, db_session, low_limits):
    """A whole shift logs in from the centre's one address: right passwords are given back."""
    op = make_staff("operator")
    for _ in range(6):
        assert client.post("/api/v1/auth/token", json={"username": op.username, "password": PASSWORD}
                           ).status_code == 200
    for _ in range(3):
        _login(client, op.username)
        client.post("/logout", headers={"X-CSRFToken": _csrf(client)})
    assert client.post("/api/v1/auth/session", json={"username": op.username, "password": PASSWORD}
                       ).status_code == 200
    # A whole shift from the centre's one address: only failures count against an address.
    shift = [make_staff("field_staff") for _ in range(5)]
    assert [client.post("/api/v1/auth/token", json={"username": s.username, "password": PASSWORD}).status_code
            for s in shift] == [200] * 5


def test_login_form_limit_answers_a_page_with_retry_after(client, db_session, low_limits):
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    codes = [client.post("/login", data={"username": "nobody", "password": "x", "csrf_token": token}).status_code
             for _ in range(4)]
    assert codes == [401, 401, 401, 429]
    res = client.post("/login", data={"username": "nobody", "password": "x", "csrf_token": token},
                      headers={"Accept-Language": "en"})
    assert res.status_code == 429 and int(res.headers["Retry-After"]) > 0
    assert "Too many login attempts" in res.get_data(as_text=True)
    # ...and in the reader's language.
    res = client.post("/login", data={"username": "nobody", "password": "x", "csrf_token": token},
                      headers={"Accept-Language": "kk"})
    assert res.status_code == 429 and "Too many login attempts" not in res.get_data(as_text=True)


def test_login_limit_keys_on_the_proxied_address(client, app, db_session, low_limits, monkeypatch):
    monkeypatch.setitem(app.config, "JAUAP_PROXY_HOPS", 1)

    def attempt(addr: str, user: str) -> int:
        return client.post("/api/v1/auth/token", json={"username": user, "password": "x"},
                           headers={"X-Forwarded-For": addr}).status_code

    assert [attempt("1.1.1.1", f"u{n}") for n in range(4)] == [401, 401, 401, 429]
    assert attempt("2.2.2.2", "u9") == 401  # another client behind the same proxy


def test_appeal_creation_limit_per_account(client, db_session, low_limits):
    op1, op2 = make_staff("operator"), make_staff("operator")
    h1 = bearer(op1)
    assert [client.post("/api/v1/appeals", json=appeal_body(), headers=h1).status_code for _ in range(3)] == [
        201, 201, 429]
    res = client.post("/api/v1/appeals", json=appeal_body(), headers=h1)
    assert res.json["error"]["code"] == "rate_limited" and int(res.headers["Retry-After"]) > 0
    assert client.post("/api/v1/appeals", json=appeal_body(), headers=bearer(op2)).status_code == 201


def test_limiter_refund_and_memory_fallback_when_redis_is_away():
    limits = [Limit(2, 60)]
    rl = RateLimiter("redis://127.0.0.1:1/0", prefix=f"t{uuid.uuid4().hex}")  # nothing listens there
    now = 1_000_000.0
    assert rl.hit("s", "a", limits, now) is None
    rl.refund("s", "a", limits, now)
    assert rl.hit("s", "a", limits, now) is None
    assert rl.hit("s", "a", limits, now) is None
    assert rl.hit("s", "a", limits, now) == 20  # 1_000_020 is the end of the window
    assert rl.hit("s", "a", limits, now + 20) is None  # the next window
    assert rl.peek("s", "b", limits, now) is None
    rl.hit("s", "b", limits, now)
    rl.hit("s", "b", limits, now)
    assert rl.peek("s", "b", limits, now) == 20 and rl.peek("s", "b", limits, now) == 20  # peeking counts nothing


def _redis_or_skip():
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=0.5)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.skip(f"Redis not reachable at {REDIS_URL}: {exc}")
    return client


def test_two_app_instances_share_the_count_in_redis(backend, tmp_path):
    redis_client = _redis_or_skip()
    channel = f"jauap-test-{uuid.uuid4().hex[:10]}"  # keys under <channel>:rl:*
    url = backend.copy("rl")
    settings = {"JAUAP_REDIS_URL": REDIS_URL, "JAUAP_REDIS_CHANNEL": channel, "JAUAP_LOGIN_LIMITS": "3/3600"}
    first, second = make_app(url, tmp_path / "a", **settings), make_app(url, tmp_path / "b", **settings)
    try:
        a, b = first.test_client(), second.test_client()
        wrong = {"username": "nobody-here", "password": "x"}
        assert a.post("/api/v1/auth/token", json=wrong).status_code == 401
        assert a.post("/api/v1/auth/token", json=wrong).status_code == 401
        assert b.post("/api/v1/auth/token", json=wrong).status_code == 401
        assert b.post("/api/v1/auth/token", json=wrong).status_code == 429  # the 4th, counted across both
        assert a.post("/api/v1/auth/token", json=wrong).status_code == 429
        assert redis_client.keys(f"{channel}:rl:*")  # stored in Redis, not in either process
    finally:
        for key in redis_client.scan_iter(f"{channel}:*"):
            redis_client.delete(key)
        for application in (first, second):
            with application.app_context():
                db.session.remove()
                db.engine.dispose()


# --- settings ------------------------------------------------------------------------


def _prod(**overrides) -> Config:
    base = {"env": "production", "secret_key": "s" * 40, "session_cookie_secure": True}
    return Config(**{**base, **overrides})


def test_production_refuses_unsafe_hardening_settings():
    _prod().check_production()
    for overrides, needle in [({"login_limits": ""}, "JAUAP_LOGIN_LIMITS"),
                              ({"login_limits": "ten per minute"}, "JAUAP_LOGIN_LIMITS"),
                              ({"appeal_limits": "0/60"}, "JAUAP_APPEAL_LIMITS"),
                              ({"tile_url": "http://tiles.example.org/{z}/{x}/{y}.png"}, "JAUAP_TILE_URL"),
                              ({"cors_origins": ["http://partner.example"]}, "JAUAP_CORS_ORIGINS"),
                              ({"session_cookie_secure": False}, "JAUAP_SECURE_COOKIES")]:
        with pytest.raises(UnsafeConfigError, match=needle):
            _prod(**overrides).check_production()


def test_tests_are_not_throttled_by_default(tmp_path):
    cfg = TestConfig("sqlite://", str(tmp_path))
    assert min(limit.count for limit in parse_limits(cfg.login_limits)) > 1000
    assert Config().login_limits == "10/60,100/3600" and Config().appeal_limits == "120/60"

"""The field app's shell on the server: manifest and icons, the service worker's headers and build stamp,
a precache list that names only files that exist and are served, a public shell whose data needs a login,
the JSON login that lasts one shift, and the "my work" filter. Plus static checks of the app's sources."""

from __future__ import annotations

import io
import json
import re
from datetime import timedelta
from html.parser import HTMLParser

import pytest
from PIL import Image
from sqlalchemy import select

from server.config import REPO_ROOT
from server.extensions import db
from server.models import ApiToken, Shift
from server.web import field_build_id, field_precache, field_url_path
from tests.conftest import APPEAL, PASSWORD, bearer, make_staff

pytestmark = pytest.mark.usefixtures("db_session")

FIELD = REPO_ROOT / "pwa" / "field"
CATALOGS = {lang: json.loads((REPO_ROOT / "pwa" / "shared" / "i18n" / f"{lang}.json").read_text(encoding="utf-8"))
            for lang in ("kk", "ru", "en")}
JS_TYPES = ("text/javascript", "application/javascript")


def test_manifest_is_valid_json_with_icons_that_exist(client):
    res = client.get("/field/manifest.webmanifest")
    assert res.status_code == 200
    assert res.mimetype == "application/manifest+json"
    manifest = json.loads(res.data)
    assert manifest["start_url"] == "/field/" and manifest["scope"] == "/field/"
    assert manifest["display"] == "standalone" and manifest["name"] and manifest["short_name"]
    purposes = set()
    for icon in manifest["icons"]:
        got = client.get(icon["src"])
        assert got.status_code == 200 and got.mimetype == "image/png", icon["src"]
        width, height = (int(v) for v in icon["sizes"].split("x"))
        assert Image.open(io.BytesIO(got.data)).size == (width, height), icon["src"]
        purposes |= set(icon.get("purpose", "any").split())
    sizes = {icon["sizes"] for icon in manifest["icons"]}
    assert {"192x192", "512x512"} <= sizes and {"any", "maskable"} <= purposes


def test_service_worker_is_javascript_scoped_to_field_and_never_cached(client):
    res = client.get("/field/sw.js")
    assert res.status_code == 200
    assert res.mimetype in JS_TYPES
    assert res.headers["Service-Worker-Allowed"] == "/field/"
    assert "no-cache" in res.headers["Cache-Control"]
    body = res.get_data(as_text=True)
    # Stamped with the fingerprint of the precached files: a changed file is a new worker and a new cache.
    assert f'const BUILD = "{field_build_id()}";' in body
    assert 'const BUILD = "dev";' not in body
    assert re.fullmatch(r"[0-9a-f]{16}", field_build_id())


def test_the_build_fingerprint_follows_the_content_of_precached_files(monkeypatch, tmp_path):
    before = field_build_id()
    fake = tmp_path / "app.css"
    fake.write_text("/* changed */")
    real = field_url_path

    def patched(url):
        return fake if url == "/static/css/app.css" else real(url)

    monkeypatch.setattr("server.web.field_url_path", patched)
    assert field_build_id() != before


def test_precache_names_only_files_that_exist_and_are_served(client):
    urls = field_precache()
    assert len(urls) == len(set(urls))
    for url in urls:
        path = field_url_path(url)
        assert path is not None and path.is_file(), url
        res = client.get(url)
        assert res.status_code == 200, url
        if url.endswith(".js"):
            assert res.mimetype in JS_TYPES, url
        if url.endswith(".json"):
            json.loads(res.data)


def test_precache_holds_every_module_the_app_and_worker_import():
    urls = set(field_precache())
    assert {"/field/", "/field/manifest.webmanifest", "/vendor/leaflet/leaflet.js",
            "/vendor/socket.io/socket.io.min.js", "/static/i18n/kk.json", "/static/i18n/ru.json",
            "/static/i18n/en.json"} <= urls
    for js in sorted(FIELD.joinpath("js").glob("*.js")):
        assert f"/field/js/{js.name}" in urls, js.name
    # Every import (relative or absolute) of the field modules and of the shared modules they use.
    todo = [(FIELD / "sw.js", "/field/sw.js"), *((p, f"/field/js/{p.name}") for p in FIELD.joinpath("js").glob("*.js"))]
    seen = set()
    while todo:
        path, url = todo.pop()
        if url in seen:
            continue
        seen.add(url)
        for target in re.findall(r'^\s*import\s[^;]*?from\s+"([^"]+)"', path.read_text(encoding="utf-8"), re.M):
            absolute = target if target.startswith("/") else url.rsplit("/", 1)[0] + "/" + target.removeprefix("./")
            assert absolute in urls, f"{url} imports {absolute}, which is not precached"
            todo.append((field_url_path(absolute), absolute))
    # The page's own links and scripts are precached too.
    html = (FIELD / "index.html").read_text(encoding="utf-8")
    for ref in re.findall(r'(?:href|src)="(/[^"]+)"', html):
        assert ref in urls, ref


def test_the_shell_is_public_but_its_data_needs_a_login(client):
    page = client.get("/field/")
    assert page.status_code == 200 and page.mimetype == "text/html"
    assert b'rel="manifest"' in page.data
    for url in ("/field/js/app.js", "/field/field.css", "/field/icons/icon-192.png"):
        assert client.get(url).status_code == 200, url
    for url in ("/api/v1/appeals?assignee=me", "/api/v1/auth/me", "/api/v1/events?after=0"):
        res = client.get(url)
        assert res.status_code == 401 and res.json["error"]["code"] == "unauthorized", url
    assert client.get("/field/../server/config.py").status_code == 404
    assert b'href="/field/"' in client.get("/").data  # linked from the start page


def _login(client, username, password=PASSWORD):
    return client.post("/api/v1/auth/session", json={"username": username, "password": password})


def test_field_login_lasts_one_shift_and_logout_ends_it(client):
    staff = make_staff("field_staff", unit="U2", username="field-shift")
    shift = db.session.get(Shift, "A")
    shift.hours = 8
    staff.shift_code = "A"
    db.session.commit()
    res = _login(client, "field-shift")
    assert res.status_code == 200
    assert res.json["id"] == staff.id and res.json["role"] == "field_staff" and res.json["unit"] == "U2"
    assert res.json["on_duty"] is False
    row = db.session.scalars(select(ApiToken).where(ApiToken.staff_id == staff.id)).one()
    assert row.expires_at - row.created_at == timedelta(hours=8)
    cookie = res.headers["Set-Cookie"]
    assert "Expires=" in cookie and "HttpOnly" in cookie  # survives closing the app; the token ends it
    assert client.get("/api/v1/auth/me").json["username"] == "field-shift"
    # Writes with the cookie need the CSRF token, the logout too.
    assert client.delete("/api/v1/auth/session").status_code == 400
    token = client.get("/api/v1/auth/csrf").json["csrf_token"]
    assert client.delete("/api/v1/auth/session", headers={"X-CSRFToken": token}).status_code == 204
    assert db.session.scalars(select(ApiToken).where(ApiToken.staff_id == staff.id)).one().revoked_at is not None
    assert client.get("/api/v1/auth/me").status_code == 401


def test_field_login_without_a_shift_lasts_the_default_and_refuses_bad_input(client):
    make_staff("field_staff", username="field-noshift")
    assert _login(client, "field-noshift", "wrong-password").status_code == 401
    assert _login(client, "nobody").json["error"]["code"] == "bad_credentials"
    # A form post (what a cross-site page could send) is not read: JSON only.
    form = client.post("/api/v1/auth/session", data={"username": "field-noshift", "password": PASSWORD})
    assert form.status_code in (400, 415) and client.get("/api/v1/auth/me").status_code == 401
    res = _login(client, "field-noshift")
    assert res.status_code == 200
    row = db.session.scalars(select(ApiToken).where(ApiToken.staff_id == res.json["id"])).one()
    assert row.expires_at - row.created_at == timedelta(hours=12)


def test_my_work_lists_only_my_own_assignments(client):
    from server.models import Appeal

    operator = make_staff("operator")
    ids = [client.post("/api/v1/appeals", json=APPEAL, headers=bearer(operator)).json["id"] for _ in range(3)]
    appeals = [db.session.get(Appeal, i) for i in ids]
    unit = appeals[0].unit.code
    me = make_staff("field_staff", unit=unit, username="field-me")
    other = make_staff("field_staff", unit=unit, username="field-other")
    appeals[0].assignee_id, appeals[1].assignee_id, appeals[2].assignee_id = me.id, other.id, None
    db.session.commit()
    mine = client.get("/api/v1/appeals?assignee=me", headers=bearer(me)).json
    assert [a["id"] for a in mine["items"]] == [ids[0]]
    assert mine["items"][0]["assigned_to_me"] is True
    assert [client.get(f"/api/v1/appeals/{i}", headers=bearer(me)).json["assigned_to_me"] for i in ids] == [
        True, False, False]
    theirs = client.get("/api/v1/appeals?assignee=me", headers=bearer(other)).json
    assert [a["id"] for a in theirs["items"]] == [ids[1]]
    bad = client.get("/api/v1/appeals?assignee=someone", headers=bearer(me))
    assert bad.status_code == 400 and bad.json["error"]["fields"][0]["field"] == "assignee"


class _Inline(HTMLParser):
    def __init__(self):
        super().__init__()
        self.problems: list[str] = []

    def handle_starttag(self, tag, attrs):
        names = dict(attrs)
        if tag == "script" and "src" not in names:
            self.problems.append("inline <script>")
        for key in ("src", "href"):
            if names.get(key, "").startswith(("http:", "https:", "//")):
                self.problems.append(f"remote {names[key]}")
        self.problems += [f"inline handler {k} on <{tag}>" for k in names if k.startswith("on")]
        if "style" in names:
            self.problems.append(f"inline style on <{tag}>")


def test_the_page_has_no_inline_script_handlers_styles_or_cdn():
    parser = _Inline()
    parser.feed((FIELD / "index.html").read_text(encoding="utf-8"))
    assert parser.problems == []


def _field_keys() -> set[str]:
    keys: set[str] = set()
    html = (FIELD / "index.html").read_text(encoding="utf-8")
    keys |= set(re.findall(r'data-i18n="([^"]+)"', html))
    for attr in re.findall(r'data-i18n-attr="([^"]+)"', html):
        keys |= {pair.split(":", 1)[1].strip() for pair in attr.split(";")}
    for path in FIELD.joinpath("js").glob("*.js"):
        text = path.read_text(encoding="utf-8")
        keys |= set(re.findall(r'\bt\(\s*"([a-z_]+\.[a-z_.]+)"', text))
    keys |= {f"field.step.{a}" for a in ("accept", "decline", "depart", "arrive", "resolve", "cannot_resolve")}
    keys |= {f"field.reason.{r}" for r in ("competence", "materials", "no_access", "other")}
    keys |= {f"field.{p}_{k}" for p in ("photo", "take") for k in ("before", "after")}
    return keys


def test_every_key_the_field_app_uses_is_translated_in_kk_ru_and_en():
    keys = _field_keys()
    assert len(keys) > 80
    for lang, catalog in CATALOGS.items():
        missing = sorted(k for k in keys if not catalog.get(k, "").strip())
        assert missing == [], lang
    field = [k for k in CATALOGS["en"] if k.startswith("field.")]
    assert sum(CATALOGS["kk"][k] != CATALOGS["ru"][k] for k in field) > 0.9 * len(field)


def test_scripts_put_text_not_html_into_the_page():
    for path in [*FIELD.joinpath("js").glob("*.js"), FIELD / "sw.js"]:
        text = path.read_text(encoding="utf-8")
        assert "innerHTML" not in text and "insertAdjacentHTML" not in text, path.name
        assert "console.log" not in text, path.name
        assert text.startswith("//"), f"{path.name}: a header comment says what the module is for"

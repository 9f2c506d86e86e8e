"""The field app in a real browser (Debian Chromium, a phone-sized 390x844 viewport, emulated position).

The main story: a field worker logs in, accepts their assignment, loses the signal, marks "on site",
takes a "before" and an "after" photo and resolves — all kept on the phone; a reload with no signal still
opens the app from its service worker with the queue intact; when the signal returns the queue is sent in
order, the server holds exactly one resolution with both photos (their EXIF carried over), and an open
dispatcher map shows the change without a reload.

Also: the geofence reason, decline and "cannot resolve" reasons, a 409 kept as "needs attention" (in three
languages), the outbox's replay rules against a stand-in network, Web Push (subscription tied to the login,
the worker's notifications), Background Sync with the app closed, and every screen on a phone in kk/ru/en.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import pytest
from PIL import ExifTags, Image
from sqlalchemy import func, select

from server.config import REPO_ROOT
from server.extensions import db
from tests.browser.conftest import Console
from tests.conftest import APPEAL, PASSWORD
from tests.realtime_server import sector_points

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}
CATALOGS = {lang: json.loads((REPO_ROOT / "pwa" / "shared" / "i18n" / f"{lang}.json").read_text(encoding="utf-8"))
            for lang in ("kk", "ru", "en")}
# Expected while the network is cut: the browser logs failed loads (the live socket, the API) as errors.
OFFLINE_NOISE = (r"ERR_INTERNET_DISCONNECTED", r"ERR_NETWORK_CHANGED", r"WebSocket connection", r"socket\.io",
                 r"Failed to load resource")


def dms(value: float) -> tuple[float, float, float]:
    deg = int(value)
    minutes = int((value - deg) * 60)
    return (deg, minutes, round((value - deg - minutes / 60) * 3600, 4))


def camera_jpeg(path, colour, lat: float, lon: float, taken: datetime):
    """A 'camera' JPEG: 240x120 pixels stored sideways (EXIF Orientation 6) with GPS and the time taken."""
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6
    exif[ExifTags.Base.Make] = "JauapTest"
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = dms(lat)
    gps[ExifTags.GPS.GPSLongitudeRef] = "E"
    gps[ExifTags.GPS.GPSLongitude] = dms(lon)
    exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.DateTimeOriginal] = taken.strftime("%Y:%m:%d %H:%M:%S")
    Image.new("RGB", (240, 120), colour).save(path, "JPEG", quality=90, exif=exif)
    return str(path)


@pytest.fixture
def phone(browser, live):
    """``phone(lat, lon)`` -> (context, page, console): a phone-sized context with the position allowed."""
    contexts = []

    def make(lat: float, lon: float):
        context = browser.new_context(viewport=PHONE, locale="en-US", permissions=["geolocation"],
                                      geolocation={"latitude": lat, "longitude": lon, "accuracy": 8},
                                      service_workers="allow")
        context.set_default_timeout(10_000)
        contexts.append(context)
        page = context.new_page()
        return context, page, Console(page)

    yield make
    for context in contexts:
        context.close()


def field_login(page, url: str, username: str):
    page.goto(f"{url}/field/")
    page.wait_for_selector("[data-view=login]:not([hidden])")
    page.fill("#login-username", username)
    page.fill("#login-password", PASSWORD)
    page.click("[data-js=login-form] button[type=submit]")
    page.wait_for_selector("[data-js=app]:not([hidden])")
    # The service worker controls the page once activated (clients.claim): from then on it can open offline.
    page.wait_for_function("() => navigator.serviceWorker.controller !== null", timeout=15_000)


def worker_event(context, via, origin: str, method: str, **params):
    """Send a CDP ServiceWorker command (a push, a Background Sync) to the /field/ worker, through page ``via``."""
    cdp = context.new_cdp_session(via)
    registrations = []
    cdp.on("ServiceWorker.workerRegistrationUpdated", lambda ev: registrations.extend(ev["registrations"]))
    cdp.send("ServiceWorker.enable")
    for _ in range(50):  # CDP events arrive while Playwright is called: wait inside the page
        if registrations:
            break
        via.wait_for_timeout(100)
    scope = next(r for r in registrations if r["scopeURL"].endswith("/field/"))
    cdp.send(method, {"origin": origin, "registrationId": scope["registrationId"], **params})
    cdp.detach()


def field_steps(page) -> list[str]:
    return page.eval_on_selector_all("[data-js=steps] [data-action]", "els => els.map(e => e.dataset.action)")


def wait_status(page, status: str):
    page.wait_for_selector(f"[data-js=detail][data-status={status}]")


def eventually(check, timeout=10.0):
    """Poll ``check()`` until it returns a truthy value (the phone sends in the background)."""
    end = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > end:
            return value
        time.sleep(0.1)


def test_offline_resolution_with_photos_reaches_the_server_once_and_the_dispatcher_live(
        live, crew, api, open_page, phone, committed_app, tmp_path):
    from server.models import Appeal, AppealEvent, Attachment

    lon, lat = sector_points(committed_app)["S1"]
    worker = f"f{crew['S1'][1:]}"
    worker_auth = api.token(worker)
    assert api.post("/api/v1/me/duty", json={"on_duty": True}, headers=worker_auth).status_code == 200
    appeal = api.post("/api/v1/appeals", json={**APPEAL, "lat": lat, "lon": lon}, headers=api.token("op")).json
    disp_auth = api.token("disp")

    def server_appeal():
        return api.get(f"/api/v1/appeals/{appeal['id']}", headers=disp_auth).json

    assert server_appeal()["status"] == "assigned"

    dispatcher, dispatcher_console = open_page("disp", "/dispatch/")
    dispatcher.wait_for_selector("[data-js=conn][data-state=online]")
    dispatcher.evaluate("window.__sameDocument = true")

    context, page, console = phone(lat, lon)
    field_login(page, live.url, worker)
    item = page.locator(f'[data-js=work-list] li[data-appeal-id="{appeal["id"]}"]')
    item.wait_for()
    assert appeal["reg_no"] in item.text_content()
    # A phone screen: nothing wider than the viewport.
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]

    # Accept while online: sent at once.
    item.locator("button").click()
    page.wait_for_selector(f'[data-js=detail-reg]:has-text("{appeal["reg_no"]}")')
    assert field_steps(page) == ["accept", "decline"]
    assert page.locator("[data-js=citizen]").text_content().startswith(APPEAL["citizen"]["name"])  # my assignment
    assert page.get_attribute("[data-js=navigate]", "href") == f"geo:{lat},{lon}"
    page.click("[data-action=accept]")
    wait_status(page, "accepted")
    assert eventually(lambda: server_appeal()["status"] == "accepted")
    page.wait_for_selector("[data-js=queue-banner]", state="hidden")

    # No signal: on site, two photos, resolved — all kept on the phone, shown at once.
    context.set_offline(True)
    page.wait_for_function("() => navigator.onLine === false")
    page.click("[data-action=arrive]")
    wait_status(page, "on_site")
    taken = datetime(2026, 11, 24, 9, 30, tzinfo=UTC)
    before = camera_jpeg(tmp_path / "before.jpg", (200, 60, 40), lat, lon, taken)
    after = camera_jpeg(tmp_path / "after.jpg", (40, 160, 60), lat, lon, taken)
    assert page.locator("[data-action=resolve]").is_disabled()  # no "after" photo yet
    page.set_input_files("[data-js=photo-before]", before)
    page.wait_for_selector("[data-js=photos] [data-kind=before][data-state=queued]")
    page.set_input_files("[data-js=photo-after]", after)
    page.wait_for_selector("[data-js=photos] [data-kind=after][data-state=queued]")
    page.click("[data-action=resolve]")
    wait_status(page, "resolved")
    page.wait_for_selector("[data-js=queue-banner][data-count='4']")
    assert "4" in page.text_content("[data-js=queue-text]")
    assert server_appeal()["status"] == "accepted"  # nothing has left the phone

    # Reload with no signal: the shell comes from the service worker, the queue is still there, in order.
    page.reload()
    page.wait_for_selector("[data-js=app]:not([hidden])")
    page.wait_for_selector("[data-js=queue-banner][data-count='4']")
    page.click("[data-tab=outbox]")
    page.wait_for_selector("[data-js=queued-list]")
    assert page.locator("[data-js=queued-list] li").count() == 4
    labels = page.locator("[data-js=queued-list] li .queue-what").all_text_contents()
    en = CATALOGS["en"]
    assert [x.split(" · ", 1)[1] for x in labels] == [en["field.step.arrive"], en["field.photo_before"],
                                                     en["field.photo_after"], en["field.step.resolve"]]
    assert server_appeal()["status"] == "accepted"

    # Signal back: everything is sent, in order, once.
    context.set_offline(False)
    page.wait_for_selector("[data-js=queue-banner]", state="hidden", timeout=20_000)
    final = server_appeal()
    assert final["status"] == "resolved"
    kinds = [e["kind"] for e in final["history"]]
    assert kinds.count("appeal.resolved") == 1 and kinds.count("appeal.on_site") == 1
    assert kinds.index("appeal.on_site") < kinds.index("appeal.resolved")
    photos = {p["kind"]: p for p in final["photos"]}
    assert sorted(photos) == ["after", "before"] and len(final["photos"]) == 2
    # Compressed on the phone, upright, and the camera's EXIF (GPS, time) carried over for the server.
    assert (photos["before"]["width"], photos["before"]["height"]) == (120, 240)
    assert photos["before"]["exif"]["lat"] == pytest.approx(lat, abs=1e-4)
    assert photos["before"]["exif"]["lon"] == pytest.approx(lon, abs=1e-4)
    assert photos["before"]["exif"]["distance_m"] < 20
    with committed_app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Attachment)
                                 .where(Attachment.appeal_id == appeal["id"])) == 2
        resolved = db.session.scalars(select(AppealEvent).where(AppealEvent.appeal_id == appeal["id"],
                                                                AppealEvent.kind == "appeal.resolved")).all()
        assert len(resolved) == 1
        data = resolved[0].data
        assert data["position"]["lat"] == pytest.approx(lat, abs=1e-6)
        assert db.session.get(Appeal, appeal["id"]).status == "resolved"
        db.session.remove()

    # The dispatcher's open map got it live, without a reload.
    dispatcher.wait_for_selector(f'[data-js=feed] li[data-reg-no="{appeal["reg_no"]}"]:has-text("Resolved")')
    assert dispatcher.evaluate("window.__sameDocument") is True

    # The app shows the sent photos from the server, and the work list is empty.
    page.goto(f"{live.url}/field/#/appeal/{appeal['id']}")
    page.wait_for_selector("[data-js=photos] [data-state=sent] img")
    page.click("[data-tab=work]")
    page.wait_for_selector("[data-js=work-empty]")
    assert dispatcher_console.errors == []
    assert console.unexpected(*OFFLINE_NOISE) == [], "\n".join(console.errors)


def test_geofence_reason_decline_and_an_appeal_taken_away_need_attention(live, crew, api, phone, committed_app):
    lon, lat = sector_points(committed_app)["S2"]
    worker = f"f{crew['S2'][1:]}"
    worker_auth = api.token(worker)
    api.post("/api/v1/me/duty", json={"on_duty": True}, headers=worker_auth)
    op = api.token("op")
    first = api.post("/api/v1/appeals", json={**APPEAL, "lat": lat, "lon": lon}, headers=op).json
    second = api.post("/api/v1/appeals", json={**APPEAL, "lat": lat, "lon": lon + 0.001}, headers=op).json
    third = api.post("/api/v1/appeals", json={**APPEAL, "lat": lat + 0.001, "lon": lon}, headers=op).json
    disp_auth = api.token("disp")

    def read(appeal):
        return api.get(f"/api/v1/appeals/{appeal['id']}", headers=disp_auth).json

    # The phone is 2 km away from the appeals.
    context, page, console = phone(lat + 0.018, lon)
    field_login(page, live.url, worker)
    for a in (first, second, third):
        page.wait_for_selector(f'[data-js=work-list] li[data-appeal-id="{a["id"]}"]')
    # Sorted by deadline, then id.
    due = {a["id"]: a["due_at"] for a in (first, second, third)}
    ids = page.eval_on_selector_all("[data-js=work-list] li", "els => els.map(e => Number(e.dataset.appealId))")
    assert ids == sorted(due, key=lambda i: (due[i], i))

    # Accept, then "on site" from 2 km away: the app asks for a reason first; the server flags the step.
    page.goto(f"{live.url}/field/#/appeal/{first['id']}")
    page.click("[data-action=accept]")
    wait_status(page, "accepted")
    page.click("[data-action=arrive]")
    page.wait_for_selector("[data-js=reason-dialog][open]")
    assert "m" in page.text_content("[data-js=reason-message]")
    page.click("[data-js=reason-ok]")  # empty: refused in the dialog
    assert page.text_content("[data-js=reason-error]").strip()
    page.fill("[data-js=reason-text]", "The road is closed; I looked from the bridge.")
    page.click("[data-js=reason-ok]")
    wait_status(page, "on_site")
    assert eventually(lambda: read(first)["status"] == "on_site")
    assert read(first)["flagged"] is True

    # "Cannot resolve" with a reason from the list.
    page.click("[data-action=cannot_resolve]")
    page.select_option("[data-js=reason-choice]", "no_access")
    page.fill("[data-js=reason-text]", "Gate locked")
    page.click("[data-js=reason-ok]")
    refused = eventually(lambda: [e for e in read(first)["history"] if e["kind"] == "appeal.cannot_resolve"])
    assert [e["data"]["reason"] for e in refused] == [f"{CATALOGS['en']['field.reason.no_access']} — Gate locked"]

    # Decline the second with a reason.
    page.goto(f"{live.url}/field/#/appeal/{second['id']}")
    page.click("[data-action=decline]")
    page.fill("[data-js=reason-text]", "My car broke down.")
    page.click("[data-js=reason-ok]")
    assert eventually(lambda: any(e["kind"] == "appeal.declined" for e in read(second)["history"]))

    # Accept the third, then "on my way" with no signal while the dispatcher moves it to another unit:
    # the server answers 409 appeal_changed, the item needs attention with a clear message, data kept.
    page.goto(f"{live.url}/field/#/appeal/{third['id']}")
    page.click("[data-action=accept]")
    wait_status(page, "accepted")
    assert eventually(lambda: read(third)["status"] == "accepted")
    context.set_offline(True)
    page.wait_for_function("() => navigator.onLine === false")
    page.click("[data-action=depart]")
    wait_status(page, "en_route")
    assert api.post(f"/api/v1/appeals/{third['id']}/reassign", json={"unit": crew["S3"], "reason": "Closer"},
                    headers=disp_auth).status_code == 200
    context.set_offline(False)
    page.wait_for_selector("[data-js=queue-banner][data-attention='1']", timeout=20_000)
    page.click("[data-tab=outbox]")
    row = page.locator("[data-js=attention-list] li").first
    assert row.get_attribute("data-code") == "appeal_changed"
    message = row.locator("[data-js=attention-message]").text_content()
    assert message.startswith(CATALOGS["en"]["field.err_reassigned"].split(" (")[0])

    # In Russian and Kazakh too; then discard it explicitly.
    for lang in ("ru", "kk"):
        page.click(f"[data-js=lang-switch] [data-lang={lang}]")
        page.wait_for_selector(f"html[lang={lang}]")
        text = page.locator("[data-js=attention-list] li [data-js=attention-message]").first.text_content()
        assert text.startswith(CATALOGS[lang]["field.err_reassigned"].split(" (")[0]), (lang, text)
        assert page.text_content("[data-tab=outbox]").strip().startswith(CATALOGS[lang]["field.tab_outbox"])
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    page.click("[data-js=attention-list] [data-js=discard]")
    page.click("[data-js=confirm-yes]")
    page.wait_for_selector("[data-js=queue-banner]", state="hidden")
    assert console.unexpected(*OFFLINE_NOISE, r"409") == [], "\n".join(console.errors)


# Headless Chromium contexts are incognito, where Chrome has no Push API: the page's PushManager is replaced
# by a stand-in that returns a real-looking subscription (a valid P-256 key), so the app's own code runs.
FAKE_PUSH = """
(() => {
  const sub = {
    endpoint: %(endpoint)s,
    options: { applicationServerKey: null },
    toJSON() { return { endpoint: this.endpoint, expirationTime: null, keys: %(keys)s }; },
    async unsubscribe() { localStorage.setItem("fakePush", "unsubscribed"); return true; },
  };
  // Like a real subscription, it outlives the page (kept in localStorage).
  PushManager.prototype.subscribe = async function (opts) {
    localStorage.setItem("fakePush", "subscribed");
    return sub;
  };
  PushManager.prototype.getSubscription = async function () {
    return localStorage.getItem("fakePush") === "subscribed" ? sub : null;
  };
})();
"""


def b64url(raw: bytes) -> str:
    import base64

    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def test_web_push_subscription_follows_the_login_and_the_worker_shows_pushes(live, crew, api, phone,
                                                                             committed_app):
    import secrets

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from server.models import PushSubscription

    lon, lat = sector_points(committed_app)["S4"]
    worker = f"f{crew['S4'][1:]}"
    point = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    endpoint = f"https://fcm.googleapis.com/fcm/send/jauap-test-{secrets.token_hex(8)}"
    keys = {"p256dh": b64url(point), "auth": b64url(secrets.token_bytes(16))}

    def subscriptions() -> list[str]:
        with committed_app.app_context():
            rows = db.session.scalars(select(PushSubscription.endpoint)).all()
            db.session.remove()
        return list(rows)

    context, page, console = phone(lat, lon)
    context.grant_permissions(["geolocation", "notifications"])
    context.add_init_script(FAKE_PUSH % {"endpoint": json.dumps(endpoint), "keys": json.dumps(keys)})
    field_login(page, live.url, worker)
    assert eventually(lambda: subscriptions() == [endpoint])
    assert page.evaluate("localStorage.getItem('fakePush')") == "subscribed"

    # A push while the app has the focus: no notification, the app itself tells (and refreshes).
    def deliver(via, data: dict):
        worker_event(context, via, live.url, "ServiceWorker.deliverPushMessage", data=json.dumps(data))

    notes = ("navigator.serviceWorker.ready.then(r => r.getNotifications())"
             ".then(ns => ns.map(n => [n.title, n.body, n.data.url]))")
    deliver(page, {"kind": "appeal.assigned", "appeal_id": 77, "reg_no": "TRK-2026-000077",
                   "url": "/field/#/appeal/77"})
    page.wait_for_selector('[data-js=toast]:has-text("TRK-2026-000077")')
    assert page.evaluate(notes) == []

    # With the app closed, the service worker shows a notification in the user's language.
    page.click("[data-js=lang-switch] [data-lang=ru]")
    page.wait_for_selector("html[lang=ru]")
    other = context.new_page()
    other.goto(f"{live.url}/")
    page.close()
    deliver(other, {"kind": "sla.warning", "appeal_id": 78, "reg_no": "TRK-2026-000078",
                    "url": "https://evil.example/phish"})
    page = context.new_page()
    page.goto(f"{live.url}/field/")
    page.wait_for_selector("[data-js=app]:not([hidden])")
    # The payload's url is not followed off the app: the notification opens the app's start page.
    assert page.evaluate(notes) == [["Срок скоро истекает", "Обращение TRK-2026-000078", "/field/"]]

    # Logging out removes this device's subscription, on the server and in the browser.
    sent = []
    page.on("request", lambda r: sent.append((r.method, r.url.split("?")[0].removeprefix(live.url))))
    page.click("[data-js=field-logout]")
    page.wait_for_selector("[data-view=login]:not([hidden])")
    assert eventually(lambda: subscriptions() == [])
    assert page.evaluate("localStorage.getItem('fakePush')") == "unsubscribed"
    assert ("DELETE", "/api/v1/push/subscriptions") in sent and ("DELETE", "/api/v1/auth/session") in sent
    assert console.errors == [], "\n".join(console.errors)


def test_every_screen_fits_a_phone_in_kazakh_russian_and_english(live, crew, api, phone, committed_app):
    lon, lat = sector_points(committed_app)["S5"]
    worker = f"f{crew['S5'][1:]}"
    api.post("/api/v1/me/duty", json={"on_duty": True}, headers=api.token(worker))
    appeal = api.post("/api/v1/appeals", json={**APPEAL, "lat": lat, "lon": lon}, headers=api.token("op")).json
    context, page, console = phone(lat, lon)
    context.add_init_script("navigator.vibrate = (p) => { (window.__buzz ||= []).push(p); return true; };")
    field_login(page, live.url, worker)
    page.wait_for_selector(f'[data-js=work-list] li[data-appeal-id="{appeal["id"]}"]')
    assert page.is_checked("[data-js=duty]")  # the server's duty state

    # On duty, the phone reports its position; the dispatcher sees it.
    disp = api.token("disp")

    def reported():
        return [p for p in api.get("/api/v1/staff/positions", headers=disp).json if p["name"] == worker]

    assert eventually(reported)
    assert reported()[0]["lat"] == pytest.approx(lat, abs=1e-6)

    # A new assignment arrives live: listed at once, with a buzz.
    page.wait_for_selector("[data-js=conn][data-state=online]")
    second = api.post("/api/v1/appeals", json={**APPEAL, "lat": lat, "lon": lon + 0.0005},
                      headers=api.token("op")).json
    page.wait_for_selector(f'[data-js=work-list] li[data-appeal-id="{second["id"]}"]')
    assert page.evaluate("window.__buzz") == [[200, 100, 200]]
    page.wait_for_selector(f'[data-js=toast]:has-text("{second["reg_no"]}")')

    # The map: my appeals and my position.
    page.click("[data-tab=map]")
    page.wait_for_selector(f"path.appeal-marker.appeal-{second['id']}")
    assert page.locator("path.appeal-marker").count() == 2
    page.wait_for_selector("path.me-marker")
    page.click("[data-tab=work]")

    # Off duty and back on, through the server.
    def on_duty() -> bool:
        return next(s for s in api.get("/api/v1/staff", headers=disp).json if s["username"] == worker)["on_duty"]

    page.click("[data-js=duty]")
    assert eventually(lambda: not on_duty())
    page.click("[data-js=duty]")
    assert eventually(on_duty)

    # Something waiting for more than a day: the banner warns.
    context.set_offline(True)
    page.wait_for_function("() => navigator.onLine === false")
    page.goto(f"{live.url}/field/#/appeal/{appeal['id']}")
    page.click("[data-action=accept]")
    page.wait_for_selector("[data-js=queue-banner][data-count='1'][data-old=false]")
    page.evaluate("""async () => {
      const store = await import('/field/js/store.js');
      for (const item of await store.outboxAll()) {
        item.created_at -= 25 * 3600 * 1000;
        await store.outboxPut(item);
      }
      new BroadcastChannel('jauap-outbox').postMessage({ type: 'outbox-changed' });
    }""")
    page.wait_for_selector("[data-js=queue-banner][data-old=true]")

    screens = {"work": "#/work", "map": "#/map", "appeal": f"#/appeal/{appeal['id']}", "outbox": "#/outbox"}
    for lang in ("kk", "ru", "en"):
        cat = CATALOGS[lang]
        page.click(f"[data-js=lang-switch] [data-lang={lang}]")
        page.wait_for_selector(f"html[lang={lang}]")
        page.wait_for_selector(f'[data-js=queue-text]:has-text("{cat["field.queue_old"]}")')
        for name, hash_ in screens.items():
            page.evaluate("h => { window.location.hash = h; }", hash_)
            page.wait_for_selector(f"[data-view={name}]:not([hidden])")
            page.wait_for_timeout(100)
            body = page.inner_text("body")
            assert "field." not in body, (lang, name)  # no untranslated key on screen
            assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], (lang, name)
            assert cat["field.tab_work"] in body and cat["field.tab_outbox"] in body, (lang, name)
        assert page.text_content("[data-js=detail] [data-action=depart]") == cat["field.step.depart"]
    context.set_offline(False)
    page.wait_for_selector("[data-js=queue-banner]", state="hidden", timeout=20_000)

    # The login screen, in each language, on the phone.
    page.click("[data-js=field-logout]")
    page.wait_for_selector("[data-view=login]:not([hidden])")
    for lang in ("kk", "ru", "en"):
        page.click(f"[data-js=lang-switch] [data-lang={lang}]")
        page.wait_for_selector(f"html[lang={lang}]")
        assert page.text_content("#login-title") == CATALOGS[lang]["field.login_title"]
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    assert console.unexpected(*OFFLINE_NOISE) == [], "\n".join(console.errors)


OUTBOX_RULES = """
async () => {
  const store = await import('/field/js/store.js');
  const ob = await import('/field/js/outbox.js');
  await store.kvSet('me', { id: 999 });
  const calls = [];
  let script = [];
  window.fetch = async (url, opts = {}) => {
    const path = String(url).split('?')[0];
    const json = (status, body) => new Response(JSON.stringify(body), { status,
      headers: { 'Content-Type': 'application/json' } });
    if (path.endsWith('/auth/csrf')) return json(200, { csrf_token: 'tok' });
    const what = opts.body instanceof FormData ? 'photo:' + opts.body.get('kind') : JSON.parse(opts.body).action;
    calls.push([path, what, opts.headers['Idempotency-Key'], opts.headers['X-CSRFToken']]);
    const next = script.shift();
    if (next === 'offline') throw new TypeError('Failed to fetch');
    return json(next[0], next[1]);
  };
  const A = { id: 1, reg_no: 'A-1' };
  const B = { id: 2, reg_no: 'B-2' };
  const step = (appeal, action, staffId = 999) => ob.enqueueStep({ staffId, appeal, action, deviceTime: 'T' });
  await step(A, 'arrive');
  await ob.enqueuePhoto({ staffId: 999, appeal: A, kind: 'after', blob: new Blob(['jpeg']), sha256: 'ab',
                          width: 1, height: 1, deviceTime: 'T' });
  await step(A, 'resolve');
  await step(B, 'accept');
  await step(B, 'accept', 5); // another person's item: never sent in this login
  const state = async () => (await store.outboxAll()).map((i) => [
    i.reg_no, i.type === 'photo' ? 'photo' : i.body.action, i.state, i.error ? i.error.code : null]);
  const out = {};
  script = ['offline'];
  out.offline = [await ob.replay(), await state(), calls.length];
  script = [[503, { error: { code: 'service_unavailable', message: 'busy' } }]];
  out.server = [await ob.replay(), await state(), calls.length];
  script = [[401, { error: { code: 'unauthorized', message: 'login' } }]];
  out.auth = [await ob.replay(), await state(), calls.length];
  let release;
  const held = new Promise((r) => { release = r; });
  navigator.locks.request('jauap-outbox', () => held);
  out.busy = [await ob.replay(), calls.length];
  release();
  await held;
  script = [[200, { id: 1, status: 'on_site' }],
            [409, { error: { code: 'appeal_changed', message: 'changed',
                             detail: { status: 'routed', assigned_to_you: false } } }],
            [200, { id: 2, status: 'accepted' }]];
  const before = calls.length;
  out.mixed = [await ob.replay(), await state(), calls.slice(before).map((c) => c[1])];
  const photo = (await store.outboxAll()).find((i) => i.type === 'photo');
  const oldKey = photo.id;
  await ob.requeue(photo.seq);
  script = [[201, { id: 'p1', kind: 'after' }], [200, { id: 1, status: 'resolved' }]];
  out.retried = [await ob.replay(), await state(), calls.slice(-2).map((c) => c[1]), calls.slice(-2)[0][2] !== oldKey];
  out.keys = calls.map((c) => c[2]);
  out.csrf = [...new Set(calls.map((c) => c[3]))];
  return out;
}
"""


def test_outbox_replays_in_order_and_keeps_what_the_server_refused(browser, live):
    # No service worker here: the page's own replay is tested with a stand-in network.
    context = browser.new_context(viewport=PHONE, service_workers="block")
    try:
        page = context.new_page()
        page.goto(f"{live.url}/field/")
        page.wait_for_selector("[data-view=login]:not([hidden])")
        out = page.evaluate(OUTBOX_RULES)
    finally:
        context.close()
    everything = [["A-1", "arrive", "queued", None], ["A-1", "photo", "queued", None],
                  ["A-1", "resolve", "queued", None], ["B-2", "accept", "queued", None],
                  ["B-2", "accept", "queued", None]]
    # No network: stop at the first item, nothing lost.
    result, items, sent = out["offline"]
    assert result["stopped"] == "network" and result["sent"] == 0 and sent == 1
    assert [i[:3] for i in items] == [i[:3] for i in everything] and items[0][3] == "network"
    # 5xx: the same; 401: stop, waiting for a login.
    assert out["server"][0]["stopped"] == "server" and out["server"][2] == 2
    assert out["auth"][0]["stopped"] == "auth" and len(out["auth"][1]) == 5
    # The service worker (or another tab) holds the lock: this context sends nothing.
    assert out["busy"] == [{"sent": 0, "attention": 0, "stopped": "busy"}, 3]
    # 2xx removes; a 409 keeps the photo as "needs attention"; the resolve of the same appeal waits
    # behind it, the other appeal's step goes on; another person's item is not touched.
    result, items, order = out["mixed"]
    assert result == {"sent": 2, "attention": 1, "stopped": None}
    assert order == ["arrive", "photo:after", "accept"]
    assert items == [["A-1", "photo", "attention", "appeal_changed"], ["A-1", "resolve", "queued", None],
                     ["B-2", "accept", "queued", None]]
    # Sent again (with a new key): the photo goes, then the resolve.
    result, items, order, new_key = out["retried"]
    assert result == {"sent": 2, "attention": 0, "stopped": None}
    assert order == ["photo:after", "resolve"] and new_key
    assert items == [["B-2", "accept", "queued", None]]  # the other person's
    # Every request carried an Idempotency-Key (a UUID) and the CSRF token; a retry reuses the key.
    assert all(len(k) == 36 for k in out["keys"]) and out["keys"][0] == out["keys"][1] == out["keys"][2]
    assert out["csrf"] == ["tok"]


def test_the_service_worker_sends_the_outbox_on_background_sync_with_the_app_closed(live, crew, api, phone,
                                                                                    committed_app):
    lon, lat = sector_points(committed_app)["S6"]
    worker = f"f{crew['S6'][1:]}"
    api.post("/api/v1/me/duty", json={"on_duty": True}, headers=api.token(worker))
    appeal = api.post("/api/v1/appeals", json={**APPEAL, "lat": lat, "lon": lon}, headers=api.token("op")).json
    disp = api.token("disp")
    context, page, _console = phone(lat, lon)
    field_login(page, live.url, worker)
    page.goto(f"{live.url}/field/#/appeal/{appeal['id']}")
    page.wait_for_selector("[data-js=detail] [data-action=accept]")
    context.set_offline(True)
    page.wait_for_function("() => navigator.onLine === false")
    page.click("[data-action=accept]")
    page.wait_for_selector("[data-js=queue-banner][data-count='1']")
    other = context.new_page()
    other.goto("about:blank")
    page.close()  # the app is closed; the step waits in IndexedDB
    context.set_offline(False)
    assert api.get(f"/api/v1/appeals/{appeal['id']}", headers=disp).json["status"] == "assigned"
    worker_event(context, other, live.url, "ServiceWorker.dispatchSyncEvent", tag="jauap-outbox", lastChance=False)
    assert eventually(lambda: api.get(f"/api/v1/appeals/{appeal['id']}", headers=disp).json["status"] == "accepted")
    # The queue is empty when the app opens again.
    page = context.new_page()
    page.goto(f"{live.url}/field/")
    page.wait_for_selector("[data-js=app]:not([hidden])")
    page.wait_for_selector("[data-js=queue-banner]", state="hidden")

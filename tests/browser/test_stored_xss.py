"""Stored XSS: hostile text entered through every channel never runs on any page (real Chromium).

Every field a person or another system can fill, through every way in (operator intake, the citizen
report, Telegram and Meta webhooks from recorded payloads with their real signatures, Open311, field
steps and photo uploads, QC returns and answers, reply templates, staff names), gets a payload tagged
with where it came from. Every page that shows them is then opened, with its live interactions
(tooltips on the map, the appeal panel), and must:

* never run it: ``window.__xss`` stays undefined;
* never need the CSP to stop it: no ``securitypolicyviolation`` event at all (text is not code);
* show it as literal text where the field is shown;
* never turn it into elements (no ``img[src=x]``, no ``on*`` attribute, no ``javascript:`` link);
* answer with a CSP whose ``script-src`` has no ``'unsafe-inline'``.
"""

from __future__ import annotations

import io
import json
import re
import uuid
from urllib.parse import parse_qsl, urlencode

import pytest
from PIL import Image

from server import media
from server.config import REPO_ROOT
from server.extensions import db
from server.models import Appeal, Sector, Staff
from server.models.types import utcnow
from server.services import apikeys
from server.services.staff import create_staff
from tests.channel_fixtures import META_URL, TG_SECRET, TG_URL, configured_providers, load, sign
from tests.conftest import APPEAL, PASSWORD, make_staff

# The pages render what the API returns whatever the database: the per-push run uses SpatiaLite, the slow
# run PostGIS too.
pytestmark = [pytest.mark.browser,
              pytest.mark.parametrize("backend", ["spatialite", pytest.param("postgis", marks=pytest.mark.slow)],
                                      indirect=True)]

HOSTILE = ("<script>window.__xss=1</script><img src=x onerror=\"window.__xss=1\">"
           "\"><svg onload=window.__xss=1>{{7*7}}")


SHORT = "<img src=x onerror=\"window.__xss=1\"><svg onload=window.__xss=1>"
SHORT_FIELDS = {"o311-name"}  # Open311 names are at most 80 characters


def payload(tag: str) -> str:
    """A payload naming its channel and field: a javascript: link first, then markup and a template."""
    if tag in SHORT_FIELDS:
        return f"[{tag}]{SHORT}"
    return f"javascript:window.__xss=1//[{tag}] {HOSTILE}"


RECORD = """
window.__csp = [];
document.addEventListener("securitypolicyviolation",
  (e) => window.__csp.push(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`));
"""

# What a page must not contain: elements or attributes made from the payload.
INJECTED = """() => {
  const found = [];
  for (const el of document.querySelectorAll('img[src="x"], svg[onload], script:not([src])')) found.push(el.outerHTML);
  for (const el of document.querySelectorAll('*')) {
    for (const a of el.attributes) {
      if (a.name.startsWith('on') && a.value.includes('__xss')) found.push(`${el.tagName} ${a.name}`);
      const url = ['href', 'src', 'action', 'formaction'].includes(a.name);
      if (url && a.value.trim().toLowerCase().startsWith('javascript:')) found.push(`${el.tagName} ${a.value}`);
    }
  }
  return found;
}"""

# The text a person sees: the body's text, plus form values and tooltips/titles.
VISIBLE = """() => [document.body.innerText,
  ...[...document.querySelectorAll('textarea, input, select option')].map((e) => e.value || e.textContent),
  ...[...document.querySelectorAll('[title]')].map((e) => e.title)].join('\\n')"""


def jpeg(colour=(30, 120, 200)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), colour).save(buf, "JPEG")
    return buf.getvalue()


@pytest.fixture
def seeded(committed_app, api, live):
    """Every channel's payloads stored; returns what the pages need (ids, tokens, the unit)."""
    out: dict = {}
    sector = api.get(f"/api/v1/sectors/lookup?lat={APPEAL['lat']}&lon={APPEAL['lon']}").json["sector"]["code"]
    unit = sector.replace("S", "U")
    with committed_app.app_context():
        for role, name in [("operator", "op"), ("dispatcher", "disp"), ("inspector", "insp"),
                           ("methodologist", "meth"), ("analyst", "anl"), ("admin", "adm")]:
            make_staff(role, username=name)
        # A staff display name is text too (set by an admin; shown on the map, panels and lists).
        create_staff("f1", "field_staff", PASSWORD, unit_code=unit, full_name=payload("staff-name"),
                     language="en", now=utcnow())
        db.session.commit()
        assert db.session.query(Sector).count() == 6
        db.session.remove()
    op, f1, insp, meth = (api.token(n) for n in ("op", "f1", "insp", "meth"))
    assert api.post("/api/v1/me/duty", json={"on_duty": True}, headers=f1).status_code == 200
    assert api.post("/api/v1/me/position", json={"lat": APPEAL["lat"] + 0.0004, "lon": APPEAL["lon"],
                                                 "accuracy_m": 8}, headers=f1).status_code in (200, 201, 204)

    def intake(tag: str, phone: str) -> dict:
        res = api.post("/api/v1/appeals", headers={**op, "Idempotency-Key": str(uuid.uuid4())}, json={
            **APPEAL, "description": payload(f"{tag}-desc"), "address": payload(f"{tag}-addr"),
            "citizen": {"name": payload(f"{tag}-name"), "phone": phone, "language": "en"}})
        assert res.status_code == 201, res.json
        return res.json

    def step(appeal_id: int, action: str, **body) -> None:
        res = api.post(f"/api/v1/appeals/{appeal_id}/transitions", json={"action": action, **body},
                       headers={**f1, "Idempotency-Key": str(uuid.uuid4())})
        assert res.status_code == 200, (action, res.json)

    def photo(appeal_id: int, kind: str, tag: str, colour) -> None:
        data = jpeg(colour)
        res = api.post(f"/api/v1/appeals/{appeal_id}/photos", content_type="multipart/form-data",
                       headers={**f1, "Idempotency-Key": str(uuid.uuid4())},
                       data={"file": (io.BytesIO(data), payload(tag) + ".jpg", "text/html"), "kind": kind,
                             "sha256": media.sha256_hex(data)})
        assert res.status_code == 201, res.json

    far = {"lat": APPEAL["lat"] + 0.018, "lon": APPEAL["lon"], "accuracy_m": 8}

    def work(appeal_id: int, tag: str, colour) -> None:
        """accept -> depart -> arrive 2 km away (a reason) -> photos -> resolve (a reason)."""
        step(appeal_id, "accept")
        step(appeal_id, "depart")
        step(appeal_id, "arrive", position=far, reason=payload(f"{tag}-arrive-reason"))
        photo(appeal_id, "before", f"{tag}-before-file", colour)
        photo(appeal_id, "after", f"{tag}-after-file", tuple(255 - c for c in colour))
        step(appeal_id, "resolve", position=far, reason=payload(f"{tag}-resolve-reason"))

    # 1. Operator intake: A is worked and returned by QC (back with the field worker); B waits in QC.
    a = intake("op-a", "+7 701 555 1001")
    work(a["id"], "field-a", (200, 40, 40))
    res = api.post(f"/api/v1/qc/appeals/{a['id']}/return", json={"reason": payload("qc-return")}, headers=insp)
    assert res.status_code == 200, res.json
    b = intake("op-b", "+7 701 555 1002")
    work(b["id"], "field-b", (40, 200, 40))

    # 2. The citizen report: worked, then answered by the inspector (the answer is on the tracking page).
    form = api.get("/api/v1/public/report/form").json
    res = api.post("/api/v1/public/reports", content_type="multipart/form-data",
                   headers={"X-CSRFToken": form["csrf_token"], "Idempotency-Key": str(uuid.uuid4())},
                   data={"type": "complaint", "topic": "roads", "description": payload("report-desc"),
                         "address": payload("report-addr"), "name": payload("report-name"),
                         "lat": str(APPEAL["lat"]), "lon": str(APPEAL["lon"]), "accuracy_m": "10",
                         "language": "en", "consent": "true", "consent_version": form["consent_version"]})
    assert res.status_code == 201, res.json
    out["tracking"] = res.json["tracking_url"]
    with committed_app.app_context():
        report_id = db.session.scalar(db.select(Appeal.id).where(Appeal.reg_no == res.json["reg_no"]))
        db.session.remove()
    work(report_id, "field-r", (40, 40, 200))
    res = api.post(f"/api/v1/qc/appeals/{report_id}/approve", json={"answer": payload("qc-answer")}, headers=insp)
    assert res.status_code == 200, res.json

    form = api.get("/api/v1/public/report/form").json
    res = api.post("/api/v1/public/reports", content_type="multipart/form-data",
                   headers={"X-CSRFToken": form["csrf_token"], "Idempotency-Key": str(uuid.uuid4())},
                   data={"type": "complaint", "topic": "roads", "description": payload("report2-desc"),
                         "address": payload("report2-addr"), "name": payload("report2-name"),
                         "lat": str(APPEAL["lat"]), "lon": str(APPEAL["lon"]), "accuracy_m": "10",
                         "language": "en", "consent": "true", "consent_version": form["consent_version"]})
    assert res.status_code == 201, res.json

    # 3. Telegram and Meta (Messenger) webhooks: the recorded conversations with hostile text and names.
    with configured_providers(committed_app):
        for name in ["01_start", "02_language", "03_type", "04_topic", "05_location", "06_photo",
                     "07_photo_next", "08_description", "09_confirm"]:
            update = load(f"telegram/{name}.json")
            message = update.get("message") or update.get("callback_query", {}).get("message")
            for holder in (update.get("message"), update.get("callback_query")):
                if holder and "from" in holder:
                    holder["from"]["first_name"] = payload("tg-name")
                    holder["from"]["last_name"] = ""
            if name == "08_description":
                message["text"] = payload("tg-desc")
            res = api.post(TG_URL, json=update, headers={"X-Telegram-Bot-Api-Secret-Token": TG_SECRET})
            assert res.status_code == 200, res.get_data(as_text=True)
        for name in ["fb_text", "fb_language", "fb_type", "fb_topic", "fb_address", "fb_skip", "fb_description",
                     "fb_confirm"]:
            update = load(f"meta/{name}.json")
            if name in ("fb_address", "fb_description"):
                update["entry"][0]["messaging"][0]["message"]["text"] = payload(
                    {"fb_address": "fb-addr", "fb_description": "fb-desc"}[name])
            raw = json.dumps(update).encode()
            res = api.post(META_URL, data=raw, headers={"Content-Type": "application/json",
                                                        "X-Hub-Signature-256": sign(raw)})
            assert res.status_code == 200, res.get_data(as_text=True)

    # 4. Open311 (another city system posting for a citizen).
    with committed_app.app_context():
        key = apikeys.create_key("FixMyStreet", created_by_id=None, now=utcnow()).key
        db.session.commit()
        db.session.remove()
    # FixMyStreet's recorded request, with hostile text in every free-text field.
    recorded = dict(parse_qsl((REPO_ROOT / "tests" / "open311" / "fms_post_request.form").read_text().strip()))
    recorded.update({"api_key": key, "description": payload("o311-desc"), "address_string": payload("o311-addr"),
                     "first_name": payload("o311-name"), "last_name": "", "attribute[title]": payload("o311-title")})
    res = api.post("/open311/v2/requests.json", content_type="application/x-www-form-urlencoded",
                   data=urlencode(recorded))
    assert res.status_code in (200, 201), res.get_data(as_text=True)

    # 5. Reply templates (the methodologist's texts; {{ }} are literal braces there).
    for language in ("en", "ru"):
        res = api.put("/api/v1/reply-templates", headers=meth, json={
            "moment": "registered", "appeal_type": "*", "language": language,
            "body": payload(f"tpl-{language}")})
        assert res.status_code == 200, res.json
    # The other channels' appeals, found by their hostile descriptions.
    with committed_app.app_context():
        out["channels"] = {}
        for tag in ("report2", "tg", "fb", "o311"):
            row = db.session.scalars(db.select(Appeal).where(Appeal.description.contains(f"[{tag}-desc]"))).one()
            out["channels"][tag] = {"id": row.id, "reg_no": row.reg_no, "status": row.status}
        f1_id = db.session.scalar(db.select(Staff.id).where(Staff.username == "f1"))
        db.session.remove()
    # The Messenger appeal has only an address: the dispatcher places it in the sector and gives it to f1.
    disp = api.token("disp")
    fb = out["channels"]["fb"]
    if fb["status"] == "unrouted":
        res = api.post(f"/api/v1/appeals/{fb['id']}/transitions", json={"action": "route_manually", "sector": sector},
                       headers={**disp, "Idempotency-Key": str(uuid.uuid4())})
        assert res.status_code == 200, res.json
    res = api.post(f"/api/v1/appeals/{fb['id']}/reassign", json={"staff_id": f1_id, "reason": payload("fb-move")},
                   headers=disp)
    assert res.status_code == 200, res.json
    out.update(a=a, b=b, report_id=report_id, unit=unit)
    return out


# What the appeal panel shows of each channel's appeal.
CHANNEL_TAGS = {"report2": ["report2-desc", "report2-addr", "report2-name"], "tg": ["tg-desc", "tg-name"],
                "fb": ["fb-desc", "fb-addr", "fb-move"], "o311": ["o311-desc", "o311-addr", "o311-name"]}


def watch(page) -> list[str]:
    """Record CSP violations from the first byte of every document of ``page``."""
    messages: list[str] = []
    page.on("console", lambda msg: messages.append(msg.text) if "Content Security Policy" in msg.text else None)
    page.add_init_script(RECORD)
    return messages


def verdict(page, response, messages: list[str], expected_tags: list[str]) -> list[str]:
    """What is wrong with the page now (empty when nothing)."""
    problems = []
    policy = response.headers.get("content-security-policy", "")
    script_src = re.search(r"script-src([^;]*)", policy)
    if not script_src or "'unsafe-inline'" in script_src.group(1):
        problems.append(f"CSP without a strict script-src: {policy!r}")
    if page.evaluate("() => window.__xss") is not None:
        problems.append("window.__xss was set: a payload ran")
    events = page.evaluate("() => window.__csp || []")
    if events or messages:
        problems.append(f"CSP violations (the policy had to stop something): {events} {messages}")
    injected = page.evaluate(INJECTED)
    if injected:
        problems.append(f"elements made from a payload: {injected}")
    visible = re.sub(r"\s+", " ", page.evaluate(VISIBLE))
    for tag in expected_tags:
        literal = re.sub(r"\s+", " ", payload(tag))
        if literal not in visible:
            problems.append(f"[{tag}] not shown as literal text")
    return problems


def shown_tags(page) -> list[str]:
    """Which payload tags the page shows as text (for the failure message)."""
    return sorted(set(re.findall(r"\[([a-z0-9-]+)\]", page.evaluate(VISIBLE))))


def test_stored_payloads_never_run_on_any_page(browser, live, api, seeded, open_page):
    problems: dict[str, list[str]] = {}

    def check(name, page, response, messages, tags):
        print(f"{name}: shows {shown_tags(page)}")  # which fields each page shows, for the log
        found = verdict(page, response, messages, tags)
        if found:
            problems.setdefault(name, []).extend([*found, f"tags shown: {shown_tags(page)}"])

    a, b = seeded["a"], seeded["b"]

    # The operator console.
    page, _c = open_page("op", "/operator/")
    messages = watch(page)
    response = page.reload()
    page.wait_for_selector("form[data-ready=true]")
    # A point on the map, then an appeal typed in right there by another operator: choosing the topic
    # lists it as a look-alike (its description and address are shown before saving).
    page.select_option("#f-type", "complaint")
    label = page.locator(".sector-label span").filter(has_text=re.compile(r"^S2$"))
    box = label.bounding_box()
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.wait_for_selector("[data-js=sector-line][data-sector=S2]")
    lat = float(page.get_attribute("[data-js=point-text]", "data-lat"))
    lon = float(page.get_attribute("[data-js=point-text]", "data-lon"))
    near = api.post("/api/v1/appeals", headers={**api.token("op"), "Idempotency-Key": str(uuid.uuid4())}, json={
        **APPEAL, "lat": lat, "lon": lon + 0.0001, "description": payload("op-c-desc"),
        "address": payload("op-c-addr"), "citizen": {"name": payload("op-c-name"), "language": "en"}})
    assert near.status_code == 201, near.json
    page.select_option("#f-topic", "roads")
    page.wait_for_selector(f'[data-js=similar]:not([hidden]) li[data-reg-no="{near.json["reg_no"]}"]')
    page.wait_for_timeout(300)
    # The look-alike list shows number, status, distance and time: no free text, and nothing may run.
    check("operator", page, response, messages, [])

    # The field app: my list, then the returned appeal's detail (the QC reason is shown to the worker).
    field_context = browser.new_context(locale="en-US", viewport={"width": 390, "height": 844})
    field_context.set_default_timeout(10_000)
    page = field_context.new_page()
    messages = watch(page)
    response = page.goto(f"{live.url}/field/")
    page.wait_for_selector("[data-view=login]:not([hidden])")
    page.fill("#login-username", "f1")
    page.fill("#login-password", PASSWORD)
    page.click("[data-js=login-form] button[type=submit]")
    page.wait_for_selector("[data-js=app]:not([hidden])")
    page.wait_for_selector(f'[data-js=work-list] li[data-appeal-id="{a["id"]}"]')
    check("field list", page, response, messages, ["op-a-addr", "o311-addr", "report2-addr", "fb-addr",
                                                   "staff-name"])
    page.goto(f"{live.url}/field/#/appeal/{a['id']}")
    page.wait_for_selector(f'[data-js=detail-reg]:has-text("{a["reg_no"]}")')
    page.wait_for_timeout(800)
    check("field detail", page, response, messages, ["op-a-desc", "op-a-addr", "op-a-name", "qc-return",
                                                     "field-a-arrive-reason", "field-a-resolve-reason"])
    # Every other channel's appeal (the assignment rule gave them all to f1, the only one on duty).
    for tag, ref in seeded["channels"].items():
        page.goto(f"{live.url}/field/#/appeal/{ref['id']}")
        page.wait_for_selector(f'[data-js=detail-reg]:has-text("{ref["reg_no"]}")')
        page.wait_for_timeout(300)
        check(f"field detail {tag}", page, response, messages, CHANNEL_TAGS[tag])
    field_context.close()

    # The inspector's queue (B: resolved, with the field worker's reasons and photos).
    page, _c = open_page("insp", "/inspector/")
    messages = watch(page)
    response = page.reload()
    page.wait_for_selector("body[data-ready='1']")
    page.locator(".js-queue > li", has_text=b["reg_no"]).wait_for()
    for pin in page.locator(".qc-map .leaflet-marker-icon").all():
        pin.hover()
    page.wait_for_timeout(500)
    check("inspector", page, response, messages, ["op-b-desc", "op-b-addr", "staff-name"])

    # Analytics and the reply templates.
    page, _c = open_page("anl", "/analytics/")
    messages = watch(page)
    response = page.reload()
    page.wait_for_timeout(1500)
    check("analytics", page, response, messages, [])
    page, _c = open_page("meth", "/templates/")
    messages = watch(page)
    response = page.reload()
    page.locator("form.tpl-editor textarea").first.wait_for()
    page.wait_for_timeout(800)
    check("templates", page, response, messages, ["tpl-en", "tpl-ru"])

    # The dispatcher: map, live list and the appeal panel; every staff marker's tooltip opened. B is returned
    # by QC while the map is open, so its live event lists it, and its panel opens from the list.
    insp = api.token("insp")
    page, _c = open_page("disp", "/dispatch/")
    messages = watch(page)
    response = page.reload()
    page.wait_for_selector("[data-js=conn][data-state=online]")
    page.wait_for_selector(".staff-pin")
    tooltips = []
    for pin in page.locator(".staff-pin").all():
        pin.hover()
        tooltips.append(page.locator(".leaflet-tooltip").last.inner_text())
        if injected := page.evaluate(INJECTED):  # while the tooltip is open
            problems.setdefault("dispatch", []).append(f"a staff tooltip made elements: {injected}")
    res = api.post(f"/api/v1/qc/appeals/{b['id']}/return", json={"reason": payload("qc-return-b")},
                   headers=insp)
    assert res.status_code == 200, res.json
    page.locator(f'[data-js=feed] li[data-reg-no="{b["reg_no"]}"] button').first.click()
    page.wait_for_selector(f'[data-js=detail-title]:has-text("{b["reg_no"]}")')
    page.wait_for_timeout(500)
    check("dispatch", page, response, messages, ["op-b-desc", "op-b-addr", "op-b-name", "staff-name",
                                                 "field-b-arrive-reason", "field-b-resolve-reason", "qc-return-b"])
    if not any(payload("staff-name") in t for t in tooltips):
        problems.setdefault("dispatch", []).append(f"no staff tooltip with the literal name: {tooltips!r}")

    # The citizen's tracking page (no login): the inspector's answer.
    context = browser.new_context(locale="en-US")
    try:
        page = context.new_page()
        messages = watch(page)
        response = page.goto(f"{live.url}{seeded['tracking']}")
        page.wait_for_selector("body[data-ready=true]")
        page.wait_for_timeout(500)
        check("tracking", page, response, messages, ["qc-answer"])
    finally:
        context.close()

    assert problems == {}, json.dumps(problems, indent=1, ensure_ascii=False)

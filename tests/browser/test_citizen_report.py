"""The citizen's side in a real browser (Debian Chromium, a 360 px phone screen, emulated geolocation).

The story: a citizen files at /report with their location and a photo, opens the tracking link; the
centre answers; the citizen disputes the fix on the tracking page; the appeal is reopened and the
dispatcher's already-open live map shows it again, without a reload.
"""

from __future__ import annotations

import io
import json
import re

import pytest
from PIL import Image
from sqlalchemy import select

from server import media
from server.api.common import commit
from server.config import REPO_ROOT
from server.extensions import db
from server.models import Appeal, Attachment, Staff
from server.models.types import utcnow
from server.services.evidence import media_root
from server.services.lifecycle import SYSTEM, Actor, transition
from tests.browser.test_screens import dispatch_ready, shown, wait_shown
from tests.conftest import make_staff
from tests.realtime_server import sector_points

pytestmark = pytest.mark.browser

RU = json.loads((REPO_ROOT / "pwa" / "shared" / "i18n" / "ru.json").read_text(encoding="utf-8"))
PHONE_WIDTH = 360


def jpeg(colour, size=(800, 600)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, "JPEG", quality=90)
    return buf.getvalue()


@pytest.fixture
def phone(browser, live, committed_app):
    """A phone-sized Russian-speaking browser standing inside sector S1, location allowed."""
    lon, lat = sector_points(committed_app)["S1"]
    context = browser.new_context(viewport={"width": PHONE_WIDTH, "height": 740}, locale="ru-RU",
                                  geolocation={"latitude": lat, "longitude": lon, "accuracy": 15},
                                  permissions=["geolocation"], is_mobile=True, has_touch=True)
    context.set_default_timeout(10_000)
    yield context
    context.close()


def no_sideways_scroll(page) -> None:
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE_WIDTH


def answer_as_staff(app, reg_no: str) -> None:
    """The centre does the work and answers (field worker, inspector), with an "after" photo, published live."""
    with app.app_context():
        appeal = db.session.scalar(select(Appeal).where(Appeal.reg_no == reg_no))
        field = db.session.scalar(select(Staff).where(Staff.unit_id == appeal.unit_id, Staff.role == "field_staff"))
        inspector = make_staff("inspector", username="insp")
        now = utcnow()
        events = [transition(appeal, "assign", SYSTEM, now)]
        appeal.assignee_id = field.id
        events += [transition(appeal, a, Actor.of(field), now) for a in ("accept", "arrive")]
        data = jpeg((30, 140, 60))
        processed = media.process_upload(data, media.sha256_hex(data))
        media.store(media_root(), processed)
        db.session.add(Attachment(public_id="after-photo-1", appeal_id=appeal.id, kind="after",
                                  sha256=processed.facts.sha256, mime="image/jpeg", size_bytes=len(data),
                                  width=800, height=600, uploaded_by_id=field.id, created_at=now))
        events.append(transition(appeal, "resolve", Actor.of(field), now))
        events.append(transition(appeal, "verify", Actor.of(inspector), now))
        events.append(transition(appeal, "answer", SYSTEM, now, data={"answer": "Яма заделана асфальтом."}))
        appeal.answer_text = "Яма заделана асфальтом."
        commit(events)
        db.session.remove()


def test_citizen_reports_tracks_and_disputes_and_the_dispatcher_sees_it_reopened(
        live, crew, phone, open_page, committed_app):
    page = phone.new_page()
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: msg.type == "error" and errors.append(msg.text))
    page.goto(f"{live.url}/report")
    page.wait_for_selector("form[data-ready=true]")
    assert page.get_attribute("html", "lang") == "ru"  # Accept-Language of a Russian phone
    assert page.text_content("[data-js=submit]") == RU["citizen.report.submit"]
    assert not page.evaluate("Boolean(window.L)")  # the map library waits until the citizen asks for it

    # Sending without consent is stopped on the page, in Russian.
    page.click("[data-js=submit]")
    assert page.text_content("[data-error-for=consent]") == RU["citizen.error.consent"]

    page.check("input[name=type][value=incident]")
    page.select_option("[data-js=topic]", "roads")
    page.fill("#r-description", "Глубокая яма на остановке, машины объезжают по тротуару.")
    page.click("[data-js=locate]")
    page.wait_for_selector("[data-js=fix][data-state=gps]")
    assert "± 15" in page.text_content("[data-js=fix]")
    page.wait_for_selector(".leaflet-marker-draggable")
    # The citizen nudges the pin to the exact spot: now the place is theirs, not the GPS fix.
    pin = page.locator(".leaflet-marker-draggable").bounding_box()
    x, y = pin["x"] + pin["width"] / 2, pin["y"] + pin["height"] - 4
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 12, y + 6, steps=5)
    page.mouse.up()
    page.wait_for_selector("[data-js=fix][data-state=manual]")
    page.set_input_files("[data-js=photo-input]", files=[
        {"name": "yama.jpg", "mimeType": "image/jpeg", "buffer": jpeg((120, 90, 60), (2400, 1800))}])
    page.wait_for_selector(".c-photo img")
    page.fill("#r-name", "Айгерим")
    page.check("[data-js=consent]")
    assert RU["citizen.consent.2026-11"] == page.text_content("[data-js=consent-text]")
    no_sideways_scroll(page)
    page.click("[data-js=submit]")
    page.wait_for_selector("[data-js=result]:not([hidden])")
    reg_no = page.text_content("[data-js=result-reg]").strip()
    link = page.get_attribute("[data-js=result-link]", "href")
    assert re.match(r"^[A-Z]+-\d{4}-\d{6}$", reg_no) and re.match(rf"^{re.escape(live.url)}/t/[\w-]+$", link)
    no_sideways_scroll(page)

    with committed_app.app_context():
        appeal = db.session.scalar(select(Appeal).where(Appeal.reg_no == reg_no))
        assert appeal.channel == "web" and appeal.sector.code == "S1" and appeal.accuracy_m is None
        photo = db.session.scalar(select(Attachment).where(Attachment.appeal_id == appeal.id))
        assert photo.kind == "citizen" and max(photo.width, photo.height) == 1600  # shrunk on the phone
        assert photo.exif_lat is None
        db.session.remove()

    # The tracking link.
    page.goto(link)
    page.wait_for_selector("body[data-ready=true]")
    assert page.text_content("[data-js=reg]") == reg_no
    assert page.text_content("[data-js=stage]") == RU["citizen.stage.routed"]
    assert page.locator("[data-js=feedback]").is_hidden()

    # The dispatcher's live map is open; the centre answers; the citizen disputes.
    dispatcher, dispatcher_console = open_page("disp", "/dispatch/")
    dispatch_ready(dispatcher)
    wait_shown(dispatcher, 1)
    answer_as_staff(committed_app, reg_no)
    dispatcher.wait_for_selector(f'[data-js=feed] li[data-reg-no="{reg_no}"]:has-text("Answered")')
    wait_shown(dispatcher, 0)
    before = shown(dispatcher)

    page.reload()
    page.wait_for_selector("body[data-ready=true]")
    assert page.text_content("[data-js=answer-text]") == "Яма заделана асфальтом."
    thumb = page.locator("[data-js=photos] img")
    thumb.wait_for()
    page.wait_for_function("() => document.querySelector('[data-js=photos] img').naturalWidth > 0")
    assert "/photos/after-photo-1/thumb" in thumb.get_attribute("src")
    page.click(".c-star:has(input[value='2'])")
    page.fill("#f-comment", "Яму засыпали песком, она снова открылась.")
    no_sideways_scroll(page)
    page.click("[data-js=dispute]")
    page.wait_for_selector("[data-js=given][data-verdict=dispute]")
    assert page.text_content("[data-js=stage]") == RU["citizen.stage.reopened"]
    assert page.locator("[data-js=feedback]").is_hidden()

    # The dispatcher's map shows it again, reopened, live.
    dispatcher.wait_for_selector(f'[data-js=feed] li[data-reg-no="{reg_no}"]:has-text("Reopened")', timeout=3000)
    wait_shown(dispatcher, before + 1, timeout=3000)
    with committed_app.app_context():
        appeal = db.session.scalar(select(Appeal).where(Appeal.reg_no == reg_no))
        assert appeal.status == "reopened"
        assert appeal.events[-1].data["reason"] == "Яму засыпали песком, она снова открылась."
        db.session.remove()
    assert errors == [] and dispatcher_console.errors == []

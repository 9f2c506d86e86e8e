"""The quality-control page in a real browser: the inspector's queue on a phone, approve, and kk/ru/en."""

from __future__ import annotations

import json
from datetime import timedelta

from server.config import REPO_ROOT
from server.extensions import db
from server.models import Appeal
from server.models.types import utcnow
from server.services.lifecycle import SYSTEM, Actor, transition
from tests.conftest import appeal_body, make_staff

KK = json.loads((REPO_ROOT / "pwa" / "shared" / "i18n" / "kk.json").read_text(encoding="utf-8"))


def resolved_appeal(committed_app, api) -> str:
    """Register an appeal and take it to ``resolved`` with device positions; its reg_no."""
    with committed_app.app_context():
        make_staff("operator", username="op")
        make_staff("inspector", username="insp")
        field = make_staff("field_staff", unit="U1", username="f1")
        db.session.commit()
        field_id = field.id
        db.session.remove()
    res = api.post("/api/v1/appeals", json=appeal_body(), headers=api.token("op"))
    assert res.status_code == 201, res.json
    with committed_app.app_context():
        appeal = db.session.get(Appeal, res.json["id"])
        now = utcnow() - timedelta(minutes=5)
        transition(appeal, "assign", SYSTEM, now)
        appeal.assignee_id = field_id
        actor = Actor(kind="staff", role="field_staff", staff_id=field_id)
        pos = {"lat": 43.2980, "lon": 68.2515, "accuracy_m": 15}
        transition(appeal, "accept", actor, now)
        transition(appeal, "arrive", actor, now, data={"position": pos})
        transition(appeal, "resolve", actor, now, data={"position": pos})
        db.session.commit()
        reg_no = appeal.reg_no
        db.session.remove()
    return reg_no


def test_inspector_checks_and_approves_on_a_phone_in_three_languages(live, api, open_page, committed_app):
    reg_no = resolved_appeal(committed_app, api)
    page, console = open_page("insp", "/inspector/", viewport=(390, 844))
    page.wait_for_selector("body[data-ready='1']")
    item = page.locator(".js-queue > li", has_text=reg_no)
    item.wait_for()
    # The evidence: both device positions with their distance from the appeal point, and the map drawn.
    assert item.locator("[data-js=points] li").count() == 2
    assert item.locator(".qc-map .leaflet-interactive").count() >= 3
    # Usable on a phone: nothing wider than the screen.
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.click('.lang-btn[data-lang="kk"]')
    page.wait_for_function("() => document.documentElement.lang === 'kk'")
    assert page.text_content('[data-i18n="qc.title"]') == KK["qc.title"]
    item = page.locator(".js-queue > li", has_text=reg_no)
    item.wait_for()
    item.locator("[data-js=approve] button").click()
    item.wait_for(state="detached")
    assert console.errors == []
    with committed_app.app_context():
        status = db.session.scalar(db.select(Appeal.status).where(Appeal.reg_no == reg_no))
    assert status == "answered"


def test_a_queue_reload_that_crosses_an_approve_does_not_bring_the_item_back(live, api, open_page, committed_app):
    """The language switch reloads the queue; if that reload was read before the approve committed, its
    stale list must not re-render the approved appeal (the CI flake of session 3, made deterministic)."""
    reg_no = resolved_appeal(committed_app, api)
    page, console = open_page("insp", "/inspector/", viewport=(390, 844))
    page.wait_for_selector("body[data-ready='1']")
    item = page.locator(".js-queue > li", has_text=reg_no)
    item.wait_for()
    held = []

    def hold(route):
        # Read the queue now (the appeal is still in it), answer the page only after the approve.
        held.append((route, route.fetch()))

    page.route("**/api/v1/qc/queue?lang=kk*", hold)
    page.click('.lang-btn[data-lang="kk"]')
    for _ in range(200):
        if held:
            break
        page.wait_for_timeout(25)
    assert held, "the language switch did not reload the queue"
    with page.expect_response(lambda r: r.url.endswith("/approve?lang=kk") or "/approve" in r.url) as resp:
        item.locator("[data-js=approve] button").click()
    assert resp.value.status == 200
    route, stale = held[0]
    route.fulfill(response=stale)
    page.wait_for_selector("[data-js=queue-empty]", state="visible")
    assert page.locator(".js-queue > li", has_text=reg_no).count() == 0
    assert console.errors == []

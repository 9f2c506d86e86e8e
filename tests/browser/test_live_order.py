"""Live events that arrive out of id order are still shown once, and never roll a marker back.

On PostgreSQL event ids come from a sequence: a transaction that took id N may commit (and publish) after
one that took N+1. live.js used to keep a floor (the highest id seen) and drop any event at or below it, and
to catch up after a reconnect from that floor: the late event was lost until the next full reload. Now it
deduplicates by id and catches up from a look-back below the highest id seen; /dispatch/ applies an event to
an appeal's marker only when it is newer than the last one applied to that appeal, and lists it either way.

The race is reproduced by committing the older event first and publishing it (or not at all) after the
newer one: what the browser sees is the same as with two racing transactions.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from server.extensions import db
from server.models import Appeal, AppealEvent
from server.models.types import utcnow
from server.realtime import publish
from server.services.lifecycle import SYSTEM, record_event
from tests.conftest import appeal_body, make_staff

pytestmark = [pytest.mark.browser,
              pytest.mark.parametrize("backend", ["spatialite", pytest.param("postgis", marks=pytest.mark.slow)],
                                      indirect=True)]


def shown(page) -> int:
    return int(page.get_attribute("[data-js=shown-count]", "data-count"))


def listed_ids(page, reg_no: str) -> list[int]:
    return [int(x) for x in page.eval_on_selector_all(
        f'[data-js=feed] li[data-reg-no="{reg_no}"]', "els => els.map((e) => e.dataset.eventId)")]


def wait_listed(page, reg_no: str, n: int) -> list[int]:
    try:
        page.wait_for_function("([reg, n]) => document.querySelectorAll("
                               "`[data-js=feed] li[data-reg-no=\"${reg}\"]`).length >= n", arg=[reg_no, n],
                               timeout=8000)
    except Exception:
        pytest.fail(f"{reg_no}: {n} line(s) expected in the live list, it shows {listed_ids(page, reg_no)}")
    return listed_ids(page, reg_no)


def setup(committed_app, api) -> dict:
    """A dispatcher and an open appeal with a point (on the map); returns its id and reg_no."""
    with committed_app.app_context():
        make_staff("operator", username="op")
        make_staff("dispatcher", username="disp")
        db.session.commit()
        db.session.remove()
    res = api.post("/api/v1/appeals", json=appeal_body(), headers=api.token("op"))
    assert res.status_code == 201, res.json
    return {"id": res.json["id"], "reg_no": res.json["reg_no"]}


def commit_unpublished(committed_app, appeal_id: int) -> tuple[int, list]:
    """Commit one event on the open appeal; return its id and its live messages, not yet emitted."""
    with committed_app.app_context():
        appeal = db.session.get(Appeal, appeal_id)
        ev = record_event(appeal, "appeal.photo_added", SYSTEM, utcnow(), from_status=appeal.status,
                          to_status=appeal.status, data={"kind": "before"})
        messages = publish.prepare([ev])
        db.session.commit()
        ev_id = ev.id
        db.session.remove()
    return ev_id, messages


def reject(api, appeal_id: int) -> int:
    """Reject the appeal (it leaves the map); returns the event id."""
    res = api.post(f"/api/v1/appeals/{appeal_id}/transitions", json={"action": "reject", "reason": "Not ours"},
                   headers=api.token("disp"))
    assert res.status_code == 200, res.json
    return res.json["history"][-1]["id"]


def emit(committed_app, messages) -> None:
    with committed_app.app_context():
        publish.emit_all(messages)


def test_a_late_older_event_is_listed_but_does_not_bring_a_closed_appeal_back(committed_app, api, open_page):
    appeal = setup(committed_app, api)
    page, console = open_page("disp", "/dispatch/")
    page.wait_for_selector("[data-js=conn][data-state=online]")
    on_map = shown(page)
    assert on_map >= 1

    late_id, late = commit_unpublished(committed_app, appeal["id"])  # took the lower id, publishes late
    newer_id = reject(api, appeal["id"])
    assert late_id < newer_id
    assert wait_listed(page, appeal["reg_no"], 1) == [newer_id]
    assert shown(page) == on_map - 1  # rejected: off the map

    emit(committed_app, late)
    assert sorted(wait_listed(page, appeal["reg_no"], 2)) == [late_id, newer_id]
    assert shown(page) == on_map - 1  # the older "open" state did not bring the marker back
    emit(committed_app, late)  # a duplicate is listed once
    page.wait_for_timeout(300)
    assert sorted(listed_ids(page, appeal["reg_no"])) == [late_id, newer_id]
    assert console.unexpected() == []


def test_a_reconnect_catches_up_an_event_that_committed_below_the_highest_id_seen(committed_app, api,
                                                                                     open_page):
    appeal = setup(committed_app, api)
    page, console = open_page("disp", "/dispatch/")
    context = page.context
    page.wait_for_selector("[data-js=conn][data-state=online]")

    # The older event commits, but its live message never reaches this page (it was away, or the emit failed).
    late_id, _never_emitted = commit_unpublished(committed_app, appeal["id"])
    newer_id = reject(api, appeal["id"])
    assert wait_listed(page, appeal["reg_no"], 1) == [newer_id]

    context.set_offline(True)
    page.wait_for_selector("[data-js=conn]:not([data-state=online])", timeout=15_000)
    context.set_offline(False)
    page.wait_for_selector("[data-js=conn][data-state=online]", timeout=15_000)
    assert sorted(wait_listed(page, appeal["reg_no"], 2)) == [late_id, newer_id]
    with committed_app.app_context():
        assert db.session.scalar(select(AppealEvent.id).where(AppealEvent.appeal_id == appeal["id"])
                                 .order_by(AppealEvent.id.desc()).limit(1)) == newer_id
        db.session.remove()
    assert console.unexpected("ERR_INTERNET_DISCONNECTED", "ERR_NETWORK_CHANGED") == []


def test_after_a_resync_the_look_back_does_not_list_what_the_snapshot_already_shows(committed_app, api,
                                                                                      open_page):
    """A gap too long to replay ends in a fresh snapshot; the events it reflects are never listed as new."""
    appeal = setup(committed_app, api)
    with committed_app.app_context():
        snapshot_id = db.session.scalar(select(AppealEvent.id).order_by(AppealEvent.id.desc()).limit(1))
        db.session.remove()
    page, console = open_page("disp", "/dispatch/")
    context = page.context
    page.wait_for_selector("[data-js=conn][data-state=online]")
    assert listed_ids(page, appeal["reg_no"]) == []

    # The next catch-up finds page after page (a long gap): live.js gives up replaying and reloads the snapshot.
    fakes = []

    def long_gap(route):
        if len(fakes) >= 4:
            route.continue_()
            return
        n = len(fakes) + 1
        fakes.append(n)
        route.fulfill(json={"items": [{
            "id": snapshot_id + 10 + n, "kind": "appeal.photo_added", "at": "2026-11-24T09:00:00+00:00",
            "from_status": "closed", "to_status": "closed", "data": {},
            "appeal": {"id": 10**6 + n, "reg_no": f"GAP-{n}", "type": "complaint", "topic": "roads",
                       "status": "closed", "sector": None, "unit": None, "assignee_id": None, "lon": None,
                       "lat": None, "due_at": None, "sla": None}}], "last_id": snapshot_id + 10 + n, "more": True})

    page.route("**/api/v1/events?*", long_gap)
    snapshots = []
    page.on("request", lambda req: snapshots.append(req.url) if "/api/v1/map/appeals" in req.url else None)
    gap_id = None
    for _ in range(2):  # the resync, then a plain reconnect whose look-back reaches below the snapshot's id
        context.set_offline(True)
        page.wait_for_selector("[data-js=conn]:not([data-state=online])", timeout=15_000)
        if gap_id is None:
            gap_id = reject(api, appeal["id"])  # while away: the resync's snapshot reflects it
        context.set_offline(False)
        page.wait_for_selector("[data-js=conn][data-state=online]", timeout=15_000)
        page.wait_for_timeout(500)
    assert len(fakes) == 4 and snapshots, (fakes, snapshots)
    assert page.locator('[data-js=feed] li[data-reg-no^="GAP-"]').count() == 4
    # Rejected while the page was away: the snapshot took it off the map; a later look-back does not list it.
    assert gap_id > snapshot_id and shown(page) == 0
    assert listed_ids(page, appeal["reg_no"]) == []
    assert console.unexpected("ERR_INTERNET_DISCONNECTED", "ERR_NETWORK_CHANGED") == []


def test_an_event_that_commits_after_the_snapshot_below_its_id_is_shown(committed_app, api, open_page):
    """The snapshot reads the newest event ids, then the rows; an event whose transaction took a lower id
    and commits after that read is in neither. The first catch-up used to take every id up to the snapshot's
    as shown, so the dispatcher never saw it (until the 5-minute refresh). Here the snapshot's answer is made
    to miss the event, as it would in that race: the page must list it."""
    appeal = setup(committed_app, api)
    late_id, _never_emitted = commit_unpublished(committed_app, appeal["id"])
    newer_id = reject(api, appeal["id"])
    assert late_id < newer_id
    page, console = open_page("disp", "/dispatch/", viewport=(1280, 800))
    page_ready = []

    def in_flight_at_snapshot(route):
        body = route.fetch().json()
        assert body["last_event_id"] >= newer_id and late_id in body["reflected_event_ids"]
        body["reflected_event_ids"] = [i for i in body["reflected_event_ids"] if i != late_id]
        page_ready.append(True)
        route.fulfill(json=body)

    page.route("**/api/v1/map/appeals?*", in_flight_at_snapshot)
    page.reload()
    page.wait_for_selector("[data-js=conn][data-state=online]")
    assert page_ready
    # Shown once in the live list; the newer event the snapshot did reflect is not listed as new.
    assert wait_listed(page, appeal["reg_no"], 1) == [late_id]
    page.wait_for_timeout(300)
    assert listed_ids(page, appeal["reg_no"]) == [late_id]
    assert console.unexpected() == []


def test_the_field_app_catches_up_an_assignment_that_committed_after_its_snapshot(committed_app, crew, api,
                                                                                    browser, live):
    """The field app reads where its live stream starts, then its list. An assignment whose transaction took
    a lower id and commits after that read is in neither; the first catch-up used to take every id up to the
    start as seen, so the worker never got it (until something else reloaded the list). Here both answers are
    made to miss it, as they would in that race: the app must list it from the catch-up."""
    from tests.browser.conftest import Console
    from tests.conftest import APPEAL, PASSWORD
    from tests.realtime_server import sector_points

    lon, lat = sector_points(committed_app)["S1"]
    worker = f"f{crew['S1'][1:]}"
    assert api.post("/api/v1/me/duty", json={"on_duty": True}, headers=api.token(worker)).status_code == 200
    op = api.token("op")
    first = api.post("/api/v1/appeals", json={**APPEAL, "lat": lat, "lon": lon}, headers=op).json
    # No service worker: Playwright's routes do not see requests a worker handles.
    context = browser.new_context(viewport={"width": 390, "height": 844}, locale="en-US", service_workers="block")
    context.set_default_timeout(10_000)
    try:
        page = context.new_page()
        console = Console(page)
        page.goto(f"{live.url}/field/")
        page.wait_for_selector("[data-view=login]:not([hidden])")
        page.fill("#login-username", worker)
        page.fill("#login-password", PASSWORD)
        page.click("[data-js=login-form] button[type=submit]")
        page.wait_for_selector(f'[data-js=work-list] li[data-appeal-id="{first["id"]}"]')
        page.goto("about:blank")

        second = api.post("/api/v1/appeals", json={**APPEAL, "lat": lat, "lon": lon + 0.001}, headers=op).json
        history = api.get(f"/api/v1/appeals/{second['id']}", headers=api.token("disp")).json["history"]
        assert history[-1]["kind"] == "appeal.assigned", history
        late = {ev["id"] for ev in history}
        answered = {"start": 0, "list": 0}

        def start_without_second(route):
            body = route.fetch().json()
            if "status=assigned" in route.request.url and not answered["start"]:
                assert body["last_event_id"] >= max(late) and late <= set(body["reflected_event_ids"])
                body["reflected_event_ids"] = [i for i in body["reflected_event_ids"] if i not in late]
                answered["start"] += 1
            route.fulfill(json=body)

        def list_without_second(route):
            if answered["list"]:
                route.continue_()
                return
            body = route.fetch().json()
            body["items"] = [a for a in body["items"] if a["id"] != second["id"]]
            answered["list"] += 1
            route.fulfill(json=body)

        page.route("**/api/v1/map/appeals?*", start_without_second)
        page.route("**/api/v1/appeals?assignee=me*", list_without_second)
        page.goto(f"{live.url}/field/")
        page.wait_for_selector("[data-js=app]:not([hidden])")
        page.wait_for_selector(f'[data-js=work-list] li[data-appeal-id="{second["id"]}"]', timeout=8000)
        assert answered == {"start": 1, "list": 1}
        assert console.unexpected() == []
    finally:
        context.close()

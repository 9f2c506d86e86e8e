"""Access control, proven exhaustively (issue 7 part 1).

* ``test_route_matrix``: every rule of ``app.url_map`` x every method it accepts (not HEAD/OPTIONS), as every
  role and anonymously, on the caller's own object, one in the same sector, one in another sector and an
  unrelated id; each outcome must match the hand-written table in tests/access_policy.py. Each case runs in a
  savepoint that is rolled back, so writes do not leak into later cases.
* ``test_every_route_and_event_has_an_expected_row`` (and its throwaway-app twin): a route or socket event
  without a row fails the suite.
* ``test_socket_matrix``: connect and every SOCKET_POLICY event, with a real python-socketio client.
* ``test_idor_sweep*``: real ids/tokens of objects the caller may not touch, in paths, query strings and
  bodies; 0 unauthorised reads (a 2xx carrying the object's data) and 0 unauthorised writes (table snapshots).
* ``test_contacts_*``: planted contact values (name, phone, e-mail, chat handle) appear only where
  tests/access_policy.py CONTACT_VIEW allows.
"""

from __future__ import annotations

import io
import random
import threading
import time
import uuid
import zipfile
from contextlib import contextmanager

import pytest
import socketio as sio_client
from sqlalchemy import select

from server.extensions import db
from server.models import ROLES, Appeal, AppealEvent, Staff
from server.realtime.events import SOCKET_POLICY
from tests.access_policy import (
    CALLERS,
    CONTACT_VIEW,
    DENY,
    EXPECTED,
    HIDE,
    HOME_UNIT,
    KINDS,
    LOGIN,
    NO_OBJECT,
    OBJECT_ROUTES,
    OK,
    REFUSED,
    SERVED_CONTACT_FIELDS,
    SOCKET_EXPECTED,
    UNIT_ROLES,
    Call,
    build_call,
)
from tests.access_world import World
from tests.conftest import bearer, make_staff
from tests.realtime_server import LiveServer, sector_points

SKIPPED_METHODS = {"HEAD", "OPTIONS"}
BAD_REQUEST_CODES = {"validation_failed", "csrf_failed", "bad_request"}


# --- the checks that a route or an event without a row fails the suite ------------------------------------------------


def route_keys(app) -> set[tuple[str, str]]:
    """Every (endpoint, method) the app answers."""
    return {(r.endpoint, m) for r in app.url_map.iter_rules() for m in r.methods - SKIPPED_METHODS}


def uncovered_routes(app) -> tuple[set, set]:
    """(routes with no row in EXPECTED, rows for routes that no longer exist)."""
    keys = route_keys(app)
    return keys - set(EXPECTED), set(EXPECTED) - keys


def uncovered_events(policy: dict) -> tuple[set, set]:
    """(socket events with no row in SOCKET_EXPECTED, rows for events that no longer exist)."""
    events = {"connect", *policy}
    return events - set(SOCKET_EXPECTED), set(SOCKET_EXPECTED) - events


def test_every_route_and_event_has_an_expected_row(app):
    missing, stale = uncovered_routes(app)
    assert not missing, f"routes without a row in tests/access_policy.py EXPECTED: {sorted(missing)}"
    assert not stale, f"rows in EXPECTED for routes that do not exist: {sorted(stale)}"
    missing, stale = uncovered_events(SOCKET_POLICY)
    assert not missing and not stale, (missing, stale)
    for key, row in EXPECTED.items():
        assert set(row) == set(CALLERS), key
        for caller, outcome in row.items():
            if isinstance(outcome, dict):
                assert set(outcome) == set(KINDS), (key, caller)


def test_a_new_route_or_event_without_a_row_fails(committed_app):
    committed_app.add_url_rule("/probe-unlisted", "probe_unlisted", lambda: "secret", methods=["GET", "POST"])
    missing, _stale = uncovered_routes(committed_app)
    assert missing == {("probe_unlisted", "GET"), ("probe_unlisted", "POST")}
    missing, _stale = uncovered_events({**SOCKET_POLICY, "probe.event": frozenset({"admin"})})
    assert missing == {"probe.event"}


# --- running one case -------------------------------------------------------------------------------------------------


def classify(res) -> str:
    """The outcome class of a response (see tests/access_policy.py)."""
    status = res.status_code
    if 300 <= status < 400:
        return LOGIN if "/login" in res.headers.get("Location", "") else OK
    if status < 300:
        return OK
    if status == 401:
        return LOGIN
    if status == 403:
        return DENY
    if status == 404:
        return HIDE
    if status in (409, 422):
        return OK  # a business rule answered a well-formed request: the caller got in, the object was found
    if status == 400:
        code = error_code(res)
        return f"400 {code}" if code in BAD_REQUEST_CODES or code is None else OK
    return f"status {status}"


def error_code(res) -> str | None:
    """The JSON error code of a response, if any."""
    try:
        body = res.get_json(silent=True)
    except Exception:
        return None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return body["error"].get("code")
    return None


@contextmanager
def rolled_back():
    """Run a case in a savepoint that is rolled back afterwards (the world stays as built)."""
    db.session.rollback()  # end the session's own savepoint, so ours is outside it
    connection = db.session.get_bind()
    savepoint = connection.begin_nested()
    try:
        yield
    finally:
        db.session.rollback()
        if savepoint.is_active:
            savepoint.rollback()
        db.session.expire_all()


def send(w: World, call: Call, caller: str):
    """Make ``call`` as ``caller``: bearer for the API and Open311, a browser session (+ CSRF) for pages."""
    headers = dict(call.headers)
    page = not call.path.startswith(("/api/", "/open311/"))
    if caller == "anon" or page:
        name = None if caller == "anon" else caller
        client, csrf = w.cookie_login(name) if call.fresh_login else w.cookie_client(name)
        if call.method != "GET":
            headers["X-CSRFToken"] = csrf
    else:
        client = w.client
        headers.update(bearer(w.staff[caller]) if call.fresh_login else w.headers[caller])
    kwargs = {"method": call.method, "headers": headers, "query_string": call.query}
    if call.json is not None:
        kwargs["json"] = call.json
    if call.data is not None:
        kwargs["data"] = call.data
    if call.content_type:
        kwargs["content_type"] = call.content_type
    return client.open(call.path, **kwargs)


def expected_outcome(key, caller, kind) -> str:
    """The table's outcome for one case."""
    outcome = EXPECTED[key][caller]
    return outcome[kind] if isinstance(outcome, dict) else outcome


def format_mismatches(rows: list[tuple]) -> str:
    """A readable table of (route, method, caller, kind, expected, got, status, detail)."""
    head = ("endpoint", "method", "caller", "object", "expected", "got", "status", "detail")
    rows = [head, *rows]
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(head))]
    return "\n".join("  ".join(str(v).ljust(widths[i]) for i, v in enumerate(r)) for r in rows)


@pytest.fixture
def world(app, client, db_session, monkeypatch):
    """The objects of tests/access_world.py, built in this test's transaction."""
    monkeypatch.setitem(app.config, "JAUAP_REPORT_LIMITS", "100000/60")
    return World(app, client).build()


def run_matrix(world: World, keys) -> tuple[int, list[tuple]]:
    """Try every case of ``keys``; returns (cases, mismatches)."""
    mismatches, cases = [], 0
    for key in sorted(keys):
        kinds = KINDS if key in OBJECT_ROUTES else NO_OBJECT
        for caller in CALLERS:
            for kind in kinds:
                cases += 1
                with rolled_back():
                    res = send(world, build_call(key, world, caller, kind), caller)
                    res.get_data()  # read streamed bodies (exports) inside the case
                    got = classify(res)
                want = expected_outcome(key, caller, kind)
                if got != want:
                    detail = error_code(res) or res.get_data(as_text=True)[:60].replace("\n", " ")
                    mismatches.append((*key, caller, kind, want, got, res.status_code, detail))
    return cases, mismatches


# PostGIS under the slow target only: the per-push suite keeps its time budget, and the object rules are the
# same SQL on both backends (``visibility``); the contact and socket tests run on both on every push.
@pytest.mark.parametrize("backend", ["spatialite", pytest.param("postgis", marks=pytest.mark.slow)], indirect=True)
def test_route_matrix(world):
    """Every route x method x caller x object kind against EXPECTED."""
    started = time.monotonic()
    cases, mismatches = run_matrix(world, EXPECTED)
    print(f"\naccess matrix: {cases} cases in {time.monotonic() - started:.1f} s, {len(mismatches)} mismatches")
    assert cases >= 2000
    assert not mismatches, f"{len(mismatches)} of {cases} cases differ from tests/access_policy.py:\n" + \
        format_mismatches(mismatches)


# --- contact fields -------------------------------------------------------------------------------------------------

ANALYTICS_VIEWS = ("type", "topic", "sector", "channel", "trend", "backlog", "timeliness_sector", "timeliness_unit",
                   "ratings", "hotspots")


def body_text(res) -> str:
    """A response body as text; an XLSX export's sheets and shared strings unzipped."""
    data = res.get_data()
    if data[:2] == b"PK":
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            return "\n".join(z.read(n).decode("utf-8", "replace") for n in z.namelist() if n.endswith(".xml"))
    return data.decode("utf-8", "replace")


def kind_of(w: World, role: str, appeal_id: int) -> str:
    """The object kind of a world appeal for ``role`` (own: assigned to a unit caller / registered by a centre one)."""
    appeal = db.session.get(Appeal, appeal_id)
    me = w.staff[role].id
    if appeal.assignee_id == me or (role not in UNIT_ROLES and appeal.created_by_id == me):
        return "own"
    return "same" if appeal.unit is not None and appeal.unit.code == HOME_UNIT else "other"


def contact_views(w: World, caller: str) -> list[tuple[str, object, set[int]]]:
    """(label, response, ids of appeals whose name/phone it may carry) for every list, export and view tried."""
    appeal_ids = sorted(w.contacts)

    def may(ids):
        if caller == "anon":
            return set()
        return {a for a in ids if CONTACT_VIEW[caller][kind_of(w, caller, a)]}

    def api(path, **query):
        headers = w.headers[caller] if caller != "anon" else {}
        client = w.client if caller != "anon" else w.cookie_client(None)[0]
        res = client.get(path, headers=headers, query_string=query)
        res.get_data()  # a streamed export must be read before the next request
        return res

    out = [("GET /api/v1/appeals", api("/api/v1/appeals", per_page=500), may(appeal_ids))]
    # One view per kind of appeal (the list above covers them all): the caller's own, S1 ones assigned to a
    # field worker and to the unit head, S2 ones, the Open311 request.
    for a in sorted({w.appeal_id(caller, "own"), w.appeals["same"], w.appeals["own:field_staff"],
                     w.appeals["own:unit_head"], w.appeals["other"], w.appeals["other_head"], w.appeals["open311"]}):
        out.append((f"GET /api/v1/appeals/{a}", api(f"/api/v1/appeals/{a}"), may([a])))
        out.append((f"GET /api/v1/appeals/{a}/photos", api(f"/api/v1/appeals/{a}/photos"), set()))
        token = db.session.get(Appeal, a).tracking_token
        out.append((f"GET /api/v1/public/tracking/{a}", api(f"/api/v1/public/tracking/{token}"), set()))
        out.append((f"GET /t/{a}", w.cookie_client(None if caller == "anon" else caller)[0].get(f"/t/{token}"), set()))
        out.append((f"GET open311 request {a}",
                    api(f"/open311/v2/requests/{db.session.get(Appeal, a).reg_no}.json"), set()))
    for path, query in (("/api/v1/map/appeals", {}), ("/api/v1/map/counters", {}), ("/api/v1/events", {"after": 0}),
                        ("/api/v1/appeals/similar", {"lat": w.points["S1"][1], "lon": w.points["S1"][0],
                                                     "topic": "roads"}),
                        ("/api/v1/analytics/dashboard", {}), ("/api/v1/qc/queue", {}), ("/api/v1/staff", {}),
                        ("/api/v1/shifts", {}), ("/api/v1/staff/positions", {}),
                        ("/open311/v2/requests.json", {}), ("/open311/v2/requests.xml", {}),
                        ("/open311/v2/servicerequestupdates.json", {"start_date": "2026-01-01T00:00:00Z"})):
        out.append((f"GET {path}", api(path, **query), set()))
    for view in ANALYTICS_VIEWS:
        for fmt in ("csv", "xlsx"):
            out.append((f"export {view}.{fmt}", api("/api/v1/analytics/export", view=view, format=fmt), set()))
    # The QC analyst phones the citizens of the call-back sample (audited): their name and phone are served.
    out.append(("GET /api/v1/qc/callbacks", api("/api/v1/qc/callbacks"),
                may(appeal_ids) if caller == "qc_analyst" else set()))
    return out


def test_contacts_only_where_the_table_allows(world, app):
    """Planted name/phone/e-mail/chat handle of every world appeal, searched in every list, view and export."""
    leaks, shown, responses = [], set(), 0
    for caller in CALLERS:
        for label, res, allowed in contact_views(world, caller):
            responses += 1
            text = body_text(res)
            for appeal_id, contact in world.contacts.items():
                for field_name, value in contact.items():
                    if not value or value not in text:
                        continue
                    if field_name in SERVED_CONTACT_FIELDS and appeal_id in allowed:
                        shown.add((caller, appeal_id, field_name))
                    else:
                        leaks.append((caller, label, res.status_code, appeal_id, field_name))
    print(f"\ncontacts: {responses} responses searched, {len(shown)} allowed showings, {len(leaks)} leaks")
    assert not leaks, "contact fields served where tests/access_policy.py CONTACT_VIEW forbids:\n" + "\n".join(
        f"  {c:14} {lbl:45} {st} appeal {a} {f}" for c, lbl, st, a, f in leaks)
    # The search is not blind: every role CONTACT_VIEW allows did get the planted values of its appeals.
    same = world.appeals["same"]
    for role in ROLES:
        if CONTACT_VIEW[role]["same"]:
            assert (role, same, "phone") in shown and (role, same, "name") in shown, role
    own_field = world.appeals["own:field_staff"]
    assert ("field_staff", own_field, "phone") in shown


# --- the IDOR sweep -------------------------------------------------------------------------------------------------

APPEAL_ROUTES = (("api.get_appeal", "GET"), ("api.list_photos", "GET"), ("api.appeal_transition", "POST"),
                 ("api.reassign_appeal", "POST"), ("api.extend_appeal", "POST"), ("api.pause_appeal", "POST"),
                 ("api.resume_appeal", "POST"), ("api.upload_photo", "POST"), ("api.qc_approve", "POST"),
                 ("api.qc_return", "POST"))
# Tables a refused request must leave exactly as they were (audit entries, tokens and positions may move).
GUARDED_TABLES = ("appeal", "appeal_event", "attachment", "citizen", "feedback", "push_subscription", "staff",
                  "api_key", "qc_callback", "sla_policy", "calendar_override", "reply_template")


class Pinned:
    """The world, with every appeal-of-kind lookup answering one given appeal (to swap ids into a request)."""

    def __init__(self, world: World, appeal_id: int):
        self._world, self._appeal_id = world, appeal_id

    def __getattr__(self, name):
        return getattr(self._world, name)

    def appeal_id(self, caller: str, kind: str) -> int:
        return self._appeal_id


def snapshot() -> dict[str, list[tuple]]:
    """Every row of the guarded tables."""
    out = {}
    for name in GUARDED_TABLES:
        table = db.metadata.tables[name]
        rows = db.session.execute(select(table).order_by(*table.primary_key.columns))
        # Geometries by their bytes (a WKBElement's repr carries its memory address).
        out[name] = [repr(tuple(getattr(v, "desc", v) for v in r)) for r in rows]
    return out


def appeal_secrets(w: World, appeal_id: int) -> list[str]:
    """Strings that only a reader of the appeal could know: its description, contact, tracking token."""
    appeal = db.session.get(Appeal, appeal_id)
    return [w.markers.get(appeal_id, "\x00"), appeal.tracking_token,
            *[v for v in w.contacts.get(appeal_id, {}).values() if v]]


def sweep_cases(w: World, extra: list[int]):
    """(label, caller, Call, secrets, expected class) for the sweep.

    ``secrets``: strings that must not come back in a 2xx body (None: any 2xx at all is an unauthorised read).
    """
    pool = [w.appeals["same"], w.appeals["other"], w.appeals["other_head"], w.appeals["open311"],
            *[w.appeals[f"own:{r}"] for r in ROLES], *extra]
    secrets = {a: appeal_secrets(w, a) for a in pool}
    sector_of = {a: db.session.get(Appeal, a).sector.code for a in pool}
    point_of = {a: w.points[sector_of[a]] for a in pool}
    s1_own = {r: w.appeals[f"own:{r}"] for r in ROLES}

    # 1. Ids in paths: every appeal route, every caller, every appeal the table says the caller may not use.
    for caller in CALLERS:
        for a in pool:
            kind = "other" if caller == "anon" else kind_of(w, caller, a)
            for key in APPEAL_ROUTES:
                want = expected_outcome(key, caller, kind)
                if want != OK:
                    yield f"path {key[0]}", caller, build_call(key, Pinned(w, a), caller, kind), secrets[a], want
    # 2. Ids in query strings: sector filters, boxes around foreign points, event cursors, for unit roles.
    first_event = {a: db.session.scalar(select(AppealEvent.id).where(AppealEvent.appeal_id == a)
                                        .order_by(AppealEvent.id)) for a in pool}
    for caller in UNIT_ROLES:
        for a in pool:
            if sector_of[a] == "S1":
                continue
            lon, lat = point_of[a]
            box = f"{lon - 0.001},{lat - 0.001},{lon + 0.001},{lat + 0.001}"
            for path, query in (("/api/v1/appeals", {"sector": sector_of[a]}), ("/api/v1/appeals", {"bbox": box}),
                                ("/api/v1/map/appeals", {"sector": sector_of[a]}),
                                ("/api/v1/map/appeals", {"bbox": box}),
                                ("/api/v1/events", {"after": first_event[a] - 1, "limit": 3}),
                                ("/api/v1/appeals", {"sector": sector_of[a], "status": "routed,assigned,resolved"})):
                yield f"query {path}", caller, Call("GET", path, query=query), secrets[a], OK
    # People of another unit: a unit head's staff lists, positions and shift roster show their own unit only.
    u2_people = [w.staff[n].username for n in ("field_u2", "head_u2")]
    for path in ("/api/v1/staff", "/api/v1/staff/positions", "/api/v1/shifts"):
        for query in ({}, {"unit": "U2"}, {"staff_id": w.staff_id("field_u2")}):
            want = OK if not query or path == "/api/v1/staff/positions" else None
            yield f"query {path}", "unit_head", Call("GET", path, query=query), u2_people, want
    # 3. Ids in JSON bodies: a foreign id smuggled next to a valid body, a foreign target for the caller's own work.
    for caller in UNIT_ROLES:
        own = s1_own[caller]
        for a in pool:
            if sector_of[a] == "S1":
                continue
            yield ("body transition+appeal_id", caller,
                   Call("POST", f"/api/v1/appeals/{own}/transitions", json={"action": "accept", "appeal_id": a}),
                   secrets[a], "400 validation_failed")
            yield ("body reassign+appeal_id", caller,
                   Call("POST", f"/api/v1/appeals/{own}/reassign", json={"staff_id": w.staff_id("peer"),
                                                                          "appeal_id": a}),
                   secrets[a], "400 validation_failed" if caller == "unit_head" else DENY)
    for caller in ("unit_head",):
        for target in ("field_u2", "head_u2"):  # a unit head cannot hand their unit's work to another unit
            for a in [w.appeals["same"], *[s1_own[r] for r in ROLES]]:
                yield ("body reassign->other unit", caller,
                       Call("POST", f"/api/v1/appeals/{a}/reassign", json={"staff_id": w.staff_id(target)}), [], OK)
            yield ("body reassign unit", caller,
                   Call("POST", f"/api/v1/appeals/{w.appeals['same']}/reassign", json={"unit": "U2"}), [], OK)
    # 4. Photos: another sector's photos for unit roles; originals for roles that may not have them.
    photos = {"same_before": w.appeals["same"], "same": w.appeals["same"], "other_before": w.appeals["other"],
              "other": w.appeals["other"], "own": w.appeals["own:field_staff"]}
    originals = {"inspector", "qc_analyst", "dispatcher", "unit_head"}  # services.evidence ORIGINAL_ROLES
    for caller in CALLERS:
        for name, appeal_id in photos.items():
            pid = w.photos[name]
            for variant in ("thumb", "large", "original"):
                hidden = caller in UNIT_ROLES and sector_of[appeal_id] != "S1"
                uploader = caller == "field_staff" and name == "own"
                if caller == "anon":
                    want = LOGIN
                elif hidden:
                    want = HIDE
                elif variant == "original" and caller not in originals and not uploader:
                    want = DENY
                else:
                    continue
                # The body is the image itself: any 2xx is a read (secrets None).
                yield f"photo {variant}", caller, Call("GET", f"/api/v1/photos/{pid}/{variant}"), None, want
    # 5. Tracking: a photo of one appeal under another appeal's token; originals never; made-up ids.
    tokens = {a: db.session.get(Appeal, a).tracking_token for a in pool}
    for caller in CALLERS:
        for a in pool:
            for name, owner in photos.items():
                if owner == a and name in ("same", "other"):
                    continue  # its own after photo: allowed
                for variant in ("large", "original"):
                    yield ("tracking photo swap", caller,
                           Call("GET", f"/api/v1/public/tracking/{tokens[a]}/photos/{w.photos[name]}/{variant}"),
                           None, HIDE)
    # 6. Other people's things: push subscriptions, staff records, keys, policies, days, call-backs, templates.
    people = [n for n in w.staff if n != "admin"]
    for caller in ROLES:
        for owner, endpoint in w.push.items():
            if owner != caller and caller != "admin":
                yield "unsubscribe other", caller, Call("DELETE", "/api/v1/push/subscriptions",
                                                        json={"endpoint": endpoint}), [], OK
        if caller != "admin":
            for person in people:
                yield "patch staff", caller, Call("PATCH", f"/api/v1/staff/{w.staff_id(person)}",
                                                  json={"unit": "U2", "active": False}), [], DENY
            for kind in ("own", "same", "other"):
                for what, path in (("api_key", "/api/v1/admin/api-keys/{}"),
                                   ("sla_policy", "/api/v1/admin/sla-policies/{}"),
                                   ("calendar_day", "/api/v1/admin/calendar/{}")):
                    yield f"delete {what}", caller, Call("DELETE", path.format(w.admin_object(what, kind))), [], DENY
        if caller != "qc_analyst":
            for kind in ("own", "same", "other"):
                yield "record call-back", caller, Call("POST", f"/api/v1/qc/callbacks/{w.callback_sample(kind)}",
                                                       json={"reached": False}), [], DENY
        if caller not in ("methodologist", "admin"):
            yield "save template", caller, Call("PUT", "/api/v1/reply-templates", json={
                "moment": "registered", "language": "en", "body": "Hacked {reg_no}"}), [], DENY
    # 7. Open311: another client's request, phone appeals, with a second key and a revoked one.
    for key_name, api_key in (("K2", w.k2), ("revoked", w.revoked_key)):
        for a in pool:
            rid = db.session.get(Appeal, a).reg_no
            if key_name == "K2" or a == w.appeals["open311"]:
                yield (f"open311 update {key_name}", "anon",
                       Call("POST", "/open311/v2/servicerequestupdates.json", data={
                           "api_key": api_key, "service_request_id": rid, "description": "Closed by me",
                           "updated_datetime": "2026-11-20T10:00:00+05:00", "update_id": uuid.uuid4().hex,
                           "status": "CLOSED"}, content_type="application/x-www-form-urlencoded"), [], DENY)


def run_sweep(w: World, extra: int, sample: float | None):
    """Make the sweep's requests; returns (requests made, unauthorised reads, mismatching classes, writes)."""
    w.add_extra_appeals(extra)
    cases = list(sweep_cases(w, w.extra))
    if sample is not None:
        cases = random.Random(7).sample(cases, int(len(cases) * sample))
    before = snapshot()
    reads, mismatches = [], []
    for label, caller, call, secrets, want in cases:
        res = send(w, call, caller)
        if 200 <= res.status_code < 300:
            text = res.get_data().decode("utf-8", "replace")
            if secrets is None or any(s in text for s in secrets):
                reads.append((label, caller, call.method, call.path, res.status_code))
        got = classify(res)
        if want is not None and got != want:
            mismatches.append((label, caller, call.method, call.path, want, got, res.status_code, error_code(res)))
    db.session.rollback()
    db.session.expire_all()
    after = snapshot()
    writes = {t: (set(before[t]) ^ set(after[t])) for t in GUARDED_TABLES if before[t] != after[t]}
    return len(cases), reads, mismatches, writes


def check_sweep(w: World, extra: int, sample: float | None, minimum: int) -> None:
    started = time.monotonic()
    made, reads, mismatches, writes = run_sweep(w, extra, sample)
    took = time.monotonic() - started
    print(f"\nIDOR sweep: {made} requests in {took:.1f} s: {len(reads)} unauthorised reads, "
          f"{sum(len(v) for v in writes.values())} unauthorised row changes, {len(mismatches)} unexpected statuses")
    assert made >= minimum
    assert not reads, "unauthorised reads:\n" + "\n".join(map(str, reads[:50]))
    assert not writes, "unauthorised writes (rows before/after that differ): " + "; ".join(
        f"{t}: {len(rows)} rows, e.g. {sorted(rows)[:2]}" for t, rows in writes.items())
    assert not mismatches, f"{len(mismatches)} statuses differ from the table:\n" + "\n".join(
        map(str, mismatches[:80]))


@pytest.mark.parametrize("backend", ["spatialite"], indirect=True)
def test_idor_sweep(world, monkeypatch):
    """A sample of the sweep on every push (SpatiaLite: the object rules are SQL shared by both backends, which
    test_route_matrix runs on both; one backend keeps the sweep fast).

    Then the checks are shown not to be blind: with unit staff allowed to see the whole city (a broken
    ``visibility``), both the matrix and the sweep report it.
    """
    check_sweep(world, extra=6, sample=0.4, minimum=1500)

    from sqlalchemy import true

    from server.services import appeals as appeal_service

    monkeypatch.setattr(appeal_service, "visibility", lambda viewer: true())
    _cases, mismatches = run_matrix(world, [("api.get_appeal", "GET"), ("api.list_photos", "GET")])
    assert {(m[2], m[3]) for m in mismatches} == {("unit_head", "other"), ("field_staff", "other")}
    _made, reads, _mismatches, writes = run_sweep(world, extra=0, sample=0.3)
    assert {label for label, *_rest in reads} >= {"path api.get_appeal", "query /api/v1/appeals"}
    assert "appeal" in writes and "appeal_event" in writes


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["spatialite"], indirect=True)
def test_idor_sweep_full(world):
    """The whole sweep: at least 5,000 requests (SpatiaLite, see test_idor_sweep)."""
    check_sweep(world, extra=40, sample=None, minimum=5000)


# --- Socket.IO: the event matrix, what each role receives, ids in event payloads ------------------------------------


class SocketCaller:
    """A real python-socketio client over loopback that records every message it receives."""

    def __init__(self, url: str, token: str | None):
        self.received: list[tuple[str, object]] = []
        self.client = sio_client.Client(reconnection=False)
        self.client.on("*", lambda event, data=None: self.received.append((event, data)))
        self.refused = False
        try:
            self.client.connect(url, auth={"token": token} if token else None, transports=["websocket"],
                                wait_timeout=5)
        except sio_client.exceptions.ConnectionError:
            self.refused = True

    def call(self, event: str, data) -> str:
        """Emit ``event`` and classify its acknowledgement."""
        if self.refused:
            return REFUSED
        ack = self.client.call(event, data, timeout=5)
        if isinstance(ack, dict) and ack.get("ok") is False and ack.get("error") == "forbidden":
            return REFUSED
        return OK if isinstance(ack, dict) else f"ack {ack!r}"

    def close(self):
        if self.client.connected:
            threading.Thread(target=self.client.disconnect, daemon=True).start()


def _socket_people(app):
    """Staff of every role (unit roles in U1) plus a U2 field worker; their ids and bearer tokens."""
    from server.models.types import utcnow
    from server.services.staff import issue_token

    with app.app_context():
        people = {r: make_staff(r, unit=HOME_UNIT if r in UNIT_ROLES else None) for r in ROLES}
        people["field_u2"] = make_staff("field_staff", unit="U2")
        out = {name: (s.id, issue_token(s, utcnow(), 12)[0]) for name, s in people.items()}
        db.session.commit()
        db.session.remove()
    return out


SOCKET_BACKENDS = ["spatialite", pytest.param("postgis", marks=pytest.mark.slow)]  # the socket layer is DB-agnostic


@pytest.mark.parametrize("backend", SOCKET_BACKENDS, indirect=True)
def test_socket_matrix(committed_app):
    """connect and every SOCKET_POLICY event, as every role and anonymously, match SOCKET_EXPECTED."""
    people = _socket_people(committed_app)
    points = sector_points(committed_app)
    lon, lat = points["S1"]
    payloads = {"echo": {"x": 1}, "position": {"lat": lat, "lon": lon, "accuracy_m": 10}}
    mismatches, callers = [], []
    with LiveServer(committed_app) as server:
        try:
            for caller in CALLERS:
                sock = SocketCaller(server.url, None if caller == "anon" else people[caller][1])
                callers.append(sock)
                got = {"connect": REFUSED if sock.refused else OK}
                for event in SOCKET_POLICY:
                    got[event] = sock.call(event, payloads[event])
                for event in SOCKET_EXPECTED:
                    want = SOCKET_EXPECTED[event][caller]
                    if got[event] != want:
                        mismatches.append((event, caller, want, got[event]))
        finally:
            for sock in callers:
                sock.close()
    assert not mismatches, f"socket outcomes differ from SOCKET_EXPECTED: {mismatches}"


@pytest.mark.parametrize("backend", SOCKET_BACKENDS, indirect=True)
def test_socket_payloads_carry_no_contacts_and_stay_in_their_sector(committed_app):
    """Live events reach only the rooms that may see them, without contacts; foreign ids in payloads change nothing."""
    from server.models import StaffPosition

    people = _socket_people(committed_app)
    points = sector_points(committed_app)
    client = committed_app.test_client()
    with committed_app.app_context():
        operator = db.session.get(Staff, people["operator"][0])
        headers = bearer(operator)
        db.session.remove()
    marks = {s: f"+7 777 {random.randint(100, 999)} {random.randint(1000, 9999)}" for s in ("S1", "S2")}
    names = {s: f"Socket Citizen {uuid.uuid4().hex[:8]}" for s in ("S1", "S2")}
    socks, requests = {}, 0
    with LiveServer(committed_app) as server:
        try:
            for name in (*ROLES, "field_u2"):
                socks[name] = SocketCaller(server.url, people[name][1])
                assert not socks[name].refused, name
            created = {}
            for sector in ("S1", "S2"):
                lon, lat = points[sector]
                res = client.post("/api/v1/appeals", headers=headers, json={
                    "type": "complaint", "topic": "roads", "description": f"Socket probe {sector}", "lat": lat,
                    "lon": lon, "channel": "phone", "citizen": {"name": names[sector], "phone": marks[sector]}})
                assert res.status_code == 201, res.json
                created[sector] = res.json["id"]
            with committed_app.app_context():
                before = {r.staff_id: (r.lon, r.lat) for r in db.session.scalars(select(StaffPosition))}
                appeals_before = [tuple(r) for r in db.session.execute(select(Appeal.id, Appeal.status,
                                                                              Appeal.unit_id, Appeal.assignee_id))]
                db.session.remove()
            # Ids of other people and of another sector's appeal, smuggled into every event's payload.
            lon2, lat2 = points["S2"]
            for sock in socks.values():
                for extra in ({"staff_id": people["field_u2"][0]}, {"appeal_id": created["S2"]},
                              {"staff": people["unit_head"][0], "unit": "U2"}):
                    for event in SOCKET_POLICY:
                        sock.call(event, {"lat": lat2, "lon": lon2, "accuracy_m": 5, **extra})
                        requests += 1
            time.sleep(1.0)  # let the last broadcasts arrive
            with committed_app.app_context():
                after = {r.staff_id: (r.lon, r.lat) for r in db.session.scalars(select(StaffPosition))}
                appeals_after = [tuple(r) for r in db.session.execute(select(Appeal.id, Appeal.status,
                                                                             Appeal.unit_id, Appeal.assignee_id))]
                db.session.remove()
        finally:
            for sock in socks.values():
                sock.close()
    problems = []
    for name, sock in socks.items():
        text = repr(sock.received)
        for sector in ("S1", "S2"):
            if marks[sector] in text or names[sector] in text:
                problems.append(f"{name} received the {sector} citizen's contact")
        seen = {d.get("appeal", {}).get("id") for _e, d in sock.received if isinstance(d, dict)}
        seen |= {p.get("appeal", {}).get("id") for _e, d in sock.received if isinstance(d, dict)
                 for p in d.get("events", [])}
        home = "S2" if name == "field_u2" else "S1"
        away = "S1" if home == "S2" else "S2"
        if name in UNIT_ROLES or name == "field_u2":
            if created[away] in seen:
                problems.append(f"{name} ({home}) received an event of the {away} appeal")
            if created[home] not in seen:
                problems.append(f"{name} missed its own sector's appeal (the check would be blind)")
        elif not {created["S1"], created["S2"]} <= seen:
            problems.append(f"{name} (city-wide) missed an appeal event (the check would be blind)")
    moved = {sid: (before.get(sid), pos) for sid, pos in after.items()
             if before.get(sid) != pos and sid not in (people["field_staff"][0], people["unit_head"][0],
                                                       people["field_u2"][0])}
    if moved:
        problems.append(f"positions of people who sent nothing changed: {moved}")
    if appeals_before != appeals_after:
        problems.append("appeals changed through socket events")
    for name in ("field_staff", "unit_head"):
        pos = after.get(people[name][0])
        assert pos is None or pos == (lon2, lat2)  # only their own row, with what they sent
    print(f"\nsocket sweep: {requests} events with foreign ids from {len(socks)} clients; {len(problems)} problems")
    assert not problems, problems


def test_a_unit_heads_shift_roster_shows_their_unit_only(client, as_role):
    """Like GET /staff and /staff/positions, the roster a unit head gets names only their unit's people.

    It used to list every active person of every unit and of the centre (usernames, roles, duty).
    """
    _h, head = as_role("unit_head", unit="U1")
    mine = make_staff("field_staff", unit="U1")
    theirs = make_staff("field_staff", unit="U2")
    centre = make_staff("operator")
    for person in (mine, theirs, centre):
        person.shift_code = "A"
    db.session.commit()
    names = {p["username"] for s in client.get("/api/v1/shifts", headers=head).json for p in s["staff"]}
    assert mine.username in names and theirs.username not in names and centre.username not in names
    _d, disp = as_role("dispatcher")
    everyone_ = {p["username"] for s in client.get("/api/v1/shifts", headers=disp).json for p in s["staff"]}
    assert {mine.username, theirs.username, centre.username} <= everyone_

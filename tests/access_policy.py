"""The access policy as a reviewer reads it, and the objects the access tests try it on.

``EXPECTED`` says, for every HTTP route x method, what each caller (every role of
``server.models.ROLES``, plus ``anon``) gets for each kind of object:

* ``own``: the caller's own object (an appeal assigned to them, their own push subscription, ...);
* ``same``: an object in the caller's sector (unit roles are in unit U1 = sector S1; centre roles are
  city-wide, so "same" and "other" are both simply somebody else's object in the city);
* ``other``: an object in another sector (S2 / U2), or somebody else's;
* ``unrelated``: an id or token that belongs to nothing.

Routes that take no object are tried once per caller (kind ``-``).

The table is written out by hand from the rules in ``server/security.py`` and the object rules in
the services (unit staff see their own sector only and get 404 elsewhere, ...). It deliberately does
NOT import or call the server's policy functions: if the server changes, this table and the server
disagree and ``tests/test_access_matrix.py`` fails. ``ROLES`` is imported only to enumerate callers.

Outcome classes (how ``classify`` in the test reads a response):

* ``OK``: the policy let the caller in and the object was found: 2xx, a redirect that is not to
  /login, or a business-rule refusal of a well-formed request (409, 422, or a 400 whose code is not
  ``validation_failed``/``csrf_failed``/``bad_request``). Request bodies are valid, so a schema error
  (400 ``validation_failed``) never counts as OK: it is reported as a mismatch.
* ``LOGIN``: 401, or a redirect to /login (pages).
* ``DENY``: 403.
* ``HIDE``: 404 (the object does not exist for this caller: existence does not leak).
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from server.models import ROLES

OK, LOGIN, DENY, HIDE = "ok", "login", "403", "404"
REFUSED = "refused"  # sockets: connection refused / {"ok": false, "error": "forbidden"}
KINDS = ("own", "same", "other", "unrelated")
NO_OBJECT = ("-",)
CALLERS = ("anon", *ROLES)
UNIT_ROLES = ("unit_head", "field_staff")
HOME_UNIT, OTHER_UNIT = "U1", "U2"

# Object-level shapes.
CITY = {"own": OK, "same": OK, "other": OK, "unrelated": HIDE}  # sees every existing object of the city
SECTOR = {"own": OK, "same": OK, "other": HIDE, "unrelated": HIDE}  # sees its own sector only
EXISTING = CITY  # admin objects (keys, policies, days, staff): every existing one, 404 for a made-up id
ANY_VALID = CITY  # public capability routes: whoever holds a valid token/id; 404 for a made-up one

ALL_STAFF = frozenset(ROLES)
CENTRE_ROLES = frozenset({"operator", "dispatcher", "inspector", "qc_analyst", "analyst", "methodologist",
                          "pr_manager"})
PUSH = CENTRE_ROLES | {"unit_head", "field_staff"}  # admins get no pushes
ANALYTICS = frozenset({"analyst", "pr_manager", "methodologist", "qc_analyst", "inspector", "admin"})


def rule(allowed: dict[str, Any] | frozenset | set, *, anon: Any = LOGIN, rest: Any = DENY) -> dict[str, Any]:
    """One row: ``allowed`` roles get their outcome (OK when a set is given), other staff ``rest``, anon ``anon``."""
    if not isinstance(allowed, dict):
        allowed = dict.fromkeys(allowed, OK)
    unknown = set(allowed) - set(ROLES)
    assert not unknown, f"unknown roles in the policy table: {unknown}"
    return {"anon": anon, **{r: allowed.get(r, rest) for r in ROLES}}


def everyone(outcome: Any = OK) -> dict[str, Any]:
    """Every caller, anonymous included, gets ``outcome``."""
    return dict.fromkeys(CALLERS, outcome)


def readers(unit_scope=SECTOR, city_scope=CITY, roles=ALL_STAFF) -> dict[str, Any]:
    """Appeal readers: centre roles and admins city-wide, unit roles their sector only."""
    return rule({r: (unit_scope if r in UNIT_ROLES else city_scope) for r in roles})


# (endpoint, method) -> {caller: outcome, or {kind: outcome}}
EXPECTED: dict[tuple[str, str], dict[str, Any]] = {
    # --- public: probes, pages, assets, docs, the sector map --------------------------------------------------------
    ("static", "GET"): everyone(),
    ("web.healthz", "GET"): everyone(),
    ("web.readyz", "GET"): everyone(),
    ("web.index", "GET"): everyone(),
    ("web.docs", "GET"): everyone(),
    ("web.vendor", "GET"): everyone(),
    ("api.openapi", "GET"): everyone(),
    ("api.list_topics", "GET"): everyone(),
    ("api.list_sectors", "GET"): everyone(),
    ("api.lookup_sector", "GET"): everyone(),
    ("api.ui_config", "GET"): everyone(),
    ("web.field_page", "GET"): everyone(),  # the PWA shell holds no data
    ("web.field_sw", "GET"): everyone(),
    ("web.field_manifest", "GET"): everyone(),
    ("web.field_asset", "GET"): everyone(),
    ("web.dispatch_asset", "GET"): everyone(),
    ("web.operator_asset", "GET"): everyone(),
    ("web.analytics_asset", "GET"): everyone(),
    ("web.inspector_asset", "GET"): everyone(),
    ("methodology.asset", "GET"): everyone(),
    ("citizen.asset", "GET"): everyone(),
    ("citizen.report_page", "GET"): everyone(),
    ("citizen.report_form", "GET"): everyone(),
    ("citizen.submit_report", "POST"): everyone(),  # anyone may file a report (rate-limited per address)
    # --- logging in and out -----------------------------------------------------------------------------------------
    ("web.login", "GET"): everyone(),
    ("web.login", "POST"): everyone(),
    ("web.logout", "POST"): rule(ALL_STAFF),
    ("api.create_token", "POST"): everyone(),
    ("api.revoke_token", "DELETE"): rule(ALL_STAFF),
    ("api.create_session", "POST"): everyone(),
    ("api.end_session", "DELETE"): rule(ALL_STAFF),
    ("api.me", "GET"): rule(ALL_STAFF),
    ("api.csrf_token", "GET"): rule(ALL_STAFF),
    # --- appeals ----------------------------------------------------------------------------------------------------
    ("api.create_appeal", "POST"): rule({"operator", "dispatcher"}),
    ("api.similar_appeals", "GET"): rule({"operator", "dispatcher"}),
    ("api.list_appeals", "GET"): rule(ALL_STAFF),  # every staff role reads; the list is filtered (contact test)
    ("api.get_appeal", "GET"): readers(),
    ("api.list_photos", "GET"): readers(),
    # Admins, analysts, methodologists and PR managers take no lifecycle step. The rest reach the state machine
    # (which may refuse the step: still OK here, the object was found); unit roles only in their sector.
    ("api.appeal_transition", "POST"): readers(roles=ALL_STAFF - {"admin", "analyst", "methodologist",
                                                                   "pr_manager"}),
    ("api.reassign_appeal", "POST"): readers(roles={"dispatcher", "unit_head"}),
    ("api.extend_appeal", "POST"): readers(roles={"unit_head", "inspector"}),
    ("api.pause_appeal", "POST"): readers(roles={"operator", "dispatcher", "inspector", "unit_head"}),
    ("api.resume_appeal", "POST"): readers(roles={"operator", "dispatcher", "inspector", "unit_head"}),
    # Only field staff upload, only to appeals they can see: their own (201) or a colleague's in their unit
    # (409 appeal_changed: not theirs, so OK-class here); another sector's is 404.
    ("api.upload_photo", "POST"): rule({"field_staff": SECTOR}),
    # Photos go with their appeal ("own" is the field caller's own upload, an S1 photo for everyone else).
    ("api.get_photo", "GET"): readers(),
    # --- live dispatch ----------------------------------------------------------------------------------------------
    ("api.list_events", "GET"): rule(ALL_STAFF),  # filtered by visibility (the sweep checks the content)
    ("api.map_appeals", "GET"): rule(ALL_STAFF),
    ("api.map_counters", "GET"): rule(ALL_STAFF),
    ("api.set_my_duty", "POST"): rule({"field_staff", "unit_head", "operator", "dispatcher", "inspector"}),
    ("api.report_my_position", "POST"): rule({"field_staff", "unit_head"}),
    ("api.staff_positions", "GET"): rule({"dispatcher", "operator", "inspector", "unit_head"}),
    ("api.list_staff", "GET"): rule({"dispatcher", "unit_head", "admin"}),
    ("api.list_shifts", "GET"): rule({"dispatcher", "unit_head", "admin", "operator"}),
    # Admins edit staff: any existing person (own = themselves, same = a U1 field worker, other = a U2 one).
    ("api.update_staff", "PATCH"): rule({"admin": EXISTING}),
    ("web.dispatch_page", "GET"): rule({"dispatcher", "unit_head", "operator", "inspector", "admin"}),
    ("web.operator_page", "GET"): rule({"operator", "dispatcher"}),
    # --- Web Push ---------------------------------------------------------------------------------------------------
    ("api.push_key", "GET"): rule(PUSH),
    # The subscription is keyed by its endpoint URL, a secret only the device and the push service know.
    # Subscribing with an endpoint already stored takes the row over (a shared phone, a new login: one
    # device, one owner; services.push.subscribe), so for "same"/"other" (somebody else's endpoint) the
    # answer is 200 by design: the endpoint is the capability. It cannot leak data: pushes still go to that
    # device, encrypted with the keys the caller sent, which that device cannot read.
    ("api.subscribe_push", "POST"): rule({r: {"own": OK, "same": OK, "other": OK, "unrelated": OK} for r in PUSH}),
    # 204 whether or not a row went; somebody else's row is left alone (the sweep checks the table).
    ("api.unsubscribe_push", "DELETE"): rule({r: {"own": OK, "same": OK, "other": OK, "unrelated": OK}
                                              for r in PUSH}),
    # --- the citizens' side (the tracking token is the key to one appeal) -------------------------------------------
    ("citizen.tracking_page", "GET"): everyone(ANY_VALID),
    ("citizen.tracking", "GET"): everyone(ANY_VALID),
    # A valid token whose appeal has no answer yet: 422 (OK-class); a made-up token 404.
    ("citizen.give_feedback", "POST"): everyone(ANY_VALID),
    # "after" photos of the token's own appeal only; "unrelated" is another appeal's after photo under this
    # appeal's token (a swapped id): 404.
    ("citizen.tracking_photo", "GET"): everyone(ANY_VALID),
    # --- Open311 GeoReport v2: public reads by the spec, writes with an api_key -------------------------------------
    ("open311.discovery", "GET"): everyone(),
    ("open311.list_services", "GET"): everyone(),
    ("open311.service_definition", "GET"): everyone(),
    ("open311.create_request", "POST"): everyone(),  # sent with a valid api_key: the key, not the login, decides
    ("open311.list_requests", "GET"): everyone(),
    ("open311.get_request", "GET"): everyone(ANY_VALID),  # any request by its reg_no (public fields only)
    ("open311.get_token", "GET"): everyone(ANY_VALID),
    ("open311.list_updates", "GET"): everyone(),
    # Posted with key K1: "own" is K1's own request (201); somebody else's request is 403 (only the client that
    # filed a request may post to it), a made-up id 404.
    ("open311.post_update", "POST"): everyone({"own": OK, "same": DENY, "other": DENY, "unrelated": HIDE}),
    # Only "after" photos of resolved requests that came in through Open311 are published. The photos tried
    # here are evidence of phone appeals: 404 for everyone, whatever the id.
    ("open311.media", "GET"): everyone({k: HIDE for k in KINDS}),
    **{("open311.unknown", m): everyone(HIDE) for m in ("GET", "POST", "PUT", "PATCH", "DELETE")},
    # --- chat webhooks: they authenticate the provider (secret header / HMAC), never a staff login ------------------
    ("channels.telegram_webhook", "POST"): everyone(DENY),
    ("channels.meta_verify", "GET"): everyone(DENY),
    ("channels.meta_webhook", "POST"): everyone(DENY),
    # --- administration ---------------------------------------------------------------------------------------------
    ("api.create_api_key", "POST"): rule({"admin"}),
    ("api.list_api_keys", "GET"): rule({"admin"}),
    ("api.revoke_api_key", "DELETE"): rule({"admin": EXISTING}),
    ("api.list_sla_policies", "GET"): rule({"admin"}),
    ("api.save_sla_policy", "PUT"): rule({"admin"}),
    ("api.delete_sla_policy", "DELETE"): rule({"admin": EXISTING}),
    ("api.get_calendar", "GET"): rule({"admin"}),
    ("api.set_calendar_day", "PUT"): rule({"admin"}),
    ("api.delete_calendar_day", "DELETE"): rule({"admin": EXISTING}),
    # --- reply templates --------------------------------------------------------------------------------------------
    ("methodology.templates_page", "GET"): rule({"methodologist", "admin"}),
    ("api.list_reply_templates", "GET"): rule({"methodologist", "admin"}),
    ("api.save_reply_template", "PUT"): rule({"methodologist", "admin"}),
    ("api.reset_reply_template", "DELETE"): rule({"methodologist", "admin"}),
    # --- analytics (no personal data) -------------------------------------------------------------------------------
    ("web.analytics_page", "GET"): rule(ANALYTICS),
    ("api.analytics_dashboard", "GET"): rule(ANALYTICS),
    ("api.analytics_export", "GET"): rule(ANALYTICS),
    # --- quality control --------------------------------------------------------------------------------------------
    ("web.inspector_page", "GET"): rule({"inspector", "qc_analyst"}),
    ("api.qc_queue", "GET"): rule({"inspector"}),
    # Inspectors are city-wide. "own" (the inspector's own, unresolved appeal) reaches the state machine, which
    # refuses to verify unresolved work (422, OK-class).
    ("api.qc_approve", "POST"): rule({"inspector": CITY}),
    ("api.qc_return", "POST"): rule({"inspector": CITY}),
    ("api.qc_callbacks", "GET"): rule({"qc_analyst"}),
    ("api.qc_record_callback", "POST"): rule({"qc_analyst": CITY}),
    ("api.qc_units", "GET"): rule({"inspector", "qc_analyst", "admin"}),
}

# Routes whose outcome depends on the object (tried with every kind); the rest are tried once.
OBJECT_ROUTES = frozenset(
    key for key, row in EXPECTED.items() if any(isinstance(v, dict) for v in row.values())
)

# Socket.IO: "connect" (with the caller's token; anonymous: none) and each event of SOCKET_POLICY.
SOCKET_EXPECTED: dict[str, dict[str, str]] = {
    "connect": {"anon": REFUSED, **dict.fromkeys(ROLES, OK)},
    "echo": {"anon": REFUSED, **dict.fromkeys(ROLES, OK)},
    "position": {"anon": REFUSED, **{r: OK if r in UNIT_ROLES else REFUSED for r in ROLES}},
}

# Who may see a citizen's contact (name, phone, e-mail, chat handle) in staff views of an appeal, by object
# kind (server.services.appeals.can_see_contact): the call centre, dispatch and quality control city-wide;
# a unit head in their unit; a field worker only on their own assignment. Admins, analysts, methodologists
# and PR managers never. Lists and exports outside the appeal views (map, events, analytics, Open311,
# the inspector's queue, tracking, sockets) never carry contacts to anyone; the QC analyst's call-back list
# shows the phone (audited) and is checked separately.
CONTACT_VIEW: dict[str, dict[str, bool]] = {
    **{r: {"own": True, "same": True, "other": True} for r in ("operator", "dispatcher", "inspector", "qc_analyst")},
    "unit_head": {"own": True, "same": True, "other": False},
    "field_staff": {"own": True, "same": False, "other": False},
    **{r: {"own": False, "same": False, "other": False} for r in ("admin", "analyst", "methodologist", "pr_manager")},
}


# --- requests ---------------------------------------------------------------------------------------------------------


@dataclass
class Call:
    """One HTTP request to make."""

    method: str
    path: str
    json: Any = None
    data: Any = None
    query: dict | None = None
    content_type: str | None = None
    headers: dict = field(default_factory=dict)
    fresh_login: bool = False  # the call ends or replaces its login: make it on a login of its own


def _p256dh() -> str:
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    point = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(Encoding.X962,
                                                                              PublicFormat.UncompressedPoint)
    return base64.urlsafe_b64encode(point).rstrip(b"=").decode()


PUSH_P256DH = _p256dh()
PUSH_AUTH = base64.urlsafe_b64encode(b"0123456789abcdef").rstrip(b"=").decode()


def push_body(endpoint: str) -> dict:
    """A browser's PushSubscription JSON for ``endpoint``."""
    return {"endpoint": endpoint, "keys": {"p256dh": PUSH_P256DH, "auth": PUSH_AUTH}}


def new_endpoint() -> str:
    """A push-service URL nobody has subscribed with."""
    return f"https://fcm.googleapis.com/fcm/send/{uuid.uuid4().hex}"


def open311_form(api_key: str, **changes) -> dict:
    """FixMyStreet's recorded POST requests.json form (tests/open311) with ``api_key`` and ``changes``."""
    from pathlib import Path

    raw = (Path(__file__).parent / "open311" / "fms_post_request.form").read_text().strip()
    form = dict(parse_qsl(raw, keep_blank_values=True))
    form["api_key"] = api_key
    form.update(changes)
    return {k: v for k, v in form.items() if v is not None}


# The lifecycle step each role tries: one the state machine gives that role (so a refusal is about the
# appeal's state, 409/422, never the role's 403); roles the policy keeps out send "accept".
TRANSITION_BODY = {
    "operator": {"action": "reject", "reason": "not a city matter"},
    "dispatcher": {"action": "forward", "reason": "another agency"},
    "inspector": {"action": "verify"},
    "qc_analyst": {"action": "verify"},
    "unit_head": {"action": "reassign"},
    "field_staff": {"action": "accept"},
}

UNRELATED_ID = 987654321
UNRELATED_TOKEN = "tok-" + "0" * 40


def build_call(key: tuple[str, str], w, caller: str, kind: str) -> Call:
    """The request that tries ``key`` as ``caller`` on object ``kind`` of world ``w`` (tests.test_access_matrix)."""
    endpoint, method = key
    ap = w.appeal_id(caller, kind) if kind != "-" else None
    match endpoint:
        case "static":
            return Call(method, "/static/js/api.js")
        case "web.healthz":
            return Call(method, "/healthz")
        case "web.readyz":
            return Call(method, "/readyz")
        case "web.index":
            return Call(method, "/")
        case "web.docs":
            return Call(method, "/api/v1/docs")
        case "web.vendor":
            return Call(method, "/vendor/README.md")
        case "api.openapi":
            return Call(method, "/api/v1/openapi.json")
        case "api.list_topics":
            return Call(method, "/api/v1/topics")
        case "api.list_sectors":
            return Call(method, "/api/v1/sectors")
        case "api.lookup_sector":
            return Call(method, "/api/v1/sectors/lookup", query={"lat": 43.2975, "lon": 68.251})
        case "api.ui_config":
            return Call(method, "/api/v1/ui-config")
        case "web.field_page":
            return Call(method, "/field/")
        case "web.field_sw":
            return Call(method, "/field/sw.js")
        case "web.field_manifest":
            return Call(method, "/field/manifest.webmanifest")
        case "web.field_asset":
            return Call(method, "/field/js/app.js")
        case "web.dispatch_asset":
            return Call(method, "/dispatch/dispatch.js")
        case "web.operator_asset":
            return Call(method, "/operator/operator.js")
        case "web.analytics_asset":
            return Call(method, "/analytics/analytics.js")
        case "web.inspector_asset":
            return Call(method, "/inspector/inspector.js")
        case "methodology.asset":
            return Call(method, "/templates/templates.js")
        case "citizen.asset":
            return Call(method, "/citizen/js/report.js")
        case "citizen.report_page":
            return Call(method, "/report")
        case "citizen.report_form":
            return Call(method, "/api/v1/public/report/form")
        case "citizen.submit_report":
            lon, lat = w.points["S1"]
            return Call(method, "/api/v1/public/reports", data={
                "type": "complaint", "topic": "roads", "description": "A broken bench.", "lat": str(lat),
                "lon": str(lon), "consent": "true", "consent_version": w.consent_version, "language": "en"},
                content_type="multipart/form-data", headers={"Idempotency-Key": str(uuid.uuid4())})
        case "web.login":
            if method == "GET":
                return Call(method, "/login")
            return Call(method, "/login", data={"username": w.probe_username, "password": w.password},
                        fresh_login=True)
        case "web.logout":
            return Call(method, "/logout", fresh_login=True)
        case "api.create_token" | "api.create_session":
            path = "/api/v1/auth/token" if endpoint == "api.create_token" else "/api/v1/auth/session"
            return Call(method, path, json={"username": w.probe_username, "password": w.password},
                        fresh_login=True)
        case "api.revoke_token":
            return Call(method, "/api/v1/auth/token", fresh_login=True)
        case "api.end_session":
            return Call(method, "/api/v1/auth/session", fresh_login=True)
        case "api.me":
            return Call(method, "/api/v1/auth/me")
        case "api.csrf_token":
            return Call(method, "/api/v1/auth/csrf")
        case "api.create_appeal":
            lon, lat = w.points["S1"]
            return Call(method, "/api/v1/appeals", json=w.appeal_body(lat=lat, lon=lon))
        case "api.similar_appeals":
            return Call(method, "/api/v1/appeals/similar", query={"lat": 43.2975, "lon": 68.251, "topic": "roads"})
        case "api.list_appeals":
            return Call(method, "/api/v1/appeals")
        case "api.get_appeal":
            return Call(method, f"/api/v1/appeals/{ap}")
        case "api.list_photos":
            return Call(method, f"/api/v1/appeals/{ap}/photos")
        case "api.appeal_transition":
            return Call(method, f"/api/v1/appeals/{ap}/transitions",
                        json=TRANSITION_BODY.get(caller, {"action": "accept"}),
                        headers={"Idempotency-Key": str(uuid.uuid4())})
        case "api.reassign_appeal":
            return Call(method, f"/api/v1/appeals/{ap}/reassign",
                        json={"staff_id": w.staff_id("peer"), "reason": "matrix"})
        case "api.extend_appeal":
            return Call(method, f"/api/v1/appeals/{ap}/extend",
                        json={"working_days": 5, "reason": "needs a contractor", "notice_note": "phoned"})
        case "api.pause_appeal":
            return Call(method, f"/api/v1/appeals/{ap}/pause", json={"reason": "waiting for the citizen"})
        case "api.resume_appeal":
            return Call(method, f"/api/v1/appeals/{ap}/resume")
        case "api.upload_photo":
            from tests.fixtures.photos import multipart

            return Call(method, f"/api/v1/appeals/{ap}/photos", data=multipart(w.photo_bytes, "before"),
                        content_type="multipart/form-data", headers={"Idempotency-Key": str(uuid.uuid4())})
        case "api.get_photo":
            return Call(method, f"/api/v1/photos/{w.photo_id(kind)}/large")
        case "api.list_events":
            return Call(method, "/api/v1/events", query={"after": 0})
        case "api.map_appeals":
            return Call(method, "/api/v1/map/appeals")
        case "api.map_counters":
            return Call(method, "/api/v1/map/counters")
        case "api.set_my_duty":
            return Call(method, "/api/v1/me/duty", json={"on_duty": True})
        case "api.report_my_position":
            lon, lat = w.points["S1"]
            return Call(method, "/api/v1/me/position", json={"lat": lat, "lon": lon, "accuracy_m": 10})
        case "api.staff_positions":
            return Call(method, "/api/v1/staff/positions")
        case "api.list_staff":
            return Call(method, "/api/v1/staff")
        case "api.list_shifts":
            return Call(method, "/api/v1/shifts")
        case "api.update_staff":
            target = {"own": w.staff_id(caller), "same": w.staff_id("peer"), "other": w.staff_id("field_u2"),
                      "unrelated": UNRELATED_ID}[kind]
            return Call(method, f"/api/v1/staff/{target}", json={"language": "kk"})
        case "web.dispatch_page":
            return Call(method, "/dispatch/")
        case "web.operator_page":
            return Call(method, "/operator/")
        case "api.push_key":
            return Call(method, "/api/v1/push/key")
        case "api.subscribe_push" | "api.unsubscribe_push":
            ep = w.push_endpoint(caller, kind)
            body = push_body(ep) if endpoint == "api.subscribe_push" else {"endpoint": ep}
            return Call(method, "/api/v1/push/subscriptions", json=body)
        case "citizen.tracking_page":
            return Call(method, f"/t/{w.tracking_token(caller, kind)}")
        case "citizen.tracking":
            return Call(method, f"/api/v1/public/tracking/{w.tracking_token(caller, kind)}")
        case "citizen.give_feedback":
            return Call(method, f"/api/v1/public/tracking/{w.tracking_token(caller, kind)}/feedback",
                        json={"verdict": "confirm", "rating": 5})
        case "citizen.tracking_photo":
            token, pid = w.tracking_photo(kind)
            return Call(method, f"/api/v1/public/tracking/{token}/photos/{pid}/large")
        case "open311.discovery":
            return Call(method, "/open311/v2/discovery.json")
        case "open311.list_services":
            return Call(method, "/open311/v2/services.json")
        case "open311.service_definition":
            return Call(method, "/open311/v2/services/roads.json")
        case "open311.create_request":
            return Call(method, "/open311/v2/requests.json", data=open311_form(w.k1, email=None, phone=None),
                        content_type="application/x-www-form-urlencoded")
        case "open311.list_requests":
            return Call(method, "/open311/v2/requests.json")
        case "open311.get_request":
            return Call(method, f"/open311/v2/requests/{w.reg_no(caller, kind)}.json")
        case "open311.get_token":
            return Call(method, f"/open311/v2/tokens/{w.reg_no(caller, kind)}.json")
        case "open311.list_updates":
            return Call(method, "/open311/v2/servicerequestupdates.json")
        case "open311.post_update":
            rid = w.open311_rid if kind == "own" else w.reg_no(caller, kind)
            return Call(method, "/open311/v2/servicerequestupdates.json", data={
                "api_key": w.k1, "service_request_id": rid, "description": "A comment from the citizen.",
                "updated_datetime": "2026-11-20T10:00:00+05:00", "update_id": uuid.uuid4().hex,
                "status": "OPEN"}, content_type="application/x-www-form-urlencoded")
        case "open311.media":
            return Call(method, f"/open311/v2/media/{w.photo_id(kind)}.jpg")
        case "open311.unknown":
            return Call(method, "/open311/v2/nothing-here.json")
        case "channels.telegram_webhook":
            return Call(method, "/api/v1/channels/telegram/webhook", json={"update_id": 1})
        case "channels.meta_verify":
            return Call(method, "/api/v1/channels/meta/webhook",
                        query={"hub.mode": "subscribe", "hub.verify_token": "wrong", "hub.challenge": "1"})
        case "channels.meta_webhook":
            return Call(method, "/api/v1/channels/meta/webhook", json={"object": "page", "entry": []})
        case "api.create_api_key":
            return Call(method, "/api/v1/admin/api-keys", json={"name": "Matrix client"})
        case "api.list_api_keys":
            return Call(method, "/api/v1/admin/api-keys")
        case "api.revoke_api_key":
            return Call(method, f"/api/v1/admin/api-keys/{w.admin_object('api_key', kind)}")
        case "api.list_sla_policies":
            return Call(method, "/api/v1/admin/sla-policies")
        case "api.save_sla_policy":
            return Call(method, "/api/v1/admin/sla-policies",
                        json={"appeal_type": "proposal", "topic_code": "roads", "mode": "working_days", "amount": 9})
        case "api.delete_sla_policy":
            return Call(method, f"/api/v1/admin/sla-policies/{w.admin_object('sla_policy', kind)}")
        case "api.get_calendar":
            return Call(method, "/api/v1/admin/calendar", query={"year": 2026})
        case "api.set_calendar_day":
            return Call(method, "/api/v1/admin/calendar", json={"day": "2026-12-19", "kind": "working"})
        case "api.delete_calendar_day":
            return Call(method, f"/api/v1/admin/calendar/{w.admin_object('calendar_day', kind)}")
        case "methodology.templates_page":
            return Call(method, "/templates/")
        case "api.list_reply_templates":
            return Call(method, "/api/v1/reply-templates")
        case "api.save_reply_template":
            return Call(method, "/api/v1/reply-templates",
                        json={"moment": "registered", "language": "en", "body": "Registered as {reg_no}."})
        case "api.reset_reply_template":
            return Call(method, "/api/v1/reply-templates", query={"moment": "registered", "language": "en"})
        case "web.analytics_page":
            return Call(method, "/analytics/")
        case "api.analytics_dashboard":
            return Call(method, "/api/v1/analytics/dashboard")
        case "api.analytics_export":
            return Call(method, "/api/v1/analytics/export", query={"view": "sector", "format": "csv"})
        case "web.inspector_page":
            return Call(method, "/inspector/")
        case "api.qc_queue":
            return Call(method, "/api/v1/qc/queue")
        case "api.qc_approve":
            return Call(method, f"/api/v1/qc/appeals/{ap}/approve", json={"answer": "Fixed."})
        case "api.qc_return":
            return Call(method, f"/api/v1/qc/appeals/{ap}/return", json={"reason": "The photo is blurred."})
        case "api.qc_callbacks":
            return Call(method, "/api/v1/qc/callbacks")
        case "api.qc_record_callback":
            return Call(method, f"/api/v1/qc/callbacks/{w.callback_sample(kind)}",
                        json={"reached": True, "satisfied": 4})
        case "api.qc_units":
            return Call(method, "/api/v1/qc/units")
    raise KeyError(f"no request builder for {key}: add one to tests/access_policy.py build_call")


# Which planted contact fields a role allowed by CONTACT_VIEW may receive: staff views serve the name and the
# phone (server.api.outputs.CitizenOut); the e-mail and the chat handle are never served to anyone.
SERVED_CONTACT_FIELDS = ("name", "phone")

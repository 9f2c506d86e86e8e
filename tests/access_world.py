"""The objects the access tests try every route on: staff of every role, appeals in two sectors with
planted contacts, photos, tracking tokens, push subscriptions, Open311 keys and requests, admin rows.

Built inside the test's transaction (``db_session``) with the real services and HTTP API. Unit roles
are in unit U1 (sector S1); "other" objects are in S2 / U2 (see tests/access_policy.py).
"""

from __future__ import annotations

import re
import uuid
from urllib.parse import urlencode

from geoalchemy2.shape import to_shape
from sqlalchemy import select
from werkzeug.security import generate_password_hash

from server.extensions import db
from server.models import ROLES, Appeal, CallbackSample, Sector, SlaPolicy
from server.models.types import utcnow
from server.schemas import AppealIn
from server.services import apikeys, dispatch
from server.services.intake import register_appeal
from server.services.lifecycle import SYSTEM, Actor, transition
from tests.access_policy import (
    HOME_UNIT,
    OTHER_UNIT,
    UNIT_ROLES,
    UNRELATED_ID,
    UNRELATED_TOKEN,
    new_endpoint,
    open311_form,
    push_body,
)
from tests.conftest import PASSWORD, appeal_body, bearer, make_staff
from tests.fixtures.photos import photo, step, upload

CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


class World:
    """Everything the matrix and the sweep need, with helpers that map (caller, kind) to ids."""

    password = PASSWORD

    def __init__(self, app, client):
        self.app = app
        self.client = client
        self.now = utcnow()
        self.tag = uuid.uuid4().hex[:6]
        self.probe_username = f"probe-{self.tag}"
        self.consent_version = "2026-11"
        self.photo_bytes = photo(color=(10, 120, 200))
        self.points = self._points()
        self.staff = {}
        self.headers = {}
        self.appeals: dict[str, int] = {}
        self.contacts: dict[int, dict[str, str]] = {}  # appeal id -> planted name, phone, email, chat handle
        self.markers: dict[int, str] = {}  # appeal id -> its unique description
        self.photos: dict[str, str] = {}
        self.push: dict[str, str] = {}
        self.admin_rows: dict[str, dict[str, object]] = {}
        self.samples: dict[str, int] = {}
        self.cookie_clients: dict[str, tuple[object, str]] = {}
        self._serial = 0

    # --- building ---------------------------------------------------------------------------------------------

    def _points(self) -> dict[str, tuple[float, float]]:
        points = {}
        for s in db.session.scalars(select(Sector)):
            p = to_shape(s.geom).representative_point()
            points[s.code] = (p.x, p.y)
        return points

    def build(self) -> World:
        """Create every object (a few seconds)."""
        for role in ROLES:
            self._person(role, role, HOME_UNIT if role in UNIT_ROLES else None)
        self._person("peer", "field_staff", HOME_UNIT)
        self._person("field_u2", "field_staff", OTHER_UNIT)
        self._person("head_u2", "unit_head", OTHER_UNIT)
        self._person("admin2", "admin", None)
        self._cheap_hash(make_staff("operator", username=self.probe_username))

        # Appeals: one tied to each caller, one more in S1 and one in S2 (both resolved with photos).
        for role in ROLES:
            assignee = role if role in UNIT_ROLES else "peer"
            self.appeals[f"own:{role}"] = self._appeal("S1", assignee, created_by=role)
        self.appeals["same"] = self._appeal("S1", "peer")
        self.appeals["other"] = self._appeal("S2", "field_u2")
        self.appeals["other_head"] = self._appeal("S2", "head_u2")  # assigned to the U2 unit head (sweep)
        # On duty only now: registering above assigned nobody automatically (the assignees are set by hand).
        for name in ("field_staff", "peer", "field_u2"):
            dispatch.set_duty(self.staff[name], True, self.now)
        db.session.commit()
        for name, sector in (("field_u2", "S2"), ("head_u2", "S2"), ("peer", "S1")):  # last known positions
            lon, lat = self.points[sector]
            res = self.client.post("/api/v1/me/position", json={"lat": lat, "lon": lon, "accuracy_m": 9},
                                   headers=self.headers[name])
            assert res.status_code == 201, res.json
        self.photos["own"] = self._field_work(self.appeals["own:field_staff"], "field_staff", "S1", resolve=False)
        self.photos["same_before"], self.photos["same"] = self._field_work(self.appeals["same"], "peer", "S1")
        self.photos["other_before"], self.photos["other"] = self._field_work(self.appeals["other"], "field_u2",
                                                                             "S2")
        # Open311: client K1 files a request (with contacts); K2 is another client.
        self.k1 = apikeys.create_key("Matrix K1", created_by_id=None, now=self.now).key
        self.k2 = apikeys.create_key("Matrix K2", created_by_id=None, now=self.now).key
        db.session.commit()
        contact = self._contact()
        first, last = contact["name"].split(" ", 1)
        res = self.client.post("/open311/v2/requests.json",
                               data=urlencode(open311_form(self.k1, first_name=first, last_name=last,
                                                           email=contact["email"], phone=contact["phone"])),
                               content_type="application/x-www-form-urlencoded")
        assert res.status_code == 201, res.get_data(as_text=True)
        self.open311_rid = res.json[0]["service_request_id"]
        appeal = db.session.scalar(select(Appeal).where(Appeal.reg_no == self.open311_rid))
        self.appeals["open311"] = appeal.id
        self.contacts[appeal.id] = {k: v for k, v in contact.items() if k != "handle"}

        # Admin objects.
        admin, admin2 = self.staff["admin"], self.staff["admin2"]
        keys = [apikeys.create_key("own", created_by_id=admin.id, now=self.now),
                apikeys.create_key("same", created_by_id=admin2.id, now=self.now),
                apikeys.create_key("other", created_by_id=None, now=self.now)]
        db.session.commit()
        self.admin_rows["api_key"] = {"own": keys[0].row.id, "same": keys[1].row.id, "other": keys[2].row.id}
        policies = list(db.session.scalars(select(SlaPolicy.id).order_by(SlaPolicy.id)))
        if len(policies) < 3:
            for n, topic in enumerate(("roads", "lighting", "water")[: 3 - len(policies)]):
                res = self.client.put("/api/v1/admin/sla-policies", headers=self.headers["admin"], json={
                    "appeal_type": "complaint", "topic_code": topic, "mode": "working_days", "amount": 5 + n})
                assert res.status_code in (200, 201), res.json
            policies = list(db.session.scalars(select(SlaPolicy.id).order_by(SlaPolicy.id)))
        self.admin_rows["sla_policy"] = dict(zip(("own", "same", "other"), policies[:3], strict=True))
        days = {"own": "2026-12-21", "same": "2026-12-22", "other": "2026-12-23"}
        for day in days.values():
            res = self.client.put("/api/v1/admin/calendar", headers=self.headers["admin"],
                                  json={"day": day, "kind": "day_off", "note": "matrix"})
            assert res.status_code in (200, 201), res.json
        self.admin_rows["calendar_day"] = days
        self.admin_rows["calendar_day"]["unrelated"] = "2031-01-15"

        # Call-back samples (what the daily draw makes) on three closed-or-not appeals.
        for kind, key in (("own", "own:qc_analyst"), ("same", "same"), ("other", "other")):
            row = CallbackSample(appeal_id=self.appeals[key], sampled_on=self.now.date(), sampled_at=self.now,
                                 seed="matrix")
            db.session.add(row)
            db.session.flush()
            self.samples[kind] = row.id
        db.session.commit()

        # Push subscriptions of every person who gets pushes.
        for name in (*[r for r in ROLES if r != "admin"], "peer", "field_u2"):
            self.push[name] = new_endpoint()
            res = self.client.post("/api/v1/push/subscriptions", json=push_body(self.push[name]),
                                   headers=self.headers[name])
            assert res.status_code == 201, res.json
        # A customised reply template (so resetting one has something to reset).
        res = self.client.put("/api/v1/reply-templates", headers=self.headers["methodologist"],
                              json={"moment": "registered", "language": "en", "body": "Registered: {reg_no}."})
        assert res.status_code in (200, 201), res.json
        # Browser sessions, made now: a login made inside a rolled-back case would vanish with it.
        for name in (None, *ROLES):
            self.cookie_client(name)
        return self

    def _person(self, name: str, role: str, unit: str | None) -> None:
        staff = make_staff(role, unit=unit, username=f"m-{name}-{self.tag}")
        staff.shift_code = "A"  # everyone on the roster of shift A
        self._cheap_hash(staff)
        self.staff[name] = staff
        self.headers[name] = bearer(staff)

    @staticmethod
    def _cheap_hash(staff):
        # The matrix logs in a few hundred times; a low-cost hash (its method is stored with it, so the real
        # check_password_hash verifies it) keeps that fast. Password hashing is not what these tests are about.
        staff.password_hash = generate_password_hash(PASSWORD, method="pbkdf2:sha256:1000")
        db.session.commit()
        return staff

    def _contact(self) -> dict[str, str]:
        self._serial += 1
        n = self._serial
        mark = f"{self.tag}{n:03d}"
        return {"name": f"Zhanar Qx{mark}", "phone": f"+7 700 {n:03d} {int(self.tag, 16) % 10000:04d}",
                "email": f"citizen.{mark}@example.kz", "handle": f"tgchat{mark}"}

    def _appeal(self, sector: str, assignee: str, created_by: str | None = None) -> int:
        lon, lat = self.points[sector]
        contact = self._contact()
        marker = f"Matrix appeal {self.tag}n{self._serial:03d}"  # unique text: finds the appeal in any response
        body = appeal_body(lat=lat, lon=lon, description=marker,
                           citizen={"name": contact["name"], "phone": contact["phone"], "language": "kk"})
        result = register_appeal(AppealIn(**body), actor=Actor("staff", "operator"), now=self.now)
        appeal = result.appeal
        assert appeal.sector is not None and appeal.sector.code == sector
        appeal.citizen.email = contact["email"]
        appeal.citizen.handle = contact["handle"]
        if created_by is not None:
            appeal.created_by_id = self.staff[created_by].id
        if appeal.status != "assigned":
            transition(appeal, "assign", SYSTEM, self.now)
        appeal.assignee_id = self.staff[assignee].id
        db.session.commit()
        self.contacts[appeal.id] = contact
        self.markers[appeal.id] = marker
        return appeal.id

    def _field_work(self, appeal_id: int, worker: str, sector: str, resolve: bool = True):
        headers = self.headers[worker]
        lon, lat = self.points[sector]
        pos = {"lat": lat, "lon": lon, "accuracy_m": 8.0}
        for action in ("accept", "depart"):
            assert step(self.client, headers, appeal_id, action).status_code == 200
        res = step(self.client, headers, appeal_id, "arrive", position=pos)
        assert res.status_code == 200, res.json
        before = upload(self.client, headers, appeal_id, photo(color=(200, 10, self._serial)), "before")
        assert before.status_code == 201, before.json
        if not resolve:
            return before.json["id"]
        after = upload(self.client, headers, appeal_id, photo(color=(10, 200, self._serial)), "after")
        assert after.status_code == 201, after.json
        done = step(self.client, headers, appeal_id, "resolve", position=pos)
        assert done.status_code == 200, done.json
        return before.json["id"], after.json["id"]

    def add_extra_appeals(self, count: int) -> None:
        """``count`` more appeals spread over S2..S6 (routed, nobody assigned), for the IDOR sweep."""
        from server.services.apikeys import revoke_key

        codes = sorted(c for c in self.points if c != "S1")
        self.extra = []
        for n in range(count):
            sector = codes[n % len(codes)]
            lon, lat = self.points[sector]
            contact = self._contact()
            marker = f"Matrix appeal {self.tag}n{self._serial:03d}"
            body = appeal_body(lat=lat, lon=lon, description=marker,
                               citizen={"name": contact["name"], "phone": contact["phone"], "language": "ru"})
            appeal = register_appeal(AppealIn(**body), actor=Actor("staff", "operator"), now=self.now).appeal
            self.contacts[appeal.id] = {k: v for k, v in contact.items() if k in ("name", "phone")}
            self.markers[appeal.id] = marker
            self.extra.append(appeal.id)
        issued = apikeys.create_key("Matrix revoked", created_by_id=None, now=self.now)
        revoke_key(issued.row.id, now=self.now)
        self.revoked_key = issued.key
        db.session.commit()

    # --- (caller, kind) -> ids ---------------------------------------------------------------------------------

    def appeal_id(self, caller: str, kind: str) -> int:
        """The appeal of ``kind`` for ``caller`` (anonymous callers have none of their own: an S1 one)."""
        if kind == "own":
            return self.appeals.get(f"own:{caller}", self.appeals["same"])
        return {"same": self.appeals["same"], "other": self.appeals["other"], "unrelated": UNRELATED_ID}[kind]

    def staff_id(self, name: str) -> int:
        """A person's id (``caller`` names a role; anonymous callers: the U1 peer)."""
        return self.staff[name if name in self.staff else "peer"].id

    def photo_id(self, kind: str) -> str:
        """own: the field caller's upload (S1); same/other: the after photo of the S1/S2 appeal."""
        return self.photos.get(kind, uuid.uuid4().hex)

    def tracking_token(self, caller: str, kind: str) -> str:
        """The citizen's tracking token of the appeal of ``kind``."""
        if kind == "unrelated":
            return UNRELATED_TOKEN
        return db.session.get(Appeal, self.appeal_id(caller, kind)).tracking_token

    def tracking_photo(self, kind: str) -> tuple[str, str]:
        """(token, after photo id); ``unrelated`` swaps in another appeal's photo under the S1 token."""
        same, other = self.tracking_token("", "same"), self.tracking_token("", "other")
        return {"own": (same, self.photos["same"]), "same": (same, self.photos["same"]),
                "other": (other, self.photos["other"]), "unrelated": (same, self.photos["other"])}[kind]

    def reg_no(self, caller: str, kind: str) -> str:
        """The registration number (Open311 service_request_id) of the appeal of ``kind``."""
        if kind == "unrelated":
            return "TRK-1999-999999"
        return db.session.get(Appeal, self.appeal_id(caller, kind)).reg_no

    def push_endpoint(self, caller: str, kind: str) -> str:
        """own: the caller's own subscription; same: the U1 peer's; other: the U2 worker's; unrelated: new."""
        if kind == "own":
            return self.push.get(caller) or new_endpoint()
        return {"same": self.push["peer"], "other": self.push["field_u2"]}.get(kind) or new_endpoint()

    def admin_object(self, what: str, kind: str):
        """An api key id / SLA policy id / calendar day of ``kind``."""
        return self.admin_rows[what].get(kind, UNRELATED_ID)

    def callback_sample(self, kind: str) -> int:
        """A call-back sample id."""
        return self.samples.get(kind, UNRELATED_ID)

    def appeal_body(self, **overrides) -> dict:
        """A valid new-appeal body."""
        return appeal_body(**overrides)

    # --- logins ---------------------------------------------------------------------------------------------------

    def cookie_login(self, name: str | None):
        """A fresh test client with a browser session as ``name`` (None: anonymous) and its CSRF token."""
        client = self.app.test_client()
        page = client.get("/login").get_data(as_text=True)
        token = CSRF_RE.search(page).group(1)
        if name is None:
            return client, token
        res = client.post("/login", data={"username": self.staff[name].username, "password": PASSWORD,
                                          "csrf_token": token})
        assert res.status_code == 302, res.get_data(as_text=True)[:300]
        return client, client.get("/api/v1/auth/csrf").json["csrf_token"]

    def cookie_client(self, name: str | None):
        """A cached browser session as ``name`` (None: anonymous)."""
        key = name or "anon"
        if key not in self.cookie_clients:
            self.cookie_clients[key] = self.cookie_login(name)
        return self.cookie_clients[key]

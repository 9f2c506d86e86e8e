"""Locust user classes of the load bench (``bench/load.py`` prepares everything and runs this file).

Run by the driver as ``locust --headless -f bench/locustfile.py ...`` with ``JAUAP_LOAD_CONFIG``
naming a JSON file it wrote: the server processes' base URLs, every simulated person's bearer token
and process, the unit rosters, points inside each sector, the photo files, the class sizes and the
output file. It cannot run without that file (the people and appeals exist only in the bench database).

The users (``FastHttpUser``: geventhttpclient, cheap on the shared cores):

* ``FieldStaff`` - the field app: opens an appeal of their own work list, takes the next step with a
  client UUID (``Idempotency-Key``), as the app's outbox does: accept -> depart -> arrive (at the
  point) -> "after" photo (multipart, a 1600 x 1200 JPEG) -> resolve; refreshes the list, the map
  and the catch-up events now and then, and reports the device position at most every 15 s.
* ``Dispatcher`` - the dispatch page: map snapshot of the city, sector counters, staff positions
  and list, appeal detail, catch-up events, and reassigning an assigned appeal to another field
  worker of the appeal's unit.
* ``Operator`` - the operator page: sector lookup and the look-alike search at a point, then
  registering the caller's appeal (``POST /api/v1/appeals`` with an ``Idempotency-Key``); lists and
  appeal detail.
* ``Inspector`` - the inspector page: the QC queue with its evidence, appeal detail, approving a
  resolved appeal with an answer, the units' quality figures.
* ``Citizen`` - the citizen page: the report form (anonymous session + CSRF token), the topics,
  then ``POST /api/v1/public/reports`` as multipart with one photo and its SHA-256, like the page;
  then the tracking view. Each report comes from its own address (``X-Forwarded-For``, trusted by
  the bench server with ``JAUAP_PROXY_HOPS=1`` as behind the production proxy), so the per-address
  limit stays at its production setting and refuses nothing.
* ``Probe`` - the baseline: ``GET /healthz`` once a second on each server process, under the same load.

Every request is recorded (start time, class, name, latency, status, outcome) and every write that
causes a live event is recorded with the wall-clock time it was SENT (matched later with the sockets'
receipt times by appeal id, or registration number for new appeals, and event kind). Expected
conflicts (409: another person changed the appeal first, e.g. a dispatcher reassigned it) count as
answered, not as errors. Everything is written to the output file when locust quits.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import random
import sys
import time
import uuid
from pathlib import Path

import gevent
from locust import FastHttpUser, between, events, task
from urllib3.filepost import encode_multipart_formdata

CONFIG = json.loads(Path(os.environ["JAUAP_LOAD_CONFIG"]).read_text()) if os.environ.get("JAUAP_LOAD_CONFIG") else None
if CONFIG is None:
    raise SystemExit("bench/locustfile.py is run by bench/load.py (JAUAP_LOAD_CONFIG names its config file)")

HOSTS: list[str] = CONFIG["hosts"]
WORK_STATUSES = "assigned,accepted,en_route,on_site"
NEXT_STEP = {"assigned": "accept", "accepted": "depart", "en_route": "arrive"}
STEP_KIND = {"accept": "appeal.accepted", "depart": "appeal.en_route", "arrive": "appeal.on_site",
             "resolve": "appeal.resolved"}
TYPES = ("complaint", "incident", "proposal", "consultation")
TOPICS = ("roads", "water_supply", "heating", "waste_collection", "street_lighting")
POSITION_EVERY_S = 15.0  # the server refuses more than one per JAUAP_POSITION_MIN_INTERVAL_S (10 s)


def _photos(key: str) -> list[tuple[bytes, str]]:
    out = []
    for name in CONFIG[key]:
        data = Path(name).read_bytes()
        out.append((data, hashlib.sha256(data).hexdigest()))
    return out


FIELD_PHOTOS = _photos("field_photos")
CITIZEN_PHOTOS = _photos("citizen_photos")
POINTS: dict[str, list[list[float]]] = CONFIG["points"]
UNIT_SECTORS: dict[str, list[str]] = CONFIG["unit_sectors"]
ALL_SECTORS = sorted(POINTS)

# --- what is recorded -------------------------------------------------------------------------------

SAMPLES: list[tuple] = []  # (t_start, user class, name, ms, status, outcome)
SENDS: list[tuple] = []  # (key type "id"|"reg", key, event kind, t_send, t_answer)
ERRORS: list[str] = []
STATE = {"t_test_start": None}
_address = itertools.count(1)


def outcome_of(status: int, exception) -> str:
    """ok | conflict (a 4xx the user expected) | refused (other 4xx: a bench problem) | server_error | broken.

    The users mark the answers a real person meets when someone else acted first (409, or 422
    ``illegal_transition`` on a stale view) as successes, so a 4xx without an exception is a conflict.
    """
    if status == 0 or (exception is not None and status < 400):
        return "broken"  # no answer: refused connection, reset, timeout
    if status >= 500:
        return "server_error"
    if status >= 400:
        return "refused" if exception is not None else "conflict"
    return "ok"


@events.request.add_listener
def _record(request_type, name, response_time, response_length, response=None, context=None, exception=None,
            start_time=None, **_kw):
    status = getattr(response, "status_code", 0) or 0
    outcome = outcome_of(status, exception)
    cls = (context or {}).get("cls", "?")
    SAMPLES.append((start_time, cls, f"{request_type} {name}", response_time, status, outcome))
    if outcome in ("broken", "server_error", "refused") and len(ERRORS) < 30:
        body = ""
        try:
            body = (response.text or "")[:200] if response is not None and status else ""
        except Exception:  # the body of a broken answer may be unreadable
            body = ""
        ERRORS.append(f"{cls} {request_type} {name}: {status} {exception!r} {body}")


def _progress(environment) -> None:
    """Every 5 s on stderr: users, requests, rps and errors so far."""
    last_n, last_t = 0, time.time()
    while True:
        gevent.sleep(5.0)
        now = time.time()
        n = len(SAMPLES)
        recent = SAMPLES[last_n:n]
        bad = sum(1 for s in SAMPLES if s[5] in ("broken", "server_error"))
        slow = sorted(s[3] for s in recent)
        p95 = slow[int(0.95 * (len(slow) - 1))] if slow else 0.0
        elapsed = now - (STATE["t_test_start"] or now)
        print(f"[load-bench] {elapsed:6.1f} s: {environment.runner.user_count} users, {n} requests, "
              f"{(n - last_n) / (now - last_t):6.1f} rps, p95 (last 5 s) {p95:6.0f} ms, server errors {bad}, "
              f"writes with events {len(SENDS)}", file=sys.stderr, flush=True)
        last_n, last_t = n, now


@events.test_start.add_listener
def _started(environment, **_kw):
    STATE["t_test_start"] = time.time()
    gevent.spawn(_progress, environment)


@events.quitting.add_listener
def _dump(environment, **_kw):
    out = {"t_test_start": STATE["t_test_start"], "samples": SAMPLES, "sends": SENDS, "errors": ERRORS}
    Path(CONFIG["out"]).write_text(json.dumps(out))


# --- users ------------------------------------------------------------------------------------------


class StaffUser(FastHttpUser):
    """A logged-in staff member (bearer token) on the server process their person is bound to."""

    abstract = True
    role = ""
    _next = None

    def __init__(self, environment):
        people = CONFIG["people"][self.role]
        me = people[next(type(self)._next) % len(people)]
        self.me = me
        self.host = HOSTS[me["host"]]  # sticky: one person, one process (the proxy's ip_hash)
        super().__init__(environment)
        self.auth = {"Authorization": f"Bearer {me['token']}", "Accept": "application/json"}
        self.last_event = CONFIG["events_after"]
        self.rnd = random.Random(me["id"])

    def context(self):
        """Tags every request of this user with its class (for the per-role figures)."""
        return {"cls": self.role}

    def get(self, path: str, name: str):
        """A GET as this person; the parsed JSON, or None when it failed."""
        with self.client.get(path, name=name, headers=self.auth, catch_response=True) as res:
            if res.status_code == 200:
                return res.json()
            return None

    def write(self, path: str, name: str, *, body=None, raw=None, content_type=None, key=None):
        """A POST as this person: (status, JSON or None, t_send, t_answer); a 409 counts as answered."""
        headers = dict(self.auth)
        if key:
            headers["Idempotency-Key"] = key
        if content_type:
            headers["Content-Type"] = content_type
        t_send = time.time()
        with self.client.post(path, name=name, headers=headers, json=body, data=raw, catch_response=True) as res:
            t_answer = time.time()
            status = res.status_code
            try:
                data = res.json() if res.content else None
            except ValueError:
                data = None
            if status == 409 or (status == 422 and (data or {}).get("error", {}).get("code") == "illegal_transition"):
                # someone else changed the appeal first (the view was stale): the page refreshes, nothing is wrong
                res.success()
            if status >= 300:
                data = None
        return status, data, t_send, t_answer

    def catch_up(self) -> None:
        """What live.js does after (re)connecting: the events since the last one seen."""
        data = self.get(f"/api/v1/events?after={self.last_event}&limit=200", "/api/v1/events?after=[n]")
        if data:
            self.last_event = data.get("last_id", self.last_event)


class FieldStaff(StaffUser):
    """The field app: own work list, detail, field steps with client UUIDs, photos, positions."""

    role = "field"
    _next = itertools.count()
    fixed_count = CONFIG["counts"]["field"]
    wait_time = between(*CONFIG["wait"]["field"])

    def on_start(self):
        """Initial state (and first view) of this person."""
        self.work: dict[int, dict] = {}
        self.photographed: set[int] = set()
        self.last_position = 0.0
        self.listed_at = 0.0
        self.refresh()

    def refresh(self) -> None:
        """My work: my open assignments (GET, as the field app does)."""
        data = self.get(f"/api/v1/appeals?assignee=me&status={WORK_STATUSES}&per_page=200",
                        "/api/v1/appeals?assignee=me")
        self.listed_at = time.time()
        if data is not None:
            self.work = {a["id"]: a for a in data["items"]}

    def position(self, lon: float, lat: float) -> None:
        """Report the device position, at most every POSITION_EVERY_S seconds."""
        if time.time() - self.last_position < POSITION_EVERY_S:
            return
        self.last_position = time.time()
        self.write("/api/v1/me/position", "/api/v1/me/position",
                   body={"lat": lat, "lon": lon, "accuracy_m": 15})

    @task(6)
    def next_step(self):
        """Open the most advanced appeal of my list and take its next step (or its photo)."""
        if not self.work or time.time() - self.listed_at > 60:
            self.refresh()
        if not self.work:
            return
        order = {"on_site": 0, "en_route": 1, "accepted": 2, "assigned": 3}
        appeal = min(self.work.values(), key=lambda a: (order.get(a["status"], 9), a["id"]))
        aid = appeal["id"]
        detail = self.get(f"/api/v1/appeals/{aid}", "/api/v1/appeals/[id]")
        if detail is None:
            self.work.pop(aid, None)
            return
        appeal = {**appeal, **{k: detail[k] for k in ("status", "lon", "lat")}}
        here = {"lat": appeal["lat"] + 0.0001, "lon": appeal["lon"], "accuracy_m": 10.0}  # ~11 m off the point
        self.position(here["lon"], here["lat"])
        status = appeal["status"]
        if status == "on_site" and aid not in self.photographed:
            self.photo(aid, here)
            return
        action = "resolve" if status == "on_site" else NEXT_STEP.get(status)
        if action is None:
            self.work.pop(aid, None)
            return
        body = {"action": action, "device_time": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())}
        if action in ("depart", "arrive", "resolve"):
            body["position"] = here
        code, data, t_send, t_answer = self.write(f"/api/v1/appeals/{aid}/transitions",
                                                  f"/api/v1/appeals/[id]/transitions {action}",
                                                  body=body, key=str(uuid.uuid4()))
        if code == 200 and data:
            SENDS.append(("id", aid, STEP_KIND[action], t_send, t_answer))
            if data["status"] in order:
                self.work[aid] = {**appeal, "status": data["status"]}
            else:
                self.work.pop(aid, None)
                self.photographed.discard(aid)
        else:
            self.work.pop(aid, None)  # taken away, or no longer in a state for this step: refresh later
            self.listed_at = 0.0

    def photo(self, aid: int, here: dict) -> None:
        """Upload the visit's "after" photo (multipart, client UUID)."""
        data, sha = self.rnd.choice(FIELD_PHOTOS)
        fields = {"kind": "after", "sha256": sha, "lat": str(here["lat"]), "lon": str(here["lon"]),
                  "accuracy_m": "10", "device_time": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()),
                  "file": ("photo.jpg", data, "image/jpeg")}
        raw, ctype = encode_multipart_formdata(fields)
        code, _data, t_send, t_answer = self.write(f"/api/v1/appeals/{aid}/photos", "/api/v1/appeals/[id]/photos",
                                                   raw=raw, content_type=ctype, key=str(uuid.uuid4()))
        if code in (200, 201):
            self.photographed.add(aid)
            SENDS.append(("id", aid, "appeal.photo_added", t_send, t_answer))
        else:
            self.work.pop(aid, None)
            self.listed_at = 0.0

    @task(1)
    def my_map(self):
        """The field map: the unit's assigned appeals."""
        self.get("/api/v1/map/appeals?status=assigned", "/api/v1/map/appeals?status=assigned")

    @task(1)
    def events(self):
        """Catch-up events, as after a reconnect."""
        self.catch_up()


class Dispatcher(StaffUser):
    """The dispatch page: the live map, counters, staff, detail, reassignments."""

    role = "dispatcher"
    _next = itertools.count()
    fixed_count = CONFIG["counts"]["dispatcher"]
    wait_time = between(*CONFIG["wait"]["dispatcher"])

    def on_start(self):
        """Initial state (and first view) of this person."""
        self.snapshot: list[dict] = []
        self.load_map()

    def load_map(self) -> None:
        """The live map's snapshot of the whole city."""
        data = self.get(f"/api/v1/map/appeals?bbox={CONFIG['bbox']}", "/api/v1/map/appeals?bbox=city")
        if data is not None:
            self.snapshot = [dict(zip(data["fields"], row, strict=True)) for row in data["rows"]]

    @task(3)
    def map(self):
        """Reload the map snapshot."""
        self.load_map()

    @task(2)
    def counters(self):
        """Per-sector counters."""
        self.get("/api/v1/map/counters", "/api/v1/map/counters")

    @task(1)
    def positions(self):
        """Field staff positions layer."""
        self.get("/api/v1/staff/positions", "/api/v1/staff/positions")

    @task(1)
    def staff(self):
        """The staff list (for reassigning)."""
        self.get("/api/v1/staff", "/api/v1/staff")

    @task(3)
    def detail(self):
        """Open one appeal (the detail view, with history and photos)."""
        if self.snapshot:
            self.get(f"/api/v1/appeals/{self.rnd.choice(self.snapshot)['id']}", "/api/v1/appeals/[id]")

    @task(1)
    def events(self):
        """Catch-up events, as after a reconnect."""
        self.catch_up()

    @task(2)
    def reassign(self):
        """Move an assigned or accepted appeal to another field worker of its unit."""
        movable = [a for a in self.snapshot if a["status"] in ("assigned", "accepted") and a["sector"]]
        if not movable:
            return
        appeal = self.rnd.choice(movable)
        unit = CONFIG["sector_unit"][appeal["sector"]]
        crew = [p for p in CONFIG["unit_staff"][unit] if p != appeal["assignee_id"]]
        if not crew:
            return
        code, data, t_send, t_answer = self.write(
            f"/api/v1/appeals/{appeal['id']}/reassign", "/api/v1/appeals/[id]/reassign",
            body={"staff_id": self.rnd.choice(crew), "reason": "load bench: balancing the crews"})
        if code == 200 and data and data.get("history"):
            SENDS.append(("id", appeal["id"], data["history"][-1]["kind"], t_send, t_answer))
        self.snapshot.remove(appeal)


class Operator(StaffUser):
    """The operator page: a call becomes an appeal (lookup, look-alikes, register); lists and detail."""

    role = "operator"
    _next = itertools.count()
    fixed_count = CONFIG["counts"]["operator"]
    wait_time = between(*CONFIG["wait"]["operator"])

    def on_start(self):
        """Initial state (and first view) of this person."""
        self.recent: list[int] = []

    @task(2)
    def register(self):
        """A phone call becomes an appeal: lookup, look-alikes, register."""
        sector = self.rnd.choice(ALL_SECTORS)
        lon, lat = self.rnd.choice(POINTS[sector])
        topic = self.rnd.choice(TOPICS)
        self.get(f"/api/v1/sectors/lookup?lat={lat}&lon={lon}", "/api/v1/sectors/lookup")
        self.get(f"/api/v1/appeals/similar?lat={lat}&lon={lon}&topic={topic}", "/api/v1/appeals/similar")
        body = {"type": self.rnd.choice(TYPES), "topic": topic, "lat": lat, "lon": lon, "accuracy_m": 25,
                "channel": "phone", "description": f"Caller reports a problem near house {self.rnd.randint(1, 300)}.",
                "citizen": {"name": "Load Bench Caller", "language": self.rnd.choice(("kk", "ru", "en")),
                            "phone": f"+7 70{self.rnd.randint(0, 9)} {self.rnd.randint(0, 9_999_999):07d}"}}
        code, data, t_send, t_answer = self.write("/api/v1/appeals", "/api/v1/appeals", body=body,
                                                  key=f"load-{uuid.uuid4().hex}")
        if code == 201 and data:
            SENDS.append(("reg", data["reg_no"], "appeal.registered", t_send, t_answer))
            self.recent = [data["id"], *self.recent][:20]

    @task(2)
    def list_open(self):
        """The list of open appeals."""
        data = self.get("/api/v1/appeals?status=registered,routed,assigned,accepted&per_page=50",
                        "/api/v1/appeals?status=open")
        if data and not self.recent:
            self.recent = [a["id"] for a in data["items"][:20]]

    @task(2)
    def detail(self):
        """Open one appeal (the detail view, with history and photos)."""
        if self.recent:
            self.get(f"/api/v1/appeals/{self.rnd.choice(self.recent)}", "/api/v1/appeals/[id]")


class Inspector(StaffUser):
    """The inspector page: the QC queue with evidence, detail, approvals, unit figures."""

    role = "inspector"
    _next = itertools.count()
    fixed_count = CONFIG["counts"]["inspector"]
    wait_time = between(*CONFIG["wait"]["inspector"])

    def on_start(self):
        """Initial state (and first view) of this person."""
        self.queue: list[dict] = []

    @task(3)
    def load_queue(self):
        """The QC queue with its evidence."""
        data = self.get("/api/v1/qc/queue?limit=50", "/api/v1/qc/queue")
        if data is not None:
            self.queue = data["items"]

    @task(2)
    def detail(self):
        """Open one appeal (the detail view, with history and photos)."""
        if self.queue:
            self.get(f"/api/v1/appeals/{self.rnd.choice(self.queue)['id']}", "/api/v1/appeals/[id]")

    @task(2)
    def approve(self):
        """Approve one resolved appeal of the queue with an answer."""
        if not self.queue:
            return
        item = self.queue.pop(self.rnd.randrange(len(self.queue)))
        code, _data, t_send, t_answer = self.write(f"/api/v1/qc/appeals/{item['id']}/approve",
                                                   "/api/v1/qc/appeals/[id]/approve",
                                                   body={"answer": "The work was checked on site and is done."})
        if code == 200:
            SENDS.append(("id", item["id"], "appeal.verified", t_send, t_answer))

    @task(1)
    def units(self):
        """The units' quality figures."""
        self.get("/api/v1/qc/units", "/api/v1/qc/units")


class Citizen(FastHttpUser):
    """The citizen report page: form (session + CSRF), topics, multipart report with a photo, tracking."""

    fixed_count = CONFIG["counts"]["citizen"]
    wait_time = between(*CONFIG["wait"]["citizen"])
    _next = itertools.count()

    def __init__(self, environment):
        n = next(type(self)._next)
        self.host = HOSTS[n % len(HOSTS)]
        super().__init__(environment)
        self.rnd = random.Random(100_000 + n)

    def context(self):
        """Tags every request of this user with its class (for the per-role figures)."""
        return {"cls": "citizen"}

    @task
    def report(self):
        """One citizen files one report with a photo, then looks at its tracking page."""
        address = next(_address)
        # one citizen, one address (the proxy appends it; the server trusts one hop)
        hdrs = {"Accept": "application/json", "X-Forwarded-For": f"10.{address >> 16 & 255}.{address >> 8 & 255}."
                                                                   f"{address & 255}"}
        self.client.cookiejar.clear()  # a new visitor: a new anonymous session
        with self.client.get("/api/v1/public/report/form?lang=ru", name="/api/v1/public/report/form",
                             headers=hdrs, catch_response=True) as res:
            if res.status_code != 200:
                return
            form = res.json()
        self.client.get("/api/v1/topics?lang=ru", name="/api/v1/topics", headers=hdrs)
        sector = self.rnd.choice(ALL_SECTORS)
        lon, lat = self.rnd.choice(POINTS[sector])
        photo, sha = self.rnd.choice(CITIZEN_PHOTOS)
        fields = [("type", self.rnd.choice(TYPES)), ("topic", self.rnd.choice(TOPICS)),
                  ("description", "Deep pothole in front of the school, cars swerve around it."),
                  ("lat", f"{lat:.6f}"), ("lon", f"{lon:.6f}"), ("accuracy_m", "18"), ("language", "ru"),
                  ("consent", "true"), ("consent_version", form["consent_version"]), ("photos_sha256", sha),
                  ("photo", ("photo-1.jpg", photo, "image/jpeg"))]
        raw, ctype = encode_multipart_formdata(fields)
        headers = {**hdrs, "Content-Type": ctype, "X-CSRFToken": form["csrf_token"],
                   "Idempotency-Key": str(uuid.uuid4())}
        t_send = time.time()
        with self.client.post("/api/v1/public/reports?lang=ru", name="/api/v1/public/reports", data=raw,
                              headers=headers, catch_response=True) as res:
            t_answer = time.time()
            if res.status_code != 201:
                return
            created = res.json()
        SENDS.append(("reg", created["reg_no"], "appeal.registered", t_send, t_answer))
        token = created["tracking_url"].rstrip("/").rsplit("/", 1)[-1]
        self.client.get(f"/api/v1/public/tracking/{token}?lang=ru", name="/api/v1/public/tracking/[token]",
                        headers=hdrs)


class Probe(FastHttpUser):
    """The baseline: ``GET /healthz`` once a second per server process, under the same load."""

    fixed_count = len(HOSTS)
    wait_time = between(0.9, 1.1)
    _next = itertools.count()

    def __init__(self, environment):
        self.host = HOSTS[next(type(self)._next) % len(HOSTS)]
        super().__init__(environment)

    def context(self):
        """Tags every request of this user with its class (for the per-role figures)."""
        return {"cls": "healthz"}

    @task
    def healthz(self):
        """The baseline request."""
        self.client.get("/healthz", name="/healthz")

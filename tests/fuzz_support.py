"""The world the schema fuzz (tests/test_schema_fuzz.py) runs in, and the loop that drives schemathesis.

* :func:`build_world` makes an app on a database of its own where commits are real, with one staff
  member of every role (unit roles in the unit whose sector covers the default point), a bearer
  token each, and five appeals (one assigned to the field worker, on site, with a photo; a
  consultation; one outside every sector, unrouted; two more), with their tracking tokens.
* :class:`Fuzzer` runs every operation of ``/api/v1/openapi.json`` through schemathesis'
  Hypothesis strategies (positive and negative data), as each role and anonymously, and checks
  every answer: no 5xx, status code / content type / body / headers as documented, negative data
  refused, and authentication enforced (schemathesis' ``ignored_auth`` plus our own: every
  operation that needs a login answers 401 without a token and with a bad one).
* Path parameters are drawn from the generated value *or* a seeded object's id, so a share of
  the cases reach real appeals, photos and tracking tokens instead of 404 only.
* Fuzzing must not saw off the branch it sits on: an operation that can end the caller's login
  (``DELETE /auth/token``, ``DELETE /auth/session``) or change an account (``PATCH /staff/{id}``)
  gets a throwaway token, and the seeded accounts are put back after each such case.
"""

from __future__ import annotations

import os
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.generation.hypothesis.reporting import UnsatisfiableSchema
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import select

from server import create_app
from server.config import TestConfig
from server.extensions import db
from server.models import ROLES, Staff, Topic
from server.models.types import utcnow
from server.security import PUBLIC, policy_for

SPEC_PATH = "/api/v1/openapi.json"
ANONYMOUS = "anonymous"
BAD_TOKEN = "bad_token"
IDENTITIES = (*ROLES, ANONYMOUS, BAD_TOKEN)
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          response_headers_conformance, negative_data_rejection, ignored_auth]
# Operations that can end the caller's own login or change an account: throwaway tokens, then heal.
SELF_HARM = {"DELETE /api/v1/auth/token", "DELETE /api/v1/auth/session", "PATCH /api/v1/staff/{staff_id}"}


def fuzz_examples(default: int) -> int:
    """Hypothesis examples per (operation, identity, mode): ``JAUAP_FUZZ_EXAMPLES`` or ``default``."""
    return int(os.environ.get("JAUAP_FUZZ_EXAMPLES", default))


@dataclass
class World:
    """The app under fuzz, the schema loaded from it, and what was seeded."""

    app: object
    schema: object
    staff: dict[str, int]
    tokens: dict[str, str]
    known: dict[str, list]  # path parameter name -> real values to mix in
    units: dict[str, str] = field(default_factory=dict)
    identity: str = ANONYMOUS  # who the generated cases authenticate as (read by IdentityAuth)
    mix_ids: bool = True  # draw path parameters from the seeded objects' ids too (not in stateful runs)

    def headers(self, identity: str) -> dict:
        """Headers that authenticate as ``identity`` (none for the anonymous caller)."""
        if identity == ANONYMOUS:
            return {}
        if identity == BAD_TOKEN:
            return {"Authorization": "Bearer not-a-token-" + "x" * 32}
        return {"Authorization": f"Bearer {self.tokens[identity]}"}

    def throwaway_headers(self, identity: str) -> dict:
        """A fresh token of ``identity`` (for operations that may revoke the one they are called with)."""
        if identity in (ANONYMOUS, BAD_TOKEN):
            return self.headers(identity)
        from server.services.staff import issue_token

        with self.app.app_context():
            token, _row = issue_token(db.session.get(Staff, self.staff[identity]), utcnow(), 12)
            db.session.commit()
            db.session.remove()
        return {"Authorization": f"Bearer {token}"}

    def heal(self) -> None:
        """Put the seeded accounts back as seeded (active, in their unit) and re-issue any token that died."""
        from server.models import Unit
        from server.services.staff import issue_token, staff_for_token

        with self.app.app_context():
            for role, staff_id in self.staff.items():
                person = db.session.get(Staff, staff_id)
                unit_code = self.units.get(role)
                unit_id = db.session.scalar(select(Unit.id).where(Unit.code == unit_code)) if unit_code else None
                if not person.active or person.unit_id != unit_id:
                    person.active, person.unit_id = True, unit_id
                db.session.flush()
                if staff_for_token(self.tokens[role], utcnow()) is None:
                    self.tokens[role], _row = issue_token(person, utcnow(), 12)
            db.session.commit()
            db.session.remove()


def build_world(database_url: str, instance: Path) -> World:
    """An app on ``database_url`` (migrated, sectors loaded) with staff, tokens and appeals seeded."""
    config = TestConfig(database_url, str(instance))
    # The citizen report's per-address limit would turn every fuzzed report into a 429 after five;
    # the limit itself is tested in test_citizen_portal.py, and 429 is documented where it can occur.
    config.report_limits = "1000000/60"
    config.position_min_interval_s = 0.0  # likewise for device positions (429 past it, documented)
    app = create_app(config)
    with app.app_context():
        staff, tokens, units, known = _seed(app)
        db.session.remove()
    schema = schemathesis.openapi.from_wsgi(SPEC_PATH, app)
    return World(app=app, schema=schema, staff=staff, tokens=tokens, known=known, units=units)


def _seed(app):
    from server.schemas import AppealIn
    from server.services import dispatch
    from server.services.intake import register_appeal
    from server.services.lifecycle import Actor
    from server.services.routing import locate
    from server.services.staff import create_staff, issue_token
    from tests.conftest import PASSWORD, appeal_body

    now = utcnow()
    unit = locate(68.2510, 43.2975).sector.code.replace("S", "U")
    staff, tokens, units = {}, {}, {}
    for role in ROLES:
        unit_code = unit if role in ("unit_head", "field_staff") else None
        person = create_staff(f"fuzz-{role}", role, PASSWORD, unit_code=unit_code, language="en", now=now)
        staff[role], units[role] = person.id, unit_code
        tokens[role], _row = issue_token(person, now, 12)
    worker = db.session.get(Staff, staff["field_staff"])
    dispatch.set_duty(worker, True, now)
    db.session.commit()

    operator = Actor("staff", "operator", staff["operator"])
    appeals, tracking = [], []
    for overrides in ({}, {"type": "consultation"}, {"lat": 44.9, "lon": 66.9}, {"topic": "street_lighting"},
                      {"description": "Broken bench in the park."}):
        result = register_appeal(AppealIn(**appeal_body(**overrides)), actor=operator, now=now)
        db.session.commit()
        appeals.append(result.appeal.id)
        tracking.append(result.appeal.tracking_token)
    # The first appeal went to the worker (the only one on duty in the unit): walk it on site with a photo.
    photos = _walk_on_site(app, tokens["field_staff"], appeals[0])
    return staff, tokens, units, {
        "appeal_id": appeals,
        "token": tracking,
        "public_id": photos,
        "variant": ["thumb", "large", "original"],
        "staff_id": list(staff.values()),
        "topic": list(db.session.scalars(select(Topic.code).where(Topic.active.is_(True)).order_by(Topic.code))),
    }


def _walk_on_site(app, token: str, appeal_id: int) -> list[str]:
    from tests.fixtures.photos import AT_POINT, multipart, photo

    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    for action, extra in (("accept", {}), ("depart", {}), ("arrive", {"position": AT_POINT})):
        res = client.post(f"/api/v1/appeals/{appeal_id}/transitions", json={"action": action, **extra},
                          headers={**headers, "Idempotency-Key": str(uuid.uuid4())})
        assert res.status_code == 200, res.json
    res = client.post(f"/api/v1/appeals/{appeal_id}/photos", data=multipart(photo(), "before"),
                      headers={**headers, "Idempotency-Key": str(uuid.uuid4())}, content_type="multipart/form-data")
    assert res.status_code == 201, res.json
    return [res.json["id"]]


@dataclass
class Tally:
    """What a fuzz run did: cases per operation and identity, statuses seen, failures found."""

    cases: int = 0
    by_status: Counter = field(default_factory=Counter)
    by_operation: Counter = field(default_factory=Counter)
    by_identity: Counter = field(default_factory=Counter)
    unsatisfiable: set[str] = field(default_factory=set)

    def summary(self) -> str:
        """One line for the test log."""
        statuses = ", ".join(f"{k}: {v}" for k, v in sorted(self.by_status.items()))
        return f"{self.cases} cases over {len(self.by_operation)} operation/identity pairs; statuses {statuses}"


class Fuzzer:
    """Drive schemathesis' strategies over every operation as every identity and check each answer."""

    def __init__(self, world: World, tally: Tally | None = None):
        self.world = world
        self.tally = tally or Tally()
        self.operations = [result.ok() for result in world.schema.get_all_operations()]
        self._mix_in_real_ids()
        self._authenticate()

    def _mix_in_real_ids(self) -> None:
        known = self.world.known

        @self.world.schema.hook("flatmap_path_parameters")
        def real_ids(context, path_parameters):
            if not self.world.mix_ids:  # the stateful runs take their ids from the links
                return st.just(path_parameters)
            # Only where the drawn value has the documented type: a negative case keeps its invalid value.
            choices = {name: st.sampled_from([value, *known[name]])
                       if name in known and type(value) is type(known[name][0]) else st.just(value)
                       for name, value in (path_parameters or {}).items()}
            return st.fixed_dictionaries(choices)

        topics = known["topic"]

        @self.world.schema.hook("flatmap_body")
        def real_topics(context, body):
            # A topic is a code of the catalogue (GET /api/v1/topics), not any string: mostly take a real one.
            topic = body.get("topic") if isinstance(body, dict) else None
            if isinstance(topic, str) and 1 <= len(topic.strip()) <= 32:  # valid as drawn: not a negated field
                return st.sampled_from([body["topic"], *topics]).map(lambda topic: {**body, "topic": topic})
            return st.just(body)

    def _authenticate(self) -> None:
        """Credentials as schemathesis auth (not plain headers), so it knows them for what they are: negative
        cases never "mutate" them into valid ones, and ``ignored_auth`` probes without them and with bad ones."""
        world = self.world

        @world.schema.auth(refresh_interval=None)
        class IdentityAuth:
            def get(self, case, context):
                label = f"{case.operation.method.upper()} {case.operation.path}"
                if label in SELF_HARM:
                    return world.throwaway_headers(world.identity)
                return world.headers(world.identity)

            def set(self, case, data, context):
                case.headers = {k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"}
                case.cookies = {}
                case.headers.update(data)

    def needs_login(self, operation) -> bool:
        """Whether the policy table (not the document) says this operation needs a login."""
        endpoint = self._endpoint(operation)
        return policy_for(endpoint) != PUBLIC

    def _endpoint(self, operation) -> str | None:
        path = operation.path
        sample = path
        for name in ("appeal_id", "staff_id", "key_id", "policy_id", "sample_id"):
            sample = sample.replace("{" + name + "}", "1")
        for name in ("public_id", "variant", "token", "day"):
            sample = sample.replace("{" + name + "}", "x")
        adapter = self.world.app.url_map.bind("localhost")
        endpoint, _args = adapter.match(sample, method=operation.method.upper())
        return endpoint

    def run(self, operation, identity: str, mode: GenerationMode, examples: int) -> None:
        """Run up to ``examples`` Hypothesis examples of ``operation`` in ``mode`` as ``identity``."""
        label = f"{operation.method.upper()} {operation.path}"
        if mode == GenerationMode.NEGATIVE and label in self.tally.unsatisfiable:
            return  # found out with another identity: spare Hypothesis hundreds of rejected draws
        self.world.identity = identity
        strategy = operation.as_strategy(generation_mode=mode, auth_storage=self.world.schema.auth)

        @settings(max_examples=examples, deadline=None, derandomize=True, database=None, print_blob=True,
                  phases=(Phase.explicit, Phase.generate), suppress_health_check=list(HealthCheck))
        @given(case=strategy)
        def fuzz(case):
            self.one(case, identity, label)

        try:
            fuzz()
        except (Unsatisfiable, UnsatisfiableSchema):
            # Nothing to negate (a free-form string in a path is valid whatever it holds): no negative cases.
            if mode != GenerationMode.NEGATIVE:
                raise
            self.tally.unsatisfiable.add(label)

    def one(self, case, identity: str, label: str) -> None:
        """Send one case as ``identity`` and check the answer (raises on the first failed check)."""
        try:
            response = case.call()
            self.tally.cases += 1
            self.tally.by_status[response.status_code] += 1
            self.tally.by_operation[(label, identity)] += 1
            self.tally.by_identity[(identity, response.status_code)] += 1
            case.validate_response(response, checks=CHECKS)
            self.check_auth(case, identity, response)
        finally:
            if label in SELF_HARM:
                self.world.heal()

    def check_auth(self, case, identity: str, response) -> None:
        """Without a token or with a bad one, an operation that needs a login answers 401 (once its route matched:
        a path the router does not know is 404 for everyone)."""
        if identity not in (ANONYMOUS, BAD_TOKEN) or not self.needs_login(case.operation):
            return
        if response.status_code in (404, 405) and not self._route_matches(case):
            return
        assert response.status_code == 401, (
            f"{case.operation.label} as {identity} answered {response.status_code}, not 401: "
            f"{response.text[:300]}\n{case.as_curl_command()}")

    def _route_matches(self, case) -> bool:
        from werkzeug.exceptions import HTTPException

        try:
            self.world.app.url_map.bind("localhost").match(case.formatted_path, method=case.method.upper())
        except HTTPException:
            return False
        return True


@dataclass
class StatefulTally:
    """What the stateful runs did: steps, scenarios, and the chains that followed the links."""

    steps: int = 0
    scenarios: int = 0
    restarts: int = 0  # Hypothesis saw the server answer differently on a replay (it keeps state): new seed
    chains: Counter = field(default_factory=Counter)  # "POST appeals -> GET appeal -> step" etc., per identity


CREATE, READ, STEP = "POST /api/v1/appeals", "GET /api/v1/appeals/{appeal_id}", "POST /api/v1/appeals/{appeal_id}/"


def run_stateful(world: World, identity: str, *, scenarios: int, seed: int, step_count: int = 8,
                 tally: StatefulTally | None = None, fuzz_tally: Tally | None = None) -> StatefulTally:
    """Run schemathesis' state machine (its rules follow the document's links) as ``identity``.

    Every step is checked like a single case. A scenario counts the chains it walked on one appeal:
    created (2xx) -> read back -> a step on it (transition, pause, photos, ...).
    """
    from hypothesis import seed as hypothesis_seed
    from hypothesis.errors import Flaky, FlakyFailure
    from hypothesis.stateful import run_state_machine_as_test

    tally = tally or StatefulTally()
    fuzz_tally = fuzz_tally or Tally()
    base = world.schema.as_state_machine()

    class Machine(base):
        def setup(self):
            world.identity = identity
            self.created: set[int] = set()
            self.read: set[int] = set()
            tally.scenarios += 1

        def validate_response(self, response, case, additional_checks=None, **kwargs):
            tally.steps += 1
            fuzz_tally.cases += 1
            fuzz_tally.by_status[response.status_code] += 1
            label = case.operation.label
            fuzz_tally.by_operation[(f"stateful {label}", identity)] += 1
            case.validate_response(response, checks=CHECKS, recorder=self.recorder)
            ok = 200 <= response.status_code < 300
            appeal_id = (case.path_parameters or {}).get("appeal_id")
            if label == CREATE and ok:
                self.created.add(response.json()["id"])
                tally.chains[(identity, "create")] += 1
            elif label == READ and ok and appeal_id in self.created:
                self.read.add(appeal_id)
                tally.chains[(identity, "create -> read")] += 1
            elif label.startswith(STEP) and appeal_id in self.read:
                tally.chains[(identity, "create -> read -> " + label.rsplit("/", 1)[1])] += 1

    world.mix_ids = False
    try:
        done, attempt = 0, 0
        while done < scenarios and attempt < 20:
            before = tally.scenarios
            machine = hypothesis_seed(seed + attempt)(Machine)
            attempt += 1
            try:
                run_state_machine_as_test(machine, settings=settings(
                    max_examples=scenarios - done, stateful_step_count=step_count, deadline=None, database=None,
                    phases=(Phase.generate,), suppress_health_check=list(HealthCheck), print_blob=True,
                    verbosity=Verbosity.quiet))  # a restart is expected, its replay log is noise
                done = scenarios
            except FlakyFailure:
                raise  # a check failed, then passed on replay: still a failure
            except (Flaky, AssertionError) as exc:
                # The server keeps state: a replayed prefix of choices can meet other answers and draw otherwise.
                if isinstance(exc, AssertionError) and not _inconsistent_replay(exc):
                    raise
                tally.restarts += 1
                done += max(1, tally.scenarios - before - 1)
    finally:
        world.mix_ids = True
    return tally


def _inconsistent_replay(exc: AssertionError) -> bool:
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and tb.tb_frame.f_globals.get("__name__") == "hypothesis.internal.conjecture.datatree"

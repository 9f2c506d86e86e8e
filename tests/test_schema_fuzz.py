"""Schema fuzzing: schemathesis against /api/v1/openapi.json as every role, anonymously and with a bad token.

What is proven, on every run:

* every operation of the document is fuzzed (positive and negative data) and every answer is checked:
  0 server errors, 0 answers outside the document (status code, content type, body, headers), invalid
  data refused, and 0 authentication bypasses (schemathesis' ``ignored_auth`` re-sends each successful
  call without the token and with a bad one; our own check wants 401 from every operation that needs a
  login, for the anonymous caller and a bad token);
* stateful sequences follow the document's links: an appeal created by ``POST /api/v1/appeals`` is read
  back and stepped (transitions, pause, photos ...) by the roles that may do it.

Budget: ``JAUAP_FUZZ_EXAMPLES`` Hypothesis examples per (operation, identity, mode). The per-push run is
derandomized and small (2 examples: about 30-60 s); ``make test-slow`` adds a run of at least 10,000 cases
(counted as they are sent, printed, and asserted).

One backend: SpatiaLite. The fuzz checks the HTTP layer (parsing, policy, serialisation, the document),
which is the same code on both databases; the per-backend SQL is covered by the rest of the suite on
both. SpatiaLite keeps the fuzz inside the per-push time budget (PostGIS costs a server round trip per
statement and a database copy per run).

Each bug the fuzz found has a test below that replays its minimal case deterministically.
"""

from __future__ import annotations

import os
import time

import pytest
from openapi_spec_validator import validate
from schemathesis import GenerationMode

from server.security import AUTHENTICATED, POLICY, PUBLIC
from tests.fuzz_support import (
    ANONYMOUS,
    BAD_TOKEN,
    CHECKS,
    IDENTITIES,
    Fuzzer,
    StatefulTally,
    Tally,
    build_world,
    fuzz_examples,
    run_stateful,
)

pytestmark = pytest.mark.parametrize("backend", ["spatialite"], indirect=True)

SLOW_CASES = 10_000
STATEFUL_ROLES = ("operator", "dispatcher")  # the roles that create appeals (and take steps on them)


@pytest.fixture(scope="module")
def world(backend, tmp_path_factory):
    """The app on its own database (commits are real), seeded, with the schema loaded from it."""
    return build_world(backend.copy("fuzz"), tmp_path_factory.mktemp("fuzz-instance"))


@pytest.fixture(scope="module")
def fuzzer(world):
    """The driver (hooks registered once on the world's schema)."""
    return Fuzzer(world)


@pytest.fixture(scope="module")
def clean(backend, tmp_path_factory):
    """A world of its own for the replays, so what the fuzz did to the seeded appeals cannot change them."""
    world = build_world(backend.copy("fuzz-replay"), tmp_path_factory.mktemp("fuzz-replay-instance"))
    return world, Fuzzer(world)


def allowed(operation, fuzzer) -> list[str]:
    """The identities the policy table lets through to the view."""
    rule = POLICY.get(fuzzer._endpoint(operation))
    if rule == PUBLIC:
        return list(IDENTITIES)
    if rule == AUTHENTICATED:
        return [i for i in IDENTITIES if i not in (ANONYMOUS, BAD_TOKEN)]
    return [i for i in IDENTITIES if i in rule]


def plan(fuzzer, examples: int, full: bool):
    """(operation, identity, mode, examples) to run.

    Full: positive and negative data as everyone. Per push: positive data as everyone, negative data as
    two identities the policy lets through; an identity the policy refuses (401/403 whatever the data)
    gets one example.
    """
    for operation in fuzzer.operations:
        through = allowed(operation, fuzzer)
        for identity in IDENTITIES:
            yield operation, identity, GenerationMode.POSITIVE, examples if full or identity in through else 1
            if full or identity in through[:2]:
                yield operation, identity, GenerationMode.NEGATIVE, examples


def fuzz_all(fuzzer, examples: int, full: bool) -> tuple[Tally, list[str]]:
    """Run the plan; collect every failure (the report lists them all, not just the first)."""
    failures = []
    for operation, identity, mode, budget in plan(fuzzer, examples, full):
        try:
            fuzzer.run(operation, identity, mode, budget)
        except Exception as exc:  # a FailureGroup, an AssertionError of check_auth, a Hypothesis error
            failures.append(f"{operation.label} as {identity} ({mode.value}):\n{str(exc)[:2000]}")
    return fuzzer.tally, failures


# --- the fuzz ---------------------------------------------------------------------------------------


def test_every_operation_as_every_identity(fuzzer, capsys):
    started = time.monotonic()
    tally, failures = fuzz_all(fuzzer, fuzz_examples(2), full=False)
    with capsys.disabled():
        print(f"\nschema fuzz (per push): {tally.summary()} in {time.monotonic() - started:.1f} s")
    assert failures == [], "\n\n".join(failures)
    # Every operation was reached by every identity (no silent skip), and some cases got through the policy.
    pairs = {(label, identity) for label, identity in tally.by_operation}
    assert len(pairs) == len(fuzzer.operations) * len(IDENTITIES)
    assert tally.by_status[200] > 100 and tally.by_status[401] > 100


def walked(tally: StatefulTally, role: str) -> bool:
    """Whether ``role`` created an appeal, read it back and took a step on it (following the links)."""
    return any(r == role and chain.startswith("create -> read -> ") for r, chain in tally.chains)


def test_stateful_create_read_step(backend, tmp_path_factory, capsys):
    # A world of its own: the scenarios do not depend on what the other tests left behind.
    world = build_world(backend.copy("fuzz-stateful"), tmp_path_factory.mktemp("fuzz-stateful-instance"))
    Fuzzer(world)  # registers the hooks and the identities' auth on the schema
    tally, cases = StatefulTally(), Tally()
    per_run = int(os.environ.get("JAUAP_FUZZ_SCENARIOS", 20))
    for number, role in enumerate(STATEFUL_ROLES):
        # Derandomized seeds; more scenarios (up to a cap) until the chain was walked: a chain needs a valid
        # appeal, then two link rules drawn in a row.
        for attempt in range(6):
            run_stateful(world, role, scenarios=per_run, seed=10 * number + attempt, tally=tally, fuzz_tally=cases)
            if walked(tally, role):
                break
    with capsys.disabled():
        print(f"\nstateful fuzz: {tally.steps} steps in {tally.scenarios} scenarios ({tally.restarts} restarts); "
              f"chains {dict(tally.chains)}")
    for role in STATEFUL_ROLES:
        assert tally.chains[(role, "create -> read")] >= 1, tally.chains
        assert walked(tally, role), tally.chains


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_ten_thousand_cases(backend, tmp_path_factory, capsys):
    world = build_world(backend.copy("fuzz-slow"), tmp_path_factory.mktemp("fuzz-slow-instance"))
    fuzzer = Fuzzer(world)
    started = time.monotonic()
    tally, failures = fuzz_all(fuzzer, fuzz_examples(12), full=True)
    stateful = StatefulTally()
    for number, role in enumerate(STATEFUL_ROLES):
        run_stateful(world, role, scenarios=200, seed=100 + number, tally=stateful, fuzz_tally=tally)
    with capsys.disabled():
        print(f"\nschema fuzz (slow): {tally.summary()}; stateful {stateful.steps} steps in {stateful.scenarios} "
              f"scenarios; {time.monotonic() - started:.0f} s")
    assert failures == [], "\n\n".join(failures)
    assert tally.cases >= SLOW_CASES, f"only {tally.cases} cases ran (JAUAP_FUZZ_EXAMPLES too low?)"


# --- the document ------------------------------------------------------------------------------------


def test_document_is_valid_and_agrees_with_the_policy(world, fuzzer):
    doc = world.schema.raw_schema
    validate(doc)
    ids = {op["operationId"] for ops in doc["paths"].values() for op in ops.values()}
    for operation in fuzzer.operations:
        raw = doc["paths"][operation.path][operation.method]
        public = not fuzzer.needs_login(operation)
        assert ("security" in raw) is not public, operation.label
        assert ("401" in raw["responses"]) is not public or operation.label.endswith(("/auth/token", "/auth/session"))
        for status, response in raw["responses"].items():
            if int(status) >= 400:  # every error answers with the error body
                assert response["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
            for name, target in response.get("links", {}).items():
                assert target["operationId"] in ids, name


# --- the bugs the fuzz found, each replayed ----------------------------------------------------------


def replay(world, fuzzer, identity, path, method, **case):
    """Send one exact case as ``identity`` and run every check on the answer; returns the response."""
    world.identity = identity
    operation = world.schema[path][method]
    made = operation.Case(**case)
    world.schema.auth.set(made, None)  # the identity's credentials, as the generated cases get them
    response = made.call()
    made.validate_response(response, checks=CHECKS)
    fuzzer.check_auth(made, identity, response)
    return response


def test_no_login_is_401_before_the_csrf_check(clean):
    world, fuzzer = clean
    # Found: an anonymous write answered 400 csrf_failed, not 401; and ignored_auth, re-sending an operator's
    # successful pause without the token, got that 400 too.
    appeal_id = world.known["appeal_id"][1]
    res = replay(world, fuzzer, ANONYMOUS, "/api/v1/appeals/{appeal_id}/pause", "POST",
                 path_parameters={"appeal_id": appeal_id}, body={"reason": "start_date"})
    assert res.status_code == 401 and res.json()["error"]["code"] == "unauthorized"
    res = replay(world, fuzzer, "operator", "/api/v1/appeals/{appeal_id}/pause", "POST",
                 path_parameters={"appeal_id": appeal_id}, body={"reason": "waiting for the citizen"})
    assert res.status_code in (200, 422)


def test_public_operations_declare_no_security(clean):
    world, fuzzer = clean
    # Found: /ui-config, /topics, /sectors, /auth/token ... said they needed a login; ignored_auth then
    # (rightly) reported that they answer 200 without one.
    res = replay(world, fuzzer, ANONYMOUS, "/api/v1/ui-config", "GET")
    assert res.status_code == 200
    assert "security" not in world.schema.raw_schema["paths"]["/api/v1/topics"]["get"]


def test_wrong_password_401_is_documented(clean):
    world, fuzzer = clean
    # Found: POST /auth/token and /auth/session answered 401 bad_credentials, undocumented (and 429 past the limit).
    for path in ("/api/v1/auth/token", "/api/v1/auth/session"):
        res = replay(world, fuzzer, ANONYMOUS, path, "POST", body={"username": "0", "password": "0"})
        assert res.status_code == 401
        assert "429" in world.schema.raw_schema["paths"][path]["post"]["responses"]


def test_position_report_201_is_documented(clean):
    world, fuzzer = clean
    # Found: POST /me/position answers 201; the document said 200.
    res = replay(world, fuzzer, "field_staff", "/api/v1/me/position", "POST",
                 body={"lat": 43.2975, "lon": 68.251, "recorded_at": None})
    assert res.status_code == 201


def test_multipart_bodies_can_be_satisfied(clean):
    world, fuzzer = clean
    # Found: the photo upload's body was allOf [PhotoIn (no other fields allowed), {file}]: no body could satisfy
    # both; and the citizen report required a photo that is optional.
    appeal_id = world.known["appeal_id"][0]
    from tests.fixtures.photos import photo, sha

    data = photo()
    res = replay(world, fuzzer, "field_staff", "/api/v1/appeals/{appeal_id}/photos", "POST",
                 path_parameters={"appeal_id": appeal_id}, media_type="multipart/form-data",
                 body={"kind": "before", "sha256": sha(data), "file": data},
                 headers={"Idempotency-Key": "6f1c1d0e-3b5a-4e0f-9a59-0d9c1c7e2a11"})
    assert res.status_code in (200, 201), res.text
    report = world.schema.raw_schema["paths"]["/api/v1/public/reports"]["post"]["requestBody"]
    form = report["content"]["multipart/form-data"]["schema"]
    assert "photo" in form["properties"] and "photo" not in form["required"]


def test_optional_number_bounds_are_in_the_document(clean):
    world, fuzzer = clean
    # Found: optional numbers (lat, lon, accuracy_m of an appeal) had pydantic's "ge"/"le" in the document,
    # which JSON Schema ignores; generated lat=1e300 was "valid" and the server refused it.
    lat = world.schema.raw_schema["components"]["schemas"]["AppealIn"]["properties"]["lat"]["anyOf"][0]
    assert lat == {"type": "number", "minimum": -90, "maximum": 90}
    res = replay(world, fuzzer, "operator", "/api/v1/appeals", "POST",
                 body={"type": "complaint", "topic": "roads", "description": "x", "lat": 1e300, "lon": 0})
    assert res.status_code == 400


def test_appeal_rules_and_idempotency_key_are_in_the_document(clean):
    world, fuzzer = clean
    # Found: positive appeals were refused for rules the document did not state (a point or an address;
    # urgency on incidents only; the phone format; an Idempotency-Key of visible ASCII).
    schema = world.schema.raw_schema["components"]["schemas"]
    assert "allOf" in schema["AppealIn"] and "pattern" in schema["CitizenIn"]["properties"]["phone"]
    res = replay(world, fuzzer, "operator", "/api/v1/appeals", "POST",
                 body={"type": "complaint", "topic": "roads", "description": "x"})
    assert res.status_code == 400  # negative now: neither a point nor an address
    key = next(p for p in world.schema.raw_schema["paths"]["/api/v1/appeals"]["post"]["parameters"]
               if p["name"] == "Idempotency-Key")
    assert key["schema"]["pattern"] == "^[!-~]+$"


def test_ids_past_bigint_are_404_or_400_not_500(clean):
    world, fuzzer = clean
    # Found (stateful run): POST /appeals/111509464102314704896/transitions was a 500 (SQLite's driver cannot
    # bind the number: OverflowError; PostgreSQL refuses it: a DBAPIError). The same for ids in bodies and queries.
    huge = 111509464102314704896
    res = replay(world, fuzzer, "operator", "/api/v1/appeals/{appeal_id}/transitions", "POST",
                 path_parameters={"appeal_id": huge}, body={"action": "via", "reason": "due_at"})
    assert res.status_code == 404
    res = replay(world, fuzzer, "dispatcher", "/api/v1/appeals/{appeal_id}/reassign", "POST",
                 path_parameters={"appeal_id": world.known["appeal_id"][0]}, body={"staff_id": huge})
    assert res.status_code == 400
    res = replay(world, fuzzer, "dispatcher", "/api/v1/events", "GET", query={"after": huge})
    assert res.status_code == 400

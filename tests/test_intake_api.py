"""POST/GET /api/v1/appeals: routing, idempotency, the duplicate suggestion, and every bad input."""

from __future__ import annotations

import json
import re

import pytest

from server.models import Appeal, AppealEvent
from tests.conftest import appeal_body, count_rows

pytestmark = pytest.mark.usefixtures("db_session")


def post(client, headers, body, key=None, **kw):
    h = dict(headers)
    if key:
        h["Idempotency-Key"] = key
    return client.post("/api/v1/appeals", json=body, headers=h, **kw)


def test_create_routes_to_sector_and_returns_registration_number(client, as_role):
    _op, headers = as_role("operator")
    res = post(client, headers, appeal_body())
    assert res.status_code == 201, res.json
    data = res.json
    assert re.fullmatch(r"TRK-\d{4}-\d{6}", data["reg_no"])
    assert data["status"] == "routed"
    assert data["sector"]["code"].startswith("S")
    assert len(data["tracking_token"]) >= 24 and data["tracking_token"] not in data["reg_no"]
    assert data["similar"] == []
    assert data["due_at"] is not None
    kinds = [e.kind for e in AppealEvent.query.filter_by(appeal_id=data["id"]).order_by(AppealEvent.id)]
    assert kinds == ["appeal.registered", "appeal.routed"]


def test_numbers_are_sequential_within_the_year(client, as_role):
    _op, headers = as_role("operator")
    a = post(client, headers, appeal_body()).json["reg_no"]
    b = post(client, headers, appeal_body(description="another")).json["reg_no"]
    assert a[:9] == b[:9] and int(b[-6:]) == int(a[-6:]) + 1


def test_point_outside_every_sector_goes_to_unrouted_queue(client, as_role):
    _op, headers = as_role("operator")
    res = post(client, headers, appeal_body(lat=43.9, lon=69.5))
    assert res.status_code == 201
    assert res.json["status"] == "unrouted" and res.json["sector"] is None
    listed = client.get("/api/v1/appeals?status=unrouted", headers=headers).json
    assert res.json["id"] in [a["id"] for a in listed["items"]]


def test_address_only_appeal_is_kept_unrouted(client, as_role):
    _op, headers = as_role("operator")
    res = post(client, headers, appeal_body(lat=..., lon=..., address="Тәуке хан даңғылы, 5"))
    assert res.status_code == 201, res.json
    assert res.json["status"] == "unrouted" and res.json["address"].startswith("Тәуке")


def test_similar_open_appeals_within_50_m_are_suggested(client, as_role):
    _op, headers = as_role("operator")
    first = post(client, headers, appeal_body()).json
    # ~22 m north: same topic -> suggested; other topic -> not; 200 m away -> not
    near = post(client, headers, appeal_body(lat=43.2977, description="same pothole")).json
    assert [s["reg_no"] for s in near["similar"]] == [first["reg_no"]]
    assert 15 < near["similar"][0]["distance_m"] < 30
    other_topic = post(client, headers, appeal_body(lat=43.2977, topic="street_lighting")).json
    assert other_topic["similar"] == []
    far = post(client, headers, appeal_body(lat=43.2995)).json
    assert far["similar"] == []


def test_same_idempotency_key_returns_the_same_appeal(client, as_role):
    _op, headers = as_role("operator")
    first = post(client, headers, appeal_body(), key="call-7781")
    again = post(client, headers, appeal_body(), key="call-7781")
    assert first.status_code == 201 and again.status_code == 200
    assert again.json["id"] == first.json["id"] and again.json["reg_no"] == first.json["reg_no"]
    assert Appeal.query.filter_by(idempotency_key="call-7781").count() == 1


def test_same_key_with_a_different_body_is_refused(client, as_role):
    _op, headers = as_role("operator")
    post(client, headers, appeal_body(), key="call-1")
    res = post(client, headers, appeal_body(description="something else"), key="call-1")
    assert res.status_code == 422
    assert res.json["error"]["code"] == "idempotency_key_reused"


BAD_INPUTS = [
    ("missing type", {"type": ...}, "type", "missing"),
    ("unknown type", {"type": "request"}, "type", "literal_error"),
    ("missing topic", {"topic": ...}, "topic", "missing"),
    ("unknown topic", {"topic": "potholes"}, "topic", "unknown_topic"),
    ("lat as text", {"lat": "43.29"}, "lat", "not_a_number"),
    ("lon as bool", {"lon": True}, "lon", "not_a_number"),
    ("lat out of range", {"lat": 91}, "lat", "less_than_equal"),
    ("lon out of range", {"lon": -180.5}, "lon", "greater_than_equal"),
    ("lat without lon", {"lon": ...}, "lon", "coordinate_pair"),
    ("no location at all", {"lat": ..., "lon": ...}, "lat", "location_required"),
    ("empty description", {"description": "   "}, "description", "string_too_short"),
    ("description too long", {"description": "x" * 4001}, "description", "string_too_long"),
    # The documented maxLength holds for the text as sent, before trimming (schemathesis found this).
    ("too long until trimmed", {"description": " " + "x" * 4000}, "description", "string_too_long"),
    ("negative accuracy", {"accuracy_m": -1}, "accuracy_m", "greater_than_equal"),
    ("unknown channel", {"channel": "fax"}, "channel", "literal_error"),
    ("unknown field", {"priority": "high"}, "priority", "extra_forbidden"),
    ("citizen not an object", {"citizen": "Aigerim"}, "citizen", "model_type"),
    ("bad phone", {"citizen": {"phone": "call me"}}, "citizen", "bad_phone"),
    ("urgency on a complaint", {"urgency": "urgent"}, "urgency", "urgency_incident_only"),
]


@pytest.mark.parametrize(("label", "change", "field", "code"), BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_gets_4xx_naming_the_field_and_writes_nothing(client, as_role, label, change, field, code):
    _op, headers = as_role("operator")
    before = (count_rows(Appeal), count_rows(AppealEvent))
    res = post(client, headers, appeal_body(**change))
    assert 400 <= res.status_code < 500, label
    err = res.json["error"]
    codes = {(f["field"].split(".")[0], f["code"]) for f in err["fields"]}
    assert (field, code) in codes, err
    assert all(f["message"] for f in err["fields"])
    assert (count_rows(Appeal), count_rows(AppealEvent)) == before


@pytest.mark.parametrize("raw", ['{"type": "complaint", "lat": NaN}', '{"lat": Infinity}', '{"lat": -Infinity}'])
def test_nan_and_infinity_are_refused(client, as_role, raw):
    _op, headers = as_role("operator")
    res = client.post("/api/v1/appeals", data=raw, content_type="application/json", headers=headers)
    assert res.status_code == 400 and res.json["error"]["code"] == "malformed_json"


def test_malformed_json_wrong_type_and_too_large(client, as_role, app):
    _op, headers = as_role("operator")
    before = count_rows(Appeal)
    bad = client.post("/api/v1/appeals", data='{"type": ', content_type="application/json", headers=headers)
    assert bad.status_code == 400 and bad.json["error"]["code"] == "malformed_json"
    array = client.post("/api/v1/appeals", data="[1, 2]", content_type="application/json", headers=headers)
    assert array.status_code == 400 and array.json["error"]["code"] == "json_object_required"
    form = client.post("/api/v1/appeals", data={"type": "complaint"}, headers=headers)
    assert form.status_code == 415 and form.json["error"]["code"] == "unsupported_media_type"
    huge = json.dumps(appeal_body(description="x" * (app.config["MAX_CONTENT_LENGTH"] + 10)))
    big = client.post("/api/v1/appeals", data=huge, content_type="application/json", headers=headers)
    assert big.status_code == 413 and big.json["error"]["code"] == "body_too_large"
    assert count_rows(Appeal) == before


def test_bad_idempotency_key_is_refused(client, as_role):
    _op, headers = as_role("operator")
    res = post(client, headers, appeal_body(), key="x" * 200)
    assert res.status_code == 400 and res.json["error"]["code"] == "bad_idempotency_key"


def test_errors_come_in_the_requesters_language(client):
    # Anonymous: the language comes from Accept-Language, negotiated by Babel (kk-KZ,ru -> kk).
    messages = {}
    for lang in ("en", "ru", "kk-KZ,ru"):
        res = client.post("/api/v1/auth/token", json={"username": "ghost", "password": "whatever-1"},
                          headers={"Accept-Language": lang})
        assert res.status_code == 401
        messages[lang] = res.json["error"]["message"]
    assert messages["en"] == "Wrong username or password."
    assert len(set(messages.values())) == 3, messages
    assert re.search("[а-яА-Я]", messages["ru"]) and re.search("[әғқңөұүһі]", messages["kk-KZ,ru"].lower())


@pytest.mark.parametrize(("language", "pattern"), [("kk", "[әғқңөұүһі]"), ("ru", "[а-я]"), ("en", "^Unknown topic")])
def test_field_errors_follow_the_staff_members_language(client, as_role, language, pattern):
    _op, headers = as_role("operator", language=language)
    res = post(client, headers, appeal_body(topic="nope", lat="x"))
    assert res.status_code == 400
    assert all(re.search(pattern, f["message"].split(": ", 1)[-1].lower() if language != "en" else
                         "Unknown topic") for f in res.json["error"]["fields"])
    res = post(client, headers, appeal_body(topic="nope"))
    assert re.search(pattern, res.json["error"]["message"].lower() if language != "en" else
                     res.json["error"]["message"])


def test_operator_language_setting_wins_over_accept_language(client, as_role):
    _op, headers = as_role("operator", language="ru")
    res = client.post("/api/v1/appeals", json=appeal_body(topic="nope"), headers={**headers, "Accept-Language": "en"})
    assert re.search("[а-яА-Я]", res.json["error"]["message"])


def test_list_filters_and_paging(client, as_role):
    _op, headers = as_role("operator")
    ids = [post(client, headers, appeal_body(description=f"n{i}", type=t)).json["id"]
           for i, t in enumerate(["complaint", "incident", "proposal"])]
    res = client.get("/api/v1/appeals?type=incident", headers=headers).json
    assert [a["id"] for a in res["items"]] == [ids[1]]
    page = client.get("/api/v1/appeals?per_page=2&page=1", headers=headers).json
    assert page["total"] >= 3 and len(page["items"]) == 2
    sector = client.get(f"/api/v1/appeals/{ids[0]}", headers=headers).json["sector"]["code"]
    in_sector = client.get(f"/api/v1/appeals?sector={sector}", headers=headers).json
    assert ids[0] in [a["id"] for a in in_sector["items"]]
    box = client.get("/api/v1/appeals?bbox=68.24,43.29,68.26,43.30", headers=headers).json
    assert set(ids) <= {a["id"] for a in box["items"]}
    empty_box = client.get("/api/v1/appeals?bbox=68.0,43.0,68.01,43.01", headers=headers).json
    assert not set(ids) & {a["id"] for a in empty_box["items"]}
    since = client.get("/api/v1/appeals?updated_since=2999-01-01T00:00:00%2B05:00", headers=headers).json
    assert since["items"] == []
    for bad in ("status=lost", "bbox=1,2,3", "bbox=10,10,5,5", "updated_since=yesterday", "per_page=0",
                "page=abc"):
        r = client.get(f"/api/v1/appeals?{bad}", headers=headers)
        assert 400 <= r.status_code < 500, bad
        assert r.json["error"]["message"]


def test_get_returns_full_history(client, as_role):
    _op, headers = as_role("operator")
    created = post(client, headers, appeal_body()).json
    res = client.get(f"/api/v1/appeals/{created['id']}", headers=headers)
    assert res.status_code == 200
    assert [h["kind"] for h in res.json["history"]] == ["appeal.registered", "appeal.routed"]
    assert res.json["history"][1]["data"]["sector"] == created["sector"]["code"]


def test_lang_switch_is_accepted_on_strict_queries(client, as_role):
    _op, headers = as_role("operator")
    res = client.get("/api/v1/appeals?lang=kk&per_page=5", headers=headers)
    assert res.status_code == 200 and res.json["per_page"] == 5
    assert client.get("/api/v1/sectors/lookup?lat=43.2975&lon=68.251&lang=ru").json["sector"]["code"]

"""Open311 GeoReport v2 (+ mySociety servicerequestupdates) on both databases.

Every answer is validated against the JSON Schemas in tests/open311/ (written from the
spec), and every XML answer is parsed and compared with the JSON one: same data.
"""

from __future__ import annotations

import hashlib
import json
import xml.etree.ElementTree as ET
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qsl, urlencode

import jsonschema
import pytest
from geoalchemy2.shape import to_shape
from sqlalchemy import func, insert, select

from server.extensions import db
from server.models import ApiKey, Appeal, AppealEvent, Citizen, Sector, Topic
from server.models.types import utcnow
from server.ratelimit import limiter
from server.schemas import AppealIn
from server.services import apikeys, intake, routing
from server.services import open311 as service
from server.services.lifecycle import SYSTEM, record_event
from tests.conftest import APPEAL, count_rows

HERE = Path(__file__).parent / "open311"
BASE = "/open311/v2"
LIST_TAGS = {"services", "attributes", "values", "service_requests", "errors", "endpoints", "formats",
             "service_request_updates"}
FMS_POINT = (68.251, 43.2975)  # (lon, lat) of the recorded FixMyStreet report


def schema(name: str) -> dict:
    return json.loads((HERE / f"{name}.schema.json").read_text(encoding="utf-8"))


def recorded_form(name: str, **replace: str) -> list[tuple[str, str]]:
    body = (HERE / name).read_text(encoding="utf-8").strip()
    pairs = parse_qsl(body, keep_blank_values=True)
    return [(k, replace.get(v.strip("_").lower(), v) if v.startswith("__") else v) for k, v in pairs]


def xml_to_data(node: ET.Element):
    """The spec's XML back into the JSON shape: containers become lists, leaves text (None if empty)."""
    if node.tag in LIST_TAGS:
        return [xml_to_data(child) for child in node]
    if len(node):
        return {child.tag: xml_to_data(child) for child in node}
    return node.text


def as_xml_text(data):
    """The JSON shape with every leaf written as XML writes it."""
    if isinstance(data, list):
        return [as_xml_text(v) for v in data]
    if isinstance(data, dict):
        return {k: as_xml_text(v) for k, v in data.items()}
    if data is None or data == "":
        return None
    if isinstance(data, bool):
        return "true" if data else "false"
    return str(data)


def fetch(client, method: str, path: str, status: int, schema_name: str, **kwargs):
    """Call ``path`` as .json and .xml; check status, content type, the schema, and that both agree."""
    out = {}
    for fmt in ("json", "xml"):
        resp = client.open(f"{BASE}/{path}.{fmt}", method=method, **kwargs)
        assert resp.status_code == status, (fmt, resp.status_code, resp.get_data(as_text=True))
        if fmt == "json":
            assert resp.content_type == "application/json"
            out["json"] = resp.get_json()
            jsonschema.validate(out["json"], schema(schema_name))
        else:
            assert resp.content_type == "text/xml; charset=utf-8"
            assert resp.data.startswith(b'<?xml version="1.0" encoding="utf-8"?>')
            out["xml"] = xml_to_data(ET.fromstring(resp.data))
    return out


def same_data(pair: dict) -> dict:
    assert pair["xml"] == as_xml_text(pair["json"])
    return pair["json"]


@pytest.fixture
def key(db_session):
    issued = apikeys.create_key("FixMyStreet Turkestan", created_by_id=None, now=utcnow())
    db.session.commit()
    return issued


def fms_post(client, key, fmt="json", **changes):
    form = dict(recorded_form("fms_post_request.form", api_key=key.key))
    form.update(changes)
    form = {k: v for k, v in form.items() if v is not None}
    return client.post(f"{BASE}/requests.{fmt}", data=urlencode(form),
                       content_type="application/x-www-form-urlencoded")


def totals():
    return count_rows(Appeal), count_rows(AppealEvent), count_rows(Citizen)


def make_appeal(now, **overrides) -> Appeal:
    body = {**APPEAL, **overrides}
    result = intake.register_appeal(AppealIn.model_validate(body), actor=SYSTEM, now=now)
    db.session.commit()
    return result.appeal


# --- catalogue ------------------------------------------------------------------------------------------------


def test_discovery_and_services(client):
    data = same_data(fetch(client, "GET", "discovery", 200, "discovery"))
    assert data["endpoints"][0]["url"].endswith("/open311/v2")
    services = same_data(fetch(client, "GET", "services", 200, "services", headers={"Accept-Language": "kk"}))
    by_code = {s["service_code"]: s for s in services}
    topics = db.session.scalars(select(Topic).where(Topic.active.is_(True))).all()
    assert set(by_code) == {t.code for t in topics}
    assert by_code["roads"]["service_name"] == "Жолдар"  # the requested locale
    assert by_code["roads"]["metadata"] is True and by_code["heating"]["metadata"] is False
    assert all(s["type"] == "realtime" for s in services)
    english = client.get(f"{BASE}/services.json?locale=en").get_json()
    assert {s["service_code"]: s["service_name"] for s in english}["roads"] == "Roads"


@pytest.mark.parametrize("code", ["roads", "street_lighting", "waste_collection", "water_supply", "landscaping"])
def test_service_definitions(client, code):
    definition = same_data(fetch(client, "GET", f"services/{code}", 200, "service_definition"))
    assert definition["service_code"] == code
    attrs = definition["attributes"]
    assert [a["order"] for a in attrs] == list(range(1, len(attrs) + 1))
    for attr in attrs:
        if attr["datatype"] in ("singlevaluelist", "multivaluelist"):
            assert attr["values"]


def test_service_definition_content(client):
    roads = client.get(f"{BASE}/services/roads.json?locale=en").get_json()
    hazard = next(a for a in roads["attributes"] if a["code"] == "hazard")
    assert hazard["required"] is True and {v["key"] for v in hazard["values"]} == {"yes", "no"}
    lighting = client.get(f"{BASE}/services/street_lighting.json").get_json()
    assert {a["code"] for a in lighting["attributes"]} == {"pole_number", "fault"}
    waste = client.get(f"{BASE}/services/waste_collection.json").get_json()
    assert "container_type" in {a["code"] for a in waste["attributes"]}


# --- POST requests ----------------------------------------------------------------------------------------------


def test_fixmystreet_post_creates_one_routed_appeal(client, key):
    before = totals()
    resp = fms_post(client, key)
    assert resp.status_code == 201, resp.get_data(as_text=True)
    answer = resp.get_json()
    jsonschema.validate(answer, schema("post_request_response"))
    rid = answer[0]["service_request_id"]
    assert isinstance(rid, str) and rid.startswith("TRK-")
    assert rid in answer[0]["service_notice"]
    appeal = db.session.scalar(select(Appeal).where(Appeal.reg_no == rid))
    assert totals()[0] == before[0] + 1
    expected = routing.locate(*FMS_POINT)
    assert expected is not None and appeal.sector_id == expected.sector.id and appeal.unit_id is not None
    assert appeal.status in ("routed", "assigned")
    assert appeal.channel == "open311" and appeal.type == "incident" and appeal.urgency == "urgent"  # hazard=yes
    assert appeal.api_key_id == key.row.id and appeal.device_id == "FixMyStreet Android"
    # Known attributes are kept; FixMyStreet's own extra fields (title, report_url) are not ours.
    assert appeal.attributes == {"hazard": "yes", "pothole_depth": "gt10"}
    assert appeal.media_url == "https://fixmystreet.example.kz/photo/4321.0.full.jpeg"
    assert "Submitted via FixMyStreet" in appeal.description
    citizen = db.session.get(Citizen, appeal.citizen_id)
    assert (citizen.name, citizen.email, citizen.phone) == ("Aigerim Seitkali", "aigerim@example.kz",
                                                            "+7 701 555 1234")
    assert db.session.get(ApiKey, key.row.id).last_used_at is not None


def test_xml_post_answers_in_xml(client, key):
    resp = fms_post(client, key, fmt="xml", description="Another pothole")
    assert resp.status_code == 201 and resp.content_type == "text/xml; charset=utf-8"
    root = ET.fromstring(resp.data)
    assert root.tag == "service_requests" and root[0].tag == "request"
    rid = root[0].findtext("service_request_id")
    assert db.session.scalar(select(func.count()).select_from(Appeal).where(Appeal.reg_no == rid)) == 1
    again = fms_post(client, key, fmt="json", description="Another pothole")
    assert again.status_code == 200 and again.get_json()[0]["service_request_id"] == rid


def test_a_resend_does_not_duplicate(client, key):
    first = fms_post(client, key)
    rid = first.get_json()[0]["service_request_id"]
    before = totals()
    for _ in range(4):
        again = fms_post(client, key)
        assert again.status_code == 200
        assert again.get_json()[0]["service_request_id"] == rid
    assert totals() == before
    # FixMyStreet's deviceid names the app, not the report: another report from the same app is new.
    other = fms_post(client, key, description="A different report")
    assert other.status_code == 201 and other.get_json()[0]["service_request_id"] != rid
    # ... and the same report through another client's key is that client's own request.
    second = apikeys.create_key("Other client", created_by_id=None, now=utcnow())
    db.session.commit()
    assert fms_post(client, second).get_json()[0]["service_request_id"] != rid


@pytest.mark.parametrize("api_key", [None, "", "j311_forged-key-0000000000000000000000000000", "revoked"])
def test_without_a_valid_api_key_nothing_is_written(client, key, api_key):
    if api_key == "revoked":
        apikeys.revoke_key(key.row.id, now=utcnow())
        db.session.commit()
        api_key = key.key
    before = totals()
    for fmt in ("json", "xml"):
        resp = fms_post(client, key, fmt=fmt, api_key=api_key)
        assert resp.status_code == 403
        if fmt == "json":
            body = resp.get_json()
            jsonschema.validate(body, schema("errors"))
            assert body[0]["code"] == 403
        else:
            root = ET.fromstring(resp.data)
            assert root.tag == "errors" and root.find("error/code").text == "403"
    assert totals() == before


@pytest.mark.parametrize(("changes", "status", "words"), [
    ({"service_code": None}, 400, "service_code"),
    ({"service_code": "no_such_service"}, 404, "service_code"),
    ({"lat": None, "long": None}, 400, "location"),
    ({"long": None}, 400, "together"),
    ({"lat": "north"}, 400, "lat"),
    ({"lat": "91"}, 400, "lat"),
    ({"attribute[hazard]": None}, 400, "attribute[hazard]"),
    ({"attribute[hazard]": "maybe"}, 400, "attribute[hazard]"),
    ({"email": "not-an-address"}, 400, "email"),
    ({"phone": "call me"}, 400, "phone"),
    ({"media_url": "javascript:alert(1)"}, 400, "media_url"),
    ({"description": "x" * 4001}, 400, "description"),
])
def test_post_errors_are_in_spec_format(client, key, changes, status, words):
    before = totals()
    for fmt in ("json", "xml"):
        resp = fms_post(client, key, fmt=fmt, **changes)
        assert resp.status_code == status, resp.get_data(as_text=True)
        if fmt == "json":
            body = resp.get_json()
            jsonschema.validate(body, schema("errors"))
            assert body[0]["code"] == status and words in body[0]["description"]
        else:
            error = ET.fromstring(resp.data).find("error")
            assert error.findtext("code") == str(status) and words in error.findtext("description")
    assert totals() == before


def test_other_locations_and_types(client, key):
    by_address = fms_post(client, key, lat=None, long=None, address_string="Тауке хан даңғылы 12",
                          description="By address")
    appeal = db.session.scalar(select(Appeal).where(
        Appeal.reg_no == by_address.get_json()[0]["service_request_id"]))
    assert appeal.address == "Тауке хан даңғылы 12" and appeal.status == "unrouted"  # no point: dispatcher's queue
    by_id = fms_post(client, key, lat=None, long=None, address_id="#NOTPINPOINTED#", description="By id")
    assert by_id.status_code == 201
    # Topic and attribute decide the type: a landscaping proposal, a social complaint, a normal incident.
    base = {k: None for k in ("attribute[hazard]", "attribute[pothole_depth]")}
    proposal = fms_post(client, key, service_code="landscaping", **base, **{"attribute[request_kind]": "proposal"})
    social = fms_post(client, key, service_code="social_support", **base)
    lighting = fms_post(client, key, service_code="street_lighting", **base, **{"attribute[fault]": "out",
                                                                                 "device_id": "kiosk-7"})
    kinds = {}
    for resp in (proposal, social, lighting):
        assert resp.status_code == 201, resp.get_data(as_text=True)
        row = db.session.scalar(select(Appeal).where(Appeal.reg_no == resp.get_json()[0]["service_request_id"]))
        kinds[row.topic_code] = (row.type, row.urgency, row.device_id)
    assert kinds["landscaping"][:2] == ("proposal", None)
    assert kinds["social_support"][:2] == ("complaint", None)
    assert kinds["street_lighting"] == ("incident", "normal", "kiosk-7")


# --- GET requests -----------------------------------------------------------------------------------------------


def test_get_requests_and_one_request(client, key):
    rid = fms_post(client, key).get_json()[0]["service_request_id"]
    listed = same_data(fetch(client, "GET", "requests", 200, "requests"))
    mine = next(r for r in listed if r["service_request_id"] == rid)
    assert mine["status"] == "open" and mine["service_code"] == "roads"
    assert (mine["long"], mine["lat"]) == pytest.approx(FMS_POINT)
    assert mine["agency_responsible"] and mine["expected_datetime"]
    one = same_data(fetch(client, "GET", f"requests/{rid}", 200, "requests"))
    assert one == [mine]
    by_ids = same_data(fetch(client, "GET", "requests", 200, "requests",
                             query_string={"service_request_id": f"{rid},TRK-1999-000001"}))
    assert [r["service_request_id"] for r in by_ids] == [rid]
    token = same_data(fetch(client, "GET", f"tokens/{rid}", 200, "token"))
    assert token == [{"service_request_id": rid, "token": rid}]
    fetch(client, "GET", "requests/TRK-1999-000001", 404, "errors")
    fetch(client, "GET", "tokens/no-such-token", 404, "errors")


def test_get_responses_carry_no_personal_data(client, key):
    rid = fms_post(client, key).get_json()[0]["service_request_id"]
    phone_call = make_appeal(utcnow(), description="Айгерим from flat 5 says the pipe leaks", channel="phone",
                             citizen={"name": "Айгерим Смагулова", "phone": "+7 701 999 8877", "language": "kk"})
    secrets_ = ["Aigerim", "Seitkali", "aigerim@example.kz", "555 1234", "FixMyStreet Android", "Айгерим",
                "Смагулова", "999 8877", phone_call.tracking_token,
                db.session.scalar(select(Appeal.tracking_token).where(Appeal.reg_no == rid))]
    for path in ("requests", f"requests/{rid}", f"requests/{phone_call.reg_no}", "servicerequestupdates"):
        for fmt in ("json", "xml"):
            text = client.get(f"{BASE}/{path}.{fmt}").get_data(as_text=True)
            leaked = [s for s in secrets_ if s in text]
            assert not leaked, (path, fmt, leaked)
    listed = {r["service_request_id"]: r for r in client.get(f"{BASE}/requests.json").get_json()}
    assert listed[phone_call.reg_no]["description"] is None  # the operator's note is not published
    assert "Submitted via FixMyStreet" in listed[rid]["description"]  # the client's own text is


def test_default_window_is_90_days_and_filters(client, key):
    now = utcnow()
    old = make_appeal(now - timedelta(days=100), description="old one")
    recent = make_appeal(now - timedelta(days=10), description="recent one")
    closed = make_appeal(now - timedelta(days=5), description="closed one")
    closed.status = "answered"
    db.session.commit()
    ids = [r["service_request_id"] for r in client.get(f"{BASE}/requests.json").get_json()]
    assert recent.reg_no in ids and closed.reg_no in ids and old.reg_no not in ids
    window = {"start_date": (now - timedelta(days=120)).isoformat(), "end_date": (now - timedelta(days=95)).isoformat()}
    ids = [r["service_request_id"] for r in same_data(fetch(client, "GET", "requests", 200, "requests",
                                                            query_string=window))]
    assert ids == [old.reg_no]
    open_ids = [r["service_request_id"] for r in same_data(fetch(client, "GET", "requests", 200, "requests",
                                                                 query_string={"status": "open"}))]
    closed_ids = [r["service_request_id"] for r in same_data(fetch(client, "GET", "requests", 200, "requests",
                                                                   query_string={"status": "closed"}))]
    assert recent.reg_no in open_ids and closed.reg_no not in open_ids
    assert closed_ids == [closed.reg_no]
    both = client.get(f"{BASE}/requests.json?status=open,closed").get_json()
    assert {recent.reg_no, closed.reg_no} <= {r["service_request_id"] for r in both}
    by_code = client.get(f"{BASE}/requests.json?service_code=heating").get_json()
    assert by_code == []
    # A date with an unencoded "+" offset (a space after decoding) is still understood.
    local = (now - timedelta(days=11)).astimezone(service.TZ).replace(microsecond=0).isoformat()
    resp = client.get(f"{BASE}/requests.json?start_date={local}")
    assert resp.status_code == 200 and recent.reg_no in [r["service_request_id"] for r in resp.get_json()]


def test_at_most_1000_requests_newest_first(client):
    now = utcnow()
    topic = "roads"
    rows = [{"reg_no": f"TST-2026-{i:06d}", "tracking_token": f"tok-{i}", "type": "incident", "topic_code": topic,
             "description": "bulk", "channel": "phone", "status": "registered",
             "created_at": now - timedelta(minutes=i), "updated_at": now - timedelta(minutes=i)}
            for i in range(1, 1006)]
    db.session.execute(insert(Appeal), rows)
    db.session.commit()
    listed = client.get(f"{BASE}/requests.json").get_json()
    assert len(listed) == 1000
    assert listed[0]["service_request_id"] == "TST-2026-000001"
    assert listed[-1]["service_request_id"] == "TST-2026-001000"


@pytest.mark.parametrize(("path", "query", "status", "words"), [
    ("requests", {"start_date": "yesterday"}, 400, "start_date"),
    ("requests", {"end_date": "2026-01-05T10:00:00"}, 400, "end_date"),  # no zone
    ("requests", {"start_date": "2026-01-01T00:00:00Z", "end_date": "2026-06-01T00:00:00Z"}, 400, "90 days"),
    ("requests", {"start_date": "2026-02-01T00:00:00Z", "end_date": "2026-01-01T00:00:00Z"}, 400, "before"),
    ("requests", {"status": "pending"}, 400, "status"),
    ("requests", {"service_code": "no_such_service"}, 400, "service_code"),
    ("servicerequestupdates", {"start_date": "2026-13-45T00:00:00Z"}, 400, "start_date"),
    ("services/no_such_service", {}, 404, "service_code"),
    ("no/such/resource", {}, 404, "no such resource"),
])
def test_get_errors_are_in_spec_format(client, path, query, status, words):
    for fmt in ("json", "xml"):
        resp = client.get(f"{BASE}/{path}.{fmt}", query_string=query)
        assert resp.status_code == status, resp.get_data(as_text=True)
        if fmt == "json":
            body = resp.get_json()
            jsonschema.validate(body, schema("errors"))
            assert body == [{"code": status, "description": body[0]["description"]}]
            assert words in body[0]["description"]
        else:
            error = ET.fromstring(resp.data).find("error")
            assert error.findtext("code") == str(status) and words in error.findtext("description")


@pytest.mark.parametrize("path", ["services.csv", "requests.html", "discovery.yaml", "services"])
def test_unknown_format_is_a_404_in_xml(client, path):
    resp = client.get(f"{BASE}/{path}")
    assert resp.status_code == 404 and resp.content_type == "text/xml; charset=utf-8"
    assert ET.fromstring(resp.data).findtext("error/code") == "404"


def test_xml_escapes_text(client, key):
    nasty = "a < b & c > d \"quoted\" 'single' ]]> \x01end"
    rid = fms_post(client, key, description=nasty).get_json()[0]["service_request_id"]
    pair = fetch(client, "GET", f"requests/{rid}", 200, "requests")
    assert pair["xml"][0]["description"] == nasty.replace("\x01", "")
    assert pair["json"][0]["description"] == nasty


# --- servicerequestupdates --------------------------------------------------------------------------------------


def test_servicerequestupdates_get_and_post(client, key):
    rid = fms_post(client, key).get_json()[0]["service_request_id"]
    appeal = db.session.scalar(select(Appeal).where(Appeal.reg_no == rid))
    updates = same_data(fetch(client, "GET", "servicerequestupdates", 200, "service_request_updates",
                              query_string={"locale": "en"}))
    mine = [u for u in updates if u["service_request_id"] == rid]
    assert mine and mine[0]["description"] == "Registered" and all(u["status"] == "open" for u in mine)

    form = dict(recorded_form("fms_post_update.form", api_key=key.key, service_request_id=rid))
    before = count_rows(AppealEvent)
    posted = client.post(f"{BASE}/servicerequestupdates.json", data=form)
    assert posted.status_code == 201, posted.get_data(as_text=True)
    jsonschema.validate(posted.get_json(), schema("post_update_response"))
    update_id = posted.get_json()[0]["update_id"]
    assert count_rows(AppealEvent) == before + 1
    # FixMyStreet resends (here as XML): the same update_id, nothing new.
    again = client.post(f"{BASE}/servicerequestupdates.xml", data=form)
    assert again.status_code == 200 and again.content_type == "text/xml; charset=utf-8"
    assert xml_to_data(ET.fromstring(again.data)) == [{"update_id": update_id}]
    assert count_rows(AppealEvent) == before + 1
    comment = db.session.get(AppealEvent, int(update_id))
    assert comment.kind == "appeal.comment" and comment.actor_kind == "citizen"
    assert comment.data["description"] == "Ещё не заделали, яма стала больше."
    assert "email" not in json.dumps(comment.data) and "Aigerim" not in json.dumps(comment.data)
    assert appeal.status != "reopened"  # a plain OPEN only comments

    listed = same_data(fetch(client, "GET", "servicerequestupdates", 200, "service_request_updates"))
    echoed = next(u for u in listed if u["update_id"] == update_id)
    assert echoed["description"] == "Ещё не заделали, яма стала больше."
    assert echoed["media_url"].endswith("98765.0.full.jpeg")

    # Another client may not post to this request; nothing is written.
    other = apikeys.create_key("Other client", created_by_id=None, now=utcnow())
    db.session.commit()
    foreign = {**form, "api_key": other.key, "update_id": "1"}
    resp = client.post(f"{BASE}/servicerequestupdates.json", data=foreign)
    assert resp.status_code == 403 and count_rows(AppealEvent) == before + 1
    resp = client.post(f"{BASE}/servicerequestupdates.xml", data={**foreign, "api_key": "forged"})
    assert resp.status_code == 403 and ET.fromstring(resp.data).findtext("error/code") == "403"
    resp = client.post(f"{BASE}/servicerequestupdates.json", data={**form, "service_request_id": "TRK-1-1",
                                                                  "update_id": "2"})
    assert resp.status_code == 404


def test_answer_goes_back_and_reopen_from_the_client(client, key):
    rid = fms_post(client, key).get_json()[0]["service_request_id"]
    appeal = db.session.scalar(select(Appeal).where(Appeal.reg_no == rid))
    now = utcnow()
    # The answer (a shortcut through the history: the lifecycle tests cover the steps before it).
    appeal.answer_text, previous = "The pothole was filled on 25 November.", appeal.status
    appeal.status = "answered"
    record_event(appeal, "appeal.answered", SYSTEM, now, from_status=previous, to_status="answered")
    db.session.commit()
    updates = client.get(f"{BASE}/servicerequestupdates.json").get_json()
    answered = next(u for u in updates if u["service_request_id"] == rid and u["external_status_code"] == "answered")
    assert answered["status"] == "closed" and answered["description"] == "The pothole was filled on 25 November."
    status = client.get(f"{BASE}/requests/{rid}.json").get_json()[0]
    assert status["status"] == "closed"

    form = dict(recorded_form("fms_post_update.form", api_key=key.key, service_request_id=rid))
    form.update(status="REOPEN", update_id="777", description="Still there.")
    resp = client.post(f"{BASE}/servicerequestupdates.xml", data=form)
    assert resp.status_code == 201
    db.session.refresh(appeal)
    assert appeal.status == "reopened"
    kinds = [e.kind for e in db.session.scalars(select(AppealEvent).where(AppealEvent.appeal_id == appeal.id)
                                                .order_by(AppealEvent.id))]
    assert kinds[-2:] == ["appeal.comment", "appeal.reopened"]
    assert client.get(f"{BASE}/requests/{rid}.json").get_json()[0]["status"] == "open"


def test_updates_need_something_and_a_known_status(client, key):
    rid = fms_post(client, key).get_json()[0]["service_request_id"]
    base = {"api_key": key.key, "service_request_id": rid}
    for data, words in (({}, "description"), ({"status": "MAYBE", "description": "x"}, "status"),
                        ({"description": "x", "updated_datetime": "today"}, "updated_datetime")):
        resp = client.post(f"{BASE}/servicerequestupdates.json", data={**base, **data})
        assert resp.status_code == 400 and words in resp.get_json()[0]["description"]
    assert client.post(f"{BASE}/servicerequestupdates.json", data={"description": "x"}).status_code == 403


# --- API keys ---------------------------------------------------------------------------------------------------


def test_admin_manages_api_keys(client, as_role):
    _admin, headers = as_role("admin")
    _operator, op_headers = as_role("operator")
    assert client.post("/api/v1/admin/api-keys", json={"name": "x"}, headers=op_headers).status_code == 403
    assert client.get("/api/v1/admin/api-keys", headers=op_headers).status_code == 403
    resp = client.post("/api/v1/admin/api-keys", json={"name": "FixMyStreet"}, headers=headers)
    assert resp.status_code == 201
    created = resp.get_json()
    secret = created["key"]
    row = db.session.get(ApiKey, created["id"])
    assert row.key_hash == hashlib.sha256(secret.encode()).hexdigest() and secret not in row.key_hash
    listed = client.get("/api/v1/admin/api-keys", headers=headers).get_json()
    assert created["id"] in [k["id"] for k in listed] and secret not in json.dumps(listed)
    assert client.post("/api/v1/admin/api-keys", json={"name": ""}, headers=headers).status_code == 400
    # maxLength 120 holds for the name as sent: 121 characters are refused even if trimming would leave 120.
    too_long = client.post("/api/v1/admin/api-keys", json={"name": "\f" + "*" * 120}, headers=headers)
    assert too_long.status_code == 400, too_long.get_json()
    assert [f["code"] for f in too_long.get_json()["error"]["fields"]] == ["string_too_long"]
    trimmed = client.post("/api/v1/admin/api-keys", json={"name": "  City dashboard  "}, headers=headers)
    assert trimmed.status_code == 201 and trimmed.get_json()["name"] == "City dashboard"
    # The key works, then is revoked and stops working.
    form = dict(recorded_form("fms_post_request.form", api_key=secret))
    assert client.post(f"{BASE}/requests.json", data=form).status_code == 201
    assert client.delete(f"/api/v1/admin/api-keys/{created['id']}", headers=headers).status_code == 204
    assert client.delete(f"/api/v1/admin/api-keys/{created['id']}", headers=headers).status_code == 204
    assert client.delete("/api/v1/admin/api-keys/999999", headers=headers).status_code == 404
    form["description"] = "after revocation"
    assert client.post(f"{BASE}/requests.json", data=form).status_code == 403
    listed = {k["id"]: k for k in client.get("/api/v1/admin/api-keys", headers=headers).get_json()}
    assert listed[created["id"]]["active"] is False and listed[created["id"]]["revoked_at"]


def test_cli_issues_lists_and_revokes_keys(app, db_session):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["apikeys", "create", "--name", "City dashboard"])
    assert result.exit_code == 0, result.output
    secret = result.output.strip().splitlines()[-1]
    assert secret.startswith("j311_")
    row = db.session.scalar(select(ApiKey).where(ApiKey.key_hash == apikeys.hash_key(secret)))
    assert row is not None and row.name == "City dashboard"
    listing = runner.invoke(args=["apikeys", "list"]).output
    assert "City dashboard" in listing and secret not in listing
    assert runner.invoke(args=["apikeys", "revoke", str(row.id)]).exit_code == 0
    assert apikeys.authenticate(secret, now=utcnow()) is None
    assert runner.invoke(args=["apikeys", "revoke", "999999"]).exit_code != 0


def test_every_sector_gets_its_requests(client, key):
    """A request at an interior point of each sector is routed to that sector."""
    for sector in db.session.scalars(select(Sector).where(Sector.version == routing.current_version())):
        point = to_shape(sector.geom).representative_point()
        resp = fms_post(client, key, lat=str(round(point.y, 6)), long=str(round(point.x, 6)),
                        description=f"pothole in {sector.code}")
        assert resp.status_code == 201
        row = db.session.scalar(select(Appeal).where(Appeal.reg_no == resp.get_json()[0]["service_request_id"]))
        assert row.sector_id == sector.id


def _after_photo(appeal: Appeal, public_id: str) -> bytes:
    """An "after" photo of ``appeal`` with its large derivative on disk (as the photo pipeline leaves it)."""
    import io

    from PIL import Image

    from server import media
    from server.models import Attachment
    from server.services.evidence import media_root

    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 80, 20)).save(buffer, "JPEG")
    data = buffer.getvalue()
    sha = hashlib.sha256(data + public_id.encode()).hexdigest()
    path = media.derived_path(media_root(), sha, "large")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    db.session.add(Attachment(public_id=public_id, appeal_id=appeal.id, kind="after", sha256=sha, mime="image/jpeg",
                              size_bytes=len(data), width=8, height=8))
    db.session.commit()
    return data


def _resolve(appeal: Appeal) -> None:
    previous, appeal.status = appeal.status, "resolved"
    record_event(appeal, "appeal.resolved", SYSTEM, utcnow(), from_status=previous, to_status="resolved")
    db.session.commit()


def test_after_photo_is_the_media_url_once_resolved(client, key):
    rid = fms_post(client, key).get_json()[0]["service_request_id"]
    appeal = db.session.scalar(select(Appeal).where(Appeal.reg_no == rid))
    data = _after_photo(appeal, "pubAFTER0001")
    # Not resolved yet: the client's own photo, and ours is not served.
    assert client.get(f"{BASE}/requests/{rid}.json").get_json()[0]["media_url"].endswith("4321.0.full.jpeg")
    assert client.get(f"{BASE}/media/pubAFTER0001.jpg").status_code == 404
    _resolve(appeal)
    shown = same_data(fetch(client, "GET", f"requests/{rid}", 200, "requests"))[0]["media_url"]
    assert shown == "http://localhost/open311/v2/media/pubAFTER0001.jpg"
    resp = client.get(shown)
    assert resp.status_code == 200 and resp.content_type == "image/jpeg" and resp.data == data
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    updates = client.get(f"{BASE}/servicerequestupdates.json").get_json()
    resolved = next(u for u in updates if u["service_request_id"] == rid and u["external_status_code"] == "resolved")
    assert resolved["media_url"] == shown
    # A phone caller's appeal never publishes its photos through Open311.
    call = make_appeal(utcnow(), channel="phone")
    _after_photo(call, "pubAFTER0002")
    _resolve(call)
    assert client.get(f"{BASE}/media/pubAFTER0002.jpg").status_code == 404
    assert client.get(f"{BASE}/requests/{call.reg_no}.json").get_json()[0]["media_url"] is None


def test_writes_are_rate_limited_per_api_key(client, key, app):
    # A partner's runaway client: past its key's allowance a write is the spec's error list with 429 and
    # Retry-After, and nothing is written; another partner's key is not affected.
    app.config["JAUAP_OPEN311_LIMITS"] = "3/60"
    limiter(app).reset()
    try:
        for n in range(3):
            assert fms_post(client, key, description=f"Report number {n}").status_code == 201
        before = totals()
        for fmt in ("json", "xml"):
            refused = fms_post(client, key, fmt=fmt, description="One too many")
            assert refused.status_code == 429
            assert 1 <= int(refused.headers["Retry-After"]) <= 60
            if fmt == "json":
                body = refused.get_json()
                jsonschema.validate(body, schema("errors"))
                assert body[0]["code"] == 429 and "api_key" in body[0]["description"]
            else:
                assert ET.fromstring(refused.data).find("error/code").text == "429"
        assert totals() == before
        other = apikeys.create_key("Other partner", created_by_id=None, now=utcnow())
        db.session.commit()
        assert fms_post(client, other, description="Not throttled").status_code == 201
        # A forged key is refused as before (403), and does not use up the real key's allowance.
        assert fms_post(client, key, api_key="j311_forged-key-0000000000000000000000000000").status_code == 403
    finally:
        app.config["JAUAP_OPEN311_LIMITS"] = "100000/60"
        limiter(app).reset()

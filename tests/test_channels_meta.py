"""The Meta webhook (WhatsApp Cloud API, Instagram, Messenger): the verification handshake, the signature
over the raw body, dispatch by object, dedupe by message id, the same guided dialogue, replies through the
outbox to a local Graph API, and media fetched by the worker."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import select

from server.extensions import db
from server.models import Appeal, Attachment, Citizen, Conversation, InboundUpdate, MediaFetch, OutboundMessage
from server.models.types import utcnow
from server.services import media_fetch, outbox
from tests.channel_fixtures import (
    APP_SECRET,
    META_URL,
    PUBLIC_URL,
    VERIFY_TOKEN,
    configured_providers,
    count,
    jpeg,
    load,
    sign,
)
from tests.channel_fixtures import outbox as rows
from tests.provider_stub import GRAPH_TOKEN, PAGE_TOKEN, PHONE_ID

WA_ID, IGSID, PSID = "77015551234", "1254459154682919", "6789012345678901"
WA_FLOW = ["wa_text", "wa_language", "wa_type", "wa_topic", "wa_location", "wa_image", "wa_next", "wa_description",
           "wa_confirm"]
IG_FLOW = ["ig_text", "ig_language", "ig_type", "ig_topic", "ig_address", "ig_image", "ig_next", "ig_description",
           "ig_confirm"]
FB_FLOW = ["fb_text", "fb_language", "fb_type", "fb_topic", "fb_address", "fb_skip", "fb_description", "fb_confirm"]
MEDIA_ID = "1066540822319834"



@pytest.fixture
def providers(app, db_session):
    """Every channel configured against a local provider stub."""
    with configured_providers(app) as stub:
        yield stub

def post_raw(client, raw: bytes, signature: str | None):
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers["X-Hub-Signature-256"] = signature
    return client.post(META_URL, data=raw, headers=headers)


def post(client, payload: dict):
    # Meta's bytes are what is signed: compact separators and escaped non-ASCII, as the raw body arrives.
    raw = json.dumps(payload).encode()
    res = post_raw(client, raw, sign(raw))
    assert res.status_code == 200, res.get_data(as_text=True)
    return res


def run(client, names, rewrite=None):
    for name in names:
        payload = load(f"meta/{name}.json")
        if rewrite:
            rewrite(payload)
        post(client, payload)


def step(channel: str, handle: str) -> str:
    return db.session.scalar(select(Conversation.step).where(Conversation.channel == channel,
                                                             Conversation.handle == handle))


# --- the handshake and the signature -------------------------------------------------------------


def test_verification_handshake_echoes_the_challenge_only_for_our_token(client, providers):
    ok = client.get(f"{META_URL}?hub.mode=subscribe&hub.verify_token={VERIFY_TOKEN}&hub.challenge=1158201444")
    assert ok.status_code == 200 and ok.get_data(as_text=True) == "1158201444" and ok.mimetype == "text/plain"
    for query in ("hub.mode=subscribe&hub.verify_token=wrong&hub.challenge=1",
                  f"hub.mode=unsubscribe&hub.verify_token={VERIFY_TOKEN}&hub.challenge=1",
                  "hub.mode=subscribe&hub.challenge=1", ""):
        assert client.get(f"{META_URL}?{query}").status_code == 403


def test_without_a_verify_token_setting_the_handshake_is_refused(client, providers, app):
    app.config["JAUAP_META_VERIFY_TOKEN"] = None
    assert client.get(f"{META_URL}?hub.mode=subscribe&hub.verify_token=&hub.challenge=1").status_code == 403
    assert client.get(f"{META_URL}?hub.mode=subscribe&hub.verify_token=None&hub.challenge=1").status_code == 403


@pytest.mark.parametrize("name", ["wa_text", "ig_text", "fb_text"])
def test_an_unsigned_or_forged_call_gets_403_and_writes_nothing(client, providers, name):
    raw = json.dumps(load(f"meta/{name}.json")).encode()
    reformatted = json.dumps(json.loads(raw), ensure_ascii=False, indent=1).encode()  # same JSON, other bytes
    for signature in (None, "", "sha256=" + "0" * 64, sign(raw, "another-app-secret"), sign(raw)[7:],
                      sign(raw).replace("sha256=", "sha1="), sign(reformatted)):
        res = post_raw(client, raw, signature)
        assert res.status_code == 403 and res.json["error"]["code"] == "webhook_forbidden"
    assert count(InboundUpdate) == count(Conversation) == count(OutboundMessage) == count(Appeal) == 0
    assert post_raw(client, raw, sign(raw)).status_code == 200  # the genuine signature is accepted


def test_without_an_app_secret_every_post_is_refused(client, providers, app):
    app.config["JAUAP_META_APP_SECRET"] = None
    raw = json.dumps(load("meta/wa_text.json")).encode()
    assert post_raw(client, raw, sign(raw, "")).status_code == 403
    assert count(InboundUpdate) == 0


def test_a_signed_body_that_is_not_json_is_a_400(client, providers):
    assert post_raw(client, b"not json", sign(b"not json")).status_code == 400


# --- WhatsApp -------------------------------------------------------------------------------------


def test_whatsapp_conversation_makes_an_appeal_and_the_reply_goes_out(client, providers):
    providers.wa_media[MEDIA_ID] = jpeg(800, 600)
    run(client, WA_FLOW[:1])
    [prompt] = rows("whatsapp")
    assert prompt.recipient == WA_ID and [b["id"] for b in prompt.payload["buttons"]] == ["lang:kk", "lang:ru",
                                                                                         "lang:en"]
    run(client, WA_FLOW[1:])
    [appeal] = db.session.scalars(select(Appeal)).all()
    assert (appeal.channel, appeal.type, appeal.topic_code) == ("whatsapp", "incident", "street_lighting")
    assert "үш күннен бері" in appeal.description
    citizen = db.session.get(Citizen, appeal.citizen_id)
    assert (citizen.handle, citizen.phone, citizen.language, citizen.name) == (WA_ID, "+77015551234", "kk",
                                                                               "Нұрлан Әбдіков")
    reply = rows("whatsapp")[-1]
    assert reply.dedupe_key.startswith("reply:ev") and appeal.reg_no in reply.payload["text"]
    assert "тіркелді" in reply.payload["text"] and f"{PUBLIC_URL}/t/{appeal.tracking_token}" in reply.payload["text"]

    outbox.deliver_due(utcnow() + timedelta(seconds=1), limit=100)
    sent = providers.sent(f"/{PHONE_ID}/messages")
    assert len(sent) == len(rows("whatsapp")) and all(r.headers["Authorization"] == f"Bearer {GRAPH_TOKEN}"
                                                      for r in sent)
    assert {r.json["to"] for r in sent} == {WA_ID}
    assert sent[0].json["type"] == "interactive" and sent[0].json["interactive"]["type"] == "button"
    types = [r.json["interactive"]["type"] for r in sent if r.json["type"] == "interactive"]
    assert "list" in types and "location_request_message" in types  # 5 types as a list, the location request
    assert sent[-1].json["type"] == "text" and sent[-1].json["text"]["body"] == reply.payload["text"]
    assert all(r.state == "sent" for r in rows("whatsapp"))

    assert media_fetch.fetch_due(utcnow())["sent"] == 1
    [photo] = db.session.scalars(select(Attachment).where(Attachment.appeal_id == appeal.id)).all()
    assert photo.kind == "citizen" and (photo.width, photo.height) == (800, 600)
    lookup, download = providers.sent(f"/{MEDIA_ID}")[0], providers.sent(f"/wa-media/{MEDIA_ID}")[0]
    assert lookup.headers["Authorization"] == download.headers["Authorization"] == f"Bearer {GRAPH_TOKEN}"


def test_the_same_whatsapp_message_five_times_makes_one_appeal(client, providers):
    run(client, WA_FLOW[:-1])
    for _ in range(5):
        run(client, ["wa_confirm"])
    assert count(Appeal) == 1
    assert count(InboundUpdate, InboundUpdate.channel == "whatsapp") == len(WA_FLOW)
    assert len([r for r in rows("whatsapp") if (r.dedupe_key or "").startswith("reply:")]) == 1


def test_statuses_and_unsupported_messages_are_handled_quietly(client, providers):
    run(client, ["wa_status"])
    assert count(Conversation) == 0 and count(OutboundMessage) == 0
    run(client, ["wa_text", "wa_language", "wa_sticker"])  # a sticker where a type was expected: asked again
    assert step("whatsapp", WA_ID) == "type"
    assert "нұсқалардың бірін" in rows("whatsapp")[-2].payload["text"]


def test_a_whatsapp_media_url_outside_the_cdn_is_not_fetched(client, providers, app):
    providers.wa_media[MEDIA_ID] = jpeg()
    run(client, WA_FLOW)
    app.config["JAUAP_CHANNELS_ALLOW_LOOPBACK"] = False  # production: only the providers' CDN hosts
    app.extensions.pop("jauap_channels", None)
    assert media_fetch.fetch_due(utcnow())["dead"] == 1
    fetch = db.session.scalars(select(MediaFetch)).one()
    assert "refused" in fetch.last_error and providers.sent("/wa-media/") == []


# --- Instagram and Messenger ------------------------------------------------------------------------


def _stub_cdn(providers):
    providers.cdn["ig-photo.jpg"] = jpeg(500, 500)

    def rewrite(payload):
        for entry in payload["entry"]:
            for event in entry["messaging"]:
                for att in event.get("message", {}).get("attachments", []):
                    att["payload"]["url"] = f"{providers.base}/cdn/ig-photo.jpg"
    return rewrite


def test_instagram_conversation_with_typed_answers_makes_an_appeal(client, providers):
    run(client, IG_FLOW, rewrite=_stub_cdn(providers))
    [appeal] = db.session.scalars(select(Appeal)).all()
    assert (appeal.channel, appeal.type, appeal.topic_code) == ("instagram", "complaint", "waste_collection")
    assert appeal.address == "мкр. Нурсат, дом 41, у контейнерной площадки" and appeal.location is None
    assert appeal.status == "unrouted"  # no point: the dispatcher routes it by hand
    citizen = db.session.get(Citizen, appeal.citizen_id)
    assert (citizen.channel, citizen.handle, citizen.language) == ("instagram", IGSID, "ru")
    location_prompt = next(r for r in rows("meta") if "Напишите адрес" in r.payload.get("text", ""))
    assert not location_prompt.payload.get("request_location")  # Instagram cannot share a location

    outbox.deliver_due(utcnow() + timedelta(seconds=1), limit=100)
    sent = providers.sent("/me/messages")
    assert len(sent) == len(rows("meta")) and {r.json["recipient"]["id"] for r in sent} == {IGSID}
    assert all(r.headers["Authorization"] == f"Bearer {PAGE_TOKEN}" for r in sent)
    assert all(r.json["messaging_type"] == "RESPONSE" for r in sent)  # Instagram has no ACCOUNT_UPDATE tag
    types = next(r for r in sent if r.json["message"]["text"] == "Выберите тип обращения:")
    assert types.json["message"]["quick_replies"][0] == {"content_type": "text", "title": "Консультация",
                                                         "payload": "type:consultation"}
    topics = next(r for r in sent if "Выберите тему" in r.json["message"]["text"])
    assert "quick_replies" not in topics.json["message"] and "\n14. Другое" in topics.json["message"]["text"]
    assert appeal.reg_no in sent[-1].json["message"]["text"]

    assert media_fetch.fetch_due(utcnow())["sent"] == 1
    assert count(Attachment, Attachment.appeal_id == appeal.id, Attachment.kind == "citizen") == 1


def test_the_same_instagram_message_five_times_makes_one_appeal(client, providers):
    rewrite = _stub_cdn(providers)
    run(client, IG_FLOW[:-1], rewrite)
    for _ in range(5):
        run(client, ["ig_confirm"])
    assert count(Appeal) == 1 and count(MediaFetch) == 1


def test_an_attachment_url_off_the_providers_cdn_is_refused(client, providers, app):
    def rewrite(payload):
        for event in payload["entry"][0]["messaging"]:
            for att in event.get("message", {}).get("attachments", []):
                att["payload"]["url"] = "https://169.254.169.254/latest/meta-data/"
    run(client, IG_FLOW, rewrite)
    assert media_fetch.fetch_due(utcnow())["dead"] == 1
    assert "refused" in db.session.scalars(select(MediaFetch)).one().last_error


def test_messenger_conversation_with_postbacks_makes_an_appeal_and_echoes_are_ignored(client, providers):
    run(client, ["fb_echo", "fb_delivery", "ig_echo", "ig_read"])
    assert count(Conversation) == 0 and count(InboundUpdate) == 0
    run(client, FB_FLOW)
    [appeal] = db.session.scalars(select(Appeal)).all()
    assert (appeal.channel, appeal.type, appeal.topic_code) == ("facebook", "proposal", "landscaping")
    citizen = db.session.get(Citizen, appeal.citizen_id)
    assert (citizen.handle, citizen.language) == (PSID, "en")
    reply = rows("meta")[-1]
    assert reply.recipient == PSID and reply.payload["platform"] == "facebook" and reply.payload["notification"]
    assert "Your appeal is registered as " + appeal.reg_no in reply.payload["text"]

    outbox.deliver_due(utcnow() + timedelta(seconds=1), limit=100)
    last = providers.sent("/me/messages")[-1].json
    assert last["recipient"] == {"id": PSID} and last["messaging_type"] == "MESSAGE_TAG"
    assert last["tag"] == "ACCOUNT_UPDATE"  # a status update may come after the 24-hour window
    assert providers.sent("/me/messages")[0].json["messaging_type"] == "RESPONSE"


def test_the_same_messenger_message_five_times_makes_one_appeal(client, providers):
    run(client, FB_FLOW[:-1])
    for _ in range(5):
        run(client, ["fb_confirm"])
    assert count(Appeal) == 1


def test_one_notification_may_batch_messages_of_several_people(client, providers):
    a, b = load("meta/fb_text.json"), load("meta/fb_text.json")
    b["entry"][0]["messaging"][0]["sender"]["id"] = "999"
    b["entry"][0]["messaging"][0]["message"]["mid"] = "m_other"
    a["entry"] += b["entry"]
    post(client, a)
    assert {r.recipient for r in rows("meta")} == {PSID, "999"}
    assert APP_SECRET not in json.dumps([r.payload for r in rows("meta")])

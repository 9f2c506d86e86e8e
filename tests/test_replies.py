"""Replies on the channel of origin: templates (safe placeholders, the methodologist's page and API, roles),
the moments that queue a message, the citizen's language, the "after" photo, delivery through the outbox."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from server import media
from server.extensions import db
from server.models import AppealEvent, Attachment, Citizen, OutboundMessage, ReplyTemplate
from server.models.types import utcnow
from server.schemas import AppealIn
from server.services import intake, outbox, replies
from server.services.errors import Unprocessable
from server.services.evidence import media_root
from server.services.lifecycle import SYSTEM, record_event
from tests.channel_fixtures import PUBLIC_URL, configured_providers, count, jpeg
from tests.channel_fixtures import outbox as rows
from tests.conftest import APPEAL
from tests.provider_stub import PHONE_ID, TELEGRAM_TOKEN

URL = "/api/v1/reply-templates"
CHAT = "582013477"


# --- rendering ------------------------------------------------------------------------------------



@pytest.fixture
def providers(app, db_session):
    """Every channel configured against a local provider stub."""
    with configured_providers(app) as stub:
        yield stub

def test_render_fills_the_known_placeholders_and_keeps_literal_braces():
    body = "№ {reg_no}: {status}. {{not a placeholder}} {link}"
    replies.check_body(body)
    assert replies.render(body, {"reg_no": "TRK-2026-000001", "status": "в работе", "link": "https://x/t/abc"}) \
        == "№ TRK-2026-000001: в работе. {not a placeholder} https://x/t/abc"


@pytest.mark.parametrize("body, code", [
    ("Hello {name}", "unknown_placeholder"),
    ("{reg_no.__class__.__mro__}", "unknown_placeholder"),
    ("{link[0]}", "unknown_placeholder"),
    ("{answer!r}", "unknown_placeholder"),
    ("{due:>200}", "unknown_placeholder"),
    ("{}", "unknown_placeholder"),
    ("{0}", "unknown_placeholder"),
    ("unclosed {reg_no", "template_syntax"),
    ("stray }", "template_syntax"),
    ("   ", "template_empty"),
    ("x" * 1001, "template_too_long"),
])
def test_bad_templates_are_refused(body, code):
    with pytest.raises(Unprocessable) as err:
        replies.check_body(body)
    assert err.value.code == code


# --- the methodologist's API and page -------------------------------------------------------------


def test_the_methodologist_lists_edits_and_resets_templates(client, as_role, db_session):
    me, headers = as_role("methodologist")
    listing = client.get(URL, headers=headers)
    assert listing.status_code == 200
    data = listing.json
    assert data["placeholders"] == ["reg_no", "status", "answer", "link", "due", "topic", "reason"]
    keys = {(t["moment"], t["appeal_type"], t["language"]) for t in data["templates"]}
    assert {(m, "*", lang) for m in replies.MOMENTS for lang in ("kk", "ru", "en")} <= keys
    kk = next(t for t in data["templates"]
              if (t["moment"], t["appeal_type"], t["language"]) == ("registered", "*", "kk"))
    assert kk["custom"] is False and "тіркелді" in kk["body"]

    body = {"moment": "registered", "appeal_type": "complaint", "language": "ru",
            "body": "Жалоба {reg_no} принята. Ссылка: {link}"}
    res = client.put(URL, json=body, headers=headers)
    assert res.status_code == 200, res.json
    assert res.json["custom"] is True and res.json["updated_by"] == me.username and res.json["body"] == body["body"]
    assert replies.template_body("registered", "complaint", "ru") == body["body"]
    assert replies.template_body("registered", "incident", "ru") == replies.DEFAULTS[("registered", "*", "ru")]
    assert client.put(URL, json={**body, "body": "Новый текст {reg_no}"}, headers=headers).status_code == 200
    assert count(ReplyTemplate) == 1  # saved in place

    assert client.delete(f"{URL}?moment=registered&appeal_type=complaint&language=ru", headers=headers).status_code \
        == 204
    assert count(ReplyTemplate) == 0
    assert client.delete(f"{URL}?moment=registered&appeal_type=complaint&language=ru", headers=headers).status_code \
        == 404


def test_an_unknown_placeholder_is_refused_on_save_with_422(client, as_role, db_session):
    _me, headers = as_role("methodologist")
    res = client.put(URL, json={"moment": "answered", "appeal_type": "*", "language": "en",
                                "body": "Dear {citizen_name}, {answer}"}, headers=headers)
    assert res.status_code == 422
    assert res.json["error"]["code"] == "unknown_placeholder"
    assert res.json["error"]["fields"][0]["field"] == "body"
    assert "{citizen_name}" in res.json["error"]["message"] and "{reg_no}" in res.json["error"]["message"]
    res = client.put(URL, json={"moment": "answered", "appeal_type": "*", "language": "en",
                                "body": "{answer.__init__.__globals__}"}, headers=headers)
    assert res.status_code == 422
    assert count(ReplyTemplate) == 0


def test_an_unknown_moment_type_or_language_is_a_400(client, as_role, db_session):
    _me, headers = as_role("methodologist")
    for bad in ({"moment": "closed"}, {"appeal_type": "spam"}, {"language": "de"}):
        body = {"moment": "registered", "appeal_type": "*", "language": "ru", "body": "{reg_no}", **bad}
        res = client.put(URL, json=body, headers=headers)
        assert res.status_code == 400 and res.json["error"]["fields"][0]["field"] == next(iter(bad))


@pytest.mark.parametrize("role", ["operator", "dispatcher", "inspector", "field_staff", "unit_head", "analyst",
                                  "pr_manager", "qc_analyst"])
def test_other_roles_may_not_read_or_edit_templates(client, as_role, role):
    _me, headers = as_role(role)
    assert client.get(URL, headers=headers).status_code == 403
    assert client.put(URL, json={"moment": "registered", "appeal_type": "*", "language": "ru", "body": "x"},
                      headers=headers).status_code == 403
    assert client.delete(f"{URL}?moment=registered&language=ru", headers=headers).status_code == 403
    assert client.get("/templates/", headers=headers).status_code == 403
    assert count(ReplyTemplate) == 0


def test_admins_may_edit_and_anonymous_callers_may_not(client, as_role, db_session):
    assert client.get(URL).status_code == 401
    assert client.get("/templates/").status_code == 302  # a page: to the login
    _admin, headers = as_role("admin")
    assert client.put(URL, json={"moment": "extended", "appeal_type": "*", "language": "kk",
                                "body": "{reg_no}: мерзім {due} дейін"}, headers=headers).status_code == 200


def test_the_editor_page_is_served_to_the_methodologist(client, as_role):
    _me, headers = as_role("methodologist")
    page = client.get("/templates/", headers=headers)
    assert page.status_code == 200 and b'src="/templates/templates.js"' in page.data
    assert client.get("/templates/templates.js").status_code == 200  # static, no data


# --- the moments ------------------------------------------------------------------------------------


def chat_appeal(channel: str = "telegram", handle: str = CHAT, language: str = "kk", **overrides):
    """An appeal that came in on a chat channel, with its citizen."""
    body = {**APPEAL, "channel": channel, "citizen": None, **overrides}
    result = intake.register_appeal(AppealIn(**body), actor=SYSTEM, now=utcnow())
    citizen = Citizen(channel=channel, handle=handle, language=language, created_at=utcnow())
    db.session.add(citizen)
    db.session.flush()
    result.appeal.citizen_id = citizen.id
    db.session.flush()
    return result.appeal, result.events


def event(appeal, kind: str, **data) -> AppealEvent:
    return record_event(appeal, kind, SYSTEM, utcnow(), from_status=appeal.status, to_status=appeal.status, data=data)


def test_a_phone_caller_gets_an_sms_in_their_language(client, as_role, providers):
    _op, headers = as_role("operator")
    res = client.post("/api/v1/appeals", json=APPEAL, headers=headers)  # citizen language kk, phone given
    assert res.status_code == 201
    [sms] = rows("sms")
    assert sms.recipient == "+7 701 555 1234" and sms.appeal_id == res.json["id"]
    assert sms.payload["text"].startswith(f"Өтінішіңіз {res.json['reg_no']} нөмірімен тіркелді")
    outbox.deliver_due(utcnow() + timedelta(seconds=1))
    [call] = providers.sent("/sms")
    assert call.json == {"to": "+77015551234", "text": sms.payload["text"], "sender": "Jauap109"}
    assert call.headers["Authorization"] == "Bearer sms-gateway-token"
    assert db.session.get(OutboundMessage, sms.id).state == "sent"


def test_web_and_unconfigured_channels_get_no_rows(client, as_role, providers, app):
    _op, headers = as_role("operator")
    assert client.post("/api/v1/appeals", json={**APPEAL, "channel": "web"}, headers=headers).status_code == 201
    assert count(OutboundMessage) == 0
    app.config["JAUAP_SMS_URL"] = None
    assert client.post("/api/v1/appeals", json={**APPEAL, "description": "Another pothole."},
                       headers=headers).status_code == 201
    assert count(OutboundMessage) == 0


def test_registered_reply_goes_to_the_chat_once(db_session, providers):
    appeal, events = chat_appeal()
    assert replies.queue_for_events(events, utcnow()) == 1
    assert replies.queue_for_events(events, utcnow()) == 0  # the same events again: nothing more
    [row] = rows("telegram")
    assert row.recipient == CHAT and f"{PUBLIC_URL}/t/{appeal.tracking_token}" in row.payload["text"]
    outbox.deliver_due(utcnow() + timedelta(seconds=1))
    [call] = providers.sent("/sendMessage")
    assert call.path == f"/bot{TELEGRAM_TOKEN}/sendMessage"
    assert call.json["chat_id"] == CHAT and call.json["text"] == row.payload["text"]


def test_assigned_extended_and_answered_messages(db_session, providers):
    appeal, _ = chat_appeal(language="ru")
    appeal.status = "assigned"
    replies.queue_for_events([event(appeal, "appeal.assigned")], utcnow())
    assert rows("telegram")[-1].payload["text"] == (f"Обращение {appeal.reg_no} передано исполнителю и взято в "
                                                    f"работу. Статус: назначен исполнитель. "
                                                    f"{PUBLIC_URL}/t/{appeal.tracking_token}")
    due = datetime(2026, 12, 30, 20, 0, tzinfo=UTC)  # 31.12 in Turkestan (UTC+5)
    replies.queue_for_events([event(appeal, "appeal.extended", due_at=due.isoformat(),
                                    reason="нужна экспертиза")], utcnow())
    assert "продлён до 31.12.2026. Причина: нужна экспертиза." in rows("telegram")[-1].payload["text"]
    appeal.answer_text = "Яма заделана 25 ноября."
    appeal.status = "answered"
    replies.queue_for_events([event(appeal, "appeal.answered")], utcnow())
    text = rows("telegram")[-1].payload["text"]
    assert text.startswith(f"Ответ на обращение {appeal.reg_no}:\nЯма заделана 25 ноября.")
    replies.queue_for_events([event(appeal, "appeal.accepted"), event(appeal, "appeal.reassigned")], utcnow())
    assert len(rows("telegram")) == 3  # only the five moments speak to the citizen


def _after_photo(appeal) -> Attachment:
    processed = media.process_upload(jpeg(1200, 900), media.sha256_hex(jpeg(1200, 900)))
    media.store(media_root(), processed)
    facts = processed.facts
    photo = Attachment(public_id="pub-after-1", appeal_id=appeal.id, kind="after", sha256=facts.sha256,
                       mime=facts.mime, size_bytes=facts.size_bytes, width=facts.width, height=facts.height,
                       created_at=utcnow())
    db.session.add(photo)
    db.session.flush()
    return photo


def test_resolved_sends_the_after_photo_derivative_with_the_text(db_session, providers):
    appeal, _ = chat_appeal(language="en")
    photo = _after_photo(appeal)
    appeal.status = "resolved"
    replies.queue_for_events([event(appeal, "appeal.resolved")], utcnow())
    [row] = rows("telegram")
    large = media.derived_path(media_root(), photo.sha256, "large")
    assert row.payload["photo_file"] == str(large)
    assert row.payload["photo_url"].startswith(f"{PUBLIC_URL}/") and photo.public_id in row.payload["photo_url"]
    assert row.payload["text"].startswith(f"The work on appeal {appeal.reg_no} is done")
    outbox.deliver_due(utcnow() + timedelta(seconds=1))
    [call] = providers.sent("/sendPhoto")
    assert call.headers["Content-Type"].startswith("multipart/form-data")
    assert f'name="chat_id"\r\n\r\n{CHAT}'.encode() in call.body
    assert row.payload["text"].encode() in call.body
    assert large.read_bytes() in call.body  # the re-encoded derivative (no EXIF), not the original
    assert media.original_path(media_root(), photo.sha256).read_bytes() not in call.body


def test_resolved_on_whatsapp_is_one_image_message_and_on_messenger_two(db_session, providers):
    wa, _ = chat_appeal(channel="whatsapp", handle="77015551234", language="kk")
    fb, _ = chat_appeal(channel="facebook", handle="6789012345678901", language="ru",
                        description="Second appeal, elsewhere.", lat=43.30, lon=68.26)
    photo = _after_photo(wa)
    db.session.add(Attachment(public_id="pub-after-2", appeal_id=fb.id, kind="after", sha256=photo.sha256,
                              mime="image/jpeg", size_bytes=photo.size_bytes, width=1200, height=900,
                              created_at=utcnow()))
    wa.status = fb.status = "resolved"
    db.session.flush()
    replies.queue_for_events([event(wa, "appeal.resolved"), event(fb, "appeal.resolved")], utcnow())
    [wa_row] = rows("whatsapp")
    assert "photo_url" in wa_row.payload and wa_row.payload["text"]
    text_row, photo_row = rows("meta")
    assert "text" in text_row.payload and "photo_url" in photo_row.payload and "text" not in photo_row.payload
    outbox.deliver_due(utcnow() + timedelta(seconds=1))
    [wa_call] = providers.sent("/messages")[:1]
    assert wa_call.json["type"] == "image" and wa_call.json["image"]["caption"] == wa_row.payload["text"]
    assert wa_call.json["image"]["link"] == wa_row.payload["photo_url"]
    meta_calls = providers.sent("/me/messages")
    assert meta_calls[1].json["message"]["attachment"]["type"] == "image"


def test_the_methodologists_text_is_used_type_first(db_session, providers):
    db.session.add_all([
        ReplyTemplate(moment="registered", appeal_type="*", language="kk", body="Жалпы: {reg_no}", updated_at=utcnow()),
        ReplyTemplate(moment="registered", appeal_type="complaint", language="kk", body="Шағым: {reg_no} {topic}",
                      updated_at=utcnow()),
    ])
    db.session.flush()
    complaint, events = chat_appeal()
    replies.queue_for_events(events, utcnow())
    assert rows("telegram")[-1].payload["text"] == f"Шағым: {complaint.reg_no} Жолдар"
    proposal, events = chat_appeal(handle="111", type="proposal", description="Plant trees.")
    replies.queue_for_events(events, utcnow())
    assert rows("telegram")[-1].payload["text"] == f"Жалпы: {proposal.reg_no}"
    _gratitude, events = chat_appeal(handle="222", type="gratitude", description="Thank you!")
    replies.queue_for_events(events, utcnow())
    assert rows("telegram")[-1].payload["text"].startswith("Алғысыңызға рахмет!")  # the built-in type text


def test_an_sms_gateway_failure_is_retried(client, as_role, providers):
    _op, headers = as_role("operator")
    client.post("/api/v1/appeals", json=APPEAL, headers=headers)
    providers.script("/sms", 503, {"error": "maintenance"})
    now = utcnow() + timedelta(seconds=1)
    assert outbox.deliver_due(now)["retry"] == 1
    [row] = rows("sms")
    assert row.state == "pending" and row.next_attempt_at > now and "503" in row.last_error
    assert outbox.deliver_due(row.next_attempt_at + timedelta(seconds=1))["sent"] == 1


# --- WhatsApp's 24-hour window ----------------------------------------------------------------------

# What the Cloud API answers to free text more than 24 hours after the citizen last wrote (recorded).
REENGAGEMENT = {"error": {"message": "(#131047) Re-engagement message", "type": "OAuthException", "code": 131047,
                          "error_data": {"messaging_product": "whatsapp",
                                         "details": "Message failed to send because more than 24 hours have "
                                                    "passed since the customer last replied to this number."},
                          "fbtrace_id": "AbCdEf123"}}


def _answered_on_whatsapp(language: str = "ru", handle: str = "77015551234"):
    appeal, _ = chat_appeal(channel="whatsapp", handle=handle, language=language)
    appeal.answer_text = "Яма заделана.\nСпасибо за обращение."
    appeal.status = "answered"
    replies.queue_for_events([event(appeal, "appeal.answered")], utcnow())
    return appeal, rows("whatsapp")[-1]


def test_a_late_whatsapp_answer_goes_as_the_approved_template(db_session, providers, app):
    """Before the template, the answer died with code 131047: the usual case, as answers come days later."""
    app.config["JAUAP_WHATSAPP_TEMPLATE"] = "jauap_appeal_update"
    appeal, row = _answered_on_whatsapp("kk")
    link = f"{PUBLIC_URL}/t/{appeal.tracking_token}"
    assert row.payload["template"] == {"name": "jauap_appeal_update", "language": "kk",
                                       "params": [appeal.reg_no, replies.STATUS_NAMES["kk"]["answered"], link]}
    providers.script("/messages", 400, REENGAGEMENT)
    outbox.deliver_due(utcnow() + timedelta(seconds=1))
    free, template = providers.sent(f"{PHONE_ID}/messages")
    assert free.json["type"] == "text" and "Яма заделана." in free.json["text"]["body"]
    assert template.json["type"] == "template" and template.json["to"] == "77015551234"
    assert template.json["template"]["name"] == "jauap_appeal_update"
    assert template.json["template"]["language"] == {"code": "kk"}
    params = [p["text"] for p in template.json["template"]["components"][0]["parameters"]]
    assert params == [appeal.reg_no, replies.STATUS_NAMES["kk"]["answered"], link]
    assert db.session.get(OutboundMessage, row.id).state == "sent"


def test_within_the_window_the_free_text_goes_and_no_template(db_session, providers, app):
    app.config["JAUAP_WHATSAPP_TEMPLATE"] = "jauap_appeal_update"
    _appeal, row = _answered_on_whatsapp()
    outbox.deliver_due(utcnow() + timedelta(seconds=1))
    [call] = providers.sent(f"{PHONE_ID}/messages")
    assert call.json["type"] == "text" and db.session.get(OutboundMessage, row.id).state == "sent"


def test_without_a_template_a_late_answer_ends_dead_and_other_refusals_never_use_it(db_session, providers, app):
    app.config["JAUAP_WHATSAPP_TEMPLATE"] = None
    _appeal, row = _answered_on_whatsapp()
    assert "template" not in row.payload
    providers.script("/messages", 400, REENGAGEMENT)
    outbox.deliver_due(utcnow() + timedelta(seconds=1))
    assert len(providers.sent(f"{PHONE_ID}/messages")) == 1
    stored = db.session.get(OutboundMessage, row.id)
    assert stored.state == "dead" and "131047" in stored.last_error
    # Another refusal (a bad number) does not switch to the template either.
    app.config["JAUAP_WHATSAPP_TEMPLATE"] = "jauap_appeal_update"
    _second, other = _answered_on_whatsapp(handle="77015550000")
    providers.script("/messages", 400, {"error": {"message": "(#131030) Recipient not in allowed list",
                                                  "code": 131030}})
    outbox.deliver_due(utcnow() + timedelta(seconds=1))
    assert len(providers.sent(f"{PHONE_ID}/messages")) == 2
    assert db.session.get(OutboundMessage, other.id).state == "dead"


def test_template_parameters_have_no_newlines_or_space_runs():
    from notifications.whatsapp import template_message, template_param

    assert template_param("Яма\nзаделана\t  ок") == "Яма заделана ок"
    assert template_param("") == "-" and len(template_param("x" * 2000)) <= 300
    msg = template_message("77015551234", {"name": "t", "language": "ru", "params": []})
    assert msg["template"] == {"name": "t", "language": {"code": "ru"}}

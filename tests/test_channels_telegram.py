"""The Telegram bot: the secret-token check, the guided conversation from recorded updates, dedupe by
update_id, replies only through the outbox (delivered to a local Bot API), photos fetched by the worker."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from server import media
from server.extensions import db
from server.models import (
    Appeal,
    AppealEvent,
    Attachment,
    Citizen,
    Conversation,
    InboundUpdate,
    MediaFetch,
    OutboundMessage,
)
from server.models.types import utcnow
from server.services import media_fetch, outbox
from server.services.evidence import media_root
from tests.channel_fixtures import PUBLIC_URL, TG_SECRET, TG_URL, configured_providers, count, jpeg, load
from tests.channel_fixtures import outbox as rows
from tests.provider_stub import TELEGRAM_TOKEN

CHAT = "582013477"
FLOW = ["01_start", "02_language", "03_type", "04_topic", "05_location", "06_photo", "07_photo_next",
        "08_description", "09_confirm"]
PHOTO_ID = "AgACAgIAAxkBAAIBFmdDk3Qx0u1Wc2L4kq8y9nPzAAHvAALbDjIbcm0ZSn7pQx7m-1BlAQADAgADeAADNgQ"



@pytest.fixture
def providers(app, db_session):
    """Every channel configured against a local provider stub."""
    with configured_providers(app) as stub:
        yield stub

def post(client, update, secret=TG_SECRET):
    headers = {} if secret is None else {"X-Telegram-Bot-Api-Secret-Token": secret}
    return client.post(TG_URL, json=update, headers=headers)


def run(client, *names):
    for name in names:
        res = post(client, load(f"telegram/{name}.json"))
        assert res.status_code == 200, res.get_data(as_text=True)
        assert res.json == {"ok": True}


def messages() -> list[dict]:
    """The payloads of queued chat messages (not the answerCallbackQuery calls)."""
    return [r.payload for r in rows("telegram") if "text" in r.payload]


def texts() -> list[str]:
    return [p["text"] for p in messages()]


def conversation() -> Conversation:
    return db.session.scalar(select(Conversation).where(Conversation.channel == "telegram",
                                                        Conversation.handle == CHAT))


# --- authentication -----------------------------------------------------------------------------


@pytest.mark.parametrize("secret", [None, "", "wrong-secret", TG_SECRET + "x", TG_SECRET[:-1]])
def test_a_missing_or_wrong_secret_gets_403_and_writes_nothing(client, providers, secret):
    res = post(client, load("telegram/01_start.json"), secret=secret)
    assert res.status_code == 403 and res.json["error"]["code"] == "webhook_forbidden"
    assert count(InboundUpdate) == count(Conversation) == count(OutboundMessage) == count(Appeal) == 0


def test_without_a_configured_secret_every_call_is_refused(client, providers, app):
    app.config["JAUAP_TELEGRAM_SECRET"] = None
    assert post(client, load("telegram/01_start.json"), secret="").status_code == 403
    assert post(client, load("telegram/01_start.json"), secret="None").status_code == 403
    assert count(InboundUpdate) == 0


# --- the conversation ---------------------------------------------------------------------------


def test_the_conversation_runs_start_to_finish_from_recorded_updates(client, providers):
    providers.add_telegram_file(PHOTO_ID, jpeg())
    run(client, "01_start")
    [first] = rows("telegram")
    assert first.recipient == CHAT and first.state == "pending"
    assert "Выберите язык" in first.payload["text"]
    assert [b["id"] for b in first.payload["buttons"]] == ["lang:kk", "lang:ru", "lang:en"]
    assert count(Appeal) == 0  # nothing was sent from the request: only an outbox row
    assert providers.requests == []

    run(client, "02_language")
    assert conversation().language == "ru" and conversation().step == "type"
    assert any("Выберите тип обращения" in t for t in texts())
    run(client, "03_type")
    assert conversation().step == "topic" and conversation().data["type"] == "complaint"
    topic_prompt = messages()[-1]
    assert topic_prompt["text"] == "Выберите тему:"
    assert {"id": "topic:roads", "title": "Дороги"} in topic_prompt["buttons"]
    run(client, "04_topic")
    location_prompt = messages()[-1]
    assert location_prompt["request_location"] is True and "геолокацию" in location_prompt["location_label"]
    run(client, "05_location")
    assert conversation().data["lat"] == pytest.approx(43.2975) and conversation().step == "photo"
    run(client, "06_photo")
    [fetch] = db.session.scalars(select(MediaFetch)).all()
    assert fetch.media_ref == PHOTO_ID  # the largest size
    assert fetch.appeal_id is None and fetch.state == "pending"
    assert "Фото получено (1/3)" in texts()[-1]
    run(client, "07_photo_next", "08_description")
    summary = messages()[-1]
    assert "Жалоба" in summary["text"] and "Дороги" in summary["text"] and "Глубокая яма" in summary["text"]
    assert [b["id"] for b in summary["buttons"]] == ["confirm:yes", "confirm:restart", "confirm:cancel"]
    run(client, "09_confirm")

    [appeal] = db.session.scalars(select(Appeal)).all()
    assert (appeal.channel, appeal.type, appeal.topic_code) == ("telegram", "complaint", "roads")
    assert appeal.description.startswith("Глубокая яма") and appeal.accuracy_m == 12.5
    assert appeal.status in ("routed", "assigned")  # located and routed by intake
    citizen = db.session.get(Citizen, appeal.citizen_id)
    assert (citizen.channel, citizen.handle, citizen.language, citizen.name) == ("telegram", CHAT, "ru",
                                                                                 "Айгерим Сейтқали")
    registered = db.session.scalar(select(AppealEvent).where(AppealEvent.appeal_id == appeal.id,
                                                             AppealEvent.kind == "appeal.registered"))
    assert registered.actor_kind == "citizen"
    reply = db.session.scalar(select(OutboundMessage).where(OutboundMessage.dedupe_key == f"reply:ev{registered.id}"))
    link = f"{PUBLIC_URL}/t/{appeal.tracking_token}"
    assert reply.channel == "telegram" and reply.recipient == CHAT
    assert appeal.reg_no in reply.payload["text"] and link in reply.payload["text"]
    assert "зарегистрировано" in reply.payload["text"]  # the citizen's language
    assert db.session.get(MediaFetch, fetch.id).appeal_id == appeal.id
    assert conversation().step == "idle"
    assert db.session.scalar(select(InboundUpdate.appeal_id).where(InboundUpdate.provider_id == "431870109")) \
        == appeal.id

    # The worker delivers every queued message, in order, to the Bot API with the chat id.
    result = outbox.deliver_due(utcnow() + timedelta(seconds=1), limit=100)
    assert result["dead"] == 0 and result["sent"] == len(rows("telegram"))
    sent = providers.sent("/sendMessage")
    assert all(r.path == f"/bot{TELEGRAM_TOKEN}/sendMessage" for r in sent)
    assert {r.json["chat_id"] for r in sent} == {CHAT}
    assert sent[0].json["reply_markup"]["inline_keyboard"][0][1] == {"text": "Русский", "callback_data": "lang:ru"}
    assert any(r.json.get("reply_markup", {}).get("keyboard") for r in sent)  # the location button
    assert sent[-1].json["text"] == reply.payload["text"]
    assert len(providers.sent("/answerCallbackQuery")) == 5  # one per button press
    assert providers.sent("/answerCallbackQuery")[0].json == {"callback_query_id": "2499629385725011232"}

    # ... and fetches the photo through getFile, stores it with the pipeline and attaches it.
    assert media_fetch.fetch_due(utcnow())["sent"] == 1
    [photo] = db.session.scalars(select(Attachment).where(Attachment.appeal_id == appeal.id)).all()
    assert photo.kind == "citizen" and photo.uploaded_by_id is None and (photo.width, photo.height) == (640, 480)
    assert media.original_path(media_root(), photo.sha256).read_bytes() == jpeg()
    assert Path(media.derived_path(media_root(), photo.sha256, "thumb")).exists()
    assert providers.sent("/getFile")[0].query["file_id"] == [PHOTO_ID]
    assert db.session.get(MediaFetch, fetch.id).state == "sent"
    event = db.session.scalar(select(AppealEvent).where(AppealEvent.appeal_id == appeal.id,
                                                        AppealEvent.kind == "appeal.photo_added"))
    assert event.actor_kind == "citizen" and event.data["photo"] == photo.public_id


def test_the_same_update_five_times_makes_one_appeal(client, providers):
    run(client, *FLOW[:-1])
    before = len(rows("telegram"))
    for _ in range(5):
        run(client, "09_confirm")
    assert count(Appeal) == 1
    assert count(InboundUpdate, InboundUpdate.provider_id == "431870109") == 1
    # the repeats changed nothing: no second reply, no second answerCallbackQuery
    added = rows("telegram")[before:]
    assert len([r for r in added if r.dedupe_key.startswith("reply:")]) == 1
    assert len([r for r in added if r.payload.get("method") == "answerCallbackQuery"]) == 1


def test_a_repeated_start_queues_one_prompt(client, providers):
    for _ in range(5):
        run(client, "01_start")
    assert len(rows("telegram")) == 1


def test_free_text_where_a_button_was_expected_gets_the_question_again(client, providers):
    run(client, "01_start", "02_language")
    run(client, "text_instead_of_button")
    assert conversation().step == "type"
    reask, prompt = messages()[-2:]
    assert "выберите один из вариантов" in reask["text"]
    assert prompt["text"] == "Выберите тип обращения:" and len(prompt["buttons"]) == 5


def test_typed_numbers_and_titles_count_as_choices(client, providers):
    run(client, "01_start", "02_language")
    update = load("telegram/text_instead_of_button.json")
    update["message"]["text"] = "4"
    post(client, update)
    assert conversation().data["type"] == "complaint"
    update["update_id"] += 1
    update["message"]["text"] = "дороги"
    post(client, update)
    assert conversation().data["topic"] == "roads" and conversation().step == "location"
    update["update_id"] += 1
    update["message"]["text"] = "ул. Тауке хана, 12"  # a typed address instead of a location
    post(client, update)
    assert conversation().data["address"] == "ул. Тауке хана, 12" and conversation().step == "photo"
    assert messages()[-2] == {"text": "Место отмечено ✓", "remove_keyboard": True}


def test_cancel_drops_the_draft_and_its_photos_and_start_restarts(client, providers):
    run(client, *FLOW[:6])
    assert count(MediaFetch) == 1
    update = load("telegram/text_instead_of_button.json")
    update["message"]["text"] = "/cancel"
    post(client, update)
    assert conversation().step == "idle" and count(MediaFetch) == 0
    assert "Обращение отменено" in texts()[-1]
    update["update_id"] += 1
    update["message"]["text"] = "привет"
    post(client, update)  # any message starts a new appeal, in the language already chosen
    assert conversation().step == "type"
    update["update_id"] += 1
    update["message"]["text"] = "/start"
    post(client, update)  # /start asks the language again
    assert conversation().step == "language" and conversation().language is None
    assert count(Appeal) == 0


def test_edits_and_group_messages_are_ignored(client, providers):
    run(client, "edited_message", "group_message")
    assert count(Conversation) == 0 and count(OutboundMessage) == 0


# --- the worker's side --------------------------------------------------------------------------


def _register_with_photo(client, providers, data: bytes) -> Appeal:
    providers.add_telegram_file(PHOTO_ID, data)
    run(client, *FLOW)
    return db.session.scalars(select(Appeal)).one()


def test_a_hostile_file_is_refused_without_stopping_the_loop(client, providers):
    appeal = _register_with_photo(client, providers, b"<html><script>alert(1)</script></html>")
    [fetch] = db.session.scalars(select(MediaFetch)).all()
    result = media_fetch.fetch_due(utcnow())
    assert result == {"claimed": 1, "sent": 0, "retry": 0, "dead": 1}
    db.session.refresh(fetch)
    assert fetch.state == "dead" and "unsupported_image_type" in fetch.last_error
    assert count(Attachment, Attachment.appeal_id == appeal.id) == 0


def test_a_jpeg_with_a_trailer_is_refused(client, providers):
    _register_with_photo(client, providers, jpeg() + b"<?php system($_GET['c']); ?>")
    assert media_fetch.fetch_due(utcnow())["dead"] == 1
    assert count(Attachment) == 0


def test_a_provider_failure_is_retried_with_backoff_then_fetched(client, providers):
    appeal = _register_with_photo(client, providers, jpeg())
    providers.script("/getFile", 502, {"ok": False, "error_code": 502, "description": "Bad Gateway"})
    now = utcnow()
    assert media_fetch.fetch_due(now) == {"claimed": 1, "sent": 0, "retry": 1, "dead": 0}
    fetch = db.session.scalars(select(MediaFetch)).one()
    assert fetch.state == "pending" and fetch.next_attempt_at > now and fetch.attempts == 1
    assert media_fetch.fetch_due(now)["claimed"] == 0  # not before the backoff
    assert media_fetch.fetch_due(fetch.next_attempt_at + timedelta(seconds=1))["sent"] == 1
    assert count(Attachment, Attachment.appeal_id == appeal.id) == 1


def test_a_photo_over_the_size_limit_is_refused_before_download(client, providers):
    _register_with_photo(client, providers, jpeg())
    providers.script("/getFile", 200, {"ok": True, "result": {"file_id": PHOTO_ID, "file_size": media.MAX_BYTES + 1,
                                                              "file_path": "photos/file_0.jpg"}})
    assert media_fetch.fetch_due(utcnow())["dead"] == 1
    assert providers.sent("/photos/file_0.jpg") == []


def test_a_blocked_bot_ends_the_message_and_rate_limits_are_honoured(client, providers):
    run(client, "01_start", "02_language")
    providers.script("/sendMessage", 429, {"ok": False, "error_code": 429,
                                           "description": "Too Many Requests: retry after 33",
                                           "parameters": {"retry_after": 33}})
    providers.script("/sendMessage", 403, {"ok": False, "error_code": 403,
                                           "description": "Forbidden: bot was blocked by the user"})
    now = utcnow() + timedelta(seconds=1)
    outbox.deliver_due(now, limit=100)
    states = {r.id: (r.state, r.next_attempt_at) for r in rows("telegram") if r.payload.get("text")}
    retried = [s for s in states.values() if s[0] == "pending"]
    assert len(retried) == 1 and retried[0][1] >= now + timedelta(seconds=33)
    assert [s for s in states.values() if s[0] == "dead"]
    dead = next(r for r in rows("telegram") if r.state == "dead")
    assert "blocked" in dead.last_error and TELEGRAM_TOKEN not in dead.last_error

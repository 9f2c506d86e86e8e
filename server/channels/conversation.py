"""The guided dialogue every chat channel shares (Telegram, WhatsApp, Instagram, Facebook Messenger).

One :class:`~server.models.Conversation` row per (channel, chat) keeps where the citizen is and what
they gave, so the dialogue survives restarts and runs the same on every web process:

    language -> type -> topic -> location (a location message, or a typed address)
      -> photo (optional, up to 3) -> description -> confirmation -> registered (idle)

* Each step offers buttons; a button press, the option's number typed, or its exact title typed all
  count. Anything else where a choice was expected gets the question again.
* ``/start`` starts over from the language; ``/cancel`` (or "cancel", "отмена", "бас тарту") drops
  the draft and its photos. Any message after a registration or a cancellation starts a new appeal.
* Photos are not downloaded here: each becomes a MediaFetch row, handed to the appeal on
  confirmation and fetched by the worker (``server.services.media_fetch``).
* Confirmation calls ``services.intake.register_appeal`` (channel = the chat channel, actor = the
  citizen, an idempotency key per draft: a double tap on "Send" registers once), records the
  citizen (channel, handle = chat id, language), and returns the events: the registration
  message with the number and the tracking link is the ``registered`` reply template
  (``services.replies``), queued when the events are committed.

:func:`receive` is the entry point: deduplicate by the provider's id (InboundUpdate), lock the
conversation row (PostgreSQL ``FOR UPDATE``; SQLite transactions are serialised already), advance
it, and queue the answers as outbox rows. Nothing is sent from the request.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field
from datetime import datetime

from pydantic import ValidationError
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from server.extensions import db
from server.models import AppealEvent, Citizen, Conversation, InboundUpdate, MediaFetch, Topic
from server.models.catalog import APPEAL_TYPES, LANGUAGES
from server.schemas import AppealIn
from server.services import intake, replies
from server.services.errors import ServiceError
from server.services.lifecycle import CITIZEN

MAX_PHOTOS = 3
ADDRESS_MIN, ADDRESS_MAX = 5, 500
DESCRIPTION_MAX = 4000
LOCATION_SHARING = frozenset({"telegram", "whatsapp"})  # Instagram and Messenger cannot send a location
START_WORDS = frozenset({"/start", "start", "/new"})
CANCEL_WORDS = frozenset({"/cancel", "cancel", "отмена", "отменить", "бас тарту", "болдырмау"})
LANGUAGE_NAMES = {"kk": "Қазақша", "ru": "Русский", "en": "English"}
CHOICE_COLUMNS = {"type": 2, "topic": 1}  # button columns of the steps that ask "ask_<step>" with options

TYPE_NAMES = {
    "kk": {"consultation": "Кеңес", "incident": "Оқиға", "proposal": "Ұсыныс", "complaint": "Шағым",
           "gratitude": "Алғыс"},
    "ru": {"consultation": "Консультация", "incident": "Происшествие", "proposal": "Предложение",
           "complaint": "Жалоба", "gratitude": "Благодарность"},
    "en": {"consultation": "Consultation", "incident": "Incident", "proposal": "Proposal", "complaint": "Complaint",
           "gratitude": "Gratitude"},
}

TEXTS = {
    "welcome": {
        "kk": "Сәлеметсіз бе! Бұл — Түркістан қаласының 109 бірыңғай байланыс орталығы. Өтінішіңізді бірнеше "
              "қадамда тіркейміз.",
        "ru": "Здравствуйте! Это единый контакт-центр 109 города Туркестан. Зарегистрируем ваше обращение за "
              "несколько шагов.",
        "en": "Hello! This is the 109 contact centre of Turkestan city. Let us register your appeal in a few steps.",
    },
    "new_appeal": {"kk": "Жаңа өтініш.", "ru": "Новое обращение.", "en": "A new appeal."},
    "ask_type": {"kk": "Өтініш түрін таңдаңыз:", "ru": "Выберите тип обращения:", "en": "Choose the type of appeal:"},
    "ask_topic": {"kk": "Тақырыпты таңдаңыз:", "ru": "Выберите тему:", "en": "Choose the topic:"},
    "ask_location_share": {
        "kk": "Мәселе қай жерде? Төмендегі батырмамен геолокация жіберіңіз немесе мекенжайды жазыңыз.",
        "ru": "Где находится проблема? Отправьте геолокацию кнопкой ниже или напишите адрес.",
        "en": "Where is the problem? Send your location with the button below, or type the address.",
    },
    "ask_location_text": {
        "kk": "Мәселе қай жерде? Мекенжайды жазыңыз (көше, үй, бағдар).",
        "ru": "Где находится проблема? Напишите адрес (улица, дом, ориентир).",
        "en": "Where is the problem? Type the address (street, house, landmark).",
    },
    "location_button": {"kk": "📍 Геолокацияны жіберу", "ru": "📍 Отправить геолокацию", "en": "📍 Send my location"},
    "location_noted": {"kk": "Орны белгіленді ✓", "ru": "Место отмечено ✓", "en": "Location noted ✓"},
    "address_short": {
        "kk": "Мекенжай тым қысқа, толығырақ жазыңыз.",
        "ru": "Адрес слишком короткий, напишите подробнее.",
        "en": "The address is too short; please add more detail.",
    },
    "address_long": {
        "kk": "Мекенжай тым ұзын (500 таңбаға дейін).",
        "ru": "Адрес слишком длинный (до 500 символов).",
        "en": "The address is too long (500 characters at most).",
    },
    "ask_photo": {
        "kk": "Суретін жіберіңіз (міндетті емес, 3-ке дейін) немесе «Өткізіп жіберу» батырмасын басыңыз.",
        "ru": "Пришлите фото (необязательно, до 3) или нажмите «Пропустить».",
        "en": "Send a photo (optional, up to 3) or press “Skip”.",
    },
    "photo_received": {
        "kk": "Сурет алынды ({count}/3). Тағы жіберіңіз немесе «Әрі қарай» басыңыз.",
        "ru": "Фото получено ({count}/3). Пришлите ещё или нажмите «Далее».",
        "en": "Photo received ({count}/3). Send another or press “Next”.",
    },
    "photo_limit": {
        "kk": "3 суреттен артық жіберуге болмайды. «Әрі қарай» басыңыз.",
        "ru": "Можно прислать не больше 3 фото. Нажмите «Далее».",
        "en": "At most 3 photos. Press “Next”.",
    },
    "skip": {"kk": "Өткізіп жіберу", "ru": "Пропустить", "en": "Skip"},
    "next": {"kk": "Әрі қарай", "ru": "Далее", "en": "Next"},
    "ask_description": {
        "kk": "Мәселені қысқаша сипаттап жазыңыз.",
        "ru": "Кратко опишите проблему.",
        "en": "Describe the problem briefly.",
    },
    "description_long": {
        "kk": "Сипаттама тым ұзын (4000 таңбаға дейін).",
        "ru": "Описание слишком длинное (до 4000 символов).",
        "en": "The description is too long (4000 characters at most).",
    },
    "summary": {
        "kk": "Тексеріңіз:\nТүрі: {type}\nТақырыбы: {topic}\nОрны: {place}\nСурет: {photos}\nСипаттама: "
              "{description}\n\nЖібереміз бе?",
        "ru": "Проверьте:\nТип: {type}\nТема: {topic}\nМесто: {place}\nФото: {photos}\nОписание: {description}"
              "\n\nОтправляем?",
        "en": "Please check:\nType: {type}\nTopic: {topic}\nPlace: {place}\nPhotos: {photos}\nDescription: "
              "{description}\n\nSend it?",
    },
    "point": {"kk": "геолокация ({lat}, {lon})", "ru": "геолокация ({lat}, {lon})", "en": "location ({lat}, {lon})"},
    "confirm_yes": {"kk": "✅ Жіберу", "ru": "✅ Отправить", "en": "✅ Send"},
    "confirm_restart": {"kk": "🔄 Қайта бастау", "ru": "🔄 Заново", "en": "🔄 Start over"},
    "confirm_cancel": {"kk": "✖ Бас тарту", "ru": "✖ Отменить", "en": "✖ Cancel"},
    "reask_choice": {
        "kk": "Төмендегі нұсқалардың бірін таңдаңыз (немесе нөмірін жазыңыз).",
        "ru": "Пожалуйста, выберите один из вариантов ниже (или напишите его номер).",
        "en": "Please choose one of the options below (or type its number).",
    },
    "reask_photo": {
        "kk": "Сурет жіберіңіз немесе батырманы басыңыз.",
        "ru": "Пришлите фото или нажмите кнопку.",
        "en": "Send a photo or press the button.",
    },
    "reask_text": {"kk": "Мәтінмен жазыңыз.", "ru": "Пожалуйста, напишите текстом.", "en": "Please type it as text."},
    "cancelled": {
        "kk": "Өтініш тоқтатылды. Жаңасын бастау үшін кез келген хабарлама жазыңыз.",
        "ru": "Обращение отменено. Чтобы начать заново, напишите любое сообщение.",
        "en": "The appeal is cancelled. Write any message to start a new one.",
    },
    "already": {
        "kk": "Өтінішіңіз {reg_no} нөмірімен тіркелген.",
        "ru": "Ваше обращение уже зарегистрировано под номером {reg_no}.",
        "en": "Your appeal is already registered as {reg_no}.",
    },
    "failed": {
        "kk": "Өтінішті тіркеу мүмкін болмады. Тақырыпты қайта таңдаңыз.",
        "ru": "Не удалось зарегистрировать обращение. Выберите тему ещё раз.",
        "en": "The appeal could not be registered. Please choose the topic again.",
    },
    "menu": {"kk": "Таңдау", "ru": "Выбрать", "en": "Choose"},
}


def say(key: str, language: str | None, **params) -> str:
    """The text ``key`` in ``language`` (Russian when unknown) with ``params`` filled in."""
    text = TEXTS[key].get(language or "ru") or TEXTS[key]["ru"]
    return text.format(**params) if params else text


# --- what comes in, what goes out ------------------------------------------------------------------


@dataclass
class Inbound:
    """One citizen message, whatever the channel: text, a button press, a location or a photo."""

    kind: str  # text | choice | location | photo | other
    text: str | None = None
    choice: str | None = None  # the pressed button's id
    lat: float | None = None
    lon: float | None = None
    accuracy_m: float | None = None
    media_ref: str | None = None  # the provider's file/media id or attachment URL
    caption: str | None = None
    name: str | None = None  # the profile name, when the provider gives one
    phone: str | None = None  # WhatsApp: the sender's number


@dataclass
class Reply:
    """One message back, channel-neutral: the channel classes draw the buttons as the provider can."""

    text: str
    buttons: list[dict] = field(default_factory=list)
    columns: int = 1
    request_location: bool = False
    location_label: str | None = None
    remove_keyboard: bool = False
    menu_label: str | None = None

    def payload(self, platform: str | None = None) -> dict:
        """The outbox payload (only what is set)."""
        out: dict = {"text": self.text}
        if self.buttons:
            out.update(buttons=self.buttons, columns=self.columns, menu_label=self.menu_label)
        if self.request_location:
            out.update(request_location=True, location_label=self.location_label)
        if self.remove_keyboard:
            out["remove_keyboard"] = True
        if platform:
            out["platform"] = platform
        return out


@dataclass
class Outcome:
    """What one message did: the replies, the appeal events (to commit and publish), the appeal."""

    replies: list[Reply] = field(default_factory=list)
    events: list[AppealEvent] = field(default_factory=list)
    appeal_id: int | None = None


# --- the entry point ----------------------------------------------------------------------------


def stored_id(provider_id: str) -> str:
    """The provider's id as stored: as is up to 128 characters, else a prefix and a digest of the whole
    (Instagram message ids run past 128 characters and differ only at the end)."""
    if len(provider_id) <= 128:
        return provider_id
    return provider_id[:60] + "#" + hashlib.sha256(provider_id.encode()).hexdigest()


def record_update(channel: str, provider_id: str, sender: str | None, now: datetime) -> InboundUpdate | None:
    """Record a provider message id once; None when it was seen before (a redelivery)."""
    provider_id = stored_id(provider_id)
    seen = db.session.scalar(select(InboundUpdate.id).where(InboundUpdate.channel == channel,
                                                            InboundUpdate.provider_id == provider_id))
    if seen is not None:
        return None
    row = InboundUpdate(channel=channel, provider_id=provider_id, sender=(sender or "")[:128] or None,
                        received_at=now)
    try:
        with db.session.begin_nested():
            db.session.add(row)
            db.session.flush()
    except IntegrityError:  # the same update in flight on another connection, which committed first
        return None
    return row


def receive(channel: str, handle: str, provider_id: str, message: Inbound, now: datetime) -> Outcome | None:
    """Handle one inbound message once (None for a redelivery); its replies are queued as outbox rows.

    Flushes; the caller commits (with ``outcome.events``, so the reply templates are queued too).
    """
    update_row = record_update(channel, provider_id, handle, now)
    if update_row is None:
        return None
    conversation = load_conversation(channel, handle, now)
    outcome = advance(conversation, message, now)
    conversation.updated_at = now
    update_row.appeal_id = outcome.appeal_id
    outbox_channel = replies.OUTBOX_CHANNEL[channel]
    platform = channel if outbox_channel == "meta" else None
    for i, reply in enumerate(outcome.replies):
        replies.queue_message(outbox_channel, handle, reply.payload(platform), now,
                              dedupe_key=f"chat:{channel}:{provider_id}:{i}", appeal_id=outcome.appeal_id)
    db.session.flush()
    return outcome


def load_conversation(channel: str, handle: str, now: datetime) -> Conversation:
    """The chat's conversation row, locked for this transaction, created on first contact."""
    query = select(Conversation).where(Conversation.channel == channel, Conversation.handle == handle)
    if db.session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()
    row = db.session.scalar(query)
    if row is not None:
        return row
    try:
        with db.session.begin_nested():
            row = Conversation(channel=channel, handle=handle, step="idle", language=None, data={}, updated_at=now)
            db.session.add(row)
            db.session.flush()
    except IntegrityError:  # a first message from the same chat on another connection
        row = db.session.scalar(query)
    return row


# --- the state machine --------------------------------------------------------------------------


def _words(text: str | None) -> str:
    return " ".join((text or "").strip().casefold().split())


def advance(conv: Conversation, msg: Inbound, now: datetime) -> Outcome:
    """Move the conversation by one message and say what comes next."""
    word = _words(msg.text) if msg.kind == "text" else ""
    if word.split("@")[0] in START_WORDS:  # Telegram groups send "/start@botname"
        _discard_draft(conv)
        conv.language = None
        return Outcome([*_prompt(conv, "language")])
    if word.split("@")[0] in CANCEL_WORDS:
        _discard_draft(conv)
        conv.step = "idle"
        return Outcome([Reply(say("cancelled", conv.language), remove_keyboard=conv.channel == "telegram")])
    handler = STEPS.get(conv.step)
    if handler is None:  # "idle", or a step this version no longer has
        return _idle(conv, msg)
    return handler(conv, msg, now)


def _idle(conv: Conversation, msg: Inbound) -> Outcome:
    last = (conv.data or {}).get("last_reg_no")
    if msg.choice == "confirm:yes" and last:  # a second tap on "Send"
        return Outcome([Reply(say("already", conv.language, reg_no=last))])
    _discard_draft(conv)
    if conv.language is None:
        return Outcome(_prompt(conv, "language"))
    greeting = "new_appeal" if last else "welcome"
    return _say_and_ask(conv, greeting, "type")


def _set(conv: Conversation, **values) -> None:
    # A JSON column is replaced, not mutated, so the change is noticed and written.
    conv.data = {**(conv.data or {}), **values}


def _discard_draft(conv: Conversation) -> None:
    """Forget the draft and the photos it collected (they were never fetched)."""
    if conv.id is not None:
        db.session.execute(delete(MediaFetch).where(MediaFetch.conversation_id == conv.id,
                                                    MediaFetch.appeal_id.is_(None)))
    keep = {k: v for k, v in (conv.data or {}).items() if k == "last_reg_no"}
    conv.data = {**keep, "nonce": secrets.token_hex(8)}


def _options(conv: Conversation, step: str) -> list[dict]:
    lang = conv.language or "ru"
    if step == "language":
        return [{"id": f"lang:{code}", "title": LANGUAGE_NAMES[code]} for code in LANGUAGES]
    if step == "type":
        return [{"id": f"type:{t}", "title": TYPE_NAMES[lang][t]} for t in APPEAL_TYPES]
    if step == "topic":
        topics = db.session.scalars(select(Topic).where(Topic.active.is_(True))
                                    .order_by(Topic.sort_order, Topic.code))
        return [{"id": f"topic:{t.code}", "title": t.name(lang)} for t in topics]
    if step == "photo":
        key = "next" if (conv.data or {}).get("photos") else "skip"
        return [{"id": "photo:next", "title": say(key, lang)}]
    if step == "confirm":
        return [{"id": "confirm:yes", "title": say("confirm_yes", lang)},
                {"id": "confirm:restart", "title": say("confirm_restart", lang)},
                {"id": "confirm:cancel", "title": say("confirm_cancel", lang)}]
    return []


def _pick(msg: Inbound, options: list[dict]) -> str | None:
    """The option the message chose: a button id, the option's number, or its exact title."""
    if msg.kind == "choice" and msg.choice:
        return msg.choice if any(o["id"] == msg.choice for o in options) else None
    if msg.kind != "text":
        return None
    word = _words(msg.text)
    if word.isdigit() and 1 <= int(word) <= len(options):
        return options[int(word) - 1]["id"]
    for option in options:
        if _words(option["title"]) == word or _words(option["title"].lstrip("✅🔄✖ ")) == word:
            return option["id"]
    return None


def _prompt(conv: Conversation, step: str) -> list[Reply]:
    """Enter ``step`` and ask its question."""
    conv.step = step
    lang = conv.language
    menu = say("menu", lang)
    if step == "language":
        text = " / ".join(("Тілді таңдаңыз", "Выберите язык", "Choose a language"))
        return [Reply(text, _options(conv, step), columns=3, menu_label="Тіл / Язык")]
    if step in CHOICE_COLUMNS:  # type, topic: "ask_<step>" with the options as buttons
        return [Reply(say(f"ask_{step}", lang), _options(conv, step), columns=CHOICE_COLUMNS[step], menu_label=menu)]
    if step == "location":
        if conv.channel in LOCATION_SHARING:
            return [Reply(say("ask_location_share", lang), request_location=True,
                          location_label=say("location_button", lang))]
        return [Reply(say("ask_location_text", lang))]
    if step == "photo":
        count = (conv.data or {}).get("photos", 0)
        text = say("photo_received", lang, count=count) if count else say("ask_photo", lang)
        return [Reply(text, _options(conv, step))]
    if step == "description":
        return [Reply(say("ask_description", lang))]
    if step == "confirm":
        return [Reply(_summary(conv), _options(conv, step), menu_label=menu)]
    raise ValueError(step)


def _say_and_ask(conv: Conversation, key: str, step: str) -> Outcome:
    """Say the text ``key``, then enter ``step`` and ask its question."""
    return Outcome([Reply(say(key, conv.language)), *_prompt(conv, step)])


def _reask(conv: Conversation, key: str = "reask_choice") -> Outcome:
    return _say_and_ask(conv, key, conv.step)


def _summary(conv: Conversation) -> str:
    data, lang = conv.data or {}, conv.language or "ru"
    topic = db.session.get(Topic, data.get("topic"))
    if data.get("lat") is not None:
        place = say("point", lang, lat=f"{data['lat']:.5f}", lon=f"{data['lon']:.5f}")
    else:
        place = data.get("address") or ""
    return say("summary", lang, type=TYPE_NAMES[lang].get(data.get("type"), ""),
               topic=topic.name(lang) if topic else "", place=place, photos=data.get("photos", 0),
               description=data.get("description", ""))


def _step_language(conv: Conversation, msg: Inbound, now: datetime) -> Outcome:
    choice = _pick(msg, _options(conv, "language"))
    if choice is None:
        word = _words(msg.text)
        choice = f"lang:{word}" if word in LANGUAGES else None
    if choice is None:
        return Outcome(_prompt(conv, "language"))
    conv.language = choice.split(":", 1)[1]
    return _say_and_ask(conv, "welcome", "type")


def _choice_step(key: str, next_step: str):
    """A step that stores the chosen option (``<key>:<value>``) as ``data[key]`` and moves on to ``next_step``."""

    def step(conv: Conversation, msg: Inbound, now: datetime) -> Outcome:
        choice = _pick(msg, _options(conv, key))
        if choice is None:
            return _reask(conv)
        _set(conv, **{key: choice.split(":", 1)[1]})
        return Outcome(_prompt(conv, next_step))

    step.__name__ = f"_step_{key}"
    return step


_step_type = _choice_step("type", next_step="topic")
_step_topic = _choice_step("topic", next_step="location")


def _step_location(conv: Conversation, msg: Inbound, now: datetime) -> Outcome:
    lang = conv.language
    if msg.kind == "location" and msg.lat is not None and msg.lon is not None \
            and -90 <= msg.lat <= 90 and -180 <= msg.lon <= 180:
        _set(conv, lat=msg.lat, lon=msg.lon, accuracy_m=msg.accuracy_m, address=None)
    elif msg.kind == "text" and msg.text:
        address = " ".join(msg.text.split())
        if len(address) < ADDRESS_MIN:
            return _say_and_ask(conv, "address_short", "location")
        if len(address) > ADDRESS_MAX:
            return _say_and_ask(conv, "address_long", "location")
        _set(conv, address=address, lat=None, lon=None, accuracy_m=None)
    else:
        return _reask(conv, "reask_text")
    # Telegram's reply keyboard (the location button) stays up after a typed address unless removed.
    noted = [Reply(say("location_noted", lang), remove_keyboard=True)] if conv.channel == "telegram" else []
    return Outcome([*noted, *_prompt(conv, "photo")])


def _take_photo(conv: Conversation, msg: Inbound, now: datetime) -> bool:
    """Keep a photo for the worker to fetch later; False when the draft has its 3 already."""
    count = (conv.data or {}).get("photos", 0)
    if count >= MAX_PHOTOS or not msg.media_ref:
        return False
    db.session.add(MediaFetch(channel=conv.channel, media_ref=msg.media_ref[:512], conversation_id=conv.id,
                              state="pending", attempts=0, next_attempt_at=now, created_at=now))
    _set(conv, photos=count + 1)
    return True


def _step_photo(conv: Conversation, msg: Inbound, now: datetime) -> Outcome:
    if msg.kind == "photo":
        if not _take_photo(conv, msg, now):
            return Outcome([Reply(say("photo_limit", conv.language), _options(conv, "photo"))])
        return Outcome(_prompt(conv, "photo"))
    choice = _pick(msg, _options(conv, "photo"))
    if choice is None and msg.kind == "text" and _words(msg.text) in {
            _words(say(k, lang)) for k in ("skip", "next") for lang in LANGUAGES}:
        choice = "photo:next"
    if choice is None:
        return _reask(conv, "reask_photo")
    return Outcome(_prompt(conv, "description"))


def _step_description(conv: Conversation, msg: Inbound, now: datetime) -> Outcome:
    text = msg.text if msg.kind == "text" else None
    if msg.kind == "photo":
        _take_photo(conv, msg, now)
        text = msg.caption
        if not (text and text.strip()):
            return Outcome(_prompt(conv, "description"))
    if not (text and text.strip()):
        return _reask(conv, "reask_text")
    if len(text.strip()) > DESCRIPTION_MAX:
        return _say_and_ask(conv, "description_long", "description")
    _set(conv, description=text.strip())
    return Outcome(_prompt(conv, "confirm"))


def _step_confirm(conv: Conversation, msg: Inbound, now: datetime) -> Outcome:
    choice = _pick(msg, _options(conv, "confirm"))
    if choice == "confirm:yes":
        return _register(conv, msg, now)
    if choice == "confirm:restart":
        _discard_draft(conv)
        return Outcome(_prompt(conv, "type"))
    if choice == "confirm:cancel":
        _discard_draft(conv)
        conv.step = "idle"
        return Outcome([Reply(say("cancelled", conv.language))])
    return _reask(conv)


def _register(conv: Conversation, msg: Inbound, now: datetime) -> Outcome:
    data = conv.data or {}
    try:
        request = AppealIn(type=data.get("type"), topic=data.get("topic"), description=data.get("description"),
                           lat=data.get("lat"), lon=data.get("lon"), accuracy_m=data.get("accuracy_m"),
                           address=data.get("address"), channel=conv.channel)
        key = f"chat:{conv.channel}:{conv.id}:{data.get('nonce', '')}"
        result = intake.register_appeal(request, actor=CITIZEN, now=now, idempotency_key=key)
    except (ValidationError, ServiceError):
        # A topic withdrawn meanwhile, a draft that no longer validates: ask again rather than fail the webhook.
        return _say_and_ask(conv, "failed", "topic")
    appeal = result.appeal
    appeal.citizen_id = _citizen(conv, msg, now).id
    db.session.execute(update(MediaFetch).where(MediaFetch.conversation_id == conv.id,
                                                MediaFetch.appeal_id.is_(None))
                       .values(appeal_id=appeal.id, next_attempt_at=now))
    conv.step = "idle"
    conv.data = {"last_reg_no": appeal.reg_no}
    db.session.flush()
    # The confirmation itself is the "registered" reply template, queued with these events at commit.
    return Outcome([], list(result.events), appeal.id)


def _citizen(conv: Conversation, msg: Inbound, now: datetime) -> Citizen:
    """The citizen behind this chat (channel, handle = chat id), created or refreshed."""
    citizen = db.session.scalar(select(Citizen).where(Citizen.channel == conv.channel,
                                                      Citizen.handle == conv.handle))
    if citizen is None:
        citizen = Citizen(channel=conv.channel, handle=conv.handle, created_at=now)
        db.session.add(citizen)
    citizen.language = conv.language or "ru"
    if msg.name:
        citizen.name = msg.name[:160]
    if msg.phone:
        citizen.phone = msg.phone[:32]
    db.session.flush()
    return citizen


STEPS = {
    "language": _step_language,
    "type": _step_type,
    "topic": _step_topic,
    "location": _step_location,
    "photo": _step_photo,
    "description": _step_description,
    "confirm": _step_confirm,
}

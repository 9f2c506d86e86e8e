"""Replies on the channel of origin: what the citizen is told, in their language, and when.

Five moments, each caused by an appeal event: ``registered`` (``appeal.registered``), ``assigned``
(``appeal.assigned``), ``resolved`` (``appeal.resolved``, with the latest "after" photo),
``extended`` (``appeal.extended``: the deadline moved, Art. 76) and ``answered``
(``appeal.answered``, with the answer text). :func:`queue_for_events` runs inside the transaction
that records the events (``server.api.common.commit``), like the staff pushes, and writes one
OutboundMessage per message with a ``dedupe_key`` per event, so a rolled-back change sends nothing
and nothing is sent twice. The outbox worker delivers them through the channel classes of
``notifications`` (:func:`senders` registers them).

Where a reply goes: Telegram, WhatsApp, Instagram and Facebook appeals to the chat the citizen wrote
from (``Citizen.handle``); 109 phone calls by SMS to the caller's number; web and Open311 appeals
nowhere (they follow the tracking link, or the client system polls). Only configured channels get rows.

Templates: one per (moment, appeal type or ``*``, language), looked up type first, then ``*``, the
methodologist's database rows over the defaults written here. They are rendered with a closed set of
named placeholders (:data:`PLACEHOLDERS`); a template naming anything else, or using attribute,
index, conversion or format syntax, is refused when saved (422) - so a template can never reach into
an object, only drop in the values computed here.
"""

from __future__ import annotations

import hashlib
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import select
from werkzeug.routing import BuildError

from notifications.base import Channel
from notifications.meta import MetaSend
from notifications.provider import media_policy
from notifications.sms import HttpSmsGateway
from notifications.telegram import TelegramBot
from notifications.whatsapp import WhatsAppCloud
from server import media
from server.extensions import db
from server.models import Appeal, AppealEvent, Attachment, Citizen, OutboundMessage, ReplyTemplate, Staff
from server.models.catalog import APPEAL_TYPES, LANGUAGES
from server.services.errors import NotFound, Unprocessable

MOMENTS = ("registered", "assigned", "resolved", "extended", "forwarded", "answered")
EVENT_MOMENTS = {
    "appeal.registered": "registered",
    "appeal.assigned": "assigned",
    "appeal.resolved": "resolved",
    "appeal.extended": "extended",
    "appeal.forwarded": "forwarded",  # outside the centre's competence (Art. 76): told where it went and why
    "appeal.answered": "answered",
}
PLACEHOLDERS = ("reg_no", "status", "answer", "link", "due", "topic", "reason")
TEMPLATE_TYPES = ("*", *APPEAL_TYPES)
BODY_LIMIT = 1000
CAPTION_LIMIT = 1000  # a photo caption (Telegram 1024, WhatsApp 1024): longer texts go as their own message
# Inbound channel of the appeal -> the outbox channel that answers it.
OUTBOX_CHANNEL = {"telegram": "telegram", "whatsapp": "whatsapp", "instagram": "meta", "facebook": "meta",
                  "phone": "sms"}

# The built-in texts: (moment, appeal type or "*") -> {language: text}.
DEFAULT_TEXTS: dict[tuple[str, str], dict[str, str]] = {
    ("registered", "*"): {
        "kk": "Өтінішіңіз {reg_no} нөмірімен тіркелді. Қаралу барысын мына сілтемеден бақылай аласыз: {link}",
        "ru": "Ваше обращение зарегистрировано под номером {reg_no}. Следить за ходом рассмотрения можно по "
              "ссылке: {link}",
        "en": "Your appeal is registered as {reg_no}. Follow its progress here: {link}",
    },
    ("registered", "gratitude"): {
        "kk": "Алғысыңызға рахмет! Ол {reg_no} нөмірімен тіркеліп, иесіне жеткізіледі. {link}",
        "ru": "Спасибо за тёплые слова! Благодарность зарегистрирована под номером {reg_no} и будет передана "
              "адресату. {link}",
        "en": "Thank you for your kind words! They are registered as {reg_no} and will be passed on. {link}",
    },
    ("assigned", "*"): {
        "kk": "{reg_no} өтініші орындаушыға жіберіліп, жұмысқа алынды. Күйі: {status}. {link}",
        "ru": "Обращение {reg_no} передано исполнителю и взято в работу. Статус: {status}. {link}",
        "en": "Appeal {reg_no} has been handed to a field team. Status: {status}. {link}",
    },
    ("resolved", "*"): {
        "kk": "{reg_no} өтініші бойынша жұмыс орындалды, нәтиженің суреті қоса беріліп отыр. Тексерілгеннен "
              "кейін жауап жіберіледі. {link}",
        "ru": "По обращению {reg_no} работы выполнены, фото результата прилагаем. Ответ придёт после проверки. {link}",
        "en": "The work on appeal {reg_no} is done; a photo of the result is attached. You will get the answer "
              "once it is checked. {link}",
    },
    ("extended", "*"): {
        "kk": "{reg_no} өтінішін қарау мерзімі {due} дейін ұзартылды. Себебі: {reason}. {link}",
        "ru": "Срок рассмотрения обращения {reg_no} продлён до {due}. Причина: {reason}. {link}",
        "en": "The time to consider appeal {reg_no} is extended to {due}. Reason: {reason}. {link}",
    },
    ("forwarded", "*"): {
        "kk": "{reg_no} өтініші орталықтың құзыретіне жатпайды және тиісті органға жіберілді. Себебі: {reason}. {link}",
        "ru": "Обращение {reg_no} не относится к компетенции центра и направлено в уполномоченный орган. "
              "Причина: {reason}. {link}",
        "en": "Appeal {reg_no} is outside the centre's competence and has been forwarded to the competent body. "
              "Reason: {reason}. {link}",
    },
    ("answered", "*"): {
        "kk": "{reg_no} өтінішіне жауап:\n{answer}\n\nМәселенің шешілгенін растаңыз немесе 15 күн ішінде жауапқа "
              "келіспейтініңізді білдіріңіз: {link}",
        "ru": "Ответ на обращение {reg_no}:\n{answer}\n\nПодтвердите, что проблема решена, или оспорьте ответ в "
              "течение 15 дней: {link}",
        "en": "The answer to appeal {reg_no}:\n{answer}\n\nWithin 15 days, confirm the problem is solved or dispute "
              "the answer: {link}",
    },
}
DEFAULTS: dict[tuple[str, str, str], str] = {
    (moment, appeal_type, language): text
    for (moment, appeal_type), texts in DEFAULT_TEXTS.items() for language, text in texts.items()
}

# What the citizen reads for each status (the {status} placeholder).
STATUS_NAMES = {
    "kk": {"registered": "тіркелді", "routed": "бөлімшеге жіберілді", "unrouted": "бөлімшеге жіберілді",
           "assigned": "орындаушыға тапсырылды", "accepted": "жұмыста", "en_route": "орындаушы жолда",
           "on_site": "орындаушы орнында", "resolved": "жұмыс орындалды", "verified": "тексерілді",
           "answered": "жауап берілді", "closed": "жабылды", "reopened": "қайта ашылды", "rejected": "қабылданбады",
           "duplicate": "қайталанатын өтініш", "forwarded": "басқа органға жіберілді"},
    "ru": {"registered": "зарегистрировано", "routed": "передано в подразделение",
           "unrouted": "передано в подразделение", "assigned": "назначен исполнитель", "accepted": "в работе",
           "en_route": "исполнитель в пути", "on_site": "исполнитель на месте", "resolved": "работы выполнены",
           "verified": "проверено", "answered": "дан ответ", "closed": "закрыто", "reopened": "открыто повторно",
           "rejected": "отклонено", "duplicate": "повторное обращение", "forwarded": "направлено в другой орган"},
    "en": {"registered": "registered", "routed": "sent to a unit", "unrouted": "sent to a unit",
           "assigned": "assigned to a field team", "accepted": "in progress", "en_route": "team on the way",
           "on_site": "team on site", "resolved": "work done", "verified": "checked", "answered": "answered",
           "closed": "closed", "reopened": "reopened", "rejected": "rejected", "duplicate": "duplicate",
           "forwarded": "forwarded to another body"},
}


# --- templates ---------------------------------------------------------------------------------


def check_body(body: str) -> None:
    """Refuse a template body that is empty, too long, or uses anything but the known placeholders (422)."""
    if not body or not body.strip():
        raise Unprocessable("template_empty", field="body")
    if len(body) > BODY_LIMIT:
        raise Unprocessable("template_too_long", field="body", limit=BODY_LIMIT)
    try:
        parts = list(string.Formatter().parse(body))
    except ValueError:
        raise Unprocessable("template_syntax", field="body") from None
    for _literal, name, spec, conversion in parts:
        if name is None:
            continue
        # Only a bare name: "{reg_no.__class__}", "{link[0]}", "{answer!r}" or "{due:>99}" are refused.
        if name not in PLACEHOLDERS or spec or conversion:
            raise Unprocessable("unknown_placeholder", field="body", name=name or "{}",
                                allowed=", ".join(f"{{{p}}}" for p in PLACEHOLDERS))


def render(body: str, values: Mapping[str, object]) -> str:
    """Fill a checked template with ``values`` (a missing value renders empty); plain substitution only."""
    out = []
    for literal, name, _spec, _conversion in string.Formatter().parse(body):
        out.append(literal)
        if name is not None:
            out.append(str(values.get(name) or ""))
    return "".join(out).strip()


def _language(value: str | None) -> str:
    return value if value in LANGUAGES else "ru"


def template_body(moment: str, appeal_type: str, language: str) -> str:
    """The text for ``moment`` of an appeal of ``appeal_type`` in ``language``: database rows first, type first."""
    language = _language(language)
    rows = {row.appeal_type: row.body for row in db.session.scalars(
        select(ReplyTemplate).where(ReplyTemplate.moment == moment, ReplyTemplate.language == language,
                                    ReplyTemplate.appeal_type.in_((appeal_type, "*"))))}
    return (rows.get(appeal_type) or DEFAULTS.get((moment, appeal_type, language)) or rows.get("*")
            or DEFAULTS[(moment, "*", language)])


@dataclass(frozen=True)
class TemplateView:
    """One editable template as the methodologist's page shows it."""

    moment: str
    appeal_type: str
    language: str
    body: str
    custom: bool  # a database row (else the built-in default)
    default: str | None  # the built-in text for this key, if there is one
    updated_at: datetime | None = None
    updated_by: str | None = None


def list_templates() -> list[TemplateView]:
    """Every template that exists: each built-in default (or its override) and every type-specific row."""
    rows = {(r.moment, r.appeal_type, r.language): r for r in db.session.scalars(select(ReplyTemplate))}
    names = {s.id: s.username for s in db.session.scalars(
        select(Staff).where(Staff.id.in_({r.updated_by_id for r in rows.values() if r.updated_by_id})))}
    keys = sorted(set(DEFAULTS) | set(rows), key=lambda k: (MOMENTS.index(k[0]), TEMPLATE_TYPES.index(k[1]),
                                                            LANGUAGES.index(k[2])))
    out = []
    for key in keys:
        row = rows.get(key)
        out.append(TemplateView(
            moment=key[0], appeal_type=key[1], language=key[2], body=row.body if row else DEFAULTS[key],
            custom=row is not None, default=DEFAULTS.get(key), updated_at=row.updated_at if row else None,
            updated_by=names.get(row.updated_by_id) if row else None))
    return out


def _template_row(moment: str, appeal_type: str, language: str) -> ReplyTemplate | None:
    return db.session.scalar(select(ReplyTemplate).where(
        ReplyTemplate.moment == moment, ReplyTemplate.appeal_type == appeal_type, ReplyTemplate.language == language))


def save_template(moment: str, appeal_type: str, language: str, body: str, staff: Staff,
                  now: datetime) -> TemplateView:
    """Create or replace the methodologist's text for one key (checked first); flushes."""
    check_body(body)
    row = _template_row(moment, appeal_type, language)
    if row is None:
        row = ReplyTemplate(moment=moment, appeal_type=appeal_type, language=language)
        db.session.add(row)
    row.body = body.strip()
    row.updated_by_id = staff.id
    row.updated_at = now
    db.session.flush()
    return TemplateView(moment, appeal_type, language, row.body, True, DEFAULTS.get((moment, appeal_type, language)),
                        now, staff.username)


def reset_template(moment: str, appeal_type: str, language: str) -> None:
    """Delete the override of one key (the built-in default applies again); NotFound when there is none."""
    row = _template_row(moment, appeal_type, language)
    if row is None:
        raise NotFound("template_not_found")
    db.session.delete(row)
    db.session.flush()


# --- whom, and with what ---------------------------------------------------------------------


def tracking_link(appeal: Appeal) -> str:
    """The citizen's tracking link: ``{JAUAP_PUBLIC_URL}/t/<token>``."""
    return f"{current_app.config['JAUAP_PUBLIC_URL'].rstrip('/')}/t/{appeal.tracking_token}"


def enabled_channels() -> set[str]:
    """The outbox channels this deployment has settings for."""
    cfg = current_app.config
    enabled = set()
    if cfg.get("JAUAP_TELEGRAM_BOT_TOKEN"):
        enabled.add("telegram")
    if cfg.get("JAUAP_WHATSAPP_TOKEN") and cfg.get("JAUAP_WHATSAPP_PHONE_ID"):
        enabled.add("whatsapp")
    if cfg.get("JAUAP_META_PAGE_TOKEN"):
        enabled.add("meta")
    if cfg.get("JAUAP_SMS_URL"):
        enabled.add("sms")
    return enabled


@dataclass(frozen=True)
class Destination:
    """Where a citizen's replies go: an outbox channel, an address there, the Meta platform, a language."""

    channel: str
    address: str
    language: str
    platform: str | None = None


def destination(appeal: Appeal) -> Destination | None:
    """Where replies about ``appeal`` go, or None (web, Open311, unknown citizen, channel not configured)."""
    channel = OUTBOX_CHANNEL.get(appeal.channel)
    if channel is None or appeal.citizen_id is None or channel not in enabled_channels():
        return None
    citizen = db.session.get(Citizen, appeal.citizen_id)
    if citizen is None:
        return None
    address = citizen.phone if channel == "sms" else (citizen.handle if citizen.channel == appeal.channel else None)
    if not address:
        return None
    platform = appeal.channel if channel == "meta" else None
    return Destination(channel, address, _language(citizen.language), platform)


def _local_date(moment: datetime | str | None) -> str:
    if isinstance(moment, str):
        try:
            moment = datetime.fromisoformat(moment)
        except ValueError:
            return moment
    if moment is None:
        return ""
    return moment.astimezone(ZoneInfo(current_app.config["JAUAP_TIMEZONE"])).strftime("%d.%m.%Y")


def values_for(appeal: Appeal, event: AppealEvent, language: str) -> dict[str, str]:
    """The placeholder values for one event of ``appeal``."""
    data = event.data or {}
    return {
        "reg_no": appeal.reg_no,
        "status": STATUS_NAMES[language].get(appeal.status, appeal.status),
        "answer": appeal.answer_text or data.get("answer") or "",
        "link": tracking_link(appeal),
        "due": _local_date(data.get("due_at") or appeal.due_at),
        "topic": appeal.topic.name(language) if appeal.topic is not None else appeal.topic_code,
        "reason": str(data.get("reason") or ""),
    }


def after_photo(appeal: Appeal) -> dict | None:
    """The latest "after" photo of ``appeal`` as payload fields (its large derivative: no EXIF), or None."""
    photo = db.session.scalar(select(Attachment).where(Attachment.appeal_id == appeal.id, Attachment.kind == "after")
                              .order_by(Attachment.id.desc()).limit(1))
    if photo is None:
        return None
    from server.services.evidence import media_root  # the one place that knows where photos live

    fields = {"photo_file": str(media.derived_path(media_root(), photo.sha256, "large"))}
    base = current_app.config["JAUAP_PUBLIC_URL"].rstrip("/")
    if base.startswith("https://"):
        try:  # the public, token-guarded URL of the derivative, for providers that fetch images themselves
            path = current_app.url_map.bind("localhost").build(
                "citizen.tracking_photo", {"token": appeal.tracking_token, "public_id": photo.public_id,
                                           "variant": "large"})
            fields["photo_url"] = base + path
        except BuildError:
            pass
    return fields


def _dedupe(key: str) -> str:
    # Provider ids can be long (Instagram message ids): keep keys within the column.
    return key if len(key) <= 160 else key[:100] + ":" + hashlib.sha256(key.encode()).hexdigest()[:40]


def queue_message(channel: str, address: str, payload: dict, now: datetime, *, dedupe_key: str | None,
                  appeal_id: int | None = None) -> bool:
    """Add one OutboundMessage unless ``dedupe_key`` was queued before; True when added (flushes nothing)."""
    key = _dedupe(dedupe_key) if dedupe_key else None
    if key and db.session.scalar(select(OutboundMessage.id).where(OutboundMessage.dedupe_key == key)):
        return False
    db.session.add(OutboundMessage(channel=channel, dedupe_key=key, recipient=str(address), appeal_id=appeal_id,
                                   payload=payload, state="pending", attempts=0, next_attempt_at=now,
                                   created_at=now))
    return True


def queue_reply(appeal: Appeal, event: AppealEvent, moment: str, now: datetime) -> int:
    """Queue the ``moment`` message about ``appeal`` to its citizen, once per event; returns rows added."""
    where = destination(appeal)
    if where is None:
        return 0
    text = render(template_body(moment, appeal.type, where.language), values_for(appeal, event, where.language))
    base: dict = {"notification": True}
    if where.platform:
        base["platform"] = where.platform
    photo = after_photo(appeal) if moment == "resolved" else None
    key = f"reply:ev{event.id}"
    if photo is None or where.channel == "sms":  # SMS carries no photo
        parts = [{**base, "text": text}]
    elif where.channel in ("telegram", "whatsapp") and len(text) <= CAPTION_LIMIT:
        parts = [{**base, "text": text, **photo}]  # one message: the photo with the text as its caption
    else:
        parts = [{**base, "text": text}, {**base, **photo}]
    template = current_app.config.get("JAUAP_WHATSAPP_TEMPLATE")
    if where.channel == "whatsapp" and template:
        # Answers often come days after the citizen last wrote, when WhatsApp takes templates only
        # (notifications.whatsapp sends this one if the free text is refused for that reason).
        values = values_for(appeal, event, where.language)
        parts[0]["template"] = {"name": template, "language": where.language,
                                "params": [values["reg_no"], values["status"], values["link"]]}
    added = 0
    for i, payload in enumerate(parts):
        added += queue_message(where.channel, where.address, payload, now,
                               dedupe_key=key if i == 0 else f"{key}:{i}", appeal_id=appeal.id)
    return added


def queue_for_events(events: Iterable[AppealEvent], now: datetime) -> int:
    """Queue the citizen's message for each event in ``events`` that is one of the moments; returns rows added.

    Call inside the transaction that wrote the events, before it commits.
    """
    queued = 0
    for event in events:
        moment = EVENT_MOMENTS.get(event.kind)
        if moment is None or event.appeal is None:
            continue
        queued += queue_reply(event.appeal, event, moment, now)
    if queued:
        db.session.flush()
    return queued


# --- the channel classes the outbox sends through ---------------------------------------------


def senders(timeout_s: float) -> list[Channel]:
    """The configured citizen channels (Telegram, WhatsApp, Meta, SMS) for the outbox registry."""
    cfg = current_app.config
    policy = media_policy(cfg.get("JAUAP_CHANNEL_MEDIA_HOSTS") or (), bool(cfg.get("JAUAP_CHANNELS_ALLOW_LOOPBACK")))
    out: list[Channel] = []
    enabled = enabled_channels()
    if "telegram" in enabled:
        out.append(TelegramBot(cfg["JAUAP_TELEGRAM_BOT_TOKEN"], cfg["JAUAP_TELEGRAM_API_BASE"], timeout_s=timeout_s))
    if "whatsapp" in enabled:
        out.append(WhatsAppCloud(cfg["JAUAP_WHATSAPP_TOKEN"], cfg["JAUAP_WHATSAPP_PHONE_ID"],
                                 cfg["JAUAP_GRAPH_API_BASE"], media_policy=policy, timeout_s=timeout_s))
    if "meta" in enabled:
        out.append(MetaSend(cfg["JAUAP_META_PAGE_TOKEN"], cfg["JAUAP_GRAPH_API_BASE"], media_policy=policy,
                            timeout_s=timeout_s))
    if "sms" in enabled:
        out.append(HttpSmsGateway(cfg["JAUAP_SMS_URL"], cfg.get("JAUAP_SMS_TOKEN"), cfg.get("JAUAP_SMS_SENDER"),
                                  timeout_s=timeout_s))
    return out

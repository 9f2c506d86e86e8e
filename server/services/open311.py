"""Open311 GeoReport v2 (and mySociety's ``servicerequestupdates`` extension) over our appeals.

The service catalogue is our topic catalogue: ``service_code`` is the topic code.
A few topics carry *attributes* (the spec's service definition), defined here in
code and named in kk/ru/en.

Decisions (see the README section):

* **Type.** GeoReport is for "location-based non-emergency issues": a request is an
  ``incident`` (urgency ``normal``: 3 working days) unless its topic is not a
  place-bound fault (social support, education, health, other: a ``complaint``,
  15 working days, APC Art. 76) or an attribute value says otherwise (roads
  ``hazard=yes``, a damaged lighting pole, a burst water pipe: urgency ``urgent``;
  landscaping ``request_kind=proposal``: a ``proposal``).
* **Retries.** FixMyStreet resends a report whose answer it did not get, and its
  ``deviceid`` is the *app name* (the same for many reports), not a report id. So a
  POST is deduplicated on a digest of everything it says (service, location,
  attributes, text, contact, media, device and account ids) per API key: the same
  request again returns the first ``service_request_id``. The digest becomes the
  appeal's idempotency key ``open311:<key id>:<digest>``.
* **Tokens.** Every service is ``realtime``: the POST answers with the
  ``service_request_id`` (the registration number) at once. ``tokens/<token>`` is
  the identity on registration numbers, so a client that always asks for a token
  still works. The appeal's tracking token is the citizen's secret and never
  appears in Open311.
* **Personal data.** GET answers never carry a citizen's name, phone, e-mail, device
  or account id. A description is published only for requests that came in through
  Open311 (their client published it already); the text of a call or a chat is the
  operator's note, not public. Likewise the "after" photo (a re-encoded derivative,
  at ``media/<random id>.jpg``) is the ``media_url`` of resolved Open311 requests only.
  Updates publish status notes, the answer of Open311 requests, and comments that
  came in through Open311 - never a staff reason.
* ``jurisdiction_id`` is accepted and ignored: this endpoint serves one jurisdiction, for
  which the spec makes it optional.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import ValidationError
from sqlalchemy import or_, select
from werkzeug.datastructures import MultiDict

from server import media
from server.config import REPO_ROOT
from server.extensions import db
from server.models import ApiKey, Appeal, AppealEvent, Attachment, Citizen, Topic
from server.models.appeal import DONE_STATUSES, OPEN_STATUSES
from server.schemas import PHONE_RE, AppealIn, CitizenIn
from server.services import intake
from server.services.calendar import TZ
from server.services.errors import ServiceError
from server.services.evidence import media_root
from server.services.lifecycle import CITIZEN, record_event, transition

LOCALES = ("kk", "ru", "en")
MAX_RESULTS = 1000
MAX_SPAN = timedelta(days=90)
UPDATES_DEFAULT_SPAN = timedelta(hours=24)
COMMENT_KIND = "appeal.comment"
SOURCE = "open311"
# From these statuses an Open311 request shows the "after" photo of the fix (its large derivative).
AFTER_PHOTO_STATUSES = ("resolved", "verified", "answered", "closed")
DATATYPES = ("string", "number", "datetime", "text", "singlevaluelist", "multivaluelist")
# mySociety's statuses for an update (FixMyStreet sends OPEN/CLOSED, or these with extended statuses).
UPDATE_STATUSES = frozenset({"OPEN", "CLOSED", "FIXED", "REOPEN", "IN_PROGRESS", "ACTION_SCHEDULED", "INVESTIGATING",
                             "DUPLICATE", "NOT_COUNCILS_RESPONSIBILITY", "NO_FURTHER_ACTION", "INTERNAL_REFERRAL"})
_ATTRIBUTE_KEY = re.compile(r"^attribute\[([A-Za-z0-9_]{1,64})\](\[\])?$")
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")


class Open311Error(Exception):
    """A request the spec answers with an error: ``status`` (400, 403, 404) and a description."""

    def __init__(self, status: int, description: str):
        super().__init__(description)
        self.status = status
        self.description = description


def _bad(description: str) -> Open311Error:
    return Open311Error(400, description)


# --- the catalogue ---------------------------------------------------------------------------------------------

Names = dict[str, str]  # locale -> text


@dataclass(frozen=True)
class Choice:
    """One value of a list attribute, and what it implies for the appeal."""

    key: str
    name: Names
    urgency: str | None = None  # raises an incident's urgency
    appeal_type: str | None = None  # changes the appeal type


@dataclass(frozen=True)
class Attribute:
    """One question of a service definition (GeoReport ``attribute``)."""

    code: str
    datatype: str
    required: bool
    description: Names
    choices: tuple[Choice, ...] = ()
    datatype_description: Names | None = None
    max_length: int = 255


@dataclass(frozen=True)
class ServiceInfo:
    """What Open311 adds to a topic: its group, keywords, description, default type and attributes."""

    group: str
    keywords: Names
    description: Names
    appeal_type: str = "incident"
    attributes: tuple[Attribute, ...] = ()


def _n(en: str, ru: str, kk: str) -> Names:
    return {"en": en, "ru": ru, "kk": kk}


YES = Choice("yes", _n("Yes", "Да", "Иә"))
NO = Choice("no", _n("No", "Нет", "Жоқ"))

GROUPS: dict[str, Names] = {
    "infrastructure": _n("Streets and infrastructure", "Улицы и инфраструктура", "Көшелер және инфрақұрылым"),
    "utilities": _n("Utilities", "Коммунальные услуги", "Коммуналдық қызметтер"),
    "social": _n("Social services", "Социальная сфера", "Әлеуметтік сала"),
    "other": _n("Other", "Другое", "Басқа"),
}

CATALOGUE: dict[str, ServiceInfo] = {
    "roads": ServiceInfo(
        "infrastructure",
        _n("pothole, road, asphalt, pavement", "яма, дорога, асфальт, тротуар", "шұңқыр, жол, асфальт, тротуар"),
        _n("Potholes, damaged road surface and pavements.", "Ямы, повреждённое дорожное покрытие и тротуары.",
           "Шұңқырлар, бүлінген жол жабыны мен тротуарлар."),
        attributes=(
            Attribute("pothole_depth", "singlevaluelist", False,
                      _n("How deep is the pothole?", "Какова глубина ямы?", "Шұңқырдың тереңдігі қандай?"),
                      (Choice("lt5", _n("less than 5 cm", "менее 5 см", "5 см-ден аз")),
                       Choice("5to10", _n("5 to 10 cm", "5–10 см", "5–10 см")),
                       Choice("gt10", _n("more than 10 cm", "более 10 см", "10 см-ден артық")))),
            Attribute("pothole_size", "singlevaluelist", False,
                      _n("How wide is it?", "Какого она размера?", "Оның көлемі қандай?"),
                      (Choice("small", _n("under 30 cm", "меньше 30 см", "30 см-ден кіші")),
                       Choice("medium", _n("30 cm to 1 m", "от 30 см до 1 м", "30 см-ден 1 м-ге дейін")),
                       Choice("large", _n("over 1 m", "больше 1 м", "1 м-ден үлкен")))),
            Attribute("hazard", "singlevaluelist", True,
                      _n("Is it an immediate danger to traffic or pedestrians?",
                         "Создаёт ли она непосредственную опасность для транспорта или пешеходов?",
                         "Ол көлікке немесе жаяу жүргіншілерге тікелей қауіп төндіре ме?"),
                      (Choice("yes", YES.name, urgency="urgent"), NO)),
        ),
    ),
    "street_lighting": ServiceInfo(
        "infrastructure",
        _n("street light, lamp, pole, dark", "фонарь, освещение, опора, темно", "шам, жарық, тірек, қараңғы"),
        _n("Street lights that are out, flicker, burn by day or are damaged.",
           "Неработающие, мигающие, горящие днём или повреждённые уличные фонари.",
           "Жанбайтын, жыпылықтайтын, күндіз жанатын немесе бүлінген көше шамдары."),
        attributes=(
            Attribute("pole_number", "string", False,
                      _n("The pole number painted on the pole, if you can see it",
                         "Номер опоры (написан на опоре), если он виден",
                         "Тірекке жазылған нөмірі, егер көрінсе"),
                      datatype_description=_n("Letters and digits, e.g. TR-0412", "Буквы и цифры, например TR-0412",
                                              "Әріптер мен сандар, мысалы TR-0412"),
                      max_length=32),
            Attribute("fault", "singlevaluelist", True,
                      _n("What is wrong?", "Что случилось?", "Не болды?"),
                      (Choice("out", _n("The light is out", "Не горит", "Жанбайды")),
                       Choice("flickering", _n("It flickers", "Мигает", "Жыпылықтайды")),
                       Choice("day_burning", _n("It is on during the day", "Горит днём", "Күндіз жанып тұр")),
                       Choice("damaged", _n("The pole or wires are damaged", "Повреждена опора или провода",
                                            "Тірек немесе сымдар бүлінген"), urgency="urgent"))),
        ),
    ),
    "water_supply": ServiceInfo(
        "utilities",
        _n("water, leak, pipe, pressure, no water", "вода, утечка, труба, напор, нет воды",
           "су, ағу, құбыр, қысым, су жоқ"),
        _n("No water, low pressure, leaks and water quality.", "Отсутствие воды, слабый напор, утечки и качество воды.",
           "Судың болмауы, әлсіз қысым, ағып кету және су сапасы."),
        attributes=(
            Attribute("issue", "singlevaluelist", True,
                      _n("What is the problem?", "В чём проблема?", "Мәселе неде?"),
                      (Choice("no_water", _n("No water", "Нет воды", "Су жоқ")),
                       Choice("low_pressure", _n("Low pressure", "Слабый напор", "Қысым әлсіз")),
                       Choice("leak", _n("A leak or a burst pipe", "Утечка или прорыв трубы",
                                         "Су ағып жатыр немесе құбыр жарылды"), urgency="urgent"),
                       Choice("quality", _n("Water quality", "Качество воды", "Су сапасы")))),
        ),
    ),
    "sewerage": ServiceInfo(
        "utilities",
        _n("sewer, manhole, blockage, smell", "канализация, люк, засор, запах", "кәріз, люк, бітелу, иіс"),
        _n("Blocked or overflowing sewers and open manholes.", "Засоры, переливы канализации и открытые люки.",
           "Кәріздің бітелуі, толып кетуі және ашық люктер."),
    ),
    "heating": ServiceInfo(
        "utilities",
        _n("heating, radiator, cold, boiler", "отопление, батарея, холодно, котельная",
           "жылыту, радиатор, суық, қазандық"),
        _n("No heating, cold radiators, heating-network leaks.", "Нет отопления, холодные батареи, утечки теплосети.",
           "Жылу жоқ, суық радиаторлар, жылу желісінің ағуы."),
    ),
    "gas": ServiceInfo(
        "utilities",
        _n("gas, pipe, pressure", "газ, труба, давление", "газ, құбыр, қысым"),
        _n("Gas supply problems (if you smell gas, call 104 at once).",
           "Проблемы с газоснабжением (при запахе газа сразу звоните 104).",
           "Газбен жабдықтау мәселелері (газ иісі шықса, бірден 104-ке қоңырау шалыңыз)."),
    ),
    "waste_collection": ServiceInfo(
        "utilities",
        _n("rubbish, garbage, bin, container, skip", "мусор, контейнер, бак, свалка",
           "қоқыс, контейнер, жәшік, үйінді"),
        _n("Bins not emptied, overflowing containers, dumped rubbish.",
           "Невывезенный мусор, переполненные контейнеры, стихийные свалки.",
           "Шығарылмаған қоқыс, толып кеткен контейнерлер, рұқсатсыз үйінділер."),
        attributes=(
            Attribute("container_type", "singlevaluelist", True,
                      _n("Which container?", "Какой контейнер?", "Қандай контейнер?"),
                      (Choice("bin", _n("A household bin", "Бытовой бак", "Тұрмыстық жәшік")),
                       Choice("container", _n("A communal container (1.1 m³)", "Общий контейнер (1,1 м³)",
                                              "Ортақ контейнер (1,1 м³)")),
                       Choice("skip", _n("A skip for bulky waste", "Бункер для крупногабаритных отходов",
                                         "Ірі габаритті қалдықтарға арналған бункер")),
                       Choice("none", _n("No container: dumped rubbish", "Без контейнера: свалка",
                                         "Контейнерсіз: үйінді")))),
            Attribute("overflowing", "singlevaluelist", False,
                      _n("Is it overflowing?", "Он переполнен?", "Ол толып кетті ме?"), (YES, NO)),
        ),
    ),
    "landscaping": ServiceInfo(
        "infrastructure",
        _n("trees, park, lawn, bench, playground", "деревья, парк, газон, скамейка, детская площадка",
           "ағаштар, саябақ, көгал, орындық, балалар алаңы"),
        _n("Parks, trees, lawns, benches and playgrounds.", "Парки, деревья, газоны, скамейки и детские площадки.",
           "Саябақтар, ағаштар, көгалдар, орындықтар және балалар алаңдары."),
        attributes=(
            Attribute("request_kind", "singlevaluelist", False,
                      _n("Is this a problem or a proposal?", "Это проблема или предложение?",
                         "Бұл мәселе ме, әлде ұсыныс па?"),
                      (Choice("problem", _n("A problem to fix", "Проблема, которую нужно устранить",
                                            "Жою керек мәселе")),
                       Choice("proposal", _n("A proposal (new trees, benches, a playground)",
                                             "Предложение (новые деревья, скамейки, площадка)",
                                             "Ұсыныс (жаңа ағаштар, орындықтар, алаң)"), appeal_type="proposal"))),
        ),
    ),
    "public_transport": ServiceInfo(
        "infrastructure",
        _n("bus, stop, route, timetable", "автобус, остановка, маршрут, расписание",
           "автобус, аялдама, бағыт, кесте"),
        _n("Buses, stops, routes and timetables.", "Автобусы, остановки, маршруты и расписание.",
           "Автобустар, аялдамалар, бағыттар және кесте."),
    ),
    "housing_communal": ServiceInfo(
        "utilities",
        _n("building, roof, entrance, lift, management company", "дом, крыша, подъезд, лифт, КСК",
           "үй, шатыр, кіреберіс, лифт, ПИК"),
        _n("Apartment buildings: roofs, entrances, lifts, management companies.",
           "Многоквартирные дома: крыши, подъезды, лифты, управляющие компании.",
           "Көппәтерлі үйлер: шатырлар, кіреберістер, лифттер, басқарушы компаниялар."),
    ),
    "social_support": ServiceInfo(
        "social", _n("benefits, pension, support", "пособие, пенсия, помощь", "жәрдемақы, зейнетақы, көмек"),
        _n("Social benefits and support.", "Социальные пособия и поддержка.", "Әлеуметтік жәрдемақылар мен қолдау."),
        appeal_type="complaint"),
    "education": ServiceInfo(
        "social", _n("school, kindergarten", "школа, детский сад", "мектеп, балабақша"),
        _n("Schools and kindergartens.", "Школы и детские сады.", "Мектептер мен балабақшалар."),
        appeal_type="complaint"),
    "health": ServiceInfo(
        "social", _n("clinic, hospital, pharmacy", "поликлиника, больница, аптека", "емхана, аурухана, дәріхана"),
        _n("Clinics, hospitals and pharmacies.", "Поликлиники, больницы и аптеки.",
           "Емханалар, ауруханалар және дәріханалар."),
        appeal_type="complaint"),
    "other": ServiceInfo(
        "other", _n("", "", ""),
        _n("Anything else for the city.", "Всё остальное для города.", "Қалаға қатысты басқа мәселелер."),
        appeal_type="complaint"),
}
# A topic an admin adds later is still a service: an incident, no attributes, in "other".
DEFAULT_INFO = ServiceInfo("other", _n("", "", ""), _n("", "", ""))

NOTICE = {
    "en": ("Registered as {reg_no}.", " Expected by {due} (Turkestan time)."),
    "ru": ("Зарегистрировано под номером {reg_no}.", " Ожидаемый срок: до {due} (время Туркестана)."),
    "kk": ("{reg_no} нөмірімен тіркелді.", " Күтілетін мерзімі: {due} дейін (Түркістан уақыты)."),
}


def text(names: Names, lang: str) -> str:
    """``names`` in ``lang``, falling back to Russian."""
    return names.get(lang) or names.get("ru") or ""


def service_info(code: str) -> ServiceInfo:
    """The Open311 facts of topic ``code``."""
    return CATALOGUE.get(code, DEFAULT_INFO)


def list_services() -> list[Topic]:
    """The active topics, in catalogue order: the services."""
    return list(db.session.scalars(select(Topic).where(Topic.active.is_(True)).order_by(Topic.sort_order, Topic.code)))


def get_service(code: str | None) -> Topic:
    """The active topic ``code`` or a 404 (``service_code`` not found)."""
    topic = db.session.get(Topic, code) if code else None
    if topic is None or not topic.active:
        raise Open311Error(404, f"service_code {code!r} was not found")
    return topic


@lru_cache(maxsize=4)
def _status_labels(lang: str) -> dict[str, str]:
    # One source for status names in three languages: the PWA's catalogue (also shown to staff).
    path = REPO_ROOT / "pwa" / "shared" / "i18n" / f"{lang}.json"
    try:
        catalogue = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {key.removeprefix("status."): value for key, value in catalogue.items() if key.startswith("status.")}


def status_note(status: str, lang: str) -> str:
    """Our detailed status, named in ``lang`` (the GeoReport ``status_notes``)."""
    return _status_labels(lang).get(status) or _status_labels("en").get(status) or status


def open_or_closed(status: str) -> str:
    """Our status mapped to GeoReport's two: ``closed`` once the centre owes nothing more."""
    return "closed" if status in DONE_STATUSES else "open"


def service_notice(appeal: Appeal, lang: str) -> str:
    """What the client may tell the citizen: the number, and the due time in local time."""
    first, due = NOTICE.get(lang, NOTICE["en"])
    notice = first.format(reg_no=appeal.reg_no)
    if appeal.due_at is not None:
        notice += due.format(due=appeal.due_at.astimezone(TZ).strftime("%Y-%m-%d %H:%M"))
    return notice


# --- dates -------------------------------------------------------------------------------------------------------

_W3C = re.compile(r"^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:\d{2}))?$")


def parse_datetime(value: str | None, name: str) -> datetime | None:
    """A W3C/ISO 8601 date-time with its zone (or a bare date: local midnight); 400 otherwise."""
    if value is None or value == "":
        return None
    # An unencoded "+05:00" in a query string arrives as " 05:00".
    value = value.strip().replace(" ", "+")
    if not _W3C.match(value):
        raise _bad(f"{name} must be a W3C date-time with a time zone, e.g. 2026-01-05T09:30:00+05:00")
    try:
        if "T" not in value:
            return datetime.combine(datetime.fromisoformat(value).date(), time(0), tzinfo=TZ)
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise _bad(f"{name} is not a valid date-time") from None


def w3c(moment: datetime | None) -> str | None:
    """A UTC instant written in Turkestan time with its offset, to the second."""
    if moment is None:
        return None
    return moment.astimezone(TZ).replace(microsecond=0).isoformat()


def _window(start: datetime | None, end: datetime | None, now: datetime, default_span: timedelta):
    if start is None and end is None:
        return now - default_span, now
    if end is None:
        end = min(start + MAX_SPAN, now) if start <= now else start
    if start is None:
        start = end - default_span
    if end < start:
        raise _bad("end_date is before start_date")
    if end - start > MAX_SPAN:
        raise _bad("start_date and end_date may not span more than 90 days")
    return start, end


# --- POST requests -------------------------------------------------------------------------------------------


@dataclass
class Created:
    """What a POST did: the appeal, whether it is new, the events to publish, the echoed account id."""

    appeal: Appeal
    created: bool
    events: list[AppealEvent] = field(default_factory=list)
    account_id: str | None = None


def _one(params: MultiDict, *names: str, max_length: int = 255) -> str | None:
    for name in names:
        value = params.get(name)
        if value is not None and value.strip():
            value = value.strip()
            if len(value) > max_length:
                raise _bad(f"{name} is too long (at most {max_length} characters)")
            return value
    return None


def _coordinate(params: MultiDict, name: str, limit: float) -> float | None:
    raw = _one(params, name, max_length=32)
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise _bad(f"{name} must be a number") from None
    if not math.isfinite(value) or abs(value) > limit:
        raise _bad(f"{name} must be between -{limit:g} and {limit:g}")
    return value


def _media_url(params: MultiDict) -> str | None:
    # FixMyStreet may send several media_url fields (one per photo): we keep the first.
    for raw in params.getlist("media_url"):
        value = raw.strip()
        if not value:
            continue
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc or len(value) > 1024:
            raise _bad("media_url must be an http(s) URL of at most 1024 characters")
        return value
    return None


def _attribute_values(params: MultiDict) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for key in params:
        match = _ATTRIBUTE_KEY.match(key)
        if match:
            values = [v.strip() for v in params.getlist(key) if v.strip()]
            found.setdefault(match.group(1), []).extend(values)
    return found


def check_attributes(info: ServiceInfo, sent: dict[str, list[str]]) -> tuple[dict, list[Choice]]:
    """Validate ``attribute[code]`` values against the definition: (stored values, chosen list values).

    Codes the definition does not know are ignored, not refused: FixMyStreet adds fields
    of its own (title, report URL, ...) to every report.
    """
    stored: dict[str, object] = {}
    chosen: list[Choice] = []
    for attr in info.attributes:
        values = sent.get(attr.code, [])
        if not values:
            if attr.required:
                raise _bad(f"attribute[{attr.code}] is required for this service_code")
            continue
        name = f"attribute[{attr.code}]"
        if attr.datatype == "multivaluelist":
            keys = {c.key: c for c in attr.choices}
            bad = [v for v in values if v not in keys]
            if bad:
                raise _bad(f"{name}: {bad[0]!r} is not one of {', '.join(keys)}")
            stored[attr.code] = sorted(set(values))
            chosen.extend(keys[v] for v in stored[attr.code])  # type: ignore[union-attr]
            continue
        if len(values) > 1:
            raise _bad(f"{name} takes one value")
        value = values[0]
        if attr.datatype == "singlevaluelist":
            choice = next((c for c in attr.choices if c.key == value), None)
            if choice is None:
                raise _bad(f"{name}: {value!r} is not one of {', '.join(c.key for c in attr.choices)}")
            chosen.append(choice)
            stored[attr.code] = value
        elif attr.datatype == "number":
            try:
                number = float(value)
            except ValueError:
                raise _bad(f"{name} must be a number") from None
            if not math.isfinite(number):
                raise _bad(f"{name} must be a number")
            stored[attr.code] = number
        elif attr.datatype == "datetime":
            stored[attr.code] = w3c(parse_datetime(value, name))
        else:
            limit = 4000 if attr.datatype == "text" else attr.max_length
            if len(value) > limit:
                raise _bad(f"{name} is too long (at most {limit} characters)")
            stored[attr.code] = value
    return stored, chosen


def _type_and_urgency(info: ServiceInfo, chosen: list[Choice]) -> tuple[str, str | None]:
    appeal_type = next((c.appeal_type for c in chosen if c.appeal_type), info.appeal_type)
    if appeal_type != "incident":
        return appeal_type, None
    order = {"normal": 0, "urgent": 1, "emergency": 2}
    urgency = max((c.urgency for c in chosen if c.urgency), key=order.__getitem__, default="normal")
    return appeal_type, urgency


def request_digest(api_key: ApiKey, canonical: dict) -> str:
    """The natural key of a POST: which client sent what (a retry has the same digest)."""
    blob = json.dumps({"key": api_key.id, **canonical}, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def create_request(params: MultiDict, api_key: ApiKey, lang: str, now: datetime) -> Created:
    """Register one Open311 POST as an appeal through the common intake (flushes; the caller commits)."""
    topic = _one(params, "service_code", max_length=32)
    if topic is None:
        raise _bad("service_code was not provided")
    topic = get_service(topic)
    info = service_info(topic.code)
    lat, lon = _coordinate(params, "lat", 90), _coordinate(params, "long", 180)
    if (lat is None) != (lon is None):
        raise _bad("lat and long must be given together")
    address = _one(params, "address_string", max_length=500)
    address_id = _one(params, "address_id", max_length=128)
    if lat is None and address is None and address_id is None:
        raise _bad("a location is required: lat and long, address_string or address_id")
    stored, chosen = check_attributes(info, _attribute_values(params))
    appeal_type, urgency = _type_and_urgency(info, chosen)
    description = _one(params, "description", max_length=4000) or topic.name(lang)
    email = _one(params, "email", max_length=254)
    if email is not None and not _EMAIL.match(email):
        raise _bad("email is not an e-mail address")
    phone = _one(params, "phone", max_length=32)
    if phone is not None and not PHONE_RE.match(phone):
        raise _bad("phone is not a phone number")
    name = " ".join(p for p in (_one(params, "first_name", max_length=80), _one(params, "last_name", max_length=80))
                    if p) or None
    canonical = {
        "service_code": topic.code, "lat": lat, "long": lon, "address_string": address, "address_id": address_id,
        "attributes": stored, "description": description, "email": email, "phone": phone, "name": name,
        "media_url": _media_url(params), "device_id": _one(params, "device_id", "deviceid", max_length=128),
        "account_id": _one(params, "account_id", max_length=128), "lang": lang,
    }
    try:
        data = AppealIn(
            type=appeal_type, topic=topic.code, description=description, lat=lat, lon=lon,
            address=address or (f"address_id: {address_id}" if address_id else None), channel=SOURCE,
            urgency=urgency,
            citizen=CitizenIn(name=name, phone=phone, language=lang) if (name or phone) else None,
        )
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        raise _bad(f"{'.'.join(str(p) for p in first.get('loc', ())) or 'request'}: {first['msg']}") from None
    key = f"open311:{api_key.id}:{request_digest(api_key, canonical)}"
    result = intake.register_appeal(data, actor=CITIZEN, now=now, idempotency_key=key)
    appeal = result.appeal
    if result.created:
        appeal.api_key_id = api_key.id
        appeal.device_id = canonical["device_id"]
        appeal.attributes = stored or None
        appeal.media_url = canonical["media_url"]
        _remember_email(appeal, email, name, lang, now)
        db.session.flush()
    return Created(appeal=appeal, created=result.created, events=result.events, account_id=canonical["account_id"])


def _remember_email(appeal: Appeal, email: str | None, name: str | None, lang: str, now: datetime) -> None:
    if email is None:
        return
    if appeal.citizen_id is not None:
        citizen = db.session.get(Citizen, appeal.citizen_id)
        citizen.email = email
        return
    citizen = Citizen(channel=SOURCE, handle=None, name=name, email=email, language=lang, created_at=now)
    db.session.add(citizen)
    db.session.flush()
    appeal.citizen_id = citizen.id


# --- GET requests -------------------------------------------------------------------------------------------------


def _csv(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def find_requests(params: MultiDict, now: datetime) -> list[Appeal]:
    """GET requests: by ``service_request_id`` (overrides the rest), else by code, status and date window.

    Without dates the window is the last 90 days; a window may not span more than 90
    days; at most 1,000 requests are returned, newest first.
    """
    ids = _csv(params.get("service_request_id"))
    query = select(Appeal)
    if ids:
        if len(ids) > MAX_RESULTS:
            raise _bad(f"at most {MAX_RESULTS} service_request_id values")
        query = query.where(Appeal.reg_no.in_(ids))
    else:
        codes = _csv(params.get("service_code"))
        for code in codes:
            if db.session.get(Topic, code) is None:
                raise _bad(f"service_code {code!r} is not a known service")
        statuses = [s.lower() for s in _csv(params.get("status"))]
        bad = [s for s in statuses if s not in ("open", "closed")]
        if bad:
            raise _bad("status must be open or closed (comma-separated)")
        start, end = _window(parse_datetime(params.get("start_date"), "start_date"),
                             parse_datetime(params.get("end_date"), "end_date"), now, MAX_SPAN)
        query = query.where(Appeal.created_at >= start, Appeal.created_at <= end)
        if codes:
            query = query.where(Appeal.topic_code.in_(codes))
        if set(statuses) == {"open"}:
            query = query.where(Appeal.status.in_(OPEN_STATUSES))
        elif set(statuses) == {"closed"}:
            query = query.where(Appeal.status.in_(DONE_STATUSES))
    query = query.order_by(Appeal.created_at.desc(), Appeal.id.desc()).limit(MAX_RESULTS)
    return list(db.session.scalars(query))


def get_request(service_request_id: str) -> Appeal:
    """One request by its id (the registration number), or 404."""
    appeal = db.session.scalar(select(Appeal).where(Appeal.reg_no == service_request_id))
    if appeal is None:
        raise Open311Error(404, f"service_request_id {service_request_id!r} was not found")
    return appeal


def public_description(appeal: Appeal) -> str | None:
    """The description, only when the request came in through Open311 (see the module notes)."""
    return appeal.description if appeal.channel == SOURCE else None


def after_photos(appeals: list[Appeal]) -> dict[int, str]:
    """appeal id -> public id of the latest "after" photo, for the Open311 requests that show one.

    Only requests that came in through Open311 (their client shows the photo with the report),
    and only once the work is resolved; one query for the whole list.
    """
    ids = [a.id for a in appeals if a.channel == SOURCE and a.status in AFTER_PHOTO_STATUSES]
    if not ids:
        return {}
    rows = db.session.execute(select(Attachment.appeal_id, Attachment.public_id)
                              .where(Attachment.appeal_id.in_(ids), Attachment.kind == "after")
                              .order_by(Attachment.id)).all()
    return {appeal_id: public_id for appeal_id, public_id in rows}  # the last one wins


def after_photo_file(public_id: str) -> Path:
    """The large derivative (no metadata) of an "after" photo an Open311 request shows; 404 otherwise."""
    row = db.session.execute(
        select(Attachment.sha256).join(Appeal, Appeal.id == Attachment.appeal_id)
        .where(Attachment.public_id == public_id, Attachment.kind == "after", Appeal.channel == SOURCE,
               Appeal.status.in_(AFTER_PHOTO_STATUSES))
    ).scalar_one_or_none()
    path = media.derived_path(media_root(), row, "large") if row else None
    if path is None or not path.is_file():
        raise Open311Error(404, "no such media")
    return path


# --- servicerequestupdates -----------------------------------------------------------------------------------


@dataclass
class Update:
    """One public update of a request (mySociety's ``request_update``)."""

    event: AppealEvent
    appeal: Appeal
    status: str  # open | closed
    description: str
    media_url: str | None  # a URL the client sent with its comment
    photo_id: str | None = None  # our "after" photo (public id), shown with the "resolved" update


def list_updates(params: MultiDict, lang: str, now: datetime) -> list[Update]:
    """Status changes and Open311 comments in a window (default: the last 24 hours; at most 90 days),
    oldest first, at most 1,000 - a poller moves ``start_date`` past the last ``updated_datetime``."""
    start, end = _window(parse_datetime(params.get("start_date"), "start_date"),
                         parse_datetime(params.get("end_date"), "end_date"), now, UPDATES_DEFAULT_SPAN)
    rows = db.session.execute(
        select(AppealEvent, Appeal)
        .join(Appeal, Appeal.id == AppealEvent.appeal_id)
        .where(AppealEvent.created_at >= start, AppealEvent.created_at <= end,
               or_(AppealEvent.to_status.is_not(None), AppealEvent.kind == COMMENT_KIND))
        .order_by(AppealEvent.id)
        .limit(MAX_RESULTS)
    ).all()
    photos = after_photos([appeal for event, appeal in rows if event.to_status == "resolved"])
    updates = []
    for event, appeal in rows:
        data = event.data or {}
        if event.kind == COMMENT_KIND:
            if data.get("source") != SOURCE:  # someone else's comment: internal
                continue
            updates.append(Update(event, appeal, open_or_closed(data.get("status", appeal.status)),
                                  data.get("description") or "", data.get("media_url")))
            continue
        description = status_note(event.to_status, lang)
        if event.to_status == "answered" and appeal.channel == SOURCE and appeal.answer_text:
            description = appeal.answer_text  # the answer goes back on the channel of origin
        photo = photos.get(appeal.id) if event.to_status == "resolved" else None
        updates.append(Update(event, appeal, open_or_closed(event.to_status), description, None, photo))
    return updates


@dataclass
class Posted:
    """What a POST servicerequestupdates did: the comment event, whether new, the events to publish."""

    event: AppealEvent
    created: bool
    events: list[AppealEvent] = field(default_factory=list)


def post_update(params: MultiDict, api_key: ApiKey, now: datetime) -> Posted:
    """Record a comment (and maybe a reopen or a close) from the client that filed the request.

    ``REOPEN`` reopens an answered or closed appeal (a dispute, the comment is the reason);
    ``FIXED``/``CLOSED`` on an answered appeal closes it (the citizen confirms). A plain
    ``OPEN`` only comments: FixMyStreet sends it with every comment on a report it still
    shows open, which may just mean it has not fetched our answer yet.
    """
    rid = _one(params, "service_request_id", max_length=32)
    if rid is None:
        raise _bad("service_request_id was not provided")
    appeal = get_request(rid)
    if appeal.api_key_id != api_key.id:
        raise Open311Error(403, "only the client that filed a request may post updates to it")
    status = (_one(params, "status", max_length=40) or "").upper().replace(" ", "_") or None
    if status is not None and status not in UPDATE_STATUSES:
        raise _bad(f"status {status!r} is not known (OPEN, CLOSED, FIXED, REOPEN, ...)")
    description = _one(params, "description", max_length=4000)
    media_url = _media_url(params)
    if description is None and media_url is None and status is None:
        raise _bad("an update needs a description, a media_url or a status")
    updated = parse_datetime(params.get("updated_datetime"), "updated_datetime")
    client_id = _one(params, "update_id", "update_id_ext", max_length=64)
    digest = hashlib.sha256(json.dumps([api_key.id, client_id, status, description, media_url, w3c(updated)],
                                       ensure_ascii=False).encode("utf-8")).hexdigest()
    existing = _find_comment(appeal, api_key, client_id, digest)
    if existing is not None:
        return Posted(event=existing, created=False)
    event = record_comment(appeal, now, api_key=api_key, client_id=client_id, digest=digest, status=status,
                           description=description, media_url=media_url, updated=updated)
    events = [event]
    if status == "REOPEN" and appeal.status in ("answered", "closed"):
        events.append(transition(appeal, "reopen", CITIZEN, now, reason=description or "REOPEN via Open311",
                                 data={"source": SOURCE, "comment_event_id": event.id}))
    elif status in ("FIXED", "CLOSED") and appeal.status == "answered":
        events.append(transition(appeal, "close", CITIZEN, now, data={"source": SOURCE,
                                                                      "comment_event_id": event.id}))
    return Posted(event=event, created=True, events=events)


def _find_comment(appeal: Appeal, api_key: ApiKey, client_id: str | None, digest: str) -> AppealEvent | None:
    # One appeal has few events: reading them beats a JSON query that differs per backend.
    for event in db.session.scalars(select(AppealEvent).where(AppealEvent.appeal_id == appeal.id,
                                                              AppealEvent.kind == COMMENT_KIND)):
        data = event.data or {}
        if data.get("source") != SOURCE or data.get("api_key_id") != api_key.id:
            continue
        if (client_id is not None and data.get("client_update_id") == client_id) or data.get("digest") == digest:
            return event
    return None


def record_comment(appeal: Appeal, now: datetime, *, api_key: ApiKey, client_id: str | None, digest: str,
                   status: str | None, description: str | None, media_url: str | None,
                   updated: datetime | None) -> AppealEvent:
    """Append the client's comment to the history (no contact details: they stay on the citizen row)."""
    appeal.updated_at = now
    return record_event(appeal, COMMENT_KIND, CITIZEN, now, data={
        "source": SOURCE, "api_key_id": api_key.id, "client_update_id": client_id, "digest": digest,
        "client_status": status, "status": appeal.status, "description": description, "media_url": media_url,
        "updated_datetime": w3c(updated),
    })


def as_open311_error(exc: ServiceError) -> Open311Error:
    """A service refusal (from the common intake) as an Open311 error."""
    return Open311Error(exc.status if exc.status in (400, 403, 404) else 400, exc.code)

"""Input schemas (pydantic). They validate requests and generate the OpenAPI document.

Error messages are not written here: each failure carries a stable ``type``
that ``server.api.errors`` translates into the requester's language.
"""

from __future__ import annotations

import base64
import math
import re
from datetime import datetime
from types import UnionType
from typing import Annotated, Literal, Union, get_args, get_origin

from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from server.models.catalog import APPEAL_TYPES, CHANNELS, URGENCIES

AppealType = Literal[APPEAL_TYPES]  # type: ignore[valid-type]
Channel = Literal[CHANNELS]  # type: ignore[valid-type]
Language = Literal["kk", "ru", "en"]
Urgency = Literal[URGENCIES]  # type: ignore[valid-type]

PHONE_RE = re.compile(r"^\+?[0-9][0-9 ()\-]{5,24}$")
# The largest id a row can have (BIGINT): a bigger number names nothing, and the database driver would
# refuse to bind it (an error, not an answer), so inputs that carry ids stop there.
MAX_ID = 2**63 - 1


def _number(value):
    """Accept JSON numbers only: a string "43.2" or a boolean is a client bug, not a coordinate."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PydanticCustomError("not_a_number", "must be a number")
    value = float(value)
    if not math.isfinite(value):
        raise PydanticCustomError("not_finite", "must be a finite number")
    return value


def _text(value):
    if not isinstance(value, str):
        raise PydanticCustomError("not_a_string", "must be text")
    return value.strip()


def _aware_time(value):
    """An ISO 8601 timestamp with an offset (a device clock): anything else names the expected format."""
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value
    try:
        moment = datetime.fromisoformat(value) if isinstance(value, str) and len(value) <= 40 else None
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise PydanticCustomError("bad_timestamp", "ISO 8601 with a time zone")
    return moment


def _sha256_hex(value):
    if not isinstance(value, str) or not re.fullmatch(r"[0-9a-fA-F]{64}", value.strip()):
        raise PydanticCustomError("bad_sha256", "64 hex digits")
    return value.strip().lower()


Number = Annotated[float, BeforeValidator(_number)]
Text = Annotated[str, BeforeValidator(_text)]
AwareTime = Annotated[datetime, BeforeValidator(_aware_time)]
Sha256Hex = Annotated[str, BeforeValidator(_sha256_hex)]


def _is_text(annotation) -> bool:
    """Whether ``annotation`` is ``str``, possibly Annotated and/or optional."""
    if annotation is str:
        return True
    if get_origin(annotation) is Annotated:
        return _is_text(get_args(annotation)[0])
    return get_origin(annotation) in (Union, UnionType) and any(_is_text(a) for a in get_args(annotation))


def _raw_max_length(model: type[BaseModel], name: str | None) -> int | None:
    """The ``max_length`` declared on field ``name`` of ``model``, if any."""
    field = model.model_fields.get(name or "")
    if field is None or not _is_text(field.annotation):
        return None  # a list's max_length counts items, not characters
    limits = [m.max_length for m in field.metadata if getattr(m, "max_length", None)]
    return min(limits) if limits else None


class Strict(BaseModel):
    """Base for inputs: unknown fields are an error (they are usually typos); text is trimmed."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    @field_validator("*", mode="before")
    @classmethod
    def _max_length_as_sent(cls, value, info: ValidationInfo):
        """A text's ``maxLength`` holds for the text as sent, as the OpenAPI document says.

        pydantic trims first and measures after, so 121 characters with a leading space passed a limit of
        120 (schemathesis found it); a client that checks the documented limit would then disagree with us.
        """
        if isinstance(value, str) and (limit := _raw_max_length(cls, info.field_name)) and len(value) > limit:
            raise PydanticCustomError("string_too_long", "String should have at most {max_length} characters",
                                      {"max_length": limit})
        return value


class CitizenIn(Strict):
    """The applicant as the operator or channel knows them."""

    name: Text | None = Field(default=None, max_length=160, description="Full name, as given.")
    phone: Text | None = Field(default=None, max_length=32, description="Phone, e.g. +7 701 123 4567.",
                               json_schema_extra={"pattern": PHONE_RE.pattern})
    language: Language = Field(default="ru", description="Language for the answer: kk, ru or en.")

    @model_validator(mode="after")
    def _phone_format(self):
        if self.phone and not PHONE_RE.match(self.phone):
            raise PydanticCustomError("bad_phone", "is not a phone number", {"field": "phone"})
        return self


# AppealIn's own checks (_where), told to the OpenAPI document too: a point (lat and lon, both) or else
# an address that is not blank; urgency only on incidents.
_APPEAL_RULES = {"allOf": [
    {"anyOf": [
        {"required": ["lat", "lon"], "properties": {"lat": {"type": "number"}, "lon": {"type": "number"}}},
        {"required": ["address"], "properties": {"lat": {"type": "null"}, "lon": {"type": "null"},
                                                 "address": {"type": "string", "pattern": r"\S"}}},
    ]},
    {"anyOf": [{"properties": {"type": {"const": "incident"}}}, {"properties": {"urgency": {"type": "null"}}}]},
]}


class AppealIn(Strict):
    """A new appeal: what it is about and where."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, json_schema_extra=_APPEAL_RULES)

    type: AppealType = Field(description="consultation, incident, proposal, complaint or gratitude.")
    topic: Text = Field(min_length=1, max_length=32, description="A topic code from GET /api/v1/topics.")
    description: Text = Field(min_length=1, max_length=4000, description="What the citizen reports.")
    lat: Number | None = Field(default=None, ge=-90, le=90, description="Latitude, WGS84.")
    lon: Number | None = Field(default=None, ge=-180, le=180, description="Longitude, WGS84.")
    accuracy_m: Number | None = Field(default=None, ge=0, le=100_000, description="Location accuracy, metres.")
    address: Text | None = Field(default=None, max_length=500, description="Address, when there is no point.")
    channel: Channel = Field(default="phone", description="Where the appeal came in.")
    urgency: Urgency | None = Field(default=None, description="For incidents: emergency, urgent or normal.")
    citizen: CitizenIn | None = None

    @model_validator(mode="after")
    def _where(self):
        if (self.lat is None) != (self.lon is None):
            missing = "lon" if self.lon is None else "lat"
            raise PydanticCustomError("coordinate_pair", "lat and lon go together", {"field": missing})
        if self.lat is None and not self.address:
            raise PydanticCustomError("location_required", "a point or an address is required", {"field": "lat"})
        if self.urgency is not None and self.type != "incident":
            raise PydanticCustomError("urgency_incident_only", "only incidents have urgency", {"field": "urgency"})
        return self


class AppealListQuery(Strict):
    """Filters for listing appeals."""

    status: str | None = Field(default=None, description="Comma-separated statuses.")
    sector: str | None = Field(default=None, description="Comma-separated sector codes.")
    type: str | None = Field(default=None, description="Comma-separated types.")
    topic: str | None = Field(default=None, description="Comma-separated topic codes.")
    bbox: str | None = Field(default=None, description="min_lon,min_lat,max_lon,max_lat")
    updated_since: str | None = Field(default=None, description="ISO 8601 timestamp with offset.")
    assignee: Literal["me"] | None = Field(default=None, description="'me': only the caller's own assignments.")
    flagged: bool | None = Field(default=None, description="true: only appeals with a field step flagged for "
                                 "the inspector (taken outside the geofence); false: only unflagged ones.")
    page: int = Field(default=1, ge=1, le=100_000)
    per_page: int = Field(default=50, ge=1, le=500)


class LookupQuery(Strict):
    """A point to look up."""

    lat: float = Field(ge=-90, le=90, allow_inf_nan=False)
    lon: float = Field(ge=-180, le=180, allow_inf_nan=False)


class TokenIn(Strict):
    """Credentials for a bearer token or a session."""

    username: Text = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)


class DevicePositionIn(Strict):
    """Where the field device says it is."""

    lat: Number = Field(ge=-90, le=90, description="Latitude, WGS84.")
    lon: Number = Field(ge=-180, le=180, description="Longitude, WGS84.")
    accuracy_m: Number | None = Field(default=None, ge=0, le=100_000,
                                      description="Accuracy radius (metres) the device reports; null if unknown.")


class TransitionIn(Strict):
    """A lifecycle step on an appeal."""

    action: Text = Field(min_length=1, max_length=32, description="An action of the state machine.")
    reason: Text | None = Field(default=None, max_length=2000)
    answer: Text | None = Field(default=None, max_length=4000, description="Answer text, for answer actions.")
    sector: Text | None = Field(default=None, max_length=16, description="Sector code, for route_manually.")
    position: DevicePositionIn | None = Field(default=None, description="Field steps: the device's fix.")
    device_time: AwareTime | None = Field(default=None, description="Field steps: the device clock when the "
                                          "step was taken (ISO 8601 with offset; the offline outbox sends later).")


class PhotoIn(Strict):
    """The form fields of a photo upload (the image itself is the ``file`` part)."""

    kind: Literal["before", "after"] = Field(description="before: as found; after: the work done.")
    sha256: Sha256Hex = Field(description="SHA-256 (hex) of the exact bytes of ``file``.")
    lat: float | None = Field(default=None, ge=-90, le=90, allow_inf_nan=False, description="Device latitude.")
    lon: float | None = Field(default=None, ge=-180, le=180, allow_inf_nan=False, description="Device longitude.")
    accuracy_m: float | None = Field(default=None, ge=0, le=100_000, allow_inf_nan=False,
                                     description="Device accuracy, metres.")
    device_time: AwareTime | None = Field(default=None, description="Device clock when the photo was taken.")

    @model_validator(mode="after")
    def _pair(self):
        if (self.lat is None) != (self.lon is None):
            raise PydanticCustomError("coordinate_pair", "lat and lon go together",
                                      {"field": "lon" if self.lon is None else "lat"})
        return self


class PositionIn(Strict):
    """A device position report."""

    lat: Number = Field(ge=-90, le=90)
    lon: Number = Field(ge=-180, le=180)
    accuracy_m: Number | None = Field(default=None, ge=0, le=100_000)
    recorded_at: str | None = Field(default=None, max_length=40, description="Device time, ISO 8601 with offset.")


class DutyIn(Strict):
    """Going on or off duty."""

    on_duty: bool


class ReassignIn(Strict):
    """Move an appeal to another staff member, or to another unit's queue."""

    staff_id: int | None = Field(default=None, ge=1, le=MAX_ID)
    unit: Text | None = Field(default=None, max_length=16)
    reason: Text | None = Field(default=None, max_length=2000)

    @model_validator(mode="after")
    def _one_target(self):
        if (self.staff_id is None) == (self.unit is None):
            raise PydanticCustomError("one_target", "give staff_id or unit", {"field": "staff_id"})
        return self


class StaffPatch(Strict):
    """Admin changes to an account."""

    unit: Text | None = Field(default=None, max_length=16)
    active: bool | None = None
    shift: Text | None = Field(default=None, max_length=8)
    language: Language | None = None


class EventsQuery(Strict):
    """Catch-up after reconnecting."""

    after: int = Field(default=0, ge=0, le=MAX_ID)
    limit: int = Field(default=500, ge=1, le=2000)


class MapQuery(Strict):
    """Filters for the live map (comma-separated lists)."""

    bbox: str | None = Field(default=None, description="min_lon,min_lat,max_lon,max_lat")
    status: str | None = None
    type: str | None = None
    topic: str | None = None
    sector: str | None = None


class SimilarQuery(Strict):
    """A point and topic to look for look-alike open appeals."""

    lat: float = Field(ge=-90, le=90, allow_inf_nan=False)
    lon: float = Field(ge=-180, le=180, allow_inf_nan=False)
    topic: str = Field(min_length=1, max_length=32)


def _push_key(length: int, point: bool = False):
    def check(value):
        """A base64url key of ``length`` bytes (an uncompressed P-256 point when ``point``)."""
        if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9_\-]+={0,2}", value.strip()):
            raise PydanticCustomError("bad_push_key", "is not a valid push subscription key")
        value = value.strip().rstrip("=")
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        if len(raw) != length or (point and raw[0] != 4):
            raise PydanticCustomError("bad_push_key", "is not a valid push subscription key")
        if point:
            try:
                ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)
            except ValueError:
                raise PydanticCustomError("bad_push_key", "is not a valid push subscription key") from None
        return value

    return check


class PushKeysIn(Strict):
    """The subscription's keys, as ``PushSubscription.toJSON().keys`` gives them (base64url)."""

    p256dh: Annotated[str, BeforeValidator(_push_key(65, point=True))] = Field(
        description="The browser's P-256 public key (uncompressed point).")
    auth: Annotated[str, BeforeValidator(_push_key(16))] = Field(description="The 16-byte auth secret.")


class PushSubscriptionIn(Strict):
    """A browser push subscription (``PushSubscription.toJSON()``)."""

    endpoint: Text = Field(min_length=1, max_length=1024, description="The push service URL (https).")
    keys: PushKeysIn
    expirationTime: int | None = Field(default=None, description="Sent by browsers; ignored.")  # noqa: N815


class PushEndpointIn(Strict):
    """Which subscription to remove."""

    endpoint: Text = Field(min_length=1, max_length=1024)


def _blank_none(value):
    """An empty form field means "not given" (a browser sends every input of a form)."""
    if isinstance(value, str) and not value.strip():
        return None
    return value


def _sha256_list(value):
    """Comma-separated SHA-256 hex digests (one per photo part, in order)."""
    if value is None:
        return []
    if not isinstance(value, str):
        raise PydanticCustomError("bad_sha256", "64 hex digits")
    return [_sha256_hex(part) for part in value.split(",") if part.strip()]


FormFloat = Annotated[float | None, BeforeValidator(_blank_none)]
FormText = Annotated[str | None, BeforeValidator(_blank_none)]


class ReportIn(Strict):
    """The citizen web report (multipart form fields; the photos are the ``photo`` parts)."""

    type: AppealType = Field(description="consultation, incident, proposal, complaint or gratitude.")
    topic: Text = Field(min_length=1, max_length=32, description="A topic code from GET /api/v1/topics.")
    description: Text = Field(min_length=1, max_length=4000, description="What the citizen reports.")
    lat: FormFloat = Field(default=None, ge=-90, le=90, allow_inf_nan=False, description="Latitude, WGS84.")
    lon: FormFloat = Field(default=None, ge=-180, le=180, allow_inf_nan=False, description="Longitude, WGS84.")
    accuracy_m: FormFloat = Field(default=None, ge=0, le=100_000, allow_inf_nan=False,
                                  description="Accuracy of the device fix, metres (empty when the pin was moved).")
    address: FormText = Field(default=None, max_length=500, description="Address, when there is no point.")
    name: FormText = Field(default=None, max_length=160, description="Optional: the citizen's name.")
    phone: FormText = Field(default=None, max_length=32, description="Optional: a phone number for a call back.")
    language: Language = Field(default="ru", description="Language for the answer: kk, ru or en.")
    consent: bool = Field(default=False, description="The citizen agreed to the processing of the report.")
    consent_version: FormText = Field(default=None, max_length=32, description="The consent text shown (its version).")
    photos_sha256: Annotated[list[str], BeforeValidator(_sha256_list)] = Field(
        default_factory=list, description="SHA-256 (hex) of each ``photo`` part, comma-separated, in order.")

    @model_validator(mode="after")
    def _where(self):
        if (self.lat is None) != (self.lon is None):
            raise PydanticCustomError("coordinate_pair", "lat and lon go together",
                                      {"field": "lon" if self.lon is None else "lat"})
        if self.lat is None and not self.address:
            raise PydanticCustomError("location_required", "a point or an address is required", {"field": "lat"})
        if self.phone and not PHONE_RE.match(self.phone):
            raise PydanticCustomError("bad_phone", "is not a phone number", {"field": "phone"})
        return self


class FeedbackIn(Strict):
    """The citizen's verdict on the answer: confirm or dispute the fix, and a 1-5 rating."""

    verdict: Literal["confirm", "dispute"] = Field(description="confirm: fixed; dispute: not fixed (reopens).")
    rating: int | None = Field(default=None, ge=1, le=5, strict=True, description="1 (bad) to 5 (excellent).")
    comment: Text | None = Field(default=None, max_length=2000, description="Required for a dispute: what is wrong.")

    @model_validator(mode="after")
    def _dispute_says_why(self):
        if self.verdict == "dispute" and not self.comment:
            raise PydanticCustomError("dispute_comment_required", "say what is not fixed", {"field": "comment"})
        return self

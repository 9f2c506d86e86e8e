"""Input schemas (pydantic). They validate requests and generate the OpenAPI document.

Error messages are not written here: each failure carries a stable ``type``
that ``server.api.errors`` translates into the requester's language.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from server.models.catalog import APPEAL_TYPES, CHANNELS, URGENCIES

AppealType = Literal[APPEAL_TYPES]  # type: ignore[valid-type]
Channel = Literal[CHANNELS]  # type: ignore[valid-type]
Language = Literal["kk", "ru", "en"]
Urgency = Literal[URGENCIES]  # type: ignore[valid-type]

PHONE_RE = re.compile(r"^\+?[0-9][0-9 ()\-]{5,24}$")


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


Number = Annotated[float, BeforeValidator(_number)]
Text = Annotated[str, BeforeValidator(_text)]


class Strict(BaseModel):
    """Base for inputs: unknown fields are an error (they are usually typos)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class CitizenIn(Strict):
    """The applicant as the operator or channel knows them."""

    name: Text | None = Field(default=None, max_length=160, description="Full name, as given.")
    phone: Text | None = Field(default=None, max_length=32, description="Phone, e.g. +7 701 123 4567.")
    language: Language = Field(default="ru", description="Language for the answer: kk, ru or en.")

    @model_validator(mode="after")
    def _phone_format(self):
        if self.phone and not PHONE_RE.match(self.phone):
            raise PydanticCustomError("bad_phone", "is not a phone number", {"field": "phone"})
        return self


class AppealIn(Strict):
    """A new appeal: what it is about and where."""

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


class TransitionIn(Strict):
    """A lifecycle step on an appeal."""

    action: Text = Field(min_length=1, max_length=32, description="An action of the state machine.")
    reason: Text | None = Field(default=None, max_length=2000)
    answer: Text | None = Field(default=None, max_length=4000, description="Answer text, for answer actions.")
    sector: Text | None = Field(default=None, max_length=16, description="Sector code, for route_manually.")


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

    staff_id: int | None = Field(default=None, ge=1)
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

    after: int = Field(default=0, ge=0)
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

"""Appeals, their append-only event history, and the registration-number counter."""

from __future__ import annotations

from datetime import datetime

from geoalchemy2 import Geometry
from sqlalchemy import (
    JSON,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    event,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from server.extensions import db
from server.models.catalog import APPEAL_TYPES, CHANNELS, URGENCIES, Topic
from server.models.citizen import Citizen
from server.models.sector import Sector, Unit
from server.models.staff import Staff
from server.models.types import UTCDateTime, utcnow

STATUSES = (
    "registered",
    "routed",
    "unrouted",
    "assigned",
    "accepted",
    "en_route",
    "on_site",
    "resolved",
    "verified",
    "answered",
    "closed",
    "reopened",
    "rejected",
    "duplicate",
    "forwarded",
)
# Statuses after which the centre owes the citizen nothing more (until a dispute reopens the appeal).
DONE_STATUSES = ("answered", "closed", "rejected", "duplicate", "forwarded")
# Statuses in which the city still owes the citizen something.
OPEN_STATUSES = tuple(s for s in STATUSES if s not in DONE_STATUSES)


def _in(column: str, values) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Appeal(db.Model):
    """One citizen request, from registration to the answer."""

    __tablename__ = "appeal"
    __table_args__ = (
        CheckConstraint(_in("type", APPEAL_TYPES), name="type"),
        CheckConstraint(_in("channel", CHANNELS), name="channel"),
        CheckConstraint(_in("status", STATUSES), name="status"),
        CheckConstraint(f"urgency IS NULL OR {_in('urgency', URGENCIES)}", name="urgency"),
        Index("ix_appeal_status_sector", "status", "sector_id"),
        Index("ix_appeal_topic_status", "topic_code", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    reg_no: Mapped[str] = mapped_column(String(32), unique=True)
    # Unguessable, separate from the number: the citizen's tracking link.
    tracking_token: Mapped[str] = mapped_column(String(64), unique=True)
    type: Mapped[str] = mapped_column(String(16))
    topic_code: Mapped[str] = mapped_column(ForeignKey("topic.code"))
    urgency: Mapped[str | None] = mapped_column(String(16), nullable=True)
    description: Mapped[str] = mapped_column(Text)
    channel: Mapped[str] = mapped_column(String(16))
    citizen_id: Mapped[int | None] = mapped_column(ForeignKey("citizen.id"), nullable=True, index=True)
    location = mapped_column(Geometry("POINT", srid=4326, spatial_index=True), nullable=True)
    accuracy_m: Mapped[float | None] = mapped_column(Float, nullable=True)
    address: Mapped[str | None] = mapped_column(String(500), nullable=True)
    sector_id: Mapped[int | None] = mapped_column(ForeignKey("sector.id"), nullable=True)
    route_method: Mapped[str | None] = mapped_column(String(16), nullable=True)
    route_distance_m: Mapped[float | None] = mapped_column(Float, nullable=True)
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("unit.id"), nullable=True, index=True)
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"), nullable=True, index=True)
    duplicate_of_id: Mapped[int | None] = mapped_column(ForeignKey("appeal.id"), nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="registered")
    answer_text: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    assigned_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Set when an assignment not accepted in time was escalated (so it is escalated once).
    escalated_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Set when a field step was taken outside the geofence: the inspector must look at it.
    flagged_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True, index=True)
    # Set when the assignee was warned that the SLA due time is near (so they are warned once).
    sla_warned_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # The stored SLA state (on_time | at_risk | breached | met), set by the SLA tick and at close.
    sla_state: Mapped[str | None] = mapped_column(String(16), nullable=True)
    # When the tick first marked the appeal at risk / breached (each transition is marked once).
    sla_at_risk_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    sla_breached_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # The due time before the first extension: extensions total at most 2 months beyond it.
    original_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Set while the appeal waits for the citizen's information: the SLA clock is stopped.
    paused_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(128), unique=True, nullable=True)
    request_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"), nullable=True)
    # Open311 clients: which key filed it, the device id and the service attributes they sent.
    api_key_id: Mapped[int | None] = mapped_column(ForeignKey("api_key.id"), nullable=True)
    device_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    attributes: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    media_url: Mapped[str | None] = mapped_column(String(1024), nullable=True)

    topic: Mapped[Topic] = relationship(lazy="joined")
    sector: Mapped[Sector | None] = relationship(lazy="joined")
    unit: Mapped[Unit | None] = relationship()
    citizen: Mapped[Citizen | None] = relationship()
    assignee: Mapped[Staff | None] = relationship(foreign_keys=[assignee_id])
    events: Mapped[list[AppealEvent]] = relationship(
        back_populates="appeal", order_by="AppealEvent.id", lazy="select", viewonly=True
    )

    @property
    def is_open(self) -> bool:
        """True while the centre still owes the citizen an answer."""
        return self.status in OPEN_STATUSES


class AppealEvent(db.Model):
    """One step of an appeal's life. Append-only: never updated, never deleted.

    The ORM refuses updates and deletes (below) and the database refuses them
    too (triggers created by the migration), so history cannot be rewritten.
    """

    __tablename__ = "appeal_event"
    # Analytics look events up by kind (timeliness, extensions, first-contact answers).
    __table_args__ = (Index("ix_appeal_event_kind_appeal", "kind", "appeal_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    appeal_id: Mapped[int] = mapped_column(ForeignKey("appeal.id"), index=True)
    kind: Mapped[str] = mapped_column(String(48))
    from_status: Mapped[str | None] = mapped_column(String(16), nullable=True)
    to_status: Mapped[str | None] = mapped_column(String(16), nullable=True)
    actor_kind: Mapped[str] = mapped_column(String(16))  # staff | citizen | system
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    data: Mapped[dict] = mapped_column(JSON, default=dict)

    appeal: Mapped[Appeal] = relationship(back_populates="events")
    actor: Mapped[Staff | None] = relationship()


class RegCounter(db.Model):
    """The last registration number handed out, per prefix and year."""

    __tablename__ = "reg_counter"

    prefix: Mapped[str] = mapped_column(String(8), primary_key=True)
    year: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    value: Mapped[int] = mapped_column(Integer, default=0)


class AppendOnlyError(RuntimeError):
    """Raised when code tries to change or remove an appeal event."""


@event.listens_for(AppealEvent, "before_update")
def _refuse_update(mapper, connection, target):
    raise AppendOnlyError("appeal events are append-only")


@event.listens_for(AppealEvent, "before_delete")
def _refuse_delete(mapper, connection, target):
    raise AppendOnlyError("appeal events are append-only")

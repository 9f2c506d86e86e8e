"""Centre and unit staff, their roles, and API tokens."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from server.extensions import db
from server.models.sector import Unit
from server.models.types import UTCDateTime, utcnow

# Roles of the seed document (centre staff) plus the admin and the unit roles.
CENTRE_ROLES = ("operator", "dispatcher", "inspector", "qc_analyst", "analyst", "methodologist", "pr_manager")
UNIT_ROLES = ("unit_head", "field_staff")
ROLES = ("admin", *CENTRE_ROLES, *UNIT_ROLES)


class Staff(db.Model):
    """A person who logs in: centre staff, unit staff or an administrator."""

    __tablename__ = "staff"
    __table_args__ = (
        CheckConstraint(f"role IN ({', '.join(repr(r) for r in ROLES)})", name="role"),
        CheckConstraint("language IN ('kk', 'ru', 'en')", name="language"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    full_name: Mapped[str] = mapped_column(String(160), default="")
    role: Mapped[str] = mapped_column(String(16))
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("unit.id"), nullable=True, index=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    language: Mapped[str] = mapped_column(String(2), default="ru")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Bumped to invalidate every session and token of this person (disable, move, password change).
    auth_epoch: Mapped[int] = mapped_column(Integer, default=0)
    shift_code: Mapped[str | None] = mapped_column(String(8), nullable=True)  # a Shift.code
    on_duty: Mapped[bool] = mapped_column(Boolean, default=False)
    duty_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    unit: Mapped[Unit | None] = relationship(lazy="joined")

    # Flask-Login protocol -------------------------------------------------
    @property
    def is_authenticated(self) -> bool:
        """Every loaded Staff row is an authenticated user."""
        return True

    @property
    def is_active(self) -> bool:
        """Disabled staff cannot log in."""
        return bool(self.active)

    @property
    def is_anonymous(self) -> bool:
        """Staff are never anonymous."""
        return False

    def get_id(self) -> str:
        """Session id: the epoch is part of it, so bumping it ends old sessions."""
        return f"{self.id}:{self.auth_epoch}"


class ApiToken(db.Model):
    """A bearer token for API clients; only its SHA-256 is stored."""

    __tablename__ = "api_token"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    auth_epoch: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    staff: Mapped[Staff] = relationship(lazy="joined")

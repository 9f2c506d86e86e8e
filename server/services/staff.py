"""Staff accounts, passwords and bearer tokens."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy import select
from werkzeug.security import check_password_hash, generate_password_hash

from server.extensions import db
from server.models import ROLES, UNIT_ROLES, ApiToken, Shift, Staff, Unit
from server.services import audit
from server.services.errors import Unprocessable

# Where a browser login keeps its server-side token, inside the signed session (a key name, not a secret).
SESSION_TOKEN_KEY = "auth_token"  # noqa: S105

# A valid hash to compare against when the user does not exist, so timing does not reveal usernames.
_DUMMY_HASH = generate_password_hash("not-a-real-password")


def create_staff(username: str, role: str, password: str, *, unit_code: str | None = None,
                 full_name: str = "", language: str = "ru", now: datetime, actor=None) -> Staff:
    """Create a staff account; unit roles need a unit, centre roles must not have one (audited: ``actor``)."""
    if role not in ROLES:
        raise Unprocessable("unknown_role", field="role", role=role)
    if len(password) < 8:
        raise Unprocessable("password_too_short", field="password")
    if db.session.scalar(select(Staff).where(Staff.username == username)) is not None:
        raise Unprocessable("username_taken", field="username")
    unit = None
    if role in UNIT_ROLES:
        if not unit_code:
            raise Unprocessable("unit_required", field="unit")
        unit = db.session.scalar(select(Unit).where(Unit.code == unit_code))
        if unit is None:
            raise Unprocessable("unknown_unit", field="unit", unit=unit_code)
    staff = Staff(username=username, role=role, unit=unit, full_name=full_name, language=language,
                  password_hash=generate_password_hash(password), created_at=now)
    db.session.add(staff)
    db.session.flush()
    audit.record("staff.create", actor, now, object_type="staff", object_id=staff.id,
                 data={"username": username, "role": role, "unit": unit_code if unit else None, "active": True})
    return staff


def authenticate(username: str, password: str, *, now: datetime, via: str) -> Staff | None:
    """The active staff member with these credentials, or None; the attempt is audited either way.

    The audit entry is flushed, not committed: on failure the caller commits before answering.
    """
    staff = db.session.scalar(select(Staff).where(Staff.username == username))
    if staff is None:
        check_password_hash(_DUMMY_HASH, password)
        ok, why = False, "unknown_user"
    elif not check_password_hash(staff.password_hash, password):
        ok, why = False, "bad_password"
    elif not staff.active:
        ok, why = False, "inactive"
    else:
        ok, why = True, None
    actor = staff if staff is not None else audit.Who("anonymous", None, username[:64])
    audit.record("login.success" if ok else "login.failure", actor, now, object_type="staff",
                 object_id=staff.id if staff else None, data={"via": via, **({"why": why} if why else {})})
    return staff if ok else None


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(staff: Staff, now: datetime, ttl_hours: int) -> tuple[str, ApiToken]:
    """A new bearer token (returned once, stored only as its hash)."""
    token = secrets.token_urlsafe(32)
    row = ApiToken(staff_id=staff.id, token_hash=_hash(token), auth_epoch=staff.auth_epoch, created_at=now,
                   expires_at=now + timedelta(hours=ttl_hours))
    db.session.add(row)
    db.session.flush()
    return token, row


def shift_hours(staff: Staff, default_hours: int) -> int:
    """How long one shift of ``staff`` lasts (their shift's hours; ``default_hours`` without a shift)."""
    shift = db.session.get(Shift, staff.shift_code) if staff.shift_code else None
    return shift.hours if shift is not None and shift.hours else default_hours


def find_token(token: str | None) -> ApiToken | None:
    """The ApiToken row of a raw bearer or session token (valid or not), or None."""
    if not token:
        return None
    return db.session.scalar(select(ApiToken).where(ApiToken.token_hash == _hash(token)))


def staff_for_token(token: str, now: datetime) -> Staff | None:
    """The staff member a bearer token belongs to, if it is valid now."""
    row = find_token(token)
    if row is None or row.revoked_at is not None or row.expires_at <= now:
        return None
    staff = row.staff
    if not staff.active or staff.auth_epoch != row.auth_epoch:
        return None
    return staff


def revoke_token(token: str, now: datetime) -> bool:
    """Revoke one bearer token; True if it existed."""
    row = find_token(token)
    if row is None:
        return False
    row.revoked_at = now
    return True


def load_session_user(session_id: str, session_token: str | None, now: datetime) -> Staff | None:
    """The staff member for a browser session: the id ``"<id>:<epoch>"`` and its login token must agree."""
    try:
        staff_id, epoch = (int(p) for p in session_id.split(":", 1))
    except (ValueError, AttributeError):
        return None
    if not session_token:
        return None
    staff = staff_for_token(session_token, now)
    if staff is None or staff.id != staff_id or staff.auth_epoch != epoch:
        return None
    return staff

"""Which rooms a person belongs to, and which rooms an appeal's events go to. Decided by the server only."""

from __future__ import annotations

from sqlalchemy import select

from server.extensions import db
from server.models import Appeal, Sector, Staff
from server.services import routing
from server.services.appeals import CITY_WIDE

CENTRE = "centre"


def user_room(staff_id: int) -> str:
    """The private room of one staff member (all their devices)."""
    return f"user:{staff_id}"


def sector_codes_of_unit(unit_id: int | None) -> list[str]:
    """The codes of the current sectors served by a unit."""
    if unit_id is None:
        return []
    version = routing.current_version()
    return list(db.session.scalars(select(Sector.code).where(Sector.version == version, Sector.unit_id == unit_id)))


def rooms_for(staff: Staff) -> list[str]:
    """The rooms a connection of ``staff`` joins: ``centre`` or its unit's ``sector:<code>``, and ``user:<id>``."""
    rooms = [user_room(staff.id)]
    if staff.role in CITY_WIDE:
        rooms.append(CENTRE)
    elif staff.role in ("unit_head", "field_staff"):
        rooms += [f"sector:{code}" for code in sector_codes_of_unit(staff.unit_id)]
    return rooms


def rooms_for_appeal(appeal: Appeal, extra_unit_ids: tuple[int, ...] = (), codes_of_unit=None) -> list[str]:
    """Where an appeal's event goes: the centre, its unit's sector rooms, and its assignee.

    ``codes_of_unit`` replaces :func:`sector_codes_of_unit` (publish passes codes it looked up earlier).
    """
    codes_of_unit = codes_of_unit or sector_codes_of_unit
    rooms = [CENTRE]
    for unit_id in {appeal.unit_id, *extra_unit_ids} - {None}:
        rooms += [f"sector:{code}" for code in codes_of_unit(unit_id)]
    if appeal.assignee_id:
        rooms.append(user_room(appeal.assignee_id))
    return rooms

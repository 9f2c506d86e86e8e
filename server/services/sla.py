"""SLA deadlines. Defaults follow the Administrative Procedural Code, Art. 76.

Consultation, complaint and proposal: 15 working days. Incidents by urgency:
emergency 4 hours, urgent 24 hours, normal 3 working days. Gratitude: none.
(The SLA issue replaces these defaults with an admin-editable policy table.)
"""

from __future__ import annotations

from datetime import datetime, timedelta

from server.services.calendar import add_working_days

WORKING_DAYS = {"consultation": 15, "complaint": 15, "proposal": 15}
INCIDENT_HOURS = {"emergency": 4, "urgent": 24}
INCIDENT_NORMAL_WORKING_DAYS = 3


def due_at(appeal_type: str, topic: str, urgency: str | None, registered_at: datetime) -> datetime | None:
    """When the appeal must be answered, or None when it has no deadline (gratitude)."""
    if appeal_type == "gratitude":
        return None
    if appeal_type == "incident":
        hours = INCIDENT_HOURS.get(urgency or "normal")
        if hours is not None:
            return registered_at + timedelta(hours=hours)
        return add_working_days(registered_at, INCIDENT_NORMAL_WORKING_DAYS)
    return add_working_days(registered_at, WORKING_DAYS.get(appeal_type, 15))

"""All models, imported here so Alembic and the app see one metadata."""

from server.models.appeal import OPEN_STATUSES, STATUSES, Appeal, AppealEvent, AppendOnlyError, RegCounter
from server.models.audit import AuditEntry, AuditPending
from server.models.catalog import APPEAL_TYPES, CHANNELS, LANGUAGES, URGENCIES, Topic
from server.models.channels import ApiKey, Conversation, Feedback, InboundUpdate, MediaFetch, ReplyTemplate
from server.models.citizen import Citizen
from server.models.delivery import OutboundMessage, PushSubscription
from server.models.duty import PositionFix, Shift, StaffPosition
from server.models.evidence import PHOTO_KINDS, Attachment, ClientAction
from server.models.qc import CallbackSample
from server.models.sector import Sector, SectorSet, Unit
from server.models.sla import CALENDAR_KINDS, SLA_MODES, CalendarOverride, SlaPolicy
from server.models.staff import CENTRE_ROLES, ROLES, UNIT_ROLES, ApiToken, Staff

__all__ = [
    "APPEAL_TYPES",
    "CALENDAR_KINDS",
    "CENTRE_ROLES",
    "CHANNELS",
    "LANGUAGES",
    "OPEN_STATUSES",
    "PHOTO_KINDS",
    "ROLES",
    "SLA_MODES",
    "STATUSES",
    "UNIT_ROLES",
    "URGENCIES",
    "ApiKey",
    "ApiToken",
    "Appeal",
    "AppealEvent",
    "AppendOnlyError",
    "Attachment",
    "AuditEntry",
    "AuditPending",
    "CalendarOverride",
    "CallbackSample",
    "Citizen",
    "ClientAction",
    "Conversation",
    "Feedback",
    "InboundUpdate",
    "MediaFetch",
    "OutboundMessage",
    "PositionFix",
    "PushSubscription",
    "RegCounter",
    "ReplyTemplate",
    "Sector",
    "SectorSet",
    "Shift",
    "SlaPolicy",
    "Staff",
    "StaffPosition",
    "Topic",
    "Unit",
]

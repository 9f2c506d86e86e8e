"""Every user-facing error message, translatable, keyed by a stable code.

Codes come from services (``ServiceError.code``), from pydantic (``error.type``)
and from the HTTP layer. Clients may switch on the code; people read the message.
"""

from __future__ import annotations

from flask_babel import gettext
from flask_babel import lazy_gettext as _l

MESSAGES = {
    # HTTP layer
    "bad_request": _l("The request is not valid."),
    "malformed_json": _l("The request body is not valid JSON."),
    "json_object_required": _l("The request body must be a JSON object."),
    "unsupported_media_type": _l("Send the request body as application/json."),
    "multipart_required": _l("Send this request as multipart/form-data."),
    "body_too_large": _l("The request body is too large (at most %(limit)s bytes)."),
    "not_found": _l("Not found."),
    "method_not_allowed": _l("This method is not allowed here."),
    "unauthorized": _l("Log in first: send a session cookie or an Authorization: Bearer token."),
    "forbidden": _l("Your role is not allowed to do this."),
    "csrf_failed": _l("The form has expired or the CSRF token is missing; reload the page and try again."),
    "rate_limited": _l("Too many requests; try again later."),
    "login_rate_limited": _l("Too many login attempts; try again in %(minutes)s min."),
    "cross_origin": _l("Requests from another site are refused; use the page on this site."),
    "server_error": _l("Something went wrong on our side; the request was not saved. Try again."),
    "service_unavailable": _l("The service is temporarily unavailable; try again shortly."),
    "validation_failed": _l("The request has errors; see the fields."),
    "bad_credentials": _l("Wrong username or password."),
    "bad_idempotency_key": _l("Idempotency-Key must be 1 to 128 visible ASCII characters."),
    # Field-level (pydantic types and our custom ones)
    "missing": _l("is required"),
    "extra_forbidden": _l("is not a known field"),
    "literal_error": _l("must be one of: %(expected)s"),
    "string_too_short": _l("must not be empty"),
    "string_too_long": _l("is too long (at most %(max_length)s characters)"),
    "greater_than_equal": _l("must be at least %(ge)s"),
    "less_than_equal": _l("must be at most %(le)s"),
    "greater_than": _l("must be greater than %(gt)s"),
    "less_than": _l("must be less than %(lt)s"),
    "not_a_number": _l("must be a number"),
    "not_finite": _l("must be a finite number"),
    "finite_number": _l("must be a finite number"),
    "float_parsing": _l("must be a number"),
    "float_type": _l("must be a number"),
    "int_parsing": _l("must be a whole number"),
    "int_type": _l("must be a whole number"),
    "int_from_float": _l("must be a whole number"),
    "not_a_string": _l("must be text"),
    "string_type": _l("must be text"),
    "model_type": _l("must be an object"),
    "model_attributes_type": _l("must be an object"),
    "dict_type": _l("must be an object"),
    "bad_phone": _l("is not a phone number"),
    "coordinate_pair": _l("lat and lon must be given together"),
    "location_required": _l("give a point (lat and lon) or an address"),
    "urgency_incident_only": _l("only incidents have an urgency"),
    # Services
    "unknown_topic": _l("Unknown topic “%(topic)s”; see GET /api/v1/topics."),
    "idempotency_key_reused": _l("This Idempotency-Key was already used for a different request."),
    "appeal_not_found": _l("No such appeal."),
    "unknown_action": _l("Unknown action “%(action)s”."),
    "role_not_allowed": _l("Your role (%(role)s) may not take the action “%(action)s”."),
    "illegal_transition": _l("The action “%(action)s” is not allowed while the appeal is “%(status)s”."),
    "action_not_for_type": _l("The action “%(action)s” does not apply to a %(type)s."),
    "reason_required": _l("The action “%(action)s” needs a reason."),
    "answer_required": _l("Write the answer to the citizen."),
    "callback_not_found": _l("No such call-back."),
    "callback_recorded": _l("The outcome of this call-back is already recorded."),
    "satisfaction_required": _l("Say how satisfied (1-5) the citizen is."),
    "sector_required": _l("Choose a sector."),
    "unknown_sector": _l("Unknown sector “%(sector)s”."),
    "unknown_filter_value": _l("Unknown value “%(value)s”."),
    "bad_bbox": _l("bbox must be min_lon,min_lat,max_lon,max_lat within the world's bounds."),
    "bad_timestamp": _l("Use an ISO 8601 timestamp with a time zone, e.g. 2026-01-31T09:00:00+05:00."),
    "unknown_role": _l("Unknown role “%(role)s”."),
    "password_too_short": _l("The password must have at least 8 characters."),
    "username_taken": _l("This username is taken."),
    "unit_required": _l("Unit staff need a unit."),
    "unknown_unit": _l("Unknown unit “%(unit)s”."),
    "invalid_sector_file": _l("The sector file is not valid: %(errors)s"),
    "no_sector_set": _l("No sector set is loaded yet."),
    "not_your_assignment": _l("This appeal is not assigned to you."),
    "unknown_assignee": _l("Choose an active field staff member."),
    "other_unit": _l("That person works in another unit."),
    "only_dispatcher_moves_units": _l("Only the dispatcher moves appeals between units."),
    "unknown_shift": _l("Unknown shift."),
    "staff_not_found": _l("No such staff member."),
    "position_too_frequent": _l("Positions are accepted at most every %(seconds)s seconds."),
    "one_target": _l("give either staff_id or unit"),
    "citizen_conflict": _l("The applicant's record is being changed by another request; try again."),
    # Field steps and photo evidence
    "bad_client_uuid": _l("Idempotency-Key must be a UUID (the id the field app gave this action)."),
    "idempotency_mismatch": _l("This Idempotency-Key was already used for a different request."),
    "appeal_changed": _l("The appeal has changed meanwhile (it is now “%(status)s”); this step no longer applies."),
    "geofence_reason_required": _l("You are not at the appeal's location: say why you take this step from here."),
    "after_photo_required": _l("Add an “after” photo of the work before resolving."),
    "bad_sha256": _l("must be the SHA-256 of the file as 64 hex digits"),
    "bool_parsing": _l("must be true or false"),
    "bool_type": _l("must be true or false"),
    "file_required": _l("Attach the photo as the “file” part of the form."),
    "unsupported_image_type": _l("Only JPEG, PNG and WebP photos are accepted."),
    "image_too_large": _l("The photo is too large (at most %(limit)s bytes)."),
    "image_too_many_pixels": _l("The photo has too many pixels (at most %(limit)s)."),
    "image_corrupt": _l("The photo is damaged or incomplete; take it again."),
    "image_trailing_data": _l("The file carries extra data after the image; send the photo as the app took it."),
    "hash_mismatch": _l("The photo arrived damaged (its SHA-256 does not match); send it again."),
    "photo_not_found": _l("No such photo."),
    "original_restricted": _l("Only checkers, dispatchers, the unit head and the uploader may download the original."),
    # The citizen web report and tracking page
    "consent_required": _l("Tick the consent box: we cannot accept the report without it."),
    "consent_outdated": _l("The consent text has changed; reload the page and read it again."),
    "report_key_required": _l("Idempotency-Key is required: a UUID the page chose for this report."),
    "too_many_photos": _l("At most %(limit)s photos."),
    "photo_hash_count": _l("Send one SHA-256 for each photo, in the same order."),
    "report_rate_limited": _l("Too many reports from your connection; try again in %(minutes)s min."),
    "feedback_not_open": _l("There is no answer to confirm or dispute yet."),
    "feedback_window_closed": _l("The %(days)s days to confirm or dispute this answer are over; call 109."),
    "feedback_already_given": _l("You have already given your verdict on this answer."),
    "dispute_comment_required": _l("say what is still not fixed"),
    # Open311 API keys (admin)
    "api_key_name_invalid": _l("Give the key a name of 1 to 120 characters."),
    "api_key_not_found": _l("No such API key."),
    # Web Push
    "bad_push_key": _l("is not a valid push subscription key"),
    "push_endpoint_not_allowed": _l("This push address is not allowed: it must be an https:// address of a known "
                                    "push service."),
    "push_login_required": _l("Log in again on this device to receive notifications."),
    # Chat channel webhooks and the citizens' reply templates
    "webhook_forbidden": _l("This webhook call is not authenticated."),
    "template_empty": _l("The template text is empty."),
    "template_too_long": _l("The template is too long (at most %(limit)s characters)."),
    "template_syntax": _l("The template has an unmatched { or }; write {{ and }} for literal braces."),
    "unknown_placeholder": _l("Unknown placeholder {%(name)s}; use only %(allowed)s."),
    "template_not_found": _l("This template has no saved text; the built-in one is in use."),
    # SLA regulation: policies, calendar, the clock rules
    "sla_amount_required": _l("Give the number of working days or hours (or choose no deadline)."),
    "sla_policy_not_found": _l("No such SLA policy."),
    "calendar_day_not_found": _l("This day has no calendar override."),
    "appeal_has_no_deadline": _l("This appeal has no deadline."),
    "extension_too_short": _l("An extension is at least one working day."),
    "extension_after_due": _l("The deadline has already passed; it can no longer be extended."),
    "extension_beyond_limit": _l("Extensions may total at most 2 months; the latest possible due time is "
                                 "%(limit)s."),
    "extension_notice_unavailable": _l("The citizen cannot be sent a message about this extension; say in "
                                       "notice_note how they are told."),
    "already_paused": _l("The clock of this appeal is already paused."),
    "not_paused": _l("The clock of this appeal is not paused."),
    # The analytics dashboard and its exports
    "invalid_date": _l("The date is not valid; use YYYY-MM-DD."),
    "invalid_period": _l("The period must be day, week or month."),
    "invalid_dimension": _l("Counts can be grouped by type, topic, sector, channel or status."),
    "invalid_view": _l("Unknown dashboard view."),
}


def message(code: str, **params) -> str:
    """The message for ``code`` in the current locale, with ``params`` filled in."""
    template = MESSAGES.get(code)
    if template is None:
        return gettext("The request is not valid.")
    text = str(template)
    try:
        return text % params if params else text
    except (KeyError, TypeError, ValueError):
        return text

// Fixed vocabularies of the appeal model (server/models): types, statuses, urgencies, channels.
// Their labels live in the i18n catalogs under type.*, status.*, urgency.*, channel.*.

export const TYPES = ["consultation", "incident", "proposal", "complaint", "gratitude"];
export const URGENCIES = ["emergency", "urgent", "normal"];
export const CHANNELS = ["phone", "web", "telegram", "whatsapp", "instagram", "facebook", "open311"];
export const OPEN_STATUSES = ["registered", "routed", "unrouted", "assigned", "accepted", "en_route", "on_site",
  "resolved", "verified", "reopened"];
export const DONE_STATUSES = ["answered", "closed", "rejected", "duplicate", "forwarded"];
/** Types an operator may answer on the first call and close. */
export const ANSWER_NOW_TYPES = ["consultation", "gratitude"];

/** Whether an appeal in ``status`` still belongs on the live map. */
export function isOpen(status) {
  return OPEN_STATUSES.includes(status);
}

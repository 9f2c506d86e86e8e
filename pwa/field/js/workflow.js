// The field worker's part of the appeal lifecycle, as the phone sees it: which steps a status allows,
// where each step leads (to show it at once, before the server has it), the reasons to pick from, and
// the geofence hint (the server decides; the phone only asks for a reason up front when it looks outside).

import { distanceM } from "./geo.js";

/** Steps per status, in the order the buttons are shown. */
export const STEPS = {
  assigned: ["accept", "decline"],
  accepted: ["depart", "arrive", "cannot_resolve"],
  en_route: ["arrive", "cannot_resolve"],
  on_site: ["resolve", "cannot_resolve"],
};

/** The status a step leads to. */
export const LEADS_TO = {
  accept: "accepted",
  decline: "routed",
  depart: "en_route",
  arrive: "on_site",
  resolve: "resolved",
  cannot_resolve: "routed",
};

/** Statuses that are still my work. */
export const OPEN_MINE = new Set(["assigned", "accepted", "en_route", "on_site"]);

/** The reasons offered for "cannot resolve" (the last one asks for text). */
export const CANNOT_RESOLVE_REASONS = ["competence", "materials", "no_access", "other"];

/** Steps that check the geofence on the server. */
export const GEOFENCED = new Set(["arrive", "resolve"]);

const MIN_RADIUS_M = 100;
const MAX_ACCURACY_M = 500;

/** The photo kinds that may be taken in ``status``. */
export function photoKinds(status) {
  if (status === "on_site") return ["before", "after"];
  if (status === "accepted" || status === "en_route") return ["before"];
  return [];
}

/**
 * The appeal as it will be once the waiting items are sent: status moved along by queued steps,
 * ``pending`` (steps and photos still waiting) and ``attention`` (items the server refused).
 */
export function overlay(appeal, items) {
  const mine = items.filter((i) => i.appeal_id === appeal.id);
  let status = appeal.status;
  for (const item of mine) {
    if (item.type === "step" && item.state === "queued") status = LEADS_TO[item.body.action] || status;
  }
  return {
    ...appeal,
    status,
    pending: mine.filter((i) => i.state === "queued"),
    attention: mine.filter((i) => i.state === "attention"),
  };
}

/**
 * Whether a step at ``fix`` would count as outside the appeal's geofence (so a reason is needed):
 * {outside, distance_m} with distance_m null when the position is unknown or too vague.
 */
export function geofenceHint(appeal, fix) {
  if (appeal.lat === null || appeal.lat === undefined) return { outside: false, distance_m: null };
  if (!fix || (fix.accuracy_m !== null && fix.accuracy_m > MAX_ACCURACY_M)) return { outside: true, distance_m: null };
  const d = distanceM(fix, { lat: appeal.lat, lon: appeal.lon });
  return { outside: d > Math.max(MIN_RADIUS_M, fix.accuracy_m || 0), distance_m: Math.round(d) };
}

/** Whether the appeal has an "after" photo, sent or waiting. */
export function hasAfterPhoto(appeal) {
  const sent = (appeal.photos || []).some((p) => p.kind === "after");
  const waiting = (appeal.pending || []).some((i) => i.type === "photo" && i.photo.kind === "after");
  return sent || waiting;
}

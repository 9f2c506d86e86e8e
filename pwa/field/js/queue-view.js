// The outbox on screen: the banner (how many items wait, the age of the oldest, a warning past 24 h) and
// the "To send" screen with the waiting items and those that need attention — explained in the user's
// language, with their data kept: a photo can be viewed or downloaded, an item resent or discarded.

import { formatDateTime } from "/static/js/format.js";
import { t } from "/static/js/i18n.js";
import { el, fill, formatAge } from "./ui.js";

const OLD_MS = 24 * 3600 * 1000;

/** What an item is, in words: "Accept", "Photo (after)". */
export function itemLabel(item) {
  if (item.type === "photo") return t(`field.photo_${item.photo.kind}`);
  return t(`field.step.${item.body.action}`);
}

/** Why the server refused an item, in the user's language. */
export function attentionMessage(item) {
  const e = item.error || {};
  const d = e.detail || {};
  switch (e.code) {
    case "appeal_changed": {
      const now = d.status ? t(`status.${d.status}`) : "?";
      return d.assigned_to_you === false ? t("field.err_reassigned", { status: now })
        : t("field.err_appeal_changed", { status: now });
    }
    case "geofence_reason_required":
      return d.distance_m !== undefined && d.distance_m !== null
        ? t("field.err_geofence", { distance: Math.round(d.distance_m) }) : t("field.err_geofence_unknown");
    case "after_photo_required":
      return t("field.err_after_photo");
    case "idempotency_mismatch":
      return t("field.err_idempotency");
    case "appeal_not_found":
      return t("field.err_not_found");
    default:
      return t("field.err_refused", { message: e.message || e.code || String(e.status || "") });
  }
}

/** Update the banner: {queued, attention} lists of items. */
export function renderBanner(banner, { queued, attention }, now = Date.now()) {
  const all = [...queued, ...attention];
  banner.hidden = all.length === 0;
  banner.dataset.count = String(queued.length);
  banner.dataset.attention = String(attention.length);
  if (!all.length) {
    banner.dataset.old = "false";
    return;
  }
  const oldest = Math.min(...all.map((i) => i.created_at));
  const old = now - oldest > OLD_MS;
  banner.dataset.old = String(old);
  const parts = [];
  if (queued.length) parts.push(t("field.queue_waiting", { n: queued.length, age: formatAge(now - oldest) }));
  if (attention.length) parts.push(t("field.queue_attention", { n: attention.length }));
  if (old) parts.push(t("field.queue_old"));
  banner.querySelector("[data-js=queue-text]").textContent = parts.join(" · ");
}

function photoPreview(item, urls) {
  const url = URL.createObjectURL(item.photo.blob);
  urls.push(url);
  return el("span", { className: "queue-photo" },
    el("img", { src: url, alt: itemLabel(item), width: 64, height: 64 }),
    el("a", { href: url, download: `${item.reg_no}-${item.photo.kind}-${item.seq}.jpg`, className: "btn btn-secondary btn-small" },
      t("field.download")));
}

/**
 * Render the "To send" screen into ``box``. ``handlers``: sendNow(), resend(item), discard(item), open(id).
 * Returns the object URLs it made (the caller revokes them on the next render).
 */
export function renderQueue(box, { queued, attention }, handlers, now = Date.now()) {
  const urls = [];
  const waitingRows = queued.map((item) => el("li", { className: "queue-item", dataset: { seq: item.seq, state: "queued" } },
    el("span", { className: "queue-what" },
      el("button", { type: "button", className: "linkish", onclick: () => handlers.open(item.appeal_id) }, item.reg_no),
      " · ", itemLabel(item)),
    el("span", { className: "muted" }, t("field.taken_at", { time: formatDateTime(item.created_at), age: formatAge(now - item.created_at) })),
    item.error ? el("span", { className: "muted" }, item.error.code === "network" ? t("field.last_try_offline")
      : t("field.last_try_failed", { message: item.error.message || item.error.code })) : null,
    item.type === "photo" ? photoPreview(item, urls) : null));
  const attentionRows = attention.map((item) => el("li", { className: "queue-item attention", dataset: { seq: item.seq, state: "attention", code: item.error?.code || "" } },
    el("span", { className: "queue-what" },
      el("button", { type: "button", className: "linkish", onclick: () => handlers.open(item.appeal_id) }, item.reg_no),
      " · ", itemLabel(item)),
    el("span", { className: "queue-why", "data-js": "attention-message" }, attentionMessage(item)),
    el("span", { className: "muted" }, t("field.taken_at", { time: formatDateTime(item.created_at), age: formatAge(now - item.created_at) })),
    item.type === "photo" ? photoPreview(item, urls) : null,
    el("span", { className: "queue-actions" },
      el("button", { type: "button", className: "btn btn-small", "data-js": "resend", onclick: () => handlers.resend(item) },
        item.error?.code === "geofence_reason_required" ? t("field.give_reason") : t("field.resend")),
      el("button", { type: "button", className: "btn btn-secondary btn-small", "data-js": "discard", onclick: () => handlers.discard(item) },
        t("field.discard")))));
  fill(box,
    el("div", { className: "queue-head" },
      el("h2", {}, t("field.queue_heading")),
      el("button", { type: "button", className: "btn btn-small", "data-js": "send-now", onclick: handlers.sendNow, disabled: !queued.length },
        t("field.send_now"))),
    attention.length ? el("h3", { className: "warn-title" }, t("field.attention_heading")) : null,
    attention.length ? el("ul", { className: "queue-list", "data-js": "attention-list" }, attentionRows) : null,
    el("h3", {}, t("field.waiting_heading")),
    queued.length ? el("ul", { className: "queue-list", "data-js": "queued-list" }, waitingRows)
      : el("p", { className: "muted", "data-js": "queue-empty" }, t("field.queue_empty")));
  return urls;
}

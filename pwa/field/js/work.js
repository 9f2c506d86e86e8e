// "My work": my open assignments, the most urgent deadline first, each with its status, deadline state,
// distance from me and whether something about it is still waiting to be sent.

import { formatDateTime, formatDistance } from "/static/js/format.js";
import { t } from "/static/js/i18n.js";
import { distanceM } from "./geo.js";
import { el, fill } from "./ui.js";
import { OPEN_MINE, overlay } from "./workflow.js";

/** The SLA state of an appeal now: on_time, at_risk, breached or none. */
export function slaState(appeal, atRiskShare = 0.75, now = Date.now()) {
  if (!appeal.due_at) return "none";
  const due = Date.parse(appeal.due_at);
  if (now >= due) return "breached";
  const start = Date.parse(appeal.created_at);
  if (Number.isFinite(start) && due > start && (now - start) / (due - start) >= atRiskShare) return "at_risk";
  return "on_time";
}

/** Sort by SLA due time (no deadline last), then by id. */
export function byDue(a, b) {
  const da = a.due_at ? Date.parse(a.due_at) : Infinity;
  const db = b.due_at ? Date.parse(b.due_at) : Infinity;
  return da - db || a.id - b.id;
}

/** The rows to show: saved assignments with the waiting steps applied, still open or still waiting. */
export function workRows(items, outboxItems) {
  return items
    .map((a) => overlay(a, outboxItems))
    .filter((a) => OPEN_MINE.has(a.status) || a.pending.length || a.attention.length)
    .sort(byDue);
}

/** Render the list into ``box``; ``fix`` is my last position (or null). */
export function renderWork(box, rows, { fix, atRiskShare, onOpen }) {
  if (!rows.length) {
    fill(box, el("p", { className: "empty muted", "data-js": "work-empty" }, t("field.no_work")));
    return;
  }
  fill(box, ...rows.map((a) => {
    const sla = slaState(a, atRiskShare);
    const far = fix && a.lat !== null ? formatDistance(distanceM(fix, { lat: a.lat, lon: a.lon })) : "";
    return el("li", { dataset: { appealId: a.id, status: a.status } },
      el("button", { type: "button", className: "work-item", onclick: () => onOpen(a.id) },
        el("span", { className: "work-head" },
          el("strong", { className: "reg" }, a.reg_no),
          el("span", { className: `badge status-badge status-${a.status}`, "data-js": "status" }, t(`status.${a.status}`)),
          el("span", { className: `badge sla-${sla}` }, t(`sla.${sla}`))),
        el("span", { className: "work-topic" }, a.topic_name || a.topic),
        el("span", { className: "work-where muted" }, [a.address, far].filter(Boolean).join(" · ")),
        el("span", { className: "work-due" }, a.due_at ? t("field.due", { time: formatDateTime(a.due_at) }) : ""),
        a.pending.length ? el("span", { className: "chip chip-wait" }, t("field.waiting_n", { n: a.pending.length })) : null,
        a.attention.length ? el("span", { className: "chip chip-warn" }, t("field.attention_n", { n: a.attention.length })) : null));
  }));
}

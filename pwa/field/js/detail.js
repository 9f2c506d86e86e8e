// One appeal on the phone: what and where (with a geo: link for the navigation app), the applicant's
// contact when the server sends it (only on my own assignments), the workflow buttons for its status,
// the before/after photos (sent and waiting), what needs attention, and the history.

import { formatDateTime, formatPoint } from "/static/js/format.js";
import { has, t } from "/static/js/i18n.js";
import { attentionMessage, itemLabel } from "./queue-view.js";
import { el, fill } from "./ui.js";
import { STEPS, hasAfterPhoto, photoKinds } from "./workflow.js";
import { slaState } from "./work.js";

function row(label, ...value) {
  return [el("dt", {}, label), el("dd", {}, ...value)];
}

function eventLabel(kind) {
  const key = `event.${String(kind).replace(/^appeal\./, "")}`;
  return has(key) ? t(key) : kind;
}

/** The appeal screen. ``handlers``: step(appeal, action), photo(appeal, kind, file), resend(item), discard(item). */
export class Detail {
  constructor(box, handlers) {
    this.box = box;
    this.handlers = handlers;
    this.urls = [];
  }

  /** Show ``appeal`` (with the outbox overlay); ``mine``: one of my assignments; ``fresh``: not a saved copy. */
  render(appeal, { mine, fresh, atRiskShare }) {
    this.urls.forEach((u) => URL.revokeObjectURL(u));
    this.urls = [];
    const sla = slaState(appeal, atRiskShare);
    this.box.dataset.appealId = String(appeal.id);
    this.box.dataset.status = appeal.status;
    fill(this.box,
      el("div", { className: "detail-head" },
        el("a", { href: "#/work", className: "back" }, t("field.back")),
        el("h2", { "data-js": "detail-reg" }, appeal.reg_no),
        el("span", { className: `badge status-badge status-${appeal.status}`, "data-js": "detail-status" }, t(`status.${appeal.status}`)),
        el("span", { className: `badge sla-${sla}` }, t(`sla.${sla}`))),
      fresh ? null : el("p", { className: "note" }, t("field.saved_copy")),
      this.attention(appeal),
      mine ? this.actions(appeal) : el("p", { className: "note" }, t("field.not_mine")),
      mine ? this.photoInputs(appeal) : null,
      this.photos(appeal),
      this.info(appeal),
      this.history(appeal),
    );
  }

  attention(appeal) {
    if (!appeal.attention.length) return null;
    return el("section", { className: "card attention-box", "data-js": "detail-attention" },
      el("h3", { className: "warn-title" }, t("field.attention_heading")),
      el("ul", { className: "queue-list" }, appeal.attention.map((item) => el("li", { className: "queue-item attention", dataset: { seq: item.seq } },
        el("strong", {}, itemLabel(item)),
        el("span", { className: "queue-why" }, attentionMessage(item)),
        el("span", { className: "queue-actions" },
          el("button", { type: "button", className: "btn btn-small", onclick: () => this.handlers.resend(item) },
            item.error?.code === "geofence_reason_required" ? t("field.give_reason") : t("field.resend")),
          el("button", { type: "button", className: "btn btn-secondary btn-small", onclick: () => this.handlers.discard(item) },
            t("field.discard")))))));
  }

  actions(appeal) {
    const steps = STEPS[appeal.status] || [];
    if (!steps.length) return el("p", { className: "note", "data-js": "no-steps" }, t("field.no_steps"));
    const needAfter = steps.includes("resolve") && !hasAfterPhoto(appeal);
    return el("section", { className: "steps", "data-js": "steps" },
      steps.map((action) => el("button", {
        type: "button",
        className: `btn step step-${action}${["decline", "cannot_resolve"].includes(action) ? " btn-secondary" : ""}`,
        dataset: { action },
        disabled: action === "resolve" && needAfter,
        onclick: () => this.handlers.step(appeal, action),
      }, t(`field.step.${action}`))),
      needAfter ? el("p", { className: "hint", "data-js": "after-hint" }, t("field.after_photo_needed")) : null);
  }

  photoInputs(appeal) {
    const kinds = photoKinds(appeal.status);
    if (!kinds.length) return null;
    return el("section", { className: "photo-inputs" },
      kinds.map((kind) => {
        const input = el("input", { type: "file", accept: "image/*", capture: "environment", className: "visually-hidden",
                                    id: `photo-${kind}`, "data-js": `photo-${kind}` });
        input.addEventListener("change", () => {
          const file = input.files?.[0];
          input.value = "";
          if (file) this.handlers.photo(appeal, kind, file);
        });
        return el("label", { className: "btn btn-secondary photo-btn", for: `photo-${kind}` },
          t(`field.take_${kind}`), input);
      }));
  }

  photos(appeal) {
    const sent = (appeal.photos || []).map((p) => el("figure", { className: "thumb", dataset: { kind: p.kind, state: "sent" } },
      el("a", { href: p.urls?.large || p.urls?.original || "#", target: "_blank", rel: "noopener" },
        el("img", { src: p.urls?.thumb, alt: t(`field.photo_${p.kind}`), loading: "lazy", width: 96, height: 96 })),
      el("figcaption", {}, t(`field.photo_${p.kind}`))));
    const waiting = appeal.pending.concat(appeal.attention).filter((i) => i.type === "photo").map((i) => {
      const url = URL.createObjectURL(i.photo.blob);
      this.urls.push(url);
      return el("figure", { className: "thumb", dataset: { kind: i.photo.kind, state: i.state } },
        el("img", { src: url, alt: t(`field.photo_${i.photo.kind}`), width: 96, height: 96 }),
        el("figcaption", {}, t(`field.photo_${i.photo.kind}`), " · ",
          el("span", { className: i.state === "queued" ? "chip chip-wait" : "chip chip-warn" },
            i.state === "queued" ? t("field.waiting") : t("field.needs_attention"))));
    });
    if (!sent.length && !waiting.length) return null;
    return el("section", { className: "photos", "data-js": "photos" },
      el("h3", {}, t("field.photos")), el("div", { className: "thumbs" }, sent, waiting));
  }

  info(appeal) {
    const rows = [
      row(t("detail.topic"), appeal.topic_name || appeal.topic),
      row(t("detail.type"), t(`type.${appeal.type}`)),
      appeal.urgency ? row(t("field.urgency"), t(`urgency.${appeal.urgency}`)) : [],
      row(t("detail.description"), el("span", { className: "pre" }, appeal.description)),
      appeal.address ? row(t("detail.address"), appeal.address) : [],
      appeal.lat !== null && appeal.lat !== undefined ? row(t("detail.point"), formatPoint(appeal.lat, appeal.lon), " ",
        el("a", { href: `geo:${appeal.lat},${appeal.lon}`, className: "btn btn-small", "data-js": "navigate" }, t("field.navigate"))) : [],
      appeal.due_at ? row(t("detail.due"), formatDateTime(appeal.due_at)) : [],
      row(t("detail.created"), formatDateTime(appeal.created_at)),
    ];
    if (appeal.citizen) {
      const c = appeal.citizen;
      rows.push(row(t("detail.citizen"), el("span", { "data-js": "citizen" }, c.name || "",
        c.phone ? [" ", el("a", { href: `tel:${c.phone.replace(/[^\d+]/g, "")}`, className: "btn btn-small" }, c.phone)] : "")));
    }
    return el("dl", { className: "card facts" }, rows.flat());
  }

  history(appeal) {
    const done = (appeal.history || []).map((e) => el("li", {},
      el("span", { className: "muted" }, formatDateTime(e.at)), " ", eventLabel(e.kind),
      e.data?.reason ? el("span", { className: "muted" }, ` — ${e.data.reason}`) : null));
    const waiting = appeal.pending.filter((i) => i.type === "step").map((i) => el("li", { className: "waiting" },
      el("span", { className: "muted" }, formatDateTime(i.created_at)), " ", itemLabel(i), " ",
      el("span", { className: "chip chip-wait" }, t("field.waiting"))));
    return el("section", { className: "card" }, el("h3", {}, t("detail.history")),
      el("ol", { className: "history", "data-js": "history" }, done, waiting));
  }
}

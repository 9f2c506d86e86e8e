// The appeal side panel: details from GET /appeals/<id>, the history, and the reassign control
// (any unit's staff member or a unit's queue, via POST /appeals/<id>/reassign). Esc closes it.

import { ApiError, api } from "/static/js/api.js";
import { formatDateTime, formatPoint } from "/static/js/format.js";
import { has, t } from "/static/js/i18n.js";

const REASSIGNABLE = ["routed", "unrouted", "reopened", "assigned", "accepted"];

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = text;
  return e;
}

function kindLabel(kind) {
  const key = `event.${String(kind).replace(/^appeal\./, "")}`;
  return has(key) ? t(key) : kind;
}

export { kindLabel };

export class DetailPanel {
  /** ``root`` is the panel section; ``staff()`` gives the staff list (or null when not allowed). */
  constructor(root, { staff, canReassign, assigneeOf, atRiskShare, onClose, onChanged }) {
    this.root = root;
    this.canReassign = canReassign;
    this.assigneeOf = assigneeOf;
    this.atRiskShare = atRiskShare;
    this.staff = staff;
    this.onClose = onClose;
    this.onChanged = onChanged;
    this.title = root.querySelector("[data-js=detail-title]");
    this.body = root.querySelector("[data-js=detail-body]");
    this.history = root.querySelector("[data-js=detail-history]");
    this.form = root.querySelector("[data-js=reassign]");
    this.target = root.querySelector("[data-js=reassign-target]");
    this.reason = root.querySelector("[data-js=reassign-reason]");
    this.error = root.querySelector("[data-js=reassign-error]");
    this.ok = root.querySelector("[data-js=reassign-ok]");
    this.appeal = null;
    this.staffList = null;
    this.loadSeq = 0;
    root.querySelector("[data-js=detail-close]").addEventListener("click", () => this.close());
    root.addEventListener("keydown", (e) => {
      if (e.key === "Escape") this.close();
    });
    this.form.addEventListener("submit", (e) => {
      e.preventDefault();
      this.reassign();
    });
  }

  get openId() {
    return this.root.hidden ? null : this.appeal?.id ?? this.pendingId ?? null;
  }

  /** Show appeal ``id`` (loads it); ``focus`` moves keyboard focus into the panel. */
  async show(id, { focus = true } = {}) {
    this.pendingId = id;
    const seq = ++this.loadSeq;
    this.root.hidden = false;
    this.root.setAttribute("aria-busy", "true");
    if (!this.appeal || this.appeal.id !== id) {
      this.title.textContent = t("common.loading");
      this.body.replaceChildren();
      this.history.replaceChildren();
      this.form.hidden = true;
      this.ok.textContent = "";
    }
    try {
      const [appeal, staffList] = await Promise.all([api(`/api/v1/appeals/${id}`, { lang: true }), this.staff()]);
      if (seq !== this.loadSeq) return;
      this.appeal = appeal;
      this.staffList = staffList;
      this.render();
    } catch (err) {
      if (seq !== this.loadSeq) return;
      this.title.textContent = t("detail.heading");
      this.body.replaceChildren(el("p", "form-error", err instanceof ApiError ? err.message : t("common.network_error")));
    } finally {
      if (seq === this.loadSeq) this.root.removeAttribute("aria-busy");
    }
    if (focus) this.root.focus({ preventScroll: false });
  }

  /** Reload the open appeal (after a live event about it). */
  reload() {
    if (this.openId !== null) this.show(this.openId, { focus: false });
  }

  close() {
    this.root.hidden = true;
    this.appeal = null;
    this.pendingId = null;
    this.loadSeq += 1;
    this.onClose();
  }

  render() {
    const a = this.appeal;
    if (!a) return;
    const staffList = this.staffList;
    this.title.replaceChildren(el("span", "reg-no", a.reg_no), " ",
      el("span", `badge status-${a.status}`, t(`status.${a.status}`)));
    const byId = new Map((staffList || []).map((s) => [s.id, s]));
    const dl = el("dl", "facts");
    const add = (label, value, cls) => {
      if (value === null || value === undefined || value === "") return;
      dl.append(el("dt", null, t(label)));
      const dd = el("dd", cls);
      if (value instanceof Node) dd.append(value);
      else dd.textContent = value;
      dl.append(dd);
    };
    add("detail.type", t(`type.${a.type}`) + (a.urgency ? ` · ${t(`urgency.${a.urgency}`)}` : ""));
    add("detail.topic", a.topic_name || a.topic);
    add("detail.description", a.description, "desc");
    add("detail.address", a.address);
    if (a.lat !== null && a.lon !== null) add("detail.point", formatPoint(a.lat, a.lon));
    add("detail.sector", a.sector ? `${a.sector.code} · ${a.sector.name}` : t("counters.unrouted"));
    add("detail.channel", t(`channel.${a.channel}`));
    add("detail.created", formatDateTime(a.created_at));
    if (a.due_at) {
      const due = el("span", null, formatDateTime(a.due_at) + " ");
      const sla = this.slaOf(a);
      due.append(el("span", `badge sla-${sla}`, t(`sla.${sla}`)));
      add("detail.due", due);
    }
    const assignee = this.currentAssignee(a);
    if (assignee !== undefined) {
      const who = assignee === null ? t("detail.unassigned") : byId.get(assignee)?.name || byId.get(assignee)?.username || `#${assignee}`;
      add("detail.assignee", who);
    }
    if (a.citizen) add("detail.citizen", [a.citizen.name, a.citizen.phone].filter(Boolean).join(" · "));
    if (a.answer) add("detail.answer", a.answer, "desc");
    this.body.replaceChildren(dl);

    this.history.replaceChildren(...(a.history || []).slice().reverse().map((h) => {
      const li = el("li");
      li.append(el("time", null, formatDateTime(h.at)), " ", el("strong", null, kindLabel(h.kind)));
      const actor = h.actor_kind === "system" ? t("detail.system") : h.actor_kind === "citizen" ? t("detail.citizen_actor") : h.actor;
      if (actor) li.append(el("span", "muted", ` · ${actor}`));
      if (h.data?.reason) li.append(el("div", "muted", h.data.reason));
      return li;
    }));
    this.renderReassign(staffList);
  }

  slaOf(a) {
    if (!a.due_at) return "none";
    const now = Date.now();
    const due = Date.parse(a.due_at);
    const created = Date.parse(a.created_at);
    if (now >= due) return "breached";
    return (now - created) / (due - created) >= this.atRiskShare ? "at_risk" : "on_time";
  }

  currentAssignee(a) {
    // The map row knows the assignee; else the newest event that names one. Unassigned once routed back.
    if (["registered", "routed", "unrouted", "reopened"].includes(a.status)) return null;
    const known = this.assigneeOf(a.id);
    if (known !== undefined) return known;
    for (const h of (a.history || []).slice().reverse()) {
      if (h.data && "assignee_id" in h.data) return h.data.assignee_id;
      if (h.data && "staff_id" in h.data) return h.data.staff_id;
    }
    return undefined;
  }

  renderReassign(staffList) {
    const a = this.appeal;
    const allowed = this.canReassign && staffList && REASSIGNABLE.includes(a.status);
    this.form.hidden = !allowed;
    if (!allowed) return;
    const keep = this.target.value;
    this.target.replaceChildren();
    const choose = el("option", null, t("reassign.choose"));
    choose.value = "";
    this.target.append(choose);
    const units = [...new Set(staffList.map((s) => s.unit).filter(Boolean))].sort();
    const unitGroup = document.createElement("optgroup");
    unitGroup.label = t("reassign.units");
    for (const u of units) {
      const o = el("option", null, t("reassign.unit_queue", { unit: u }));
      o.value = `unit:${u}`;
      unitGroup.append(o);
    }
    this.target.append(unitGroup);
    for (const u of units) {
      const g = document.createElement("optgroup");
      g.label = t("reassign.unit_group", { unit: u });
      const people = staffList.filter((s) => s.unit === u).sort((x, y) => Number(y.on_duty) - Number(x.on_duty)
        || x.open_assignments - y.open_assignments);
      for (const s of people) {
        const o = el("option", null, t("reassign.staff_option", {
          name: s.name || s.username,
          state: t(s.on_duty ? "reassign.on_duty" : "reassign.off_duty"),
          n: s.open_assignments,
        }));
        o.value = `staff:${s.id}`;
        g.append(o);
      }
      this.target.append(g);
    }
    this.target.value = [...this.target.options].some((o) => o.value === keep) ? keep : "";
    this.error.textContent = "";
    this.target.removeAttribute("aria-invalid");
  }

  async reassign() {
    const a = this.appeal;
    const value = this.target.value;
    this.error.textContent = "";
    this.ok.textContent = "";
    if (!value) {
      this.error.textContent = t("form.required");
      this.target.setAttribute("aria-invalid", "true");
      this.target.focus();
      return;
    }
    this.target.removeAttribute("aria-invalid");
    const [kind, ref] = value.split(":");
    const body = kind === "unit" ? { unit: ref } : { staff_id: Number(ref) };
    if (this.reason.value.trim()) body.reason = this.reason.value.trim();
    const button = this.form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      this.appeal = await api(`/api/v1/appeals/${a.id}/reassign`, { method: "POST", body });
      this.reason.value = "";
      this.target.value = "";
      this.onChanged(this.appeal);
      this.staffList = (await this.staff()) || this.staffList;
      this.render();
      this.ok.textContent = t("reassign.done");
    } catch (err) {
      this.error.textContent = err instanceof ApiError
        ? [err.message, ...err.fields.map((f) => f.message)].filter((m, i, arr) => arr.indexOf(m) === i).join(" ")
        : t("common.network_error");
    } finally {
      button.disabled = false;
    }
  }
}

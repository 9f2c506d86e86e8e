// Map filters: type, topic, status, sector (sent to /map/appeals, and applied to live events),
// plus the staff-positions toggle. Options are labelled in the current language.

import { OPEN_STATUSES, TYPES } from "/static/js/catalog.js";
import { t } from "/static/js/i18n.js";

const KEYS = ["type", "topic", "status", "sector"];

function fill(select, options, keep) {
  const value = keep ?? select.value;
  select.replaceChildren();
  const all = document.createElement("option");
  all.value = "";
  all.textContent = t("common.all");
  select.append(all);
  for (const [code, label] of options) {
    const opt = document.createElement("option");
    opt.value = code;
    opt.textContent = label;
    select.append(opt);
  }
  select.value = options.some(([c]) => c === value) ? value : "";
}

/** The filter bar. ``onChange(values)`` after any change; ``onStaff(bool)`` for the staff toggle. */
export class Filters {
  constructor(form, { onChange, onStaff }) {
    this.form = form;
    this.selects = Object.fromEntries(KEYS.map((k) => [k, form.querySelector(`[data-js=filter-${k}]`)]));
    this.staffBox = form.querySelector("[data-js=filter-staff]");
    this.topics = [];
    this.sectors = [];
    form.addEventListener("change", (e) => {
      if (e.target === this.staffBox) onStaff(this.staffBox.checked);
      else onChange(this.values());
    });
    form.addEventListener("reset", () => {
      // After the browser resets the controls.
      setTimeout(() => {
        onStaff(this.staffBox.checked);
        onChange(this.values());
      }, 0);
    });
    form.addEventListener("submit", (e) => e.preventDefault());
  }

  /** (Re)label the options: ``topics`` [{code, name}], ``sectors`` [{code, name}]. */
  render(topics = this.topics, sectors = this.sectors) {
    this.topics = topics;
    this.sectors = sectors;
    fill(this.selects.type, TYPES.map((c) => [c, t(`type.${c}`)]));
    fill(this.selects.topic, topics.map((x) => [x.code, x.name]));
    fill(this.selects.status, OPEN_STATUSES.map((c) => [c, t(`status.${c}`)]));
    fill(this.selects.sector, [...sectors.map((s) => [s.code, `${s.code} · ${s.name}`]), ["none", t("counters.unrouted")]]);
  }

  /** {type, topic, status, sector}: "" means any. */
  values() {
    return Object.fromEntries(KEYS.map((k) => [k, this.selects[k].value]));
  }

  /** Set one filter programmatically (e.g. a click on a counters row). */
  set(key, value) {
    this.selects[key].value = value;
    this.selects[key].dispatchEvent(new Event("change", { bubbles: true }));
  }

  get showStaff() {
    return this.staffBox.checked;
  }

  /** Query string for /map/appeals (only the filters the server knows). */
  query() {
    const v = this.values();
    const params = new URLSearchParams();
    for (const k of ["type", "topic", "status"]) if (v[k]) params.set(k, v[k]);
    if (v.sector && v.sector !== "none") params.set("sector", v.sector);
    return params;
  }

  /** Whether a live appeal ``a`` ({type, topic, status, sector}) passes the filters. */
  matches(a) {
    const v = this.values();
    if (v.type && a.type !== v.type) return false;
    if (v.topic && a.topic !== v.topic) return false;
    if (v.status && a.status !== v.status) return false;
    if (v.sector === "none") return !a.sector;
    if (v.sector && a.sector !== v.sector) return false;
    return true;
  }
}

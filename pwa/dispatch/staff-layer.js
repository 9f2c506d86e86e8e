// Field staff positions from /staff/positions, polled; stale positions are greyed out.

import { api } from "/static/js/api.js";
import { formatDateTime } from "/static/js/format.js";
import { t } from "/static/js/i18n.js";

const L = window.L;
const POLL_MS = 30000;

function initials(name) {
  return String(name || "?").split(/\s+/).filter(Boolean).slice(0, 2).map((w) => w[0].toUpperCase()).join("");
}

export class StaffLayer {
  constructor(map) {
    this.map = map;
    map.createPane("staff").style.zIndex = 620;
    this.group = L.layerGroup();
    this.timer = null;
    this.rows = [];
    this.visible = false;
  }

  /** Show or hide the layer (polling only while shown). */
  setVisible(on) {
    this.visible = on;
    if (on) {
      this.group.addTo(this.map);
      this.refresh();
      this.timer = this.timer || setInterval(() => this.refresh(), POLL_MS);
    } else {
      this.group.remove();
      clearInterval(this.timer);
      this.timer = null;
    }
  }

  async refresh() {
    try {
      this.rows = await api("/api/v1/staff/positions");
    } catch {
      return; /* the next poll retries */
    }
    this.render();
  }

  render() {
    this.group.clearLayers();
    for (const p of this.rows) {
      if (p.lat === null || p.lon === null || p.lat === undefined) continue;
      const span = document.createElement("span");
      span.textContent = initials(p.name);
      const icon = L.divIcon({
        className: `staff-pin${p.stale ? " stale" : ""}${p.on_duty ? "" : " off-duty"}`,
        html: span,
        iconSize: [26, 26],
      });
      const marker = L.marker([p.lat, p.lon], { icon, pane: "staff", keyboard: false, opacity: p.stale ? 0.6 : 1 });
      const parts = [p.name, p.unit, t(p.on_duty ? "reassign.on_duty" : "reassign.off_duty"),
        (p.stale ? t("staff.stale_at", { time: formatDateTime(p.recorded_at) }) : formatDateTime(p.recorded_at))];
      if (p.accuracy_m) parts.push(`±${Math.round(p.accuracy_m)} ${t("unit.m")}`);
      // An element, not a string: Leaflet puts a string tooltip in as HTML, and a staff name is text.
      const tip = document.createElement("span");
      tip.textContent = parts.filter(Boolean).join(" · ");
      marker.bindTooltip(tip, { direction: "top", offset: [0, -12] });
      marker.addTo(this.group);
    }
  }
}

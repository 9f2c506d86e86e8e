// Per-sector counters panel (open, unassigned, at risk, overdue) from /map/counters,
// refreshed after live events at most once every few seconds. A row click zooms to the sector.

import { api } from "/static/js/api.js";
import { formatNumber } from "/static/js/format.js";
import { t } from "/static/js/i18n.js";
import { sectorColour } from "/static/js/mapkit.js";

const MIN_INTERVAL_MS = 2000;
const COLUMNS = ["open", "unassigned", "at_risk", "breached"];

export class Counters {
  constructor(tbody, { sectorName, onPick }) {
    this.tbody = tbody;
    this.sectorName = sectorName;
    this.onPick = onPick;
    this.rows = [];
    this.last = 0;
    this.timer = null;
    this.inflight = false;
  }

  /** Load now. */
  async refresh() {
    if (this.inflight) {
      this.schedule();
      return;
    }
    this.inflight = true;
    this.last = Date.now();
    try {
      this.rows = await api("/api/v1/map/counters");
      this.render();
    } catch {
      /* keep the last numbers; the next event or timer retries */
    } finally {
      this.inflight = false;
    }
  }

  /** Refresh soon, throttled. */
  schedule() {
    if (this.timer) return;
    const wait = Math.max(0, MIN_INTERVAL_MS - (Date.now() - this.last));
    this.timer = setTimeout(() => {
      this.timer = null;
      this.refresh();
    }, wait);
  }

  render() {
    const total = Object.fromEntries(COLUMNS.map((c) => [c, 0]));
    const body = [];
    for (const row of this.rows) {
      if (row.sector === null && row.open === 0) continue;
      const tr = document.createElement("tr");
      tr.dataset.sector = row.sector ?? "none";
      const th = document.createElement("th");
      th.scope = "row";
      const btn = document.createElement("button");
      btn.type = "button";
      btn.className = "linkish";
      const sw = document.createElement("span");
      sw.className = "swatch";
      sw.style.background = row.sector ? sectorColour(row.sector) : "#fff";
      btn.append(sw, row.sector ? row.sector : t("counters.unrouted"));
      btn.title = row.sector ? this.sectorName(row.sector) || row.sector : t("counters.unrouted");
      btn.addEventListener("click", () => this.onPick(row.sector));
      th.append(btn);
      tr.append(th);
      for (const c of COLUMNS) {
        total[c] += row[c];
        const td = document.createElement("td");
        td.className = `num c-${c}` + (row[c] > 0 && (c === "at_risk" || c === "breached") ? " hot" : "");
        td.dataset.col = c;
        td.textContent = formatNumber(row[c]);
        tr.append(td);
      }
      body.push(tr);
    }
    const tr = document.createElement("tr");
    tr.className = "total";
    const th = document.createElement("th");
    th.scope = "row";
    th.textContent = t("counters.total");
    tr.append(th);
    for (const c of COLUMNS) {
      const td = document.createElement("td");
      td.className = `num c-${c}`;
      td.textContent = formatNumber(total[c]);
      tr.append(td);
    }
    body.push(tr);
    this.tbody.replaceChildren(...body);
  }
}

// The legend: sector colours with their names, status fill colours, SLA rings and staff pins.

import { t } from "/static/js/i18n.js";
import { sectorColour } from "/static/js/mapkit.js";
import { OPEN_STATUSES } from "/static/js/catalog.js";
import { SLA_RING, STATUS_COLOURS } from "./palette.js";

function item(swatchClass, style, label, data) {
  const li = document.createElement("li");
  const sw = document.createElement("span");
  sw.className = `swatch ${swatchClass}`;
  Object.assign(sw.style, style);
  li.append(sw, label);
  if (data) Object.assign(li.dataset, data);
  return li;
}

/** Render the legend into its lists; ``sectors`` is [{code, name}]. */
export function renderLegend(root, sectors) {
  root.querySelector("[data-js=legend-sectors]").replaceChildren(...sectors.map((s) =>
    item("", { background: sectorColour(s.code) + "33", borderColor: sectorColour(s.code), borderWidth: "2px" },
      `${s.code} · ${s.name}`, { sector: s.code })));
  root.querySelector("[data-js=legend-status]").replaceChildren(...OPEN_STATUSES.map((st) =>
    item("dot", { background: STATUS_COLOURS[st] }, t(`status.${st}`), { status: st })));
  root.querySelector("[data-js=legend-sla]").replaceChildren(...["on_time", "at_risk", "breached"].map((k) =>
    item("dot ring", { background: "#90a4ae", borderColor: k === "on_time" ? "#fff" : SLA_RING[k].color,
      borderWidth: k === "on_time" ? "1px" : "3px", borderStyle: "solid" }, t(`sla.${k}`))));
  const staff = root.querySelector("[data-js=legend-staff]");
  staff.replaceChildren(
    item("staff-sample", {}, t("legend.staff")),
    item("staff-sample stale", {}, t("legend.staff_stale")),
  );
}

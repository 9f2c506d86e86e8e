// The field map: a blank background unless the server sets a tile URL (like the dispatcher map), the
// sectors when known, my appeals coloured by status, and my position with its accuracy circle.

import { t } from "/static/js/i18n.js";
import { createMap, drawSectors } from "/static/js/mapkit.js";

const L = window.L;
const TURKESTAN = [43.2975, 68.251];
const STATUS_COLOURS = { assigned: "#c62828", accepted: "#ef6c00", en_route: "#6a1b9a", on_site: "#1565c0",
                         resolved: "#2e7d32" };

/** The map screen: created lazily, on first show (Leaflet needs a visible container). */
export class FieldMap {
  constructor(el, { onOpen }) {
    this.el = el;
    this.onOpen = onOpen;
    this.map = null;
    this.appeals = null;
    this.me = null;
    this.meCircle = null;
    this.fitted = false;
    this.pending = { rows: [], fix: null, sectors: null };
  }

  /** Show it (create on first call) with ``tileUrl``. */
  show(tileUrl) {
    if (!L) return;
    if (!this.map) {
      this.map = createMap(this.el, { tileUrl });
      this.map.setView(TURKESTAN, 13);
      this.appeals = L.layerGroup().addTo(this.map);
      if (this.pending.sectors) this.setSectors(this.pending.sectors);
    }
    this.map.invalidateSize();
    this.setAppeals(this.pending.rows);
    if (this.pending.fix) this.setPosition(this.pending.fix);
  }

  /** Draw the sectors (GeoJSON) once. */
  setSectors(collection) {
    this.pending.sectors = collection;
    if (!this.map || this.sectorsDrawn || !collection) return;
    drawSectors(this.map, collection);
    this.sectorsDrawn = true;
  }

  /** Put my appeals on the map (rows from "my work"). */
  setAppeals(rows) {
    this.pending.rows = rows;
    if (!this.map) return;
    this.appeals.clearLayers();
    const points = [];
    for (const a of rows) {
      if (a.lat === null || a.lat === undefined) continue;
      const marker = L.circleMarker([a.lat, a.lon], {
        radius: 10, weight: 3, color: "#fff", fillColor: STATUS_COLOURS[a.status] || "#455a64", fillOpacity: 0.95,
        className: `appeal-marker appeal-${a.id}`,
      });
      marker.bindTooltip(`${a.reg_no} · ${t(`status.${a.status}`)}`);
      marker.on("click", () => this.onOpen(a.id));
      marker.addTo(this.appeals);
      points.push([a.lat, a.lon]);
    }
    if (!this.fitted && points.length) {
      if (this.pending.fix) points.push([this.pending.fix.lat, this.pending.fix.lon]);
      this.map.fitBounds(points, { padding: [40, 40], maxZoom: 16 });
      this.fitted = true;
    }
  }

  /** Move my position marker. */
  setPosition(fix) {
    this.pending.fix = fix;
    if (!this.map || !fix) return;
    const at = [fix.lat, fix.lon];
    if (!this.me) {
      this.meCircle = L.circle(at, { radius: fix.accuracy_m || 0, weight: 1, color: "#1e88e5", fillOpacity: 0.1,
                                     interactive: false }).addTo(this.map);
      this.me = L.circleMarker(at, { radius: 7, weight: 3, color: "#fff", fillColor: "#1e88e5", fillOpacity: 1,
                                     className: "me-marker" }).addTo(this.map);
      this.me.bindTooltip(t("field.my_position"));
    } else {
      this.me.setLatLng(at);
      this.meCircle.setLatLng(at);
      this.meCircle.setRadius(fix.accuracy_m || 0);
    }
  }
}

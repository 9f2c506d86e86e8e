// The operator's location picker: a small map with the sectors; a click (or Enter/Space on the focused
// map: the centre) sets the point, the pin can be dragged; the sector is looked up live as it moves.

import { api } from "/static/js/api.js";
import { formatDistance, formatPoint } from "/static/js/format.js";
import { t } from "/static/js/i18n.js";
import { createMap, drawSectors } from "/static/js/mapkit.js";

const L = window.L;

export class LocationPicker {
  /** ``onChange(point|null)`` after every move (debounced lookups happen here too). */
  constructor({ mapEl, pointText, clearBtn, sectorLine, tileUrl, sectors, sectorName, onChange }) {
    this.mapEl = mapEl;
    this.pointText = pointText;
    this.clearBtn = clearBtn;
    this.sectorLine = sectorLine;
    this.sectorName = sectorName;
    this.onChange = onChange;
    this.point = null; // {lat, lon}
    this.lookup = null; // last /sectors/lookup answer
    this.seq = 0;
    this.map = createMap(mapEl, { tileUrl });
    const drawn = drawSectors(this.map, sectors);
    this.home = drawn.bounds;
    this.map.fitBounds(this.home, { padding: [6, 6] });
    this.marker = L.marker([0, 0], { draggable: true, keyboard: false, autoPan: true, title: t("form.pin") });
    this.map.on("click", (e) => this.set(e.latlng.lat, e.latlng.lng));
    // While dragging, the sector line follows the pin (at most four look-ups a second).
    let dragTimer = null;
    this.marker.on("drag", () => {
      if (dragTimer) return;
      dragTimer = setTimeout(() => {
        dragTimer = null;
        const p = this.marker.getLatLng();
        this.point = { lat: Number(p.lat.toFixed(6)), lon: Number(p.lng.toFixed(6)) };
        this.render();
        this.resolveSector();
      }, 250);
    });
    this.marker.on("dragend", () => {
      clearTimeout(dragTimer);
      dragTimer = null;
      const p = this.marker.getLatLng();
      this.set(p.lat, p.lng);
    });
    mapEl.addEventListener("keydown", (e) => {
      if ((e.key === "Enter" || e.key === " ") && e.target === mapEl) {
        e.preventDefault();
        const c = this.map.getCenter();
        this.set(c.lat, c.lng);
      }
    });
    clearBtn.addEventListener("click", () => {
      this.clear();
      mapEl.focus();
    });
    this.render();
  }

  /** Put the point at (lat, lon). */
  set(lat, lon) {
    this.point = { lat: Number(lat.toFixed(6)), lon: Number(lon.toFixed(6)) };
    this.marker.setLatLng([this.point.lat, this.point.lon]);
    if (!this.map.hasLayer(this.marker)) this.marker.addTo(this.map);
    this.lookup = null;
    this.render();
    this.resolveSector();
    this.onChange(this.point);
  }

  /** Remove the point. */
  clear() {
    this.point = null;
    this.lookup = null;
    this.seq += 1;
    this.marker.remove();
    this.render();
    this.onChange(null);
  }

  /** Back to the whole city, no point (a new appeal). */
  reset() {
    this.clear();
    this.map.fitBounds(this.home, { padding: [6, 6] });
  }

  /** Leaflet measures its box on show. */
  invalidate() {
    this.map.invalidateSize();
  }

  async resolveSector() {
    const seq = ++this.seq;
    const { lat, lon } = this.point;
    this.sectorLine.dataset.state = "loading";
    try {
      const res = await api(`/api/v1/sectors/lookup?lat=${lat}&lon=${lon}`);
      if (seq !== this.seq) return;
      this.lookup = res;
    } catch {
      if (seq !== this.seq) return;
      this.lookup = { error: true };
    }
    this.render();
  }

  render() {
    this.marker.options.title = t("form.pin");
    this.pointText.textContent = this.point ? t("form.point", { point: formatPoint(this.point.lat, this.point.lon) })
      : t("form.no_point");
    this.clearBtn.hidden = !this.point;
    this.pointText.dataset.lat = this.point ? String(this.point.lat) : "";
    this.pointText.dataset.lon = this.point ? String(this.point.lon) : "";
    const line = this.sectorLine;
    line.replaceChildren();
    delete line.dataset.sector;
    if (!this.point) {
      line.dataset.state = "none";
      return;
    }
    const res = this.lookup;
    if (!res) {
      line.dataset.state = "loading";
      line.textContent = t("form.sector_looking");
      return;
    }
    if (res.error) {
      line.dataset.state = "error";
      line.textContent = t("common.network_error");
      return;
    }
    if (!res.sector) {
      line.dataset.state = "unrouted";
      line.textContent = t("form.sector_none");
      return;
    }
    line.dataset.state = "found";
    line.dataset.sector = res.sector.code;
    const strong = document.createElement("strong");
    strong.textContent = `${res.sector.code} · ${this.sectorName(res.sector.code) || res.sector.name}`;
    line.append(t("form.sector"), ": ", strong);
    if (res.unit && res.unit !== res.sector.name) line.append(` · ${t("form.sector_unit", { unit: res.unit })}`);
    if (res.method === "nearest") line.append(` ${t("form.sector_nearest", { distance: formatDistance(res.distance_m) })}`);
  }
}

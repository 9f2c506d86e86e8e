// The location pin, loaded only when the citizen asks for it (Leaflet is ~150 KB: a slow connection
// pays for it only then). Blank basemap unless /api/v1/ui-config names a tile server, like the staff maps;
// the city's sectors are drawn for orientation. The pin is draggable; a tap on the map moves it there too.

import { request } from "./net.js";

const TURKESTAN = [43.2975, 68.251];
let loading = null;

function addOnce(tag, attrs) {
  return new Promise((resolve, reject) => {
    const el = document.createElement(tag);
    Object.assign(el, attrs);
    el.onload = () => resolve();
    el.onerror = () => reject(new Error(`could not load ${attrs.src || attrs.href}`));
    document.head.append(el);
  });
}

/** Load Leaflet (script and styles) and the shared map helpers, once. */
function loadLeaflet() {
  if (!loading) {
    loading = Promise.all([
      addOnce("link", { rel: "stylesheet", href: "/vendor/leaflet/leaflet.css" }),
      addOnce("script", { src: "/vendor/leaflet/leaflet.js" }),
    ]).then(() => import("/static/js/mapkit.js"));
    loading.catch(() => {
      loading = null;
    });
  }
  return loading;
}

export class PinMap {
  /** ``onMove({lat, lon}, byHand)`` after the pin is set or dragged. */
  constructor(el, { onMove, label }) {
    this.el = el;
    this.onMove = onMove;
    this.label = label;
    this.map = null;
    this.marker = null;
    this.circle = null;
  }

  /** Show the map (loading it the first time). */
  async open() {
    this.el.hidden = false;
    if (this.map) {
      this.map.invalidateSize();
      return;
    }
    const [mapkit, cfg] = await Promise.all([loadLeaflet(), request("/api/v1/ui-config").then((r) => r.data)]);
    const L = window.L;
    this.map = mapkit.createMap(this.el, { tileUrl: cfg.tile_url });
    this.map.setView(TURKESTAN, 13);
    request("/api/v1/sectors").then(({ data }) => {
      const drawn = mapkit.drawSectors(this.map, data);
      drawn.labels.remove(); // sector codes mean something to staff, not to citizens
      if (!this.marker && drawn.bounds.isValid()) this.map.fitBounds(drawn.bounds, { padding: [6, 6] });
    }).catch(() => {});
    this.marker = null;
    this.makeMarker = (lat, lon) => {
      const m = L.marker([lat, lon], { draggable: true, autoPan: true, title: this.label(), alt: this.label() });
      m.on("dragend", () => {
        const p = m.getLatLng();
        this.circle?.remove();
        this.onMove({ lat: p.lat, lon: p.lng }, true);
      });
      return m.addTo(this.map);
    };
    this.map.on("click", (e) => this.place(e.latlng.lat, e.latlng.lng, null, true));
    this.el.addEventListener("keydown", (e) => {
      if ((e.key === "Enter" || e.key === " ") && e.target === this.el) {
        e.preventDefault();
        const c = this.map.getCenter();
        this.place(c.lat, c.lng, null, true);
      }
    });
  }

  /** Put the pin at (lat, lon); ``accuracy`` (metres) draws the fix's circle. */
  place(lat, lon, accuracy = null, byHand = false) {
    const L = window.L;
    if (!this.marker) this.marker = this.makeMarker(lat, lon);
    else this.marker.setLatLng([lat, lon]);
    this.circle?.remove();
    this.circle = null;
    if (accuracy) {
      this.circle = L.circle([lat, lon], { radius: accuracy, weight: 1, color: "#0b5d8c", fillOpacity: 0.1,
                                           interactive: false }).addTo(this.map);
      this.map.fitBounds(this.circle.getBounds(), { maxZoom: 18, padding: [12, 12] });
    } else if (!byHand) {
      this.map.setView([lat, lon], Math.max(this.map.getZoom(), 16));
    }
    this.onMove({ lat, lon }, byHand);
  }

  /** Centre of the map now (to drop the pin there). */
  center() {
    const c = this.map.getCenter();
    return { lat: c.lat, lon: c.lng };
  }
}

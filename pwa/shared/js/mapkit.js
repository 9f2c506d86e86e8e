// Leaflet helpers shared by the dispatcher map and the operator console: the base map (tiles from
// /api/v1/ui-config, or a blank background), the six sectors in distinct colours with code labels.
// Leaflet itself is the vendored UMD build (window.L), loaded by a classic <script defer> before the modules.

const L = window.L;

/** Distinct sector colours (no amber or red: those mean SLA risk on the map). */
export const SECTOR_COLOURS = {
  S1: "#1f78b4",
  S2: "#33a02c",
  S3: "#6a3d9a",
  S4: "#b15928",
  S5: "#e7298a",
  S6: "#01665e",
};
const EXTRA = ["#4d4d4d", "#7570b3", "#1b9e77", "#a6761d", "#666666", "#386cb0"];

/** The colour of sector ``code`` (stable for codes beyond the six). */
export function sectorColour(code) {
  if (SECTOR_COLOURS[code]) return SECTOR_COLOURS[code];
  let h = 0;
  for (const ch of String(code)) h = (h * 31 + ch.charCodeAt(0)) >>> 0;
  return EXTRA[h % EXTRA.length];
}

/** A Leaflet map in ``el``; a tile layer when ``tileUrl`` is set, else a plain background. */
export function createMap(el, { tileUrl = null, zoomSnap = 0.25 } = {}) {
  const map = L.map(el, { zoomControl: true, zoomSnap, minZoom: 10, maxZoom: 19, keyboard: true });
  map.attributionControl.setPrefix("Leaflet");
  if (tileUrl) {
    L.tileLayer(tileUrl, { maxZoom: 19, crossOrigin: true }).addTo(map);
  } else {
    el.classList.add("map-blank");
  }
  map.createPane("sectors").style.zIndex = 350;
  map.createPane("sectorLabels").style.zIndex = 360;
  map.getPane("sectorLabels").style.pointerEvents = "none";
  return map;
}

/**
 * Draw the sectors (a GeoJSON FeatureCollection from /api/v1/sectors) as non-interactive SVG polygons
 * (class ``sector sector-<code>``) with code labels; returns {layer, labels, bounds}.
 */
export function drawSectors(map, collection) {
  const renderer = L.svg({ pane: "sectors" });
  const layer = L.geoJSON(collection, {
    pane: "sectors",
    renderer,
    interactive: false,
    style: (f) => {
      const colour = sectorColour(f.properties.code);
      return { color: colour, weight: 2, opacity: 0.9, fillColor: colour, fillOpacity: 0.1,
               className: `sector sector-${f.properties.code}` };
    },
  }).addTo(map);
  const bounds = layer.getBounds();
  // Polygon centroids need a map with a view: the first draw fits the map to the sectors.
  if (!map._loaded && bounds.isValid()) map.fitBounds(bounds, { padding: [8, 8] });
  const labels = L.layerGroup().addTo(map);
  layer.eachLayer((poly) => {
    const code = poly.feature.properties.code;
    const span = document.createElement("span");
    span.textContent = code;
    span.style.color = sectorColour(code);
    const icon = L.divIcon({ className: "sector-label", html: span, iconSize: null });
    L.marker(poly.getCenter(), { icon, interactive: false, keyboard: false, pane: "sectorLabels" }).addTo(labels);
  });
  return { layer, labels, bounds };
}

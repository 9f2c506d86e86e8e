// Open appeals on the map: one canvas circle per appeal (filled by status, ringed by SLA) inside a
// marker cluster with chunked loading, so 10,000 appeals stay smooth. Keeps id -> marker, applies
// snapshots from /map/appeals as a diff and single upserts/removals from live events.

import { markerStyle } from "./palette.js";

const L = window.L;
const SLA_RANK = { breached: 3, at_risk: 2, on_time: 1, none: 0 };

function clusterIcon(cluster) {
  let worst = 0;
  for (const m of cluster.getAllChildMarkers()) {
    const r = SLA_RANK[m.appeal.sla] || 0;
    if (r > worst) worst = r;
    if (worst === 3) break;
  }
  const n = cluster.getChildCount();
  const size = n < 10 ? 32 : n < 100 ? 38 : n < 1000 ? 44 : 52;
  const cls = worst === 3 ? "cl-breached" : worst === 2 ? "cl-at_risk" : "cl-ok";
  return L.divIcon({ html: `<span>${n}</span>`, className: `appeal-cluster ${cls}`, iconSize: L.point(size, size) });
}

/** The appeals layer. ``onSelect(id)`` on click; ``tooltip(appeal)`` gives the hover text. */
export class AppealLayer {
  constructor(map, { onSelect, tooltip }) {
    this.map = map;
    this.renderer = L.canvas({ padding: 0.3, tolerance: 4 });
    this.markers = new Map();
    this.selectedId = null;
    this.cluster = L.markerClusterGroup({
      chunkedLoading: true,
      chunkInterval: 100,
      chunkDelay: 20,
      showCoverageOnHover: false,
      spiderfyOnMaxZoom: true,
      disableClusteringAtZoom: 18,
      maxClusterRadius: 45,
      iconCreateFunction: clusterIcon,
    }).addTo(map);
    this.tip = L.tooltip({ direction: "top", offset: [0, -8], className: "appeal-tip" });
    this.cluster.on("click", (e) => e.layer.appeal && onSelect(e.layer.appeal.id));
    this.cluster.on("mouseover", (e) => {
      if (!e.layer.appeal) return;
      this.tip.setLatLng(e.layer.getLatLng()).setContent(tooltip(e.layer.appeal)).addTo(map);
    });
    this.cluster.on("mouseout", () => this.tip.remove());
    this.halo = L.circleMarker([0, 0], { radius: 15, color: "#111", weight: 2.5, dashArray: "4 3", fill: false,
                                         interactive: false, renderer: this.renderer });
  }

  _make(a) {
    const m = L.circleMarker([a.lat, a.lon], { ...markerStyle(a.status, a.sla), renderer: this.renderer,
                                               bubblingMouseEvents: true });
    m.appeal = a;
    return m;
  }

  /** Replace the content with a snapshot (array of appeal objects): add new, update changed, drop missing. */
  replaceAll(appeals) {
    const keep = new Set();
    const toAdd = [];
    const toRemove = [];
    const restyled = [];
    for (const a of appeals) {
      keep.add(a.id);
      const m = this.markers.get(a.id);
      if (!m) {
        const fresh = this._make(a);
        this.markers.set(a.id, fresh);
        toAdd.push(fresh);
      } else if (this._moved(m.appeal, a)) {
        // A moved marker leaves and re-enters the cluster tree (the same marker object).
        toRemove.push(m);
        toAdd.push(m);
        m.appeal = { ...m.appeal, ...a };
        m.setLatLng([a.lat, a.lon]);
        this._restyle(m);
      } else if (this._changed(m.appeal, a)) {
        m.appeal = { ...m.appeal, ...a };
        this._restyle(m);
        restyled.push(m);
      } else {
        m.appeal = { ...m.appeal, ...a };
      }
    }
    for (const [id, m] of this.markers) {
      if (!keep.has(id)) {
        toRemove.push(m);
        this.markers.delete(id);
      }
    }
    if (toRemove.length) this.cluster.removeLayers(toRemove);
    if (toAdd.length) this.cluster.addLayers(toAdd);
    if (restyled.length) this.cluster.refreshClusters(restyled);
    this._refreshHalo();
  }

  _moved(a, b) {
    return a.lat !== b.lat || a.lon !== b.lon;
  }

  _changed(a, b) {
    return a.status !== b.status || a.sla !== b.sla || a.assignee_id !== b.assignee_id || a.sector !== b.sector ||
      a.type !== b.type || a.topic !== b.topic;
  }

  _restyle(m) {
    const style = markerStyle(m.appeal.status, m.appeal.sla);
    // Only a drawn marker is restyled now; one hidden in a cluster takes its options when drawn.
    if (this.map.hasLayer(m)) m.setStyle(style);
    else L.setOptions(m, style);
  }

  /** Add or update one appeal (fields merged into what is known). */
  upsert(a) {
    const m = this.markers.get(a.id);
    if (!m) {
      const fresh = this._make(a);
      this.markers.set(a.id, fresh);
      this.cluster.addLayer(fresh);
    } else if (this._moved(m.appeal, a)) {
      this.cluster.removeLayer(m);
      m.appeal = { ...m.appeal, ...a };
      m.setLatLng([a.lat, a.lon]);
      this._restyle(m);
      this.cluster.addLayer(m);
    } else if (this._changed(m.appeal, a)) {
      m.appeal = { ...m.appeal, ...a };
      this._restyle(m);
      // An array: markercluster wraps only an L.Marker itself, and walks any other object's properties.
      this.cluster.refreshClusters([m]);
    } else {
      m.appeal = { ...m.appeal, ...a };
    }
    this._refreshHalo();
  }

  /** Remove an appeal (closed, answered, filtered out...). */
  remove(id) {
    const m = this.markers.get(id);
    if (!m) return;
    this.cluster.removeLayer(m);
    this.markers.delete(id);
    this._refreshHalo();
  }

  get(id) {
    return this.markers.get(id)?.appeal || null;
  }

  get size() {
    return this.markers.size;
  }

  all() {
    return [...this.markers.values()].map((m) => m.appeal);
  }

  /** Mark ``id`` as selected (a dashed halo) and, when ``reveal``, bring it into view out of its cluster. */
  select(id, { reveal = false } = {}) {
    this.selectedId = id;
    this._refreshHalo();
    const m = this.markers.get(id);
    if (!m || !reveal) return;
    // Not markercluster's zoomToShowLayer: its pending handlers break when the marker changes meanwhile.
    const visible = this.cluster.getVisibleParent(m) === m;
    if (visible) {
      if (!this.map.getBounds().contains(m.getLatLng())) this.map.panTo(m.getLatLng());
    } else {
      this.map.once("moveend", () => setTimeout(() => {
        // Still ours and still clustered with close neighbours (after the cluster's own update): fan it out.
        if (this.markers.get(id) !== m || !this.cluster.hasLayer(m) || this.selectedId !== id) return;
        const parent = this.cluster.getVisibleParent(m);
        if (parent && parent !== m && parent._icon && typeof parent.spiderfy === "function") parent.spiderfy();
      }, 300));
      this.map.setView(m.getLatLng(), Math.min(18, Math.max(this.map.getZoom() + 2, 16)), { animate: false });
    }
  }

  _refreshHalo() {
    const m = this.selectedId !== null ? this.markers.get(this.selectedId) : null;
    if (m) {
      this.halo.setLatLng(m.getLatLng());
      if (!this.map.hasLayer(this.halo)) this.halo.addTo(this.map);
    } else if (this.map.hasLayer(this.halo)) {
      this.halo.remove();
    }
  }
}

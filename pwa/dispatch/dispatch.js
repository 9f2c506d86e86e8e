// Dispatcher live map, entry module: who I am and the settings, the sectors, open appeals for the
// visible box (re-fetched on move, debounced), live Socket.IO events applied without reload, and the
// filters, counters, side panel, staff positions and events feed wired together.

import { ApiError, api, setApiLanguage } from "/static/js/api.js";
import { isOpen } from "/static/js/catalog.js";
import { formatNumber } from "/static/js/format.js";
import { initialLanguage, onLanguageChange, setLanguage, t } from "/static/js/i18n.js";
import { connectLive } from "/static/js/live.js";
import { createMap, drawSectors } from "/static/js/mapkit.js";
import { initTopbar, setConnection } from "/static/js/topbar.js";
import { AppealLayer } from "./appeal-layer.js";
import { Counters } from "./counters.js";
import { DetailPanel } from "./detail.js";
import { Feed } from "./feed.js";
import { Filters } from "./filters.js";
import { renderLegend } from "./legend.js";
import { StaffLayer } from "./staff-layer.js";

const $ = (sel) => document.querySelector(sel);
const BBOX_PAD = 0.25;
const MOVE_DEBOUNCE_MS = 350;
const RESYNC_MS = 300000; // SLA states age without events: refresh the snapshot now and then
const STAFF_TTL_MS = 30000;
const RECENT_KEEP = 500;
const APPLIED_KEEP = 20000; // appeals whose last applied event id is remembered
const REFLECTED_WINDOW = 300; // = REFLECTED_WINDOW in server/services/mapview.py
// Who may call what (server/security.py): asking without the right only logs a 403 in the console.
const CAN_REASSIGN = ["dispatcher", "unit_head"];
const CAN_LIST_STAFF = ["dispatcher", "unit_head", "admin"];
const CAN_SEE_POSITIONS = ["dispatcher", "operator", "inspector", "unit_head"];

const state = {
  me: null,
  cfg: null,
  sectors: null, // GeoJSON
  sectorNames: new Map(),
  topics: [],
  fetched: null, // {bounds, q}
  snapSeq: 0,
  recent: [],
  staff: { at: 0, list: null, forbidden: false },
};

function appealFromRow(fields, row) {
  const a = {};
  fields.forEach((f, i) => {
    a[f] = row[i];
  });
  return a;
}

function slaFor(a, known, ev) {
  if (!a.due_at) return "none";
  // The server's stored state (the SLA tick's mark, kept while paused) wins over the local clock.
  if (a.sla === "breached" || a.sla === "met") return a.sla;
  if (a.sla === "at_risk" && ev.kind === "appeal.sla_at_risk") return "at_risk";
  const now = Date.now();
  const due = Date.parse(a.due_at);
  if (now >= due) return "breached";
  const created = known?.created_at ?? (ev.kind === "appeal.registered" ? ev.at : null);
  if (created) {
    const start = Date.parse(created);
    return (now - start) / (due - start) >= state.cfg.at_risk_share ? "at_risk" : "on_time";
  }
  return known?.sla && known.sla !== "none" ? known.sla : "on_time";
}

async function staffList() {
  const s = state.staff;
  if (s.forbidden || !CAN_LIST_STAFF.includes(state.me.role)) return null;
  if (s.list && Date.now() - s.at < STAFF_TTL_MS) return s.list;
  try {
    s.list = await api("/api/v1/staff");
    s.at = Date.now();
  } catch (err) {
    if (err instanceof ApiError && err.status === 403) s.forbidden = true;
    return s.list;
  }
  return s.list;
}

function showCount(layer) {
  const out = $("[data-js=shown-count]");
  out.dataset.count = String(layer.size);
  out.textContent = t("map.shown", { n: formatNumber(layer.size) });
}

async function main() {
  const [me, cfg] = await Promise.all([api("/api/v1/auth/me"), api("/api/v1/ui-config")]);
  state.me = me;
  state.cfg = cfg;
  onLanguageChange(setApiLanguage);
  await setLanguage(initialLanguage(me.language));
  initTopbar(me);
  setConnection("connecting");

  const map = createMap($("[data-js=map]"), { tileUrl: cfg.tile_url });
  const [sectors, topics] = await Promise.all([api("/api/v1/sectors", { lang: true }), api("/api/v1/topics", { lang: true })]);
  state.sectors = sectors;
  state.topics = topics;
  const drawn = drawSectors(map, sectors);
  map.fitBounds(drawn.bounds, { padding: [12, 12] });
  const sectorList = () => sectors.features.map((f) => ({ code: f.properties.code, name: state.sectorNames.get(f.properties.code) }))
    .sort((x, y) => (x.code < y.code ? -1 : 1));
  const setNames = (fc) => {
    for (const f of fc.features) state.sectorNames.set(f.properties.code, f.properties.name);
  };
  setNames(sectors);

  const layer = new AppealLayer(map, {
    onSelect: (id) => openAppeal(id, false),
    tooltip: (a) => `${a.reg_no} · ${t(`status.${a.status}`)} · ${t(`sla.${a.sla}`)}`,
  });
  const staffLayer = new StaffLayer(map);
  const detail = new DetailPanel($("[data-js=detail]"), {
    staff: staffList,
    canReassign: CAN_REASSIGN.includes(me.role),
    atRiskShare: cfg.at_risk_share,
    assigneeOf: (id) => {
      const a = layer.get(id);
      return a ? a.assignee_id : undefined;
    },
    onClose: () => layer.select(null),
    onChanged: () => {
      state.staff.at = 0;
    },
  });
  const counters = new Counters($("[data-js=counters-body]"), {
    sectorName: (code) => state.sectorNames.get(code),
    onPick: (code) => {
      if (code === null) {
        filters.set("sector", "none");
        return;
      }
      drawn.layer.eachLayer((poly) => {
        if (poly.feature.properties.code === code) map.fitBounds(poly.getBounds(), { padding: [16, 16] });
      });
    },
  });
  const feed = new Feed($("[data-js=feed]"), $("[data-js=feed-empty]"), { onPick: (id) => openAppeal(id, true) });
  let filtersReady = false;
  const filters = new Filters($("[data-js=filters]"), {
    onChange: () => filtersReady && loadSnapshot(true),
    onStaff: (on) => staffLayer.setVisible(on && CAN_SEE_POSITIONS.includes(me.role)),
  });
  filters.render(topics, sectorList());
  renderLegend($(".legend"), sectorList());

  function openAppeal(id, reveal) {
    layer.select(id, { reveal: reveal && layer.get(id) !== null });
    detail.show(id);
  }

  // The last event id applied to each appeal's marker: an older event that arrives late (ids are not
  // committed in order) is listed in the feed but must not roll the marker back.
  const appliedId = new Map();
  function applyToLayer(ev) {
    const a = ev.appeal;
    if (ev.id < (appliedId.get(a.id) ?? 0)) return;
    appliedId.delete(a.id); // re-insert: the map stays in order of use, so the oldest entries go first
    appliedId.set(a.id, ev.id);
    if (appliedId.size > APPLIED_KEEP) appliedId.delete(appliedId.keys().next().value);
    if (!isOpen(a.status) || a.lat === null || a.lon === null || !filters.matches(a)) {
      layer.remove(a.id);
      return;
    }
    const known = layer.get(a.id);
    const created = known?.created_at ?? (ev.kind === "appeal.registered" ? ev.at : undefined);
    layer.upsert({
      id: a.id, lon: a.lon, lat: a.lat, status: a.status, type: a.type, topic: a.topic, sector: a.sector,
      assignee_id: a.assignee_id, reg_no: a.reg_no, due_at: a.due_at, sla: slaFor(a, known, ev), created_at: created,
    });
  }

  function onEvent(ev) {
    state.recent.push(ev);
    if (state.recent.length > RECENT_KEEP) state.recent.shift();
    applyToLayer(ev);
    showCount(layer);
    feed.add(ev);
    counters.schedule();
    if (detail.openId === ev.appeal.id) detail.reload();
  }

  async function loadSnapshot(force = false) {
    const view = map.getBounds();
    const q = JSON.stringify(filters.values());
    if (!force && state.fetched && state.fetched.q === q && state.fetched.bounds.contains(view)) return null;
    const box = view.pad(BBOX_PAD);
    const params = filters.query();
    params.set("bbox", [box.getWest(), box.getSouth(), box.getEast(), box.getNorth()].map((x) => x.toFixed(5)).join(","));
    const seq = ++state.snapSeq;
    let res;
    try {
      res = await api(`/api/v1/map/appeals?${params}`);
    } catch (err) {
      if (seq === state.snapSeq) showError(err);
      return null;
    }
    if (seq !== state.snapSeq) return null;
    $("[data-js=map-error]").hidden = true;
    const appeals = res.rows.map((r) => appealFromRow(res.fields, r)).filter((a) => filters.matches(a));
    for (const a of appeals) {
      const known = layer.get(a.id);
      if (known?.created_at) a.created_at = known.created_at;
      if (known?.due_at) a.due_at = known.due_at;
    }
    layer.replaceAll(appeals);
    // Events that arrived while it loaded and that it does not show: newer, or committed late below its id.
    const reflected = new Set(res.reflected_event_ids || []);
    const windowFloor = res.last_event_id - REFLECTED_WINDOW;
    for (const ev of state.recent) {
      if (ev.id > res.last_event_id || (ev.id > windowFloor && !reflected.has(ev.id))) applyToLayer(ev);
    }
    state.fetched = { bounds: box, q };
    showCount(layer);
    return { lastId: res.last_event_id, reflectedIds: res.reflected_event_ids || [] };
  }

  // The first snapshot fixes where the live stream starts, so nothing may supersede it: moves and
  // filter changes are listened to only once it is in.
  let first = await loadSnapshot(true);
  while (first === null) {
    await new Promise((resolve) => setTimeout(resolve, 3000));
    first = await loadSnapshot(true);
  }
  let moveTimer = null;
  map.on("moveend", () => {
    clearTimeout(moveTimer);
    moveTimer = setTimeout(() => loadSnapshot(false), MOVE_DEBOUNCE_MS);
  });
  filtersReady = true;
  if (JSON.stringify(filters.values()) !== state.fetched.q) loadSnapshot(true); // changed while loading
  counters.refresh();
  const positionsAllowed = CAN_SEE_POSITIONS.includes(me.role);
  $("[data-js=filter-staff]").closest("label").hidden = !positionsAllowed;
  staffLayer.setVisible(positionsAllowed && filters.showStaff);
  connectLive({
    lastId: first.lastId,
    reflectedIds: first.reflectedIds,
    onEvent,
    onStatus: setConnection,
    onResync: async () => {
      counters.refresh();
      return loadSnapshot(true);
    },
  });
  setInterval(() => {
    loadSnapshot(true);
    counters.refresh();
  }, RESYNC_MS);

  const relabel = () => {
    filters.render(state.topics, sectorList());
    renderLegend($(".legend"), sectorList());
    counters.render();
    feed.render();
    staffLayer.render();
    showCount(layer);
  };
  onLanguageChange(async () => {
    relabel(); // at once with what we have, then with the server's names in the new language
    detail.reload();
    try {
      const [fc, tp] = await Promise.all([api("/api/v1/sectors", { lang: true }), api("/api/v1/topics", { lang: true })]);
      setNames(fc);
      state.topics = tp;
      relabel();
    } catch {
      /* keep the names we have */
    }
  });
}

function showError(err) {
  const box = $("[data-js=map-error]");
  box.textContent = err instanceof ApiError ? err.message : t("common.network_error");
  box.hidden = false;
}

main().catch((err) => {
  if (err instanceof ApiError && err.status === 401) return; // on the way to /login
  if (!(err instanceof ApiError)) console.error(err); // a bug, not an answer: say so in the console
  showError(err);
});

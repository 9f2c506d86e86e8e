// Quality control page, entry module: the inspector's queue (photos, a small map of where the device was
// against the appeal point and the photos' EXIF positions, approve / return), the QC analyst's call-backs
// (the citizen's phone, the outcome), and the units' quality figures. Tabs appear by role.

import { ApiError, api, setApiLanguage } from "/static/js/api.js";
import { formatDateTime, formatDistance } from "/static/js/format.js";
import { initialLanguage, onLanguageChange, setLanguage, t } from "/static/js/i18n.js";
import { initTopbar } from "/static/js/topbar.js";

const $ = (sel, root = document) => root.querySelector(sel);
const TABS_BY_ROLE = { inspector: ["queue", "units"], qc_analyst: ["callbacks", "units"] };
const POINT_STYLE = {
  appeal: { color: "#1f5fbf", cls: "pt-appeal" },
  arrive: { color: "#b3261e", cls: "pt-device" },
  resolve: { color: "#b3261e", cls: "pt-device" },
};
const state = { me: null, cfg: null, tab: null, maps: [], loadSeq: {}, epoch: 0, acted: new Map() };

// A reload and an action can cross: a list fetched before an approve still holds the approved item, and
// two reloads (a language switch while the first one is in flight) can answer out of order. So only the
// newest load of a list renders, and it drops the items this page acted on after that load had started
// (an item acted on earlier is the server's to show again, e.g. an appeal returned to QC a second time).
async function fetchFresh(kind, path, opts = {}) {
  const seq = (state.loadSeq[kind] || 0) + 1;
  state.loadSeq[kind] = seq;
  const startEpoch = state.epoch;
  const data = await api(path, opts);
  if (state.loadSeq[kind] !== seq) return null;
  return data.items.filter((it) => !((state.acted.get(`${kind}:${it.id}`) ?? -1) > startEpoch));
}

/** Remember that this page acted on an item, so that an older reload in flight does not bring it back. */
function markActed(kind, id) {
  state.epoch += 1;
  state.acted.set(`${kind}:${id}`, state.epoch);
}

/** Run one POST for an item's form: buttons off while it runs, the item gone on success, the error shown. */
async function submitItem(kind, id, node, path, body, emptyBox, listBox) {
  const err = $("[data-js=item-error]", node);
  const buttons = node.querySelectorAll("button");
  err.textContent = "";
  buttons.forEach((b) => { b.disabled = true; });
  try {
    await api(path, { method: "POST", body });
    markActed(kind, id);
    node.remove();
    if (!$(listBox).children.length) $(emptyBox).hidden = false;
  } catch (e) {
    err.textContent = e instanceof ApiError ? e.message : t("common.network_error");
  } finally {
    buttons.forEach((b) => { b.disabled = false; });
  }
}

function showError(err) {
  const box = $("[data-js=error]");
  if (!err) {
    box.hidden = true;
    return;
  }
  box.textContent = err instanceof ApiError ? err.message : t("common.network_error");
  box.hidden = false;
}

function pointLabel(p) {
  if (p.kind.startsWith("photo_")) return t("qc.point_photo", { kind: t(`qc.photo_${p.kind.slice(6)}`) });
  return t(`qc.point_${p.kind}`);
}

function drawMap(el, points) {
  if (!window.L || !points.length) {
    el.hidden = true;
    return;
  }
  const map = L.map(el, { zoomControl: true, attributionControl: false });
  if (state.cfg?.tile_url) L.tileLayer(state.cfg.tile_url, { maxZoom: 19 }).addTo(map);
  const bounds = [];
  for (const p of points) {
    const style = POINT_STYLE[p.kind] || { color: "#2d7d32" };
    const marker = L.circleMarker([p.lat, p.lon], { radius: p.kind === "appeal" ? 8 : 6, color: style.color,
      fillOpacity: 0.6 }).addTo(map);
    marker.bindTooltip(pointLabel(p));
    if (p.accuracy_m) L.circle([p.lat, p.lon], { radius: p.accuracy_m, color: style.color, weight: 1,
      fillOpacity: 0.08 }).addTo(map);
    bounds.push([p.lat, p.lon]);
  }
  map.fitBounds(bounds, { padding: [24, 24], maxZoom: 17 });
  state.maps.push(map);
}

function renderQueueItem(item) {
  const node = $("[data-js=queue-item]").content.firstElementChild.cloneNode(true);
  $("[data-js=reg]", node).textContent = item.reg_no;
  $("[data-js=flag]", node).hidden = !item.flagged;
  $("[data-js=what]", node).textContent = `${item.topic_name}: ${item.description || ""}`;
  $("[data-js=meta]", node).textContent = [item.address, item.unit, item.assignee,
    item.resolved_at && t("qc.resolved_at", { at: formatDateTime(item.resolved_at) })].filter(Boolean).join(" · ");
  const photos = $("[data-js=photos]", node);
  for (const ph of item.photos) {
    const fig = document.createElement("figure");
    const link = document.createElement("a");
    link.href = ph.large;
    link.target = "_blank";
    link.rel = "noopener";
    const img = document.createElement("img");
    img.src = ph.thumb;
    img.loading = "lazy";
    img.alt = t(`qc.photo_${ph.kind}`);
    link.append(img);
    const cap = document.createElement("figcaption");
    cap.textContent = t(`qc.photo_${ph.kind}`);
    fig.append(link, cap);
    photos.append(fig);
  }
  const list = $("[data-js=points]", node);
  for (const p of item.points) {
    if (p.kind === "appeal") continue;
    const li = document.createElement("li");
    li.className = (POINT_STYLE[p.kind] || { cls: "pt-photo" }).cls;
    li.textContent = p.distance_m == null ? pointLabel(p)
      : t("qc.point_distance", { what: pointLabel(p), distance: formatDistance(p.distance_m) });
    list.append(li);
  }
  if (!list.children.length) {
    const li = document.createElement("li");
    li.textContent = t("qc.no_positions");
    list.append(li);
  }
  const answer = $("[data-js=approve] textarea", node);
  answer.value = t("qc.default_answer");
  const act = (path, body) => submitItem("queue", item.id, node, path, body, "[data-js=queue-empty]",
    "[data-js=queue]");
  $("[data-js=approve]", node).addEventListener("submit", (ev) => {
    ev.preventDefault();
    act(`/api/v1/qc/appeals/${item.id}/approve`, { answer: answer.value });
  });
  $("[data-js=return]", node).addEventListener("submit", (ev) => {
    ev.preventDefault();
    act(`/api/v1/qc/appeals/${item.id}/return`, { reason: ev.target.reason.value });
  });
  return { node, points: item.points };
}

async function loadQueue() {
  const items = await fetchFresh("queue", "/api/v1/qc/queue", { lang: true });
  if (!items) return;
  state.maps.forEach((m) => m.remove());
  state.maps = [];
  const box = $("[data-js=queue]");
  box.replaceChildren();
  $("[data-js=queue-empty]").hidden = items.length > 0;
  for (const item of items) {
    const { node, points } = renderQueueItem(item);
    box.append(node);
    drawMap($("[data-js=map]", node), points);
  }
}

function renderCallback(item) {
  const node = $("[data-js=callback-item]").content.firstElementChild.cloneNode(true);
  $("[data-js=reg]", node).textContent = item.reg_no;
  const phone = $("[data-js=phone]", node);
  phone.textContent = item.citizen?.phone || "—";
  if (item.citizen?.phone) phone.href = `tel:${item.citizen.phone.replace(/\s+/g, "")}`;
  $("[data-js=who]", node).textContent = [item.citizen?.name, item.topic_name, item.unit,
    item.closed_at && formatDateTime(item.closed_at)].filter(Boolean).join(" · ");
  $("[data-js=answer]", node).textContent = item.answer || "";
  const form = $("[data-js=outcome]", node);
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const reached = form.reached.value === "yes";
    const body = { reached, comment: form.comment.value || null,
      satisfied: reached && form.satisfied.value ? Number(form.satisfied.value) : null };
    submitItem("callbacks", item.id, node, `/api/v1/qc/callbacks/${item.id}`, body, "[data-js=cb-empty]",
      "[data-js=callbacks]");
  });
  return node;
}

async function loadCallbacks() {
  const items = await fetchFresh("callbacks", "/api/v1/qc/callbacks", { lang: true });
  if (!items) return;
  $("[data-js=callbacks]").replaceChildren(...items.map(renderCallback));
  $("[data-js=cb-empty]").hidden = items.length > 0;
}

function pct(x) {
  return x == null ? "—" : `${Math.round(x * 100)}%`;
}

async function loadUnits() {
  const units = await fetchFresh("units", "/api/v1/qc/units");
  if (!units) return;
  const rows = units.map((u) => {
    const tr = document.createElement("tr");
    const cells = [u.unit, u.mean_rating ?? "—", pct(u.dispute_rate), u.callback_satisfaction ?? "—",
      pct(u.returned_rate)];
    cells.forEach((v, i) => {
      const td = document.createElement(i ? "td" : "th");
      if (i) td.className = "num";
      else td.scope = "row";
      td.textContent = String(v);
      tr.append(td);
    });
    return tr;
  });
  $("[data-js=units]").replaceChildren(...rows);
}

const LOADERS = { queue: loadQueue, callbacks: loadCallbacks, units: loadUnits };

async function openTab(name) {
  state.tab = name;
  document.querySelectorAll("[data-js=tab]").forEach((b) => b.setAttribute("aria-selected",
    String(b.dataset.tab === name)));
  document.querySelectorAll("[data-panel]").forEach((p) => {
    p.hidden = p.dataset.panel !== name;
  });
  showError(null);
  try {
    await LOADERS[name]();
  } catch (e) {
    showError(e);
  }
}

async function main() {
  state.me = await api("/api/v1/auth/me");
  state.cfg = await api("/api/v1/ui-config");
  const lang = initialLanguage(state.me.language);
  await setLanguage(lang);
  setApiLanguage(lang);
  onLanguageChange((code) => {
    setApiLanguage(code);
    openTab(state.tab);
  });
  initTopbar(state.me);
  const tabs = TABS_BY_ROLE[state.me.role] || ["units"];
  document.querySelectorAll("[data-js=tab]").forEach((b) => {
    b.hidden = !tabs.includes(b.dataset.tab);
    b.addEventListener("click", () => openTab(b.dataset.tab));
  });
  document.body.dataset.ready = "1";
  await openTab(tabs[0]);
}

main().catch(showError);

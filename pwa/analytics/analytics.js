// Analytics dashboard, entry module: filters -> GET /api/v1/analytics/dashboard -> every figure redrawn
// (KPIs, bars, an SVG trend chart, compliance tables, ratings, a Leaflet hotspot grid, the oldest open).
// The server sends no personal data and already-rounded places; this page only draws what it gets.

import { api, setApiLanguage } from "/static/js/api.js";
import { CHANNELS, TYPES } from "/static/js/catalog.js";
import { formatNumber } from "/static/js/format.js";
import { apply, initialLanguage, language, onLanguageChange, setLanguage, t } from "/static/js/i18n.js";
import { createMap, drawSectors } from "/static/js/mapkit.js";
import { initTopbar } from "/static/js/topbar.js";

const $ = (sel) => document.querySelector(sel);
const SVG = "http://www.w3.org/2000/svg";
const PALETTE = ["#2f6fb3", "#d9822b", "#3a9d5d", "#b33f40", "#7b5ea7", "#8c6d31", "#d6619a", "#5f7d8c",
  "#9bbb3b", "#2ba3a3", "#c05f1c", "#555f9e", "#a35b7b", "#6b8e23"];
const state = { data: null, topics: [], topicNames: new Map(), sectorNames: new Map(), map: null, layer: null, seq: 0 };

function el(tag, attrs = {}, text) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

const pct = (x) => (x === null || x === undefined ? "—" : `${(x * 100).toFixed(1)}%`);

function label(dim, key) {
  if (key === "none") return "—";
  if (dim === "type") return t(`type.${key}`);
  if (dim === "channel") return t(`channel.${key}`);
  if (dim === "status") return t(`status.${key}`);
  if (dim === "topic") return state.topicNames.get(key) || key;
  if (dim === "sector") return state.sectorNames.get(key) || key;
  return key;
}

function fillSelect(select, values, name) {
  const current = select.value;
  select.replaceChildren(el("option", { value: "" }, t("common.all")));
  for (const v of values) select.append(el("option", { value: v }, label(name, v)));
  select.value = current;
}

function fillFilters() {
  fillSelect($("[data-js=f-type]"), TYPES, "type");
  fillSelect($("[data-js=f-topic]"), state.topics, "topic");
  fillSelect($("[data-js=f-sector]"), [...state.sectorNames.keys()], "sector");
  fillSelect($("[data-js=f-channel]"), CHANNELS, "channel");
  const period = $("[data-js=f-period]");
  const p = period.value || "month";
  period.replaceChildren(...["day", "week", "month"].map((v) => el("option", { value: v }, t(`analytics.period_${v}`))));
  period.value = p;
}

function params() {
  const form = new FormData($("[data-js=filters]"));
  const q = new URLSearchParams();
  for (const [k, v] of form.entries()) if (v) q.set(k, v);
  return q;
}

function bars(box, dim, rows) {
  const max = Math.max(1, ...rows.map((r) => r.count));
  box.replaceChildren(...rows.map((r) => {
    const row = el("div", { class: "an-bar", "data-key": r.key });
    const bar = el("i");
    bar.style.width = `${(100 * r.count) / max}%`;
    row.append(el("span", {}, label(dim, r.key)), el("span", {}, ""), el("output", {}, formatNumber(r.count)));
    row.children[1].append(bar);
    return row;
  }));
  if (!rows.length) box.replaceChildren(el("p", {}, t("analytics.no_data")));
}

function kpis(d) {
  const tl = d.timeliness;
  const items = [
    ["total", formatNumber(d.backlog.total)],
    ["open", formatNumber(d.backlog.open)],
    ["open_share", pct(d.backlog.open_share)],
    ["overdue", formatNumber(d.backlog.overdue)],
    ["compliance", pct(tl.compliance)],
    ["median_hours", tl.median_hours_to_resolve === null ? "—" : formatNumber(tl.median_hours_to_resolve)],
    ["first_contact", pct(tl.first_contact.rate)],
    ["extension", pct(tl.extension.rate)],
    ["rating", d.quality.mean === null ? "—" : d.quality.mean.toFixed(2)],
    ["disputes", formatNumber(d.quality.verdicts.dispute || 0)],
  ];
  $("[data-js=kpis]").replaceChildren(...items.map(([k, v]) => {
    const card = el("div", { class: "an-kpi", "data-kpi": k });
    card.append(el("b", {}, v), el("span", {}, t(`analytics.kpi_${k}`)));
    return card;
  }));
}

function trendChart(rows) {
  const box = $("[data-js=trend]");
  const w = 800;
  const h = 220;
  const pad = { l: 40, r: 8, t: 10, b: 30 };
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", t("analytics.trend"));
  const max = Math.max(1, ...rows.map((r) => r.received));
  const bw = (w - pad.l - pad.r) / Math.max(rows.length, 1);
  const y = (v) => pad.t + (h - pad.t - pad.b) * (1 - v / max);
  const add = (tag, attrs, text) => {
    const n = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v);
    if (text !== undefined) n.textContent = text;
    svg.append(n);
    return n;
  };
  add("text", { x: 2, y: pad.t + 8 }, formatNumber(max));
  add("text", { x: 2, y: h - pad.b }, "0");
  const every = Math.ceil(rows.length / 12);
  rows.forEach((r, i) => {
    const x = pad.l + i * bw;
    const rect = add("rect", { class: "bar", x: x + 1, y: y(r.received), width: Math.max(bw - 2, 1),
      height: h - pad.b - y(r.received) });
    rect.append(Object.assign(document.createElementNS(SVG, "title"), { textContent: `${r.period}: ${r.received} / ${r.open}` }));
    if (r.open) add("rect", { class: "open", x: x + 1, y: y(r.open), width: Math.max(bw - 2, 1), height: h - pad.b - y(r.open) });
    if (i % every === 0) add("text", { x: x + 1, y: h - 12 }, r.period);
  });
  box.replaceChildren(svg);
  box.dataset.points = String(rows.length);
}

function compliance(box, rows, dim) {
  const table = el("table", { class: "an-table" });
  const head = el("tr");
  for (const k of [dim === "sector" ? "filters.sector" : "analytics.unit", "analytics.closed", "analytics.on_time", "analytics.kpi_compliance"]) {
    head.append(el("th", {}, t(k)));
  }
  table.append(head);
  for (const r of rows) {
    const tr = el("tr", { "data-key": r.key });
    tr.append(el("td", {}, dim === "sector" ? label("sector", r.key) : r.key), el("td", {}, formatNumber(r.closed)),
      el("td", {}, formatNumber(r.on_time)), el("td", {}, pct(r.compliance)));
    table.append(tr);
  }
  box.replaceChildren(table);
}

function ratings(q) {
  const rows = ["5", "4", "3", "2", "1"].map((k) => ({ key: k, count: q.distribution[k] || 0 }));
  bars($("[data-js=ratings]"), "rating", rows);
}

function hotspots(rows) {
  if (!state.map) return;
  if (state.layer) state.layer.remove();
  state.layer = L.layerGroup().addTo(state.map);
  const max = Math.max(1, ...rows.map((r) => r.count));
  const colourOf = (topic) => PALETTE[Math.max(0, state.topics.indexOf(topic)) % PALETTE.length];
  for (const r of rows) {
    L.circle([r.lat, r.lon], { radius: 60 + (120 * r.count) / max, color: colourOf(r.topic), weight: 1,
      fillOpacity: 0.25 + (0.5 * r.count) / max })
      .bindTooltip(`${label("topic", r.topic)}: ${r.count}`)
      .addTo(state.layer);
  }
  $("[data-js=map]").dataset.cells = String(rows.length);
}

function oldest(o) {
  const table = $("[data-js=oldest]");
  const head = el("tr");
  for (const f of o.fields) head.append(el("th", {}, t(`analytics.col_${f}`)));
  table.replaceChildren(head);
  for (const row of o.rows.slice(0, 50)) {
    const tr = el("tr");
    row.forEach((v, i) => {
      const f = o.fields[i];
      const text = v === null ? "" : ["type", "topic", "channel", "status", "sector"].includes(f) ? label(f, v) : String(v);
      tr.append(el("td", {}, text));
    });
    table.append(tr);
  }
}

function exportLinks() {
  const q = params();
  for (const p of document.querySelectorAll(".an-export")) {
    const links = ["csv", "xlsx"].map((fmt) => {
      const qq = new URLSearchParams(q);
      qq.set("view", p.dataset.view);
      qq.set("format", fmt);
      return el("a", { href: `/api/v1/analytics/export?${qq}`, download: "" }, t(`analytics.export_${fmt}`));
    });
    p.replaceChildren(...links);
  }
}

function render() {
  const d = state.data;
  if (!d) return;
  kpis(d);
  for (const dim of ["type", "topic", "sector", "channel"]) bars($(`[data-js=bars-${dim}]`), dim, d.counts[dim]);
  trendChart(d.trend);
  compliance($("[data-js=tl-sector]"), d.timeliness.by_sector, "sector");
  compliance($("[data-js=tl-unit]"), d.timeliness.by_unit, "unit");
  ratings(d.quality);
  bars($("[data-js=backlog-status]"), "status", d.backlog.by_status);
  hotspots(d.hotspots);
  oldest(d.oldest_open);
  exportLinks();
}

async function load() {
  const seq = ++state.seq;
  const status = $("[data-js=status]");
  status.textContent = t("common.loading");
  try {
    const data = await api(`/api/v1/analytics/dashboard?${params()}`);
    if (seq !== state.seq) return; // a newer filter change won
    state.data = data;
    render();
    status.textContent = "";
    document.body.dataset.loaded = String(seq);
  } catch (err) {
    status.textContent = t("common.network_error");
    console.error(err);
  }
}

async function main() {
  const me = await api("/api/v1/auth/me");
  await setLanguage(initialLanguage(me.language));
  setApiLanguage(language());
  initTopbar(me);
  const [sectors, topics] = await Promise.all([api("/api/v1/sectors", { lang: true }), api("/api/v1/topics", { lang: true })]);
  const names = (fc, tp) => {
    for (const f of fc.features) state.sectorNames.set(f.properties.code, f.properties.name);
    for (const x of tp) state.topicNames.set(x.code, x.name);
  };
  state.topics = topics.map((x) => x.code);
  names(sectors, topics);
  fillFilters();
  apply();
  state.map = createMap($("[data-js=map]"));
  const drawn = drawSectors(state.map, sectors);
  if (drawn?.bounds?.isValid?.()) state.map.fitBounds(drawn.bounds);
  else state.map.setView([43.297, 68.25], 12);
  const form = $("[data-js=filters]");
  form.addEventListener("change", load);
  form.addEventListener("reset", () => setTimeout(load, 0));
  onLanguageChange(async () => {
    setApiLanguage(language());
    const [s2, t2] = await Promise.all([api("/api/v1/sectors", { lang: true }), api("/api/v1/topics", { lang: true })]);
    names(s2, t2);
    fillFilters();
    render();
  });
  await load();
}

main();

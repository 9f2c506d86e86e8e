// Field app, entry module: the service worker, login for one shift, the screens (my work, map, appeal,
// outbox) behind hash routes, live events, duty and position reports, and the workflow steps and photos,
// which always go through the offline outbox first so nothing is lost without signal.

import { initialLanguage, language, onLanguageChange, setLanguage, t } from "/static/js/i18n.js";
import { connectLive } from "/static/js/live.js";
import { initTopbar, setConnection } from "/static/js/topbar.js";
import { alertNew, armSound, toast } from "./alerts.js";
import { liveStart, loadAppeal, loadSectors, loadUiConfig, loadWork, savedAppeal } from "./data.js";
import { Detail } from "./detail.js";
import { currentFix, lastFix, startReports, stopReports, watchFix } from "./geo.js";
import { FieldMap } from "./mapview.js";
import { FieldError, csrf, getJson, isNetworkError, request, resetCsrf, setNetLanguage } from "./net.js";
import { discard, enqueuePhoto, enqueueStep, listItems, onOutboxChange, replay, requestSync, requeue } from "./outbox.js";
import { preparePhoto } from "./photos.js";
import { subscribePush, unsubscribePush } from "./push.js";
import { attentionMessage, renderBanner, renderQueue } from "./queue-view.js";
import { kvClear, kvGet, kvSet } from "./store.js";
import { askReason, confirmAction } from "./ui.js";
import { renderWork, workRows } from "./work.js";
import { CANNOT_RESOLVE_REASONS, GEOFENCED, geofenceHint, hasAfterPhoto, overlay } from "./workflow.js";

const $ = (sel) => document.querySelector(sel);
const RETRY_BASE_MS = 5000;
const RETRY_MAX_MS = 5 * 60 * 1000;
const NEW_KINDS = new Set(["appeal.assigned", "appeal.reassigned"]);

const state = {
  me: null,
  cfg: { tile_url: null, at_risk_share: 0.75 },
  work: [],
  workFresh: false,
  mineIds: new Set(),
  outbox: { queued: [], attention: [] },
  route: { view: "work", id: null },
  detail: null, // {appeal, fresh}
  live: null,
  backoff: 0,
  retryTimer: null,
  refreshTimer: null,
  queueUrls: [],
  stepping: false,
};

let detail;
let fieldMap;
const onFix = (fix) => fieldMap.setPosition(fix);

/* ---------- service worker ---------- */

function registerWorker() {
  if (!("serviceWorker" in navigator)) return;
  navigator.serviceWorker.register("/field/sw.js", { scope: "/field/", type: "module" }).catch(() => {
    /* no service worker (private mode, old browser): the app still works while online */
  });
  navigator.serviceWorker.addEventListener("message", (ev) => {
    const msg = ev.data || {};
    if (msg.type === "push") onPush(msg.payload || {});
    if (msg.type === "open" && typeof msg.url === "string") {
      const hash = msg.url.split("#")[1];
      if (hash) window.location.hash = hash;
    }
  });
}

async function registration() {
  if (!("serviceWorker" in navigator)) return null;
  try {
    return await Promise.race([navigator.serviceWorker.ready, new Promise((r) => setTimeout(() => r(null), 5000))]);
  } catch {
    return null;
  }
}

/* ---------- outbox ---------- */

async function refreshOutbox() {
  if (!state.me) return;
  state.outbox = await listItems(state.me.id);
  renderBanner($("[data-js=queue-banner]"), state.outbox);
  const n = state.outbox.queued.length + state.outbox.attention.length;
  const badge = $("[data-js=tab-outbox-count]");
  badge.textContent = String(n);
  badge.hidden = n === 0;
  badge.dataset.attention = String(state.outbox.attention.length > 0);
}

function scheduleRetry(ms) {
  clearTimeout(state.retryTimer);
  state.retryTimer = setTimeout(() => replayNow(), ms);
}

/** Send what waits now; on failure try again later with a growing delay. */
async function replayNow() {
  if (!state.me) return null;
  clearTimeout(state.retryTimer);
  if (navigator.onLine === false) {
    await refreshOutbox();
    // The service worker sends it when the signal returns, even if the app is closed by then.
    if (state.outbox.queued.length) requestSync(await registration());
    return { stopped: "network", sent: 0, attention: 0 };
  }
  const result = await replay();
  await refreshOutbox();
  if (result.stopped === "network" || result.stopped === "server") {
    state.backoff = Math.min(state.backoff + 1, 8);
    const delay = Math.min(RETRY_MAX_MS, RETRY_BASE_MS * 2 ** (state.backoff - 1));
    scheduleRetry(delay * (0.8 + Math.random() * 0.4));
    requestSync(await registration());
  } else if (result.stopped === "busy") {
    scheduleRetry(2000); // the service worker is sending; look again shortly
  } else if (result.stopped === "auth") {
    sessionEnded();
  } else {
    state.backoff = 0;
  }
  if (result.sent || result.attention) scheduleRefresh();
  renderCurrent();
  return result;
}

/* ---------- data ---------- */

async function reloadWork() {
  try {
    const { data, fresh } = await loadWork();
    state.work = data.items;
    state.workFresh = fresh;
    data.items.forEach((a) => state.mineIds.add(a.id));
    await kvSet("mine_ids", [...state.mineIds].slice(-500));
  } catch (err) {
    if (err instanceof FieldError && err.status === 401) sessionEnded();
  }
}

async function reloadDetail() {
  if (state.route.view !== "appeal") return;
  const id = state.route.id;
  try {
    const { data, fresh } = await loadAppeal(id);
    if (state.route.id === id) state.detail = { appeal: data, fresh };
  } catch (err) {
    if (err instanceof FieldError && err.status === 401) sessionEnded();
    else if (err instanceof FieldError && err.status === 404 && state.route.id === id) state.detail = { missing: true };
  }
}

function scheduleRefresh() {
  clearTimeout(state.refreshTimer);
  state.refreshTimer = setTimeout(async () => {
    await Promise.all([reloadWork(), reloadDetail()]);
    renderCurrent();
  }, 300);
}

/* ---------- rendering ---------- */

function rows() {
  const all = [...state.outbox.queued, ...state.outbox.attention];
  return workRows(state.work, all);
}

function renderCurrent() {
  if (!state.me) return;
  const view = state.route.view;
  document.querySelectorAll("[data-view]").forEach((s) => {
    s.hidden = s.dataset.view !== view;
  });
  document.querySelectorAll("[data-js=tabs] a").forEach((a) => {
    if (a.dataset.tab === view || (view === "appeal" && a.dataset.tab === "work")) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  });
  const list = rows();
  $("[data-js=work-stale]").hidden = state.workFresh;
  if (view === "work") {
    renderWork($("[data-js=work-list]"), list, { fix: lastFix(), atRiskShare: state.cfg.at_risk_share, onOpen: openAppeal });
  } else if (view === "map") {
    fieldMap.show(state.cfg.tile_url);
    fieldMap.setAppeals(list);
  } else if (view === "outbox") {
    state.queueUrls.forEach((u) => URL.revokeObjectURL(u));
    state.queueUrls = renderQueue($("[data-js=queue]"), state.outbox, {
      sendNow: () => replayNow(), resend, discard: discardItem, open: openAppeal,
    });
  } else if (view === "appeal") {
    renderDetail();
  }
}

function renderDetail() {
  const box = $("[data-js=detail]");
  if (!state.detail) {
    box.replaceChildren(document.createTextNode(t("common.loading")));
    return;
  }
  if (state.detail.missing) {
    box.replaceChildren(document.createTextNode(t("field.err_not_found")));
    return;
  }
  const appeal = overlay(state.detail.appeal, [...state.outbox.queued, ...state.outbox.attention]);
  const mine = appeal.assigned_to_me || state.mineIds.has(appeal.id) || appeal.pending.length > 0
    || appeal.attention.length > 0;
  detail.render(appeal, { mine, fresh: state.detail.fresh, atRiskShare: state.cfg.at_risk_share });
}

function openAppeal(id) {
  window.location.hash = `#/appeal/${id}`;
}

async function onRoute() {
  const hash = window.location.hash || "#/work";
  const m = hash.match(/^#\/appeal\/(\d+)$/);
  if (m) {
    const id = Number(m[1]);
    const changed = state.route.id !== id;
    state.route = { view: "appeal", id };
    if (changed) {
      // Offline, an appeal never opened before still has its row from "my work" (without history).
      const saved = (await savedAppeal(id)) || state.work.find((a) => a.id === id);
      state.detail = saved ? { appeal: saved, fresh: false } : null;
    }
    renderCurrent();
    if (navigator.onLine !== false) {
      await reloadDetail();
      renderCurrent();
    }
    return;
  }
  const view = { "#/map": "map", "#/outbox": "outbox" }[hash] || "work";
  state.route = { view, id: null };
  renderCurrent();
}

/* ---------- workflow ---------- */

async function askStepReason(appeal, action, fix) {
  if (action === "decline") {
    return askReason({ title: t("field.decline_title"), message: t("field.decline_message") });
  }
  if (action === "cannot_resolve") {
    const options = CANNOT_RESOLVE_REASONS.map((code) => ({ value: code, label: t(`field.reason.${code}`) }));
    return askReason({ title: t("field.cannot_resolve_title"), options, required: false });
  }
  if (GEOFENCED.has(action)) {
    const hint = geofenceHint(appeal, fix);
    if (hint.outside) {
      const message = hint.distance_m === null ? t("field.err_geofence_unknown") : t("field.err_geofence", { distance: hint.distance_m });
      return askReason({ title: t("field.geofence_title"), message });
    }
  }
  return undefined;
}

async function step(appeal, action) {
  if (action === "resolve" && !hasAfterPhoto(appeal)) {
    toast(t("field.after_photo_needed"), "warn");
    return;
  }
  if (state.stepping) return; // a double tap must not queue the step twice
  state.stepping = true;
  let item;
  try {
    const deviceTime = new Date().toISOString(); // the moment of the tap, not of sending
    const fix = await currentFix();
    const reason = await askStepReason(appeal, action, fix);
    if (reason === null) return; // cancelled
    item = await enqueueStep({ staffId: state.me.id, appeal, action, reason: reason || null, position: fix, deviceTime });
  } finally {
    state.stepping = false;
  }
  await refreshOutbox();
  renderCurrent();
  toast(navigator.onLine === false ? t("field.saved_offline") : t("field.sending"), "info");
  const result = await replayNow();
  const now = state.outbox.attention.find((i) => i.id === item.id);
  if (now?.error?.code === "geofence_reason_required") await resend(now);
  else if (now) toast(attentionMessage(now), "warn");
  else if (result && !result.stopped) toast(t("field.sent"), "ok");
}

async function takePhoto(appeal, kind, file) {
  toast(t("field.photo_processing"));
  let prepared;
  try {
    prepared = await preparePhoto(file);
  } catch {
    toast(t("field.photo_failed"), "warn");
    return;
  }
  const fix = await currentFix();
  await enqueuePhoto({ staffId: state.me.id, appeal, kind, ...prepared, position: fix, deviceTime: new Date().toISOString() });
  await refreshOutbox();
  renderCurrent();
  toast(navigator.onLine === false ? t("field.saved_offline") : t("field.sending"));
  replayNow();
}

async function resend(item) {
  let opts = {};
  if (item.error?.code === "geofence_reason_required") {
    const reason = await askReason({ title: t("field.geofence_title"), message: attentionMessage(item) });
    if (reason === null) return;
    opts = { reason };
  }
  await requeue(item.seq, opts);
  await refreshOutbox();
  renderCurrent();
  const result = await replayNow();
  const again = state.outbox.attention.find((i) => i.seq === item.seq);
  if (again) toast(attentionMessage(again), "warn");
  else if (result && !result.stopped) toast(t("field.sent"), "ok");
}

async function discardItem(item) {
  const what = item.type === "photo" ? t("field.discard_photo_confirm") : t("field.discard_confirm");
  if (!(await confirmAction(what))) return;
  await discard(item.seq);
  await refreshOutbox();
  renderCurrent();
}

/* ---------- live ---------- */

// The last event id seen per appeal: ids are not committed in order, so an older event may arrive after a
// newer one; it still triggers a refresh (the server has the current state) but never a "new assignment" alert.
const lastEventOf = new Map();
const LAST_EVENT_KEEP = 2000;

function onLiveEvent(ev) {
  const a = ev.appeal || {};
  const late = ev.id < (lastEventOf.get(a.id) ?? 0);
  if (!late) {
    lastEventOf.delete(a.id);
    lastEventOf.set(a.id, ev.id);
    if (lastEventOf.size > LAST_EVENT_KEEP) lastEventOf.delete(lastEventOf.keys().next().value);
  }
  const mineNow = a.assignee_id === state.me?.id;
  const listed = state.work.some((x) => x.id === a.id);
  if (!late && mineNow && !listed && NEW_KINDS.has(ev.kind)) {
    alertNew();
    toast(t("field.new_assignment", { reg_no: a.reg_no }), "info");
  }
  if (mineNow || listed || (state.route.view === "appeal" && state.route.id === a.id)) scheduleRefresh();
}

function onPush(payload) {
  if (payload.kind === "appeal.assigned") alertNew();
  if (payload.reg_no) toast(t(payload.kind?.startsWith("sla.") ? "field.push_sla" : "field.new_assignment", { reg_no: payload.reg_no }));
  scheduleRefresh();
}

async function startLive(knownStart = null) {
  if (state.live || !state.me || !window.io) return;
  let start = knownStart;
  try {
    if (start === null) start = await liveStart();
  } catch {
    window.addEventListener("online", () => startLive(), { once: true });
    setConnection("offline");
    return;
  }
  if (state.live || !state.me) return;
  state.live = connectLive({
    lastId: start.lastId,
    reflectedIds: start.reflectedIds,
    // Not the shared api(): its 401 leaves for /login, while this app asks for the login itself.
    getJson: (path) => getJson(path).catch((err) => {
      if (err instanceof FieldError && err.status === 401) sessionEnded();
      throw err;
    }),
    onEvent: onLiveEvent,
    onStatus: setConnection,
    onResync: async () => {
      // The stream's new start is read before the list, as at boot: what commits in between is replayed.
      const fresh = await liveStart();
      await reloadWork();
      renderCurrent();
      return fresh;
    },
  });
}

/* ---------- duty ---------- */

function renderDuty() {
  const box = $("[data-js=duty]");
  box.checked = Boolean(state.me?.on_duty);
  $("[data-js=duty-label]").textContent = state.me?.on_duty ? t("field.on_duty") : t("field.off_duty");
}

async function setDuty(on) {
  try {
    const { data } = await request("/api/v1/me/duty", { method: "POST", json: { on_duty: on } });
    state.me = { ...state.me, on_duty: data.on_duty };
    await kvSet("me", state.me);
    if (state.me.on_duty) startReports();
    else stopReports();
  } catch (err) {
    toast(isNetworkError(err) ? t("field.duty_offline") : err.message, "warn");
  }
  renderDuty();
}

/* ---------- session ---------- */

function showLogin(note = "") {
  $("[data-js=app]").hidden = true;
  $("[data-js=tabs]").hidden = true;
  $("[data-js=queue-banner]").hidden = true;
  $("[data-js=field-logout]").hidden = true;
  $("[data-view=login]").hidden = false;
  $("[data-js=login-note]").textContent = note;
  $("[data-js=login-note]").hidden = !note;
  $("#login-username").focus();
}

async function sessionEnded() {
  if (!state.me) return;
  const waiting = state.outbox.queued.length + state.outbox.attention.length;
  stopReports();
  state.live?.close();
  state.live = null;
  const username = state.me.username;
  state.me = null;
  await kvSet("auth_needed", true);
  showLogin(waiting ? t("field.session_ended_waiting", { n: waiting }) : t("field.session_ended"));
  $("#login-username").value = username;
}

async function login(ev) {
  ev.preventDefault();
  const form = ev.currentTarget;
  const error = $("[data-js=login-error]");
  error.textContent = "";
  const submit = form.querySelector("button[type=submit]");
  submit.disabled = true;
  try {
    const { data } = await request("/api/v1/auth/session", {
      method: "POST",
      noCsrf: true,
      json: { username: form.username.value.trim(), password: form.password.value },
    });
    resetCsrf();
    await csrf().catch(() => null); // the session's CSRF secret, made once before anything else writes
    form.password.value = "";
    const previous = await kvGet("me");
    if (previous && previous.id !== data.id) await kvClear(["lang"]); // another person: no saved data of theirs
    await kvSet("me", data);
    await kvSet("auth_needed", false);
    await setLanguage(initialLanguage(data.language));
    await startApp(data);
    subscribePush(await registration());
  } catch (err) {
    error.textContent = isNetworkError(err) ? t("field.login_offline") : err.message;
  } finally {
    submit.disabled = false;
  }
}

async function logout() {
  const waiting = state.outbox.queued.length + state.outbox.attention.length;
  if (waiting && !(await confirmAction(t("field.logout_waiting", { n: waiting })))) return;
  state.live?.close();
  state.live = null;
  stopReports();
  await unsubscribePush(await registration());
  try {
    await request("/api/v1/auth/session", { method: "DELETE" });
  } catch {
    /* offline: the server session ends with the shift anyway */
  }
  resetCsrf();
  state.me = null;
  state.work = [];
  state.detail = null;
  state.mineIds = new Set();
  await kvClear(["lang"]); // no citizen data stays on the phone; the outbox (its own store) is kept
  showLogin();
}

async function startApp(me) {
  state.me = me;
  state.mineIds = new Set((await kvGet("mine_ids")) || []);
  setNetLanguage(language());
  $("[data-view=login]").hidden = true;
  $("[data-js=app]").hidden = false;
  $("[data-js=tabs]").hidden = false;
  $("[data-js=field-logout]").hidden = false;
  $("[data-js=me]").textContent = me.full_name || me.username;
  renderDuty();
  watchFix(onFix); // asks for the position permission once, after login
  try {
    state.cfg = { ...state.cfg, ...(await loadUiConfig()).data };
  } catch {
    /* defaults: blank map */
  }
  await refreshOutbox();
  const saved = await kvGet("work");
  if (saved) state.work = saved.items;
  await onRoute();
  // Where the live stream starts, taken before the list: whatever happens after the list was read
  // is replayed from the events, nothing falls in between.
  const start = navigator.onLine === false ? null : await liveStart().catch(() => null);
  await reloadWork();
  renderCurrent();
  loadSectors().then(({ data }) => fieldMap.setSectors(data)).catch(() => {});
  if (state.me?.on_duty) startReports();
  replayNow();
  startLive(start);
}

/* ---------- boot ---------- */

async function boot() {
  armSound();
  registerWorker();
  detail = new Detail($("[data-js=detail]"), { step, photo: takePhoto, resend, discard: discardItem });
  fieldMap = new FieldMap($("[data-js=map]"), { onOpen: openAppeal });
  const me = await kvGet("me").catch(() => null);
  await setLanguage(initialLanguage(me?.language));
  await kvSet("lang", language());
  initTopbar({});
  onLanguageChange(async (code) => {
    setNetLanguage(code);
    renderDuty();
    if (state.me) {
      renderBanner($("[data-js=queue-banner]"), state.outbox);
      renderCurrent();
    }
    await kvSet("lang", code); // the service worker's notifications follow the switch
    if (state.me && navigator.onLine !== false) scheduleRefresh(); // topic names in the new language
  });

  $("[data-js=login-form]").addEventListener("submit", login);
  $("[data-js=field-logout]").addEventListener("click", logout);
  $("[data-js=duty]").addEventListener("change", (ev) => setDuty(ev.currentTarget.checked));
  $("[data-js=queue-send]").addEventListener("click", () => replayNow());
  window.addEventListener("hashchange", onRoute);
  window.addEventListener("online", () => {
    state.backoff = 0;
    replayNow();
    scheduleRefresh();
  });
  window.addEventListener("offline", () => setConnection("offline"));
  onOutboxChange(async (msg) => {
    if (!state.me) return;
    if (msg.sent) {
      // The server's answer is saved already (outbox.js): show it at once, without a flicker back.
      const saved = await kvGet("work");
      if (saved) state.work = saved.items;
      if (state.route.view === "appeal" && state.route.id === msg.appeal_id) {
        const appeal = await savedAppeal(msg.appeal_id);
        if (appeal) state.detail = { appeal, fresh: true };
      }
    }
    await refreshOutbox();
    renderCurrent();
  });
  // Refresh the outbox's ages now and then (the 24 h warning must appear without a tap).
  setInterval(() => state.me && refreshOutbox(), 60000);

  if (!me) {
    showLogin();
    return;
  }
  // Start from what is saved (works with no signal), then check the login with the server.
  await startApp(me);
  if (navigator.onLine === false) {
    setConnection("offline");
    return;
  }
  try {
    const { data } = await request("/api/v1/auth/me");
    state.me = { ...me, ...data };
    await kvSet("me", state.me);
    renderDuty();
  } catch (err) {
    if (err instanceof FieldError && err.status === 401) sessionEnded();
  }
}

boot().catch((err) => {
  toast(t("common.network_error"), "warn");
  throw err; // a bug: let it reach the console
});

// Service worker of the field app (scope /field/, registered as a module):
//  - precaches the app shell listed in /field/precache.json into a cache named after the build, and serves
//    it cache-first so the app opens with no signal; caches of older builds are deleted on activate;
//  - replays the offline outbox on start, on activate and on Background Sync (tag "jauap-outbox"),
//    under the same Web Lock as the page, so the two never send at the same time;
//  - shows Web Push notifications (unless a /field/ window has the focus: then it tells that window)
//    and opens the appeal on a click.
// API calls and Socket.IO are never answered from a cache: they go to the network as they are.

import { SYNC_TAG, replay } from "./js/outbox.js";
import { kvGet } from "./js/store.js";

// The server replaces "dev" with a fingerprint of every precached file, so any change is a new worker.
const BUILD = "dev";
const PREFIX = "jauap-field-";
const CACHE = `${PREFIX}${BUILD}`;
const SHELL_PREFIXES = ["/field/", "/static/", "/vendor/leaflet/", "/vendor/socket.io/"];
const NOT_CACHED = new Set(["/field/sw.js", "/field/precache.json"]);

const PUSH_TEXT = {
  kk: { "appeal.assigned": "Жаңа тапсырма", "sla.warning": "Мерзім аяқталып келеді", "sla.breached": "Мерзім өтіп кетті", other: "Jauap 109" },
  ru: { "appeal.assigned": "Новое поручение", "sla.warning": "Срок скоро истекает", "sla.breached": "Срок истёк", other: "Jauap 109" },
  en: { "appeal.assigned": "New assignment", "sla.warning": "Deadline approaching", "sla.breached": "Deadline missed", other: "Jauap 109" },
};
const PUSH_BODY = {
  kk: "Өтініш {reg_no}",
  ru: "Обращение {reg_no}",
  en: "Appeal {reg_no}",
};

self.addEventListener("install", (event) => {
  event.waitUntil((async () => {
    const list = await (await fetch("/field/precache.json", { cache: "no-store" })).json();
    const cache = await caches.open(CACHE);
    await cache.addAll(list.map((url) => new Request(url, { cache: "reload", credentials: "same-origin" })));
    await self.skipWaiting();
  })());
});

self.addEventListener("activate", (event) => {
  event.waitUntil((async () => {
    const names = await caches.keys();
    await Promise.all(names.filter((n) => n.startsWith(PREFIX) && n !== CACHE).map((n) => caches.delete(n)));
    await self.clients.claim();
    await replay().catch(() => null);
  })());
});

function isShell(url) {
  if (url.origin !== self.location.origin || NOT_CACHED.has(url.pathname)) return false;
  return SHELL_PREFIXES.some((p) => url.pathname.startsWith(p));
}

async function fromShell(request, navigate) {
  const cache = await caches.open(CACHE);
  // Every page of the app is the one shell: /field/, /field/?source=pwa, /field/index.html.
  const hit = navigate ? await cache.match("/field/") : await cache.match(request, { ignoreSearch: true });
  if (hit) return hit;
  return fetch(request);
}

self.addEventListener("fetch", (event) => {
  const { request } = event;
  if (request.method !== "GET") return;
  const url = new URL(request.url);
  const navigate = request.mode === "navigate" && url.pathname.startsWith("/field/") && url.origin === self.location.origin
    && !NOT_CACHED.has(url.pathname) && url.pathname !== "/field/manifest.webmanifest";
  if (navigate || isShell(url)) event.respondWith(fromShell(request, navigate));
});

self.addEventListener("sync", (event) => {
  if (event.tag !== SYNC_TAG) return;
  event.waitUntil(replay().then((result) => {
    // Failing the sync makes the browser try again later, with its own backoff.
    if (result.stopped === "network" || result.stopped === "server") throw new Error("outbox: retry later");
  }));
});

function fill(text, params) {
  return text.replace(/\{(\w+)\}/g, (m, k) => (params[k] === undefined ? m : String(params[k])));
}

function safeUrl(raw) {
  try {
    const url = new URL(raw || "/field/", self.location.origin);
    if (url.origin === self.location.origin && url.pathname.startsWith("/field/")) return url.pathname + url.search + url.hash;
  } catch {
    /* a malformed url: open the app's start page */
  }
  return "/field/";
}

async function fieldWindows() {
  const all = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
  return all.filter((c) => new URL(c.url).pathname.startsWith("/field/"));
}

self.addEventListener("push", (event) => {
  let payload = {};
  try {
    payload = event.data ? event.data.json() : {};
  } catch {
    payload = {};
  }
  event.waitUntil((async () => {
    const windows = await fieldWindows();
    const focused = windows.find((c) => c.focused);
    if (focused) {
      focused.postMessage({ type: "push", payload });
      return;
    }
    const lang = (await kvGet("lang").catch(() => null)) || "ru";
    const texts = PUSH_TEXT[lang] || PUSH_TEXT.ru;
    const title = texts[payload.kind] || texts.other;
    const body = payload.reg_no ? fill(PUSH_BODY[lang] || PUSH_BODY.ru, { reg_no: payload.reg_no }) : "";
    await self.registration.showNotification(title, {
      body,
      tag: payload.appeal_id ? `appeal-${payload.appeal_id}` : "jauap",
      renotify: true,
      icon: "/field/icons/icon-192.png",
      badge: "/field/icons/icon-192.png",
      vibrate: [200, 100, 200],
      data: { url: safeUrl(payload.url) },
    });
  })());
});

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const url = safeUrl(event.notification.data?.url);
  event.waitUntil((async () => {
    const windows = await fieldWindows();
    if (windows.length) {
      const win = windows[0];
      win.postMessage({ type: "open", url });
      return win.focus();
    }
    return self.clients.openWindow(url);
  })());
});

// A worker (re)starting is a chance to send what waits: the page may be closed.
replay().catch(() => null);

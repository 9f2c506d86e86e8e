// The device position: one fix for a workflow step, a watch for the map, and the periodic reports to
// POST /api/v1/me/position while on duty (no more often than the server's rate limit allows).

import { FieldError, request } from "./net.js";

const REPORT_EVERY_MS = 30000; // the server refuses reports closer than JAUAP_POSITION_MIN_INTERVAL_S (10 s)
const EARTH_R = 6371008.8;

let last = null; // {lat, lon, accuracy_m, at}
const watchers = new Set();
let watchId = null;

function fromGeo(pos) {
  return { lat: pos.coords.latitude, lon: pos.coords.longitude,
           accuracy_m: Number.isFinite(pos.coords.accuracy) ? Math.round(pos.coords.accuracy * 10) / 10 : null,
           at: pos.timestamp || Date.now() };
}

/** The last known fix, or null. */
export function lastFix() {
  return last;
}

/** One fresh fix (a recent one is fine): {lat, lon, accuracy_m} or null when unavailable or refused. */
export function currentFix({ timeout = 8000, maximumAge = 15000 } = {}) {
  // The watch keeps a recent fix: a tap outdoors should not wait for the GPS.
  if (last && Date.now() - last.at < maximumAge) {
    return Promise.resolve({ lat: last.lat, lon: last.lon, accuracy_m: last.accuracy_m });
  }
  if (!navigator.geolocation) return Promise.resolve(null);
  return new Promise((resolve) => {
    navigator.geolocation.getCurrentPosition(
      (pos) => {
        last = fromGeo(pos);
        resolve({ lat: last.lat, lon: last.lon, accuracy_m: last.accuracy_m });
      },
      () => resolve(last && Date.now() - last.at < 120000
        ? { lat: last.lat, lon: last.lon, accuracy_m: last.accuracy_m } : null),
      { enableHighAccuracy: true, timeout, maximumAge },
    );
  });
}

/** Follow the position: ``fn(fix)`` on every change. */
export function watchFix(fn) {
  watchers.add(fn);
  if (last) fn(last);
  if (watchId === null && navigator.geolocation) {
    watchId = navigator.geolocation.watchPosition(
      (pos) => {
        last = fromGeo(pos);
        watchers.forEach((w) => w(last));
      },
      () => {},
      { enableHighAccuracy: true, maximumAge: 15000 },
    );
  }
}

/** Geodesic distance in metres (haversine on the mean Earth radius: close enough for a geofence hint). */
export function distanceM(a, b) {
  const rad = Math.PI / 180;
  const dLat = (b.lat - a.lat) * rad;
  const dLon = (b.lon - a.lon) * rad;
  const h = Math.sin(dLat / 2) ** 2 + Math.cos(a.lat * rad) * Math.cos(b.lat * rad) * Math.sin(dLon / 2) ** 2;
  return 2 * EARTH_R * Math.asin(Math.min(1, Math.sqrt(h)));
}

let reportTimer = null;
let reporting = false;

async function reportOnce() {
  if (!last || Date.now() - last.at > REPORT_EVERY_MS * 2 || !navigator.onLine) return;
  try {
    await request("/api/v1/me/position", {
      method: "POST",
      json: { lat: last.lat, lon: last.lon, accuracy_m: last.accuracy_m, recorded_at: new Date(last.at).toISOString() },
    });
  } catch (err) {
    // 429 (too soon) or offline: the next tick tries again; anything else is not worth a message outdoors.
    if (err instanceof FieldError && err.status === 401) stopReports();
  }
}

/** Report the position every 30 s (and once now) until stopReports(). */
export function startReports() {
  if (reporting) return;
  reporting = true;
  watchFix(() => {});
  reportOnce();
  reportTimer = setInterval(reportOnce, REPORT_EVERY_MS);
}

/** Stop the periodic reports (off duty, logged out). */
export function stopReports() {
  reporting = false;
  clearInterval(reportTimer);
  reportTimer = null;
}

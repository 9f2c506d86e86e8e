// What the field app reads from the server, kept in IndexedDB so it is still there with no signal:
// my open assignments, each appeal's detail (history, photos), the map settings and the sectors.
// Every loader answers {data, fresh}: fresh=false means the saved copy (offline or the server failed).

import { getJson, isNetworkError } from "./net.js";
import { kvGet, kvSet } from "./store.js";
import { OPEN_MINE } from "./workflow.js";

function stamp(appeal) {
  const ms = Date.parse(appeal?.updated_at);
  return Number.isFinite(ms) ? ms : 0;
}

/**
 * The later of two copies of an appeal. A read that started before a step was sent can come back after
 * the step's own answer: the older copy must not win (photos of equal copies are merged).
 */
export function laterAppeal(saved, loaded) {
  if (!saved || saved.id !== loaded.id) return loaded;
  if (stamp(saved) > stamp(loaded)) return saved;
  if (stamp(saved) < stamp(loaded) || !saved.photos || !loaded.photos) return loaded;
  const ids = new Set(loaded.photos.map((p) => p.id));
  return { ...loaded, photos: [...loaded.photos, ...saved.photos.filter((p) => !ids.has(p.id))] };
}

async function cached(key, load, merge = null) {
  try {
    let data = await load();
    if (merge) data = merge(await kvGet(key), data);
    await kvSet(key, data);
    return { data, fresh: true };
  } catch (err) {
    const saved = await kvGet(key);
    if (saved !== undefined && (isNetworkError(err) || err.status >= 500)) return { data: saved, fresh: false };
    throw err;
  }
}

/** My open assignments ({items, at}). */
export function loadWork() {
  const statuses = [...OPEN_MINE].join(",");
  return cached("work", async () => {
    const page = await getJson(`/api/v1/appeals?assignee=me&status=${statuses}&per_page=200`, { lang: true });
    return { items: page.items, at: Date.now() };
  }, (saved, loaded) => {
    const before = new Map((saved?.items || []).map((a) => [a.id, a]));
    return { ...loaded, items: loaded.items.map((a) => laterAppeal(before.get(a.id), a)) };
  });
}

/** One appeal with its history and photos. */
export function loadAppeal(id) {
  return cached(`appeal:${id}`, () => getJson(`/api/v1/appeals/${id}`, { lang: true }), laterAppeal);
}

/** The saved copy of an appeal, if any (no network). */
export function savedAppeal(id) {
  return kvGet(`appeal:${id}`);
}

/** Map settings (tile URL) and the SLA share that counts as "at risk". */
export function loadUiConfig() {
  return cached("ui-config", () => getJson("/api/v1/ui-config"));
}

/** The sectors (GeoJSON) in the current language. */
export function loadSectors() {
  return cached("sectors", () => getJson("/api/v1/sectors", { lang: true }));
}

/**
 * Where the live stream starts: {lastId, reflectedIds}, the newest event id now and the ids below it that had
 * committed by then. An id up to lastId missing from reflectedIds belongs to a transaction still running; the
 * list read after this may miss it, so live.js delivers it when it commits instead of taking it as seen.
 */
export async function liveStart() {
  const snap = await getJson("/api/v1/map/appeals?status=assigned");
  return { lastId: snap.last_event_id || 0, reflectedIds: snap.reflected_event_ids || [] };
}

// The offline outbox: every workflow step and photo is stored here first (IndexedDB, with a client UUID
// that is also its Idempotency-Key), then sent in order. Used by the page and by the service worker; the
// Web Locks API makes sure only one of them replays at a time.
//
// Replay rules:
//   2xx                       -> the item is removed (only then), the answer refreshes the saved appeal;
//   no network, 5xx, 429, 408 -> stop here; try again later (backoff, `online`, Background Sync);
//   401                       -> stop: the shift's login ended, the items wait for the next login;
//   any other 4xx (409 appeal_changed, 422 geofence_reason_required, ...) -> the item moves to
//                                "needs attention" with its data kept, later items of that appeal wait behind it.

import { FieldError, isNetworkError, request } from "./net.js";
import { kvGet, kvSet, outboxAdd, outboxAll, outboxDelete, outboxGet, outboxPut } from "./store.js";

export const LOCK_NAME = "jauap-outbox";
export const SYNC_TAG = "jauap-outbox";
const CHANNEL_NAME = "jauap-outbox";
const RETRY_LATER = new Set([408, 425, 429]);

const channel = typeof BroadcastChannel === "function" ? new BroadcastChannel(CHANNEL_NAME) : null;
const listeners = new Set();

function uuid() {
  return crypto.randomUUID();
}

function changed(what = {}) {
  const msg = { type: "outbox-changed", ...what };
  channel?.postMessage(msg);
  for (const fn of listeners) fn(msg);
}

/** Call ``fn(message)`` whenever the outbox or the saved appeals change (here or in another context). */
export function onOutboxChange(fn) {
  listeners.add(fn);
  if (channel && listeners.size === 1) channel.onmessage = (ev) => listeners.forEach((f) => f(ev.data));
}

/** Queue a workflow step (accept, decline, depart, arrive, resolve, cannot_resolve); resolves to the item. */
export async function enqueueStep({ staffId, appeal, action, reason = null, position = null, deviceTime }) {
  const item = {
    id: uuid(),
    type: "step",
    staff_id: staffId,
    appeal_id: appeal.id,
    reg_no: appeal.reg_no,
    body: { action, reason: reason || null, position: position || null, device_time: deviceTime },
    created_at: Date.now(),
    state: "queued",
    attempts: 0,
    error: null,
  };
  item.seq = await outboxAdd(item);
  changed({ appeal_id: appeal.id });
  return item;
}

/** Queue a photo (a compressed JPEG Blob with its SHA-256); resolves to the item. */
export async function enqueuePhoto({ staffId, appeal, kind, blob, sha256, width, height, position = null, deviceTime }) {
  const item = {
    id: uuid(),
    type: "photo",
    staff_id: staffId,
    appeal_id: appeal.id,
    reg_no: appeal.reg_no,
    photo: { kind, blob, sha256, width, height, position: position || null, device_time: deviceTime },
    created_at: Date.now(),
    state: "queued",
    attempts: 0,
    error: null,
  };
  item.seq = await outboxAdd(item);
  changed({ appeal_id: appeal.id });
  return item;
}

/** The items of ``staffId``, oldest first, split into {queued, attention}. */
export async function listItems(staffId) {
  const mine = (await outboxAll()).filter((i) => i.staff_id === staffId).sort((a, b) => a.seq - b.seq);
  return { queued: mine.filter((i) => i.state === "queued"), attention: mine.filter((i) => i.state === "attention") };
}

function nextSendable(items) {
  const blocked = new Set();
  for (const item of items) {
    if (item.state === "attention") blocked.add(item.appeal_id);
    else if (!blocked.has(item.appeal_id)) return item;
  }
  return null;
}

function send(item) {
  const headers = { "Idempotency-Key": item.id };
  if (item.type === "step") {
    return request(`/api/v1/appeals/${item.appeal_id}/transitions`, { method: "POST", json: item.body, headers });
  }
  const p = item.photo;
  const form = new FormData();
  form.append("file", p.blob, `${p.kind}-${item.id}.jpg`);
  form.append("kind", p.kind);
  form.append("sha256", p.sha256);
  if (p.position) {
    form.append("lat", String(p.position.lat));
    form.append("lon", String(p.position.lon));
    if (p.position.accuracy_m !== null && p.position.accuracy_m !== undefined) {
      form.append("accuracy_m", String(p.position.accuracy_m));
    }
  }
  if (p.device_time) form.append("device_time", p.device_time);
  return request(`/api/v1/appeals/${item.appeal_id}/photos`, { method: "POST", form, headers });
}

/** Put a server answer into the saved copies: the appeal detail, and its row in "my work". */
async function remember(item, data) {
  if (!data) return;
  const key = `appeal:${item.appeal_id}`;
  if (item.type === "step") {
    await kvSet(key, data);
    const work = (await kvGet("work")) || null;
    if (work?.items) {
      work.items = work.items.map((a) => (a.id === data.id ? { ...a, ...data, history: undefined } : a));
      await kvSet("work", work);
    }
    return;
  }
  const saved = await kvGet(key);
  if (saved) {
    const photos = (saved.photos || []).filter((ph) => ph.id !== data.id);
    photos.push(data);
    await kvSet(key, { ...saved, photos });
  }
}

function errorInfo(err) {
  return { status: err.status, code: err.code, message: err.message, detail: err.detail || {},
           fields: err.fields || [], at: Date.now() };
}

async function replayLocked(staffId) {
  const result = { sent: 0, attention: 0, stopped: null };
  for (;;) {
    const items = (await outboxAll()).filter((i) => i.staff_id === staffId).sort((a, b) => a.seq - b.seq);
    const item = nextSendable(items);
    if (!item) return result;
    let answer;
    try {
      answer = await send(item);
    } catch (err) {
      // Re-read: the user may have discarded it meanwhile (then it must not come back).
      const fresh = await outboxGet(item.seq);
      const save = (patch) => (fresh ? outboxPut({ ...fresh, ...patch, attempts: (fresh.attempts || 0) + 1,
                                                   last_try: Date.now() }) : null);
      if (isNetworkError(err) || !(err instanceof FieldError)) {
        await save({ error: { status: 0, code: "network", message: "", at: Date.now() } });
        result.stopped = "network";
      } else if (err.status >= 500 || RETRY_LATER.has(err.status)) {
        await save({ error: errorInfo(err) });
        result.stopped = "server";
      } else if (err.status === 401) {
        result.stopped = "auth";
        await kvSet("auth_needed", true);
      } else {
        await save({ state: "attention", error: errorInfo(err) });
        result.attention += 1;
        changed({ appeal_id: item.appeal_id, attention: item.id, code: err.code });
        continue;
      }
      changed({ appeal_id: item.appeal_id, stopped: result.stopped });
      return result;
    }
    // Confirmed by the server: only now does the item leave the outbox.
    await outboxDelete(item.seq);
    result.sent += 1;
    await remember(item, answer.data).catch(() => null); // a stale saved copy is refreshed on the next load
    changed({ appeal_id: item.appeal_id, sent: item.id });
  }
}

/**
 * Send what waits, in order, for the logged-in staff member. Resolves to {sent, attention, stopped} where
 * stopped is null (all sent), "network", "server", "auth", "busy" (another context is replaying) or
 * "logged_out".
 */
export async function replay() {
  const me = await kvGet("me");
  if (!me?.id) return { sent: 0, attention: 0, stopped: "logged_out" };
  if (!globalThis.navigator?.locks) return replayLocked(me.id);
  return navigator.locks.request(LOCK_NAME, { ifAvailable: true }, async (lock) => {
    if (!lock) return { sent: 0, attention: 0, stopped: "busy" };
    return replayLocked(me.id);
  });
}

/** Put an item needing attention back in the queue (its place unchanged), optionally with a reason. */
export async function requeue(seq, { reason } = {}) {
  const item = await outboxGet(seq);
  if (!item) return null;
  if (reason !== undefined && item.type === "step") item.body = { ...item.body, reason };
  // A new key: the refused attempt recorded nothing, and the body may differ now.
  item.id = uuid();
  item.state = "queued";
  item.error = null;
  await outboxPut(item);
  changed({ appeal_id: item.appeal_id });
  return item;
}

/** Drop an item for good (the user chose to; its data is gone). */
export async function discard(seq) {
  const item = await outboxGet(seq);
  await outboxDelete(seq);
  if (item) changed({ appeal_id: item.appeal_id, discarded: item.id });
}

/** Ask the browser for a Background Sync (where supported) so the service worker replays when online. */
export async function requestSync(registration) {
  try {
    if (registration?.sync) await registration.sync.register(SYNC_TAG);
  } catch {
    /* not granted or not supported: the page's own triggers remain */
  }
}

// Live appeal events over Socket.IO (the session cookie authenticates the connection).
// After every (re)connect it first replays GET /api/v1/events?after=<last id>, holding live events back
// until the gap is filled, then delivers each event once (deduplicated by event id), oldest first.
// A message is one event named after its kind, or "appeal.events" {events: [...]} for several of one commit.

import { api } from "./api.js";

const SEEN_LIMIT = 5000;
const CATCH_UP_PAGES = 4; // beyond this gap a fresh snapshot is cheaper than replaying events

/**
 * Connect. ``opts``: lastId (events up to it are already reflected), onEvent(payload), onStatus(state)
 * with state one of "connecting", "syncing", "online", "offline", and onResync() -> Promise<last event id>
 * that reloads everything when the gap is too long to replay; getJson(path) fetches the catch-up (default: the
 * shared api(), which sends a 401 to /login; the field app passes its own). Returns {close(), lastId}.
 */
export function connectLive({ lastId = 0, onEvent, onStatus = () => {}, onResync = null, getJson = api }) {
  let last = lastId;
  let floor = lastId;
  const seen = new Set();
  let held = [];
  let syncing = true;
  let closed = false;

  const deliver = (payload) => {
    if (!payload || typeof payload.id !== "number") return;
    if (payload.id <= floor || seen.has(payload.id)) return;
    seen.add(payload.id);
    if (seen.size > SEEN_LIMIT) seen.delete(seen.values().next().value);
    if (payload.id > last) last = payload.id;
    try {
      onEvent(payload);
    } catch (err) {
      // A rendering bug must not stop the stream; report it once per event.
      console.warn("live event handler failed", err);
    }
  };

  async function catchUp() {
    syncing = true;
    onStatus("syncing");
    try {
      for (let page = 0; !closed; page += 1) {
        if (page >= CATCH_UP_PAGES && onResync) {
          const fresh = await onResync();
          if (typeof fresh === "number") {
            last = Math.max(last, fresh);
            floor = last;
          }
          break;
        }
        const res = await getJson(`/api/v1/events?after=${last}`);
        res.items.forEach(deliver);
        if (!res.more) break;
      }
    } catch {
      /* the live stream goes on; the next reconnect retries the catch-up */
    }
    const pending = held.sort((a, b) => a.id - b.id);
    held = [];
    syncing = false;
    pending.forEach(deliver);
    if (!closed) onStatus(socket.connected ? "online" : "offline");
  }

  onStatus("connecting");
  const socket = window.io({ transports: ["websocket", "polling"], tryAllTransports: true });
  socket.on("connect", catchUp);
  socket.on("disconnect", () => onStatus(closed ? "offline" : "connecting"));
  socket.on("connect_error", () => onStatus("offline"));
  socket.io.on("reconnect_attempt", () => onStatus("connecting"));
  socket.onAny((name, payload) => {
    if (typeof name !== "string" || !name.startsWith("appeal.")) return;
    // "appeal.events" carries several events of one commit, oldest first: {events: [payload, ...]}
    const payloads = name === "appeal.events" ? (Array.isArray(payload?.events) ? payload.events : []) : [payload];
    for (const one of payloads) {
      if (syncing) held.push(one);
      else deliver(one);
    }
  });

  return {
    close() {
      closed = true;
      socket.close();
    },
    get lastId() {
      return last;
    },
  };
}

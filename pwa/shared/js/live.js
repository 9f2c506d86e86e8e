// Live appeal events over Socket.IO (the session cookie authenticates the connection).
// After every (re)connect it first replays GET /api/v1/events?after=<last id - LOOKBACK>, holding live events
// back until the gap is filled, then delivers each event once (deduplicated by event id, never by "id <= the
// highest seen"): on PostgreSQL ids come from a sequence, so an event may commit, and arrive, after one with a
// higher id. Late events come in id order within a catch-up, but may follow a newer event of another catch-up or
// of the live stream: a consumer that applies state keeps the last event id it applied per appeal.
// A message is one event named after its kind, or "appeal.events" {events: [...]} for several of one commit.

import { api } from "./api.js";

const SEEN_LIMIT = 5000; // must stay well above LOOKBACK
const LOOKBACK = 300; // ids below the highest seen that a catch-up fetches again, for late commits
const CATCH_UP_PAGES = 4; // beyond this gap a fresh snapshot is cheaper than replaying events

/**
 * Connect. ``opts``: lastId (events up to it are already reflected), onEvent(payload), onStatus(state)
 * with state one of "connecting", "syncing", "online", "offline", and onResync() -> Promise<last event id>
 * that reloads everything when the gap is too long to replay; getJson(path) fetches the catch-up (default: the
 * shared api(), which sends a 401 to /login; the field app passes its own). Returns {close(), lastId}.
 * Events up to ``lastId`` (or the id onResync returned) that the catch-up right after finds are taken as
 * reflected by that snapshot (marked seen, not delivered); a late one that commits after it is still delivered.
 * ``reflectedIds`` (the snapshot's ``reflected_event_ids``, the ids it saw in the look-back window) makes that
 * exact: an id up to ``lastId`` missing from it committed after the snapshot and is delivered. onResync may
 * return {lastId, reflectedIds} for the same.
 */
export function connectLive({ lastId = 0, reflectedIds = null, onEvent, onStatus = () => {}, onResync = null,
  getJson = api }) {
  let last = lastId;
  let quietUpTo = lastId; // the first catch-up only marks these seen (the caller's snapshot has them)
  let reflected = reflectedIds ? new Set(reflectedIds) : null;
  // Whether the caller's snapshot shows this event: below the window it was given, or listed in it.
  const shownBySnapshot = (id) => id <= quietUpTo && (!reflected || reflected.has(id) || id <= quietUpTo - LOOKBACK);
  const seen = new Set();
  let held = [];
  let syncing = true;
  let closed = false;

  const markSeen = (payload) => {
    if (!payload || typeof payload.id !== "number" || seen.has(payload.id)) return false;
    seen.add(payload.id);
    if (seen.size > SEEN_LIMIT) seen.delete(seen.values().next().value);
    if (payload.id > last) last = payload.id;
    return true;
  };

  const deliver = (payload) => {
    if (!markSeen(payload)) return;
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
      let after = Math.max(0, last - LOOKBACK);
      let resynced = false;
      for (let page = 0; !closed; page += 1) {
        if (page >= CATCH_UP_PAGES && onResync && !resynced) {
          // A fresh snapshot instead of a long replay: the look-back below its id is then marked seen (it
          // reflects those), so a later reconnect does not list them as new; held events are still delivered.
          const answer = await onResync();
          resynced = true;
          const fresh = typeof answer === "number" ? answer : answer?.lastId;
          if (typeof fresh !== "number") break;
          reflected = Array.isArray(answer?.reflectedIds) ? new Set(answer.reflectedIds) : null;
          last = Math.max(last, fresh);
          quietUpTo = fresh;
          after = Math.max(0, fresh - LOOKBACK);
          continue;
        }
        const res = await getJson(`/api/v1/events?after=${after}`);
        for (const one of res.items) {
          if (shownBySnapshot(one.id)) markSeen(one);
          else deliver(one);
        }
        if (!res.more || !res.items.length) break;
        after = res.items[res.items.length - 1].id;
      }
      quietUpTo = 0;
      reflected = null;
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

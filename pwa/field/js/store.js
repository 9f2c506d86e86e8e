// IndexedDB of the field app, shared by the page and the service worker (no DOM here).
//   outbox: the actions and photos waiting to be sent, in order (key: seq, auto-increment);
//   kv:     small saved state — who is logged in, the language, my assignments, appeal details, sectors.
// Everything a worker does outdoors lives here until the server has confirmed it.

const DB_NAME = "jauap-field";
const DB_VERSION = 1;

let opening = null;

function request(req) {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

/** The open database (opened once per page or worker). */
export function openDb() {
  if (!opening) {
    opening = new Promise((resolve, reject) => {
      const req = indexedDB.open(DB_NAME, DB_VERSION);
      req.onupgradeneeded = () => {
        const db = req.result;
        if (!db.objectStoreNames.contains("outbox")) {
          const box = db.createObjectStore("outbox", { keyPath: "seq", autoIncrement: true });
          box.createIndex("id", "id", { unique: true });
        }
        if (!db.objectStoreNames.contains("kv")) db.createObjectStore("kv");
      };
      req.onsuccess = () => {
        const db = req.result;
        // Another tab or a new service worker upgrading the schema: let it, reopen next time.
        db.onversionchange = () => {
          db.close();
          opening = null;
        };
        resolve(db);
      };
      req.onerror = () => {
        opening = null;
        reject(req.error);
      };
    });
  }
  return opening;
}

async function tx(storeName, mode, fn) {
  const db = await openDb();
  return new Promise((resolve, reject) => {
    const t = db.transaction(storeName, mode);
    const store = t.objectStore(storeName);
    let result;
    Promise.resolve(fn(store)).then((r) => {
      result = r;
    }, reject);
    t.oncomplete = () => resolve(result);
    t.onerror = () => reject(t.error);
    t.onabort = () => reject(t.error || new Error("transaction aborted"));
  });
}

/** The saved value for ``key`` (undefined when none). */
export function kvGet(key) {
  return tx("kv", "readonly", (s) => request(s.get(key)));
}

/** Save ``value`` under ``key``. */
export function kvSet(key, value) {
  return tx("kv", "readwrite", (s) => request(s.put(value, key)));
}

/** Add an item to the end of the outbox; resolves to its seq. */
export function outboxAdd(item) {
  return tx("outbox", "readwrite", (s) => request(s.add(item)));
}

/** Every outbox item, oldest first. */
export function outboxAll() {
  return tx("outbox", "readonly", (s) => request(s.getAll()));
}

/** One outbox item by seq. */
export function outboxGet(seq) {
  return tx("outbox", "readonly", (s) => request(s.get(seq)));
}

/** Replace an item (same seq: it keeps its place in the order). */
export function outboxPut(item) {
  return tx("outbox", "readwrite", (s) => request(s.put(item)));
}

/** Remove an item (after the server confirmed it, or when the user discards it). */
export function outboxDelete(seq) {
  return tx("outbox", "readwrite", (s) => request(s.delete(seq)));
}

/** Forget every saved key except ``keep`` (logout: no citizen data stays on a shared phone). */
export function kvClear(keep = []) {
  return tx("kv", "readwrite", async (s) => {
    const keys = await request(s.getAllKeys());
    await Promise.all(keys.filter((k) => !keep.includes(k)).map((k) => request(s.delete(k))));
  });
}

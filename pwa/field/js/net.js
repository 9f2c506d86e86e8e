// HTTP for the field app, in the page and in the service worker (no DOM, no redirects): same-origin
// requests with the session cookie, the CSRF header on writes, and JSON errors as FieldError.
// Unlike the shared api.js it never leaves the app on a 401: the app shows its own login instead.

let csrfToken = null; // a promise: concurrent writes share one fetch (two would race for the session)
let lang = null;

/** An error answer: ``status``, ``code``, ``message`` (in the user's language), ``fields``, ``detail``. */
export class FieldError extends Error {
  constructor(status, error) {
    super(error?.message || `HTTP ${status}`);
    this.name = "FieldError";
    this.status = status;
    this.code = error?.code || "http_error";
    this.fields = Array.isArray(error?.fields) ? error.fields : [];
    this.detail = error?.detail && typeof error.detail === "object" ? error.detail : {};
  }
}

/** Ask for server messages in ``code`` (kk, ru, en). */
export function setNetLanguage(code) {
  lang = code;
}

/** Forget the CSRF token (after login or logout the session changed). */
export function resetCsrf() {
  csrfToken = null;
}

function withLang(path) {
  if (!lang) return path;
  return path + (path.includes("?") ? "&" : "?") + "lang=" + encodeURIComponent(lang);
}

async function fetchCsrf() {
  const res = await fetch("/api/v1/auth/csrf", { credentials: "same-origin", headers: { Accept: "application/json" } });
  if (!res.ok) throw new FieldError(res.status, await errorOf(res));
  return (await res.json()).csrf_token;
}

/** The CSRF token for cookie-authenticated writes (fetched once per session, or again when ``force``). */
export function csrf(force = false) {
  if (!csrfToken || force) {
    csrfToken = fetchCsrf();
    csrfToken.catch(() => {
      csrfToken = null;
    });
  }
  return csrfToken;
}

async function errorOf(res) {
  try {
    if ((res.headers.get("Content-Type") || "").includes("application/json")) return (await res.json()).error;
  } catch {
    /* not JSON after all */
  }
  return null;
}

/**
 * Send a request. ``opts``: method, json (a body to send as JSON), form (a FormData), headers, lang (add
 * ?lang=), signal. Resolves to {status, data} on 2xx; rejects with FieldError on an error answer, or with a
 * TypeError when the network failed (offline).
 */
export async function request(path, opts = {}) {
  const method = (opts.method || "GET").toUpperCase();
  const write = !["GET", "HEAD", "OPTIONS"].includes(method);
  const url = opts.lang || write ? withLang(path) : path;
  for (let attempt = 0; attempt < 2; attempt += 1) {
    const headers = { Accept: "application/json", ...(opts.headers || {}) };
    let body;
    if (opts.json !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(opts.json);
    } else if (opts.form) {
      body = opts.form;
    }
    if (write && !opts.noCsrf) headers["X-CSRFToken"] = await csrf(attempt > 0);
    const res = await fetch(url, { method, headers, body, credentials: "same-origin", cache: "no-store",
                                   signal: opts.signal });
    if (res.ok) {
      let data = null;
      if (res.status !== 204 && (res.headers.get("Content-Type") || "").includes("application/json")) {
        data = await res.json();
      }
      return { status: res.status, data };
    }
    const error = await errorOf(res);
    // A stale CSRF token (the session was renewed): fetch a fresh one and try once more.
    if (write && attempt === 0 && error?.code === "csrf_failed") continue;
    throw new FieldError(res.status, error);
  }
  throw new FieldError(400, { code: "csrf_failed" });
}

/** GET ``path`` and return its JSON. */
export async function getJson(path, opts = {}) {
  return (await request(path, opts)).data;
}

/** Whether ``err`` means "no network" (as opposed to an answer from the server). */
export function isNetworkError(err) {
  return !(err instanceof FieldError) && (err instanceof TypeError || err?.name === "AbortError");
}

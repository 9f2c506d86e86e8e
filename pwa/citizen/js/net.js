// Requests of the citizen pages: same-origin, no login. Writes carry the CSRF token the page got from its
// first GET (bound to the anonymous session cookie); every request asks for answers in the page's language.
// Errors become CitizenError (message already translated by the server; ``fields`` name the inputs).

import { language } from "/static/js/i18n.js";

let csrfToken = null;

/** An error answer: HTTP ``status``, ``code``, ``message``, ``fields`` [{field, code, message}], ``detail``. */
export class CitizenError extends Error {
  constructor(status, error) {
    super(error?.message || `HTTP ${status}`);
    this.name = "CitizenError";
    this.status = status;
    this.code = error?.code || "http_error";
    this.fields = Array.isArray(error?.fields) ? error.fields : [];
    this.detail = error?.detail || null;
  }
}

/** Remember the CSRF token a GET handed out (report form, tracking view). */
export function setCsrf(token) {
  if (token) csrfToken = token;
}

function withLang(path) {
  return `${path}${path.includes("?") ? "&" : "?"}lang=${encodeURIComponent(language())}`;
}

/**
 * Fetch ``path``; ``opts``: method, json (a body to send as JSON), form (a FormData), headers.
 * Resolves to {status, data}; rejects with CitizenError (an answer) or TypeError (no network).
 */
export async function request(path, opts = {}) {
  const method = opts.method || "GET";
  const headers = { Accept: "application/json", ...(opts.headers || {}) };
  let body;
  if (opts.json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(opts.json);
  } else if (opts.form) {
    body = opts.form; // the browser sets the multipart boundary
  }
  if (method !== "GET" && csrfToken) headers["X-CSRFToken"] = csrfToken;
  const res = await fetch(withLang(path), { method, headers, body, credentials: "same-origin" });
  const type = res.headers.get("Content-Type") || "";
  const data = type.includes("application/json") ? await res.json() : null;
  if (!res.ok) throw new CitizenError(res.status, data?.error);
  return { status: res.status, data };
}

/** A random UUID (v4), also where crypto.randomUUID is missing. */
export function uuid4() {
  if (globalThis.crypto?.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

// API client for the staff screens: same-origin JSON with the session cookie, the CSRF header on writes,
// JSON errors turned into ApiError (message already in the user's language), and a redirect to /login on 401.

let csrfToken = null;
let currentLang = null;

/** An error answer from the API: ``code``, ``message`` and ``fields`` [{field, code, message}]. */
export class ApiError extends Error {
  constructor(status, error) {
    super(error?.message || `HTTP ${status}`);
    this.name = "ApiError";
    this.status = status;
    this.code = error?.code || "http_error";
    this.fields = Array.isArray(error?.fields) ? error.fields : [];
  }
}

/** The language asked of endpoints that accept ``?lang=`` (names of topics, sectors, error messages). */
export function setApiLanguage(lang) {
  currentLang = lang;
}

async function getCsrf(force = false) {
  if (!csrfToken || force) {
    const res = await fetch("/api/v1/auth/csrf", { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (!res.ok) throw new ApiError(res.status, null);
    csrfToken = (await res.json()).csrf_token;
  }
  return csrfToken;
}

function withLang(path) {
  if (!currentLang) return path;
  return path + (path.includes("?") ? "&" : "?") + "lang=" + encodeURIComponent(currentLang);
}

function toLogin() {
  window.location.assign("/login?next=" + encodeURIComponent(window.location.pathname + window.location.search));
}

/**
 * Call the API. ``opts``: method, body (JSON), headers, lang (true: add ?lang= for localized answers), signal.
 * Resolves to the parsed JSON (null for 204); rejects with ApiError or a TypeError (network).
 */
export async function api(path, opts = {}) {
  const method = (opts.method || "GET").toUpperCase();
  const write = !["GET", "HEAD", "OPTIONS"].includes(method);
  const url = opts.lang || write ? withLang(path) : path;
  for (let attempt = 0; attempt < 2; attempt += 1) {
    const headers = { Accept: "application/json", ...(opts.headers || {}) };
    if (opts.body !== undefined) headers["Content-Type"] = "application/json";
    if (write) headers["X-CSRFToken"] = await getCsrf(attempt > 0);
    const res = await fetch(url, {
      method,
      headers,
      credentials: "same-origin",
      body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
      signal: opts.signal,
    });
    if (res.status === 204) return null;
    let data = null;
    const type = res.headers.get("Content-Type") || "";
    if (type.includes("application/json")) data = await res.json();
    if (res.ok) return data;
    if (res.status === 401) {
      toLogin();
      throw new ApiError(401, data?.error);
    }
    // An expired CSRF token (session rotated): fetch a fresh one and try once more.
    if (write && attempt === 0 && data?.error?.code === "csrf_failed") continue;
    throw new ApiError(res.status, data?.error);
  }
  throw new ApiError(400, { code: "csrf_failed" });
}

/** A random UUID (v4), also outside secure contexts where crypto.randomUUID is missing. */
export function uuid4() {
  if (globalThis.crypto?.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** Log out (POST /logout with the CSRF token) and go to the start page. */
export async function logout() {
  const token = await getCsrf();
  const form = new URLSearchParams({ csrf_token: token });
  await fetch("/logout", { method: "POST", body: form, credentials: "same-origin", redirect: "manual" });
  window.location.assign("/");
}

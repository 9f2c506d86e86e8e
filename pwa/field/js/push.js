// Web Push in the field app: after login subscribe with the server's VAPID key and register the
// subscription (POST /api/v1/push/subscriptions); on logout remove it (DELETE) and unsubscribe.
// Where push is unavailable (no permission, no push service) the app works on live events alone.

import { getJson, request } from "./net.js";

function keyBytes(base64url) {
  const pad = "=".repeat((4 - (base64url.length % 4)) % 4);
  const raw = atob((base64url + pad).replace(/-/g, "+").replace(/_/g, "/"));
  return Uint8Array.from(raw, (c) => c.charCodeAt(0));
}

function sameKey(buffer, bytes) {
  if (!buffer) return false;
  const a = new Uint8Array(buffer);
  return a.length === bytes.length && a.every((v, i) => v === bytes[i]);
}

/** Subscribe this device to push for the logged-in user; resolves to true when registered. */
export async function subscribePush(registration) {
  try {
    if (!registration?.pushManager || typeof Notification === "undefined") return false;
    if (Notification.permission === "default") await Notification.requestPermission();
    if (Notification.permission !== "granted") return false;
    const { public_key: publicKey } = await getJson("/api/v1/push/key");
    const key = keyBytes(publicKey);
    let sub = await registration.pushManager.getSubscription();
    if (sub && !sameKey(sub.options?.applicationServerKey, key)) {
      await sub.unsubscribe(); // the server's key changed: the old subscription can no longer be used
      sub = null;
    }
    if (!sub) sub = await registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: key });
    const json = sub.toJSON();
    await request("/api/v1/push/subscriptions", {
      method: "POST",
      json: { endpoint: json.endpoint, keys: { p256dh: json.keys.p256dh, auth: json.keys.auth } },
    });
    return true;
  } catch {
    return false; // no push service, refused, or offline: live events still work while the app is open
  }
}

/** Remove this device's subscription from the server and from the browser. */
export async function unsubscribePush(registration) {
  try {
    const sub = await registration?.pushManager?.getSubscription();
    if (!sub) return;
    try {
      await request("/api/v1/push/subscriptions", { method: "DELETE", json: { endpoint: sub.endpoint } });
    } finally {
      await sub.unsubscribe();
    }
  } catch {
    /* offline or already gone: logging out ends the session's subscriptions on the server anyway */
  }
}

// Dates, distances and numbers formatted by hand: Chromium's Intl has no Kazakh data (ARCHITECTURE.md §6).
// Times are shown in Turkestan local time, Asia/Almaty, UTC+5 all year since 1 March 2024.

import { t } from "./i18n.js";

const LOCAL_OFFSET_MS = 5 * 3600 * 1000;

const pad = (n) => String(n).padStart(2, "0");

function local(iso) {
  const ms = typeof iso === "number" ? iso : Date.parse(iso);
  return Number.isNaN(ms) ? null : new Date(ms + LOCAL_OFFSET_MS);
}

/** "24.11.2026 14:05" in local time; "" for a missing date. */
export function formatDateTime(iso) {
  const d = iso ? local(iso) : null;
  if (!d) return "";
  return `${pad(d.getUTCDate())}.${pad(d.getUTCMonth() + 1)}.${d.getUTCFullYear()} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}`;
}

/** "14:05:09" in local time. */
export function formatTime(iso) {
  const d = iso ? local(iso) : null;
  if (!d) return "";
  return `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
}

/** An integer with thin-space thousands ("10 000"), the way all three languages write it. */
export function formatNumber(n) {
  return String(Math.round(Number(n) || 0)).replace(/\B(?=(\d{3})+(?!\d))/g, "\u202f");
}

/** "35 m" / "1.2 km" with localized units. */
export function formatDistance(metres) {
  if (metres === null || metres === undefined) return "";
  if (metres < 1000) return `${Math.round(metres)} ${t("unit.m")}`;
  return `${(metres / 1000).toFixed(1).replace(".", t("unit.decimal"))} ${t("unit.km")}`;
}

/** Coordinates as "43.29750, 68.25100". */
export function formatPoint(lat, lon) {
  return `${Number(lat).toFixed(5)}, ${Number(lon).toFixed(5)}`;
}

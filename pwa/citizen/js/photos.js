// Citizen photos on the phone: decode upright, shrink (long side at most 1600 px), re-encode as JPEG
// (quality 0.8) through a canvas, which also drops the camera's EXIF (a home's GPS position stays on the
// phone), and hash the exact bytes to send (SHA-256), so a slow upload stays small and arrives verified.

const MAX_SIDE = 1600;
const QUALITY = 0.8;

/** Hex SHA-256 of ``bytes``. */
export async function sha256Hex(bytes) {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return [...digest].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** Whether this browser can prepare photos (hashing needs a secure context: https or localhost). */
export function photosSupported() {
  return Boolean(globalThis.crypto?.subtle && typeof createImageBitmap === "function");
}

function toBlob(canvas) {
  if (canvas.convertToBlob) return canvas.convertToBlob({ type: "image/jpeg", quality: QUALITY });
  return new Promise((resolve, reject) => {
    canvas.toBlob((b) => (b ? resolve(b) : reject(new Error("encode failed"))), "image/jpeg", QUALITY);
  });
}

/** Compress a picked image file; resolves to {blob, sha256, url} (``url`` previews it). */
export async function preparePhoto(file) {
  const bitmap = await createImageBitmap(file, { imageOrientation: "from-image" });
  const scale = Math.min(1, MAX_SIDE / Math.max(bitmap.width, bitmap.height));
  const width = Math.max(1, Math.round(bitmap.width * scale));
  const height = Math.max(1, Math.round(bitmap.height * scale));
  let canvas;
  if (typeof OffscreenCanvas === "function") {
    canvas = new OffscreenCanvas(width, height);
  } else {
    canvas = document.createElement("canvas");
    canvas.width = width;
    canvas.height = height;
  }
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#fff"; // a transparent PNG becomes white, not black
  ctx.fillRect(0, 0, width, height);
  ctx.drawImage(bitmap, 0, 0, width, height);
  bitmap.close();
  const blob = await toBlob(canvas);
  const bytes = new Uint8Array(await blob.arrayBuffer());
  return { blob, sha256: await sha256Hex(bytes), url: URL.createObjectURL(blob) };
}

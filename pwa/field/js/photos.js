// Photos on the device: decode the camera file upright, shrink it (long side at most 2560 px), re-encode
// as JPEG (quality 0.85), carry the original EXIF over (exif.js) and hash the exact bytes to send (SHA-256).

import { carryExif } from "./exif.js";

const MAX_SIDE = 2560;
const QUALITY = 0.85;

function isJpeg(bytes) {
  return bytes.length > 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff;
}

/** Hex SHA-256 of ``bytes`` (a Uint8Array or ArrayBuffer). */
export async function sha256Hex(bytes) {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return [...digest].map((b) => b.toString(16).padStart(2, "0")).join("");
}

async function encode(bitmap) {
  if (typeof OffscreenCanvas === "function") {
    const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
    canvas.getContext("2d").drawImage(bitmap, 0, 0);
    return canvas.convertToBlob({ type: "image/jpeg", quality: QUALITY });
  }
  const canvas = document.createElement("canvas");
  canvas.width = bitmap.width;
  canvas.height = bitmap.height;
  canvas.getContext("2d").drawImage(bitmap, 0, 0);
  return new Promise((resolve, reject) => {
    canvas.toBlob((b) => (b ? resolve(b) : reject(new Error("encode failed"))), "image/jpeg", QUALITY);
  });
}

/** Compress a picked or captured image file; resolves to {blob, sha256, width, height}. */
export async function preparePhoto(file) {
  const original = new Uint8Array(await file.arrayBuffer());
  let bitmap = await createImageBitmap(file, { imageOrientation: "from-image" });
  const scale = Math.min(1, MAX_SIDE / Math.max(bitmap.width, bitmap.height));
  if (scale < 1) {
    const resized = await createImageBitmap(bitmap, {
      resizeWidth: Math.max(1, Math.round(bitmap.width * scale)),
      resizeHeight: Math.max(1, Math.round(bitmap.height * scale)),
      resizeQuality: "high",
    });
    bitmap.close();
    bitmap = resized;
  }
  const { width, height } = bitmap;
  const encoded = new Uint8Array(await (await encode(bitmap)).arrayBuffer());
  bitmap.close();
  const bytes = isJpeg(original) ? carryExif(original, encoded) : encoded;
  return { blob: new Blob([bytes], { type: "image/jpeg" }), sha256: await sha256Hex(bytes), width, height };
}

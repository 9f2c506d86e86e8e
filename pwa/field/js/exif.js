// EXIF carry-over for compressed photos: a canvas re-encode drops the camera's EXIF (GPS position, time),
// which the server reads as evidence. These functions take the original's APP1 "Exif" segment, set its
// Orientation tag to 1 (the pixels are already upright after createImageBitmap's imageOrientation
// "from-image"), and splice it into the new JPEG right after SOI. Plain byte work, no DOM.

const SOI = 0xd8;
const SOS = 0xda;
const EOI = 0xd9;
const APP0 = 0xe0;
const APP1 = 0xe1;
const ORIENTATION = 0x0112;
const EXIF_HEADER = [0x45, 0x78, 0x69, 0x66, 0x00, 0x00]; // "Exif\0\0"

function isExif(bytes, start) {
  return EXIF_HEADER.every((b, i) => bytes[start + i] === b);
}

/** The JPEG's marker segments before the image data: [{marker, start, end}] (end exclusive). */
export function segments(bytes) {
  const out = [];
  if (bytes.length < 4 || bytes[0] !== 0xff || bytes[1] !== SOI) return out;
  let pos = 2;
  while (pos + 4 <= bytes.length) {
    if (bytes[pos] !== 0xff) break;
    const marker = bytes[pos + 1];
    if (marker === 0xff) {
      pos += 1; // fill byte
      continue;
    }
    if (marker === SOS || marker === EOI) break;
    const length = (bytes[pos + 2] << 8) | bytes[pos + 3];
    if (length < 2 || pos + 2 + length > bytes.length) break;
    out.push({ marker, start: pos, end: pos + 2 + length });
    pos += 2 + length;
  }
  return out;
}

/** A copy of the original's APP1 Exif segment (marker included), or null when it has none. */
export function extractExif(bytes) {
  for (const seg of segments(bytes)) {
    if (seg.marker === APP1 && isExif(bytes, seg.start + 4)) return bytes.slice(seg.start, seg.end);
  }
  return null;
}

/** Set every Orientation tag of the segment (IFD0, and IFD1's thumbnail) to 1, in place; returns it. */
export function patchOrientation(app1) {
  const tiff = 10; // FF E1, length (2), "Exif\0\0"
  if (app1.length < tiff + 8) return app1;
  const view = new DataView(app1.buffer, app1.byteOffset, app1.byteLength);
  const order = view.getUint16(tiff);
  if (order !== 0x4949 && order !== 0x4d4d) return app1;
  const little = order === 0x4949;
  let ifd = view.getUint32(tiff + 4, little);
  for (let guard = 0; ifd && guard < 2; guard += 1) {
    const at = tiff + ifd;
    if (at + 2 > app1.length) break;
    const count = view.getUint16(at, little);
    for (let i = 0; i < count; i += 1) {
      const entry = at + 2 + i * 12;
      if (entry + 12 > app1.length) return app1;
      if (view.getUint16(entry, little) === ORIENTATION && view.getUint16(entry + 2, little) === 3) {
        view.setUint16(entry + 8, 1, little);
      }
    }
    const nextAt = at + 2 + count * 12;
    ifd = nextAt + 4 <= app1.length ? view.getUint32(nextAt, little) : 0;
  }
  return app1;
}

/** The JPEG ``target`` with ``app1`` as its first segment (its own APP0 JFIF and any Exif removed). */
export function spliceExif(target, app1) {
  if (!app1) return target;
  const segs = segments(target);
  if (!segs.length && !(target[0] === 0xff && target[1] === SOI)) return target;
  const drop = segs.filter((s) => s.marker === APP0 || (s.marker === APP1 && isExif(target, s.start + 4)));
  const parts = [target.subarray(0, 2), app1];
  let pos = 2;
  for (const s of drop) {
    parts.push(target.subarray(pos, s.start));
    pos = s.end;
  }
  parts.push(target.subarray(pos));
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Carry the EXIF of ``original`` over to ``compressed`` (both Uint8Array JPEGs), Orientation set to 1. */
export function carryExif(original, compressed) {
  const app1 = extractExif(original);
  return app1 ? spliceExif(compressed, patchOrientation(app1)) : compressed;
}

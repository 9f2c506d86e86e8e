"""The photo pipeline: judge an upload by its content, read its EXIF, re-encode it clean, store it.

Pure functions over bytes and paths (no Flask, no database), so every hostile case
can be tested directly:

* **type by content**: the magic bytes and Pillow's own parser must agree on JPEG,
  PNG or WebP; the file name and the declared Content-Type are never consulted;
* **size before work**: at most :data:`MAX_BYTES`, and at most :data:`MAX_DECODE_PIXELS`
  for its format (what decoding it costs) read from the header (``Image.open`` parses
  only the header) before any pixel is decoded, so a small file claiming a huge canvas
  costs nothing;
* **whole and alone**: the full image is decoded once (truncation and corruption
  fail here) and its container is walked to its last byte: anything appended after
  the image end (a JPEG followed by HTML, a polyglot) is refused. The field app
  always sends canvas output, so no legitimate upload carries a trailer;
* **clean derivatives**: ``large`` (long side <= 2048 px) and ``thumb`` (320 px)
  are re-encoded as JPEG from fresh pixel buffers after applying the EXIF
  orientation, so they carry no EXIF, GPS, ICC, XMP or comments;
* **immutable, content-addressed storage**: ``<root>/originals/ab/cd/<sha256>``,
  each file written to a temporary name and moved into place with ``os.replace``
  (atomic on POSIX), so a reader never sees half a file.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import math
import os
import tempfile
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

MAX_BYTES = 12 * 1024 * 1024
MAX_PIXELS = 64_000_000
# What decoding costs decides the pixel limit, read from the header before any pixel is decoded. A baseline
# JPEG decodes at a reduced DCT scale (``draft``): 64 MP peak at ~110 MB (decoded at 1/2 scale, then resized).
# PNG and WebP have no reduced-scale decoding: every pixel is decoded (PNG ~7 bytes a pixel at peak, Pillow's
# WebP decoder ~27), and a canvas of zeros compresses ~1000:1 (a 34-byte WebP or a 190 KB PNG claiming 64 MP
# took seconds and over 800 MB). A progressive or multi-scan JPEG keeps every DCT coefficient of the full
# image (~7 bytes a pixel) whatever the scale. These limits keep such a photo under ~85 MB
# (tests/test_upload_corpus.py measures them on a real server).
MAX_DECODE_PIXELS = {"JPEG": MAX_PIXELS, "PNG": 12_000_000, "WEBP": 3_000_000}
MAX_MULTISCAN_JPEG_PIXELS = 12_000_000
# Room for the multipart envelope and the small form fields around the file.
MAX_REQUEST_BYTES = MAX_BYTES + 256 * 1024
VARIANTS = {"large": 2048, "thumb": 320}
JPEG_QUALITY = {"large": 85, "thumb": 80}
MIME = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_EXIF_IFD, _GPS_IFD, _ORIENTATION = 0x8769, 0x8825, 0x0112
_DATETIME_ORIGINAL, _OFFSET_TIME_ORIGINAL = 36867, 36881


class MediaError(Exception):
    """An upload the pipeline refuses: ``code`` names the reason, ``status`` the HTTP status."""

    def __init__(self, code: str, status: int = 422, **params):
        super().__init__(code)
        self.code = code
        self.status = status
        self.params = params


@dataclass(frozen=True)
class ImageFacts:
    """What an accepted upload is: its format, size (as displayed) and what its EXIF says."""

    format: str
    mime: str
    width: int
    height: int
    size_bytes: int
    sha256: str
    exif_lat: float | None = None
    exif_lon: float | None = None
    exif_time: datetime | None = None


@dataclass(frozen=True)
class ProcessedImage:
    """An accepted upload: its facts, the original bytes and the re-encoded derivatives."""

    facts: ImageFacts
    original: bytes
    derivatives: dict[str, bytes]


def sha256_hex(data: bytes) -> str:
    """Lower-case hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def check_sha256(data: bytes, claimed: str) -> str:
    """The digest of ``data`` if it equals the client's ``claimed`` one, else MediaError ``hash_mismatch``."""
    actual = sha256_hex(data)
    if actual != (claimed or "").strip().lower():
        raise MediaError("hash_mismatch", 422)
    return actual


def sniff_format(data: bytes) -> str | None:
    """JPEG, PNG or WEBP by the file's magic bytes; None for anything else."""
    if data[:3] == b"\xff\xd8\xff":
        return "JPEG"
    if data[:8] == _PNG_SIGNATURE:
        return "PNG"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return None


# --- the container walk: where does the image end? ----------------------------------------------


def _truncated() -> MediaError:
    return MediaError("image_corrupt", 422)


def _jpeg_end(data: bytes) -> int:
    """Offset just past the EOI marker, following segments and entropy-coded scans."""
    return _jpeg_walk(data)[0]


def _jpeg_walk(data: bytes) -> tuple[int, int]:
    """(offset just past the EOI marker, number of scans), following segments and entropy-coded scans."""
    n = len(data)
    i = 2  # after SOI
    scans = 0
    while True:
        if i >= n:
            raise _truncated()
        if data[i] != 0xFF:
            raise MediaError("image_corrupt", 422)
        while i < n and data[i] == 0xFF:  # fill bytes may precede a marker
            i += 1
        if i >= n:
            raise _truncated()
        marker = data[i]
        i += 1
        if marker == 0xD9:  # EOI
            return i, scans
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # TEM, RSTn: no length
            continue
        if i + 2 > n:
            raise _truncated()
        length = int.from_bytes(data[i : i + 2], "big")
        if length < 2:
            raise MediaError("image_corrupt", 422)
        i += length
        if marker != 0xDA:  # not SOS: the segment is all there is
            continue
        scans += 1
        # Entropy-coded data: FF00 is a stuffed byte, FFD0-FFD7 a restart, FFFF fill; any other FFxx ends it.
        while True:
            j = data.find(b"\xff", i)
            if j < 0 or j + 1 >= n:
                raise _truncated()
            following = data[j + 1]
            if following == 0x00 or 0xD0 <= following <= 0xD7:
                i = j + 2
            elif following == 0xFF:
                i = j + 1
            else:
                i = j
                break


def _png_end(data: bytes) -> int:
    """Offset just past the IEND chunk, checking every chunk's CRC on the way."""
    n = len(data)
    i = len(_PNG_SIGNATURE)
    while True:
        if i + 8 > n:
            raise _truncated()
        length = int.from_bytes(data[i : i + 4], "big")
        ctype = data[i + 4 : i + 8]
        end = i + 8 + length + 4
        if end > n:
            raise _truncated()
        crc = int.from_bytes(data[end - 4 : end], "big")
        if zlib.crc32(data[i + 4 : end - 4]) != crc:
            raise MediaError("image_corrupt", 422)
        if ctype == b"IEND":
            return end
        i = end


def _webp_end(data: bytes) -> int:
    """Offset just past the RIFF container (its size field counts everything after the first 8 bytes)."""
    size = int.from_bytes(data[4:8], "little")
    end = 8 + size
    if end > len(data):
        raise _truncated()
    return end


_ENDS = {"JPEG": _jpeg_end, "PNG": _png_end, "WEBP": _webp_end}


def image_end(data: bytes, fmt: str) -> int:
    """Where the image of format ``fmt`` ends in ``data`` (MediaError ``image_corrupt`` if it never does)."""
    return _ENDS[fmt](data)


# --- EXIF -------------------------------------------------------------------------------------


def _degrees(dms, ref) -> float | None:
    try:
        d, m, s = (float(v) for v in dms)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    value = d + m / 60.0 + s / 3600.0
    if not math.isfinite(value):
        return None
    if isinstance(ref, bytes):
        ref = ref.decode("ascii", "replace")
    if str(ref or "").strip().upper() in ("S", "W"):
        value = -value
    return value


def _exif_gps(exif: Image.Exif) -> tuple[float | None, float | None]:
    gps = exif.get_ifd(_GPS_IFD)
    if not gps:
        return None, None
    lat = _degrees(gps.get(2), gps.get(1))
    lon = _degrees(gps.get(4), gps.get(3))
    if lat is None or lon is None or not (-90 <= lat <= 90 and -180 <= lon <= 180):
        return None, None
    return lat, lon


def _exif_time(exif: Image.Exif, local_tz: tzinfo) -> datetime | None:
    sub = exif.get_ifd(_EXIF_IFD)
    raw = sub.get(_DATETIME_ORIGINAL)
    if not isinstance(raw, str):
        return None
    try:
        moment = datetime.strptime(raw.strip().rstrip("\x00"), "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None
    offset = sub.get(_OFFSET_TIME_ORIGINAL)
    tz = local_tz
    if isinstance(offset, str) and len(offset.strip()) == 6:
        try:
            sign = -1 if offset.strip()[0] == "-" else 1
            hours, minutes = (int(p) for p in offset.strip()[1:].split(":"))
            tz = timezone(sign * timedelta(hours=hours, minutes=minutes))
        except ValueError:
            tz = local_tz
    # EXIF time is the camera's wall clock; without an offset tag it is taken as the city's local time.
    return moment.replace(tzinfo=tz).astimezone(UTC)


# --- decode, check, re-encode ----------------------------------------------------------------------


def _open(data: bytes, fmt: str) -> Image.Image:
    try:
        # Only the plugin the magic bytes named may parse it: no format guessing.
        return Image.open(io.BytesIO(data), formats=[fmt])
    except Image.DecompressionBombError:
        raise MediaError("image_too_many_pixels", 422, limit=MAX_PIXELS) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError):
        raise MediaError("image_corrupt", 422) from None


def inspect_image(data: bytes, local_tz: tzinfo = UTC) -> tuple[ImageFacts, Image.Image]:
    """Check ``data`` is one whole JPEG/PNG/WebP photo of an acceptable size; return its facts and pixels.

    Raises MediaError: ``image_too_large`` (413), ``unsupported_image_type`` (415),
    ``image_too_many_pixels``, ``image_corrupt`` or ``image_trailing_data`` (422).
    """
    if len(data) > MAX_BYTES:
        raise MediaError("image_too_large", 413, limit=MAX_BYTES)
    fmt = sniff_format(data)
    if fmt is None:
        raise MediaError("unsupported_image_type", 415)
    image = _open(data, fmt)
    if image.format != fmt:
        raise MediaError("unsupported_image_type", 415)
    width, height = image.size  # from the header: nothing decoded yet
    if width * height > MAX_PIXELS:
        raise MediaError("image_too_many_pixels", 422, limit=MAX_PIXELS)
    limit = MAX_DECODE_PIXELS[fmt]
    if fmt == "JPEG" and _jpeg_walk(data)[1] > 1:
        limit = MAX_MULTISCAN_JPEG_PIXELS
    if width * height > limit:
        raise MediaError("image_too_many_pixels", 422, limit=limit)
    if getattr(image, "is_animated", False):
        raise MediaError("unsupported_image_type", 415)  # a photo is one frame
    if image_end(data, fmt) != len(data):
        raise MediaError("image_trailing_data", 422)
    exif = image.getexif()
    lat, lon = _exif_gps(exif)
    taken = _exif_time(exif, local_tz)
    if exif.get(_ORIENTATION) in (5, 6, 7, 8):
        width, height = height, width  # displayed size
    if fmt == "JPEG":
        # Decode at the smallest DCT scale still >= the large derivative: the whole stream is still read
        # (truncation still fails) but a 64 MP photo does not take 256 MB to look at.
        # The box is the large derivative's size, so a long thin panorama is scaled down too.
        raw_w, raw_h = image.size
        fit = min(1.0, VARIANTS["large"] / max(raw_w, raw_h))
        image.draft("RGB", (max(1, int(raw_w * fit)), max(1, int(raw_h * fit))))
    try:
        image.load()
    except Image.DecompressionBombError:
        raise MediaError("image_too_many_pixels", 422, limit=MAX_PIXELS) from None
    except (OSError, SyntaxError, ValueError, EOFError, zlib.error):
        raise MediaError("image_corrupt", 422) from None
    facts = ImageFacts(format=fmt, mime=MIME[fmt], width=width, height=height, size_bytes=len(data),
                       sha256=sha256_hex(data), exif_lat=lat, exif_lon=lon, exif_time=taken)
    return facts, image


def _flatten(image: Image.Image) -> Image.Image:
    """RGB pixels in display orientation, transparency composed on white."""
    image = ImageOps.exif_transpose(image) or image
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")


def derive(image: Image.Image) -> dict[str, bytes]:
    """The ``large`` and ``thumb`` JPEGs: re-encoded from fresh pixel buffers, no metadata at all.

    The decoded image is first scaled down in place to fit the ``large`` box (a square, so before or
    after the EXIF rotation is the same), so no full-size copy is ever made: the memory cost of a
    photo is its decoded pixels once.
    """
    if image.mode not in ("RGB", "RGBA", "L", "LA"):
        image = image.convert("RGBA" if image.mode in ("P", "PA") else "RGB")  # palettes scale badly
    side = VARIANTS["large"]
    image.thumbnail((side, side), Image.Resampling.LANCZOS)
    flat = _flatten(image)
    out = {}
    source = flat
    for name, side in sorted(VARIANTS.items(), key=lambda kv: -kv[1]):
        scaled = source.copy()
        scaled.thumbnail((side, side), Image.Resampling.LANCZOS)
        # A new image has an empty ``info``: nothing of the original's metadata can ride along.
        clean = Image.new("RGB", scaled.size)
        clean.paste(scaled)
        buf = io.BytesIO()
        clean.save(buf, "JPEG", quality=JPEG_QUALITY[name], optimize=True, progressive=name == "large")
        out[name] = buf.getvalue()
        source = scaled  # the thumbnail comes from the large image: same result, far less work
    return out


def process_upload(data: bytes, claimed_sha256: str, local_tz: tzinfo = UTC) -> ProcessedImage:
    """Verify the client's hash, inspect the image and build its derivatives (no I/O)."""
    if len(data) > MAX_BYTES:
        raise MediaError("image_too_large", 413, limit=MAX_BYTES)
    check_sha256(data, claimed_sha256)
    facts, image = inspect_image(data, local_tz)
    try:
        derivatives = derive(image)
    except (OSError, ValueError) as exc:  # pragma: no cover - decoded pixels re-encode
        raise MediaError("image_corrupt", 422) from exc
    finally:
        image.close()
    return ProcessedImage(facts=facts, original=data, derivatives=derivatives)


# --- storage ---------------------------------------------------------------------------------------


def _fan_out(root: Path, kind: str, sha256: str) -> Path:
    if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
        raise ValueError("not a sha256 hex digest")  # never let a caller's string become a path
    return root / kind / sha256[:2] / sha256[2:4]


def original_path(root: Path, sha256: str) -> Path:
    """Where the original with this digest lives."""
    return _fan_out(Path(root), "originals", sha256) / sha256


def derived_path(root: Path, sha256: str, variant: str) -> Path:
    """Where a derivative (``large`` or ``thumb``) of the original with this digest lives."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}")
    return _fan_out(Path(root), "derived", sha256) / f"{sha256}.{variant}.jpg"


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` all at once: a temporary file in the same folder, fsync, ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o440)  # the service reads it; nobody rewrites it
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def store(root: Path, processed: ProcessedImage) -> Path:
    """Store the original (once: content-addressed and immutable) and its derivatives; return the original's path.

    Files are written before the database row that points at them. If the row is
    never committed, the files stay as orphans: harmless, because a path is its
    content's digest (a later upload of the same bytes finds exactly these files)
    and nothing serves a file without a row.
    """
    sha = processed.facts.sha256
    original = original_path(root, sha)
    if not original.exists():
        write_atomic(original, processed.original)
    for variant, data in processed.derivatives.items():
        target = derived_path(root, sha, variant)
        if not target.exists():
            write_atomic(target, data)
    return original

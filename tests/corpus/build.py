"""The hostile-upload corpus: every item built from code (or read from a small committed sample).

``items()`` returns :class:`Item` objects; each says what it is, the bytes of its file part, the file
name and Content-Type a hostile client would send, and what the server must answer:

* ``Refuse(status, code)`` - a 4xx with that error code, nothing stored;
* ``ACCEPT`` - the upload is a real photo: it is stored content-addressed (the name is never used)
  and only re-encoded JPEG derivatives are ever served as anything but the original image type.

Request-level items (oversize bodies, a lying Content-Length, thousands of parts) are
:class:`BodyItem` objects built per route by ``body_items(limit)``, because they depend on the
route's body limit. See README.md in this folder for the list and the reasons.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from PIL import Image

HERE = Path(__file__).resolve().parent
SAMPLES = HERE / "samples"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class Refuse:
    """The expected refusal: HTTP status and error code."""

    status: int
    code: str


@dataclass(frozen=True)
class Accept:
    """The expected acceptance (stored as a re-encoded image under its content hash)."""


ACCEPT = Accept()


@dataclass(frozen=True)
class Item:
    """One file part of the corpus."""

    name: str
    kind: str  # wrong_type | pixel_bomb | decompression_bomb | polyglot | truncated | hostile_name
    data: bytes = field(repr=False)
    expect: Refuse | Accept
    filename: str | bytes = "photo.jpg"
    content_type: str = "image/jpeg"
    # What an HTTP upload gets when its multipart envelope, not the bytes, decides (None: ``expect``).
    http: Refuse | Accept | None = None
    # Hostile items must be answered within 1 s; an honest photo at a decoding limit may take its decode time.
    max_seconds: float = 1.0

    @property
    def expect_http(self) -> Refuse | Accept:
        """The expected outcome of the item sent as a multipart upload."""
        return self.http or self.expect


# --- building blocks -----------------------------------------------------------------------------


def png_chunk(ctype: bytes, data: bytes) -> bytes:
    """One PNG chunk with its CRC."""
    return struct.pack(">I", len(data)) + ctype + data + struct.pack(">I", zlib.crc32(ctype + data))


def image(fmt: str = "JPEG", size=(320, 240), **options) -> bytes:
    """A small honest image in ``fmt`` (two colours, so re-encoding is observable)."""
    picture = Image.new("RGB", size, (200, 60, 40))
    picture.paste((10, 10, 200), (0, 0, size[0] // 3, size[1] // 2))
    buf = io.BytesIO()
    picture.save(buf, fmt, **options)
    return buf.getvalue()


def zip_bytes(name: str = "Exploit.class", payload: bytes = b"\xca\xfe\xba\xbe" + b"\x00" * 64) -> bytes:
    """A small, valid zip archive (a JAR is one)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\nMain-Class: Exploit\n")
        archive.writestr(name, payload)
    return buf.getvalue()


def png_header_bomb(width: int, height: int, color_type: int = 2) -> bytes:
    """A structurally valid PNG claiming ``width`` x ``height`` with a few bytes of data (a pixel bomb)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    return PNG_SIGNATURE + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(b"\x00" * 1024)) \
        + png_chunk(b"IEND", b"")


@cache
def png_zlib_bomb(width: int = 8000, height: int = 8000) -> bytes:
    """A complete, valid RGB PNG of ``width`` x ``height`` black pixels: ~190 MB of zeros in ~190 KB of zlib."""
    row = b"\x00" * (1 + 3 * width)  # filter byte 0 + the row
    compressor = zlib.compressobj(9)
    parts = [compressor.compress(row) for _ in range(height)]
    parts.append(compressor.flush())
    idat = b"".join(parts)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    # Split IDAT as encoders do (1 MiB chunks).
    chunks = b"".join(png_chunk(b"IDAT", idat[i:i + (1 << 20)]) for i in range(0, len(idat), 1 << 20))
    return PNG_SIGNATURE + png_chunk(b"IHDR", ihdr) + chunks + png_chunk(b"IEND", b"")


def jpeg_header_bomb(width: int = 30000, height: int = 30000) -> bytes:
    """A small real JPEG whose SOF0 frame header is patched to claim ``width`` x ``height``."""
    data = bytearray(image("JPEG", (16, 16)))
    sof = data.find(b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, height, width)
    return bytes(data)


def webp_header_bomb(width: int = 16383, height: int = 16383) -> bytes:
    """A small lossless WebP whose VP8L header is patched to claim ``width`` x ``height`` (the format's maximum)."""
    data = bytearray(image("WEBP", (16, 16), lossless=True))
    at = data.find(b"VP8L") + 8  # chunk header: fourcc + size
    assert data[at] == 0x2F
    bits = int.from_bytes(data[at + 1:at + 5], "little")
    bits = (bits & ~0x0FFFFFFF) | (width - 1) | ((height - 1) << 14)
    data[at + 1:at + 5] = bits.to_bytes(4, "little")
    return bytes(data)


@cache
def webp_zero_bomb(width: int = 8000, height: int = 8000) -> bytes:
    """A complete, valid lossless WebP of ``width`` x ``height`` black pixels (34 bytes)."""
    buf = io.BytesIO()
    Image.new("RGB", (width, height)).save(buf, "WEBP", lossless=True, quality=0, method=0)
    return buf.getvalue()


@cache
def jpeg_zero_bomb(width: int, height: int, progressive: bool = False) -> bytes:
    """A complete, valid JPEG of ``width`` x ``height`` black pixels (a few hundred KB for 64 MP)."""
    buf = io.BytesIO()
    Image.new("RGB", (width, height)).save(buf, "JPEG", quality=90, progressive=progressive)
    return buf.getvalue()


def gif_bomb() -> bytes:
    """A GIF whose logical screen is 65535 x 65535 and whose one frame says the same (a classic GIF bomb)."""
    small = io.BytesIO()
    Image.new("P", (8, 8)).save(small, "GIF")
    data = bytearray(small.getvalue())
    struct.pack_into("<HH", data, 6, 65535, 65535)  # logical screen descriptor
    desc = data.find(b"\x2c")  # image descriptor
    struct.pack_into("<HH", data, desc + 5, 65535, 65535)
    return bytes(data)


def png_with_text(text: bytes) -> bytes:
    """A valid PNG carrying ``text`` in a tEXt chunk before IEND (still one whole PNG)."""
    data = image("PNG", (64, 48))
    iend = data.rfind(b"IEND") - 4
    return data[:iend] + png_chunk(b"tEXt", b"Comment\x00" + text) + data[iend:]


def jpeg_with_comment(text: bytes) -> bytes:
    """A valid JPEG carrying ``text`` in a COM segment right after SOI."""
    data = image("JPEG", (64, 48))
    return data[:2] + b"\xff\xfe" + struct.pack(">H", len(text) + 2) + text + data[2:]


def sample(name: str) -> bytes:
    """A committed sample file from ``samples/``."""
    return (SAMPLES / name).read_bytes()


HTML = b"<!doctype html><html><body><script>window.__xss=1</script><img src=x onerror=\"window.__xss=1\"></body></html>"
SCRIPT_TEXT = b"<script>window.__xss=1</script><svg onload=window.__xss=1>"

UNSUPPORTED = Refuse(415, "unsupported_image_type")
TOO_MANY_PIXELS = Refuse(422, "image_too_many_pixels")
CORRUPT = Refuse(422, "image_corrupt")
TRAILING = Refuse(422, "image_trailing_data")
DECOMPRESSION_BOMB = Refuse(422, "image_too_many_pixels")
# A 12 MP PNG at the limit is decoded in full, re-encoded and stored: ~0.5 s idle, ~1.3 s on a loaded 2-core box.
AT_LIMIT_SECONDS = 3.0


@cache
def items() -> tuple[Item, ...]:
    """Every file-part item of the corpus (built once per process, ~2 s)."""
    jpeg = image("JPEG")
    png = image("PNG")
    webp = image("WEBP")
    out = [
        # Wrong types, whatever they are called.
        Item("pdf", "wrong_type", sample("document.pdf"), UNSUPPORTED, "scan.jpg"),
        Item("svg_script", "wrong_type", sample("script.svg"), UNSUPPORTED, "photo.svg", "image/svg+xml"),
        Item("html", "wrong_type", HTML, UNSUPPORTED, "photo.jpg", "text/html"),
        Item("exe_pe", "wrong_type", sample("tiny.exe"), UNSUPPORTED, "photo.jpg.exe", "application/octet-stream"),
        Item("elf", "wrong_type", sample("tiny.elf"), UNSUPPORTED, "photo.jpg"),
        Item("zip", "wrong_type", zip_bytes(), UNSUPPORTED, "photo.zip", "application/zip"),
        Item("text_as_jpg", "wrong_type", sample("text-renamed.jpg"), UNSUPPORTED),
        Item("empty", "wrong_type", b"", UNSUPPORTED),
        Item("gif", "wrong_type", image("GIF"), UNSUPPORTED, "photo.gif", "image/gif"),
        Item("bmp", "wrong_type", image("BMP"), UNSUPPORTED),
        Item("tiff", "wrong_type", image("TIFF"), UNSUPPORTED, "photo.tif", "image/tiff"),
        Item("magic_only_jpeg", "wrong_type", b"\xff\xd8\xff\xe0" + b"A" * 64, CORRUPT),
        # Pixel bombs: a huge canvas claimed by a tiny file (refused from the header).
        Item("png_30000x30000", "pixel_bomb", png_header_bomb(30000, 30000), TOO_MANY_PIXELS, "p.png", "image/png"),
        Item("png_just_over_limit", "pixel_bomb", png_header_bomb(8000, 8001), TOO_MANY_PIXELS, "p.png", "image/png"),
        Item("jpeg_30000x30000", "pixel_bomb", jpeg_header_bomb(30000, 30000), TOO_MANY_PIXELS),
        Item("webp_16383x16383", "pixel_bomb", webp_header_bomb(), TOO_MANY_PIXELS, "p.webp", "image/webp"),
        Item("gif_65535x65535", "pixel_bomb", gif_bomb(), UNSUPPORTED, "p.gif", "image/gif"),
        # Decompression bombs: complete images of zeros inflating ~1000x, refused from the header by the limit
        # of what decoding that format costs (server/media.py MAX_DECODE_PIXELS) ...
        Item("png_zlib_zero_bomb", "decompression_bomb", png_zlib_bomb(8000, 8000), DECOMPRESSION_BOMB, "p.png",
             "image/png"),
        Item("webp_zero_bomb", "decompression_bomb", webp_zero_bomb(8000, 8000), DECOMPRESSION_BOMB, "p.webp",
             "image/webp"),
        Item("jpeg_progressive_zero_bomb", "decompression_bomb", jpeg_zero_bomb(8000, 8000, True),
             DECOMPRESSION_BOMB),
        # ... and just under those limits: accepted, within the time and memory bounds.
        Item("png_zero_bomb_at_limit", "decompression_bomb", png_zlib_bomb(4000, 3000), ACCEPT, "p.png", "image/png",
             max_seconds=AT_LIMIT_SECONDS),
        Item("webp_zero_bomb_at_limit", "decompression_bomb", webp_zero_bomb(2000, 1500), ACCEPT, "p.webp",
             "image/webp", max_seconds=AT_LIMIT_SECONDS),
        Item("jpeg_progressive_at_limit", "decompression_bomb", jpeg_zero_bomb(4000, 3000, True), ACCEPT,
             max_seconds=AT_LIMIT_SECONDS),
        Item("jpeg_panorama_64000x1000", "decompression_bomb", jpeg_zero_bomb(64000, 1000), ACCEPT),
        # Polyglots.
        Item("jpeg_plus_html", "polyglot", jpeg + HTML, TRAILING),
        Item("jpeg_plus_zip", "polyglot", jpeg + zip_bytes(), TRAILING),
        Item("png_plus_html", "polyglot", png + HTML, TRAILING, "p.png", "image/png"),
        Item("webp_plus_html", "polyglot", webp + HTML, TRAILING, "p.webp", "image/webp"),
        Item("gifar", "polyglot", image("GIF") + zip_bytes(), UNSUPPORTED, "p.gif", "image/gif"),
        Item("html_then_jpeg", "polyglot", HTML + jpeg, UNSUPPORTED, "p.jpg", "text/html"),
        # Valid images whose metadata carries script: accepted, served only re-encoded or as the image type.
        Item("png_script_text_chunk", "polyglot", png_with_text(SCRIPT_TEXT), ACCEPT, "p.png", "image/png"),
        Item("jpeg_html_comment", "polyglot", jpeg_with_comment(HTML), ACCEPT),
        # Truncated and broken images.
        Item("jpeg_truncated", "truncated", jpeg[: len(jpeg) // 2], CORRUPT),
        Item("jpeg_no_eoi", "truncated", jpeg[:-2], CORRUPT),
        Item("png_truncated", "truncated", png[: len(png) // 2], CORRUPT, "p.png", "image/png"),
        Item("png_bad_crc", "truncated", png[:40] + bytes([png[40] ^ 0xFF]) + png[41:], CORRUPT, "p.png",
             "image/png"),
        Item("webp_truncated", "truncated", webp[: len(webp) // 2], CORRUPT, "p.webp", "image/webp"),
    ]
    # Hostile file names: the name is never used, so an honest photo is accepted and stored by its hash.
    names = {
        "name_traversal": "../../etc/passwd",
        "name_traversal_windows": "..\\..\\..\\windows\\win.ini",
        "name_nul": b"photo.jpg\x00.php",
        "name_crlf": b"photo\r\nContent-Type: text/html\r\n\r\n<script>.jpg",
        "name_10k": "a" * 10_000 + ".jpg",
        "name_rtl_override": "photo\u202egpj.exe",
        "name_double_ext": "photo.jpg.php",
        "name_script": "<img src=x onerror=\"window.__xss=1\">.jpg",
    }
    # A CRLF in the name ends the part's header early: the part is no longer a file at all, and the form
    # is refused for carrying an unknown field (the bytes themselves, fetched from a messenger, are a photo).
    envelope = {"name_crlf": Refuse(400, "validation_failed")}
    for label, filename in names.items():
        out.append(Item(label, "hostile_name", jpeg_with_comment(label.encode()), ACCEPT, filename,
                        http=envelope.get(label)))
    out.append(Item("name_traversal_html", "hostile_name", HTML, UNSUPPORTED, "../../static/index.html",
                    "text/html"))
    return tuple(out)


# --- multipart, by hand (so hostile names reach the server byte for byte) -----------------------------


BOUNDARY = b"----jauap-corpus-7f3a9c"


def _quote(value: str | bytes) -> bytes:
    raw = value.encode("utf-8") if isinstance(value, str) else value
    return raw.replace(b'"', b"%22")


def multipart(fields: list[tuple[str, str]], files: list[tuple[str, str | bytes, str, bytes]]) -> tuple[bytes, str]:
    """A multipart/form-data body (bytes) and its Content-Type; ``files`` are (field, filename, type, data)."""
    out = io.BytesIO()
    for name, value in fields:
        out.write(b"--" + BOUNDARY + b"\r\nContent-Disposition: form-data; name=\"" + _quote(name) + b"\"\r\n\r\n")
        out.write(value.encode("utf-8") + b"\r\n")
    for name, filename, ctype, data in files:
        out.write(b"--" + BOUNDARY + b"\r\nContent-Disposition: form-data; name=\"" + _quote(name)
                  + b"\"; filename=\"" + _quote(filename) + b"\"\r\nContent-Type: " + ctype.encode() + b"\r\n\r\n")
        out.write(data + b"\r\n")
    out.write(b"--" + BOUNDARY + b"--\r\n")
    return out.getvalue(), "multipart/form-data; boundary=" + BOUNDARY.decode()


@dataclass(frozen=True)
class BodyItem:
    """A request-level item: a whole body (and maybe a Content-Length that lies about it)."""

    name: str
    expect: Refuse
    body: bytes = field(repr=False)
    content_type: str
    content_length: int | None = None  # None: the true length


def body_items(fields: list[tuple[str, str]], file_field: str, limit: int) -> list[BodyItem]:
    """Oversize and many-part bodies for a route with body limit ``limit`` and its usual ``fields``."""
    filler = b"\xff\xd8\xff\xe0" + b"\x00" * (limit + 1024)
    over, ctype = multipart(fields, [(file_field, "big.jpg", "image/jpeg", filler)])
    honest, _ = multipart(fields, [(file_field, "p.jpg", "image/jpeg", image("JPEG"))])
    many_fields, _ = multipart(fields + [(f"f{i}", "x") for i in range(5000)], [])
    tiny = image("JPEG", (8, 8))
    many_files, _ = multipart(fields, [(file_field, f"p{i}.jpg", "image/jpeg", tiny) for i in range(2000)])
    return [
        BodyItem("body_over_limit", Refuse(413, "body_too_large"), over, ctype),
        # The header claims more than the limit: refused before a byte of the body is read.
        BodyItem("content_length_claims_huge", Refuse(413, "body_too_large"), honest, ctype, content_length=1 << 40),
        # The header claims a short body and more follows: only the claimed bytes are read (a cut multipart).
        BodyItem("content_length_short", Refuse(400, "validation_failed"), over, ctype,
                 content_length=len(honest) // 2),
        BodyItem("5000_fields", Refuse(413, "body_too_large"), many_fields, ctype),
        BodyItem("2000_files", Refuse(413, "body_too_large"), many_files, ctype),
    ]

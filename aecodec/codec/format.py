"""The .aec container (format version 1). Standard library only.

All integers are unsigned big-endian. A file is::

    offset   size  field           rules
    ------   ----  --------------  ----------------------------------------------------------
         0      4  magic           89 41 45 43  ("\\x89AEC")
         4      1  version         1 (a reader refuses any other value, naming both versions)
         5      1  layout          1 = gray (L), 2 = gray + alpha (LA), 3 = RGB, 4 = RGBA
         6      2  quality         quality × 100, 0 … 10000 (i.e. 0.00 … 100.00)
         8      4  width           1 … 2^24; width × height ≤ the reader's pixel cap
        12      4  height          1 … 2^24
        16      8  weights hash    first 8 bytes of the model's weights hash
        24      1  id length n     1 … 64
        25      n  model id        ASCII kebab-case: [a-z0-9]+(-[a-z0-9]+)*
    25+n        1  section count   k, 2 … 8
    26+n     5·k   section table   k × (kind: u8, length: u32); kinds unique:
                                     1 = z   rANS string of the hyper-latent  (required)
                                     2 = y   rANS string of the latent        (required)
                                     3 = alpha  PNG of the alpha plane        (layouts 2, 4 only; then required)
    26+n+5k  Σlen  sections        the section payloads, in table order
    end-4       4  CRC-32          zlib.crc32 of every byte before it

A reader checks, in this order and before allocating anything large: length ≥ the fixed part,
magic, version, each header field's range, the pixel cap, the section table (kinds known,
unique, required ones present), that the section lengths add up to the file length exactly
(shorter: "truncated"; longer: "trailing bytes"), and the CRC.

The model is named by its stable id plus a weights hash — never by position in a list — so a
file made with other weights is refused with the name of the weights it needs.
"""

from __future__ import annotations

import re
import struct
import zlib
from dataclasses import dataclass, field

__all__ = [
    "MAGIC", "VERSION", "Layout", "Section", "Container", "FormatError",
    "pack", "unpack", "DEFAULT_MAX_PIXELS", "MAX_SIDE",
]

MAGIC = b"\x89AEC"
VERSION = 1
MAX_SIDE = 1 << 24
DEFAULT_MAX_PIXELS = 1 << 28  # 268 MP; configurable per call (decompression-bomb cap)
MODEL_ID_RE = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*\Z")

_FIXED = struct.Struct(">4sBBHII8sB")  # magic … id length: 25 bytes
_SECTION = struct.Struct(">BI")
_CRC = struct.Struct(">I")


class Layout:
    GRAY, GRAY_ALPHA, RGB, RGBA = 1, 2, 3, 4
    NAMES = {1: "gray", 2: "gray+alpha", 3: "RGB", 4: "RGBA"}
    WITH_ALPHA = {2, 4}


class Section:
    Z, Y, ALPHA = 1, 2, 3
    NAMES = {1: "z", 2: "y", 3: "alpha"}


class FormatError(ValueError):
    """The bytes are not a valid .aec file; the message says why, in one line."""


@dataclass(frozen=True)
class Container:
    width: int
    height: int
    layout: int
    quality: float
    model_id: str
    weights_hash: str  # 16 lowercase hex digits
    sections: dict[int, bytes] = field(default_factory=dict)
    version: int = VERSION


def _check_fields(width: int, height: int, layout: int, quality_x100: int, model_id: str,
                  max_pixels: int) -> None:
    if layout not in Layout.NAMES:
        raise FormatError(f"invalid channel layout {layout} (expected 1–4)")
    if not 0 <= quality_x100 <= 10000:
        raise FormatError(f"invalid quality {quality_x100 / 100} (expected 0–100)")
    for name, v in (("width", width), ("height", height)):
        if not 1 <= v <= MAX_SIDE:
            raise FormatError(f"invalid {name} {v} (expected 1–{MAX_SIDE})")
    if width * height > max_pixels:
        raise FormatError(f"image of {width}×{height} = {width * height} pixels exceeds the cap of "
                          f"{max_pixels} pixels (decompression-bomb guard)")
    if not 1 <= len(model_id) <= 64 or not MODEL_ID_RE.match(model_id):
        raise FormatError(f"invalid model id {model_id!r}")


def _check_sections(layout: int, kinds: list[int]) -> None:
    for k in kinds:
        if k not in Section.NAMES:
            raise FormatError(f"unknown section kind {k}")
    if len(set(kinds)) != len(kinds):
        raise FormatError("duplicate section in the section table")
    required = {Section.Z, Section.Y} | ({Section.ALPHA} if layout in Layout.WITH_ALPHA else set())
    if set(kinds) != required:
        missing, extra = required - set(kinds), set(kinds) - required
        what = [f"missing {Section.NAMES[k]}" for k in sorted(missing)] + \
               [f"unexpected {Section.NAMES[k]}" for k in sorted(extra)]
        raise FormatError(f"section table does not match the layout ({', '.join(what)})")


def pack(c: Container) -> bytes:
    """Serialise a container; raises FormatError if a field is out of range."""
    q = round(c.quality * 100)
    _check_fields(c.width, c.height, c.layout, q, c.model_id, max_pixels=MAX_SIDE * MAX_SIDE)
    _check_sections(c.layout, list(c.sections))
    digest = bytes.fromhex(c.weights_hash)
    if len(digest) != 8:
        raise FormatError("weights hash must be 8 bytes (16 hex digits)")
    mid = c.model_id.encode("ascii")
    parts = [_FIXED.pack(MAGIC, VERSION, c.layout, q, c.width, c.height, digest, len(mid)), mid,
             bytes([len(c.sections)])]
    parts += [_SECTION.pack(kind, len(data)) for kind, data in c.sections.items()]
    parts += list(c.sections.values())
    body = b"".join(parts)
    return body + _CRC.pack(zlib.crc32(body))


def unpack(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS, header_only: bool = False) -> Container:
    """Parse and validate a file (see the module docstring for the order of checks).

    With ``header_only`` the sections and CRC are not checked, only the header and the
    section table (for ``aecodec info`` on a damaged file); section payloads are then empty.
    """
    data = memoryview(data)
    if len(data) >= 4 and bytes(data[:4]) != MAGIC:
        raise FormatError("not an .aec file (wrong magic bytes)")
    if len(data) < _FIXED.size:
        raise FormatError(f"truncated file: {len(data)} bytes is shorter than the header")
    magic, version, layout, q, width, height, digest, n = _FIXED.unpack_from(data)
    if version != VERSION:
        raise FormatError(f"unsupported format version {version}: this aecodec reads version {VERSION}"
                          + (" — upgrade aecodec" if version > VERSION else ""))
    pos = _FIXED.size
    if len(data) < pos + n + 1:
        raise FormatError("truncated file: header cut short")
    try:
        model_id = bytes(data[pos:pos + n]).decode("ascii")
    except UnicodeDecodeError:
        raise FormatError("invalid model id (not ASCII)") from None
    _check_fields(width, height, layout, q, model_id, max_pixels)
    pos += n
    k = data[pos]
    pos += 1
    if not 2 <= k <= 8:
        raise FormatError(f"invalid section count {k}")
    if len(data) < pos + k * _SECTION.size:
        raise FormatError("truncated file: section table cut short")
    table = [_SECTION.unpack_from(data, pos + i * _SECTION.size) for i in range(k)]
    pos += k * _SECTION.size
    _check_sections(layout, [kind for kind, _ in table])
    total = pos + sum(length for _, length in table) + _CRC.size
    if not header_only:
        if len(data) < total:
            raise FormatError(f"truncated file: {len(data)} bytes, the header announces {total}")
        if len(data) > total:
            raise FormatError(f"trailing bytes: {len(data) - total} bytes after the end of the file")
        (crc,) = _CRC.unpack_from(data, total - _CRC.size)
        if zlib.crc32(data[:total - _CRC.size]) != crc:
            raise FormatError("CRC mismatch: the file is corrupt")
    sections = {}
    for kind, length in table:
        sections[kind] = b"" if header_only else bytes(data[pos:pos + length])
        pos += length
    return Container(width=width, height=height, layout=layout, quality=q / 100, model_id=model_id,
                     weights_hash=digest.hex(), sections=sections, version=version)

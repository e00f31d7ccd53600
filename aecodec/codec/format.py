"""The .aec container (format versions 1 and 2). Standard library only.

All integers are unsigned big-endian. A file is::

    offset   size  field           rules
    ------   ----  --------------  ----------------------------------------------------------
         0      4  magic           89 41 45 43  ("\\x89AEC")
         4      1  version         1 or 2 (a reader refuses any other value, naming the versions
                                   it reads); 2 only for folded images (below)
         5      1  layout          1 = gray (L), 2 = gray + alpha (LA), 3 = RGB, 4 = RGBA
         6      2  quality         quality × 100, 0 … 10000 (i.e. 0.00 … 100.00)
         8      4  width           1 … 2^24; width × height ≤ the reader's pixel cap
        12      4  height          1 … 2^24
        16      2  tile            tile side ÷ 64, 1 … 32 (tiles of 64 … 2048 pixels)
        18      8  weights hash    first 8 bytes of the model's weights hash
        26      1  id length n     1 … 64
        27      n  model id        ASCII kebab-case: [a-z0-9]+(-[a-z0-9]+)*
  (version 2 only)
    27+n        2  strips          s ≥ 2: the image is coded folded (below)
    27+n(+2)  4·S  section table   S lengths (u32), S = 2·T + A, where T = ⌈W/tile⌉·⌈H/tile⌉ tiles
                                   of the coded size W × H (the image's, or the folded one) and
                                   A = 1 for layouts 2 and 4, else 0. Order: for each tile in
                                   raster order its z then its y; then the alpha section.
    …        Σlen  sections        z: rANS string of the tile's hyper-latent
                                   y: rANS string of the tile's latent
                                   (a rANS string is 32-bit words, at least two: its length
                                   is a multiple of 4, at least 8)
                                   alpha: PNG of the whole alpha plane (lossless)
    end-4       4  CRC-32          zlib.crc32 of every byte before it

The size rules below (tiles, the coded size of a folded image) are :mod:`.geometry`'s, shared
with the encoder and decoder.

A thin image is coded *folded*, so that its cost follows its pixels and not the padding of its
short side to 64 (a 1×100 000 strip would be coded as 64×100 032 pixels): the long side is cut into
s strips of ⌈long / s⌉ pixels (the last one shorter) and the strips are coded side by side across
the short side with 4 guard lines between neighbours — a wide image's column strips stacked top
to bottom (coded size ⌈width/s⌉ × (s·r·height + 4·(s−1))), a tall image's row strips left to
right ((s·r·width + 4·(s−1)) × ⌈height/s⌉). r = ⌈4 / short⌉: an image thinner than 4 pixels has
each line repeated r times. Both keep the coded picture smooth across the short side, which the
model codes far better than strips meeting edge to edge. The guard lines are the encoder's choice
(aecodec's: a linear ramp between the two strips' facing lines); the decoder skips them, takes the
mean of a line's copies, and crops. Every strip holds at least one pixel. The alpha section always
holds the unfolded plane.
A file is written as version 1 unless it is folded, so version-1 readers read every other file.

Each tile is coded independently (its own hyperprior), so encoder and decoder work tile by tile
in bounded memory; the decoder synthesises each tile with a margin of its neighbours' latents, so
tile boundaries leave no seams. Small images are a single tile. The tile side is capped at
:data:`MAX_TILE` because a tile's rANS strings are decoded whole: the cap bounds what a header
can make a decoder allocate for one tile.

A reader checks, in this order and before allocating anything large: the magic, length ≥ the
fixed part, version, each header field's range, the pixel cap (of the image and of its coded
size), that the section table fits in the file, that each z and y section is long enough to be a
rANS string, that the section lengths add up to the file length exactly (shorter: "truncated";
longer: "trailing bytes"), and the CRC.

The model is named by its stable id plus a weights hash — never by position in a list — so a
file made with other weights is refused with the name of the weights it needs.
"""

from __future__ import annotations

import re
import struct
import zlib
from dataclasses import dataclass

from ..errors import FormatError
from .geometry import MAX_SIDE, MAX_TILE, TILE_UNIT, coded_size, tile_grid, valid_fold

__all__ = ["MAGIC", "VERSION", "READS", "Layout", "Container", "FormatError", "pack", "unpack", "DEFAULT_MAX_PIXELS",
           "MAX_CHANNELS", "MAX_SIDE", "TILE_UNIT", "MAX_TILE"]

MAGIC = b"\x89AEC"
VERSION = 2  # the newest version this module reads and writes
READS = (1, 2)
MIN_RANS = 8  # bytes of the shortest rANS string: the coder's 64-bit final state
DEFAULT_MAX_PIXELS = 1 << 28  # 268 MP; configurable per call (decompression-bomb cap)
MAX_CHANNELS = 512  # latent channels (y's M, z's N) a model may have: bounds what a section can hold
MODEL_ID_RE = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*\Z")

_FIXED = struct.Struct(">4sBBHIIH8sB")  # magic … id length: 27 bytes
_CRC = struct.Struct(">I")
_STRIPS = struct.Struct(">H")


class Layout:
    GRAY, GRAY_ALPHA, RGB, RGBA = 1, 2, 3, 4
    NAMES = {1: "gray", 2: "gray+alpha", 3: "RGB", 4: "RGBA"}
    PIL_MODES = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}  # the Pillow mode each layout decodes to
    WITH_ALPHA = {2, 4}
    GRAYS = {1, 2}


@dataclass(frozen=True)
class Container:
    width: int
    height: int
    layout: int
    quality: float
    model_id: str
    weights_hash: str  # 16 lowercase hex digits
    tile: int  # tile side in pixels, a multiple of 64
    tiles: tuple[tuple[bytes, bytes], ...]  # (z, y) per tile, raster order
    alpha: bytes | None = None
    strips: int = 1  # > 1: coded folded (version 2)

    @property
    def version(self) -> int:
        return 2 if self.strips > 1 else 1

    @property
    def coded_size(self) -> tuple[int, int]:
        return coded_size(self.width, self.height, self.strips)


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


def _check_strips(width: int, height: int, strips: int, max_pixels: int) -> None:
    if not valid_fold(width, height, strips):
        raise FormatError(f"invalid fold of a {width}×{height} image into {strips} strips")
    w, h = coded_size(width, height, strips)
    if max(w, h) > MAX_SIDE or w * h > max_pixels:
        raise FormatError(f"folded size {w}×{h} exceeds the caps (side {MAX_SIDE}, {max_pixels} pixels)")


def _check_tile(tile: int) -> None:
    if tile % TILE_UNIT or not TILE_UNIT <= tile <= MAX_TILE:
        raise FormatError(f"invalid tile size {tile} (a multiple of {TILE_UNIT} up to {MAX_TILE})")


def _check_sections(lengths, n_coded: int) -> None:
    """The first ``n_coded`` sections (z, y per tile) must be able to hold a rANS string."""
    for i, n in enumerate(lengths[:n_coded]):
        if n < MIN_RANS or n % 4:
            raise FormatError(f"corrupt {'zy'[i % 2]} section of tile {i // 2 + 1}: {n} bytes cannot be a rANS "
                              f"string (a multiple of 4, at least {MIN_RANS})")


def pack(c: Container) -> bytes:
    """Serialise a container; raises FormatError if a field is out of range."""
    q = round(c.quality * 100)
    _check_fields(c.width, c.height, c.layout, q, c.model_id, max_pixels=MAX_SIDE * MAX_SIDE)
    _check_tile(c.tile)
    if c.strips != 1:
        _check_strips(c.width, c.height, c.strips, MAX_SIDE * MAX_SIDE)
    rows, cols = tile_grid(*c.coded_size, c.tile)
    if len(c.tiles) != rows * cols:
        raise FormatError(f"{len(c.tiles)} tiles given, the tile grid has {rows * cols}")
    if (c.alpha is not None) != (c.layout in Layout.WITH_ALPHA):
        raise FormatError("an alpha section goes with layouts 2 and 4, and only with them")
    _check_sections([len(s) for zy in c.tiles for s in zy], 2 * len(c.tiles))
    digest = bytes.fromhex(c.weights_hash)
    if len(digest) != 8:
        raise FormatError("weights hash must be 8 bytes (16 hex digits)")
    mid = c.model_id.encode("ascii")
    sections = [s for zy in c.tiles for s in zy] + ([c.alpha] if c.alpha is not None else [])
    parts = [_FIXED.pack(MAGIC, c.version, c.layout, q, c.width, c.height, c.tile // TILE_UNIT, digest, len(mid)),
             mid, _STRIPS.pack(c.strips) if c.version == 2 else b"",
             struct.pack(f">{len(sections)}I", *map(len, sections)), *sections]
    body = b"".join(parts)
    return body + _CRC.pack(zlib.crc32(body))


def unpack(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS, header_only: bool = False) -> Container:
    """Parse and validate a file (see the module docstring for the order of checks).

    With ``header_only`` the sections and CRC are not checked (for ``aecodec info`` or Pillow's
    open on a damaged file); the section payloads are then empty.
    """
    data = memoryview(data)
    if len(data) >= 4 and bytes(data[:4]) != MAGIC:
        raise FormatError("not an .aec file (wrong magic bytes)")
    if len(data) < _FIXED.size:
        raise FormatError(f"truncated file: {len(data)} bytes is shorter than the header")
    _, version, layout, q, width, height, tile_units, digest, n = _FIXED.unpack_from(data)
    if version not in READS:
        raise FormatError(f"unsupported format version {version}: this aecodec reads versions "
                          f"{' and '.join(map(str, READS))}" + (" — upgrade aecodec" if version > VERSION else ""))
    pos = _FIXED.size
    if len(data) < pos + n:
        raise FormatError("truncated file: header cut short")
    try:
        model_id = bytes(data[pos:pos + n]).decode("ascii")
    except UnicodeDecodeError:
        raise FormatError("invalid model id (not ASCII)") from None
    _check_fields(width, height, layout, q, model_id, max_pixels)
    tile = tile_units * TILE_UNIT
    _check_tile(tile)
    pos += n
    strips = 1
    if version == 2:
        if len(data) < pos + _STRIPS.size:
            raise FormatError("truncated file: header cut short")
        (strips,) = _STRIPS.unpack_from(data, pos)
        _check_strips(width, height, strips, max_pixels)
        pos += _STRIPS.size
    rows, cols = tile_grid(*coded_size(width, height, strips), tile)
    count = 2 * rows * cols + (1 if layout in Layout.WITH_ALPHA else 0)
    if len(data) < pos + 4 * count:
        raise FormatError("truncated file: section table cut short")
    lengths = struct.unpack_from(f">{count}I", data, pos)
    _check_sections(lengths, 2 * rows * cols)
    pos += 4 * count
    total = pos + sum(lengths) + _CRC.size
    if not header_only:
        if len(data) < total:
            raise FormatError(f"truncated file: {len(data)} bytes, the header announces {total}")
        if len(data) > total:
            raise FormatError(f"trailing bytes: {len(data) - total} bytes after the end of the file")
        (crc,) = _CRC.unpack_from(data, total - _CRC.size)
        if zlib.crc32(data[:total - _CRC.size]) != crc:
            raise FormatError("CRC mismatch: the file is corrupt")
    sections = []
    for length in lengths:
        sections.append(b"" if header_only else bytes(data[pos:pos + length]))
        pos += length
    tiles = tuple(zip(sections[0:2 * rows * cols:2], sections[1:2 * rows * cols:2]))
    alpha = sections[-1] if layout in Layout.WITH_ALPHA else None
    return Container(width=width, height=height, layout=layout, quality=q / 100, model_id=model_id,
                     weights_hash=digest.hex(), tile=tile, tiles=tiles, alpha=alpha, strips=strips)

"""The .aec container (format versions 1, 2 and 3). Standard library only.

All integers are unsigned big-endian. A file is::

    offset   size  field           rules
    ------   ----  --------------  ----------------------------------------------------------
         0      4  magic           89 41 45 43  ("\\x89AEC")
         4      1  version         1, 2 or 3 (a reader refuses any other value, naming the
                                   versions it reads): the entropy coder of the sections (below);
                                   2 only for folded images coded as version 1 is
         5      1  layout          1 = gray (L), 2 = gray + alpha (LA), 3 = RGB, 4 = RGBA
         6      2  quality         quality × 100, 0 … 10000 (i.e. 0.00 … 100.00)
         8      4  width           1 … 2^24; width × height ≤ the reader's pixel cap
        12      4  height          1 … 2^24
        16      2  tile            tile side ÷ 64, 1 … 32 (tiles of 64 … 2048 pixels)
        18      8  weights hash    first 8 bytes of the model's weights hash
        26      1  id length n     1 … 64
        27      n  model id        ASCII kebab-case: [a-z0-9]+(-[a-z0-9]+)*
  (versions 2 and 3)
    27+n        2  strips          1, or s ≥ 2: the image is coded folded (below); version 2: s ≥ 2
    27+n(+2)  4·S  section table   S lengths (u32), S = 2·T + A, where T = ⌈W/tile⌉·⌈H/tile⌉ tiles
                                   of the coded size W × H (the image's, or the folded one) and
                                   A = 1 for layouts 2 and 4, else 0. Order: for each tile in
                                   raster order its z then its y; then the alpha section.
    …        Σlen  sections        z: entropy-coded string of the tile's hyper-latent
                                   y: entropy-coded string of the tile's latent
                                   (32-bit words: a length that is a multiple of 4; versions 1
                                   and 2: at least 8)
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
The version names the entropy coder of the z and y sections. Versions 1 and 2 (aecodec 0.1) are
CompressAI's rANS coder (``aecodec.entropy.coding``: 64-bit state, 16-bit probabilities, escapes in
4-bit bypass chunks); aecodec 0.1 wrote version 1 unless the image was folded. Version 3 is the
torch-free coder of :mod:`aecodec.entropy.ans` (constriction's ANS, the same 16-bit tables, escapes
in a stream of their own), and what aecodec writes now; its strips field is always present. The
symbols, tables and latents are the same in every version — only the strings differ — so
``aecodec upgrade`` re-codes a version 1 or 2 file as version 3 to the same decoded pixels.

Each tile is coded independently (its own hyperprior), so encoder and decoder work tile by tile
in bounded memory; the decoder synthesises each tile with a margin of its neighbours' latents, so
tile boundaries leave no seams. Small images are a single tile. The tile side is capped at
:data:`MAX_TILE` because a tile's strings are decoded whole: the cap bounds what a header
can make a decoder allocate for one tile.

Every section has a largest possible length, so a file's size follows from its header: a z or
y section holds a coded string of its tile's symbols — z: N·(h/64)·(w/64), y: M·(h/16)·(w/16) for a
tile of h × w padded pixels, at most :data:`MAX_CHANNELS` channels — and CompressAI's coder spends at
most :data:`SYMBOL_BITS` bits on a symbol: 16 for the symbol itself (its probability is at least
2^-16 at 16-bit precision) plus, for a value outside its table, 4 bits for the count of bypass
chunks and 4 for each chunk of an int32 (8 at most). Each 32-bit word it writes carries the bits of
the symbols before it (its 64-bit state keeps at least 31 bits), and rounding costs less than a bit
a symbol, so a string of n symbols is at most ``8 + 4·⌈n·(SYMBOL_BITS + 1)/32⌉`` bytes
(:func:`max_rans`; the codec's own strings stay far below it: latents are capped at ±2^20, and a
real tile spends a few bits a symbol). Version 3's coder spends at most :data:`ANS_SYMBOL_BITS` on a
symbol (24-bit probabilities, and 29 more for an escaped value), so its bound is :func:`max_ans`.
The alpha section is at most the PNG of the plane stored
uncompressed (:func:`max_alpha`). A decoder that knows the model checks the same bound with the
model's own M and N before decoding a tile (:mod:`.pipeline`).

A reader checks, in this order and before allocating anything large: the magic, length ≥ the
fixed part, version, each header field's range, the pixel cap (of the image and of its coded
size), that the section table fits in the file, that each z and y section can be a coded string of
its tile (a multiple of 4, at least :func:`min_section`, at most :func:`max_section` of its symbols) and the alpha
section at most :func:`max_alpha`, that the section lengths add up to the file length exactly
(shorter: "truncated"; longer: "trailing bytes"), and the CRC. The header is parsed in stages
(:func:`read_header`: fixed part, model id, strips, section table), each read only once the one
before it is valid, so a stream is read up to the size its header announces and no further
(:func:`aecodec.codec.files.read_file`).
When the section table or the file length is wrong but the CRC of the whole file is right, the
file was written that way and a header field is at fault: the message names the field (tile,
layout, width or height, strips) whose value would make the table match the file
(:func:`explain_table`), instead of blaming a section.

The model is named by its stable id plus a weights hash — never by position in a list — so a
file made with other weights is refused with the name of the weights it needs.
"""

from __future__ import annotations

import re
import struct
import zlib
from dataclasses import dataclass
from typing import Callable

from ..errors import FormatError
from .geometry import MAX_SIDE, MAX_TILE, TILE_UNIT, coded_size, padded, tile_grid, valid_fold

__all__ = ["MAGIC", "VERSION", "READS", "Layout", "Container", "Header", "FormatError", "pack", "unpack",
           "read_header", "check_sections", "explain_table", "max_rans", "max_ans", "max_section", "min_section", "LEGACY", "max_alpha", "max_file_size",
           "tile_symbols", "DEFAULT_MAX_PIXELS", "MAX_ENCODE_PIXELS", "MAX_CHANNELS", "SYMBOL_BITS", "MAX_SIDE",
           "TILE_UNIT", "MAX_TILE"]

MAGIC = b"\x89AEC"
VERSION = 3  # the version aecodec writes: the newest it reads
READS = (1, 2, 3)
LEGACY = (1, 2)  # the versions coded with CompressAI's rANS (aecodec 0.1), which need aecodec[train] to decode
MIN_RANS = 8  # bytes of the shortest rANS string (versions 1, 2): the coder's 64-bit final state
# The decoder's default pixel cap (decompression-bomb guard), raised per call (max_pixels=, --max-pixels).
DEFAULT_MAX_PIXELS = 1 << 26
MAX_ENCODE_PIXELS = 1 << 28  # the largest image the encoder codes (and a reader can be asked to accept)
MAX_CHANNELS = 512  # latent channels (y's M, z's N) a model may have: bounds what a section can hold
SYMBOL_BITS = 16 + 4 + 8 * 4  # the most a rANS symbol costs: 16-bit probability, escape count, 8 chunks of 4
ANS_SYMBOL_BITS = 25 + 29  # the most a version-3 symbol costs: a 24-bit probability (+ rounding), an escape's 29
MODEL_ID_RE = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*\Z")

_FIXED = struct.Struct(">4sBBHIIH8sB")  # magic … id length: 27 bytes
_CRC = struct.Struct(">I")
_STRIPS = struct.Struct(">H")
_LENGTH = struct.Struct(">I")


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
    strips: int = 1  # > 1: coded folded
    version: int = VERSION  # the entropy coder of the sections (1 and 2: CompressAI's rANS)

    @property
    def coded_size(self) -> tuple[int, int]:
        return coded_size(self.width, self.height, self.strips)


@dataclass(frozen=True)
class Header:
    """A file's header up to its section table (:func:`read_header`): what ``aecodec info`` shows,
    and the size of the whole file (:attr:`total`) before a byte of the payload is read."""

    version: int
    layout: int
    quality: float
    width: int
    height: int
    tile: int
    model_id: str
    weights_hash: str
    strips: int
    lengths: tuple[int, ...]  # the section table: z, y per tile, then alpha
    size: int  # bytes up to the end of the section table: where the sections start

    @property
    def coded_size(self) -> tuple[int, int]:
        return coded_size(self.width, self.height, self.strips)

    @property
    def total(self) -> int:
        """The file's length as the header announces it."""
        return self.size + sum(self.lengths) + _CRC.size


# ----------------------------------------------------------------------------- section bounds
def max_rans(symbols: int) -> int:
    """The longest rANS string (versions 1 and 2) ``symbols`` symbols can make, in bytes (the
    module docstring derives it)."""
    return MIN_RANS + 4 * -(-symbols * (SYMBOL_BITS + 1) // 32)


def max_ans(symbols: int) -> int:
    """The longest version-3 string ``symbols`` symbols can make, in bytes: at most
    :data:`ANS_SYMBOL_BITS` a symbol, plus the coder's 64-bit state (the derivation is
    :func:`aecodec.entropy.ans.max_string`'s, which equals this when every symbol may be an escape)."""
    return 4 * (symbols * ANS_SYMBOL_BITS // 32 + 2)


def min_section(version: int) -> int:
    """The shortest z or y section of a version: a rANS string's final state, or nothing."""
    return MIN_RANS if version in LEGACY else 0


def max_section(version: int, symbols: int) -> int:
    """The longest z or y section ``symbols`` symbols can make in a version."""
    return max_rans(symbols) if version in LEGACY else max_ans(symbols)


def max_alpha(width: int, height: int) -> int:
    """The longest alpha section of a ``width × height`` plane: a PNG of its filtered rows
    (height·(width + 1) bytes) in stored zlib blocks (5 bytes per 64 KiB), in IDAT chunks of at least
    4 KiB (12 bytes each), with 4 KiB for the other chunks — every PNG writer does better."""
    raw = height * (width + 1)
    return raw + raw // 256 + 4096


def tile_symbols(width: int, height: int, strips: int, tile: int, stride: int = TILE_UNIT):
    """``(z symbols per channel, y symbols per channel)`` of each tile of an image, raster order:
    its padded h·w / 64² and h·w / 16²."""
    w, h = coded_size(width, height, strips)
    hp, wp = padded(h, w, stride)
    rows, cols = tile_grid(wp, hp, tile)
    for r in range(rows):
        th = min(tile, hp - r * tile)
        for c in range(cols):
            area = th * min(tile, wp - c * tile)
            yield area // (stride * stride), area * 16 // (stride * stride)


def check_sections(lengths, width: int, height: int, strips: int, tile: int, layout: int, version: int, *,
                   y_channels: int = MAX_CHANNELS, z_channels: int = MAX_CHANNELS, model: str = "") -> None:
    """Each z and y section must be a string its tile's symbols can make in the version's coder (``y_channels`` and
    ``z_channels``: the model's M and N when known; ``model`` names it in the message), the alpha
    section a PNG its plane can make; a :class:`FormatError` names the first that cannot."""
    for t, (z_sym, y_sym) in enumerate(tile_symbols(width, height, strips, tile)):
        for which, n, symbols in (("z", lengths[2 * t], z_channels * z_sym), ("y", lengths[2 * t + 1],
                                                                              y_channels * y_sym)):
            if n < min_section(version) or n % 4:
                least = f", at least {min_section(version)}" if min_section(version) else ""
                raise FormatError(f"corrupt {which} section of tile {t + 1}: {n} bytes cannot be a coded string "
                                  f"(a multiple of 4{least})")
            if n > max_section(version, symbols):
                raise FormatError(f"corrupt {which} section of tile {t + 1}: {n} bytes, more than the "
                                  f"{symbols} symbols of {model or 'any model'}'s tile can make "
                                  f"(at most {max_section(version, symbols)})")
    if layout in Layout.WITH_ALPHA and lengths[-1] > max_alpha(width, height):
        raise FormatError(f"corrupt alpha section: {lengths[-1]} bytes, more than a PNG of a {width}×{height} "
                          f"plane needs (at most {max_alpha(width, height)})")


def max_file_size(h: Header) -> int:
    """The longest valid file with ``h``'s image (its size, strips and model id, any tile, with or
    without alpha): how far a reader reads a stream whose header and length disagree."""
    z_sym = y_sym = count = 0
    for z, y in tile_symbols(h.width, h.height, h.strips, TILE_UNIT):  # the most sections
        z_sym, y_sym, count = z_sym + z, y_sym + y, count + 1
    return (_FIXED.size + len(h.model_id) + _STRIPS.size + 4 * (2 * count + 1) + _CRC.size
            + max_section(h.version, MAX_CHANNELS * (z_sym + y_sym)) + (MIN_RANS + 4) * 2 * count  # rounding
            + max_alpha(h.width, h.height))


# ----------------------------------------------------------------------------- checks
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
                          f"{max_pixels} pixels (decompression-bomb guard; --max-pixels or max_pixels= raises it)")
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


def _count(width: int, height: int, strips: int, tile: int, layout: int) -> int:
    """S, the number of sections: z and y per tile, and alpha."""
    rows, cols = tile_grid(*coded_size(width, height, strips), tile)
    return 2 * rows * cols + (1 if layout in Layout.WITH_ALPHA else 0)


# ----------------------------------------------------------------------------- write
def pack(c: Container) -> bytes:
    """Serialise a container; raises FormatError if a field is out of range."""
    q = round(c.quality * 100)
    _check_fields(c.width, c.height, c.layout, q, c.model_id, max_pixels=MAX_SIDE * MAX_SIDE)
    _check_tile(c.tile)
    if c.version not in READS or (c.version == 1 and c.strips != 1) or (c.version == 2 and c.strips == 1):
        raise FormatError(f"version {c.version} cannot hold {c.strips} strips (1: one, 2: several, 3: any)")
    if c.strips != 1:
        _check_strips(c.width, c.height, c.strips, MAX_SIDE * MAX_SIDE)
    rows, cols = tile_grid(*c.coded_size, c.tile)
    if len(c.tiles) != rows * cols:
        raise FormatError(f"{len(c.tiles)} tiles given, the tile grid has {rows * cols}")
    if (c.alpha is not None) != (c.layout in Layout.WITH_ALPHA):
        raise FormatError("an alpha section goes with layouts 2 and 4, and only with them")
    sections = [s for zy in c.tiles for s in zy] + ([c.alpha] if c.alpha is not None else [])
    check_sections([len(s) for s in sections], c.width, c.height, c.strips, c.tile, c.layout, c.version)
    digest = bytes.fromhex(c.weights_hash)
    if len(digest) != 8:
        raise FormatError("weights hash must be 8 bytes (16 hex digits)")
    mid = c.model_id.encode("ascii")
    parts = [_FIXED.pack(MAGIC, c.version, c.layout, q, c.width, c.height, c.tile // TILE_UNIT, digest, len(mid)),
             mid, _STRIPS.pack(c.strips) if c.version >= 2 else b"",
             struct.pack(f">{len(sections)}I", *map(len, sections)), *sections]
    body = b"".join(parts)
    return body + _CRC.pack(zlib.crc32(body))


# ----------------------------------------------------------------------------- read
def read_header(read: Callable[[int], bytes], *, max_pixels: int = DEFAULT_MAX_PIXELS) -> Header:
    """Parse a header in stages from ``read(n)`` (``n`` bytes, fewer only at the end of the file):
    the fixed part, the model id, the strips (versions 2 and 3), the section table — each read only once
    what comes before it is valid, so no more than the header is read, and a hostile header cannot
    ask for more than its pixel cap allows. The sections' lengths are not judged here
    (:func:`check_sections`)."""
    head = read(_FIXED.size)
    if len(head) >= 4 and head[:4] != MAGIC:
        raise FormatError("not an .aec file (wrong magic bytes)")
    if len(head) < _FIXED.size:
        raise FormatError(f"truncated file: {len(head)} bytes is shorter than the header")
    _, version, layout, q, width, height, tile_units, digest, n = _FIXED.unpack(head)
    if version not in READS:
        raise FormatError(f"unsupported format version {version}: this aecodec reads versions "
                          f"{', '.join(map(str, READS[:-1]))} and {READS[-1]}"
                          + (" — upgrade aecodec" if version > VERSION else ""))
    mid = read(n)
    if len(mid) < n:
        raise FormatError("truncated file: header cut short")
    try:
        model_id = mid.decode("ascii")
    except UnicodeDecodeError:
        raise FormatError("invalid model id (not ASCII)") from None
    _check_fields(width, height, layout, q, model_id, max_pixels)
    tile = tile_units * TILE_UNIT
    _check_tile(tile)
    size = _FIXED.size + n
    strips = 1
    if version >= 2:
        raw = read(_STRIPS.size)
        if len(raw) < _STRIPS.size:
            raise FormatError("truncated file: header cut short")
        (strips,) = _STRIPS.unpack(raw)
        if strips != 1 or version == 2:
            _check_strips(width, height, strips, max_pixels)
        size += _STRIPS.size
    count = _count(width, height, strips, tile, layout)
    table = read(4 * count)
    if len(table) < 4 * count:
        raise FormatError("truncated file: section table cut short")
    return Header(version=version, layout=layout, quality=q / 100, width=width, height=height, tile=tile,
                  model_id=model_id, weights_hash=digest.hex(), strips=strips,
                  lengths=struct.unpack(f">{count}I", table), size=size + 4 * count)


def _reader(data: memoryview) -> Callable[[int], bytes]:
    pos = 0

    def read(n: int) -> bytes:
        nonlocal pos
        out = bytes(data[pos:pos + n])
        pos += len(out)
        return out

    return read


def unpack(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> Container:
    """Parse and validate a file (see the module docstring for the order of checks). The header
    alone, without judging the payload, is :func:`read_header`'s."""
    data = memoryview(data)
    h = read_header(_reader(data), max_pixels=max_pixels)
    check_file(h, data)
    sections, pos = [], h.size
    for length in h.lengths:
        sections.append(bytes(data[pos:pos + length]))
        pos += length
    n_coded = len(h.lengths) - (1 if h.layout in Layout.WITH_ALPHA else 0)
    tiles = tuple(zip(sections[0:n_coded:2], sections[1:n_coded:2]))
    alpha = sections[-1] if h.layout in Layout.WITH_ALPHA else None
    return Container(width=h.width, height=h.height, layout=h.layout, quality=h.quality, model_id=h.model_id,
                     weights_hash=h.weights_hash, tile=h.tile, tiles=tiles, alpha=alpha, strips=h.strips,
                     version=h.version)


def check_file(h: Header, data) -> None:
    """The checks after the header (``data``: the whole file): the sections' lengths, the file's
    length, the CRC. A table or a length that is wrong in a file whose CRC is right is explained
    by the header field at fault (:func:`explain_table`)."""
    try:
        check_sections(h.lengths, h.width, h.height, h.strips, h.tile, h.layout, h.version)
        if len(data) < h.total:
            raise FormatError(f"truncated file: {len(data)} bytes, the header announces {h.total}")
        if len(data) > h.total:
            raise FormatError(f"trailing bytes: {len(data) - h.total} bytes after the end of the file")
    except FormatError as exc:
        raise FormatError(explain_table(h, data) or str(exc)) from None
    (crc,) = _CRC.unpack_from(data, h.total - _CRC.size)
    if zlib.crc32(data[:h.total - _CRC.size]) != crc:
        raise FormatError("CRC mismatch: the file is corrupt")


# ----------------------------------------------------------------------------- a header at fault
def _consistent_counts(h: Header, data, start: int) -> list[int]:
    """The section counts S' for which a table of S' lengths at ``start`` accounts for the whole
    file exactly, each length a possible section (a rANS string, or the last one any length)."""
    found, total = [], start + _CRC.size
    for k in range(1, (len(data) - total) // 4 + 1):
        (n,) = _LENGTH.unpack_from(data, start + 4 * (k - 1))
        total += 4 + n
        if total == len(data):
            found.append(k)
        if total > len(data) or n < min_section(h.version) or n % 4:  # no longer table fits: not a string inside
            break
    return found


def explain_table(h: Header, data) -> str | None:
    """Why the section table of a file whose CRC is right does not fit the file — the header
    field whose value would make it fit (``data``: the whole file) — or None when the CRC is
    wrong too (damage, not a header written that way) or no field explains it."""
    if len(data) < h.size + _CRC.size or zlib.crc32(data[:-_CRC.size]) != _CRC.unpack_from(data, len(data) - 4)[0]:
        return None
    counts = _consistent_counts(h, data, h.size - 4 * len(h.lengths))
    if not counts or len(h.lengths) in counts:  # the table fits the file: a section itself is wrong
        return None
    held, announced = counts[0], len(h.lengths)
    head = f"section table does not match the header: the file holds {held} sections, its header announces {announced}"
    with_alpha = h.layout in Layout.WITH_ALPHA
    fields = []  # every field whose other value would make the table fit
    tiles = [u * TILE_UNIT for u in range(1, MAX_TILE // TILE_UNIT + 1)
             if _count(h.width, h.height, h.strips, u * TILE_UNIT, h.layout) in counts]
    if tiles:
        fields.append(f"the tile field ({h.tile}; the sections fit tiles of {tiles[0]})")
    other = {1: 2, 2: 1, 3: 4, 4: 3}[h.layout]
    if _count(h.width, h.height, h.strips, h.tile, other) in counts:
        fields.append(f"the layout field ({Layout.NAMES[h.layout]}; the file "
                      f"{'has no' if with_alpha else 'has an'} alpha section)")
    if h.strips > 1:
        strips = [s for s in range(2, min(max(h.width, h.height), 4096) + 1)
                  if valid_fold(h.width, h.height, s) and _count(h.width, h.height, s, h.tile, h.layout) in counts]
        if strips:
            fields.append(f"the strips field ({h.strips}; the sections fit {strips[0]} strips)")
    if fields:
        return f"{head}: {' or '.join(fields)} is wrong"
    held_tiles = [(k - with_alpha) // 2 for k in counts if (k - with_alpha) % 2 == 0 and k > with_alpha]
    rows, cols = tile_grid(*h.coded_size, h.tile)
    if held_tiles:
        field = ("width" if held_tiles[0] % rows == 0 else "height" if held_tiles[0] % cols == 0
                 else "width or height")
        return (f"{head}: the {field} field is wrong ({h.width}×{h.height} makes {rows}×{cols} tiles of "
                f"{h.tile}; the file holds {held_tiles[0]} tiles)")
    return head

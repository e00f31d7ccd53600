"""Where pixels go: the padding to the model's stride, the tiles, and the folding of thin images
into strips — one place for each rule, shared by the container's reader (:mod:`.format`), the
coding pipeline (:mod:`.pipeline`) and the encoder search (:mod:`.refine`).

Standard library at import (the container's reader uses the size rules); the functions that move
pixels (:func:`pad_to_stride`, :func:`fold`, :func:`unfold`) work on numpy arrays.

Padding: an image is coded at its size rounded up to the stride (64) on each side, its border
replicated. Tiles: the padded image is cut into square tiles in raster order; each is analysed
from the tile plus :data:`MARGIN` pixels of context and synthesised from its latents plus the same
margin of neighbouring latents, so memory is bounded by the tile size and there are no seams.
Folding (format version 2; the byte-level rule is in :mod:`.format`'s docstring): a thin image is
cut along its long side into strips coded side by side, with :data:`GUARD` lines between them.
"""

from __future__ import annotations

__all__ = ["TILE_UNIT", "MAX_TILE", "MAX_SIDE", "DEFAULT_TILE", "MARGIN", "MIN_STRIP", "GUARD", "tile_grid",
           "check_tile", "tile_rects", "padded", "pad_to_stride", "strip_repeat", "coded_size", "valid_fold",
           "strips_for", "fold", "unfold"]

TILE_UNIT = 64  # the model's stride; tiles and padded sizes are multiples of it
MAX_TILE = 32 * TILE_UNIT  # 2048: a tile's strings are decoded whole, so the header's tile is capped
MAX_SIDE = 1 << 24
DEFAULT_TILE = 1024
MARGIN = 64  # pixels of context around a tile: more than the receptive fields of g_a (61 px) and g_s
MIN_STRIP = 4  # a folded strip's short side in pixels, at least: thinner images repeat each line
GUARD = 4  # lines between two folded strips (the encoder's choice of content; the decoder skips them)


# ----------------------------------------------------------------------------- tiles and padding
def tile_grid(width: int, height: int, tile: int) -> tuple[int, int]:
    """(rows, columns) of tiles of side ``tile`` covering a width × height image."""
    return -(-height // tile), -(-width // tile)


def check_tile(tile) -> bool:
    """Whether ``tile`` is a tile side the format allows (a multiple of 64 up to 2048)."""
    return isinstance(tile, int) and not tile % TILE_UNIT and TILE_UNIT <= tile <= MAX_TILE


def tile_rects(height: int, width: int, tile: int, margin: int | None = None):
    """Tiles (y0, y1, x0, x1) over the image padded to the stride, raster order, with their
    context region (ry0, ry1, rx0, rx1) = the tile grown by ``margin`` (default :data:`MARGIN`),
    clipped to the padded image."""
    margin = MARGIN if margin is None else margin
    rows, cols = tile_grid(width, height, tile)
    for r in range(rows):
        for c in range(cols):
            y0, y1 = r * tile, min(height, (r + 1) * tile)
            x0, x1 = c * tile, min(width, (c + 1) * tile)
            yield (y0, y1, x0, x1), (max(0, y0 - margin), min(height, y1 + margin),
                                     max(0, x0 - margin), min(width, x1 + margin))


def padded(height: int, width: int, stride: int = TILE_UNIT) -> tuple[int, int]:
    """The size an image is coded at: each side rounded up to a multiple of ``stride``."""
    return -(-height // stride) * stride, -(-width // stride) * stride


def pad_to_stride(rgb, stride: int = TILE_UNIT):
    """``rgb`` (H, W, 3) padded to :func:`padded` by replicating its border: no artificial edges
    to spend bits on."""
    import numpy as np

    h, w = rgb.shape[:2]
    hp, wp = padded(h, w, stride)
    return rgb if (hp, wp) == (h, w) else np.pad(rgb, ((0, hp - h), (0, wp - w), (0, 0)), mode="edge")


# ----------------------------------------------------------------------------- folding
def strip_repeat(short: int) -> int:
    """How many times a folded image repeats each line across its short side (thinner than
    :data:`MIN_STRIP`: several times)."""
    return -(-MIN_STRIP // short)


def coded_size(width: int, height: int, strips: int = 1) -> tuple[int, int]:
    """(width, height) an image is coded at: itself, or folded into ``strips`` strips along its
    long side, each line repeated :func:`strip_repeat` times, :data:`GUARD` lines between strips."""
    if strips == 1:
        return width, height
    short, long = min(width, height), max(width, height)
    across = strips * strip_repeat(short) * short + (strips - 1) * GUARD
    return (-(-long // strips), across) if width >= height else (across, -(-long // strips))


def valid_fold(width: int, height: int, strips: int) -> bool:
    """Whether a width × height image can be folded into ``strips`` ≥ 2 strips, each holding at
    least one pixel of the long side."""
    long = max(width, height)
    return 2 <= strips <= long and -(-long // strips) * (strips - 1) < long


def strips_for(width: int, height: int) -> int:
    """How many strips to fold an image into (:func:`fold`): 1 (no fold) unless folding at least
    halves the area coded (the image padded to the stride), then the count that codes least."""
    def area(strips: int) -> int:
        w, h = coded_size(width, height, strips)
        hp, wp = padded(h, w)
        return hp * wp

    long, short = max(width, height), min(width, height)
    if long < 4 * short or long < 2 * TILE_UNIT:
        return 1
    best = min((s for s in range(2, min(long, MAX_SIDE // short) + 1) if valid_fold(width, height, s)),
               key=area, default=1)
    return best if 2 * area(best) <= area(1) else 1


def fold(pixels, strips: int):
    """An image ``(H, W, …)`` folded into ``strips`` strips along its long side, side by side
    with :data:`GUARD` lines of linear ramp between neighbours, lines repeated below
    :data:`MIN_STRIP` pixels across (:func:`coded_size`); the last strip is completed by repeating
    its last column (row)."""
    import numpy as np

    if strips == 1:
        return pixels
    if pixels.shape[0] > pixels.shape[1]:  # tall: fold the transpose
        return fold(pixels.swapaxes(0, 1), strips).swapaxes(0, 1)
    pixels = np.repeat(pixels, strip_repeat(pixels.shape[0]), axis=0)
    h, w, rest = pixels.shape[0], pixels.shape[1], pixels.shape[2:]
    n, g = -(-w // strips), GUARD
    full = np.pad(pixels, [(0, 0), (0, n * strips - w)] + [(0, 0)] * len(rest), mode="edge")
    blocks = np.empty((strips, h + g, n, *rest), pixels.dtype)
    blocks[:, :h] = full.reshape(h, strips, n, *rest).swapaxes(0, 1)
    t = (np.arange(1, g + 1) / (g + 1)).reshape(1, g, *[1] * (1 + len(rest)))
    ramp = (1 - t) * blocks[:-1, h - 1:h] + t * blocks[1:, :1]  # from a strip's last line to the next one's first
    blocks[:-1, h:] = np.round(ramp) if np.issubdtype(pixels.dtype, np.integer) else ramp
    return np.ascontiguousarray(blocks.reshape(strips * (h + g), n, *rest)[:strips * (h + g) - g])


def unfold(coded, width: int, height: int, strips: int):
    """The inverse of :func:`fold`: the ``height × width`` image from its coded pixels (guard lines
    skipped; a repeated line: the rounded mean of its copies, in the coded dtype)."""
    import numpy as np

    if strips == 1:
        return coded
    if height > width:
        return unfold(coded.swapaxes(0, 1), height, width, strips).swapaxes(0, 1)
    r, n, g, rest = strip_repeat(height), coded.shape[1], GUARD, coded.shape[2:]
    whole = np.concatenate([coded, np.zeros((g, n, *rest), coded.dtype)])  # the last strip's (absent) guard
    rows = whole.reshape(strips, r * height + g, n, *rest)[:, :r * height].swapaxes(0, 1)
    rows = rows.reshape(r * height, strips * n, *rest)[:, :width]
    if r > 1:
        rows = rows.reshape(height, r, width, *rest).mean(axis=1)
        rows = np.round(rows).astype(coded.dtype) if np.issubdtype(coded.dtype, np.integer) else rows
    return np.ascontiguousarray(rows)

"""The coding pipeline, tile by tile: the one padding rule, the folding of thin images, the tile
geometry, and the four stages between pixels and rANS strings (g_a → gain → entropy coding;
entropy decoding → g_s).

An image is padded to the model's stride (64) by replicating its border, then cut into square
tiles in raster order. Each tile is analysed from the tile plus :data:`MARGIN` pixels of context
and synthesised from its latents plus the same margin of neighbouring latents, so memory is
bounded by the tile size and there are no seams; each tile has its own z and y strings.
"""

from __future__ import annotations

from typing import Callable, Iterator

import numpy as np

from . import format as fmt
from ..errors import one_line
from .format import Container, FormatError

__all__ = ["DEFAULT_TILE", "MARGIN", "SYNTH_PIECE", "padded", "pad_to_stride", "pixels", "strips_for", "fold",
           "unfold", "tile_rects", "check_tile", "analyze_tiles", "gained", "pack_latents", "decode_tiles",
           "latents", "synthesize", "quality_to_level"]

DEFAULT_TILE = 1024
MARGIN = 64  # pixels of context around a tile: more than the receptive fields of g_a (61 px) and g_s
SYNTH_PIECE = DEFAULT_TILE  # pixels per side of one pass of g_s at decode (the default tile: one pass each)


def padded(height: int, width: int, stride: int = fmt.TILE_UNIT) -> tuple[int, int]:
    """The size an image is coded at: each side rounded up to a multiple of ``stride``."""
    return -(-height // stride) * stride, -(-width // stride) * stride


def pad_to_stride(rgb: np.ndarray, stride: int = fmt.TILE_UNIT) -> np.ndarray:
    """``rgb`` (H, W, 3) padded to :func:`padded` by replicating its border: no artificial edges
    to spend bits on."""
    h, w = rgb.shape[:2]
    hp, wp = padded(h, w, stride)
    return rgb if (hp, wp) == (h, w) else np.pad(rgb, ((0, hp - h), (0, wp - w), (0, 0)), mode="edge")


def pixels(rgb: np.ndarray, device):
    """A region of uint8 pixels (H, W, 3) as the model's input ``(1, 3, H, W)`` in [0, 1] (a copy)."""
    import torch

    return torch.from_numpy(np.array(rgb)).to(device).permute(2, 0, 1)[None].float().div_(255)


def strips_for(width: int, height: int) -> int:
    """How many strips to fold an image into (:func:`fold`): 1 (no fold) unless folding at least
    halves the area coded (the image padded to the stride), then the count that codes least."""
    def area(strips: int) -> int:
        w, h = fmt.coded_size(width, height, strips)
        hp, wp = padded(h, w)
        return hp * wp

    long, short = max(width, height), min(width, height)
    if long < 4 * short or long < 2 * fmt.TILE_UNIT:
        return 1
    best = min((s for s in range(2, min(long, fmt.MAX_SIDE // short) + 1)
                if -(-long // s) * (s - 1) < long), key=area, default=1)
    return best if 2 * area(best) <= area(1) else 1


def fold(pixels: np.ndarray, strips: int) -> np.ndarray:
    """An image ``(H, W, …)`` folded into ``strips`` strips along its long side, side by side
    with :data:`~aecodec.codec.format.GUARD` lines of linear ramp between neighbours, lines repeated
    below 4 pixels across (:func:`~aecodec.codec.format.coded_size`); the last strip is completed
    by repeating its last column (row)."""
    if strips == 1:
        return pixels
    if pixels.shape[0] > pixels.shape[1]:  # tall: fold the transpose
        return fold(pixels.swapaxes(0, 1), strips).swapaxes(0, 1)
    pixels = np.repeat(pixels, fmt.strip_repeat(pixels.shape[0]), axis=0)
    h, w, rest = pixels.shape[0], pixels.shape[1], pixels.shape[2:]
    n, g = -(-w // strips), fmt.GUARD
    full = np.pad(pixels, [(0, 0), (0, n * strips - w)] + [(0, 0)] * len(rest), mode="edge")
    blocks = np.empty((strips, h + g, n, *rest), pixels.dtype)
    blocks[:, :h] = full.reshape(h, strips, n, *rest).swapaxes(0, 1)
    t = (np.arange(1, g + 1) / (g + 1)).reshape(1, g, *[1] * (1 + len(rest)))
    ramp = (1 - t) * blocks[:-1, h - 1:h] + t * blocks[1:, :1]  # from a strip's last line to the next one's first
    blocks[:-1, h:] = np.round(ramp) if np.issubdtype(pixels.dtype, np.integer) else ramp
    return np.ascontiguousarray(blocks.reshape(strips * (h + g), n, *rest)[:strips * (h + g) - g])


def unfold(coded: np.ndarray, width: int, height: int, strips: int) -> np.ndarray:
    """The inverse of :func:`fold`: the ``height × width`` image from its coded pixels (guard lines
    skipped; a repeated line: the rounded mean of its copies, in the coded dtype)."""
    if strips == 1:
        return coded
    if height > width:
        return unfold(coded.swapaxes(0, 1), height, width, strips).swapaxes(0, 1)
    r, n, g, rest = fmt.strip_repeat(height), coded.shape[1], fmt.GUARD, coded.shape[2:]
    whole = np.concatenate([coded, np.zeros((g, n, *rest), coded.dtype)])  # the last strip's (absent) guard
    rows = whole.reshape(strips, r * height + g, n, *rest)[:, :r * height].swapaxes(0, 1)
    rows = rows.reshape(r * height, strips * n, *rest)[:, :width]
    if r > 1:
        rows = rows.reshape(height, r, width, *rest).mean(axis=1)
        rows = np.round(rows).astype(coded.dtype) if np.issubdtype(coded.dtype, np.integer) else rows
    return np.ascontiguousarray(rows)


def tile_rects(height: int, width: int, tile: int):
    """Tiles (y0, y1, x0, x1) over the image padded to the stride, raster order, with their
    context region (ry0, ry1, rx0, rx1) = the tile grown by MARGIN, clipped to the padded image."""
    rows, cols = fmt.tile_grid(width, height, tile)
    for r in range(rows):
        for c in range(cols):
            y0, y1 = r * tile, min(height, (r + 1) * tile)
            x0, x1 = c * tile, min(width, (c + 1) * tile)
            yield (y0, y1, x0, x1), (max(0, y0 - MARGIN), min(height, y1 + MARGIN),
                                     max(0, x0 - MARGIN), min(width, x1 + MARGIN))


def check_tile(tile) -> bool:
    """Whether ``tile`` is a tile side the format allows (a multiple of 64 up to 2048)."""
    return isinstance(tile, int) and not tile % fmt.TILE_UNIT and fmt.TILE_UNIT <= tile <= fmt.MAX_TILE


def quality_to_level(quality: float, num_levels: int) -> float:
    """Quality 0…100 onto the model's continuous gain level 0…L−1 (linear)."""
    return quality / 100.0 * (num_levels - 1)


def analyze_tiles(net, rgb: np.ndarray, tile: int) -> Iterator:
    """g_a of each tile, computed from the tile plus its context and cropped to the tile's latent,
    before the gain; raster order. Pads ``rgb`` to the model's stride by replicating the border."""
    dev = next(net.parameters()).device
    ls = net.config.stride // 4  # pixels per y position (16)
    rgb = pad_to_stride(rgb, net.config.stride)
    for (y0, y1, x0, x1), (ry0, ry1, rx0, rx1) in tile_rects(*rgb.shape[:2], tile):
        x = pixels(rgb[ry0:ry1, rx0:rx1], dev)
        yield net.analyze(x, None)[..., (y0 - ry0) // ls:(y1 - ry0) // ls, (x0 - rx0) // ls:(x1 - rx0) // ls]


def gained(net, latents, quality: float) -> Iterator[tuple]:
    """The plain encoder's coded latents: each tile's analysis times the quality's gain, with
    z = h_a(y) — ``(y, None)`` for :func:`pack_latents`."""
    level = quality_to_level(quality, net.config.num_levels)
    for y in latents:
        yield net.apply_gain(y, level), None


def pack_latents(net, model_id: str, weights_hash: str, width: int, height: int, layout: int,
                 quality: float, tile: int, coded, alpha_png: bytes | None, strips: int = 1) -> bytes:
    """Entropy-code and pack the tiles' coded latents ``(y, z or None)`` (:func:`gained`, or
    :func:`~aecodec.codec.refine.refine_tiles`) of a ``width × height`` image coded in ``strips``."""
    tiles = []
    for y, z in coded:
        out = net.compress_latents(y, z)
        tiles.append((out["z"], out["y"]))
    return fmt.pack(Container(width=width, height=height, layout=layout, quality=quality, model_id=model_id,
                              weights_hash=weights_hash, tile=tile, tiles=tuple(tiles), alpha=alpha_png,
                              strips=strips))


def decode_tiles(net, c: Container) -> Iterator[tuple[tuple[int, int, int, int], dict]]:
    """Entropy-decode each tile: ``((y0, y1, x0, x1) in padded pixels, latents)`` in raster order,
    ``latents`` being :meth:`MeanScaleHyperprior.decode_latents`'s ``z_hat``, ``indexes``,
    ``means`` and ``y_hat`` — everything the decoder sees, bit-identical on every device."""
    s = net.config.stride
    w, h = c.coded_size
    hp, wp = padded(h, w, s)
    for ((y0, y1, x0, x1), _), (z_str, y_str) in zip(tile_rects(hp, wp, c.tile), c.tiles):
        try:
            lat = net.decode_latents(y_str, z_str, ((y1 - y0) // s, (x1 - x0) // s))
        except (RuntimeError, ValueError) as exc:
            raise FormatError(f"corrupt latent data ({one_line(exc)})") from None
        yield (y0, y1, x0, x1), lat


def latents(net, c: Container, on_tile: Callable[[tuple, dict], None] | None = None):
    """ŷ of the whole (padded) image ``(1, M, H/16, W/16)``, tile by tile; ``on_tile(rect, latents)``
    sees each tile's decoded latents (:func:`decode_tiles`) as it is placed. The image-sized tensor
    is allocated only once every tile has decoded: a header claiming a large image with damaged or
    empty strings is refused before it costs more than one tile."""
    import torch

    ls = net.config.stride // 4
    w, h = c.coded_size
    hp, wp = padded(h, w, net.config.stride)
    decoded = []
    for rect, lat in decode_tiles(net, c):
        decoded.append((rect, lat["y_hat"]))
        if on_tile is not None:
            on_tile(rect, lat)
    y_hat = torch.empty(1, net.config.M, hp // ls, wp // ls, device=next(net.parameters()).device)
    while decoded:
        (y0, y1, x0, x1), tile_y_hat = decoded.pop()
        y_hat[..., y0 // ls:y1 // ls, x0 // ls:x1 // ls] = tile_y_hat
    return y_hat


def synthesize(net, c: Container, y_hat) -> np.ndarray:
    """Pixels (H, W, 3) uint8 of the coded size (:func:`unfold` gives the image), in pieces of
    :data:`SYNTH_PIECE` pixels whatever the file's tile (its memory is bounded by the decoder, not
    by the header); each piece sees MARGIN pixels of neighbouring latents, so they join seamlessly."""
    import torch

    ls = net.config.stride // 4
    hp, wp = y_hat.shape[-2] * ls, y_hat.shape[-1] * ls
    level = quality_to_level(c.quality, net.config.num_levels)
    width, height = c.coded_size
    out = np.empty((height, width, 3), np.uint8)
    for (y0, y1, x0, x1), (ry0, ry1, rx0, rx1) in tile_rects(hp, wp, SYNTH_PIECE):
        x_hat = net.synthesize(y_hat[..., ry0 // ls:ry1 // ls, rx0 // ls:rx1 // ls], level)
        if not torch.isfinite(x_hat).all():
            raise FormatError("corrupt latent data (decoded to invalid values)")
        y1, x1 = min(y1, height), min(x1, width)
        crop = x_hat[0, :, y0 - ry0:y1 - ry0, x0 - rx0:x1 - rx0]
        out[y0:y1, x0:x1] = crop.mul(255).round_().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    return out

"""The coding pipeline, tile by tile (tiles and padding: :mod:`.geometry`)::

    encode   pixels ─► analyze_tiles (g_a) ─► gain_tiles ─► pack_tiles (entropy-code, container)
    decode   container ─► decode_tiles (entropy-decode) ─► decode_y_hat ─► synthesize_image (g_s)

``net`` is any :class:`~aecodec.codec.protocol.CodingModel` (the one aecodec builds is
:class:`~aecodec.models.runtime.CodecModel`): numpy arrays in and out, no torch. Each tile has its
own z and y strings; the decoder's ŷ is exact (the same on every device), its pixels come from g_s
in pieces of :data:`SYNTH_PIECE` whatever the file's tile, so a header cannot set the decoder's memory.
"""

from __future__ import annotations

from typing import Callable, Iterable, Iterator

import numpy as np

from ..errors import FormatError, ModelError, one_line
from . import format as fmt
from .format import Container
from .geometry import pad_to_stride, padded, tile_grid, tile_rects
from .protocol import CodingModel

__all__ = ["SYNTH_PIECE", "SYNTH_MARGIN", "to_input", "quality_to_level", "analyze_tiles", "gain_tiles", "pack_tiles",
           "decode_tiles", "decode_y_hat", "synthesize_image", "synthesis_pieces"]

# g_s at decode runs over pieces of SYNTH_PIECE pixels a side, each with SYNTH_MARGIN pixels of the
# neighbouring latents: g_s's reach is under 32 pixels, so the pieces join bit-identically to one pass
# (tests/codec/test_pipeline.py). 384 keeps a Kodak decode under 250 MB (one 768×512 pass: 355 MB;
# onnxruntime holds three of the 128-channel activations at once in GDN) for 15 % more g_s time there.
SYNTH_PIECE = 384
SYNTH_MARGIN = 32


def to_input(rgb: np.ndarray) -> np.ndarray:
    """A region of uint8 pixels (H, W, 3) as the model's input ``(1, 3, H, W)`` float32 in [0, 1]."""
    return np.ascontiguousarray(rgb.transpose(2, 0, 1)[None], dtype=np.float32) / np.float32(255)


def quality_to_level(quality: float, num_levels: int) -> float:
    """Quality 0…100 onto the model's continuous gain level 0…L−1 (linear)."""
    return quality / 100.0 * (num_levels - 1)


# ----------------------------------------------------------------------------- encode
def analyze_tiles(net: CodingModel, rgb: np.ndarray, tile: int) -> Iterator:
    """g_a of each tile, computed from the tile plus its context and cropped to the tile's latent,
    before the gain; raster order. Pads ``rgb`` to the model's stride by replicating the border."""
    ls = net.config.stride // 4  # pixels per y position (16)
    rgb = pad_to_stride(rgb, net.config.stride)
    for (y0, y1, x0, x1), (ry0, ry1, rx0, rx1) in tile_rects(*rgb.shape[:2], tile):
        x = to_input(rgb[ry0:ry1, rx0:rx1])
        yield net.analyze(x, None)[..., (y0 - ry0) // ls:(y1 - ry0) // ls, (x0 - rx0) // ls:(x1 - rx0) // ls]


def gain_tiles(net: CodingModel, analyses: Iterable, quality: float) -> Iterator[tuple]:
    """The plain encoder's coded latents: each tile's analysis times the quality's gain, with
    z = h_a(y) — ``(y, None)`` for :func:`pack_tiles`."""
    level = quality_to_level(quality, net.config.num_levels)
    for y in analyses:
        yield net.apply_gain(y, level), None


def pack_tiles(net: CodingModel, model_id: str, weights_hash: str, width: int, height: int, layout: int,
               quality: float, tile: int, coded: Iterable[tuple], alpha_png: bytes | None, strips: int = 1) -> bytes:
    """Entropy-code the tiles' coded latents ``(y, z or None)`` (:func:`gain_tiles`, or
    :func:`~aecodec.codec.refine.refine_tiles`) of a ``width × height`` image coded in ``strips``,
    and pack them into a container."""
    tiles = []
    for y, z in coded:
        out = net.compress_latents(y, z)
        if not (out["z"] and out["y"]):  # the decoder refuses empty strings (decode_tiles): never write one
            raise ModelError(f"{getattr(net, 'source', model_id)}: its latents of tile {len(tiles) + 1} code to "
                             "an empty string, which no decoder accepts: this image cannot be coded with these weights")
        tiles.append((out["z"], out["y"]))
    return fmt.pack(Container(width=width, height=height, layout=layout, quality=quality, model_id=model_id,
                              weights_hash=weights_hash, tile=tile, tiles=tuple(tiles), alpha=alpha_png,
                              strips=strips))


# ----------------------------------------------------------------------------- decode
def decode_tiles(net: CodingModel, c: Container) -> Iterator[tuple[tuple[int, int, int, int], dict]]:
    """Entropy-decode each tile: ``((y0, y1, x0, x1) in padded pixels, latents)`` in raster order,
    ``latents`` being ``net.decode_latents``'s ``z_hat``, ``indexes``, ``means`` and ``y_hat`` —
    everything the decoder sees, bit-identical on every device. Every section is first checked
    against the longest string the model's own M and N channels can make
    (:func:`~aecodec.codec.format.check_sections`), and no section of a version-3 file may be empty,
    before any tile is decoded. A damaged string: FormatError."""
    s = net.config.stride
    w, h = c.coded_size
    hp, wp = padded(h, w, s)
    lengths = [len(b) for zy in c.tiles for b in zy] + ([len(c.alpha)] if c.alpha is not None else [])
    fmt.check_sections(lengths, c.width, c.height, c.strips, c.tile, c.layout, c.version, y_channels=net.config.M,
                       z_channels=net.config.N, model=c.model_id)
    if c.version not in fmt.LEGACY:
        # Version 3's coder starts from a zero state, which the lowest symbol of every table leaves at
        # zero: an empty string is the code of a tile whose every latent sits at its table's lowest
        # value — noise that no image encodes to (real strings are 12 bytes and more). A file of empty
        # sections (a few bytes claiming any size) would decode to a noise image: refused first.
        for t, zy in enumerate(c.tiles):
            for which, string in zip("zy", zy):
                if not string:
                    raise FormatError(f"corrupt latent data (empty {which} string of tile {t + 1})")
    if c.version in fmt.LEGACY:  # CompressAI's coder: the torch model decodes these
        net.torch_model(f"decoding this format-{c.version} file (written by aecodec 0.1 with CompressAI's coder; "
                        f"`aecodec upgrade` re-codes it as format {fmt.VERSION}, which the runtime reads)")
    for ((y0, y1, x0, x1), _), (z_str, y_str) in zip(tile_rects(hp, wp, c.tile), c.tiles):
        try:
            lat = net.decode_latents(y_str, z_str, ((y1 - y0) // s, (x1 - x0) // s), c.version)
        except (RuntimeError, ValueError) as exc:
            raise FormatError(f"corrupt latent data ({one_line(exc)})") from None
        yield (y0, y1, x0, x1), lat


def decode_y_hat(net: CodingModel, c: Container, on_tile: Callable[[tuple, dict], None] | None = None):
    """ŷ of the whole (padded) image ``(1, M, H/16, W/16)``, tile by tile; ``on_tile(rect, latents)``
    sees each tile's decoded latents (:func:`decode_tiles`) as it is placed. The image-sized tensor
    is allocated only once every tile has decoded: a header claiming a large image with damaged or
    empty strings is refused before it costs more than one tile."""
    ls = net.config.stride // 4
    w, h = c.coded_size
    hp, wp = padded(h, w, net.config.stride)
    decoded = []
    for rect, lat in decode_tiles(net, c):
        decoded.append((rect, lat["y_hat"]))
        if on_tile is not None:
            on_tile(rect, lat)
    y_hat = np.empty((1, net.config.M, hp // ls, wp // ls), np.float32)
    while decoded:
        (y0, y1, x0, x1), tile_y_hat = decoded.pop()
        y_hat[..., y0 // ls:y1 // ls, x0 // ls:x1 // ls] = tile_y_hat
    return y_hat


def synthesize_image(net: CodingModel, c: Container, y_hat, on_piece: Callable[[], None] | None = None) -> np.ndarray:
    """Pixels (H, W, 3) uint8 of the coded size (:func:`~aecodec.codec.geometry.unfold` gives the
    image), in pieces of :data:`SYNTH_PIECE` pixels whatever the file's tile (its memory is bounded
    by the decoder, not by the header); each piece sees :data:`SYNTH_MARGIN` pixels of neighbouring
    latents, more than g_s reaches, so they join exactly. ``on_piece()`` is called as each piece is done (:func:`synthesis_pieces` of them)."""
    ls = net.config.stride // 4
    hp, wp = y_hat.shape[-2] * ls, y_hat.shape[-1] * ls
    level = quality_to_level(c.quality, net.config.num_levels)
    width, height = c.coded_size
    out = np.empty((height, width, 3), np.uint8)
    for (y0, y1, x0, x1), (ry0, ry1, rx0, rx1) in tile_rects(hp, wp, SYNTH_PIECE, SYNTH_MARGIN):
        x_hat = net.synthesize(y_hat[..., ry0 // ls:ry1 // ls, rx0 // ls:rx1 // ls], level)
        if not np.isfinite(x_hat).all():
            weights = getattr(net, "source", None)
            raise FormatError("corrupt latent data (decoded to invalid values)" if weights is None else
                              f"corrupt latent data, or weights {weights} that cannot decode it (decoded to invalid values)")
        y1, x1 = min(y1, height), min(x1, width)
        crop = x_hat[0, :, y0 - ry0:y1 - ry0, x0 - rx0:x1 - rx0]
        out[y0:y1, x0:x1] = np.round(crop * np.float32(255)).astype(np.uint8).transpose(1, 2, 0)
        if on_piece is not None:
            on_piece()
    return out


def synthesis_pieces(c: Container, stride: int = fmt.TILE_UNIT) -> int:
    """How many pieces :func:`synthesize_image` synthesises a file's image in."""
    w, h = c.coded_size
    rows, cols = tile_grid(*padded(h, w, stride)[::-1], SYNTH_PIECE)
    return rows * cols

"""The codec API: images ↔ .aec bytes.

``encode(image, quality) -> bytes`` and ``decode(bytes) -> PIL.Image`` are the whole codec.
This module checks the options and wires the layers together: pixels from
:mod:`~aecodec.codec.images`, the tile pipeline of :mod:`~aecodec.codec.pipeline`, rate control from
:mod:`~aecodec.codec.ratesearch`, the container of :mod:`~aecodec.codec.format`. Atomic file
handling is :mod:`~aecodec.codec.files`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import math
import os
import warnings
from typing import Callable

import numpy as np
from PIL import Image

from ..errors import CodecError
from . import format as fmt
from .format import Container, FormatError, Layout
from .geometry import DEFAULT_TILE, check_tile, coded_size, fold, strips_for, tile_grid, unfold
from .images import ImageLike, png_plane, prepare_image, to_image
from .pipeline import (analyze_tiles, decode_tiles, decode_y_hat, gain_tiles, pack_tiles, quality_to_level, synthesis_pieces,
                       synthesize_image)
from .ratesearch import encode_within
from .refine import DEFAULT_EFFORT, ITERATIONS, Z_ITERATIONS, check_effort, refine_tiles

__all__ = ["encode", "decode", "info", "upgrade", "encode_with", "decode_with", "decode_steps", "decode_latents", "load_model",
           "check_quality", "check_target", "check_effort", "CodecError", "DEFAULT_QUALITY",
           "DEFAULT_EFFORT", "quality_to_level"]

DEFAULT_QUALITY = 75.0


# ----------------------------------------------------------------------------- options
def check_quality(quality) -> float:
    """The quality as a float rounded to the header's 0.01, or :class:`CodecError`."""
    try:
        q = float(quality)
    except (TypeError, ValueError):
        raise CodecError(f"quality must be a number, got {quality!r}") from None
    if not 0.0 <= q <= 100.0 or math.isnan(q):
        raise CodecError(f"quality must be between 0 and 100, got {quality}")
    return round(q, 2)


def check_target(target_size=None, target_bpp=None) -> Callable[[int, int], int] | None:
    """The byte budget as a function ``(width, height) -> bytes``, or None without a target;
    checked before the image is read (its callers refuse a quality and a target together)."""
    if target_size is not None:
        if isinstance(target_size, bool) or not isinstance(target_size, int) or target_size <= 0:
            raise CodecError(f"target size must be a positive number of bytes, got {target_size!r}")
        return lambda w, h: target_size
    if target_bpp is not None:
        try:
            bpp = float(target_bpp)
        except (TypeError, ValueError):
            raise CodecError(f"target bpp must be a number, got {target_bpp!r}") from None
        if not 0 < bpp < 1e6 or math.isnan(bpp):
            raise CodecError(f"target bpp must be above 0 and below 1000000, got {target_bpp}")
        return lambda w, h: int(bpp * w * h / 8)
    return None


def load_model(model: str | os.PathLike | None = None, *, device: str = "cpu", container: Container | None = None,
               threads: int | None = None):
    """``(net, model_id, weights_hash)``: the model ``model`` (id, bundle or checkpoint path;
    default: the shipped one), or the one a parsed ``container`` names (id and weights hash), as
    the codec runs it (:class:`~aecodec.models.runtime.CodecModel`: no torch), its transforms on
    ``threads`` threads (None: onnxruntime's default)."""
    from ..models import runtime

    if container is not None:
        net = runtime.load(model if model is not None else container.model_id, device=device,
                           weights_hash=container.weights_hash, threads=threads)
    else:
        net = runtime.load(model, device=device, threads=threads)
    return net, net.model_id, net.weights_hash


# ----------------------------------------------------------------------------- encode
def encode(image: ImageLike, quality: float | None = None, *, target_size: int | None = None,
           target_bpp: float | None = None, effort: int = DEFAULT_EFFORT, model: str | os.PathLike | None = None,
           device: str = "cpu", tile: int = DEFAULT_TILE, progress: bool = False, threads: int | None = None) -> bytes:
    """Encode an image (PIL image, uint8 array or path) to .aec bytes.

    Give at most one of ``quality`` (0…100, default 75), ``target_size`` (bytes) or
    ``target_bpp`` (bits per pixel of the whole file): with a target, the result is the
    highest-quality file that is no larger (:func:`~aecodec.codec.ratesearch.encode_within`);
    :class:`CodecError` if even quality 0 is larger. ``effort`` 1…9 spends encode time on smaller
    files (:mod:`~aecodec.codec.refine`; 1 is the plain encoder, the decoder is the same for all);
    ``progress`` shows a progress bar on stderr (on a terminal) while it searches. The image is
    coded in tiles of ``tile`` pixels (a multiple of 64): each tile's latent is computed from the
    tile plus a margin of context, so memory stays bounded. ``threads``: :func:`load_model`'s.
    """
    if sum(v is not None for v in (quality, target_size, target_bpp)) > 1:
        raise CodecError("give one of quality, target size or target bpp, not several")
    q = check_quality(DEFAULT_QUALITY if quality is None else quality)
    effort = check_effort(effort)  # above 1 without torch: one line naming the [train] extra
    if not check_tile(tile):
        raise CodecError(f"tile size must be a multiple of {fmt.TILE_UNIT} up to {fmt.MAX_TILE}, got {tile}")
    budget = check_target(target_size, target_bpp)
    rgb, alpha, layout = prepare_image(image)
    h, w = rgb.shape[:2]
    if h * w > fmt.MAX_ENCODE_PIXELS or max(h, w) > fmt.MAX_SIDE:
        raise CodecError(f"image of {w}×{h} pixels is too large for this version of aecodec")
    if h * w > fmt.DEFAULT_MAX_PIXELS:
        warnings.warn(f"an image of {w}×{h} = {w * h} pixels is above the decoder's default cap of "
                      f"{fmt.DEFAULT_MAX_PIXELS}: decoding it will need --max-pixels {w * h} "
                      f"(max_pixels= in the API)", stacklevel=2)
    net, model_id, digest = load_model(model, device=device, threads=threads)
    with _progress_bar(effort, w, h, tile, budget is not None, progress) as tick:
        if budget is not None:
            return encode_within(net, model_id, digest, rgb, alpha, layout, budget(w, h), tile, effort=effort,
                                 on_iteration=tick)
        return encode_with(net, model_id, digest, rgb, alpha, layout, q, tile, effort=effort, on_iteration=tick)


def encode_with(net, model_id: str, weights_hash: str, rgb: np.ndarray, alpha: np.ndarray | None,
                layout: int, quality: float, tile: int = DEFAULT_TILE, *, effort: int = DEFAULT_EFFORT,
                on_iteration: Callable[[], None] | None = None) -> bytes:
    """Encode prepared pixels (:func:`~aecodec.codec.images.prepare_image`) with a model already
    in memory — the one coding path, also used by training's evaluation. At effort 1, one tile's
    latent in memory at a time; above, the tiles' latents are refined (:func:`refine_tiles`)."""
    h, w = rgb.shape[:2]
    strips = strips_for(w, h)
    rgb = fold(rgb, strips)
    analyses = analyze_tiles(net, rgb, tile)
    if effort == 1:
        coded = gain_tiles(net, analyses, quality)
    else:
        coded = refine_tiles(net, rgb, list(analyses), quality_to_level(quality, net.config.num_levels), tile,
                             effort, gray=layout in Layout.GRAYS, on_iteration=on_iteration)
    return pack_tiles(net, model_id, weights_hash, w, h, layout, quality, tile, coded, png_plane(alpha), strips)


@contextlib.contextmanager
def _progress_bar(effort: int, width: int, height: int, tile: int, search: bool, show: bool):
    """A tqdm bar over the refinement's iterations (shown on a terminal), or no bar."""
    if not show or effort == 1:
        yield None
        return
    from tqdm import tqdm

    rows, cols = tile_grid(*coded_size(width, height, strips_for(width, height)), tile)
    total = (Z_ITERATIONS[effort] + ITERATIONS[effort]) * rows * cols
    with tqdm(total=None if search else total, desc=f"effort {effort}", unit="it", leave=False,
              disable=None) as bar:
        yield lambda: bar.update()


# ----------------------------------------------------------------------------- decode
def decode(data: bytes, *, device: str = "cpu", max_pixels: int = fmt.DEFAULT_MAX_PIXELS,
           model: str | os.PathLike | None = None, progress: bool = False, threads: int | None = None) -> Image.Image:
    """Decode .aec bytes to a PIL image (mode L, LA, RGB or RGBA as encoded).

    ``max_pixels`` is the decompression-bomb cap (default :data:`~aecodec.codec.format.DEFAULT_MAX_PIXELS`);
    ``progress`` shows a progress bar on stderr (on a terminal): tiles entropy-decoded, then
    pieces synthesised; ``threads``: :func:`load_model`'s."""
    c = fmt.unpack(bytes(data), max_pixels=max_pixels)
    net = load_model(model, device=device, container=c, threads=threads)[0]
    with _decode_bar(c, progress) as tick:
        return decode_with(net, c, on_progress=tick)


def decode_with(net, c: Container, *, on_tile: Callable[[tuple, dict], None] | None = None,
                on_progress: Callable[[], None] | None = None) -> Image.Image:
    """Decode a parsed container with a model already in memory (see :func:`encode_with`).

    ``on_tile(rect, latents)`` sees each tile's entropy-decoded latents on the way
    (:func:`~aecodec.codec.pipeline.decode_tiles`) — what inspection measures, without a second decode;
    ``on_progress()`` is called once per tile decoded and once per piece synthesised
    (:func:`decode_steps` in all)."""
    def seen(rect, lat):
        if on_tile is not None:
            on_tile(rect, lat)
        if on_progress is not None:
            on_progress()

    y_hat = decode_y_hat(net, c, seen)
    alpha = _decode_alpha(c.alpha, c.width, c.height) if c.layout in Layout.WITH_ALPHA else None
    pixels = synthesize_image(net, c, y_hat, on_progress)
    return to_image(unfold(pixels, c.width, c.height, c.strips), alpha, c.layout)


def decode_steps(c: Container) -> int:
    """The steps :func:`decode_with` reports: the file's tiles, then the synthesis's pieces."""
    return len(c.tiles) + synthesis_pieces(c)


@contextlib.contextmanager
def _decode_bar(c: Container, show: bool):
    """A tqdm bar over a decode's steps (shown on a terminal, after half a second), or no bar."""
    if not show:
        yield None
        return
    from tqdm import tqdm

    with tqdm(total=decode_steps(c), desc="decoding", unit="tile", leave=False, disable=None, delay=0.5) as bar:
        yield lambda: bar.update()


def decode_latents(data: bytes, *, device: str = "cpu", model: str | os.PathLike | None = None):
    """The entropy-decoded latents ŷ ``(1, M, H/16, W/16)`` (padded) — bit-identical on every device."""
    c = fmt.unpack(bytes(data))
    return decode_y_hat(load_model(model, device=device, container=c)[0], c)


def _decode_alpha(data: bytes, width: int, height: int) -> np.ndarray:
    """The alpha plane from its PNG section. Opened with the PNG reader itself, not
    ``Image.open``: the size is checked against the header (already within the pixel cap) before
    any pixel is decoded, so Pillow's decompression-bomb limit — lower than aecodec's cap — does
    not apply to it."""
    from PIL import PngImagePlugin

    try:
        with PngImagePlugin.PngImageFile(io.BytesIO(data)) as im:
            if im.size != (width, height) or im.mode != "L":
                raise FormatError("corrupt alpha section (wrong size or mode)")
            return np.asarray(im)
    except FormatError:
        raise
    except Exception:  # Pillow raises many types on damaged PNG data
        raise FormatError("corrupt alpha section") from None


# ----------------------------------------------------------------------------- upgrade
def upgrade(data: bytes, *, max_pixels: int = fmt.MAX_ENCODE_PIXELS, model: str | os.PathLike | None = None,
            device: str = "cpu") -> bytes:
    """A file of an earlier format version re-coded in the current one (:data:`~aecodec.codec.format.VERSION`):
    each tile's latents entropy-decoded with the coder of its version and coded again with
    today's — the same ẑ and ŷ, so the same decoded pixels, in a file the runtime reads. A file of
    the current version comes back unchanged. Versions 1 and 2 need the torch model
    (``pip install 'aecodec[train]'``). Nothing is synthesised, so memory stays that of one tile
    and the pixel cap defaults to the largest image aecodec encodes."""
    c = fmt.unpack(bytes(data), max_pixels=max_pixels)
    if c.version == fmt.VERSION:
        return bytes(data)
    net = load_model(model, device=device, container=c)[0]
    tiles = []
    for _, lat in decode_tiles(net, c):
        out = net.compress_latents(lat["y_hat"], lat["z_hat"])
        tiles.append((out["z"], out["y"]))
    return fmt.pack(dataclasses.replace(c, tiles=tuple(tiles), version=fmt.VERSION))


# ----------------------------------------------------------------------------- header
def info(data: bytes | fmt.Header) -> dict:
    """Header fields of an .aec file: its bytes (validated, CRC included; the payload is not
    decoded), or a header read alone (:func:`~aecodec.codec.files.read_header`). Any file this
    aecodec writes, whatever the decoder's pixel cap."""
    if isinstance(data, fmt.Header):
        h = data
    else:
        h = fmt.read_header(io.BytesIO(data).read, max_pixels=fmt.MAX_ENCODE_PIXELS)
        fmt.check_file(h, memoryview(data))
    rows, cols = tile_grid(*h.coded_size, h.tile)
    coded = 2 * rows * cols
    return {"format_version": h.version, "strips": h.strips, "model_id": h.model_id, "weights_hash": h.weights_hash,
            "width": h.width, "height": h.height, "layout": Layout.NAMES[h.layout], "quality": h.quality,
            "bytes": h.total, "bpp": 8 * h.total / (h.width * h.height),
            "tile": h.tile, "tiles": f"{cols}x{rows}",
            "sections": {"z": sum(h.lengths[0:coded:2]), "y": sum(h.lengths[1:coded:2]),
                         "alpha": sum(h.lengths[coded:])}}

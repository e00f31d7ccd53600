"""Rate control: the highest-quality file that fits a byte budget."""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from ..errors import CodecError
from .format import Layout
from .geometry import DEFAULT_TILE, fold, strips_for
from .images import png_plane
from .pipeline import analyze_tiles, gain_tiles, pack_tiles, quality_to_level
from .refine import refine_tiles

__all__ = ["QUALITY_STEP", "REFINED_TRIALS", "encode_within"]

QUALITY_STEP = 0.05  # the search stops when the bracket is this narrow (the header keeps 0.01)
REFINED_TRIALS = 3  # refined encodes at most, above effort 1 (each costs the effort's full search)


def encode_within(net, model_id: str, weights_hash: str, rgb: np.ndarray, alpha: np.ndarray | None,
                  layout: int, max_bytes: int, tile: int = DEFAULT_TILE, *, effort: int = 1,
                  on_iteration: Callable[[], None] | None = None) -> bytes:
    """The highest-quality file of at most ``max_bytes`` bytes (quality found to ``QUALITY_STEP``).

    g_a runs once; each trial re-applies the gain and entropy-codes — the very bytes
    :func:`aecodec.codec.api.encode_with` writes at that quality. The quality is found by regula
    falsi on log(size), which is smooth in quality, guarded to shrink the bracket by ≥ 10 % a
    trial; it stops early when a file fills ≥ 99.5 % of the budget. Raises :class:`CodecError`
    when even quality 0 is larger than ``max_bytes``.

    Above effort 1, refined files (:mod:`~aecodec.codec.refine`) are smaller than plain ones at
    the same quality, so the budget buys a higher quality: from the plain answer q₁, the refined
    file at q₁ gives the size ratio r, the plain search for ``max_bytes / r`` proposes q₂, and at
    most :data:`REFINED_TRIALS` refined encodes (q₁, q₂, then halfway) settle it. Only files that
    fit are returned; the plain file at q₁ always does.
    """
    h, w = rgb.shape[:2]
    strips = strips_for(w, h)
    rgb = fold(rgb, strips)
    latents = list(analyze_tiles(net, rgb, tile))
    alpha_png = png_plane(alpha)

    def plain(q: float) -> bytes:
        return pack_tiles(net, model_id, weights_hash, w, h, layout, q, tile, gain_tiles(net, latents, q), alpha_png, strips)

    def refined(q: float) -> bytes:
        coded = refine_tiles(net, rgb, latents, quality_to_level(q, net.config.num_levels), tile, effort,
                             gray=layout in Layout.GRAYS, on_iteration=on_iteration)
        return pack_tiles(net, model_id, weights_hash, w, h, layout, q, tile, coded, alpha_png, strips)

    found = _search(plain, max_bytes)
    if found is None and effort > 1 and len(small := refined(0.0)) <= max_bytes:
        return small
    if found is None:
        lo = plain(0.0)
        raise CodecError(f"cannot fit this {w}×{h} image into {max_bytes} bytes: the smallest file "
                         f"(quality 0) is {len(lo)} bytes ({8 * len(lo) / (w * h):.3f} bpp)")
    q1, best = found
    if effort == 1 or q1 >= 100.0:
        return best
    first = refined(q1)
    if len(first) > max_bytes:
        return best
    ratio = len(first) / len(best)  # best: the plain file at q₁
    best_q, best = q1, first
    guess = _search(plain, int(max_bytes / ratio), start=q1)
    hi_q = 100.0
    q = guess[0] if guess is not None else q1
    for _ in range(REFINED_TRIALS - 1):
        if q - best_q <= QUALITY_STEP:
            break
        d = refined(q)
        if len(d) <= max_bytes:
            best_q, best = q, d
        else:
            hi_q = q
        q = round((best_q + hi_q) / 2, 2)
    return best


def _search(at: Callable[[float], bytes], max_bytes: int, start: float = 0.0) -> tuple[float, bytes] | None:
    """``(q, at(q))`` for the highest quality ≥ ``start`` with ``len(at(q)) <= max_bytes`` (to
    :data:`QUALITY_STEP`), or None when even ``at(start)`` is larger."""
    hi_q, hi = 100.0, at(100.0)
    if len(hi) <= max_bytes:
        return hi_q, hi
    lo_q, lo = start, at(start)
    if len(lo) > max_bytes:
        return None
    for _ in range(40):
        if hi_q - lo_q <= QUALITY_STEP or len(lo) >= 0.995 * max_bytes:
            break
        f = (math.log(max_bytes) - math.log(len(lo))) / (math.log(len(hi)) - math.log(len(lo)))
        q = round(lo_q + min(0.9, max(0.1, f)) * (hi_q - lo_q), 2)
        if not lo_q < q < hi_q:
            break
        d = at(q)
        if len(d) <= max_bytes:
            lo_q, lo = q, d
        else:
            hi_q, hi = q, d
    return lo_q, lo

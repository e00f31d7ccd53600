"""Rate control: the highest-quality file that fits a byte budget."""

from __future__ import annotations

import math

import numpy as np

from .errors import CodecError
from .images import png_plane
from .tiles import DEFAULT_TILE, analyze_tiles, pack_latents

__all__ = ["QUALITY_STEP", "encode_within"]

QUALITY_STEP = 0.05  # the search stops when the bracket is this narrow (the header keeps 0.01)


def encode_within(net, model_id: str, weights_hash: str, rgb: np.ndarray, alpha: np.ndarray | None,
                  layout: int, max_bytes: int, tile: int = DEFAULT_TILE) -> bytes:
    """The highest-quality file of at most ``max_bytes`` bytes (quality found to ``QUALITY_STEP``).

    g_a runs once; each trial re-applies the gain and entropy-codes — the very bytes
    :func:`aecodec.codec.api.encode_with` writes at that quality. The quality is found by regula
    falsi on log(size), which is smooth in quality, guarded to shrink the bracket by ≥ 10 % a
    trial; it stops early when a file fills ≥ 99.5 % of the budget. Raises :class:`CodecError`
    when even quality 0 is larger than ``max_bytes``.
    """
    h, w = rgb.shape[:2]
    latents = list(analyze_tiles(net, rgb, tile))
    alpha_png = png_plane(alpha)

    def at(q: float) -> bytes:
        return pack_latents(net, model_id, weights_hash, w, h, layout, q, tile, latents, alpha_png)

    hi_q, hi = 100.0, at(100.0)
    if len(hi) <= max_bytes:
        return hi
    lo_q, lo = 0.0, at(0.0)
    if len(lo) > max_bytes:
        raise CodecError(f"cannot fit this {w}×{h} image into {max_bytes} bytes: the smallest file "
                         f"(quality 0) is {len(lo)} bytes ({8 * len(lo) / (w * h):.3f} bpp)")
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
    return lo

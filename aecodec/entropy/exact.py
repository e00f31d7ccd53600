"""The exact entropy-parameter path without torch: the fixed-point grid of h_s
(:class:`FixedPoint`; why it is exact: :mod:`aecodec.models.fixed_point`) and h_s itself on that
grid in numpy float64 (:class:`ExactHyperSynthesis`), value for value the torch path's
``FixedPointHyperSynthesis.exact``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

__all__ = ["FixedPoint", "ExactHyperSynthesis", "PIECE", "HALO"]

PIECE = 16  # ẑ positions per side of one pass of the exact path (a 1024-pixel tile in one pass)
HALO = 2  # ẑ positions of context around a piece: each output of h_s depends on ẑ within ±2


@dataclass(frozen=True)
class FixedPoint:
    """The fixed-point grid of the exact path: weights, biases and activations are integer multiples
    of ``2**-w_bits``, ``2**-(w_bits + a_bits)`` and ``2**-a_bits`` (:mod:`aecodec.models.fixed_point`)."""

    w_bits: int = 16
    w_max: float = 2.0
    a_bits: int = 10
    a_max: float = 1024.0


def _snap32(x: np.ndarray, bits: int, lo: float, hi: float) -> np.ndarray:
    """A parameter on its grid, in float32 as the torch path's ``_to_grid`` computes it (the grid
    values are float32 numbers: powers of two within its 24-bit significand)."""
    scale = np.float32(2.0**bits)
    x = np.asarray(x).astype(np.float32)
    return np.round(np.clip(x, np.float32(lo), np.float32(hi)) * scale) / scale


def _to_grid(x: np.ndarray, bits: int, lo: float, hi: float) -> np.ndarray:
    """An activation (float64) clamped to ``[lo, hi]`` and rounded (half to even) to ``2**-bits``."""
    scale = 2.0**bits
    return np.round(np.clip(x, lo, hi) * scale) / scale


def _conv2d(x: np.ndarray, taps: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``conv2d(x, w, b, padding=k // 2)`` of ``x`` ``(C, H, W)``, one matmul per kernel tap
    (``taps[ky, kx]`` is ``w[:, :, ky, kx]``, ``(O, C)``): every partial sum is an exact integer in
    grid units, so BLAS's blocking and order do not matter, and no k·k-times larger im2col matrix."""
    C, H, W = x.shape
    k = taps.shape[0]
    xp = np.pad(x, ((0, 0), (k // 2, k // 2), (k // 2, k // 2)))
    out = np.zeros((taps.shape[2], H * W))
    for ky in range(k):
        for kx in range(k):
            out += taps[ky, kx] @ xp[:, ky:ky + H, kx:kx + W].reshape(C, H * W)
    return (out + b[:, None]).reshape(-1, H, W)


def _conv_transpose2d(x: np.ndarray, taps: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``conv_transpose2d(x, w, b, stride=2, padding=k // 2, output_padding=1)`` of ``x``
    ``(C, H, W)``, one matmul per kernel tap (``taps[ky, kx]`` is ``w[:, :, ky, kx].T``, ``(O, C)``)
    added onto its stride-2 lattice of the output: exact integers again."""
    C, H, W = x.shape
    k = taps.shape[0]
    p = k // 2
    out = np.zeros((taps.shape[2], 2 * H + 2 * p, 2 * W + 2 * p))  # with a border of p
    rows = x.reshape(C, H * W)
    for ky in range(k):
        for kx in range(k):
            out[:, ky:ky + 2 * H:2, kx:kx + 2 * W:2] += (taps[ky, kx] @ rows).reshape(-1, H, W)
    return out[:, p:p + 2 * H, p:p + 2 * W] + b[:, None, None]


class ExactHyperSynthesis:
    """h_s of the mean-scale hyperprior on the fixed-point grid, in numpy float64::

        ẑ ─► deconv5×5↑2 (N→M) ─► ReLU ─► deconv5×5↑2 (M→3M/2) ─► ReLU ─► conv3×3 (3M/2→2M) ─► (scales, means)

    ``layers`` are the raw float weights and biases ``[(w0, b0), (w1, b1), (w2, b2)]`` as the
    model's state dict holds them (transposed convolutions ``(C_in, C_out, 5, 5)``, the convolution
    ``(C_out, C_in, 3, 3)``; float16 ones are widened to float32 first, as the checkpoint loader
    does). They are snapped to the grid once, here, exactly as the torch path snaps them, and kept
    as float64 kernel taps. Every output value equals ``FixedPointHyperSynthesis.exact``'s."""

    def __init__(self, layers: Sequence[tuple[np.ndarray, np.ndarray]], fp: FixedPoint):
        if len(layers) != 3:
            raise ValueError(f"h_s has 3 layers, not {len(layers)}")
        self.fp = fp
        self._taps = []
        for i, (w, b) in enumerate(layers):
            w = _snap32(w, fp.w_bits, -fp.w_max, fp.w_max).astype(np.float64)
            b = _snap32(b, fp.w_bits + fp.a_bits, -fp.a_max, fp.a_max).astype(np.float64)
            taps = w.transpose(2, 3, 1, 0) if i < 2 else w.transpose(2, 3, 0, 1)  # (k, k, O, C)
            self._taps.append((np.ascontiguousarray(taps), b))
        self.channels = self._taps[-1][0].shape[2]  # 2M: scales then means

    def _run(self, z: np.ndarray) -> np.ndarray:
        """h_s of one piece ``(N, h, w)`` on the grid (clamps as the torch path's ``_run``)."""
        fp = self.fp
        x = _to_grid(z, fp.a_bits, -fp.a_max, fp.a_max)
        for i, (taps, b) in enumerate(self._taps):
            last = i == len(self._taps) - 1
            x = (_conv2d if last else _conv_transpose2d)(x, taps, b)
            x = _to_grid(x, fp.a_bits, -fp.a_max if last else 0.0, fp.a_max)  # ReLU in between
        return x

    def __call__(self, z_in: np.ndarray) -> np.ndarray:
        """Scales and means ``(1, 2M, 4h, 4w)`` (float64, exact multiples of ``2**-a_bits``) of the
        exact input ``z_in`` ``(1, N, h, w)``, over pieces of :data:`PIECE`×:data:`PIECE` positions
        plus :data:`HALO` of context: bounded memory, and the same values as one pass."""
        z_in = np.asarray(z_in, dtype=np.float64)
        if z_in.ndim != 4 or z_in.shape[0] != 1 or z_in.shape[1] != self._taps[0][0].shape[3]:
            raise ValueError(f"h_s takes (1, {self._taps[0][0].shape[3]}, h, w), not {z_in.shape}")
        _, _, H, W = z_in.shape
        out = np.empty((1, self.channels, 4 * H, 4 * W))
        for y0 in range(0, H, PIECE):
            for x0 in range(0, W, PIECE):
                y1, x1 = min(H, y0 + PIECE), min(W, x0 + PIECE)
                ry0, rx0 = max(0, y0 - HALO), max(0, x0 - HALO)
                part = self._run(z_in[0, :, ry0:min(H, y1 + HALO), rx0:min(W, x1 + HALO)])
                out[0, :, 4 * y0:4 * y1, 4 * x0:4 * x1] = part[:, 4 * (y0 - ry0):4 * (y1 - ry0),
                                                               4 * (x0 - rx0):4 * (x1 - rx0)]
        return out

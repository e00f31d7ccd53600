"""Fixed-point hyper-synthesis h_s: entropy parameters that are bit-exact on every machine.

Why
---
The mean-scale hyperprior codes each latent y with a Gaussian whose scale picks one of the
shipped CDF tables. If h_s runs in ordinary floating point, the encoder (say, a GPU) and the
decoder (say, a CPU with another BLAS, thread count or summation order) can disagree in the last
bit of a scale; when that moves the scale across a table boundary the rANS decoder reads with a
different CDF and desynchronises — garbage from that symbol on (docs/format.md: how often).
CompressAI documents cross-device decoding as unsupported.

Choice
------
Of the known fixes (integer networks, Ballé et al. ICLR 2019; fixed-point h_s; snapping the
parameters to a table) we use a *fixed-point h_s evaluated exactly in float64*:

* every weight is an integer multiple of ``2**-w_bits`` with ``|w| <= w_max``;
* every activation (the input ẑ, each hidden ReLU output, the final means/scales) is an integer
  multiple of ``2**-a_bits`` and clamped to ``[-a_max, a_max]`` (ReLU layers: ``[0, a_max]``);
* biases are integer multiples of ``2**-(w_bits + a_bits)``, the grid of the products.

A convolution output is then ``2**-(w_bits+a_bits)`` times a sum of at most ``K = C_in·k·k``
integer products, each below ``2**(w_bits+log2 w_max) · 2**(a_bits+log2 a_max)``. With the
defaults (w_bits 16, w_max 2, a_bits 10, a_max 1024, K ≤ 2**13) every partial sum stays below
2**51 < 2**53, so float64 represents it exactly, *whatever the summation order, blocking, FMA use
or thread count of the BLAS/conv kernel*. The rounding that brings a sum back to the activation
grid acts on an exact value, so it too is identical everywhere. Hence the CDF indexes and the
means — and so the decoded latents ŷ — are bit-identical across devices. :func:`check_bounds`
verifies the bound for a given architecture.

Only the synthesis g_s stays in float32; its output pixels may differ by a rounding level.

Training sees the same quantisation (fake-quantised weights and activations with a
straight-through gradient, in float32), so the rate does not jump at export time. The grid is
fine (weights to 1.5e-5, activations to 1e-3), and its rate cost is measured in docs/format.md.
"""

from __future__ import annotations

import math
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..entropy.exact import HALO, PIECE, FixedPoint
from .layers import make_layer

__all__ = ["FixedPoint", "FixedPointHyperSynthesis", "check_bounds", "ste_round", "PIECE", "HALO"]



def ste_round(x: torch.Tensor) -> torch.Tensor:
    """Round with a straight-through (identity) gradient."""
    return x + (torch.round(x) - x).detach()


def _to_grid(x: torch.Tensor, bits: int, lo: float, hi: float) -> torch.Tensor:
    scale = float(2**bits)
    return ste_round(x.clamp(lo, hi) * scale) / scale


class FixedPointHyperSynthesis(nn.Module):
    """h_s of the mean-scale hyperprior (Minnen et al. 2018) on a fixed-point grid.

    ::

        ẑ ─► deconv5×5↑2 (N→M) ─► ReLU ─► deconv5×5↑2 (M→3M/2) ─► ReLU ─► conv3×3 (3M/2→2M) ─► (scales, means)

    ``forward(z_hat)`` is the training path (float32, fake quantisation, straight-through
    gradients). ``exact(z_hat)`` is the coding path (float64, no gradients) and returns values
    that are exactly equal on every device.
    """

    def __init__(self, N: int, M: int, fp: FixedPoint = FixedPoint(), *, init: bool = True):
        super().__init__()
        self.fp = fp
        self.layers = nn.ModuleList(
            [
                make_layer(nn.ConvTranspose2d, N, M, 5, stride=2, padding=2, output_padding=1, init=init),
                make_layer(nn.ConvTranspose2d, M, M * 3 // 2, 5, stride=2, padding=2, output_padding=1, init=init),
                make_layer(nn.Conv2d, M * 3 // 2, M * 2, 3, stride=1, padding=1, init=init),
            ]
        )

    def _grid_params(self, exact: bool) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Weights and biases on their grids (cached for the exact path: it runs once per tile and
        the weights only change in training). The grid values are float32 numbers (the grids are
        powers of two within float32's 24-bit significand), so the cache keeps them in float32 and
        the exact path widens each kernel tap to float64 as it uses it: half the memory, same values."""
        fp = self.fp
        if exact:
            key = tuple((p.data_ptr(), p._version, p.device) for p in self.parameters())
            if getattr(self, "_cache_key", None) == key:
                return self._cache
        params = []
        for layer in self.layers:
            w = _to_grid(layer.weight, fp.w_bits, -fp.w_max, fp.w_max)
            b = _to_grid(layer.bias, fp.w_bits + fp.a_bits, -fp.a_max, fp.a_max)
            params.append((w.detach(), b.detach()) if exact else (w, b))
        if exact:
            self._cache_key, self._cache = key, params
        return params

    def _run(self, z_hat: torch.Tensor, exact: bool) -> torch.Tensor:
        fp = self.fp
        x = _to_grid(z_hat, fp.a_bits, -fp.a_max, fp.a_max)
        for i, (layer, (w, b)) in enumerate(zip(self.layers, self._grid_params(exact))):
            if isinstance(layer, nn.ConvTranspose2d):
                x = (_gemm_conv_transpose2d if exact else _conv_transpose2d)(x, w, b)
            else:
                x = (_gemm_conv2d if exact else _conv2d)(x, w, b)
            last = i == len(self.layers) - 1
            x = _to_grid(x, fp.a_bits, -fp.a_max if last else 0.0, fp.a_max)  # ReLU in between
        return x

    def forward(self, z_hat: torch.Tensor) -> torch.Tensor:
        return self._run(z_hat, exact=False)

    @torch.no_grad()
    def exact(self, z_hat: torch.Tensor, piece: int = PIECE) -> torch.Tensor:
        """The coding path: float64, every value an exact multiple of ``2**-a_bits``.

        Runs over pieces of ``piece``×``piece`` positions of ẑ (plus :data:`HALO` of context), so
        its memory is bounded whatever the tile; the values are exact, so they are the same as one
        pass over the whole ẑ would give (tests/models/test_fixed_point.py)."""
        z_hat = z_hat.double()
        B, _, H, W = z_hat.shape
        up = 4  # h_s upsamples 4×
        out = None
        for y0 in range(0, H, piece):
            for x0 in range(0, W, piece):
                y1, x1 = min(H, y0 + piece), min(W, x0 + piece)
                ry0, rx0 = max(0, y0 - HALO), max(0, x0 - HALO)
                part = self._run(z_hat[..., ry0:min(H, y1 + HALO), rx0:min(W, x1 + HALO)], exact=True)
                if out is None:
                    out = z_hat.new_empty(B, part.shape[1], up * H, up * W)
                out[..., up * y0:up * y1, up * x0:up * x1] = part[..., up * (y0 - ry0):up * (y1 - ry0),
                                                                  up * (x0 - rx0):up * (x1 - rx0)]
        return out


# The exact path's convolutions as explicit GEMMs, one per kernel tap: on every device they only
# add exact integers, whatever the blocking or summation order — no cuDNN algorithm choice (FFT
# and Winograd kernels are not exact) and no process-global backend switch.
def _conv2d(x, w, b):
    return F.conv2d(x, w, b, padding=1)


def _conv_transpose2d(x, w, b):
    return F.conv_transpose2d(x, w, b, stride=2, padding=2, output_padding=1)


def _gemm_conv2d(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``F.conv2d(x, w, b, padding=k // 2)``, one matmul per kernel tap added up: every partial sum
    is an exact integer (in grid units), so the order does not matter, and there is no k·k-times
    larger im2col matrix (32 MB for a Kodak image's h_s, 85 MB for a full piece)."""
    B, C, H, W = x.shape
    k = w.shape[-1]
    xp = F.pad(x, (k // 2,) * 4)
    out = torch.matmul(w[:, :, 0, 0].to(x.dtype), xp[..., :H, :W].reshape(B, C, H * W))
    for ky in range(k):
        for kx in range(k):
            if ky or kx:
                out += torch.matmul(w[:, :, ky, kx].to(x.dtype), xp[..., ky:ky + H, kx:kx + W].reshape(B, C, H * W))
    return (out + b.to(x.dtype)[:, None]).reshape(B, w.shape[0], H, W)


def _gemm_conv_transpose2d(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``F.conv_transpose2d(x, w, b, stride=2, padding=k // 2, output_padding=1)``, one matmul per
    kernel tap, each added onto its stride-2 lattice of the output: exact integers again, and no
    k·k-times larger column matrix (92 MB for a full piece)."""
    B, C, H, W = x.shape
    k, p = w.shape[-1], w.shape[-1] // 2
    out = x.new_zeros(B, w.shape[1], 2 * H + 2 * p, 2 * W + 2 * p)  # with a border of p
    rows = x.reshape(B, C, H * W)
    for ky in range(k):
        for kx in range(k):
            out[..., ky:ky + 2 * H:2, kx:kx + 2 * W:2] += torch.matmul(w[:, :, ky, kx].t().to(x.dtype), rows).reshape(B, -1, H, W)
    return out[..., p:p + 2 * H, p:p + 2 * W] + b.to(x.dtype)[:, None, None]


def check_bounds(N: int, M: int, fp: FixedPoint = FixedPoint()) -> int:
    """Return log2 of the largest possible partial sum (in grid units); must be < 53."""
    fan_ins = [N * 25, M * 25, (M * 3 // 2) * 9]
    w_units = fp.w_max * 2**fp.w_bits
    a_units = fp.a_max * 2**fp.a_bits
    bias_units = fp.a_max * 2 ** (fp.w_bits + fp.a_bits)
    worst = max(k * w_units * a_units + bias_units for k in fan_ins)
    return math.ceil(math.log2(worst))

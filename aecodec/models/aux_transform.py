"""An auxiliary linear transform beside g_a and g_s (AuxT).

Li et al., "On Disentangled Training for Nonlinear Transform in Learned Image Compression", ICLR
2025: a linear, wavelet-based shortcut from the image to the latent (and back) carries the coarse,
energy-compacting part of the transform, so the nonlinear g_a/g_s are left to learn the rest —
reported to halve the training time to a given rate–distortion. Ours, per latent position (a 16×16
pixel block, g_a's stride):

    analysis   y_aux = A · H · block(x)          (768 → M)
    synthesis  block(x̂_aux) = Hᵀ · S · ŷ         (M → 768)

H is the orthonormal 4-level 2-D Haar basis of a 16×16 block (per colour), fixed and not stored;
A and S are learned 1×1 projections, **zero-initialised**, so a model given the shortcut starts as
exactly the model without it (its weights can be continued: ``train --aux-transform --init-from``).
The shortcut is local to a latent position, so tiles and synthesis pieces need no extra margin.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["haar_basis", "HaarAnalysis", "HaarSynthesis", "BLOCK"]

BLOCK = 16  # g_a's stride: one latent position per block


@functools.lru_cache(maxsize=4)
def _haar_1d(n: int) -> torch.Tensor:
    """The orthonormal multi-level 1-D Haar matrix (n × n, rows are basis vectors, n a power of 2):
    row 0 the mean, then differences from the coarsest scale to the finest."""
    if n == 1:
        return torch.ones(1, 1, dtype=torch.float64)
    coarse = _haar_1d(n // 2)
    low = torch.kron(coarse, torch.tensor([[1.0, 1.0]], dtype=torch.float64)) / math.sqrt(2)
    high = torch.kron(torch.eye(n // 2, dtype=torch.float64), torch.tensor([[1.0, -1.0]], dtype=torch.float64)) / math.sqrt(2)
    return torch.cat([low, high])


def haar_basis(n: int = BLOCK) -> torch.Tensor:
    """(n², n²) orthonormal 2-D Haar basis of an n×n block in row-major pixel order (float32)."""
    h = _haar_1d(n)
    return torch.kron(h, h).float()


class HaarAnalysis(nn.Module):
    """x ``(B, 3, H, W)`` → ``(B, M, H/16, W/16)``: Haar coefficients of each block, projected."""

    def __init__(self, M: int):
        super().__init__()
        self.register_buffer("basis", haar_basis(), persistent=False)
        self.proj = nn.Conv2d(3 * BLOCK * BLOCK, M, 1, bias=False)
        nn.init.zeros_(self.proj.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, _, H, W = x.shape
        blocks = F.pixel_unshuffle(x.float(), BLOCK).reshape(B, 3, BLOCK * BLOCK, H // BLOCK, W // BLOCK)
        coeffs = torch.einsum("kp,bcphw->bckhw", self.basis, blocks)
        return self.proj(coeffs.reshape(B, 3 * BLOCK * BLOCK, H // BLOCK, W // BLOCK))


class HaarSynthesis(nn.Module):
    """ŷ ``(B, M, h, w)`` → ``(B, 3, 16h, 16w)``: projected to Haar coefficients, inverted per block."""

    def __init__(self, M: int):
        super().__init__()
        self.register_buffer("basis", haar_basis(), persistent=False)
        self.proj = nn.Conv2d(M, 3 * BLOCK * BLOCK, 1, bias=False)
        nn.init.zeros_(self.proj.weight)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        B, _, h, w = y.shape
        coeffs = self.proj(y.float()).reshape(B, 3, BLOCK * BLOCK, h, w)
        blocks = torch.einsum("kp,bckhw->bcphw", self.basis, coeffs)
        return F.pixel_shuffle(blocks.reshape(B, 3 * BLOCK * BLOCK, h, w), BLOCK)

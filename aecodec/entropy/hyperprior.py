"""The hyperprior's coding path: z with the factorized bottleneck, then y with the Gaussian
conditional whose parameters the model computes from ẑ — and the check that a decoded string is
one the encoder made.

A rANS decoder reads any bytes as *some* symbols, so a string damaged behind a valid CRC would
decode to a wrong image. Only a string the encoder made re-encodes to itself (the coder is
deterministic), so the decoder re-encodes what it decoded and compares: a ``ValueError`` if it
differs. That costs one entropy *encode* per tile, a small part of a decode.
"""

from __future__ import annotations

from typing import Callable

import torch

from .coding import MAX_LATENT, codable, guarded
from .models import EntropyBottleneck, GaussianConditional

__all__ = ["compress", "decompress"]

# ẑ → (CDF indexes of y, means of y): the model's exact entropy parameters
EntropyParameters = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


@torch.inference_mode()
def compress(eb: EntropyBottleneck, gc: GaussianConditional, entropy_parameters: EntropyParameters,
             y: torch.Tensor, z: torch.Tensor) -> dict:
    """The strings of a (gained) latent ``y`` ``(1, M, h, w)`` and its hyper-latent ``z``:
    ``{"y": bytes, "z": bytes, "z_shape": (h/4, w/4)}``. A ``ValueError`` for values the coder
    cannot code (beyond ±:data:`~aecodec.entropy.coding.MAX_LATENT`, or not finite)."""
    if not (codable(y) and codable(z)):
        raise ValueError(f"latent values beyond ±{MAX_LATENT:g} cannot be entropy-coded")
    z_strings = eb.compress(z)
    z_hat = eb.decompress(z_strings, z.shape[-2:])
    indexes, means = entropy_parameters(z_hat)
    y_strings = gc.compress(y, indexes, means=means)
    return {"y": y_strings[0], "z": z_strings[0], "z_shape": tuple(z.shape[-2:])}


@torch.inference_mode()
def decompress(eb: EntropyBottleneck, gc: GaussianConditional, entropy_parameters: EntropyParameters,
               y_string: bytes, z_string: bytes, z_shape: tuple[int, int]) -> dict:
    """Everything the decoder sees of one tile: ``z_hat``, y's CDF ``indexes`` and ``means``, and
    ``y_hat`` — exact, so the same on every device. Each string is decoded from a guarded copy
    (:func:`~aecodec.entropy.coding.guarded`) and must re-encode to itself: a ``ValueError``
    ("damaged z string" / "damaged y string") otherwise."""
    z_hat = eb.decompress([guarded(z_string, eb.channels * z_shape[0] * z_shape[1])], z_shape)
    if not codable(z_hat) or eb.compress(z_hat)[0] != z_string:
        raise ValueError("damaged z string")
    indexes, means = entropy_parameters(z_hat)
    y_hat = gc.decompress([guarded(y_string, indexes.numel())], indexes, means=means)
    if not codable(y_hat) or gc.compress(y_hat, indexes, means=means)[0] != y_string:
        raise ValueError("damaged y string")
    return {"z_hat": z_hat, "indexes": indexes, "means": means, "y_hat": y_hat}

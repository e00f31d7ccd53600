"""The exact entropy-parameter path without torch: the fixed-point grid of h_s
(:class:`FixedPoint`; why it is exact: :mod:`aecodec.models.fixed_point`)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FixedPoint"]


@dataclass(frozen=True)
class FixedPoint:
    """The fixed-point grid of the exact path: weights, biases and activations are integer multiples
    of ``2**-w_bits``, ``2**-(w_bits + a_bits)`` and ``2**-a_bits`` (:mod:`aecodec.models.fixed_point`)."""

    w_bits: int = 16
    w_max: float = 2.0
    a_bits: int = 10
    a_max: float = 1024.0

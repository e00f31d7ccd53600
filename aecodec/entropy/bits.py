"""The bits format v3's coder (:mod:`.ans`) spends on each symbol, from the integer tables that
coded it — what inspection's rate map is made of. No torch.

Kept apart from :mod:`.ans` only for now; it reads the coder's own constants so that the two
cannot drift apart.
"""

from __future__ import annotations

import math

import numpy as np

from .ans import _PRECISION, _RAW_BITS, Tables, _bit_length

__all__ = ["symbol_bits"]

_LENGTH_BITS = math.log2(_RAW_BITS + 1)  # an escape's bit length n, coded Uniform(25)


def symbol_bits(values, indexes, tables: Tables) -> tuple[np.ndarray, int]:
    """Bits the v3 coder spends on each symbol: ``(bits, escapes)``, a float64 array shaped like
    ``values`` and the number of symbols coded as escapes.

    ``values`` and ``indexes`` are integer arrays of one shape (the values as :func:`.ans.encode`
    takes them, each with its table's index); ``tables`` the entropy model's :class:`.ans.Tables`.
    Mirrors :func:`.ans.encode`: a value in its table costs ``-log2(freq / 2**16)``; any other the
    escape symbol's ``-log2(freq / 2**16)``, plus ``log2(25)`` for the bit length ``n`` of its zigzag
    code and ``n − 1`` bits for the code below its leading one. (The coder quantises the 16-bit
    frequencies to its 24-bit probabilities, which moves a symbol's cost by a tiny fraction of a bit.)
    """
    values = np.asarray(values, np.int64)
    idx = np.asarray(indexes, np.int64).reshape(values.shape)
    v = values - tables.offsets[idx]
    top = tables.lengths[idx] - 2  # the escape symbol of each table
    escape = (v < 0) | (v >= top)
    symbol = np.where(escape, top, v)
    freq = tables.cdfs[idx, symbol + 1] - tables.cdfs[idx, symbol]
    bits = _PRECISION - np.log2(freq.astype(np.float64))
    raw = np.where(v < 0, -2 * v - 1, 2 * (v - top))[escape]
    bits[escape] += _LENGTH_BITS + np.maximum(_bit_length(raw) - 1, 0)
    return bits, int(escape.sum())

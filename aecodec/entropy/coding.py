"""The rANS coder as the codec uses it: CompressAI's coder with its tables kept as Python lists,
the guard that keeps a hostile string inside its buffer, the bound on the values it can code,
and the bits it spends on each symbol.

CompressAI's entropy models code integer symbols with a per-symbol CDF table (chosen by an
index), 16-bit probabilities, and an escape symbol followed by 4-bit bypass chunks for values
outside a table's range.
"""

from __future__ import annotations

import numpy as np
import torch

from .._compressai import compressai
from .latents import MAX_LATENT  # |y|, |z| the coders accept: one bound for formats 1, 2 and 3

__all__ = ["TableCoding", "MAX_LATENT", "PRECISION", "codable", "guarded", "symbol_bits"]

_cai = compressai()

PRECISION = 16  # CompressAI's rANS probability precision (bits)
_BYPASS_BITS, _BYPASS_MAX = 4, 15  # CompressAI's rANS bypass mode: 4-bit chunks


def codable(x: torch.Tensor) -> bool:
    """Whether the coder can (re-)encode ``x``: finite and within ±:data:`MAX_LATENT` (CompressAI's
    escape code loops forever on values near 2**31, which damaged strings can decode to)."""
    return bool(torch.isfinite(x).all()) and (x.numel() == 0 or float(x.abs().max()) <= MAX_LATENT)


def guarded(string: bytes, n_symbols: int) -> bytes:
    """The rANS string followed by enough zero bytes that a decoder fed a damaged or hostile
    string never reads past the end of its buffer.

    CompressAI's rANS decoder does no bounds checks: it reads 8 bytes at start, at most one
    32-bit word per symbol, and in bypass mode 4 bits per escape digit; a stream of L bytes can
    announce at most ~30·L escape digits (each announcing 15 of them costs 4 bits of real data),
    which read at most 15·L bytes. Zeros read past the real data decode as "no more bypass", so
    the loops end. A valid stream never reads its padding, so decoding is unchanged.
    """
    return string + bytes(16 * len(string) + 4 * n_symbols + 64)


def symbol_bits(symbols, indexes, cdfs, cdf_lengths, offsets):
    """Bits CompressAI's rANS spends on each symbol: ``(bits, escapes)``, a float64 tensor shaped
    like ``symbols`` and the number of symbols coded in bypass mode.

    ``symbols`` and ``indexes`` are integer tensors of one shape; ``cdfs`` ``(K, L)``,
    ``cdf_lengths`` ``(K,)`` and ``offsets`` ``(K,)`` are an entropy model's tables
    (:meth:`TableCoding.tables`). Mirrors ``encode_with_indexes`` of CompressAI's
    ``rans_interface.cpp``: in-range symbols cost ``-log2(freq / 2**16)``, the others the escape
    symbol plus their 4-bit bypass chunks.
    """
    idx = indexes.reshape(-1).long()
    cdfs = cdfs.to(idx.device).long()
    value = symbols.reshape(-1).long() - offsets.to(idx.device).long()[idx]
    max_value = cdf_lengths.to(idx.device).long()[idx] - 2
    escape = (value < 0) | (value >= max_value)
    raw = torch.where(value < 0, -2 * value - 1, 2 * (value - max_value)) * escape
    n = torch.zeros_like(raw)
    for k in range(16):  # number of 4-bit chunks in raw (0 for raw == 0)
        n += (raw >> (_BYPASS_BITS * k)) != 0
    bypass = _BYPASS_BITS * (n + n // _BYPASS_MAX + 1) * escape
    v = torch.where(escape, max_value, value)
    freq = cdfs[idx, v + 1] - cdfs[idx, v]
    bits = PRECISION - torch.log2(freq.double()) + bypass.double()
    return bits.reshape(symbols.shape), int(escape.sum())


class TableCoding(_cai.entropy_models.EntropyModel):
    """CompressAI's ``compress`` / ``decompress`` of an entropy model — the same rANS coder, the same
    symbols, indexes and tables, so the same strings and values — without its per-call overheads:
    the CDF tables' Python lists are made once (again only when the tables change, at export or
    load), and decoded symbols become a tensor through numpy (``torch.tensor`` of a long list of
    ints is slow)."""

    def tables(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The coder's tables: quantised CDFs ``(K, L)``, their lengths ``(K,)`` and offsets ``(K,)``."""
        return self._quantized_cdf, self._cdf_length, self._offset

    def symbol_bits(self, symbols: torch.Tensor, indexes: torch.Tensor) -> tuple[torch.Tensor, int]:
        """:func:`symbol_bits` with this model's tables."""
        return symbol_bits(symbols, indexes, *self.tables())

    def _table_lists(self) -> tuple[list, list, list]:
        self._check_cdf_size()  # CompressAI's checks: tables computed (update) and well-formed
        self._check_cdf_length()
        self._check_offsets_size()
        bufs = self.tables()
        key = tuple((b.data_ptr(), b._version, tuple(b.shape)) for b in bufs)
        if getattr(self, "_tables_key", None) != key:
            self._tables_cache = (self._quantized_cdf.tolist(), self._cdf_length.reshape(-1).int().tolist(),
                                  self._offset.reshape(-1).int().tolist())
            self._tables_key = key
        return self._tables_cache

    def compress(self, inputs: torch.Tensor, indexes: torch.Tensor, means: torch.Tensor | None = None) -> list[bytes]:
        if inputs.dim() < 2 or inputs.size() != indexes.size():
            raise ValueError("inputs and indexes must have the same size (at least 2 dimensions)")
        symbols = self.quantize(inputs, "symbols", means)
        cdf, lengths, offsets = self._table_lists()
        return [self.entropy_coder.encode_with_indexes(symbols[i].reshape(-1).int().tolist(),
                                                       indexes[i].reshape(-1).int().tolist(), cdf, lengths, offsets)
                for i in range(symbols.size(0))]

    def decompress(self, strings: list[bytes], indexes: torch.Tensor, dtype: torch.dtype = torch.float,
                   means: torch.Tensor | None = None) -> torch.Tensor:
        if not isinstance(strings, (tuple, list)) or len(strings) != indexes.size(0) or indexes.dim() < 2:
            raise ValueError("one string per item of indexes (at least 2 dimensions) is needed")
        cdf, lengths, offsets = self._table_lists()
        outputs = self._quantized_cdf.new_empty(indexes.size())
        for i, s in enumerate(strings):
            values = self.entropy_coder.decode_with_indexes(s, indexes[i].reshape(-1).int().tolist(), cdf, lengths, offsets)
            outputs[i] = torch.from_numpy(np.array(values, dtype=np.int32)).reshape(outputs[i].size())
        return self.dequantize(outputs, means, dtype)

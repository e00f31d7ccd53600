"""The entropy coder of format v3: CompressAI's table semantics on constriction's rANS, no torch.

The symbols are integers, each with the index of the table that codes it. A table (CompressAI's
``_quantized_cdf`` layout) is a 16-bit CDF over ``lengths[k] − 1`` symbols, the last one being the
*escape* symbol; a value ``v = value − offsets[k]`` in ``[0, lengths[k] − 2)`` is coded as itself,
any other as the escape symbol followed by the value in an escape stream.

The stream is one stack ANS coder (constriction's ``AnsCoder``: 32-bit words, 64-bit state,
24-bit probabilities). The encoder pushes, so the decoder pops in this order:

1. the symbols grouped by table index (each group in the symbols' order, the groups in index
   order): one vectorised constriction call per non-empty table, with that table's model;
2. the escapes' bit lengths ``n`` (0…24, ``Uniform(25)``) of their zigzag codes
   ``raw = −2v − 1`` (``v < 0``) or ``2(v − max)`` (``v ≥ max``), in the same order;
3. the bits of each ``raw`` below its leading one (``Uniform(2**(n−1))``, for ``n ≥ 2``).

Each table's model is constriction's ``Categorical`` of the integer frequencies as float64
(exact), with ``perfect=False``: a deterministic function of the integer tables. The byte string
is the coder's compressed words, little-endian.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import constriction
import numpy as np

__all__ = ["Tables", "encode", "decode", "max_string", "symbol_bits", "MAX_VALUE"]

MAX_VALUE = 2**21  # |value| and |offset| the coder takes: v = value − offset within ±2**22, raw < 2**24
_PRECISION = 16  # the tables' CDF precision (bits)
_RAW_BITS = 24  # raw codes are below 2**24: their bit length is one of 0…24
_WORD = 4  # bytes per compressed word

_model = constriction.stream.model
_AnsCoder = constriction.stream.stack.AnsCoder


@dataclass(frozen=True, eq=False)
class Tables:
    """An entropy model's coding tables: ``cdfs`` ``(K, L)`` (row k a 16-bit CDF of ``lengths[k]``
    entries from 0 to 65536, its last symbol the escape symbol), ``lengths`` ``(K,)``, ``offsets``
    ``(K,)`` (the value of symbol 0). Checked on construction (they come from weight files): a
    ``ValueError`` for malformed tables. Each table's constriction model is built once, on first use."""

    cdfs: np.ndarray
    lengths: np.ndarray
    offsets: np.ndarray
    _models: list = field(default_factory=list, init=False, repr=False)

    def __post_init__(self):
        object.__setattr__(self, "cdfs", _int_array(self.cdfs, 2, "cdfs"))
        object.__setattr__(self, "lengths", _int_array(self.lengths, 1, "lengths"))
        object.__setattr__(self, "offsets", _int_array(self.offsets, 1, "offsets"))
        self.check()

    def check(self) -> None:
        """A ``ValueError`` unless every table is a valid CDF: ``lengths`` in ``[3, L]`` (two
        symbols at least: constriction has no one-symbol model), starts at 0, ends at 2**16 at
        ``lengths[k] − 1``, strictly increasing in between (no zero frequency), and
        ``|offsets| ≤`` :data:`MAX_VALUE`."""
        cdfs, lengths, offsets = self.cdfs, self.lengths, self.offsets
        K, L = cdfs.shape
        if K == 0 or lengths.shape != (K,) or offsets.shape != (K,):
            raise ValueError(f"tables: cdfs {cdfs.shape}, lengths {lengths.shape}, offsets {offsets.shape} do not match")
        if lengths.min() < 3 or lengths.max() > L:
            raise ValueError(f"tables: CDF lengths must be within [3, {L}]")
        if np.abs(offsets).max() > MAX_VALUE:
            raise ValueError(f"tables: offsets beyond ±{MAX_VALUE}")
        used = np.arange(L) < lengths[:, None]
        if (cdfs[:, 0] != 0).any() or (cdfs[np.arange(K), lengths - 1] != 2**_PRECISION).any():
            raise ValueError(f"tables: each CDF must run from 0 to {2**_PRECISION}")
        if not (np.diff(cdfs, axis=1) > 0)[used[:, 1:]].all():
            raise ValueError("tables: each CDF must be strictly increasing (no zero frequency)")

    def model(self, k: int):
        """Table ``k``'s constriction model (built once per :class:`Tables`)."""
        if not self._models:
            self._models.extend([None] * len(self.lengths))
        if self._models[k] is None:
            freqs = np.diff(self.cdfs[k, :self.lengths[k]]).astype(np.float64)
            self._models[k] = _model.Categorical(freqs, perfect=False)
        return self._models[k]


def _int_array(a, ndim: int, name: str) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim != ndim or a.dtype.kind not in "iu":
        raise ValueError(f"tables: {name} must be a {ndim}-d integer array, not {a.dtype} {a.shape}")
    if a.size and (a.min() < -(2**31) or a.max() >= 2**31):
        raise ValueError(f"tables: {name} beyond int32")
    return a.astype(np.int64)


def _groups(indexes: np.ndarray, tables: Tables) -> tuple[np.ndarray, np.ndarray]:
    """The symbols' stable order by table index, and where each table's group starts in it (K + 1)."""
    indexes = np.asarray(indexes)
    if indexes.ndim != 1 or indexes.dtype.kind not in "iu":
        raise ValueError(f"indexes must be a 1-d integer array, not {indexes.dtype} {indexes.shape}")
    K = len(tables.lengths)
    if indexes.size and (indexes.min() < 0 or indexes.max() >= K):
        raise ValueError(f"table indexes beyond [0, {K})")
    # uint16 keys: numpy's stable sort is then a radix sort, linear in n (a third of the time)
    order = np.argsort(indexes.astype(np.uint16) if K <= 1 << 16 else indexes, kind="stable")
    starts = np.searchsorted(indexes[order], np.arange(K + 1))
    return order, starts


def _bit_length(raw: np.ndarray) -> np.ndarray:
    """Bit length of each non-negative ``raw`` < 2**24 (0 for 0), exactly (float64 holds them)."""
    n = np.zeros(raw.shape, np.int32)
    nz = raw > 0
    n[nz] = np.frexp(raw[nz].astype(np.float64))[1]
    return n


def encode(values: np.ndarray, indexes: np.ndarray, tables: Tables) -> bytes:
    """The string of integer ``values`` ``(n,)``, each coded with table ``indexes[i]``. A
    ``ValueError`` for values beyond ±:data:`MAX_VALUE` or indexes outside the tables."""
    values = np.asarray(values)
    if values.ndim != 1 or values.dtype.kind not in "iu" or values.shape != np.shape(indexes):
        raise ValueError("values must be a 1-d integer array shaped like indexes")
    if values.size and np.abs(values.astype(np.int64)).max() > MAX_VALUE:
        raise ValueError(f"values beyond ±{MAX_VALUE} cannot be entropy-coded")
    order, starts = _groups(indexes, tables)
    idx = np.asarray(indexes)[order]  # each symbol's table, in coding order
    v = values.astype(np.int64)[order] - tables.offsets[idx]
    top = (tables.lengths - 2)[idx]  # the escape symbol of each
    escape = (v < 0) | (v >= top)
    raw = np.where(v < 0, -2 * v - 1, 2 * (v - top))[escape]
    n = _bit_length(raw)
    symbols = np.where(escape, top, v).astype(np.int32)

    coder = _AnsCoder()
    long = n >= 2
    if long.any():
        coder.encode_reverse((raw[long] - (1 << (n[long] - 1))).astype(np.int32), _model.Uniform(),
                             (1 << (n[long] - 1)).astype(np.int32))
    if n.size:
        coder.encode_reverse(n, _model.Uniform(_RAW_BITS + 1))
    for k in reversed(range(len(starts) - 1)):
        if starts[k + 1] > starts[k]:
            coder.encode_reverse(symbols[starts[k]:starts[k + 1]], tables.model(k))
    return coder.get_compressed().astype("<u4").tobytes()


def decode(string: bytes, indexes: np.ndarray, tables: Tables) -> np.ndarray:
    """The ``(n,)`` int32 values of ``string`` given their table ``indexes`` ``(n,)``.

    Any bytes decode to *some* values or to a ``ValueError`` — never a crash or a hang: a string
    that is not whole words, ends in a zero word (which no encoder makes), or is not consumed
    exactly is refused. A string the encoder did not make can still decode to values that
    re-encode to another string: the caller re-encodes and compares (:mod:`.latents`)."""
    if len(string) % _WORD:
        raise ValueError(f"entropy-coded data of {len(string)} bytes is not whole 32-bit words")
    order, starts = _groups(indexes, tables)
    try:
        coder = _AnsCoder(np.frombuffer(string, "<u4").astype(np.uint32))
        symbols = np.empty(order.size, np.int32)
        for k in range(len(starts) - 1):
            if starts[k + 1] > starts[k]:
                symbols[starts[k]:starts[k + 1]] = coder.decode(tables.model(k), int(starts[k + 1] - starts[k]))
        idx = np.asarray(indexes)[order]
        top = (tables.lengths - 2)[idx]
        escape = symbols == top
        n = coder.decode(_model.Uniform(_RAW_BITS + 1), int(escape.sum())).astype(np.int64)
        raw = np.where(n > 0, 1 << np.maximum(n - 1, 0), 0)
        long = n >= 2
        if long.any():
            raw[long] += coder.decode(_model.Uniform(), (1 << (n[long] - 1)).astype(np.int32))
        empty = coder.is_empty()
    except BaseException as exc:  # pyo3's PanicException derives from BaseException
        if isinstance(exc, ValueError) or type(exc).__name__ == "PanicException":
            raise ValueError(f"damaged entropy-coded data ({exc})") from None
        raise
    if not empty:
        raise ValueError("damaged entropy-coded data (not consumed exactly)")
    v = symbols.astype(np.int64)
    v[escape] = np.where(raw % 2 == 1, -(raw + 1) // 2, raw // 2 + top[escape])
    v += tables.offsets[idx]
    if v.size and np.abs(v).max() > MAX_VALUE:
        raise ValueError("damaged entropy-coded data (values beyond the coder's range)")
    values = np.empty(order.size, np.int32)
    values[order] = v
    return values


def max_string(n_symbols: int, n_escapes_bound: int | None = None) -> int:
    """The most bytes :func:`encode` can make for ``n_symbols`` symbols of which at most
    ``n_escapes_bound`` (default: all) are escapes — so a container can refuse an oversized
    section from its header alone.

    Derivation. The stack ANS coder keeps a 64-bit state ``x`` (0 at first) and a list of 32-bit
    words; let ``Φ = 32·words + log2(x + 1)``. Pushing a symbol of quantised probability
    ``p/2**24`` (``p ≥ 1``) first moves the low 32 bits of ``x`` to a word if ``x ≥ p·2**40``:
    ``x + 1`` shrinks by a factor ``2**32 / (1 + 2**32/x) ≥ 2**32 / (1 + 2**-8)``, so Φ grows by
    less than 0.006. Then ``x ← ⌊x/p⌋·2**24 + x mod p + c`` with ``x mod p + c < 2**24``, so
    ``x + 1 ≤ (x/p + 1)·2**24 ≤ (x + 1)·2**24/p``: Φ grows by ``24 − log2 p`` at most. A push
    therefore adds less than ``24.006 − log2 p`` to Φ: under 25 bits for a table symbol (``p ≥ 1``
    whatever the table), under 5 for an escape's length (``Uniform(25)``: ``p ≥ ⌊2**24/25⌋``)
    and under 24 for its mantissa (``Uniform(2**k)``, ``k ≤ 23``: ``p = 2**(24−k)``). The words
    pushed are at most ``Φ/32``, and the final state adds two. Hence, in words,
    ``⌊(25·n + 29·e) / 32⌋ + 2`` for ``n`` symbols and ``e`` escapes."""
    e = n_symbols if n_escapes_bound is None else max(0, min(n_escapes_bound, n_symbols))
    return _WORD * ((25 * n_symbols + 29 * e) // 32 + 2)


_LENGTH_BITS = math.log2(_RAW_BITS + 1)  # an escape's bit length n, coded Uniform(25)


def symbol_bits(values, indexes, tables: Tables) -> tuple[np.ndarray, int]:
    """Bits the v3 coder spends on each symbol: ``(bits, escapes)``, a float64 array shaped like
    ``values`` and the number of symbols coded as escapes.

    ``values`` and ``indexes`` are integer arrays of one shape (the values as :func:`encode`
    takes them, each with its table's index); ``tables`` the entropy model's :class:`Tables`.
    Mirrors :func:`encode`: a value in its table costs ``-log2(freq / 2**16)``; any other the
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

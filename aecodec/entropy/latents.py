"""The hyperprior's coding path of format v3 without torch: z with the factorized bottleneck's
tables, then y with the Gaussian conditional's tables chosen by the exact h_s from ẑ
(:mod:`.exact`), both on the rANS coder of :mod:`.ans` — and the check that a decoded string is
one the encoder made.

The quantised values are CompressAI's (ẑ = round(z − median) + median, ŷ = round(y − μ) + μ,
float32), and the CDF indexes and means are bit-identical to ``MeanScaleHyperprior.
entropy_parameters``; only the strings differ from the torch path's (another rANS coder).

Any bytes decode to *some* values, so the decoder re-encodes what it decoded and compares: only a
string the encoder made re-encodes to itself (the coder is deterministic). A ``ValueError``
("damaged z string" / "damaged y string") otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import ans
from .exact import ExactHyperSynthesis, FixedPoint

__all__ = ["HyperpriorCoding", "MAX_LATENT"]

MAX_LATENT = 2.0**20  # |y|, |z| the coders accept: far beyond what g_a gives; within CompressAI's int32 escape codes


def _codable(x: np.ndarray) -> bool:
    """Finite and within ±:data:`MAX_LATENT`: what :meth:`HyperpriorCoding.compress` accepts."""
    return bool(np.isfinite(x).all()) and (x.size == 0 or float(np.abs(x).max()) <= MAX_LATENT)


def _array(arrays: dict, name: str, kind: str, shape: tuple) -> np.ndarray:
    """``arrays[name]``, checked: of dtype kind ``kind`` ("f" float, "i" integer), ``shape`` (None
    for any size of a dimension), finite. A ``ValueError`` naming the array otherwise."""
    if name not in arrays:
        raise ValueError(f"{name}: missing")
    a = np.asarray(arrays[name])
    ok_kind = a.dtype.kind == "f" if kind == "f" else a.dtype.kind in "iu"
    if not ok_kind or a.ndim != len(shape) or any(s is not None and s != n for s, n in zip(shape, a.shape)):
        raise ValueError(f"{name}: {a.dtype} {a.shape}, expected {'float' if kind == 'f' else 'integer'} {shape}")
    if kind == "f" and not np.isfinite(a).all():
        raise ValueError(f"{name}: not finite")
    return a


def _tables(arrays: dict, prefix: str, K: int | None) -> ans.Tables:
    cdfs = _array(arrays, f"{prefix}._quantized_cdf", "i", (K, None))
    K = cdfs.shape[0]
    try:
        return ans.Tables(cdfs, _array(arrays, f"{prefix}._cdf_length", "i", (K,)),
                          _array(arrays, f"{prefix}._offset", "i", (K,)))
    except ValueError as exc:
        raise ValueError(f"{prefix}: {exc}") from None


@dataclass(frozen=True, eq=False)
class HyperpriorCoding:
    """The coding path of one mean-scale hyperprior: z's ``medians`` ``(N,)`` and tables
    ``z_tables`` (one per channel), y's ``y_tables`` and their ``scale_table`` ``(K,)``, and h_s."""

    medians: np.ndarray
    z_tables: ans.Tables
    y_tables: ans.Tables
    scale_table: np.ndarray
    h_s: ExactHyperSynthesis

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], fixed_point: FixedPoint) -> HyperpriorCoding:
        """Built from numpy copies of the torch model's state-dict entries, by their names (see
        the module's users); each is checked, as they come from files: a ``ValueError`` naming it."""
        q = _array(arrays, "entropy_bottleneck.quantiles", "f", (None, 1, 3))
        N = q.shape[0]
        medians = q[:, 0, 1].astype(np.float32)
        if np.abs(medians).max(initial=0) > MAX_LATENT:
            raise ValueError(f"entropy_bottleneck.quantiles: medians beyond ±{MAX_LATENT:g}")
        w0 = _array(arrays, "h_s.layers.0.weight", "f", (N, None, 5, 5))
        M = w0.shape[1]
        w1 = _array(arrays, "h_s.layers.1.weight", "f", (M, M * 3 // 2, 5, 5))
        w2 = _array(arrays, "h_s.layers.2.weight", "f", (2 * M, M * 3 // 2, 3, 3))
        biases = [_array(arrays, f"h_s.layers.{i}.bias", "f", (n,)) for i, n in enumerate((M, M * 3 // 2, 2 * M))]
        y_tables = _tables(arrays, "gaussian_conditional", None)
        scale_table = _array(arrays, "gaussian_conditional.scale_table", "f", (len(y_tables.lengths),))
        scale_table = scale_table.astype(np.float32)
        if not (scale_table[0] > 0 and (np.diff(scale_table) > 0).all()):
            raise ValueError("gaussian_conditional.scale_table: not positive and strictly increasing")
        return cls(medians, _tables(arrays, "entropy_bottleneck", N), y_tables, scale_table,
                   ExactHyperSynthesis(list(zip((w0, w1, w2), biases)), fixed_point))

    def entropy_parameters(self, z_symbols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """y's CDF indexes (int32) and means (float32), ``(1, M, 4h, 4w)``, from ẑ's integer symbols
        ``(1, N, h, w)``: h_s of ``symbols + median`` (the median snapped to the activation grid,
        float64 — as ``MeanScaleHyperprior.exact_hyper_input``), then each scale's table: the first
        table scale ≥ ``max(scale, table[0])`` (``torch.bucketize``'s rule), in float64."""
        bits = self.h_s.fp.a_bits
        med = np.round(self.medians.astype(np.float64) * 2**bits) / 2**bits
        scales, means = np.split(self.h_s(z_symbols.astype(np.float64) + med[None, :, None, None]), 2, axis=1)
        table = self.scale_table.astype(np.float64)
        indexes = np.searchsorted(table[:-1], np.maximum(scales, table[0]), side="left")
        return indexes.astype(np.int32), means.astype(np.float32)

    def _z_symbols(self, z: np.ndarray) -> np.ndarray:
        return np.round(z - self.medians[None, :, None, None]).astype(np.int32)

    def _z_string(self, symbols: np.ndarray) -> bytes:
        return ans.encode(symbols.reshape(-1), self._z_indexes(symbols.shape), self.z_tables)

    def _y_string(self, y: np.ndarray, indexes: np.ndarray, means: np.ndarray) -> bytes:
        """The string of a (gained) latent ``y`` given its entropy parameters: ``round(y − μ)``."""
        return ans.encode(np.round(y - means).astype(np.int32).reshape(-1), indexes.reshape(-1), self.y_tables)

    def _z_indexes(self, shape: tuple) -> np.ndarray:
        """z's table index of each position, in C order of ``shape`` ``(1, N, h, w)``: its channel."""
        return np.broadcast_to(np.arange(shape[1], dtype=np.int32)[:, None], (shape[1], shape[2] * shape[3])).reshape(-1)

    def compress(self, y: np.ndarray, z: np.ndarray) -> dict:
        """The strings of a gained latent ``y`` ``(1, M, 4h, 4w)`` and its hyper-latent ``z``
        ``(1, N, h, w)`` (float32): ``{"y": bytes, "z": bytes, "z_shape": (h, w)}``. A
        ``ValueError`` for latents the coder cannot code (not finite, or beyond ±:data:`MAX_LATENT`)
        or of the wrong shapes."""
        y, z = np.asarray(y, np.float32), np.asarray(z, np.float32)
        self._check_shapes(y.shape, z.shape)
        if not (_codable(y) and _codable(z)):
            raise ValueError(f"latent values beyond ±{MAX_LATENT:g} cannot be entropy-coded")
        z_symbols = self._z_symbols(z)
        indexes, means = self.entropy_parameters(z_symbols)
        return {"y": self._y_string(y, indexes, means), "z": self._z_string(z_symbols), "z_shape": tuple(z.shape[-2:])}

    def _check_shapes(self, y_shape: tuple, z_shape: tuple) -> None:
        N, M = len(self.medians), self.h_s.channels // 2
        if len(z_shape) != 4 or z_shape[:2] != (1, N) or tuple(y_shape) != (1, M, 4 * z_shape[2], 4 * z_shape[3]):
            raise ValueError(f"latents of shapes y {tuple(y_shape)}, z {tuple(z_shape)}: expected "
                             f"(1, {M}, 4h, 4w) and (1, {N}, h, w)")

    def decompress(self, y_string: bytes, z_string: bytes, z_shape: tuple[int, int]) -> dict:
        """Everything the decoder sees of one tile: ``z_hat``, y's CDF ``indexes`` and ``means``,
        and ``y_hat`` (numpy, ``(1, C, h, w)``) — exact, so the same on every machine. Each string
        must re-encode to itself: a ``ValueError`` ("damaged z string" / "damaged y string")
        otherwise."""
        h, w = (int(s) for s in z_shape)
        if h < 0 or w < 0:
            raise ValueError(f"z shape {tuple(z_shape)}")
        shape = (1, len(self.medians), h, w)
        try:
            symbols = ans.decode(z_string, self._z_indexes(shape), self.z_tables).reshape(shape)
        except ValueError:
            raise ValueError("damaged z string") from None
        z_hat = symbols.astype(np.float32) + self.medians[None, :, None, None]
        if not _codable(z_hat):
            raise ValueError("damaged z string")
        z_symbols = self._z_symbols(z_hat)  # what the encoder codes of ẑ: the re-encoding and h_s's input
        if self._z_string(z_symbols) != z_string:
            raise ValueError("damaged z string")
        indexes, means = self.entropy_parameters(z_symbols)
        try:
            values = ans.decode(y_string, indexes.reshape(-1), self.y_tables).reshape(indexes.shape)
        except ValueError:
            raise ValueError("damaged y string") from None
        y_hat = values.astype(np.float32) + means
        if not _codable(y_hat) or self._y_string(y_hat, indexes, means) != y_string:
            raise ValueError("damaged y string")
        return {"z_hat": z_hat, "indexes": indexes, "means": means, "y_hat": y_hat}

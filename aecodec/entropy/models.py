"""The two entropy models of the hyperprior, as the codec and the encoder search use them.

Both are CompressAI's (same parameters, same state dict, same strings), with
:class:`~aecodec.entropy.coding.TableCoding`'s coder and public methods for what aecodec reads of
them: the bottleneck's medians, each model's bits, and the scale-table index of a scale.
"""

from __future__ import annotations

import torch

from .._compressai import compressai
from .coding import TableCoding

__all__ = ["EntropyBottleneck", "GaussianConditional"]

_cai = compressai()


class EntropyBottleneck(_cai.entropy_models.EntropyBottleneck, TableCoding):
    """The factorized density of z (Ballé et al. 2018), with ``forward`` permuting by Python ints.

    CompressAI builds the (C, B, …) permutation as a tensor on the input's device, so on CUDA each
    forward pass waited for the GPU (``permute`` reads the tensor's values), and ``torch.compile``
    broke its graph there. Same function.
    """

    def forward(self, x: torch.Tensor, training: bool | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        if training is None:
            training = self.training
        perm = (1, 0, *range(2, x.ndim))  # B × C × … ↔ C × B × … (its own inverse)
        x = x.permute(*perm).contiguous()
        shape = x.size()
        outputs = self.quantize(x.reshape(x.size(0), 1, -1), "noise" if training else "dequantize",
                                self._get_medians())
        likelihood, _, _ = self._likelihood(outputs)
        if self.use_likelihood_bound:
            likelihood = self.likelihood_lower_bound(likelihood)
        return (outputs.reshape(shape).permute(*perm).contiguous(),
                likelihood.reshape(shape).permute(*perm).contiguous())

    def medians(self) -> torch.Tensor:
        """Each channel's median ``(1, C, 1, 1)`` (no gradient): z is coded as ``round(z − median)``."""
        return self._get_medians().detach().reshape(1, -1, 1, 1)

    def bits(self, z: torch.Tensor) -> torch.Tensor:
        """``−log₂ p(z)`` summed (differentiable): the rate of z's values as they are — noisy,
        relaxed or rounded (the encoder search)."""
        likelihood = self._likelihood(z.transpose(0, 1).reshape(z.shape[1], 1, -1))[0]
        return -torch.log2(self.likelihood_lower_bound(likelihood)).sum()


class GaussianConditional(_cai.entropy_models.GaussianConditional, TableCoding):
    """y given the hyperprior: a Gaussian of the predicted mean and scale, convolved with a unit
    uniform, coded with the table of the nearest scale in ``scale_table`` at or above it."""

    def indexes(self, scales: torch.Tensor) -> torch.Tensor:
        """The table index (int32) of each scale: the first table scale ≥ the lower-bounded scale,
        as CompressAI's ``build_indexes``, computed in the scales' own precision (float64 on the
        exact path, so every machine picks the same table)."""
        table = self.scale_table.to(device=scales.device, dtype=scales.dtype)
        return torch.bucketize(scales.clamp(min=float(table[0])), table[:-1]).to(torch.int32)

    def bits(self, y: torch.Tensor, scales: torch.Tensor, means: torch.Tensor) -> torch.Tensor:
        """``−log₂ p(y | scales, means)`` summed (differentiable), scales lower-bounded as in training."""
        likelihood = self._likelihood(y, self.lower_bound_scale(scales), means)
        return -torch.log2(self.likelihood_lower_bound(likelihood)).sum()

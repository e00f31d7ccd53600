"""What the codec needs from a model (as CompressAI's ``CompressionModel`` is for its codecs):
the codec's modules take any ``net`` with these attributes and methods, and touch nothing else
of it. :class:`~aecodec.models.hyperprior.MeanScaleHyperprior` is the one that ships."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import torch

__all__ = ["CodingConfig", "CodingModel"]


class CodingConfig(Protocol):
    stride: int  # pixels per position of the hyper-latent z (the padding unit): 64
    M: int  # channels of the latent y
    N: int  # channels of the hyper-latent z
    lambdas: tuple[float, ...]  # the trained rate–distortion trade-off of each gain level

    @property
    def num_levels(self) -> int: ...


class CodingModel(Protocol):
    config: CodingConfig

    @property
    def device(self) -> torch.device: ...

    # encoding: pixels (1, 3, H, W) in [0, 1] → gained latent y → strings
    def analyze(self, x: torch.Tensor, level: float | None) -> torch.Tensor: ...
    def apply_gain(self, y: torch.Tensor, level: float) -> torch.Tensor: ...
    def compress_latents(self, y: torch.Tensor, z: torch.Tensor | None = None) -> dict: ...

    # decoding: strings → {z_hat, indexes, means, y_hat} (exact) → pixels in [0, 1]
    def decode_latents(self, y_string: bytes, z_string: bytes, z_shape: tuple[int, int]) -> dict: ...
    def synthesize(self, y_hat: torch.Tensor, level: float) -> torch.Tensor: ...

    # the encoder search (codec.refine): differentiable rates and synthesis
    def gains(self, level: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]: ...
    def entropy_parameters(self, z_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]: ...
    def hyper_analysis(self, y: torch.Tensor) -> torch.Tensor: ...
    def z_medians(self) -> torch.Tensor: ...
    def hyper_rate(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]: ...
    def y_bits(self, y: torch.Tensor, scales: torch.Tensor, means: torch.Tensor) -> torch.Tensor: ...
    def search_synthesis(self): ...

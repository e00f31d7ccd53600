"""What the codec needs from a model (as CompressAI's ``CompressionModel`` is for its codecs):
the codec's modules take any ``net`` with these attributes and methods, and touch nothing else
of it. :class:`~aecodec.models.runtime.CodecModel` is the one aecodec builds: numpy in and out, no
torch. The encoder search (:mod:`.refine`) differentiates through the torch model
(:class:`SearchModel`, :class:`~aecodec.models.hyperprior.MeanScaleHyperprior`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import numpy as np
    import torch

__all__ = ["CodingConfig", "CodingModel", "SearchModel"]


class CodingConfig(Protocol):
    stride: int  # pixels per position of the hyper-latent z (the padding unit): 64
    M: int  # channels of the latent y
    N: int  # channels of the hyper-latent z
    lambdas: tuple[float, ...]  # the trained rate–distortion trade-off of each gain level

    @property
    def num_levels(self) -> int: ...


class CodingModel(Protocol):
    config: CodingConfig
    model_id: str
    weights_hash: str

    # encoding: pixels (1, 3, H, W) in [0, 1] → gained latent y → strings
    def analyze(self, x: np.ndarray, level: float | None) -> np.ndarray: ...
    def apply_gain(self, y: np.ndarray, level: float) -> np.ndarray: ...
    def compress_latents(self, y: np.ndarray, z: np.ndarray | None = None) -> dict: ...

    # decoding: strings of a format version → {z_hat, indexes, means, y_hat} (exact) → pixels in [0, 1]
    def decode_latents(self, y_string: bytes, z_string: bytes, z_shape: tuple[int, int], version: int) -> dict: ...
    def synthesize(self, y_hat: np.ndarray, level: float) -> np.ndarray: ...

    # the torch model of the same weights, for the encoder search
    def torch_model(self) -> SearchModel: ...


class SearchModel(Protocol):
    """The torch model as the encoder search uses it: differentiable rates and synthesis."""

    config: CodingConfig

    @property
    def device(self) -> torch.device: ...

    def gains(self, level: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]: ...
    def entropy_parameters(self, z_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]: ...
    def hyper_analysis(self, y: torch.Tensor) -> torch.Tensor: ...
    def z_medians(self) -> torch.Tensor: ...
    def hyper_rate(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]: ...
    def y_bits(self, y: torch.Tensor, scales: torch.Tensor, means: torch.Tensor) -> torch.Tensor: ...
    def search_synthesis(self): ...

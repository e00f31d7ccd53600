"""Variable-rate mean-scale hyperprior (the mbt2018-mean family) with a portable entropy path.

Minnen, Ballé, Toderici, "Joint Autoregressive and Hierarchical Priors for Learned Image
Compression", NeurIPS 2018 (the mean-scale hyperprior without the context model), made
variable-rate with per-level gain / inverse-gain vectors on the latent (Cui et al., "Asymmetric
Gained Deep Image Compression With Continuous Rate Adaptation", CVPR 2021)::

            ┌───┐  y   ┌──────┐ y·g  ┌───┐  z  ┌───┐ ẑ          ┌─────────────┐
      x ──►─┤g_a├──►───┤ gain ├──┬─►─┤h_a├──►──┤ Q ├──►──·EB·──►─┤h_s (exact) ├──┐
            └───┘      └──────┘  │   └───┘     └───┘             └─────────────┘  │
                                 ▼                                    scales, means
                               ┌─┴─┐                                              │
                               │ Q │ ŷ = round(y·g − μ) + μ   ◄── GC ◄────────────┘
                               └─┬─┘
            ┌───┐  ŷ·g⁻¹  ┌─────┴────┐
  x̂ ──◄─────┤g_s├───◄─────┤ inv gain │
            └───┘         └──────────┘

The gain level is a continuous number in ``[0, L-1]``; between trained levels the log-gains are
interpolated linearly. h_s is :class:`~aecodec.models.fixed_point.FixedPointHyperSynthesis`, so
the entropy parameters (and the decoded latents ŷ) are bit-identical on every machine. The
entropy models (EB, GC) and their coding path are :mod:`aecodec.entropy`'s; their CDF tables are
computed once by :meth:`MeanScaleHyperprior.update` when a checkpoint is exported, and travel in it.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn as nn

from ..entropy import hyperprior as coding
from ..entropy.models import EntropyBottleneck, GaussianConditional
from ..errors import ModelError
from .aux_transform import HaarAnalysis, HaarSynthesis
from .config import HyperpriorConfig
from .fixed_point import FixedPointHyperSynthesis, ste_round
from .layers import GDN, ChannelsLastSynthesis, conv, deconv, run_inplace
from .registry import register_architecture

__all__ = ["HyperpriorConfig", "MeanScaleHyperprior"]

@register_architecture("mean-scale-hyperprior-vr", HyperpriorConfig)
class MeanScaleHyperprior(nn.Module):
    """See the module docstring. Inputs are RGB in ``[0, 1]``, ``(B, 3, H, W)``, H and W
    multiples of ``config.stride`` (the codec pads)."""

    def __init__(self, config: HyperpriorConfig = HyperpriorConfig(), *, init: bool = True):
        """``init=False`` leaves the convolutions' weights uninitialised, for a model whose
        weights are loaded next (:func:`~aecodec.models.layers.make_layer`)."""
        super().__init__()
        self.config = config
        self.source: str | None = None  # the checkpoint it was loaded from, which messages name
        N, M, L = config.N, config.M, config.num_levels
        c, d = functools.partial(conv, init=init), functools.partial(deconv, init=init)
        self.g_a = nn.Sequential(c(3, N), GDN(N), c(N, N), GDN(N), c(N, N), GDN(N), c(N, M))
        self.g_s = nn.Sequential(d(M, N), GDN(N, inverse=True), d(N, N), GDN(N, inverse=True),
                                 d(N, N), GDN(N, inverse=True), d(N, 3))
        # AuxT: linear shortcuts beside g_a and g_s (None without them; aux_transform.py).
        self.aux_a = HaarAnalysis(M) if config.aux_transform else None
        self.aux_s = HaarSynthesis(M) if config.aux_transform else None
        self.h_a = nn.Sequential(c(M, N, k=3, stride=1), nn.LeakyReLU(inplace=True),
                                 c(N, N), nn.LeakyReLU(inplace=True), c(N, N))
        self.h_s = FixedPointHyperSynthesis(N, M, config.fixed_point, init=init)
        self.entropy_bottleneck = EntropyBottleneck(N)
        scale_table = torch.exp(
            torch.linspace(math.log(config.scale_min), math.log(config.scale_max), config.scale_levels))
        self.gaussian_conditional = GaussianConditional(scale_table.tolist())
        # Gain g ∝ sqrt(λ) is where a uniform quantiser with MSE distortion would settle.
        lam = torch.tensor(config.lambdas)
        log_g = 0.5 * torch.log(lam / lam[L // 2])
        self.log_gain = nn.Parameter(log_g[:, None].repeat(1, M))  # (L, M)
        self.log_inv_gain = nn.Parameter(-log_g[:, None].repeat(1, M))  # (L, M)

    @property
    def device(self) -> torch.device:
        return self.log_gain.device

    def gains(self, level: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Gain and inverse gain, ``(B, M, 1, 1)`` each, for continuous levels ``(B,)``."""
        L = self.config.num_levels
        level = level.to(self.log_gain.dtype).clamp(0, L - 1)
        lo = level.floor().long().clamp(max=L - 2) if L > 1 else level.long() * 0
        t = (level - lo.to(level.dtype))[:, None]
        hi = (lo + 1).clamp(max=L - 1)
        log_g = (1 - t) * self.log_gain[lo] + t * self.log_gain[hi]
        log_ig = (1 - t) * self.log_inv_gain[lo] + t * self.log_inv_gain[hi]
        return log_g.exp()[:, :, None, None], log_ig.exp()[:, :, None, None]

    # ----------------------------------------------------------------------------- transforms
    def analysis(self, x: torch.Tensor) -> torch.Tensor:
        """y before the gain: ``g_a(x)``, plus the linear shortcut when the model has one."""
        y = run_inplace(self.g_a, x) if torch.is_inference_mode_enabled() else self.g_a(x)
        return y if self.aux_a is None else y + self.aux_a(x)

    def synthesis(self, y: torch.Tensor) -> torch.Tensor:
        """x̂ (unclamped) of a latent after the inverse gain: ``g_s(y)`` (+ the shortcut)."""
        x_hat = run_inplace(self.g_s, y) if torch.is_inference_mode_enabled() else self.g_s(y)
        return x_hat if self.aux_s is None else x_hat + self.aux_s(y)

    def hyper_analysis(self, y: torch.Tensor) -> torch.Tensor:
        """z = h_a(y) of a gained latent."""
        return self.h_a(y)

    # ----------------------------------------------------------------------------- training path
    def forward(self, x: torch.Tensor, level: torch.Tensor) -> dict:
        """Training / evaluation forward pass with likelihoods (noise on the rate path,
        straight-through rounding on the synthesis path)."""
        gain, inv_gain = self.gains(level)
        y = self.analysis(x) * gain
        z = self.h_a(y)
        z_hat, z_likelihoods = self.entropy_bottleneck(z)
        scales_hat, means_hat = self.h_s(z_hat).chunk(2, 1)
        _, y_likelihoods = self.gaussian_conditional(y, scales_hat, means=means_hat)
        y_hat = ste_round(y - means_hat) + means_hat
        x_hat = self.synthesis(y_hat * inv_gain)
        return {"x_hat": x_hat, "likelihoods": {"y": y_likelihoods, "z": z_likelihoods}, "y_hat": y_hat}

    def aux_loss(self) -> torch.Tensor:
        return self.entropy_bottleneck.loss()

    # ----------------------------------------------------------------------------- coding path
    def exact_hyper_input(self, z_hat: torch.Tensor) -> torch.Tensor:
        """The exact path's input: ẑ's integer symbols plus the medians snapped to the activation
        grid, in float64. Built from integers, so no floating-point error in ẑ (±0.49) can move it."""
        bits = self.config.fixed_point.a_bits
        med = self.entropy_bottleneck.medians().to(z_hat)
        symbols = torch.round(z_hat - med).double()
        return symbols + torch.round(med.double() * 2**bits) / 2**bits

    def entropy_parameters(self, z_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """CDF indexes (int32) and means (float32) of y, bit-exact on every device."""
        scales, means = self.h_s.exact(self.exact_hyper_input(z_hat)).chunk(2, 1)
        return self.gaussian_conditional.indexes(scales), means.float()

    @torch.inference_mode()
    def analyze(self, x: torch.Tensor, level: float | None) -> torch.Tensor:
        """The gained latent ``y = g_a(x)·gain`` of ``x`` ``(1, 3, H, W)``; ``level=None`` gives
        ``g_a(x)`` before the gain (see :meth:`apply_gain`)."""
        y = self.analysis(x)
        return y if level is None else self.apply_gain(y, level)

    @torch.inference_mode()
    def apply_gain(self, y: torch.Tensor, level: float) -> torch.Tensor:
        """``y·gain(level)``: one g_a pass serves every level (rate search, ``codec.ratesearch``)."""
        gain, _ = self.gains(torch.tensor([level], device=y.device))
        return y * gain

    @torch.inference_mode()
    def compress_latents(self, y: torch.Tensor, z: torch.Tensor | None = None) -> dict:
        """Entropy-code a (gained) latent: its hyper-latent z (default ``h_a(y)``; an encoder
        search may choose its own), then y given ẑ (:func:`aecodec.entropy.hyperprior.compress`).
        Latents the coder cannot code (damaged weights: finite, but far too large) are a ModelError
        naming the checkpoint."""
        z = self.h_a(y) if z is None else z
        try:
            return coding.compress(self.entropy_bottleneck, self.gaussian_conditional, self.entropy_parameters, y, z)
        except ValueError as exc:  # pixels in [0, 1] reach no such latents through sound weights
            raise ModelError(f"{self.source or 'the model'}: {exc}: its weights cannot code this image") from None

    @torch.inference_mode()
    def decode_latents(self, y_string: bytes, z_string: bytes, z_shape: tuple[int, int]) -> dict:
        """Entropy-decode everything the decoder sees: ``z_hat``, y's CDF ``indexes`` and
        ``means``, and ``y_hat`` — exact, device independent; a ValueError for a damaged string
        (:func:`aecodec.entropy.hyperprior.decompress`)."""
        return coding.decompress(self.entropy_bottleneck, self.gaussian_conditional, self.entropy_parameters,
                                 y_string, z_string, z_shape)

    @torch.inference_mode()
    def synthesize(self, y_hat: torch.Tensor, level: float) -> torch.Tensor:
        """The decoder's x̂ in [0, 1]. g_s runs on channels-last tensors: oneDNN's transposed
        convolutions are faster on them on the CPU and give bit-identical results, and so does
        :class:`~aecodec.models.layers.GDN`. The result is channels-last too."""
        _, inv_gain = self.gains(torch.tensor([level], device=y_hat.device))
        y = (y_hat * inv_gain).contiguous(memory_format=torch.channels_last)
        return self.synthesis(y).clamp_(0, 1)

    # ----------------------------------------------------------------------------- encoder search
    def z_medians(self) -> torch.Tensor:
        """z's quantisation offsets ``(1, N, 1, 1)``: ẑ = round(z − median) + median."""
        return self.entropy_bottleneck.medians()

    def hyper_rate(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(bits of z, scales, means)`` for z's values as they are (noisy, relaxed or rounded),
        differentiable: the rate terms the encoder search (``codec.refine``) minimises."""
        scales, means = self.h_s(z).chunk(2, 1)
        return self.entropy_bottleneck.bits(z), scales, means

    def y_bits(self, y: torch.Tensor, scales: torch.Tensor, means: torch.Tensor) -> torch.Tensor:
        """Bits of y given its entropy parameters (:meth:`hyper_rate`), differentiable."""
        return self.gaussian_conditional.bits(y, scales, means)

    def search_synthesis(self) -> ChannelsLastSynthesis:
        """:meth:`synthesis` as a differentiable function for the encoder search (a fast copy)."""
        return ChannelsLastSynthesis(self.g_s, self.aux_s)

    # ----------------------------------------------------------------------------- export
    def update(self) -> None:
        """Compute the entropy coder's CDF tables (once, at export)."""
        self.entropy_bottleneck.update(force=True)
        self.gaussian_conditional.update_scale_table(self.gaussian_conditional.scale_table, force=True)

    def load_state_dict(self, state_dict, strict: bool = True):
        # The CDF buffers have data-dependent sizes: resize ours to the stored ones first.
        for prefix, module in (("entropy_bottleneck", self.entropy_bottleneck),
                               ("gaussian_conditional", self.gaussian_conditional)):
            for name in ("_quantized_cdf", "_offset", "_cdf_length"):
                key = f"{prefix}.{name}"
                if key in state_dict:
                    getattr(module, name).resize_(state_dict[key].shape)
        return super().load_state_dict(state_dict, strict=strict)

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
interpolated linearly. h_s is :class:`~aecodec.models.exact.FixedPointHyperSynthesis`, so the
entropy parameters (and the decoded latents ŷ) are bit-identical on every machine.

CDF tables (EB: factorized density of z; GC: Gaussian for each scale in ``scale_table``) are
computed once by :meth:`update` when a checkpoint is exported, and travel inside it.
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn as nn

from .._torch import compressai
from .auxt import HaarAnalysis, HaarSynthesis
from .exact import FixedPoint, FixedPointHyperSynthesis, _ste_round
from .layers import make_layer

__all__ = ["HyperpriorConfig", "MeanScaleHyperprior"]

_cai = compressai()


class _Coding(_cai.entropy_models.EntropyModel):
    """CompressAI's ``compress`` / ``decompress`` of an entropy model — the same rANS coder, the same
    symbols, indexes and tables, so the same strings and values — without its per-call overheads:
    the CDF tables' Python lists are made once (again only when the tables change, at export or
    load), and decoded symbols become a tensor through numpy (``torch.tensor`` of a 300 000-int
    list took 60 ms per Kodak image, half the entropy decoder's time)."""

    def _tables(self) -> tuple[list, list, list]:
        self._check_cdf_size()  # CompressAI's checks: tables computed (update) and well-formed
        self._check_cdf_length()
        self._check_offsets_size()
        bufs = (self._quantized_cdf, self._cdf_length, self._offset)
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
        cdf, lengths, offsets = self._tables()
        return [self.entropy_coder.encode_with_indexes(symbols[i].reshape(-1).int().tolist(),
                                                       indexes[i].reshape(-1).int().tolist(), cdf, lengths, offsets)
                for i in range(symbols.size(0))]

    def decompress(self, strings: list[bytes], indexes: torch.Tensor, dtype: torch.dtype = torch.float,
                   means: torch.Tensor | None = None) -> torch.Tensor:
        if not isinstance(strings, (tuple, list)) or len(strings) != indexes.size(0) or indexes.dim() < 2:
            raise ValueError("one string per item of indexes (at least 2 dimensions) is needed")
        cdf, lengths, offsets = self._tables()
        outputs = self._quantized_cdf.new_empty(indexes.size())
        for i, s in enumerate(strings):
            values = self.entropy_coder.decode_with_indexes(s, indexes[i].reshape(-1).int().tolist(), cdf, lengths, offsets)
            outputs[i] = torch.from_numpy(np.array(values, dtype=np.int32)).reshape(outputs[i].size())
        return self.dequantize(outputs, means, dtype)


class GaussianConditional(_cai.entropy_models.GaussianConditional, _Coding):
    """CompressAI's Gaussian conditional with :class:`_Coding`'s compress / decompress. Same
    parameters, same state dict, same strings."""


class EntropyBottleneck(_cai.entropy_models.EntropyBottleneck, _Coding):
    """CompressAI's factorized entropy model, with ``forward`` permuting by Python ints.

    CompressAI builds the (C, B, …) permutation as a tensor on the input's device, so on CUDA each
    forward pass waited for the GPU four times (``permute`` reads the tensor's values), and
    ``torch.compile`` broke its graph there. Same parameters, same state dict, same function.
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


class GDN(_cai.layers.GDN):
    """CompressAI's GDN (Ballé et al. 2016) with its 1×1 normalisation conv done as a matmul.

    oneDNN's 1×1 convolution splits its reduction differently with 1 and 2 threads, so pixels
    changed with the thread count; the GEMM route gives identical results (tests/test_exact.py)
    at the same speed. Same parameters, same state dict, same function.

    Under inference mode (encoding, decoding) the pixels go through in blocks of :attr:`BLOCK`
    into one output buffer, the square root and the product in place: a third of the memory of
    the whole-image route and faster (the block stays in cache); a channels-last input (the
    decoder's g_s, :meth:`MeanScaleHyperprior.synthesize`) is normalised in its own layout, its
    pixels the rows of a ``(B·H·W, C)`` matrix that the GEMM reads without a copy. Each output is
    the same dot product over the channels plus β whatever the route, and the results are
    bit-identical (tests/test_exact.py).
    """

    BLOCK = 4096  # pixels per block of the inference route (2 MiB of float32 at 128 channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_inference_mode_enabled():
            return self._blocks(x, inplace=False)
        B, C, H, W = x.shape
        beta = self.beta_reparam(self.beta)
        gamma = self.gamma_reparam(self.gamma).reshape(C, C)
        norm = (torch.matmul(gamma, (x * x).reshape(B, C, H * W)) + beta[:, None]).reshape(B, C, H, W)
        return x * (torch.sqrt(norm) if self.inverse else torch.rsqrt(norm))

    @torch.inference_mode()
    def normalize_(self, x: torch.Tensor) -> torch.Tensor:
        """``forward(x)`` written into ``x`` itself (inference only): for g_a and g_s, where each
        GDN's input is a fresh convolution output that nothing else reads (:func:`run_inplace`).
        (A tensor in neither dense layout is normalised in a copy.)"""
        return self._blocks(x, inplace=True)

    def _blocks(self, x: torch.Tensor, inplace: bool) -> torch.Tensor:
        B, C, H, W = x.shape
        beta = self.beta_reparam(self.beta)
        gamma = self.gamma_reparam(self.gamma).reshape(C, C)
        n, step = H * W, self.BLOCK
        if C > 1 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
            r = x.permute(0, 2, 3, 1).reshape(B * n, C)  # pixels as rows: a view of the memory
            out = r if inplace else torch.empty_like(r)
            for i in range(0, B * n, step):
                ri = r[i:i + step]
                norm = torch.addmm(beta, ri * ri, gamma.t())
                out[i:i + step] = (norm.sqrt_() if self.inverse else norm.rsqrt_()).mul_(ri)
            return out.reshape(B, H, W, C).permute(0, 3, 1, 2)
        cols = x.reshape(B, C, n)  # a view when x is planar, else a copy
        out = cols if inplace else torch.empty_like(cols)
        for i in range(0, n, step):
            ci = cols[..., i:i + step]
            norm = torch.matmul(gamma, ci * ci).add_(beta[:, None])
            out[..., i:i + step] = (norm.sqrt_() if self.inverse else norm.rsqrt_()).mul_(ci)
        return out.reshape(B, C, H, W)


def run_inplace(transform: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """``transform(x)`` for g_a or g_s under inference mode, each GDN normalising the output of
    the convolution before it in place (:meth:`GDN.normalize_`): the same values, the memory of
    one activation less at the peak."""
    for layer in transform:
        x = layer.normalize_(x) if isinstance(layer, GDN) else layer(x)
    return x


@dataclass(frozen=True)
class HyperpriorConfig:
    """Architecture of :class:`MeanScaleHyperprior`; saved inside every checkpoint."""

    N: int = 128
    M: int = 192
    # Rate–distortion trade-off of each trained gain level, low rate to high (MSE on [0,1]·255²).
    lambdas: tuple[float, ...] = (0.0018, 0.0035, 0.0067, 0.013, 0.025, 0.0483, 0.0932, 0.18)
    scale_min: float = 0.11
    scale_max: float = 256.0
    scale_levels: int = 64
    fixed_point: FixedPoint = field(default_factory=FixedPoint)
    # A zero-initialised linear Haar shortcut beside g_a and g_s (models/auxt.py); off in old checkpoints.
    aux_transform: bool = False

    @property
    def stride(self) -> int:
        return 64  # g_a downsamples 16×, h_a another 4×

    @property
    def num_levels(self) -> int:
        return len(self.lambdas)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["lambdas"] = list(self.lambdas)
        if not self.aux_transform:  # a model without the shortcut saves the config older versions read
            del d["aux_transform"]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "HyperpriorConfig":
        d = dict(d)
        d["lambdas"] = tuple(d["lambdas"])
        d["fixed_point"] = FixedPoint(**d["fixed_point"])
        return cls(**d)


def _conv(cin: int, cout: int, k: int = 5, stride: int = 2, *, init: bool = True) -> nn.Conv2d:
    return make_layer(nn.Conv2d, cin, cout, k, stride=stride, padding=k // 2, init=init)


def _deconv(cin: int, cout: int, k: int = 5, stride: int = 2, *, init: bool = True) -> nn.ConvTranspose2d:
    return make_layer(nn.ConvTranspose2d, cin, cout, k, stride=stride, padding=k // 2, output_padding=stride - 1,
                      init=init)


def _guarded(string: bytes, n_symbols: int) -> bytes:
    """The rANS string followed by enough zero bytes that a decoder fed a damaged or hostile
    string never reads past the end of its buffer.

    CompressAI's rANS decoder does no bounds checks: it reads 8 bytes at start, at most one
    32-bit word per symbol, and in bypass mode 4 bits per escape digit; a stream of L bytes can
    announce at most ~30·L escape digits (each announcing 15 of them costs 4 bits of real data),
    which read at most 15·L bytes. Zeros read past the real data decode as "no more bypass", so
    the loops end. A valid stream never reads its padding, so decoding is unchanged.
    """
    return string + bytes(16 * len(string) + 4 * n_symbols + 64)


MAX_LATENT = 2.0**20  # |y|, |z| the coder accepts: far beyond what g_a gives; within its int32 escape codes


def _codable(x: torch.Tensor) -> bool:
    """Whether the coder can (re-)encode ``x``: finite and within ±:data:`MAX_LATENT` (CompressAI's
    escape code loops forever on values near 2**31, which damaged strings can decode to)."""
    return bool(torch.isfinite(x).all()) and (x.numel() == 0 or float(x.abs().max()) <= MAX_LATENT)


class MeanScaleHyperprior(nn.Module):
    """See the module docstring. Inputs are RGB in ``[0, 1]``, ``(B, 3, H, W)``, H and W
    multiples of ``config.stride`` (the codec API pads)."""

    def __init__(self, config: HyperpriorConfig = HyperpriorConfig(), *, init: bool = True):
        """``init=False`` leaves the convolutions' weights uninitialised, for a model whose
        weights are loaded next (:func:`~aecodec.models.layers.make_layer`)."""
        super().__init__()
        self.config = config
        N, M, L = config.N, config.M, config.num_levels

        conv, deconv = functools.partial(_conv, init=init), functools.partial(_deconv, init=init)

        self.g_a = nn.Sequential(
            conv(3, N), GDN(N), conv(N, N), GDN(N), conv(N, N), GDN(N), conv(N, M)
        )
        self.g_s = nn.Sequential(
            deconv(M, N), GDN(N, inverse=True), deconv(N, N), GDN(N, inverse=True),
            deconv(N, N), GDN(N, inverse=True), deconv(N, 3),
        )
        # AuxT: linear shortcuts beside g_a and g_s (None without them; models/auxt.py).
        self.aux_a = HaarAnalysis(M) if config.aux_transform else None
        self.aux_s = HaarSynthesis(M) if config.aux_transform else None
        self.h_a = nn.Sequential(
            conv(M, N, k=3, stride=1), nn.LeakyReLU(inplace=True),
            conv(N, N), nn.LeakyReLU(inplace=True), conv(N, N),
        )
        self.h_s = FixedPointHyperSynthesis(N, M, config.fixed_point, init=init)
        self.entropy_bottleneck = EntropyBottleneck(N)
        scale_table = torch.exp(
            torch.linspace(math.log(config.scale_min), math.log(config.scale_max), config.scale_levels)
        )
        self.gaussian_conditional = GaussianConditional(scale_table.tolist())

        # Gain g ∝ sqrt(λ) is where a uniform quantiser with MSE distortion would settle.
        lam = torch.tensor(config.lambdas)
        log_g = 0.5 * torch.log(lam / lam[L // 2])
        self.log_gain = nn.Parameter(log_g[:, None].repeat(1, M))  # (L, M)
        self.log_inv_gain = nn.Parameter(-log_g[:, None].repeat(1, M))  # (L, M)

    # ----------------------------------------------------------------------------- gains
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
        y_hat = _ste_round(y - means_hat) + means_hat
        x_hat = self.synthesis(y_hat * inv_gain)
        return {"x_hat": x_hat, "likelihoods": {"y": y_likelihoods, "z": z_likelihoods}, "y_hat": y_hat}

    def aux_loss(self) -> torch.Tensor:
        return self.entropy_bottleneck.loss()

    # ----------------------------------------------------------------------------- coding path
    def exact_hyper_input(self, z_hat: torch.Tensor) -> torch.Tensor:
        """The exact path's input: ẑ's integer symbols plus the medians snapped to the activation
        grid, in float64. Built from integers, so no floating-point error in ẑ (±0.49) can move it."""
        bits = self.config.fixed_point.a_bits
        med = self.entropy_bottleneck._get_medians().detach().reshape(1, -1, 1, 1).to(z_hat)
        symbols = torch.round(z_hat - med).double()
        return symbols + torch.round(med.double() * 2**bits) / 2**bits

    def entropy_parameters(self, z_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """CDF indexes (int32) and means (float32) of y, bit-exact on every device."""
        scales, means = self.h_s.exact(self.exact_hyper_input(z_hat)).chunk(2, 1)
        table = self.gaussian_conditional.scale_table.to(device=scales.device, dtype=torch.float64)
        # Index of the first table scale >= the (lower-bounded) scale, as CompressAI's build_indexes.
        indexes = torch.bucketize(scales.clamp(min=float(table[0])), table[:-1]).to(torch.int32)
        return indexes, means.float()

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
        search may choose its own), then y given ẑ."""
        if z is None:
            z = self.h_a(y)
        if not (_codable(y) and _codable(z)):
            raise ValueError(f"latent values beyond ±{MAX_LATENT:g} cannot be entropy-coded")
        z_strings = self.entropy_bottleneck.compress(z)
        z_hat = self.entropy_bottleneck.decompress(z_strings, z.shape[-2:])
        indexes, means = self.entropy_parameters(z_hat)
        y_strings = self.gaussian_conditional.compress(y, indexes, means=means)
        return {"y": y_strings[0], "z": z_strings[0], "z_shape": tuple(z.shape[-2:])}

    @torch.inference_mode()
    def decode_latents(self, y_string: bytes, z_string: bytes, z_shape: tuple[int, int]) -> dict:
        """Entropy-decode everything the decoder sees: ``z_hat``, y's CDF ``indexes`` and
        ``means``, and ``y_hat`` (exact, device independent): the decoder's tile pipeline
        (``codec/tiles.py``) and, through it, inspection.

        A rANS decoder reads any bytes as *some* symbols, so a string damaged behind a valid CRC
        would decode to a wrong image; only a string the encoder made re-encodes to itself (the
        coder is deterministic), so each string is re-encoded and compared — a ValueError if it
        differs. This costs one entropy *encode* per tile, a few percent of a decode."""
        z_hat = self.entropy_bottleneck.decompress([_guarded(z_string, self.config.N * z_shape[0] * z_shape[1])], z_shape)
        if not _codable(z_hat) or self.entropy_bottleneck.compress(z_hat)[0] != z_string:
            raise ValueError("damaged z string")
        indexes, means = self.entropy_parameters(z_hat)
        y_hat = self.gaussian_conditional.decompress([_guarded(y_string, indexes.numel())], indexes, means=means)
        if not _codable(y_hat) or self.gaussian_conditional.compress(y_hat, indexes, means=means)[0] != y_string:
            raise ValueError("damaged y string")
        return {"z_hat": z_hat, "indexes": indexes, "means": means, "y_hat": y_hat}

    @torch.inference_mode()
    def synthesize(self, y_hat: torch.Tensor, level: float) -> torch.Tensor:
        """The decoder's x̂ in [0, 1]. g_s runs on channels-last tensors: oneDNN's transposed
        convolutions are about twice as fast on them on the CPU and give bit-identical results
        (tests/test_exact.py), and so does :class:`GDN`. The result is channels-last too."""
        _, inv_gain = self.gains(torch.tensor([level], device=y_hat.device))
        y = (y_hat * inv_gain).contiguous(memory_format=torch.channels_last)
        return self.synthesis(y).clamp_(0, 1)

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

"""The layers of the transforms: convolutions built with or without PyTorch's random
initialisation, GDN, and the channels-last synthesis the encoder search differentiates."""

from __future__ import annotations

import functools

import torch
import torch.nn as nn
import torch.nn.functional as F

from .._compressai import compressai

__all__ = ["make_layer", "conv", "deconv", "GDN", "run_inplace", "gdn_function", "ChannelsLastSynthesis"]

_cai = compressai()


def make_layer(cls: type[nn.Module], *args, init: bool = True, **kwargs) -> nn.Module:
    """``cls(*args, **kwargs)``; with ``init=False`` its ``reset_parameters`` is skipped, so the
    parameters keep the uninitialised memory ``torch.empty`` gave them — for a model whose weights
    are loaded right after (:func:`~aecodec.models.checkpoint.load_checkpoint`, which loads every
    parameter strictly): the random initialisation is as costly as the rest of building a model.

    The layer is an ordinary ``cls``: the method is shadowed on the instance only while its
    ``__init__`` runs (other threads building layers are unaffected)."""
    if init:
        return cls(*args, **kwargs)
    module = cls.__new__(cls)
    object.__setattr__(module, "reset_parameters", lambda: None)
    try:
        module.__init__(*args, **kwargs)
    finally:
        object.__delattr__(module, "reset_parameters")
    return module


def conv(cin: int, cout: int, k: int = 5, stride: int = 2, *, init: bool = True) -> nn.Conv2d:
    """A k×k convolution, downsampling by ``stride``, "same" padding."""
    return make_layer(nn.Conv2d, cin, cout, k, stride=stride, padding=k // 2, init=init)


def deconv(cin: int, cout: int, k: int = 5, stride: int = 2, *, init: bool = True) -> nn.ConvTranspose2d:
    """A k×k transposed convolution upsampling by exactly ``stride``."""
    return make_layer(nn.ConvTranspose2d, cin, cout, k, stride=stride, padding=k // 2, output_padding=stride - 1,
                      init=init)


class GDN(_cai.layers.GDN):
    """CompressAI's GDN (Ballé et al. 2016) with its 1×1 normalisation conv done as a matmul.

    oneDNN's 1×1 convolution splits its reduction differently with 1 and 2 threads, so pixels
    changed with the thread count; the GEMM route gives identical results (tests/models) at the
    same speed. Same parameters, same state dict, same function.

    Under inference mode (encoding, decoding) the pixels go through in blocks of :attr:`BLOCK`
    into one output buffer, the square root and the product in place: a third of the memory of
    the whole-image route and faster (the block stays in cache); a channels-last input (the
    decoder's g_s) is normalised in its own layout, its pixels the rows of a ``(B·H·W, C)`` matrix
    that the GEMM reads without a copy. Each output is the same dot product over the channels
    plus β whatever the route, and the results are bit-identical.
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

    def parameters_for_search(self) -> tuple[torch.Tensor, torch.Tensor, bool]:
        """``(Γ (C, C), β (C,), inverse)`` as plain tensors (copies), for :func:`gdn_function`."""
        with torch.no_grad():
            C = self.beta.shape[0]
            return (self.gamma_reparam(self.gamma).reshape(C, C).clone(), self.beta_reparam(self.beta).clone(),
                    self.inverse)

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


@functools.cache
def gdn_function():
    """GDN for the encoder search, as an autograd function ``(x, Γ, β, inverse) → x·s``: the same
    function as :class:`GDN` on a channels-last tensor, its pixels the rows of a ``(B·H·W, C)``
    matrix (views, no reorders), with its own backward (the input's gradient only) that keeps one
    normaliser instead of autograd's chain of temporaries."""

    class GDNFunction(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, gamma, beta, inverse):
            B, C, H, W = x.shape
            r = x.permute(0, 2, 3, 1).reshape(-1, C)  # a view when x is channels-last
            s = torch.addmm(beta, r * r, gamma.t())  # n = β + Γ·x²
            s = s.sqrt_() if inverse else s.rsqrt_()  # out = x·s: s = √n (inverse GDN) or 1/√n
            ctx.save_for_backward(r, s, gamma)
            ctx.inverse, ctx.shape = inverse, (B, H, W, C)
            return (r * s).reshape(B, H, W, C).permute(0, 3, 1, 2)

        @staticmethod
        def backward(ctx, g):
            r, s, gamma = ctx.saved_tensors
            B, H, W, C = ctx.shape
            g = g.permute(0, 2, 3, 1).reshape(-1, C)
            # ∂out_j/∂x_k = δ_jk·s_j + x_j·Γ_jk·x_k·(1/s_j for the inverse GDN, −s_j³ for GDN)
            t = torch.mm(g * r / s, gamma) if ctx.inverse else torch.mm(g * r * s**3, gamma).neg_()
            return torch.addcmul(g * s, r, t).reshape(B, H, W, C).permute(0, 3, 1, 2), None, None, None

    return GDNFunction.apply


class ChannelsLastSynthesis:
    """A synthesis transform (transposed convolutions and GDNs, plus an optional linear shortcut)
    for the encoder search: the same function in channels-last with :func:`gdn_function` —
    forward and backward about twice as fast on a CPU as the planar layers (oneDNN's transposed
    convolutions reorder planar tensors). Copies of the weights; the model is untouched. Only the
    search uses it: what is coded is decided by the model's own functions."""

    def __init__(self, g_s: nn.Sequential, shortcut: nn.Module | None = None):
        self.layers, self.shortcut = [], shortcut
        with torch.no_grad():
            for layer in g_s:
                if isinstance(layer, GDN):
                    self.layers.append(layer.parameters_for_search())
                else:
                    self.layers.append((layer.weight.detach().contiguous(memory_format=torch.channels_last),
                                        layer.bias.detach(), layer.stride, layer.padding, layer.output_padding))

    def __call__(self, y: torch.Tensor) -> torch.Tensor:
        x = y.contiguous(memory_format=torch.channels_last)
        for params in self.layers:
            if len(params) == 3:
                x = gdn_function()(x, *params)
            else:
                weight, bias, stride, padding, output_padding = params
                x = F.conv_transpose2d(x, weight, bias, stride, padding, output_padding)
        return x if self.shortcut is None else x + self.shortcut(y)

"""One training step: the rate–distortion loss, the two optimisers, the learning-rate schedule and
the bf16 forward of the transforms."""

from __future__ import annotations

import functools
import math
import types

import torch
import torch.nn.functional as F

from ..metrics import psnr_from_mse
from ..models.hyperprior import MeanScaleHyperprior
from .distributed import average_grads
from .options import TrainOptions

__all__ = ["MS_SSIM_SCALE", "rd_loss", "lr_at", "optimisers", "optimise", "set_bf16"]

# CompressAI's MS-SSIM lambdas (2.40 … 220) are 1220–1330× its MSE lambdas (0.0018 … 0.18), which
# are the ones the config stores; without this factor the distortion term vanishes next to the rate.
MS_SSIM_SCALE = 1300.0


@functools.lru_cache(maxsize=8)
def _lambdas(lambdas: tuple[float, ...], device: torch.device) -> torch.Tensor:
    """The levels' λ on the device, made once (a copy from the host each step would wait for the GPU)."""
    return torch.tensor(lambdas, device=device)


def rd_loss(model: MeanScaleHyperprior, x: torch.Tensor, level: torch.Tensor, distortion: str,
            forward=None) -> dict:
    """``λ_level · D + R`` of the batch ``x`` (mean over the batch), with its bpp and PSNR (detached
    means). ``forward`` (default: the model) may be a DDP or compiled wrapper of ``model``."""
    out = (model if forward is None else forward)(x, level.float())
    B, _, H, W = x.shape
    bits = sum(-torch.log2(l).flatten(1).sum(1) for l in out["likelihoods"].values())  # (B,)
    bpp = bits / (H * W)
    lam = _lambdas(model.config.lambdas, x.device)[level]
    mse = F.mse_loss(out["x_hat"], x, reduction="none").flatten(1).mean(1)  # (B,)
    if distortion == "mse":
        dist = 255**2 * mse
    else:
        from pytorch_msssim import ms_ssim
        dist = MS_SSIM_SCALE * (1 - ms_ssim(out["x_hat"].clamp(0, 1), x, data_range=1.0, size_average=False))
    loss = (lam * dist + bpp).mean()
    psnr = psnr_from_mse(mse.detach().clamp_min(1e-10), 1.0)
    return {"loss": loss, "bpp": bpp.detach().mean(), "psnr": psnr.mean()}


def lr_at(step: int, o: TrainOptions) -> float:
    """The learning rate at a global step: linear warm-up, then cosine decay to ``min_lr_ratio``."""
    if step < o.warmup:
        return o.lr * (step + 1) / o.warmup
    t = min(1.0, (step - o.warmup) / max(1, o.steps - o.warmup))
    return o.lr * (o.min_lr_ratio + (1 - o.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t)))


def optimisers(model: MeanScaleHyperprior, lr: float) -> tuple[torch.optim.Adam, torch.optim.Adam]:
    """Adam on the transforms and entropy models; a second Adam (lr 1e-3) on the entropy
    bottleneck's quantiles, which only the auxiliary loss trains (as in CompressAI)."""
    main = [p for n, p in model.named_parameters() if not n.endswith(".quantiles")]
    aux = [p for n, p in model.named_parameters() if n.endswith(".quantiles")]
    return torch.optim.Adam(main, lr=lr), torch.optim.Adam(aux, lr=1e-3)


def optimise(model: MeanScaleHyperprior, opt, aux_opt, x: torch.Tensor, level: torch.Tensor, *,
             distortion: str = "mse", clip: float = 1.0, forward=None, world: int = 1) -> tuple[dict, torch.Tensor]:
    """One training step: the RD loss of the batch ``x`` at gain levels ``level``, a clipped Adam
    step on the main parameters, then an Adam step on the auxiliary (quantile) loss. Returns the
    loss terms (:func:`rd_loss`) and the auxiliary loss."""
    r = rd_loss(model, x, level, distortion, forward=forward)
    opt.zero_grad(set_to_none=True)
    r["loss"].backward()  # DDP averages the gradients across ranks here
    if clip:
        torch.nn.utils.clip_grad_norm_(opt.param_groups[0]["params"], clip)
    opt.step()
    aux = model.aux_loss()
    aux_opt.zero_grad(set_to_none=True)
    aux.backward()
    if world > 1:
        average_grads(aux_opt.param_groups[0]["params"], world)
    aux_opt.step()
    return r, aux


def _bf16_forward(self, x: torch.Tensor) -> torch.Tensor:
    """``nn.Sequential.forward`` with all layers but the last under bf16 autocast: the wide,
    high-resolution layers use the tensor cores; the layer that makes the latent (or the image)
    runs in float32, so y, z and x̂ keep float32 precision."""
    with torch.autocast(x.device.type, dtype=torch.bfloat16):
        for layer in list(self)[:-1]:
            x = layer(x)
    return self[-1](x.float())


def set_bf16(model: MeanScaleHyperprior, on: bool) -> None:
    """Run g_a, h_a and g_s in bf16 (instance-level forward; the state dict is unchanged).
    h_s, the entropy models and the likelihoods are untouched and stay float32."""
    for seq in (model.g_a, model.h_a, model.g_s):
        if on:
            seq.forward = types.MethodType(_bf16_forward, seq)
        else:
            seq.__dict__.pop("forward", None)

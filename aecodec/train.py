"""Training: one readable loop that turns photos into a variable-rate checkpoint.

Each step draws a batch of random crops (random downscale first, so that the JPEG block artefacts
of the training photos shrink below a pixel; then crop and flip), gives each crop a random gain
level, and minimises ``λ_level · D + R`` with R in bits per pixel from the entropy models'
likelihoods and D = 255²·MSE (or 1 − MS-SSIM). The entropy bottleneck's quantiles get their own
auxiliary loss and optimiser, as in CompressAI.

Runs are resumable in chunks (``--max-minutes``; ``--resume``): the checkpoint holds the config,
fp32 weights, both optimisers, the step and the RNG state. The learning-rate schedule (linear
warm-up, cosine decay) is a function of the global step, so chunked runs follow the same curve
as one long run.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .models.checkpoint import load_checkpoint, save_checkpoint
from .models.hyperprior import HyperpriorConfig, MeanScaleHyperprior

__all__ = ["TrainOptions", "train", "load_images"]

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"}


@dataclass
class TrainOptions:
    data: list[Path]
    out: Path
    model_id: str = "mean-scale-vr-128"
    resume: Path | None = None
    steps: int = 100_000  # length of the LR schedule (global steps)
    max_minutes: float | None = None  # stop this chunk after this much wall time
    batch_size: int = 8
    crop: int = 256
    lr: float = 1e-4
    warmup: int = 500
    min_lr_ratio: float = 0.1
    clip: float = 1.0
    distortion: str = "mse"  # or "ms-ssim"
    N: int = 128
    M: int = 192
    device: str = "auto"
    seed: int = 0
    save_every_minutes: float = 5.0
    log_every: int = 50


def load_images(dirs: list[Path], min_side: int = 64) -> list[torch.Tensor]:
    """Decode every image below ``dirs`` into a uint8 (3, H, W) tensor (RGB)."""
    files = sorted(p for d in dirs for p in Path(d).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    images = []
    for p in files:
        with Image.open(p) as im:
            im = im.convert("RGB")
            if min(im.size) < min_side:
                continue
            images.append(torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1).contiguous())
    if not images:
        raise ValueError(f"no training images found in {', '.join(map(str, dirs))}")
    return images


def sample_batch(images: list[torch.Tensor], batch: int, crop: int, gen: random.Random,
                 device: torch.device) -> torch.Tensor:
    """Random downscale (factor 0.5–1), random crop, random horizontal flip → (B, 3, crop, crop)."""
    out = []
    for _ in range(batch):
        im = images[gen.randrange(len(images))]
        _, h, w = im.shape
        region = min(round(crop / gen.uniform(0.5, 1.0)), h, w)
        top, left = gen.randint(0, h - region), gen.randint(0, w - region)
        patch = im[:, top:top + region, left:left + region].to(device, non_blocking=True)
        patch = patch[None].float().div_(255)
        if region != crop:
            patch = F.interpolate(patch, size=(crop, crop), mode="bicubic", antialias=True,
                                  align_corners=False).clamp_(0, 1)
        if gen.random() < 0.5:
            patch = patch.flip(-1)
        out.append(patch)
    return torch.cat(out)


def rd_loss(model: MeanScaleHyperprior, x: torch.Tensor, level: torch.Tensor, distortion: str) -> dict:
    out = model(x, level.float())
    B, _, H, W = x.shape
    bits = sum(-torch.log2(l).flatten(1).sum(1) for l in out["likelihoods"].values())  # (B,)
    bpp = bits / (H * W)
    lam = torch.tensor(model.config.lambdas, device=x.device)[level]
    mse = F.mse_loss(out["x_hat"], x, reduction="none").flatten(1).mean(1)  # (B,)
    if distortion == "mse":
        dist = 255**2 * mse
    else:
        from pytorch_msssim import ms_ssim
        dist = 1 - ms_ssim(out["x_hat"].clamp(0, 1), x, data_range=1.0, size_average=False)
    loss = (lam * dist + bpp).mean()
    psnr = -10 * torch.log10(mse.detach().clamp_min(1e-10))
    return {"loss": loss, "bpp": bpp.detach().mean(), "psnr": psnr.mean()}


def lr_at(step: int, o: TrainOptions) -> float:
    if step < o.warmup:
        return o.lr * (step + 1) / o.warmup
    t = min(1.0, (step - o.warmup) / max(1, o.steps - o.warmup))
    return o.lr * (o.min_lr_ratio + (1 - o.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t)))


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def train(o: TrainOptions, log=print) -> Path:
    device = pick_device(o.device)
    torch.manual_seed(o.seed)
    gen = random.Random(o.seed)
    record: dict = {"data": [str(d) for d in o.data], "distortion": o.distortion,
                    "batch_size": o.batch_size, "crop": o.crop, "lr": o.lr, "chunks": []}
    if o.resume:
        model, ckpt = load_checkpoint(o.resume)
        step = int(ckpt["step"])
        record = ckpt.get("training") or record
    else:
        model, ckpt, step = MeanScaleHyperprior(HyperpriorConfig(N=o.N, M=o.M)), None, 0
    model.to(device).train()

    main_params = [p for n, p in model.named_parameters() if not n.endswith(".quantiles")]
    aux_params = [p for n, p in model.named_parameters() if n.endswith(".quantiles")]
    opt = torch.optim.Adam(main_params, lr=o.lr)
    aux_opt = torch.optim.Adam(aux_params, lr=1e-3)
    if ckpt is not None and "optimizer" in ckpt:
        opt.load_state_dict(ckpt["optimizer"])
        aux_opt.load_state_dict(ckpt["aux_optimizer"])
        gen.setstate(_tuple_state(ckpt["rng"]["python"]))
        torch.set_rng_state(ckpt["rng"]["torch"])

    log(f"loading images from {', '.join(map(str, o.data))} …")
    images = load_images(o.data)
    log(f"{len(images)} images; device {device}; starting at step {step}")
    L = model.config.num_levels
    start = last_save = time.monotonic()
    chunk_start_step = step

    def save(path: Path) -> None:
        elapsed = (time.monotonic() - start) / 60
        rec = dict(record)
        rec["chunks"] = record["chunks"] + [{"from_step": chunk_start_step, "to_step": step,
                                             "minutes": round(elapsed, 2), "device": str(device),
                                             "device_name": torch.cuda.get_device_name() if device.type == "cuda" else "cpu"}]
        rec["steps"] = step
        save_checkpoint(path, model, model_id=o.model_id, training=rec,
                        optimizer=opt.state_dict(), aux_optimizer=aux_opt.state_dict(), step=step,
                        rng={"python": gen.getstate(), "torch": torch.get_rng_state()})

    ema = None
    while step < o.steps:
        if o.max_minutes is not None and time.monotonic() - start > 60 * o.max_minutes:
            break
        for g in opt.param_groups:
            g["lr"] = lr_at(step, o)
        x = sample_batch(images, o.batch_size, o.crop, gen, device)
        level = torch.randint(0, L, (o.batch_size,), device=device)
        r = rd_loss(model, x, level, o.distortion)
        opt.zero_grad(set_to_none=True)
        r["loss"].backward()
        if o.clip:
            torch.nn.utils.clip_grad_norm_(main_params, o.clip)
        opt.step()
        aux = model.aux_loss()
        aux_opt.zero_grad(set_to_none=True)
        aux.backward()
        aux_opt.step()
        step += 1

        vals = torch.stack([r["loss"].detach(), r["bpp"], r["psnr"]]).tolist()
        ema = vals if ema is None else [0.98 * e + 0.02 * v for e, v in zip(ema, vals)]
        if step % o.log_every == 0:
            rate = (step - chunk_start_step) / (time.monotonic() - start)
            log(f"step {step} loss {ema[0]:.3f} bpp {ema[1]:.3f} psnr {ema[2]:.2f} "
                f"lr {lr_at(step, o):.2e} aux {aux.item():.1f} {rate:.2f} it/s "
                f"{rate * o.batch_size:.1f} crops/s")
        if time.monotonic() - last_save > 60 * o.save_every_minutes:
            save(o.out)
            last_save = time.monotonic()
    save(o.out)
    log(f"saved {o.out} at step {step}")
    return o.out


def _tuple_state(state):
    """random.Random.setstate needs tuples; torch.load(weights_only) returns lists."""
    return tuple(_tuple_state(s) if isinstance(s, list) else s for s in state)


def export(resumable: Path, out: Path, log=print) -> str:
    """Strip training state, compute the CDF tables once, keep the training record."""
    model, ckpt = load_checkpoint(resumable)
    model.update()
    digest = save_checkpoint(out, model, model_id=ckpt["model_id"], training=ckpt.get("training"))
    log(f"exported {out} (weights {digest})")
    return digest

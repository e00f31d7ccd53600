"""Training: one readable loop that turns photos into a variable-rate checkpoint.

Each step draws a batch of random crops (from a randomly downscaled copy of a photo, so that the
JPEG block artefacts of the training photos shrink below a pixel; then crop and flip — one gather
for the whole batch, :class:`CropSampler`), gives each crop a random gain
level, and minimises ``λ_level · D + R`` with R in bits per pixel from the entropy models'
likelihoods and D = 255²·MSE (or ≈1300·(1 − MS-SSIM), CompressAI's scale for MS-SSIM). The
entropy bottleneck's quantiles get their own auxiliary loss and optimiser, as in CompressAI.

Runs are resumable in chunks (``--max-minutes``; ``--resume``): the checkpoint holds the config,
fp32 weights, both optimisers, the step and the RNG state. The learning-rate schedule (linear
warm-up, cosine decay) is a function of the global step, so chunked runs follow the same curve
as one long run; Ctrl-C or SIGTERM ends a chunk after the current step and saves it (a second
one while saving interrupts). ``--init-from WEIGHTS`` continues from weights alone (an exported
file, 4× smaller than a resumable checkpoint): the global step comes from the file's training
record, the optimisers start fresh and the learning rate ramps up again over ``--init-warmup`` steps.

Speed (GPU): ``--amp bf16`` runs g_a, h_a and g_s — all layers but the one that makes the latent
or the image — under bf16 autocast; the entropy models, the rate and the fixed-point h_s stay
float32 (TF32 is switched off, since h_s rounds its activations to a 2⁻¹⁰ grid that TF32's 10-bit
mantissa cannot hold). ``--channels-last`` and ``--compile`` are further options; on CUDA the
photos (and their scaled copies) live on the GPU as uint8, so a batch is cut there without a host
sync. ``stop_at`` (API) ends a chunk at a wall-clock deadline (the GPU job plans backwards from it).

Several processes: ``torchrun --nproc_per_node N -m aecodec train …`` trains with
DistributedDataParallel (NCCL on CUDA, gloo on CPU); ``--batch-size`` is per process. Each rank
draws its own crops; rank 0 alone logs, evaluates and saves. The quantiles are not used in the
forward pass, so DDP is told to ignore them; their aux-loss gradients are averaged by hand. At the
end every rank hashes its weights and the run fails if they differ.

``--eval-dir`` codes a few images (Kodak) with real bitstreams at three qualities — the model's
``compress`` → ``decompress_latents`` → ``synthesize`` path with fresh CDF tables, bpp from the
bytes of the .aec file, PSNR on 8-bit pixels — and keeps the latest result in the checkpoint.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import inspect
import math
import os
import signal
import sys
import threading
import time
import types
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .codec import format as fmt
from .models.checkpoint import fp32_state_dict, load_checkpoint, save_checkpoint, weights_hash
from .models.hyperprior import HyperpriorConfig, MeanScaleHyperprior

__all__ = ["TrainOptions", "TrainError", "train", "load_images", "evaluate", "export"]

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"}
# CompressAI's MS-SSIM lambdas (2.40 … 220) are 1220–1330× its MSE lambdas (0.0018 … 0.18), which
# are the ones the config stores; without this factor the distortion term vanishes next to the rate.
MS_SSIM_SCALE = 1300.0
MS_SSIM_MIN_CROP = 161  # 5 scales of an 11-pixel window: the smaller side must exceed 10·2⁴


class TrainError(ValueError):
    """Options or data that training cannot use; one-line message."""


@dataclass
class TrainOptions:
    data: list[Path]
    out: Path
    model_id: str = "mean-scale-vr-128"
    resume: Path | None = None
    steps: int = 100_000  # length of the LR schedule (global steps)
    max_minutes: float | None = None  # stop this chunk after this much wall time
    stop_at: float | None = None  # …or at this wall-clock time (time.time()), e.g. a job's deadline
    batch_size: int = 8  # per process
    crop: int = 256
    lr: float = 1e-4
    warmup: int = 500
    min_lr_ratio: float = 0.1
    clip: float = 1.0
    distortion: str = "mse"  # or "ms-ssim"
    N: int = 128
    M: int = 192
    lambdas: tuple[float, ...] | None = None  # new runs; None: HyperpriorConfig's 8 levels
    device: str = "auto"
    seed: int = 0
    save_every_minutes: float = 5.0
    log_every: int = 50
    init_from: Path | None = None  # weights to start from, with fresh optimisers
    init_warmup: int = 200  # LR ramp (steps) after --init-from
    amp: str = "none"  # or "bf16"
    channels_last: bool = False
    compile: bool = False
    data_on_device: bool | None = None  # None: on the GPU when training on CUDA
    eval_dir: Path | None = None
    eval_every: int = 0  # steps; 0: only at the start (continued runs) and end of the chunk
    eval_images: int = 24
    eval_qualities: tuple[float, ...] = (25.0, 50.0, 75.0)  # low / mid / high
    progress: bool | None = None  # tqdm bar; None: when stderr is a terminal
    threads: int | None = None  # torch CPU threads; None: torch's default


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
        raise TrainError(f"no training images found in {', '.join(map(str, dirs))}")
    return images


SCALES = (1.0, 0.84, 0.71, 0.59, 0.5)  # the pre-scaled copies a crop is cut from


def _resize(im: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """uint8 (3, H, W) → uint8 (3, h, w), bicubic with antialiasing (for the downscaled copies)."""
    x = F.interpolate(im[None].float(), size=(h, w), mode="bicubic", antialias=True, align_corners=False)
    return x[0].round_().clamp_(0, 255).to(torch.uint8)


class CropSampler:
    """Random training crops, a whole batch in one gather.

    Each photo is kept in a few pre-scaled copies, made once at start (factors :data:`SCALES`,
    those that still hold a crop; a photo smaller than a crop gets one copy scaled up to hold
    one), so that the JPEG block artefacts of the training photos can shrink below a pixel without
    a resize kernel per crop. All copies live as uint8 pixel rows in one flat buffer on the
    training device. A batch — a random photo, a random copy of it, a random position and a random
    horizontal flip per crop — is one index computation and one gather, drawn from torch's
    generator of that device (so, on CUDA, no host sync). ``sample`` returns (B, 3, crop, crop)
    floats in [0, 1], channels-last in memory.
    """

    def __init__(self, images: list[torch.Tensor], crop: int, device: torch.device, scales=SCALES):
        rows, bases, heights, widths, first, count = [], [], [], [], [], []
        size = 0
        for im in images:
            im = im.to(device)
            _, h, w = im.shape
            sizes = [(math.ceil(h * s), math.ceil(w * s)) for s in scales if min(h, w) * s >= crop]
            if not sizes:  # smaller than a crop: one copy, scaled up
                s = crop / min(h, w)
                sizes = [(max(crop, math.ceil(h * s)), max(crop, math.ceil(w * s)))]
            first.append(len(bases))
            count.append(len(sizes))
            for hh, ww in sizes:
                copy = im if (hh, ww) == (h, w) else _resize(im, hh, ww)
                rows.append(copy.permute(1, 2, 0).reshape(-1, 3))
                bases.append(size)
                heights.append(hh)
                widths.append(ww)
                size += hh * ww
        if not rows:
            raise TrainError("no training images to cut crops from")
        self.crop, self.device = crop, torch.device(device)
        self.pixels = torch.cat(rows)  # (P, 3) uint8
        as_tensor = lambda v: torch.tensor(v, dtype=torch.int64, device=device)
        self.base, self.height, self.width = as_tensor(bases), as_tensor(heights), as_tensor(widths)
        self.first, self.count = as_tensor(first), as_tensor(count)
        self.ramp = torch.arange(crop, device=device)

    @property
    def copies(self) -> int:
        return len(self.base)

    def sample(self, batch: int) -> torch.Tensor:
        dev, c = self.device, self.crop
        u = torch.rand(5, batch, device=dev)  # photo, copy, top, left, flip
        i = (u[0] * len(self.first)).long()
        k = self.first[i] + (u[1] * self.count[i]).long()
        h, w = self.height[k], self.width[k]
        top = (u[2] * (h - c + 1)).long()
        left = (u[3] * (w - c + 1)).long()
        cols = torch.where(u[4, :, None] < 0.5, c - 1 - self.ramp, self.ramp) + left[:, None]  # (B, c)
        rows = top[:, None] + self.ramp  # (B, c)
        index = self.base[k, None, None] + rows[:, :, None] * w[:, None, None] + cols[:, None, :]
        return self.pixels[index].permute(0, 3, 1, 2).float().div_(255)  # (B, 3, c, c), channels-last


@functools.lru_cache(maxsize=8)
def _lambdas(lambdas: tuple[float, ...], device: torch.device) -> torch.Tensor:
    """The levels' λ on the device, made once (a copy from the host each step would wait for the GPU)."""
    return torch.tensor(lambdas, device=device)


def rd_loss(model: MeanScaleHyperprior, x: torch.Tensor, level: torch.Tensor, distortion: str,
            forward=None) -> dict:
    """``forward`` (default: the model) may be a DDP or compiled wrapper of ``model``."""
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
    psnr = -10 * torch.log10(mse.detach().clamp_min(1e-10))
    return {"loss": loss, "bpp": bpp.detach().mean(), "psnr": psnr.mean()}


def lr_at(step: int, o: TrainOptions) -> float:
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
        _average_grads(aux_opt.param_groups[0]["params"], world)
    aux_opt.step()
    return r, aux


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def check_options(o: TrainOptions) -> None:
    """Refuse option combinations that cannot work, before any work is done."""
    if o.distortion not in ("mse", "ms-ssim"):
        raise TrainError(f"unknown distortion {o.distortion!r} (mse or ms-ssim)")
    if o.crop % 64 or o.crop < 64:
        raise TrainError(f"--crop must be a multiple of 64 (the model's stride), got {o.crop}")
    if o.distortion == "ms-ssim" and o.crop < MS_SSIM_MIN_CROP:
        raise TrainError(f"--distortion ms-ssim needs --crop of at least {MS_SSIM_MIN_CROP} "
                         f"(5 scales of an 11-pixel window), got {o.crop}; use 192 or 256")
    if o.amp not in ("none", "bf16"):
        raise TrainError(f"unknown --amp {o.amp!r} (none or bf16)")
    if o.resume and o.init_from:
        raise TrainError("--resume and --init-from exclude each other (resume continues the optimiser, "
                         "init-from starts a fresh one)")
    if o.batch_size < 1 or o.eval_images < 1 or o.eval_every < 0 or o.init_warmup < 1:
        raise TrainError("--batch-size, --eval-images and --init-warmup must be positive, --eval-every ≥ 0")
    if not 1 <= len(o.model_id) <= 64 or not fmt.MODEL_ID_RE.match(o.model_id):
        raise TrainError(f"--model-id must be kebab-case ([a-z0-9]+(-[a-z0-9]+)*, ≤ 64 characters), got {o.model_id!r}")
    if o.lambdas is not None:
        lam = list(o.lambdas)
        if not lam or any(not 0 < x < 100 for x in lam) or lam != sorted(set(lam)):
            raise TrainError(f"--lambdas must be positive and increasing, got {','.join(map(str, lam))}")
        if o.resume or o.init_from:
            raise TrainError("--lambdas sets a new run's levels; a continued run keeps its checkpoint's")
    if o.eval_dir is not None and not Path(o.eval_dir).is_dir():
        raise TrainError(f"--eval-dir {o.eval_dir}: not a directory")


# ----------------------------------------------------------------------------- mixed precision
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


# ----------------------------------------------------------------------------- several processes
@dataclass
class _Dist:
    rank: int = 0
    world: int = 1
    group: object = None  # gloo group for control messages (no GPU sync)
    owner: bool = False  # we created the process group, so we destroy it

    @property
    def main(self) -> bool:
        return self.rank == 0


def _init_distributed(device: torch.device) -> tuple[_Dist, torch.device]:
    """Join the process group that torchrun describes in the environment (WORLD_SIZE, RANK, …)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return _Dist(), device
    import torch.distributed as dist

    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    owner = not dist.is_initialized()
    if owner:
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    group = dist.new_group(backend="gloo") if dist.get_backend() != "gloo" else None
    return _Dist(rank=rank, world=world, group=group, owner=owner), device


def _seed_for(seed: int, rank: int, step: int) -> int:
    return (seed * 1_000_003 + rank * 7_919 + step) % (2**63)


def _average_grads(params: list[torch.Tensor], world: int) -> None:
    import torch.distributed as dist

    for p in params:
        if p.grad is not None:
            dist.all_reduce(p.grad)
            p.grad.div_(world)


def _rank0_says(d: _Dist, flag: bool) -> bool:
    """Rank 0's decision, on every rank (so that all ranks leave the loop at the same step)."""
    if d.world == 1:
        return flag
    import torch.distributed as dist

    t = torch.tensor([int(flag)])
    dist.broadcast(t, 0, group=d.group)
    return bool(t.item())


# ----------------------------------------------------------------------------- evaluation
@torch.no_grad()
def evaluate(model: MeanScaleHyperprior, images: list[torch.Tensor],
             qualities=(25.0, 50.0, 75.0), *, model_id: str = "mean-scale-vr-128",
             device: torch.device | None = None) -> list[dict]:
    """Code ``images`` (uint8 (3, H, W)) at each quality with real bitstreams; mean bpp and PSNR.

    A float32 copy of the model gets fresh CDF tables (``update()``); each image goes through the
    codec's own path (:func:`aecodec.codec.api.encode_with` / ``decode_with``: padding, tiles,
    container), so bpp counts every byte of the .aec file (header, section table and CRC included).
    """
    from .codec import api

    device = device or next(model.parameters()).device
    m = copy.deepcopy(model)
    set_bf16(m, False)
    m = m.to(device=device, memory_format=torch.contiguous_format).eval()
    m.update()
    results = []
    for q in qualities:
        q = round(float(q), 2)
        level = api.quality_to_level(q, m.config.num_levels)
        bpps, psnrs = [], []
        for im in images:
            _, h, w = im.shape
            rgb = im.permute(1, 2, 0).cpu().numpy()
            data = api.encode_with(m, model_id, "0" * 16, rgb, None, fmt.Layout.RGB, q)
            rec = np.asarray(api.decode_with(m, fmt.unpack(data)), dtype=np.float64)
            mse = float(((rec - rgb.astype(np.float64)) ** 2).mean())
            bpps.append(8 * len(data) / (h * w))
            psnrs.append(10 * math.log10(255**2 / max(mse, 1e-10)))
        results.append({"quality": q, "level": level, "bpp": float(np.mean(bpps)),
                        "psnr": float(np.mean(psnrs))})
    return results


# ----------------------------------------------------------------------------- the loop
def train(o: TrainOptions, log=print) -> Path:
    check_options(o)
    d, device = _init_distributed(pick_device(o.device))
    try:
        return _train(o, d, device, log if d.main else (lambda *_: None))
    finally:
        if d.owner:
            import torch.distributed as dist

            dist.destroy_process_group()


def _train(o: TrainOptions, d: _Dist, device: torch.device, log) -> Path:
    if o.threads:
        torch.set_num_threads(o.threads)
    torch.manual_seed(o.seed)
    record: dict = {"data": [str(p) for p in o.data], "distortion": o.distortion,
                    "batch_size": o.batch_size, "crop": o.crop, "lr": o.lr, "chunks": []}
    ckpt, fresh = None, False
    if o.resume:
        model, ckpt = load_checkpoint(o.resume)
        step = int(ckpt["step"])
        record = ckpt.get("training") or record
        o = dataclasses.replace(o, model_id=ckpt["model_id"])  # a continued run keeps its id
    elif o.init_from:
        model, src = load_checkpoint(o.init_from)
        record = dict(src.get("training") or record)
        step = int(src.get("step", record.get("steps", 0)))
        fresh = True
        o = dataclasses.replace(o, model_id=src["model_id"])
    else:
        cfg = HyperpriorConfig(N=o.N, M=o.M, **({"lambdas": tuple(o.lambdas)} if o.lambdas else {}))
        model, step = MeanScaleHyperprior(cfg), 0
    record.setdefault("chunks", [])
    if d.world > 1 or fresh:
        # Each rank (and each --init-from chunk) draws its own crops, levels and noise.
        torch.manual_seed(_seed_for(o.seed, d.rank, step))
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        # h_s fake-quantises to a 2⁻¹⁰ grid: keep its float32 convolutions true float32.
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    model.to(device).train()
    if o.channels_last:
        model.to(memory_format=torch.channels_last)
    set_bf16(model, o.amp == "bf16")

    opt, aux_opt = optimisers(model, o.lr)
    aux_params = aux_opt.param_groups[0]["params"]
    if ckpt is not None and "optimizer" in ckpt:
        opt.load_state_dict(ckpt["optimizer"])
        aux_opt.load_state_dict(ckpt["aux_optimizer"])
        if d.world == 1:
            torch.set_rng_state(ckpt["rng"]["torch"])
            if device.type == "cuda" and "cuda" in ckpt["rng"]:
                torch.cuda.set_rng_state(ckpt["rng"]["cuda"])

    forward = model
    if d.world > 1:
        import torch.distributed as dist
        from torch.nn.parallel import DistributedDataParallel as DDP

        # The quantiles are trained by the aux loss alone, outside the forward pass: DDP ignores
        # them (its reducer would wait for their gradients forever); we keep them equal by hand.
        for p in aux_params:
            dist.broadcast(p.data, 0)
        DDP._set_params_and_buffers_to_ignore_for_model(
            model, [n for n, _ in model.named_parameters() if n.endswith(".quantiles")])
        # The buffers (CDF tables, bounds) never change in training: sync them once, at init.
        no_sync = ({"forward_sync_buffers": False} if "forward_sync_buffers" in inspect.signature(DDP).parameters
                   else {"broadcast_buffers": False})  # renamed in torch 2.13
        forward = DDP(model, device_ids=[device.index] if device.type == "cuda" else None, **no_sync)
    if o.compile:
        forward = torch.compile(forward)

    log(f"loading images from {', '.join(map(str, o.data))} …")
    images = load_images(o.data)
    on_device = o.data_on_device if o.data_on_device is not None else device.type == "cuda"
    sampler = CropSampler(images, o.crop, device if on_device else torch.device("cpu"))
    del images
    eval_images = []
    if o.eval_dir is not None and d.main:
        eval_images = load_images([o.eval_dir])[:o.eval_images]
    log(f"{len(sampler.first)} images ({sampler.copies} scaled copies); device {device}; starting at step {step}"
        + (f"; {d.world} processes × batch {o.batch_size}" if d.world > 1 else "")
        + (f"; weights from {o.init_from}, fresh optimiser" if fresh else ""))
    L = model.config.num_levels
    start = last_save = time.monotonic()
    chunk_start_step = step

    def lr(s: int) -> float:  # the schedule, times a ramp after --init-from
        return lr_at(s, o) * (min(1.0, (s - chunk_start_step + 1) / o.init_warmup) if fresh else 1.0)

    bar = None
    if d.main and (o.progress if o.progress is not None else sys.stderr.isatty()):
        from tqdm import tqdm

        bar = tqdm(total=o.steps, initial=step, unit="step", dynamic_ncols=True, smoothing=0.05)

    def emit(line: str) -> None:  # a log line that does not tear the progress bar
        with bar.external_write_mode() if bar is not None else nullcontext():
            log(line)

    def run_eval() -> None:
        t = time.monotonic()
        res = evaluate(model, eval_images, o.eval_qualities, model_id=o.model_id, device=device)
        for r in res:
            emit(f"eval step {step}: level {r['level']:.2f} (q {r['quality']:g}) bpp {r['bpp']:.4f} "
                 f"psnr {r['psnr']:.2f} ({len(eval_images)} images, {time.monotonic() - t:.1f} s)")
        record["eval"] = {"step": step, "dir": str(o.eval_dir), "images": len(eval_images), "results": res}

    def save(path: Path) -> None:
        elapsed = (time.monotonic() - start) / 60
        rec = dict(record)
        loop_s = time.monotonic() - loop_start
        chunk = {"from_step": chunk_start_step, "to_step": step, "minutes": round(elapsed, 2),
                 "crops_per_s": round((step - loop_step) * o.batch_size * d.world / max(loop_s, 1e-9), 1),
                 "device": str(device),
                 "device_name": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
                 "processes": d.world, "batch_size": o.batch_size, "crop": o.crop, "lr": o.lr,
                 "distortion": o.distortion, "amp": o.amp, "data": [str(p) for p in o.data]}
        if fresh:
            chunk["init_from"] = str(o.init_from)
        rec["chunks"] = record["chunks"] + [chunk]
        rec["steps"] = step
        rng = {"torch": torch.get_rng_state()}
        if device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state()
        save_checkpoint(path, model, model_id=o.model_id, training=rec,
                        optimizer=opt.state_dict(), aux_optimizer=aux_opt.state_dict(), step=step, rng=rng)

    if eval_images and (fresh or o.resume):
        run_eval()  # the baseline this chunk starts from
    ema = None
    loop_start, loop_step = time.monotonic(), step

    def out_of_time() -> bool:
        late = o.max_minutes is not None and time.monotonic() - start > 60 * o.max_minutes
        return _rank0_says(d, late or stopped["signal"] is not None
                           or (o.stop_at is not None and time.time() >= o.stop_at))

    with _stop_on_signals() as stopped:
        while step < o.steps and not out_of_time():
            for g in opt.param_groups:
                g["lr"] = lr(step)
            x = sampler.sample(o.batch_size).to(device, non_blocking=True)  # (B, 3, crop, crop)
            x = x.contiguous(memory_format=torch.channels_last if o.channels_last else torch.contiguous_format)
            level = torch.randint(0, L, (o.batch_size,), device=device)
            r, aux = optimise(model, opt, aux_opt, x, level, distortion=o.distortion, clip=o.clip,
                              forward=forward, world=d.world)
            step += 1

            # Running means stay on the device (float64, the same arithmetic as Python floats): no
            # GPU sync except when a line or the bar shows them.
            vals = torch.stack([r["loss"].detach(), r["bpp"], r["psnr"]]).double()
            ema = vals if ema is None else 0.98 * ema + 0.02 * vals
            if bar is not None:
                bar.update(1)
                if step % 10 == 0:
                    e = ema.tolist()
                    bar.set_postfix_str(f"loss {e[0]:.3f} bpp {e[1]:.3f} psnr {e[2]:.2f}", refresh=False)
            if step % o.log_every == 0:
                e = ema.tolist()
                rate = (step - chunk_start_step) / (time.monotonic() - start)
                emit(f"step {step} loss {e[0]:.3f} bpp {e[1]:.3f} psnr {e[2]:.2f} "
                     f"lr {lr(step):.2e} aux {aux.item():.1f} {rate:.2f} it/s "
                     f"{rate * o.batch_size * d.world:.1f} crops/s")
            if eval_images and o.eval_every and step % o.eval_every == 0:
                run_eval()
            if d.main and time.monotonic() - last_save > 60 * o.save_every_minutes:
                save(o.out)
                last_save = time.monotonic()
    if bar is not None:
        bar.close()
    if stopped["signal"] is not None:
        log(f"stopped by signal {stopped['signal']} at step {step}")
    elif eval_images and record.get("eval", {}).get("step") != step:
        run_eval()
    if d.world > 1:
        _check_ranks_agree(model, d, log)
    if d.main:
        save(o.out)
        log(f"saved {o.out} at step {step}")
    if d.world > 1:
        import torch.distributed as dist

        dist.barrier(group=d.group)
    return o.out


@contextlib.contextmanager
def _stop_on_signals():
    """SIGINT (Ctrl-C) and SIGTERM end the chunk after the current step, which is then saved
    (yields ``{"signal": None | number}``). Only the main thread can take signals; elsewhere this
    changes nothing."""
    stopped = {"signal": None}
    if threading.current_thread() is not threading.main_thread():
        yield stopped
        return

    def on_signal(signum, _frame):
        stopped["signal"] = signum

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stopped
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


def _check_ranks_agree(model: MeanScaleHyperprior, d: _Dist, log) -> None:
    import torch.distributed as dist

    digest = weights_hash(fp32_state_dict(model))
    hashes = [None] * d.world
    dist.all_gather_object(hashes, digest, group=d.group)
    if len(set(hashes)) != 1:
        raise RuntimeError(f"DDP ranks diverged: weights hashes {hashes}")
    log(f"ddp: all {d.world} processes hold weights {digest}")


def export(resumable: Path, out: Path, log=print, storage: str = "mixed") -> str:
    """Strip training state, compute the CDF tables once, keep the training record.

    ``storage="mixed"`` (the default) halves the file: float16 convolutions, float32 GDN and
    entropy models (models/checkpoint.py)."""
    model, ckpt = load_checkpoint(resumable)
    model.update()
    digest = save_checkpoint(out, model, model_id=ckpt["model_id"], training=ckpt.get("training"),
                             storage=storage)
    log(f"exported {out} ({storage} storage, weights {digest})")
    return digest

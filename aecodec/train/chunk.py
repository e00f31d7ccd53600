"""The state of one chunk of training (:class:`Chunk`) and how it is built (:func:`set_up`): a new,
resumed (``--resume``) or continued (``--init-from``) model on its device, its optimisers, the crop
sampler over the training photos and the evaluation images."""

from __future__ import annotations

import dataclasses
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Callable

import torch

from ..errors import CheckpointError, one_line
from ..models.checkpoint import load_checkpoint
from ..models.hyperprior import HyperpriorConfig, MeanScaleHyperprior
from .data import CropSampler, load_images, read_images
from .distributed import Dist, seed_for, wrap_ddp
from .options import TrainOptions
from .step import lr_at, optimisers, set_bf16

__all__ = ["Chunk", "set_up", "check_resumable"]


@dataclass
class Chunk:
    """Everything one chunk of training holds; the loop's functions read and advance it."""

    o: TrainOptions  # a continued run's model_id is its checkpoint's
    d: Dist
    device: torch.device
    log: Callable[[str], object]
    model: MeanScaleHyperprior
    forward: Callable  # the model, or its DDP / compiled wrapper
    opt: torch.optim.Optimizer
    aux_opt: torch.optim.Optimizer
    sampler: CropSampler
    eval_images: list[torch.Tensor]
    record: dict  # the training record: data, chunks so far, latest eval
    step: int  # global step
    fresh: bool  # --init-from: fresh optimisers, LR ramp
    chunk_start_step: int  # the global step this chunk started at
    start: float  # time.monotonic() when the chunk started (photos loaded)
    last_save: float
    loop_start: float = 0.0  # …when the loop started (after the baseline eval), for crops/s
    loop_step: int = 0
    bar: object = None  # tqdm bar or None
    ema: torch.Tensor | None = None  # running loss, bpp, psnr (float64, on the device)

    def lr(self, s: int) -> float:
        """The schedule (:func:`lr_at`), times a ramp over --init-warmup steps after --init-from."""
        ramp = min(1.0, (s - self.chunk_start_step + 1) / self.o.init_warmup) if self.fresh else 1.0
        return lr_at(s, self.o) * ramp

    def log_line(self, line: str) -> None:
        """A log line that does not tear the progress bar."""
        with self.bar.external_write_mode() if self.bar is not None else nullcontext():
            self.log(line)


def set_up(o: TrainOptions, d: Dist, device: torch.device, log) -> Chunk:
    """Model, optimisers, crops and evaluation images of a new, resumed or --init-from chunk."""
    if o.threads:
        torch.set_num_threads(o.threads)
    torch.manual_seed(o.seed)
    model, o, step, record, ckpt = _start_from(o)
    fresh = bool(o.init_from)
    if d.world > 1 or fresh:
        # Each rank (and each --init-from chunk) draws its own crops, levels and noise.
        torch.manual_seed(seed_for(o.seed, d.rank, step))
    _prepare(model, o, device)
    opt, aux_opt = optimisers(model, o.lr)
    if ckpt is not None and "optimizer" in ckpt:
        _restore(o.resume, ckpt, opt, aux_opt, d, device)
    forward = wrap_ddp(model, device) if d.world > 1 else model
    if o.compile:
        forward = torch.compile(forward)

    log(f"loading images from {', '.join(map(str, o.data))} …")
    sampler, unreadable = _sampler(o, device, log)
    eval_images = load_images([o.eval_dir], log=log)[:o.eval_images] if o.eval_dir is not None and d.main else []
    log(f"{sampler.photos} images ({sampler.copies} scaled copies"
        + (f"; {unreadable} unreadable skipped" if unreadable else "")
        + f"); device {device}; starting at step {step}"
        + (f"; {d.world} processes × batch {o.batch_size}" if d.world > 1 else "")
        + (f"; weights from {o.init_from}, fresh optimiser" if fresh else ""))
    now = time.monotonic()
    chunk = Chunk(o=o, d=d, device=device, log=log, model=model, forward=forward, opt=opt, aux_opt=aux_opt,
                  sampler=sampler, eval_images=eval_images, record=record, step=step, fresh=fresh,
                  chunk_start_step=step, start=now, last_save=now, loop_start=now, loop_step=step)
    if d.main and (o.progress if o.progress is not None else sys.stderr.isatty()):
        from tqdm import tqdm

        chunk.bar = tqdm(total=o.steps, initial=step, unit="step", dynamic_ncols=True, smoothing=0.05)
    return chunk


def _start_from(o: TrainOptions) -> tuple[MeanScaleHyperprior, TrainOptions, int, dict, dict | None]:
    """The model, the options (a continued run keeps its model id), the global step, the training
    record and the resumable checkpoint (None unless --resume)."""
    record: dict = {"data": [str(p) for p in o.data], "distortion": o.distortion,
                    "batch_size": o.batch_size, "crop": o.crop, "lr": o.lr, "chunks": []}
    ckpt = None
    if o.resume:
        model, ckpt = load_checkpoint(o.resume)
        check_resumable(o.resume, ckpt)
        step = ckpt["step"]
        record = ckpt.get("training") or record
        o = dataclasses.replace(o, model_id=ckpt["model_id"])
    elif o.init_from:
        model, src = load_checkpoint(o.init_from)
        record = dict(src.get("training") or record)
        step = src.get("step", record.get("steps", 0))
        if not _is_count(step) or not _record_fits(record):
            raise CheckpointError(f"{o.init_from}: its training record is damaged (step count, chunks or eval)")
        o = dataclasses.replace(o, model_id=src["model_id"])
    else:
        cfg = HyperpriorConfig(N=o.N, M=o.M, aux_transform=o.aux_transform,
                               **({"lambdas": tuple(o.lambdas)} if o.lambdas else {}))
        model, step = MeanScaleHyperprior(cfg), 0
    if o.aux_transform and not model.config.aux_transform:
        model = _with_aux_transform(model)
    record.setdefault("chunks", [])
    return model, o, step, record, ckpt


def check_resumable(path, ckpt: dict) -> None:
    """A checkpoint that ``--resume`` can continue: the training state :func:`~.loop.save` writes
    (step, both optimisers, the random state) beside the weights. Exported weights have none:
    ``--init-from`` starts from them. CheckpointError ``<path>: <what>`` otherwise."""
    state = ("step", "optimizer", "aux_optimizer", "rng")
    if not any(k in ckpt for k in state):
        raise CheckpointError(f"{path}: exported weights (no training state) cannot be resumed; "
                              f"start a run from them with --init-from {path}")
    if (not _is_count(ckpt.get("step")) or not all(isinstance(ckpt.get(k), dict) for k in state[1:])
            or not isinstance(ckpt["rng"].get("torch"), torch.Tensor) or not _record_fits(ckpt.get("training", {}))):
        raise CheckpointError(f"{path}: its training state is damaged (step, optimisers, random state or "
                              "record); resume from an earlier checkpoint, or start from its weights with --init-from")


def _is_count(step) -> bool:
    return isinstance(step, int) and not isinstance(step, bool) and step >= 0


def _record_fits(record: dict) -> bool:
    """Whether the parts of a training record that a continued run reads have their types."""
    return (isinstance(record.get("chunks", []), list) and isinstance(record.get("eval", {}), dict)
            and _is_count(record.get("steps", 0)))


def _with_aux_transform(model: MeanScaleHyperprior) -> MeanScaleHyperprior:
    """The same model plus the zero-initialised AuxT shortcut: it computes the same function."""
    grown = MeanScaleHyperprior(dataclasses.replace(model.config, aux_transform=True))
    missing, unexpected = grown.load_state_dict(model.state_dict(), strict=False)
    assert not unexpected and all(k.startswith(("aux_a.", "aux_s.")) for k in missing), (missing, unexpected)
    return grown


def _prepare(model: MeanScaleHyperprior, o: TrainOptions, device: torch.device) -> None:
    """The model on the device in training mode, in the memory format and precision asked for."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        # h_s fake-quantises to a 2⁻¹⁰ grid: keep its float32 convolutions true float32.
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    model.to(device).train()
    if o.channels_last:
        model.to(memory_format=torch.channels_last)
    set_bf16(model, o.amp == "bf16")


def _restore(path, ckpt: dict, opt, aux_opt, d: Dist, device: torch.device) -> None:
    """A resumed chunk continues both optimisers and (one process) the random streams; state
    that does not fit them (a damaged or foreign checkpoint) is a CheckpointError naming ``path``."""
    try:
        for optim, key in ((opt, "optimizer"), (aux_opt, "aux_optimizer")):
            optim.load_state_dict(ckpt[key])
            for group in optim.param_groups:
                for p in group["params"]:
                    for v in optim.state.get(p, {}).values():
                        if torch.is_tensor(v) and v.dim() and (v.shape != p.shape or not bool(torch.isfinite(v).all())):
                            raise ValueError("an optimiser state tensor does not fit its parameter")
        if d.world == 1:
            torch.set_rng_state(ckpt["rng"]["torch"])
            if device.type == "cuda" and "cuda" in ckpt["rng"]:
                torch.cuda.set_rng_state(ckpt["rng"]["cuda"])
    except (KeyError, TypeError, ValueError, RuntimeError, IndexError) as exc:
        raise CheckpointError(f"{path}: its training state does not fit the model ({one_line(exc)})") from None


def _sampler(o: TrainOptions, device: torch.device, log) -> tuple[CropSampler, int]:
    """The crop sampler over the training photos (on the GPU when training on CUDA, unless told
    otherwise) and how many photos were unreadable."""
    images, unreadable = read_images(o.data, log=log)
    on_device = o.data_on_device if o.data_on_device is not None else device.type == "cuda"
    return CropSampler(images, o.crop, device if on_device else torch.device("cpu")), len(unreadable)

"""What a training run is told (:class:`TrainOptions`) and the combinations it refuses up front."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..codec import format as fmt
from ..errors import TrainError
from ..metrics import MS_SSIM_MIN_SIDE
from ..models.zoo import DEFAULT_MODEL_ID

__all__ = ["TrainError", "TrainOptions", "check_options"]


@dataclass
class TrainOptions:
    data: list[Path]
    out: Path
    model_id: str = DEFAULT_MODEL_ID
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
    level_bias: float = 0.0  # gain levels drawn ∝ 1 + bias·level/(L−1): 0 uniform, > 0 favours high quality
    aux_transform: bool = False  # add the zero-initialised AuxT shortcut (new runs and --init-from)


def check_options(o: TrainOptions) -> None:
    """Refuse option combinations that cannot work, before any work is done."""
    if o.distortion not in ("mse", "ms-ssim"):
        raise TrainError(f"unknown distortion {o.distortion!r} (mse or ms-ssim)")
    if o.crop % 64 or o.crop < 64:
        raise TrainError(f"--crop must be a multiple of 64 (the model's stride), got {o.crop}")
    if o.distortion == "ms-ssim" and o.crop < MS_SSIM_MIN_SIDE:
        raise TrainError(f"--distortion ms-ssim needs --crop of at least {MS_SSIM_MIN_SIDE} "
                         f"(5 scales of an 11-pixel window), got {o.crop}; use 192 or 256")
    if o.amp not in ("none", "bf16"):
        raise TrainError(f"unknown --amp {o.amp!r} (none or bf16)")
    if o.resume and o.init_from:
        raise TrainError("--resume and --init-from exclude each other (resume continues the optimiser, "
                         "init-from starts a fresh one)")
    if o.level_bias <= -1:
        raise TrainError(f"--level-bias must be greater than -1 (every level keeps a chance), got {o.level_bias:g}")
    if o.aux_transform and o.resume:
        raise TrainError("--aux-transform adds the shortcut to a new run or an --init-from run; "
                         "a resumed run keeps its checkpoint's architecture")
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

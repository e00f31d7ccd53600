"""``train`` and ``export``: a checkpoint from folders of photos (:mod:`aecodec.train`), and the
shippable weights file made from it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import TrainError
from ..models.zoo import DEFAULT_MODEL_ID
from .options import Force
from .output import check_outputs, fail

__all__ = ["train", "export"]


def train(
    data: Annotated[list[Path], typer.Argument(help="Folders of training photos (searched recursively).")],
    out: Annotated[Path, typer.Option("-o", "--out", help="Resumable checkpoint to write.")],
    resume: Annotated[Optional[Path], typer.Option(help="Resumable checkpoint to continue from.")] = None,
    steps: Annotated[int, typer.Option(help="Length of the LR schedule in global steps.")] = 100_000,
    max_minutes: Annotated[Optional[float], typer.Option(help="Stop this chunk after so many minutes.")] = None,
    batch_size: Annotated[int, typer.Option(help="Crops per step (per process under torchrun).")] = 8,
    crop: Annotated[int, typer.Option(help="Crop side in pixels (a multiple of 64; at least 192 for ms-ssim).")] = 256,
    lr: Annotated[float, typer.Option(help="Peak learning rate.")] = 1e-4,
    warmup: Annotated[int, typer.Option(help="Linear warm-up steps.")] = 500,
    distortion: Annotated[str, typer.Option(help="mse or ms-ssim.")] = "mse",
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    init_from: Annotated[Optional[Path], typer.Option(help="Start from the weights of this checkpoint (exported or resumable) with fresh optimisers; the global step comes from its training record.")] = None,
    init_warmup: Annotated[int, typer.Option(help="Steps of LR ramp after --init-from.")] = 200,
    amp: Annotated[str, typer.Option(help="none, or bf16: g_a/h_a/g_s under bf16 autocast (entropy models and h_s stay float32).")] = "none",
    channels_last: Annotated[bool, typer.Option("--channels-last", help="Channels-last memory format (GPU).")] = False,
    compile: Annotated[bool, typer.Option("--compile", help="torch.compile the model's forward pass.")] = False,
    data_on_device: Annotated[Optional[bool], typer.Option("--data-on-device/--data-on-host", help="Keep the photos (uint8) on the training device. Default: on the GPU when training on CUDA.")] = None,
    eval_dir: Annotated[Optional[Path], typer.Option(help="Evaluate on these images (e.g. Kodak) with real bitstreams: at the start of a continued chunk, every --eval-every steps and at the end.")] = None,
    eval_every: Annotated[int, typer.Option(help="Steps between evaluations (0: start and end of the chunk only).")] = 0,
    eval_images: Annotated[int, typer.Option(help="How many images of --eval-dir to code.")] = 24,
    log_every: Annotated[int, typer.Option(help="Steps between log lines.")] = 50,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar (the log lines stay).")] = False,
    threads: Annotated[Optional[int], typer.Option(min=1, help="CPU threads for torch (default: torch's choice). On a busy machine 1 can be several times faster than 2.")] = None,
    lambdas: Annotated[Optional[str], typer.Option(metavar="L1,L2,…", help="A new run's rate–distortion trade-offs, low rate to high, comma-separated (one value: a single-rate model). Default: 8 levels 0.0018 … 0.18.")] = None,
    model_id: Annotated[str, typer.Option(help="A new run's model id (kebab-case); files name it. Continued runs keep theirs.")] = DEFAULT_MODEL_ID,
    level_bias: Annotated[float, typer.Option(help="How often each gain level is trained: ∝ 1 + bias·level/(L−1); 0 uniform, 2 trains the highest quality 3× as often as the lowest.")] = 0.0,
    aux_transform: Annotated[bool, typer.Option("--aux-transform", help="Add AuxT, a zero-initialised linear Haar shortcut beside g_a and g_s (a new run, or --init-from weights without one).")] = False,
    n_channels: Annotated[int, typer.Option("--N", hidden=True, help="Channels of g_a/g_s (new runs).")] = 128,
    m_channels: Annotated[int, typer.Option("--M", hidden=True, help="Latent channels (new runs).")] = 192,
    force: Annotated[bool, typer.Option("--force", "-f", help="Write -o over an existing file (not needed when it is the --resume checkpoint itself, which a run continues).")] = False,
) -> None:
    """Train (or continue training) a variable-rate model on folders of photos.

    Ctrl-C (or SIGTERM) stops after the current step and saves the checkpoint; --resume continues it.

    Several processes (DistributedDataParallel): torchrun --nproc_per_node N -m aecodec train …
    """
    from ..models.runtime import require_torch

    require_torch("aecodec train")
    from ..codec.files import same_file
    from ..train import TrainOptions
    from ..train import train as train_chunk

    for folder in data:
        if not folder.is_dir():
            fail(f"{folder}: {'not a' if folder.exists() else 'no such'} directory", 1)
    own = resume is not None and same_file(out, resume)  # a run continues its own checkpoint
    check_outputs([out], [init_from] if init_from is not None else [], force or own)
    lams = None
    if lambdas is not None:
        try:
            lams = tuple(float(v) for v in lambdas.split(","))
        except ValueError:
            raise TrainError(f"--lambdas must be comma-separated numbers, got {lambdas!r}") from None
    try:
        train_chunk(TrainOptions(data=data, out=out, resume=resume, lambdas=lams, model_id=model_id, steps=steps,
                                 max_minutes=max_minutes, batch_size=batch_size, crop=crop, lr=lr, warmup=warmup,
                                 distortion=distortion, device=device, seed=seed, init_from=init_from,
                                 init_warmup=init_warmup, amp=amp, channels_last=channels_last, compile=compile,
                                 data_on_device=data_on_device, eval_dir=eval_dir, eval_every=eval_every,
                                 eval_images=eval_images, log_every=log_every, progress=False if quiet else None,
                                 threads=threads, level_bias=level_bias, aux_transform=aux_transform,
                                 N=n_channels, M=m_channels))
    except FileNotFoundError as exc:
        fail(f"{exc.filename}: no such file" if exc.filename else str(exc), 1)


def export(
    checkpoint: Annotated[Path, typer.Argument(help="Resumable training checkpoint.")],
    out: Annotated[Path, typer.Option("-o", "--out", help="Shippable weights file to write (never the checkpoint itself).")],
    storage: Annotated[str, typer.Option(
        "--storage", help="mixed: float16 convolutions, float32 GDN and entropy models (half the size); "
                          "or fp32.")] = "mixed",
    force: Force = False,
) -> None:
    """Strip training state and compute the entropy coder's CDF tables once; write the runtime
    bundle (the ONNX transforms and the entropy path's arrays) beside the weights."""
    from ..models.runtime import require_torch

    require_torch("aecodec export")
    from ..models.checkpoint import STORAGES
    from ..train import export as export_weights

    if storage not in STORAGES:
        fail(f"--storage must be one of {', '.join(STORAGES)}, not {storage!r}")
    check_outputs([out], [checkpoint], force)
    try:
        export_weights(checkpoint, out, storage=storage)
    except FileNotFoundError:
        fail(f"{checkpoint}: no such file")
    except OSError as exc:
        fail(str(exc))

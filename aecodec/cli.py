"""The ``aecodec`` command line: thin Typer commands over the library."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="aecodec — a learned image codec (encode, decode, info, train).")


@app.command()
def train(
    data: Annotated[list[Path], typer.Argument(help="Folders of training photos (searched recursively).")],
    out: Annotated[Path, typer.Option("-o", "--out", help="Resumable checkpoint to write.")],
    resume: Annotated[Optional[Path], typer.Option(help="Resumable checkpoint to continue from.")] = None,
    steps: Annotated[int, typer.Option(help="Length of the LR schedule in global steps.")] = 100_000,
    max_minutes: Annotated[Optional[float], typer.Option(help="Stop this chunk after so many minutes.")] = None,
    batch_size: Annotated[int, typer.Option(help="Crops per step.")] = 8,
    crop: Annotated[int, typer.Option(help="Crop side in pixels.")] = 256,
    lr: Annotated[float, typer.Option(help="Peak learning rate.")] = 1e-4,
    warmup: Annotated[int, typer.Option(help="Linear warm-up steps.")] = 500,
    distortion: Annotated[str, typer.Option(help="mse or ms-ssim.")] = "mse",
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
) -> None:
    """Train (or continue training) a variable-rate model on folders of photos."""
    from .train import TrainOptions, train as run

    run(TrainOptions(data=data, out=out, resume=resume, steps=steps, max_minutes=max_minutes,
                     batch_size=batch_size, crop=crop, lr=lr, warmup=warmup, distortion=distortion,
                     device=device, seed=seed))


@app.command()
def export(
    checkpoint: Annotated[Path, typer.Argument(help="Resumable training checkpoint.")],
    out: Annotated[Path, typer.Option("-o", "--out", help="Shippable weights file to write.")],
) -> None:
    """Strip training state and compute the entropy coder's CDF tables once."""
    from .train import export as run

    run(checkpoint, out)

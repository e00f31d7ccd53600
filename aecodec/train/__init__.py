"""Training: one readable loop that turns photos into a variable-rate checkpoint.

Each step trains the model on random crops at a random gain level for λ·D + R; runs are resumable
in chunks, so a long schedule survives short sessions, and evaluation codes real bitstreams through
the codec's own path, so what training reports is what files cost. The modules, in the order a step
uses them: :mod:`.options`, :mod:`.data` (photos → crops), :mod:`.step` (loss, optimisers, schedule,
bf16), :mod:`.distributed` (devices, torchrun), :mod:`.chunk` (one chunk's state and set-up),
:mod:`.evaluate` (real bitstreams; export) and :mod:`.loop` (the loop itself). The design — crops,
loss, chunks and the LR schedule, bf16, DDP, evaluation — is in docs/training.md.
"""

from __future__ import annotations

from .data import SCALES, CropSampler, load_images, read_images
from .evaluate import evaluate, export
from .loop import train
from .options import TrainError, TrainOptions, check_options
from .step import MS_SSIM_SCALE, lr_at, optimise, optimisers, rd_loss, set_bf16

__all__ = ["TrainOptions", "TrainError", "train", "load_images", "evaluate", "export", "CropSampler", "optimise",
           "optimisers", "lr_at", "rd_loss", "set_bf16", "check_options", "read_images", "SCALES",
           "MS_SSIM_SCALE"]

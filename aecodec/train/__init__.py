"""Training: one readable loop that turns photos into a variable-rate checkpoint.

Each step draws a batch of random crops (from a randomly downscaled copy of a photo, so that the
JPEG block artefacts of the training photos shrink below a pixel; then crop and flip — one gather
for the whole batch, :class:`CropSampler`), gives each crop a random gain level, and minimises
``λ_level · D + R`` with R in bits per pixel from the entropy models' likelihoods and
D = 255²·MSE (or ≈1300·(1 − MS-SSIM), CompressAI's scale for MS-SSIM). The entropy bottleneck's
quantiles get their own auxiliary loss and optimiser, as in CompressAI.

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

``--eval-dir`` codes a few images (Kodak) with real bitstreams at three qualities through the
codec's own path (:func:`aecodec.codec.api.encode_with` / ``decode_with``) with fresh CDF tables,
bpp from the bytes of the .aec file, PSNR on 8-bit pixels — and keeps the latest result in the
checkpoint.

Photos are read by the codec's loader (:func:`aecodec.codec.images.load_rgb`: EXIF orientation,
16-bit, palettes); an unreadable one is skipped with a warning.

The modules, in the order a step uses them: :mod:`.options` (what a run is told),
:mod:`.data` (photos → crops), :mod:`.step` (loss, optimisers, schedule, bf16),
:mod:`.distributed` (device and processes), :mod:`.run` (one chunk's state and its set-up),
:mod:`.evaluate` (real bitstreams; export) and :mod:`.loop` (the loop itself).
"""

from __future__ import annotations

from .data import SCALES, CropSampler, load_images, read_images
from .distributed import pick_device
from .evaluate import evaluate, export
from .loop import train
from .options import TrainError, TrainOptions, check_options
from .step import MS_SSIM_SCALE, lr_at, optimise, optimisers, rd_loss, set_bf16

__all__ = ["TrainOptions", "TrainError", "train", "load_images", "evaluate", "export", "CropSampler", "optimise",
           "optimisers", "lr_at", "rd_loss", "set_bf16", "check_options", "pick_device", "read_images", "SCALES",
           "MS_SSIM_SCALE"]

"""What a checkpoint is worth and how it ships: :func:`evaluate` codes images with real bitstreams
through the codec's own path; :func:`export` strips the training state off a resumable checkpoint."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch

from .. import metrics
from ..codec import api
from ..codec import format as fmt
from ..codec.files import same_file
from ..codec.pipeline import quality_to_level
from ..errors import TrainError
from ..models import runtime
from ..models.checkpoint import load_checkpoint, save_checkpoint
from ..models.hyperprior import MeanScaleHyperprior
from ..models.zoo import DEFAULT_MODEL_ID
from .step import set_bf16

__all__ = ["evaluate", "export"]


@torch.no_grad()
def evaluate(model: MeanScaleHyperprior, images: list[torch.Tensor],
             qualities=(25.0, 50.0, 75.0), *, model_id: str = DEFAULT_MODEL_ID,
             device: torch.device | None = None) -> list[dict]:
    """Code ``images`` (uint8 (3, H, W)) at each quality with real bitstreams; mean bpp and PSNR.

    A float32 copy of the model gets fresh CDF tables (``update()``); each image goes through the
    codec's own path (:func:`aecodec.codec.api.encode_with` / ``decode_with``: padding, tiles,
    container), so bpp counts every byte of the .aec file (header, section table and CRC included),
    and PSNR (:func:`aecodec.metrics.psnr`) is on the decoded 8-bit pixels.
    """
    device = device or next(model.parameters()).device
    m = copy.deepcopy(model)
    set_bf16(m, False)
    m = m.to(device=device, memory_format=torch.contiguous_format).eval()
    m.update()
    net = runtime.from_torch(m, model_id, "0" * 16)  # the codec over this model's own transforms
    results = []
    for q in qualities:
        q = round(float(q), 2)
        level = quality_to_level(q, m.config.num_levels)
        bpps, psnrs = [], []
        for im in images:
            _, h, w = im.shape
            rgb = im.permute(1, 2, 0).cpu().numpy()
            data = api.encode_with(net, model_id, "0" * 16, rgb, None, fmt.Layout.RGB, q)
            rec = api.decode_with(net, fmt.unpack(data))
            bpps.append(8 * len(data) / (h * w))
            psnrs.append(metrics.psnr(rgb, rec))
        results.append({"quality": q, "level": level, "bpp": float(np.mean(bpps)),
                        "psnr": float(np.mean(psnrs))})
    return results


def export(resumable: Path, out: Path, log=print, storage: str = "mixed", bundle: bool = True) -> str:
    """Strip training state, compute the CDF tables once, keep the training record; write the
    runtime bundle beside ``out`` (models/bundle.py: ``<stem>.runtime.npz``), from the weights
    as stored (``bundle=False``: not — the GPU job brings back weights only, and its machine has
    no onnx).

    ``storage="mixed"`` (the default) halves the file: float16 convolutions, float32 GDN and
    entropy models (models/checkpoint.py). The export never replaces its own input (its training
    state would be gone): TrainError, before any work."""
    if same_file(resumable, out):
        raise TrainError(f"{out}: is the checkpoint being exported ({resumable}); exporting over it would "
                         "lose its training state — write the export to another file")
    model, ckpt = load_checkpoint(resumable)
    model.update()
    digest = save_checkpoint(out, model, model_id=ckpt["model_id"], training=ckpt.get("training"),
                             storage=storage)
    if not bundle:
        log(f"exported {out} ({storage} storage, weights {digest})")
        return digest
    from ..models.bundle import bundle_path
    from ..models.onnx_export import export_bundle

    stored, _ = load_checkpoint(out, need_tables=True)  # the tensors as stored (float16 convolutions)
    path = export_bundle(stored, bundle_path(out), model_id=ckpt["model_id"], weights_hash=digest)
    log(f"exported {out} ({storage} storage, weights {digest}) and its runtime bundle {path}")
    return digest


"""Checkpoints: architecture config + fp32 weights (+ CDF tables) + optional training state.

A checkpoint is a ``torch.save``d dict::

    {"format": "aecodec-checkpoint", "version": 1,
     "model_id": "mean-scale-vr-128",        # stable kebab-case id (models/zoo.py)
     "arch": "mean-scale-hyperprior-vr",      # which class rebuilds it (registry.py)
     "config": {...},                         # HyperpriorConfig.to_dict()
     "state_dict": {...},                     # includes the entropy coder's CDF tables
     "storage": "fp32" | "mixed",
     "weights_hash": "0123abcd…",             # weights_hash(state_dict), checked on load
     "training": {...},                       # how it was made (record), free-form JSON
     # resumable checkpoints only:
     "optimizer": ..., "aux_optimizer": ..., "scheduler_step": int, "step": int, "rng": {...}}

Training checkpoints are float32. A blanket fp16 cast destroys GDN's reparameterised offsets
(≈2⁻³⁶) and turns the model into NaN, so shipped weights use *mixed*
storage: the convolutions of g_a, h_a, h_s and g_s (≈97 % of the bytes) in float16, everything
else — GDN's β and γ, the entropy models and their CDF tables, the gain vectors — in float32.
A conv tensor goes to float16 only if it is finite and far from float16's overflow (values
below its normal range keep an absolute error ≤ 2⁻²⁵, harmless in a convolution). Loading casts
back to float32; the stored values are what the weights hash covers, so encoder and decoder
compute with the same weights, and h_s's fixed-point grid (models/fixed_point.py) is derived from them
identically everywhere. The cost in rate and quality is negligible (docs/usage.md, ``export``).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import torch

from ..errors import CheckpointError
from .fixed_point import check_bounds
from .hyperprior import MeanScaleHyperprior
from .registry import architecture

__all__ = ["weights_hash", "save_checkpoint", "load_checkpoint", "read_checkpoint", "build_model", "CheckpointError", "STORAGES"]

HASH_HEX_CHARS = 16  # 64 bits: the header stores 8 bytes
STORAGES = ("fp32", "mixed")
_HALF_MODULES = ("g_a.", "h_a.", "h_s.", "g_s.")  # conv stacks; their GDN parameters stay float32


def weights_hash(state_dict: dict) -> str:
    """Hex digest (64 bits) over every tensor's name, dtype, shape and bytes, in name order."""
    h = hashlib.sha256()
    for name in sorted(state_dict):
        t = state_dict[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        if t.numel():
            h.update(t.reshape(-1).view(torch.uint8).numpy())  # the buffer itself: no copy
    return h.hexdigest()[:HASH_HEX_CHARS]


def build_model(arch: str, config: dict, *, init: bool = True) -> MeanScaleHyperprior:
    """The model of a checkpoint's architecture and config. The config's fixed-point grid must keep
    every partial sum of the exact h_s below 2**53 (:func:`~aecodec.models.fixed_point.check_bounds`),
    or its entropy parameters would not be the same on every machine: CheckpointError.
    ``init=False``: convolution weights uninitialised, to be loaded next."""
    cls, cfg_cls = architecture(arch)
    try:
        cfg = cfg_cls.from_dict(config)
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"invalid model config ({exc})") from None
    bits = check_bounds(cfg.N, cfg.M, cfg.fixed_point)
    if bits >= 53:
        raise CheckpointError(f"fixed-point config {cfg.fixed_point} lets the exact h_s reach 2**{bits}: "
                              "not exact in float64 (must stay below 2**53)")
    return cls(cfg, init=init)


def fp32_state_dict(model: torch.nn.Module) -> dict:
    return {k: (v.detach().float() if v.is_floating_point() else v.detach()).cpu().clone()
            for k, v in model.state_dict().items()}


def _fits_half(t: torch.Tensor) -> bool:
    """Finite and far from float16's overflow; tiny values lose at most 2⁻²⁵ in absolute terms."""
    return t.numel() > 0 and bool(torch.isfinite(t).all()) and float(t.abs().max()) <= 60000.0


def mixed_state_dict(model: torch.nn.Module) -> dict:
    """fp32_state_dict with the conv stacks' weights and biases in float16 (see the module doc)."""
    sd = fp32_state_dict(model)
    for k, v in sd.items():
        if (k.startswith(_HALF_MODULES) and k.rsplit(".", 1)[-1] in ("weight", "bias")
                and v.dtype == torch.float32 and _fits_half(v)):
            sd[k] = v.half()
    return sd


def save_checkpoint(path: str | os.PathLike, model: MeanScaleHyperprior, *, model_id: str,
                    training: dict | None = None, storage: str = "fp32", **state) -> str:
    """Write atomically (temp file + rename). Returns the weights hash (of the stored tensors)."""
    if storage not in STORAGES:
        raise ValueError(f"storage must be one of {', '.join(STORAGES)}, not {storage!r}")
    sd = mixed_state_dict(model) if storage == "mixed" else fp32_state_dict(model)
    digest = weights_hash(sd)
    payload = {
        "format": "aecodec-checkpoint", "version": 1, "model_id": model_id,
        "arch": model.architecture, "config": model.config.to_dict(),
        "state_dict": sd, "storage": storage, "weights_hash": digest, "training": training or {}, **state,
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())  # on disk before the rename makes it the checkpoint
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return digest


def read_checkpoint(path: str | os.PathLike, *, map_location="cpu") -> dict:
    """The checkpoint's dict (config, record, tensors) without building the model."""
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True, mmap=True)
    except FileNotFoundError:
        raise
    except Exception as exc:  # pickle / zip errors
        raise CheckpointError(f"{path}: not a readable checkpoint ({exc.__class__.__name__})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != "aecodec-checkpoint":
        raise CheckpointError(f"{path}: not an aecodec checkpoint")
    return ckpt


def load_checkpoint(path: str | os.PathLike, *, map_location="cpu") -> tuple[MeanScaleHyperprior, dict]:
    """Rebuild the model from its saved config and weights; verify the weights hash."""
    ckpt = read_checkpoint(path, map_location=map_location)
    model = build_model(ckpt["arch"], ckpt["config"], init=False)  # every weight is loaded below (strict)
    sd = ckpt["state_dict"]
    digest = weights_hash(sd)
    if digest != ckpt.get("weights_hash"):
        raise CheckpointError(f"{path}: weights hash mismatch (file corrupt?)")
    model.load_state_dict(sd)  # copies each tensor into the model's float32 one: no float32 copy of the file
    model.eval()
    return model, ckpt

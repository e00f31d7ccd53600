"""The device a command computes on: one rule for coding and training."""

from __future__ import annotations

from .errors import CodecError

__all__ = ["pick_device"]


def pick_device(name: str) -> str:
    """``auto`` → ``cuda`` when a GPU is present, else ``cpu``; ``cpu``, ``cuda`` and ``cuda:N`` are
    checked (:class:`~aecodec.errors.CodecError` for another name, or for CUDA without a GPU)."""
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name not in ("cpu", "cuda") and not name.startswith("cuda:"):
        raise CodecError(f"unknown device {name!r} (auto, cpu or cuda)")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise CodecError("--device cuda requested but no CUDA GPU is available")
    return name

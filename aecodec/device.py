"""The machine: the device a command computes on (one rule for coding and training), and the CPU's name."""

from __future__ import annotations

from .errors import CodecError

__all__ = ["check_device_name", "pick_device", "cpu_name"]


def check_device_name(name: str) -> str:
    """``name`` if it names a device (``auto``, ``cpu``, ``cuda``, ``cuda:N``), else a
    :class:`~aecodec.errors.CodecError` — before anything is imported for it."""
    if name not in ("auto", "cpu", "cuda") and not name.startswith("cuda:"):
        raise CodecError(f"unknown device {name!r} (auto, cpu or cuda)")
    return name


def pick_device(name: str) -> str:
    """The torch device: ``auto`` → ``cuda`` when a GPU is present, else ``cpu``; ``cpu``, ``cuda``
    and ``cuda:N`` are checked (:class:`~aecodec.errors.CodecError` for another name, or for CUDA
    without a GPU)."""
    check_device_name(name)
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise CodecError("--device cuda requested but no CUDA GPU is available")
    return name


def cpu_name() -> str:
    """This machine's CPU model, as ``/proc/cpuinfo`` names it (``platform`` elsewhere): recorded
    with every measurement and golden file, since g_s's float32 pixels are bit-identical only on the
    same kind of CPU (the entropy path is exact everywhere)."""
    import platform

    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()

"""Architectures by stable id: a model class registers itself with its config class
(``@register_architecture("mean-scale-hyperprior-vr", HyperpriorConfig)``), and a checkpoint's
``"arch"`` field names which one rebuilds it. Adding an architecture edits nothing else.
An id, once shipped in a checkpoint, keeps meaning the same class."""

from __future__ import annotations

from typing import Callable

from ..errors import CheckpointError

__all__ = ["ARCHITECTURES", "register_architecture", "architecture"]

ARCHITECTURES: dict[str, tuple[type, type]] = {}  # id → (model class, config class)


def register_architecture(name: str, config_cls: type) -> Callable[[type], type]:
    """A class decorator: register the model class under ``name`` (kebab-case), its config
    class beside it; the class gets ``architecture = name``."""
    def register(cls: type) -> type:
        if name in ARCHITECTURES and ARCHITECTURES[name][0] is not cls:
            raise ValueError(f"architecture {name!r} is already registered to {ARCHITECTURES[name][0].__name__}")
        ARCHITECTURES[name] = (cls, config_cls)
        cls.architecture = name
        return cls
    return register


def architecture(name: str) -> tuple[type, type]:
    """``(model class, config class)`` of a registered architecture, or :class:`CheckpointError`."""
    from . import hyperprior  # noqa: F401  (registers the architectures aecodec ships)

    try:
        return ARCHITECTURES[name]
    except (KeyError, TypeError):
        raise CheckpointError(f"unknown architecture {name!r:.60} (this aecodec has "
                              f"{', '.join(sorted(ARCHITECTURES))})") from None

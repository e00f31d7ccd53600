"""Convolution layers built with or without PyTorch's random initialisation."""

from __future__ import annotations

import torch.nn as nn

__all__ = ["make_layer"]


def make_layer(cls: type[nn.Module], *args, init: bool = True, **kwargs) -> nn.Module:
    """``cls(*args, **kwargs)``; with ``init=False`` its ``reset_parameters`` is skipped, so the
    parameters keep the uninitialised memory ``torch.empty`` gave them — for a model whose weights
    are loaded right after (:func:`~aecodec.models.checkpoint.load_checkpoint`, which loads every
    parameter strictly). The random initialisation of the shipped model's convolutions takes
    35–50 ms, as much as the rest of building it: a twentieth of a CLI command's own work.

    The layer is an ordinary ``cls``: the method is shadowed on the instance only while its
    ``__init__`` runs (other threads building layers are unaffected)."""
    if init:
        return cls(*args, **kwargs)
    module = cls.__new__(cls)
    object.__setattr__(module, "reset_parameters", lambda: None)
    try:
        module.__init__(*args, **kwargs)
    finally:
        object.__delattr__(module, "reset_parameters")
    return module

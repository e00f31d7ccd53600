"""Registry of model ids and where their weights live.

A file names its model by a stable kebab-case id plus a weights hash. To decode it we look for a
checkpoint with that id and hash: first the weights shipped in ``aecodec/models/weights/``, then
every folder in the ``AECODEC_MODEL_PATH`` environment variable (``os.pathsep``-separated), so
users can decode files made with weights they trained themselves.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from ..errors import ModelNotFound

__all__ = ["DEFAULT_MODEL_ID", "SHIPPED_DIR", "ModelNotFound", "resolve", "load", "checkpoint_dirs"]

DEFAULT_MODEL_ID = "mean-scale-vr-128"
SHIPPED_DIR = Path(__file__).parent / "weights"


def checkpoint_dirs() -> list[Path]:
    extra = [Path(p) for p in os.environ.get("AECODEC_MODEL_PATH", "").split(os.pathsep) if p]
    return [SHIPPED_DIR, *extra]


def _candidates(model_id: str) -> list[Path]:
    return [d / f"{model_id}.pt" for d in checkpoint_dirs() if (d / f"{model_id}.pt").is_file()]


def resolve(model: str | os.PathLike | None) -> Path:
    """A checkpoint path from a model id (default: the shipped default) or a path."""
    if model is None:
        model = DEFAULT_MODEL_ID
    p = Path(model)
    if p.suffix == ".pt" or p.is_file():
        if not p.is_file():
            raise ModelNotFound(f"model checkpoint {p} not found")
        return p
    found = _candidates(str(model))
    if not found:
        raise ModelNotFound(f"unknown model id {model!r} (looked in {', '.join(map(str, checkpoint_dirs()))})")
    return found[0]


@lru_cache(maxsize=4)
def _load(path: str, mtime: float, device: str):
    from .checkpoint import load_checkpoint

    model, ckpt = load_checkpoint(path, need_tables=True)  # checked: CheckpointError "<path>: …"
    return model.to(device), ckpt["model_id"], ckpt["weights_hash"]


def load(model: str | os.PathLike | None = None, *, device: str = "cpu", weights_hash: str | None = None):
    """Return ``(model, model_id, weights_hash)``, cached per process.

    With ``weights_hash`` (decoding), the id's checkpoints are searched for one with that hash.
    """
    if weights_hash is None:
        path = resolve(model)
        return _load(str(path), path.stat().st_mtime, device)
    paths = [resolve(model)] if model is not None and Path(model).suffix == ".pt" else _candidates(str(model))
    have = []
    for path in paths:
        m, mid, digest = _load(str(path), path.stat().st_mtime, device)
        if digest[: len(weights_hash)] == weights_hash:
            return m, mid, digest
        have.append(digest)
    if not paths:
        raise ModelNotFound(f"this file needs model {model}@{weights_hash}, which is not installed "
                            f"(put {model}.pt in a folder listed in AECODEC_MODEL_PATH)")
    raise ModelNotFound(f"this file needs model {model}@{weights_hash}; installed weights of {model} "
                        f"have hash {', '.join(have)} — install the matching weights")

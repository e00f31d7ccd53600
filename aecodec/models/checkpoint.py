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

A checkpoint is checked before it is used (:func:`load_checkpoint`): its fields and config, exactly
the model's tensor names, floating-point dtypes and shapes, finite values, the architecture's
constants, gains and quantiles the coder can code, and the CDF tables that CompressAI's rANS coder
takes on trust (:func:`check_tables`). A damaged or hostile file — through ``--model``,
``AECODEC_MODEL_PATH``, ``--resume``, ``--init-from`` or ``export`` — is one
:class:`CheckpointError` ``<path>: <what is wrong>``, never a traceback or a signal. The checks
read each tensor once, as the weights hash does.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import re
import tempfile
import warnings
from pathlib import Path

import torch

from ..codec import format as fmt
from ..entropy.coding import MAX_LATENT, PRECISION
from ..errors import CheckpointError, brief, one_line
from .fixed_point import check_bounds
from .hyperprior import MeanScaleHyperprior
from .registry import architecture

__all__ = ["weights_hash", "save_checkpoint", "load_checkpoint", "read_checkpoint", "build_model", "check_fields",
           "check_state_dict", "check_tables", "CheckpointError", "STORAGES"]

HASH_HEX_CHARS = 16  # 64 bits: the header stores 8 bytes
STORAGES = ("fp32", "mixed")
_HALF_MODULES = ("g_a.", "h_a.", "h_s.", "g_s.")  # conv stacks; their GDN parameters stay float32
_TABLE_KEYS = ("_quantized_cdf", "_cdf_length", "_offset")  # CDF buffers: their shapes come from the data
CDF_ONE = 2**PRECISION  # where every CDF row of the rANS coder ends
MAX_LOG_GAIN = math.log(MAX_LATENT)  # a larger gain takes a latent of 1 beyond what the coder codes
MAX_QUANTILE = 2.0**14  # |z quantile|: the bottleneck's tables (~2× the range wide) must fit 16-bit CDFs


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
        raise CheckpointError(f"invalid model config: {one_line(exc)}") from None
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


@contextlib.contextmanager
def _about(path):
    """A :class:`CheckpointError` raised inside names the checkpoint first: ``<path>: <what>``."""
    try:
        yield
    except CheckpointError as exc:
        raise CheckpointError(f"{path}: {exc}") from None


def read_checkpoint(path: str | os.PathLike, *, map_location="cpu") -> dict:
    """The checkpoint's dict (config, record, tensors) without building the model; its fields
    checked (:func:`check_fields`). FileNotFoundError if there is no such file; any other problem
    is a :class:`CheckpointError` ``<path>: <what is wrong>``."""
    try:
        with warnings.catch_warnings():  # torch's own (its loader's deprecations): not the user's business
            warnings.simplefilter("ignore")
            ckpt = torch.load(path, map_location=map_location, weights_only=True, mmap=True)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read it ({exc.strerror or exc.__class__.__name__})") from None
    except Exception:  # pickle / zip errors, objects torch's safe loader refuses
        raise CheckpointError(f"{path}: not a readable checkpoint (truncated, damaged, or not written by "
                              "torch.save)") from None
    with _about(path):
        check_fields(ckpt)
    return ckpt


def check_fields(ckpt) -> None:
    """The fields of a checkpoint's dict (the module docstring), each of its type; CheckpointError
    naming the first that is wrong. The tensors themselves are checked against the model they
    build (:func:`check_state_dict`)."""
    # Types before values: a field may hold anything torch's safe loader rebuilds (a tensor has no truth value).
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("format"), str) or ckpt["format"] != "aecodec-checkpoint":
        raise CheckpointError("not an aecodec checkpoint")
    if type(ckpt.get("version")) is not int or ckpt["version"] != 1:
        raise CheckpointError(f"checkpoint version {brief(ckpt.get('version'))}: this aecodec reads version 1")
    for key in ("model_id", "arch", "config", "state_dict", "weights_hash"):
        if key not in ckpt:
            raise CheckpointError(f"no {key!r} field")
    mid = ckpt["model_id"]
    if not isinstance(mid, str) or not 1 <= len(mid) <= 64 or not fmt.MODEL_ID_RE.match(mid):
        raise CheckpointError(f"model id {brief(mid)} is not a kebab-case id of at most 64 characters")
    if not isinstance(ckpt["arch"], str):
        raise CheckpointError(f"architecture {brief(ckpt['arch'])} is not a name")
    if not isinstance(ckpt["config"], dict):
        raise CheckpointError(f"the model config is of type {type(ckpt['config']).__name__}, not a mapping")
    digest = ckpt["weights_hash"]
    if not isinstance(digest, str) or not re.fullmatch(f"[0-9a-f]{{{HASH_HEX_CHARS}}}", digest):
        raise CheckpointError(f"weights hash {brief(digest)} is not {HASH_HEX_CHARS} hex digits")
    if "storage" in ckpt and (not isinstance(ckpt["storage"], str) or ckpt["storage"] not in STORAGES):
        raise CheckpointError(f"storage {brief(ckpt['storage'])} is not one of {', '.join(STORAGES)}")
    if not isinstance(ckpt.get("training", {}), dict):
        raise CheckpointError(f"the training record is of type {type(ckpt['training']).__name__}, not a mapping")
    sd = ckpt["state_dict"]
    if not isinstance(sd, dict):
        raise CheckpointError(f"the state dict is of type {type(sd).__name__}, not a mapping")
    for name, t in sd.items():
        if not isinstance(name, str):
            raise CheckpointError(f"the state dict has a key {brief(name)} that is not a tensor name")
        if not isinstance(t, torch.Tensor):
            raise CheckpointError(f"state dict entry {brief(name)} is of type {type(t).__name__}, not a tensor")
        if t.layout != torch.strided or t.is_quantized or t.is_meta:
            raise CheckpointError(f"tensor {brief(name)} is not a plain dense tensor ({t.layout}"
                                  f"{', quantized' if t.is_quantized else ''}{', no data' if t.is_meta else ''})")


def check_state_dict(model: MeanScaleHyperprior, sd: dict, *, need_tables: bool = False) -> None:
    """Whether ``sd`` (tensors checked by :func:`check_fields`) can be loaded into ``model`` — a
    freshly built one, whose buffers still hold the architecture's constants — and used: exactly
    the model's tensor names; floating-point tensors where the model's are, with the model's
    shapes; finite values; the constants equal to the model's; gains and z's quantiles within
    what the coder can code; consistent CDF tables (:func:`check_tables`), required with
    ``need_tables`` (coding). CheckpointError naming the first problem."""
    ref = model.state_dict()
    missing, extra = [k for k in ref if k not in sd], [k for k in sd if k not in ref]
    if missing:
        raise CheckpointError(f"the state dict lacks tensor {missing[0]}"
                              + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
                              + f": it does not hold a {model.architecture} model of this config")
    if extra:
        raise CheckpointError(f"the state dict has unexpected tensor {brief(extra[0])}"
                              + (f" (and {len(extra) - 1} more)" if len(extra) > 1 else "")
                              + f": it does not hold a {model.architecture} model of this config")
    for name, want in ref.items():
        t = sd[name]
        if want.is_floating_point():
            if not t.is_floating_point():
                raise CheckpointError(f"tensor {name} is {_dtype(t)}, not floating point")
        elif t.dtype != want.dtype:
            raise CheckpointError(f"tensor {name} is {_dtype(t)}, not {_dtype(want)}")
        if name.rsplit(".", 1)[-1] not in _TABLE_KEYS and t.shape != want.shape:
            raise CheckpointError(f"tensor {name} has shape {tuple(t.shape)}, the config needs {tuple(want.shape)}")
    for name, t in sd.items():
        # A sum is finite unless some value is not (or it overflows: then look at each value).
        if (t.is_floating_point() and not math.isfinite(float(torch.sum(t, dtype=torch.float32)))
                and not bool(torch.isfinite(t).all())):
            raise CheckpointError(f"tensor {name} holds {'NaN' if bool(torch.isnan(t).any()) else 'infinity'}")
    for name, want in model.named_buffers():
        if name not in ref or not want.is_floating_point():
            continue
        if not torch.allclose(sd[name].float(), want.float(), rtol=1e-5, atol=0):
            raise CheckpointError(f"tensor {name} differs from the constant its architecture and config define")
    for name in ("log_gain", "log_inv_gain"):
        if float(sd[name].abs().max()) > MAX_LOG_GAIN:
            raise CheckpointError(f"tensor {name} holds values beyond ±{MAX_LOG_GAIN:.1f}: gains that large put "
                                  "the latents beyond what the coder can code")
    q = sd["entropy_bottleneck.quantiles"]
    if q.numel() and float(q.abs().max()) > MAX_QUANTILE:
        raise CheckpointError(f"tensor entropy_bottleneck.quantiles holds values beyond ±{MAX_QUANTILE:g}: z's "
                              "distribution would not fit a CDF table")
    check_tables(sd, "entropy_bottleneck", model.entropy_bottleneck.channels, centred=False, need=need_tables)
    check_tables(sd, "gaussian_conditional", len(model.gaussian_conditional.scale_table), centred=True,
                 need=need_tables)


def check_tables(sd: dict, prefix: str, rows: int, *, centred: bool, need: bool) -> None:
    """The CDF tables of the entropy model ``prefix`` — ``_quantized_cdf`` ``(rows, W)``,
    ``_cdf_length`` and ``_offset`` ``(rows,)``, int32 — are what CompressAI's rANS coder assumes
    without checking (its ``assert_cdfs`` is compiled out): each row k has a length
    ``3 ≤ L ≤ W``, starts at 0, ends at ``2**16`` at column ``L − 1`` and rises strictly up to
    there, so every symbol (the escape symbol included) has a frequency from 1 to ``2**16 − 1``.
    A zero frequency divides by zero in the encoder (SIGFPE), one of ``2**16`` wraps to 0 in its
    16-bit field (L = 2), a row not ending at ``2**16`` sends the decoder's search past the row.
    The offsets are where CompressAI's ``update`` puts them: the first symbol of a row at or
    below 0 (the median) within the row's ``L − 3`` coded values; centred on 0 for the Gaussian
    conditional (``centred``). Tables that are all empty (a training checkpoint: ``update`` not
    run) pass unless ``need``."""
    cdf, length, offset = (sd[f"{prefix}.{k}"] for k in ("_quantized_cdf", "_cdf_length", "_offset"))
    if cdf.numel() == length.numel() == offset.numel() == 0:
        if need:
            raise CheckpointError(f"{prefix} has no CDF tables: these are training weights; export them "
                                  "(aecodec export) to code with them")
        return
    if cdf.dim() != 2 or cdf.shape[0] != rows or length.shape != (rows,) or offset.shape != (rows,):
        raise CheckpointError(f"{prefix}'s CDF tables have shapes {tuple(cdf.shape)}, {tuple(length.shape)} and "
                              f"{tuple(offset.shape)}; the config needs ({rows}, width), ({rows},) and ({rows},)")
    width = cdf.shape[1]
    if not 3 <= width <= CDF_ONE + 1:
        raise CheckpointError(f"{prefix}'s CDF tables are {width} wide, not 3 to {CDF_ONE + 1}")
    n = length.long()
    bad = ((n < 3) | (n > width)).nonzero()
    if bad.numel():
        k = int(bad[0])
        raise CheckpointError(f"{prefix}._cdf_length[{k}] is {int(n[k])}, not 3 to {width} (the table width)")
    c = cdf
    used = torch.arange(width)[None, :] < n[:, None]
    last = c.gather(1, (n - 1)[:, None])[:, 0]
    outside = (((c < 0) | (c > CDF_ONE)) & used).any(1)
    steps = c[:, 1:] - c[:, :-1]  # int32: no overflow once the values are within 0…2**16
    for what, wrong in (("holds values outside 0…65536", outside),
                        ("does not start at 0", c[:, 0] != 0),
                        (f"does not end at {CDF_ONE} (column _cdf_length − 1)", last != CDF_ONE),
                        ("gives a symbol zero or negative frequency", ((steps <= 0) & used[:, 1:]).any(1))):
        if bool(wrong.any()):
            raise CheckpointError(f"{prefix}'s CDF table {int(wrong.nonzero()[0])} {what}")
    off = offset.long()
    wrong = off != -((n - 3) // 2) if centred else (off > 0) | (off < -(n - 3))
    if centred:
        wrong |= (n - 3) % 2 != 0
    if bool(wrong.any()):
        k = int(wrong.nonzero()[0])
        raise CheckpointError(f"{prefix}._offset[{k}] is {int(off[k])}, inconsistent with its table of length "
                              f"{int(n[k])}")


def load_checkpoint(path: str | os.PathLike, *, map_location="cpu",
                    need_tables: bool = False) -> tuple[MeanScaleHyperprior, dict]:
    """Rebuild the model from its saved config and weights, each checked
    (:func:`check_fields`, :func:`build_model`, :func:`check_state_dict`, the weights hash);
    ``need_tables``: the weights must carry CDF tables (coding, not training). Every problem is
    one :class:`CheckpointError` ``<path>: <what is wrong>``; FileNotFoundError without the file."""
    ckpt = read_checkpoint(path, map_location=map_location)
    with _about(path):
        model = build_model(ckpt["arch"], ckpt["config"], init=False)  # every weight is loaded below (strict)
        sd = ckpt["state_dict"]
        check_state_dict(model, sd, need_tables=need_tables)
        if weights_hash(sd) != ckpt["weights_hash"]:
            raise CheckpointError("weights hash mismatch (file corrupt?)")
    model.load_state_dict(sd)  # copies each tensor into the model's float32 one: no float32 copy of the file
    model.eval()
    model.source = str(path)
    return model, ckpt


def _dtype(t: torch.Tensor) -> str:
    return str(t.dtype).removeprefix("torch.")


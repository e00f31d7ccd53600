"""The runtime bundle: everything the codec needs of a model, without PyTorch.

``aecodec export`` writes ``<model_id>.runtime.npz`` beside the checkpoint ``<model_id>.pt``
(:mod:`aecodec.models.onnx_export`). It is a plain numpy ``.npz`` (``np.savez``, uncompressed)::

    meta                        uint8: UTF-8 JSON {"format": "aecodec-runtime", "version": 1,
                                "model_id", "weights_hash", "architecture", "config"}
    graph.g_a, graph.h_a, graph.g_s
                                uint8: ONNX graphs of the transforms (aecodec.models.transforms)
    h_s.layers.{0,1,2}.{weight,bias}, log_gain, log_inv_gain,
    entropy_bottleneck.quantiles, gaussian_conditional.scale_table
                                float16 or float32, as the checkpoint stores them
    {entropy_bottleneck,gaussian_conditional}.{_quantized_cdf,_offset,_cdf_length}
                                int32: the entropy coder's tables

The arrays are the checkpoint's tensors of the same names (``weights_hash`` is the checkpoint's),
so the exact entropy path computes from the very values the torch codec uses. This module needs
numpy and the standard library only: the runtime install reads bundles and nothing else.

A bundle is checked before it is used (:func:`read_bundle`): its size, its entries and their
dtypes, shapes (against the config) and finite values, and its metadata. A damaged or hostile
file is one :class:`~aecodec.errors.CheckpointError` ``<path>: <what is wrong>``, never a
traceback or a large allocation. The graphs are checked by onnxruntime when a session loads them.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..codec import format as fmt
from ..errors import CheckpointError, brief, one_line
from .config import HyperpriorConfig

__all__ = ["Bundle", "BUNDLE_SUFFIX", "checkpoint_of", "FORMAT", "VERSION", "ARCHITECTURE", "GRAPHS", "WEIGHTS", "TABLES", "ARRAYS",
           "MAX_BYTES", "write_bundle", "read_bundle", "bundle_path"]

BUNDLE_SUFFIX = ".runtime.npz"
FORMAT, VERSION = "aecodec-runtime", 1
ARCHITECTURE = "mean-scale-hyperprior-vr"  # the one architecture whose arrays are laid out as below
GRAPHS = ("g_a", "h_a", "g_s")
WEIGHTS = ("h_s.layers.0.weight", "h_s.layers.0.bias", "h_s.layers.1.weight", "h_s.layers.1.bias",
           "h_s.layers.2.weight", "h_s.layers.2.bias", "log_gain", "log_inv_gain",
           "entropy_bottleneck.quantiles", "gaussian_conditional.scale_table")
TABLES = tuple(f"{m}.{t}" for m in ("entropy_bottleneck", "gaussian_conditional")
               for t in ("_quantized_cdf", "_offset", "_cdf_length"))
ARRAYS = WEIGHTS + TABLES
MAX_BYTES = 256 * 2**20  # a bundle is read into memory whole: the shipped one is ~16 MiB
MAX_META_BYTES = 2**20
MAX_CDF_WIDTH = 2**16 + 1  # a 16-bit CDF has at most 2**16 symbols (models/checkpoint.py check_tables)
HASH_RE = re.compile(r"[0-9a-f]{16}\Z")  # the checkpoint's weights hash (models/checkpoint.py)

_FLOATS = (np.dtype(np.float16), np.dtype(np.float32))
_INT32 = (np.dtype(np.int32),)
_UINT8 = (np.dtype(np.uint8),)
_ENTRIES = {"meta": _UINT8, **{f"graph.{g}": _UINT8 for g in GRAPHS},
            **{k: _FLOATS for k in WEIGHTS}, **{k: _INT32 for k in TABLES}}


@dataclass(frozen=True)
class Bundle:
    """A checked runtime bundle (:func:`read_bundle`)."""

    model_id: str
    weights_hash: str
    architecture: str
    config: dict  # HyperpriorConfig.to_dict(), checked by HyperpriorConfig.from_dict
    graphs: dict[str, bytes]  # GRAPHS → ONNX bytes
    arrays: dict[str, np.ndarray]  # ARRAYS → as stored
    path: Path


def bundle_path(checkpoint_path: str | os.PathLike) -> Path:
    """Where the bundle of a checkpoint ``<folder>/<stem>.pt`` lives: ``<folder>/<stem>.runtime.npz``."""
    p = Path(checkpoint_path)
    return p.with_name(p.stem + BUNDLE_SUFFIX)


def checkpoint_of(bundle: str | os.PathLike) -> Path:
    """The checkpoint beside which a bundle was written (:func:`bundle_path`'s inverse)."""
    p = Path(bundle)
    return p.with_name(p.name.removesuffix(BUNDLE_SUFFIX) + ".pt")


def write_bundle(path: str | os.PathLike, *, model_id: str, weights_hash: str, architecture: str, config: dict,
                 graphs: dict[str, bytes], arrays: dict[str, np.ndarray]) -> Path:
    """Write a bundle atomically (a temp file in the same folder, renamed): it is read back and
    checked (:func:`read_bundle`) before it replaces anything, so a bundle that exists is usable."""
    path = Path(path)
    meta = {"format": FORMAT, "version": VERSION, "model_id": model_id, "weights_hash": weights_hash,
            "architecture": architecture, "config": config}
    entries = {"meta": np.frombuffer(json.dumps(meta).encode(), np.uint8),
               **{f"graph.{k}": np.frombuffer(v, np.uint8) for k, v in graphs.items()}, **arrays}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **entries)
            f.flush()
            os.fsync(f.fileno())
        _read(tmp, shown=path)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_bundle(path: str | os.PathLike) -> Bundle:
    """The bundle at ``path``, checked (the module docstring). FileNotFoundError if there is no
    such file; any other problem is a CheckpointError ``<path>: <what is wrong>``."""
    return _read(path, shown=path)


def _read(path, *, shown) -> Bundle:
    """:func:`read_bundle`, its messages naming ``shown`` (a bundle being written is checked in its temp file)."""
    try:
        entries = _load_entries(_read_bytes(path))
        meta = _meta(entries["meta"])
        config = _config(meta["config"])
        arrays = {k: entries[k] for k in ARRAYS}
        _check_arrays(arrays, config)
        graphs = {g: _graph(g, entries[f"graph.{g}"]) for g in GRAPHS}
    except CheckpointError as exc:
        raise CheckpointError(f"{shown}: {exc}") from None
    return Bundle(meta["model_id"], meta["weights_hash"], meta["architecture"], meta["config"], graphs, arrays,
                  Path(shown))


# ----------------------------------------------------------------------------- the file
def _read_bytes(path) -> bytes:
    """The file's bytes, at most :data:`MAX_BYTES` of them (a read asks for no more than the file
    holds: Python allocates what it is asked for)."""
    try:
        with open(path, "rb") as f:
            data = f.read(min(os.fstat(f.fileno()).st_size, MAX_BYTES) + 1)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise CheckpointError(f"cannot read it ({exc.strerror or exc.__class__.__name__})") from None
    if len(data) > MAX_BYTES:
        raise CheckpointError(f"larger than a runtime bundle may be ({MAX_BYTES // 2**20} MiB)")
    return data


def _load_entries(data: bytes) -> dict[str, np.ndarray]:
    """The archive's arrays by entry name: exactly the expected entries, each header checked
    against its member's size before ``np.load`` allocates anything."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            _check_members(zf)
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            return {name: npz[name] for name in _ENTRIES}
    except CheckpointError:
        raise
    except Exception:  # zip, CRC and .npy errors of a damaged file: zipfile and numpy raise many kinds
        raise CheckpointError("not a readable runtime bundle (truncated, damaged, or not an .npz archive)") from None


def _check_members(zf: zipfile.ZipFile) -> None:
    infos = zf.infolist()
    names = [i.filename for i in infos]
    expected = {f"{k}.npy" for k in _ENTRIES}
    if len(set(names)) != len(names):
        raise CheckpointError("the archive names an entry twice")
    missing, extra = sorted(expected - set(names)), sorted(set(names) - expected)
    if missing:
        raise CheckpointError(f"no entry {missing[0].removesuffix('.npy')!r}")
    if extra:
        raise CheckpointError(f"unexpected entry {brief(extra[0])}")
    if sum(i.file_size for i in infos) > MAX_BYTES:
        raise CheckpointError(f"its entries hold more than a runtime bundle may ({MAX_BYTES // 2**20} MiB)")
    for info in infos:
        _check_header(zf, info)


def _check_header(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> None:
    """The ``.npy`` header of one member: an allowed dtype, and exactly as many data bytes as
    its shape needs (so a header claiming a huge array is refused before anything is allocated)."""
    name = info.filename.removesuffix(".npy")
    with zf.open(info) as f:
        version = np.lib.format.read_magic(f)
        if version not in ((1, 0), (2, 0)):
            raise CheckpointError(f"entry {name!r} has .npy format version {version}, not 1.0 or 2.0")
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = read_header(f)
        header = f.tell()
    if dtype not in _ENTRIES[name]:
        raise CheckpointError(f"entry {name!r} is {dtype.str}, not {' or '.join(t.name for t in _ENTRIES[name])}")
    if header + math.prod(shape) * dtype.itemsize != info.file_size:
        raise CheckpointError(f"entry {name!r} claims shape {brief(shape)}, not what it holds")


# ----------------------------------------------------------------------------- the entries
def _meta(raw: np.ndarray) -> dict:
    """The metadata: a JSON object with the expected fields, each of its type."""
    if raw.ndim != 1 or raw.size > MAX_META_BYTES:
        raise CheckpointError(f"entry 'meta' is not a JSON text of at most {MAX_META_BYTES} bytes")
    try:
        meta = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise CheckpointError("entry 'meta' is not UTF-8 JSON") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError("not an aecodec runtime bundle (its meta does not say so)")
    if type(meta.get("version")) is not int or meta["version"] != VERSION:
        raise CheckpointError(f"bundle version {brief(meta.get('version'))}: this aecodec reads version {VERSION}")
    unknown = set(meta) - {"format", "version", "model_id", "weights_hash", "architecture", "config"}
    if unknown:
        raise CheckpointError(f"unexpected meta field {brief(sorted(map(str, unknown))[0])}")
    mid = meta.get("model_id")
    if not isinstance(mid, str) or not 1 <= len(mid) <= 64 or not fmt.MODEL_ID_RE.match(mid):
        raise CheckpointError(f"model id {brief(mid)} is not a kebab-case id of at most 64 characters")
    digest = meta.get("weights_hash")
    if not isinstance(digest, str) or not HASH_RE.match(digest):
        raise CheckpointError(f"weights hash {brief(digest)} is not 16 hex digits")
    if meta.get("architecture") != ARCHITECTURE:
        raise CheckpointError(f"architecture {brief(meta.get('architecture'))}: this aecodec runs {ARCHITECTURE}")
    if "config" not in meta:
        raise CheckpointError("no 'config' in its meta")
    return meta


def _config(d) -> HyperpriorConfig:
    try:
        return HyperpriorConfig.from_dict(d)
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"invalid model config: {one_line(exc)}") from None


def _expected_shapes(cfg: HyperpriorConfig) -> dict[str, tuple]:
    """Each array's shape under ``cfg``; ``None`` for a table's width (it comes from the data). h_s
    is :class:`~aecodec.models.fixed_point.FixedPointHyperSynthesis`: ConvTranspose2d weights are
    ``(in, out, k, k)``, Conv2d ``(out, in, k, k)``."""
    N, M, L, S = cfg.N, cfg.M, cfg.num_levels, cfg.scale_levels
    return {"h_s.layers.0.weight": (N, M, 5, 5), "h_s.layers.0.bias": (M,),
            "h_s.layers.1.weight": (M, M * 3 // 2, 5, 5), "h_s.layers.1.bias": (M * 3 // 2,),
            "h_s.layers.2.weight": (M * 2, M * 3 // 2, 3, 3), "h_s.layers.2.bias": (M * 2,),
            "log_gain": (L, M), "log_inv_gain": (L, M),
            "entropy_bottleneck.quantiles": (N, 1, 3), "gaussian_conditional.scale_table": (S,),
            **{f"entropy_bottleneck.{t}": s for t, s in (("_quantized_cdf", (N, None)), ("_offset", (N,)),
                                                         ("_cdf_length", (N,)))},
            **{f"gaussian_conditional.{t}": s for t, s in (("_quantized_cdf", (S, None)), ("_offset", (S,)),
                                                           ("_cdf_length", (S,)))}}


def _check_arrays(arrays: dict[str, np.ndarray], cfg: HyperpriorConfig) -> None:
    """Shapes as the config needs them, CDF tables 3 to 2**16 + 1 wide, finite floats."""
    for name, want in _expected_shapes(cfg).items():
        a = arrays[name]
        if a.ndim != len(want) or any(w is not None and s != w for s, w in zip(a.shape, want)):
            shown = ", ".join("width" if w is None else str(w) for w in want)
            raise CheckpointError(f"array {name} has shape {a.shape}, the config needs ({shown})")
        if None in want and not 3 <= a.shape[1] <= MAX_CDF_WIDTH:
            raise CheckpointError(f"array {name} is {a.shape[1]} wide, not 3 to {MAX_CDF_WIDTH}")
        if a.dtype.kind == "f" and not np.isfinite(a).all():
            raise CheckpointError(f"array {name} holds {'NaN' if np.isnan(a).any() else 'infinity'}")


def _graph(name: str, raw: np.ndarray) -> bytes:
    if raw.ndim != 1 or raw.size == 0:
        raise CheckpointError(f"entry 'graph.{name}' is not the bytes of an ONNX graph")
    return raw.tobytes()

"""The model as the codec runs it: numpy arrays in and out, no torch.

A :class:`CodecModel` is the trained model cut in the two parts the codec needs:

* the **transforms** g_a, h_a and g_s, float32 — ONNX graphs run by onnxruntime
  (:class:`~aecodec.models.transforms.OnnxTransforms`, from a runtime bundle written by
  ``aecodec export``), or the torch model itself (:class:`TorchTransforms`, for a checkpoint
  without a bundle and for training's evaluation, where the weights change between calls);
* the **exact entropy path** — the gains, the entropy models' integer tables and the fixed-point
  h_s — in numpy (:class:`~aecodec.entropy.latents.HyperpriorCoding`): the CDF indexes, the means
  and so ŷ are the same integers on every machine, whichever transforms run.

Files of format versions 1 and 2 were entropy-coded with CompressAI's rANS, which needs torch:
:meth:`CodecModel.torch_model` loads the torch model for them (``pip install 'aecodec[train]'``), and
the encoder search (``--effort`` ≥ 2), which needs gradients, uses it too.

:func:`load` finds a model by id (and weights hash) or path: the bundle ``<id>.runtime.npz``
when there is one (the runtime install reads only these), else the checkpoint ``<id>.pt``.
"""

from __future__ import annotations

import importlib.util
import os
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np

from ..entropy.latents import HyperpriorCoding
from ..device import check_device_name
from ..errors import CodecError, ModelError, ModelNotFound
from .bundle import BUNDLE_SUFFIX, bundle_path, checkpoint_of, read_bundle
from .config import HyperpriorConfig
from .zoo import DEFAULT_MODEL_ID, checkpoint_dirs

__all__ = ["CodecModel", "TorchTransforms", "load", "has_torch", "require_torch", "TorchMissing", "TRAIN_HINT",
           "check_device"]

TRAIN_HINT = "pip install 'aecodec[train]'"


def has_torch() -> bool:
    """Whether the ``[train]`` extra (torch and CompressAI) is installed, without importing it."""
    return all(importlib.util.find_spec(name) is not None for name in ("torch", "compressai"))


class TorchMissing(CodecError):
    """What needs the ``[train]`` extra, where it is not installed. Not one input's fault: the command
    line stops on it (one line, exit 2) instead of going on to the next input (``whole_command``)."""

    whole_command = True


def require_torch(what: str) -> None:
    """A :class:`TorchMissing` (a CodecError; exit 2 on the command line) saying that ``what`` needs
    the ``[train]`` extra, when it is not installed."""
    if not has_torch():
        raise TorchMissing(f"{what} needs PyTorch: {TRAIN_HINT}")


def check_device(device: str) -> str:
    """``cpu``, ``cuda`` or ``auto`` (cuda when onnxruntime has its CUDA provider), checked: the
    device onnxruntime runs a bundle's transforms on. (A checkpoint's torch model, and training, go
    to the device :func:`aecodec.device.pick_device` picks.)"""
    if check_device_name(device) == "cpu":
        return device
    import onnxruntime

    cuda = "CUDAExecutionProvider" in onnxruntime.get_available_providers()
    if device == "auto":
        return "cuda" if cuda else "cpu"
    if not cuda:
        raise CodecError(f"--device {device} requested, but onnxruntime has no CUDA provider here "
                         "(pip install onnxruntime-gpu on a machine with a GPU)")
    return device


class TorchTransforms:
    """g_a, h_a and g_s of a torch model behind :class:`~aecodec.models.transforms.OnnxTransforms`'
    interface (numpy float32, NCHW, batch 1)."""

    def __init__(self, net):
        self.net = net

    def _run(self, fn, x: np.ndarray, channels_last: bool = False) -> np.ndarray:
        import torch

        with torch.inference_mode():
            t = torch.from_numpy(np.ascontiguousarray(x, np.float32)).to(self.net.device)
            if channels_last:  # oneDNN's transposed convolutions are faster so, and bit-identical
                t = t.contiguous(memory_format=torch.channels_last)
            return fn(t).float().cpu().contiguous().numpy()

    def analysis(self, x: np.ndarray) -> np.ndarray:
        return self._run(self.net.analysis, x)

    def hyper_analysis(self, y: np.ndarray) -> np.ndarray:
        return self._run(self.net.hyper_analysis, y)

    def synthesis(self, y: np.ndarray) -> np.ndarray:
        return self._run(self.net.synthesis, y, channels_last=True)


class CodecModel:
    """What the codec needs of a model (see the module docstring): numpy in, numpy out.

    ``arrays``: the entropy path's arrays by their state-dict names (the bundle's, or the torch
    model's); ``transforms``: an object with ``analysis``, ``hyper_analysis`` and ``synthesis``;
    ``torch_model``: a function that returns the torch model, for files of format 1 and 2 and the
    encoder search (None: it is found by id and hash when needed)."""

    def __init__(self, config: HyperpriorConfig, model_id: str, weights_hash: str, arrays: dict, transforms, *,
                 source: str, torch_model: Callable[[], object] | None = None):
        self.config, self.model_id, self.weights_hash = config, model_id, weights_hash
        self.source = source  # the file it was loaded from, which messages name
        self.transforms = transforms
        try:
            self.coding = HyperpriorCoding.from_arrays(arrays, config.fixed_point)
            self.log_gain = _gain_table(arrays, "log_gain", config)
            self.log_inv_gain = _gain_table(arrays, "log_inv_gain", config)
        except ValueError as exc:
            from ..errors import CheckpointError

            raise CheckpointError(f"{source}: {exc}") from None
        self._torch_model = torch_model

    # ----------------------------------------------------------------------------- gains
    def gains(self, level: float) -> tuple[np.ndarray, np.ndarray]:
        """Gain and inverse gain ``(1, M, 1, 1)`` float32 at a continuous level: the log-gains of
        the two trained levels around it interpolated linearly (as the torch model's ``gains``)."""
        L = self.config.num_levels
        level = np.float32(min(max(float(level), 0.0), L - 1))
        lo = min(int(np.floor(level)), L - 2) if L > 1 else 0
        hi = min(lo + 1, L - 1)
        t = np.float32(level - np.float32(lo))
        one = np.float32(1)

        def at(table):
            return np.exp((one - t) * table[lo] + t * table[hi]).astype(np.float32)[None, :, None, None]

        return at(self.log_gain), at(self.log_inv_gain)

    # ----------------------------------------------------------------------------- encode
    def analyze(self, x: np.ndarray, level: float | None) -> np.ndarray:
        """``g_a(x)`` of pixels ``(1, 3, H, W)`` in [0, 1], times the gain of ``level`` (None: before the gain)."""
        y = self.transforms.analysis(x)
        return y if level is None else self.apply_gain(y, level)

    def apply_gain(self, y: np.ndarray, level: float) -> np.ndarray:
        """``y·gain(level)``: one g_a pass serves every level (the rate search)."""
        return y * self.gains(level)[0]

    def compress_latents(self, y: np.ndarray, z: np.ndarray | None = None) -> dict:
        """The strings of a gained latent and its hyper-latent (default ``h_a(y)``):
        ``{"y", "z", "z_shape"}``. Latents the coder cannot code (weights that are finite but
        far off) are a ModelError naming the weights."""
        z = self.transforms.hyper_analysis(y) if z is None else z
        try:
            return self.coding.compress(y, z)
        except ValueError as exc:
            raise ModelError(f"{self.source}: {exc}: its weights cannot code this image") from None

    # ----------------------------------------------------------------------------- decode
    def decode_latents(self, y_string: bytes, z_string: bytes, z_shape: tuple[int, int], version: int) -> dict:
        """``z_hat``, y's CDF ``indexes`` and ``means``, and ``y_hat`` of one tile, numpy, exact;
        a ValueError for a damaged string. ``version``: the file's format version (1 and 2 were
        coded with CompressAI's rANS: :meth:`torch_model`)."""
        if version >= 3:
            return self.coding.decompress(y_string, z_string, z_shape)
        import torch

        lat = self.torch_model().decode_latents(y_string, z_string, z_shape)
        return {k: v.cpu().numpy() if isinstance(v, torch.Tensor) else v for k, v in lat.items()}

    def synthesize(self, y_hat: np.ndarray, level: float) -> np.ndarray:
        """The decoder's x̂ ``(1, 3, 16h, 16w)`` in [0, 1], float32: ``g_s(ŷ·gain⁻¹)``."""
        return np.clip(self.transforms.synthesis(y_hat * self.gains(level)[1]), 0, 1)

    # ----------------------------------------------------------------------------- torch
    def torch_model(self, why: str = "the torch model"):
        """The torch model of these weights (:class:`~aecodec.models.hyperprior.MeanScaleHyperprior`):
        for files of format versions 1 and 2 and for the encoder search. Without torch, a
        CodecError: "<why> needs PyTorch: pip install 'aecodec[train]'"."""
        if self._torch_model is None:
            require_torch(why)
            from . import zoo

            pt = checkpoint_of(self.source)
            net, _, _ = zoo.load(str(pt) if pt.is_file() else self.model_id, weights_hash=self.weights_hash)
            self._torch_model = lambda: net
        return self._torch_model()


def _gain_table(arrays: dict, name: str, config: HyperpriorConfig) -> np.ndarray:
    a = arrays.get(name)
    if a is None or not isinstance(a, np.ndarray) or a.shape != (config.num_levels, config.M):
        raise ValueError(f"{name} must be an array of shape ({config.num_levels}, {config.M})")
    a = a.astype(np.float32)
    if not np.isfinite(a).all():
        raise ValueError(f"{name} holds values that are not finite")
    return a


# ----------------------------------------------------------------------------- loading
def from_torch(net, model_id: str, weights_hash: str) -> CodecModel:
    """A :class:`CodecModel` over a torch model in memory (training's evaluation, a checkpoint
    without a bundle): its own transforms, its entropy arrays copied."""
    arrays = {k: v.detach().cpu().numpy() for k, v in net.state_dict().items()
              if k.startswith(("entropy_bottleneck.", "gaussian_conditional.", "h_s.", "log_gain", "log_inv_gain"))}
    return CodecModel(net.config, model_id, weights_hash, arrays, TorchTransforms(net),
                      source=getattr(net, "source", None) or model_id, torch_model=lambda: net)


def _from_bundle(path: Path, device: str, threads: int | None) -> CodecModel:
    from .transforms import CUDA, OnnxTransforms

    device = check_device(device)
    b = read_bundle(path)
    config = HyperpriorConfig.from_dict(b.config)
    providers = [CUDA] if device.startswith("cuda") else None  # the CPU's always comes last
    transforms = OnnxTransforms(b.graphs, source=str(path), threads=threads, providers=providers)
    return CodecModel(config, b.model_id, b.weights_hash, b.arrays, transforms, source=str(path))


def _from_checkpoint(path: Path, device: str) -> CodecModel:
    require_torch(f"{path} is a PyTorch checkpoint without a runtime bundle ({bundle_path(path).name}); "
                  "using it (or making the bundle with aecodec export)")
    from ..device import pick_device
    from . import zoo

    net, model_id, digest = zoo.load(str(path), device=pick_device(device))
    return from_torch(net, model_id, digest)


@lru_cache(maxsize=8)
def _load(path: str, mtime: float, device: str, threads: int | None) -> CodecModel:
    p = Path(path)
    return _from_bundle(p, device, threads) if p.name.endswith(BUNDLE_SUFFIX) else _from_checkpoint(p, device)


def _files(model_id: str) -> list[Path]:
    """Every model file of an id, bundles before checkpoints within a folder, folders in search order."""
    found = []
    for d in checkpoint_dirs():
        pt = d / f"{model_id}.pt"
        bundle = bundle_path(pt)
        found += [bundle] if bundle.is_file() else [pt] if pt.is_file() else []
    return found


def _path(model: str | os.PathLike) -> Path | None:
    """The file a ``--model`` names when it is a path (None: it is an id)."""
    p = Path(model)
    if p.name.endswith((BUNDLE_SUFFIX, ".pt")) or p.is_file():
        if not p.is_file():
            raise ModelNotFound(f"model file {p} not found")
        return p
    return None


def load(model: str | os.PathLike | None = None, *, weights_hash: str | None = None, device: str = "cpu",
         threads: int | None = None) -> CodecModel:
    """The model ``model`` (an id — default: the shipped one — or a bundle or checkpoint path),
    cached per process. With ``weights_hash`` (decoding), the id's files are searched for those
    weights; ModelNotFound names what is installed otherwise. ``device``: auto, cpu or cuda
    (:func:`check_device` for a bundle; a checkpoint's torch model goes to torch's device)."""
    check_device_name(device)
    path = _path(model) if model is not None else None
    paths = [path] if path is not None else _files(str(model or DEFAULT_MODEL_ID))
    name = str(model or DEFAULT_MODEL_ID)
    if not paths and weights_hash is not None:
        raise ModelNotFound(f"this file needs model {name}@{weights_hash}, which is not installed (put "
                            f"{name}{BUNDLE_SUFFIX} or {name}.pt in a folder listed in AECODEC_MODEL_PATH)")
    if not paths:
        raise ModelNotFound(f"unknown model id {name!r} (looked in {', '.join(map(str, checkpoint_dirs()))})")
    have = []
    for p in paths:
        net = _load(str(p), p.stat().st_mtime, device, threads)
        if weights_hash is None or net.weights_hash[: len(weights_hash)] == weights_hash:
            return net
        have.append(net.weights_hash)
    raise ModelNotFound(f"this file needs model {name}@{weights_hash}; installed weights of {name} "
                        f"have hash {', '.join(have)} — install the matching weights")

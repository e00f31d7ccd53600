"""The runtime bundle of a torch model (the ``[train]`` side of :mod:`aecodec.models.bundle`).

:func:`export_graphs` traces the transforms into ONNX graphs (opset 17, batch 1, dynamic height
and width, float32 in and out) that onnxruntime runs without PyTorch
(:class:`~aecodec.models.transforms.OnnxTransforms`)::

    g_a   x (1, 3, H, W) in [0, 1]   → y before the gain (1, M, H/16, W/16)   model.analysis
    h_a   gained y (1, M, h, w)       → z (1, N, h/4, w/4)                      model.hyper_analysis
    g_s   y·inv_gain (1, M, h, w)     → x̂ unclamped (1, 3, 16h, 16w)           model.synthesis

Weights that float16 represents exactly (the convolutions of a checkpoint with mixed storage)
are stored as float16 initializers, each cast to float32 by a ``Cast`` node: the graphs are half
the size and compute with exactly the checkpoint's values (onnxruntime folds the casts when it
loads a graph). :func:`bundle_arrays` gives the arrays of the exact entropy path, and
:func:`export_bundle` writes the bundle, after checking onnxruntime's outputs against the model's.

``python -m aecodec.models.onnx_export <checkpoint.pt>`` writes the bundle beside a checkpoint.
"""

from __future__ import annotations

import io
import sys
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch
import torch.nn as nn
from onnx import numpy_helper

from ..errors import ModelError
from .bundle import ARCHITECTURE, GRAPHS, TABLES, WEIGHTS, bundle_path, read_bundle, write_bundle
from .hyperprior import MeanScaleHyperprior

__all__ = ["OPSET", "export_graphs", "bundle_arrays", "export_bundle", "check_graphs"]

OPSET = 17
# graph → (model method, input name, output name): what each graph computes (the module docstring)
_GRAPHS = {"g_a": ("analysis", "x", "y"), "h_a": ("hyper_analysis", "y", "z"), "g_s": ("synthesis", "y", "x_hat")}
_HALF_ARRAYS = ("h_s.",)  # stored in float16 by a mixed checkpoint when exact (models/checkpoint.py)


class _Method(nn.Module):
    """One method of the model as a module's forward, the model's parameters its own (so the
    tracer keeps them as initializers, not as constants that require grad)."""

    def __init__(self, model: nn.Module, method: str):
        super().__init__()
        self.model, self.method = model, method

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return getattr(self.model, self.method)(x)


def _example(model: MeanScaleHyperprior, graph: str) -> torch.Tensor:
    """A small input of ``graph`` to trace with (its height and width stay dynamic)."""
    shape = (1, 3, 64, 64) if graph == "g_a" else (1, model.config.M, 4, 4)
    return torch.zeros(shape, device=model.device)


def export_graphs(model: MeanScaleHyperprior) -> dict[str, bytes]:
    """The ONNX graphs ``g_a``, ``h_a`` and ``g_s`` of ``model`` (the module docstring). Traced in
    eval mode under ``no_grad`` — not inference mode, whose GDN route works in place — with the
    model's mode restored after."""
    training = model.training
    model.eval()
    try:
        return {name: _half_initializers(_trace(model, name)) for name in GRAPHS}
    finally:
        model.train(training)


def _trace(model: MeanScaleHyperprior, graph: str) -> bytes:
    method, inp, out = _GRAPHS[graph]
    buf = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes on shapes read as Python ints: not the user's business
        torch.onnx.export(_Method(model, method), (_example(model, graph),), buf, dynamo=False,
                          opset_version=OPSET, input_names=[inp], output_names=[out],
                          dynamic_axes={inp: {2: "height", 3: "width"}, out: {2: "out_height", 3: "out_width"}})
    return buf.getvalue()


def _half_initializers(data: bytes) -> bytes:
    """The graph with each float32 initializer that float16 represents exactly stored in float16,
    a ``Cast`` to float32 in front of the nodes giving the original name its original values."""
    graph = onnx.load_from_string(data)
    casts = []
    for init in graph.graph.initializer:
        if init.data_type != onnx.TensorProto.FLOAT:
            continue
        w = numpy_helper.to_array(init)
        half = w.astype(np.float16)
        if not np.array_equal(half.astype(np.float32), w):
            continue
        name = init.name
        init.CopyFrom(numpy_helper.from_array(half, f"{name}.f16"))
        casts.append(onnx.helper.make_node("Cast", [f"{name}.f16"], [name], to=onnx.TensorProto.FLOAT))
    nodes = casts + list(graph.graph.node)
    del graph.graph.node[:]
    graph.graph.node.extend(nodes)
    onnx.checker.check_model(graph)
    return graph.SerializeToString()


def bundle_arrays(model: MeanScaleHyperprior) -> dict[str, np.ndarray]:
    """The arrays of the exact entropy path (:data:`~aecodec.models.bundle.ARRAYS`) from the
    model's state dict: h_s's weights in float16 where float16 holds them exactly (as a mixed
    checkpoint stores them), the other floats in float32, the tables in int32. Widened to float32,
    each equals the model's tensor."""
    sd = model.state_dict()
    arrays = {}
    for name in WEIGHTS + TABLES:
        a = sd[name].detach().cpu().numpy()
        if name in WEIGHTS:
            a = a.astype(np.float32)
            if name.startswith(_HALF_ARRAYS) and np.array_equal(a.astype(np.float16).astype(np.float32), a):
                a = a.astype(np.float16)
        arrays[name] = np.ascontiguousarray(a)
    return arrays


def check_graphs(model: MeanScaleHyperprior, graphs: dict[str, bytes], sizes=((64, 64),),
                 seed: int = 0) -> dict[str, float]:
    """onnxruntime's outputs against the model's (under inference mode, as the codec runs it) on
    random images of ``sizes`` (multiples of 64): the largest absolute difference of each graph,
    and ``"pixels"``: of g_s's output as 8-bit pixels (clamped, ×255, rounded)."""
    from .transforms import OnnxTransforms

    ort = OnnxTransforms(graphs, source="the exported graphs")
    gen = torch.Generator().manual_seed(seed)
    diffs = dict.fromkeys((*GRAPHS, "pixels"), 0.0)
    with torch.inference_mode():
        for h, w in sizes:
            x = torch.rand(1, 3, h, w, generator=gen).to(model.device)
            y = model.analysis(x)
            z = model.hyper_analysis(y)
            x_hat = model.synthesis(torch.round(y))
            for name, ref, got in (("g_a", y, ort.analysis(_np(x))), ("h_a", z, ort.hyper_analysis(_np(y))),
                                   ("g_s", x_hat, ort.synthesis(_np(torch.round(y))))):
                diffs[name] = max(diffs[name], float(np.abs(got - _np(ref)).max()))
            pixels = np.abs(_pixels(ort.synthesis(_np(torch.round(y)))) - _pixels(_np(x_hat)))
            diffs["pixels"] = max(diffs["pixels"], float(pixels.max()))
    return diffs


def _np(t: torch.Tensor) -> np.ndarray:
    return t.float().cpu().contiguous().numpy()


def _pixels(x: np.ndarray) -> np.ndarray:
    return np.round(np.clip(x, 0, 1) * 255)


def export_bundle(model: MeanScaleHyperprior, path, *, model_id: str, weights_hash: str) -> Path:
    """Write the runtime bundle of ``model`` (the checkpoint ``model_id``@``weights_hash``, loaded:
    its tensors are the stored ones) to ``path``. The graphs are checked first: onnxruntime's
    pixels must be within one level of the model's (:func:`check_graphs`), or ModelError."""
    graphs = export_graphs(model)
    pixels = check_graphs(model, graphs)["pixels"]
    if pixels > 1:
        raise ModelError(f"{path}: the exported g_s differs from the model by {pixels:g} pixel levels")
    return write_bundle(path, model_id=model_id, weights_hash=weights_hash, architecture=ARCHITECTURE,
                        config=model.config.to_dict(), graphs=graphs, arrays=bundle_arrays(model))


def main(argv: list[str]) -> None:
    """Write the bundle of each checkpoint given, beside it, and show how close onnxruntime is."""
    from .checkpoint import load_checkpoint

    for arg in argv:
        model, ckpt = load_checkpoint(arg, need_tables=True)
        path = export_bundle(model, bundle_path(arg), model_id=ckpt["model_id"], weights_hash=ckpt["weights_hash"])
        print(f"{path}: {path.stat().st_size} bytes")
        diffs = check_graphs(model, read_bundle(path).graphs, sizes=((64, 64), (128, 192), (512, 768)))
        print("max |onnxruntime − torch|: " + ", ".join(f"{k} {v:.3g}" for k, v in diffs.items()))


if __name__ == "__main__":
    main(sys.argv[1:])

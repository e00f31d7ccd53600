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
loads a graph). g_s's transposed convolutions are each a convolution giving the four output phases
then a ``DepthToSpace`` (:func:`_phase_deconvs`): onnxruntime's ``ConvTranspose`` takes hundreds of
megabytes for a Kodak image. :func:`bundle_arrays` gives the arrays of the exact entropy path, and
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
        return {name: _half_initializers(_phase_deconvs(_trace(model, name))) for name in GRAPHS}
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


def _phase_deconvs(data: bytes) -> bytes:
    """The graph with each stride-s transposed convolution that upsamples by exactly s (g_s's)
    computed as one convolution giving the s² output phases as s²·Cout channels, then
    ``DepthToSpace`` (mode DCR): the same sums of the same products, in another order.

    onnxruntime's ``ConvTranspose`` computes a whole col2im buffer, (Cout·k²) × (H·W) floats —
    315 MB in g_s's third layer on a Kodak image — where its ``Conv`` works in small blocks:
    decoding a Kodak image peaks at 360 MB instead of 610, and g_s is 30 % faster. The phase
    kernels are 36/25 of the weights (the zeros), stored: built in the graph from the weights,
    onnxruntime's constant folding would cost the session 20 MB more.

    Output phase r (0 ≤ r < s) of a transposed convolution (kernel k, padding p) at position
    s·m + r sums x[m + d]·w[r + p − s·d] over the d with a tap in the kernel: a correlation over
    d = d_lo … d_hi, the same window for every phase, zero where a phase has no tap. The phase
    kernel ``<weight>.phases`` holds exactly the weight's values (so float16 ones stay float16,
    :func:`_half_initializers`) and zeros; the bias, ``<bias>.phases``, is repeated s² times."""
    graph = onnx.load_from_string(data)
    g = graph.graph
    inits = {init.name: init for init in g.initializer}
    nodes, rewritten = [], False
    for node in g.node:
        phases = _phases(node, inits) if node.op_type == "ConvTranspose" else None
        if phases is None:
            nodes.append(node)
            continue
        s, index, pads = phases
        x, w, *b = node.input
        weight = numpy_helper.to_array(inits[w])  # (Cin, Cout, k, k)
        cin, cout, k, _ = weight.shape
        t = index.shape[1]
        # [ci, co, rh, jh, rw, jw] = w[ci, co, index[rh, jh], index[rw, jw]], index k: the zero padded on
        taps = np.pad(weight, ((0, 0), (0, 0), (0, 1), (0, 1)))[:, :, index][:, :, :, :, index]
        # output channel (rh·s + rw)·Cout + co: the order DepthToSpace's DCR mode reads
        kernel = taps.transpose(2, 4, 1, 0, 3, 5).reshape(s * s * cout, cin, t, t)
        g.initializer.append(numpy_helper.from_array(np.ascontiguousarray(kernel), f"{w}.phases"))
        inputs = [x, f"{w}.phases"]
        if b:
            g.initializer.append(numpy_helper.from_array(np.tile(numpy_helper.to_array(inits[b[0]]), s * s),
                                                         f"{b[0]}.phases"))
            inputs.append(f"{b[0]}.phases")
        name = node.name or node.output[0]
        phased = f"{node.output[0]}.phases"
        nodes += [onnx.helper.make_node("Conv", inputs, [phased], name=f"{name}/phases", kernel_shape=[t, t],
                                        pads=pads, strides=[1, 1], dilations=[1, 1], group=1),
                  onnx.helper.make_node("DepthToSpace", [phased], list(node.output), name=f"{name}/depth_to_space",
                                        blocksize=s, mode="DCR")]
        rewritten = True
    if not rewritten:
        return data
    del g.node[:]
    g.node.extend(nodes)
    used = {i for n in g.node for i in n.input}
    kept = [init for init in g.initializer if init.name in used]  # the transposed convolutions' own: gone
    del g.initializer[:]
    g.initializer.extend(kept)
    onnx.checker.check_model(graph)
    return graph.SerializeToString()


def _phases(node, inits) -> tuple[int, np.ndarray, list[int]] | None:
    """``(s, index, pads)`` of a ConvTranspose that :func:`_phase_deconvs` rewrites — square,
    stride s in both axes, group 1, no dilation, an initializer weight, upsampling by exactly s;
    ``index`` (s, T): the kernel tap of phase r at window position j (k: none), ``pads`` the
    correlation's — or None for any other."""
    a = {attr.name: onnx.helper.get_attribute_value(attr) for attr in node.attribute}
    if set(a) - {"dilations", "group", "kernel_shape", "output_padding", "pads", "strides"}:
        return None  # auto_pad, output_shape: not what the tracer writes for these layers
    w = inits.get(node.input[1])
    if w is None or len(w.dims) != 4:
        return None
    k = w.dims[2]
    s = a.get("strides", [1, 1])[0]
    p = a.get("pads", [0] * 4)[0]
    op = a.get("output_padding", [0, 0])[0]
    if (w.dims[3] != k or a.get("kernel_shape", [k, k]) != [k, k] or a.get("strides", [1, 1]) != [s, s]
            or a.get("pads", [0] * 4) != [p] * 4 or a.get("output_padding", [0, 0]) != [op, op]
            or a.get("dilations", [1, 1]) != [1, 1] or a.get("group", 1) != 1 or s < 2 or k + op - 2 * p != s):
        return None
    # tap r + p − s·d in [0, k) for some phase r: d from ceil((p − k + 1)/s) to floor((s − 1 + p)/s)
    d_lo, d_hi = -((k - 1 - p) // s), (s - 1 + p) // s
    if d_lo > 0 or d_hi < 0:
        return None  # a window not around the position: no such layer here
    taps = [[r + p - s * d for d in range(d_lo, d_hi + 1)] for r in range(s)]
    index = np.array([[i if 0 <= i < k else k for i in row] for row in taps], np.int64)
    return s, index, [-d_lo, -d_lo, d_hi, d_hi]


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

"""aecodec.models.transforms: onnxruntime sessions made lazily, one per graph; graphs it cannot
load or run, or outputs of the wrong shape, are one line of CheckpointError naming the bundle."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from aecodec.errors import CheckpointError
from aecodec.models.bundle import read_bundle
from aecodec.models.transforms import CPU, CUDA, OnnxTransforms
from aecodec.models.zoo import SHIPPED_DIR

SHIPPED = SHIPPED_DIR / "mean-scale-vr-128.runtime.npz"


@pytest.fixture(scope="module")
def graphs():
    return read_bundle(SHIPPED).graphs


def test_importing_the_runtime_modules_imports_neither_torch_nor_onnxruntime():
    code = ("import sys, aecodec.models.transforms, aecodec.models.bundle; "
            "print(sorted(m for m in ('torch', 'onnxruntime', 'onnx') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_sessions_are_made_on_first_use_one_per_graph(graphs):
    t = OnnxTransforms(graphs, source="shipped", threads=1)
    y = np.zeros((1, 192, 2, 3), np.float32)
    x_hat = t.synthesis(y)
    assert x_hat.shape == (1, 3, 32, 48) and x_hat.dtype == np.float32
    assert set(t._sessions) == {"g_s"}  # a decoder pays for g_s only
    assert t.session("g_s") is t.session("g_s")
    opts = t.session("g_s").get_session_options()
    assert opts.intra_op_num_threads == 1
    assert opts.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert opts.enable_mem_pattern is False and opts.enable_cpu_mem_arena is True  # steady memory over runs
    z = t.hyper_analysis(t.analysis(np.full((1, 3, 64, 128), 0.5, np.float32)))
    assert z.shape == (1, 128, 1, 2)


def test_a_provider_this_onnxruntime_lacks_falls_back_to_the_cpu(graphs):
    import onnxruntime

    t = OnnxTransforms(graphs, source="shipped", providers=[CUDA, CPU])
    want = [CUDA, CPU] if CUDA in onnxruntime.get_available_providers() else [CPU]
    assert t.session("h_a").get_providers() == want


def test_a_graph_onnxruntime_cannot_load_is_one_line_naming_the_source(graphs):
    t = OnnxTransforms({**graphs, "g_s": b"\x08\x07garbage"}, source="damaged.runtime.npz")
    t.analysis(np.zeros((1, 3, 64, 64), np.float32))  # the other graphs are fine
    with pytest.raises(CheckpointError, match="^damaged.runtime.npz: onnxruntime cannot load graph g_s: ") as info:
        t.synthesis(np.zeros((1, 192, 1, 1), np.float32))
    assert "\n" not in str(info.value)


def test_a_graph_of_the_wrong_function_is_caught_by_its_output_shape(graphs):
    pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    inp = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 192, "h", "w"])
    out = helper.make_tensor_value_info("x_hat", TensorProto.FLOAT, None)
    model = helper.make_model(helper.make_graph([helper.make_node("Identity", ["y"], ["x_hat"])], "id", [inp], [out]),
                              opset_imports=[helper.make_opsetid("", 17)])
    t = OnnxTransforms({**graphs, "g_s": model.SerializeToString()}, source="odd.runtime.npz")
    with pytest.raises(CheckpointError, match=r"^odd.runtime.npz: graph g_s gave \(1, 192, 2, 2\), not \(1, 3, 32, 32\)"):
        t.synthesis(np.zeros((1, 192, 2, 2), np.float32))


def test_a_graph_that_fails_to_run_is_one_line(graphs):
    t = OnnxTransforms(graphs, source="shipped")
    with pytest.raises(CheckpointError, match="^shipped: graph g_s failed: ") as info:
        t.synthesis(np.zeros((1, 5, 2, 2), np.float32))  # a latent of another model's channels
    assert "\n" not in str(info.value)

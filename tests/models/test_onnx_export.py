"""aecodec.models.onnx_export: the ONNX graphs compute what the torch model computes (within a
pixel level), hold exactly the model's weights (float16 where exact), and ``aecodec export``
writes the runtime bundle beside the checkpoint."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")

from onnx import numpy_helper  # noqa: E402

from aecodec.models.bundle import ARRAYS, bundle_path, read_bundle  # noqa: E402
from aecodec.models.config import HyperpriorConfig  # noqa: E402
from aecodec.models.hyperprior import MeanScaleHyperprior  # noqa: E402
from aecodec.models.onnx_export import bundle_arrays, check_graphs, export_bundle, export_graphs  # noqa: E402
from aecodec.models.zoo import SHIPPED_DIR  # noqa: E402

TOLERANCE = 1e-4  # float32 in another summation order: ~1e-6 measured


@pytest.fixture(scope="module")
def aux_model():
    """A tiny model with the Haar shortcut, its zero-initialised projections made random (so the
    shortcut counts in the outputs), and CDF tables."""
    torch.manual_seed(0)
    model = MeanScaleHyperprior(HyperpriorConfig(N=8, M=12, lambdas=(0.01, 0.02), aux_transform=True)).eval()
    with torch.no_grad():
        for proj in (model.aux_a.proj, model.aux_s.proj):
            proj.weight.normal_(0, 0.02)
    model.update()
    return model


def test_the_shipped_graphs_match_the_torch_model(net):
    graphs = read_bundle(SHIPPED_DIR / "mean-scale-vr-128.runtime.npz").graphs
    diffs = check_graphs(net, graphs, sizes=((64, 64), (128, 192)))
    assert max(diffs[g] for g in ("g_a", "h_a", "g_s")) < TOLERANCE, diffs
    assert diffs["pixels"] <= 1


def _phase_kernel(w: np.ndarray) -> np.ndarray:
    """The 3×3 kernel of the four output phases of a 5×5 stride-2 transposed convolution
    (padding 2, output padding 1), output channel (2·rh + rw)·Cout + co as DepthToSpace's DCR
    mode reads: output row 2m + rh sums x[m + jh − 1]·w[rh + 4 − 2·jh] (tap 5: none, zero)."""
    cin, cout = w.shape[:2]
    k = np.zeros((4 * cout, cin, 3, 3), w.dtype)
    for rh in range(2):
        for rw in range(2):
            for jh in range(3):
                for jw in range(3):
                    th, tw = rh + 4 - 2 * jh, rw + 4 - 2 * jw
                    if th < 5 and tw < 5:
                        k[(2 * rh + rw) * cout:(2 * rh + rw + 1) * cout, :, jh, jw] = w[:, :, th, tw].T
    return k


def test_the_shipped_graphs_hold_exactly_the_models_weights_mostly_in_float16(net):
    sd = {f"model.{k}": v.numpy() for k, v in net.state_dict().items()}
    for name, data in read_bundle(SHIPPED_DIR / "mean-scale-vr-128.runtime.npz").graphs.items():
        graph = onnx.load_from_string(data)
        sizes = {np.float16: 0, np.float32: 0}
        phased = 0
        for init in graph.graph.initializer:
            w = numpy_helper.to_array(init)
            key = init.name.removesuffix(".f16")
            if key in sd:
                assert np.array_equal(w.astype(np.float32), sd[key]), key
            elif key.endswith(".weight.phases"):  # g_s's transposed convolutions, as convolutions of 4 phases
                assert np.array_equal(w.astype(np.float32), _phase_kernel(sd[key.removesuffix(".phases")])), key
                phased += 1
            elif key.endswith(".bias.phases"):
                assert np.array_equal(w, np.tile(sd[key.removesuffix(".phases")], 4)), key
            if w.dtype in (np.float16, np.float32):
                sizes[w.dtype.type] += w.size
        assert phased == (4 if name == "g_s" else 0), name
        assert sizes[np.float16] > 20 * sizes[np.float32], name  # GDN's parameters stay float32


def test_the_shipped_g_s_has_no_transposed_convolution_and_matches_torch_on_odd_latents(net):
    from aecodec.models.transforms import OnnxTransforms

    graphs = read_bundle(SHIPPED_DIR / "mean-scale-vr-128.runtime.npz").graphs
    ops = {n.op_type for n in onnx.load_from_string(graphs["g_s"]).graph.node}
    assert "ConvTranspose" not in ops and "DepthToSpace" in ops  # onnxruntime's ConvTranspose: a whole col2im buffer
    ort = OnnxTransforms(graphs, source="shipped")
    gen = torch.Generator().manual_seed(0)
    for h, w in ((1, 1), (3, 5), (2, 7)):
        y = torch.randn(1, net.config.M, h, w, generator=gen) * 4
        with torch.inference_mode():
            ref = net.synthesis(y.contiguous(memory_format=torch.channels_last)).contiguous().numpy()
        got = ort.synthesis(y.numpy())
        assert got.shape == ref.shape == (1, 3, 16 * h, 16 * w)
        assert np.abs(got - ref).max() < TOLERANCE, (h, w)


def test_a_model_with_the_aux_shortcut_exports_and_matches(aux_model):
    graphs = export_graphs(aux_model)
    assert set(graphs) == {"g_a", "h_a", "g_s"}
    ops = [n.op_type for n in onnx.load_from_string(graphs["g_s"]).graph.node]
    assert "ConvTranspose" not in ops and ops.count("DepthToSpace") == 5  # g_s's four and the Haar shortcut's
    diffs = check_graphs(aux_model, graphs, sizes=((64, 64), (128, 192)))
    assert max(diffs[g] for g in ("g_a", "h_a", "g_s")) < TOLERANCE, diffs
    assert diffs["pixels"] <= 1
    assert aux_model.training is False
    aux_model.train()
    export_graphs(aux_model)
    assert aux_model.training is True  # the model's mode is restored
    aux_model.eval()


def test_bundle_arrays_are_the_state_dict_entries(aux_model):
    arrays = bundle_arrays(aux_model)
    sd = aux_model.state_dict()
    assert set(arrays) == set(ARRAYS)
    for name, a in arrays.items():
        assert np.array_equal(a.astype(np.float32) if a.dtype.kind == "f" else a, sd[name].numpy()), name
    assert arrays["log_gain"].dtype == np.float32 and arrays["entropy_bottleneck._offset"].dtype == np.int32


def test_export_bundle_writes_a_bundle_that_reads_back(aux_model, tmp_path):
    path = export_bundle(aux_model, tmp_path / "tiny.runtime.npz", model_id="tiny", weights_hash="ab" * 8)
    b = read_bundle(path)
    assert (b.model_id, b.weights_hash) == ("tiny", "ab" * 8)
    assert HyperpriorConfig.from_dict(b.config) == aux_model.config


def test_the_export_command_writes_the_bundle_beside_the_checkpoint(aux_model, tmp_path):
    from typer.testing import CliRunner

    from aecodec.cli import app
    from aecodec.models.checkpoint import read_checkpoint, save_checkpoint

    run, weights = tmp_path / "run.pt", tmp_path / "tiny-aux.pt"
    save_checkpoint(run, aux_model, model_id="tiny-aux")
    r = CliRunner().invoke(app, ["export", str(run), "-o", str(weights)])
    assert r.exit_code == 0, r.output
    assert bundle_path(weights) == tmp_path / "tiny-aux.runtime.npz"
    b = read_bundle(bundle_path(weights))
    stored = read_checkpoint(weights)
    assert (b.model_id, b.weights_hash) == ("tiny-aux", stored["weights_hash"])
    for name, a in b.arrays.items():
        t = stored["state_dict"][name]
        assert str(a.dtype) == str(t.dtype).removeprefix("torch.") and np.array_equal(a, t.numpy()), name

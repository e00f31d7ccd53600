"""aecodec.entropy.exact: the numpy h_s is value for value the torch path's exact h_s."""

from __future__ import annotations

import numpy as np
import pytest

from aecodec.entropy import exact
from aecodec.entropy.exact import ExactHyperSynthesis, FixedPoint


def _z_in(shape, seed=0, N=128) -> np.ndarray:
    """An exact input as the hyperprior makes it: integer symbols plus grid medians."""
    rng = np.random.default_rng(seed)
    med = np.round(rng.normal(0, 2, (1, N, 1, 1)) * 1024) / 1024
    return np.round(rng.normal(0, 4, (1, N, *shape))) + med


def _small(seed=0, N=4, M=8, dtype=np.float32) -> ExactHyperSynthesis:
    rng = np.random.default_rng(seed)
    shapes = [(N, M, 5, 5), (M, M * 3 // 2, 5, 5), (2 * M, M * 3 // 2, 3, 3)]
    return ExactHyperSynthesis([(rng.normal(0, 0.3, s).astype(dtype), rng.normal(0, 0.5, s[1] if i < 2 else s[0]).astype(dtype))
                                for i, s in enumerate(shapes)], FixedPoint())


@pytest.fixture(scope="module")
def torch_hs():
    pytest.importorskip("torch")
    from aecodec.models import zoo

    net = zoo.load()[0]
    sd = {k: v.numpy() for k, v in net.state_dict().items()}
    layers = [(sd[f"h_s.layers.{i}.weight"], sd[f"h_s.layers.{i}.bias"]) for i in range(3)]
    return net, layers


@pytest.mark.parametrize("shape", [(1, 1), (8, 12), (17, 5)])  # one position, a Kodak image, across pieces
def test_equals_the_torch_exact_path_on_the_shipped_weights(torch_hs, shape):
    import torch

    net, layers = torch_hs
    z_in = _z_in(shape)
    ours = ExactHyperSynthesis(layers, net.config.fixed_point)(z_in)
    theirs = net.h_s.exact(torch.from_numpy(z_in)).numpy()
    assert ours.dtype == np.float64 and ours.shape == (1, 384, 4 * shape[0], 4 * shape[1])
    assert np.array_equal(ours, theirs)


def test_float16_weights_are_widened_to_the_same_grid(torch_hs):
    """The shipped weights are float16 numbers (the checkpoint stores them so): float16 copies
    snap to the same grid as the float32 ones the torch model holds."""
    net, layers = torch_hs
    half = [(w.astype(np.float16), b.astype(np.float16)) for w, b in layers]
    z_in = _z_in((3, 5), seed=1)
    fp = net.config.fixed_point
    assert np.array_equal(ExactHyperSynthesis(half, fp)(z_in), ExactHyperSynthesis(layers, fp)(z_in))


def test_values_are_on_the_grid_and_the_same_in_one_pass(monkeypatch):
    hs = _small()
    z_in = _z_in((21, 19), seed=2, N=4)
    pieces = hs(z_in)
    monkeypatch.setattr(exact, "PIECE", 64)
    assert np.array_equal(pieces, hs(z_in))
    assert np.array_equal(pieces * 1024, np.round(pieces * 1024)) and np.abs(pieces).max() <= 1024
    assert (pieces[:, 8:] != 0).any()


def test_empty_input_and_wrong_shapes():
    hs = _small()
    assert hs(np.zeros((1, 4, 0, 3))).shape == (1, 16, 0, 12)
    for shape in [(1, 5, 2, 2), (2, 4, 2, 2), (4, 2, 2)]:
        with pytest.raises(ValueError, match="h_s takes"):
            hs(np.zeros(shape))
    with pytest.raises(ValueError, match="3 layers"):
        ExactHyperSynthesis([], FixedPoint())

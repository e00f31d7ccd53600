"""aecodec.models.fixed_point: the fixed-point h_s is exact and device-independent, whatever the route."""

from __future__ import annotations

import math

import numpy as np
import torch

from aecodec.codec.geometry import padded
from aecodec.codec.pipeline import quality_to_level
from aecodec.models import zoo
from aecodec.models.fixed_point import FixedPoint, check_bounds


def _z_hat(net, rgb: np.ndarray, quality: float = 60) -> torch.Tensor:
    x = torch.from_numpy(rgb.copy()).permute(2, 0, 1)[None].float() / 255
    h, w = x.shape[-2:]
    hp, wp = padded(h, w, net.config.stride)
    x = torch.nn.functional.pad(x, (0, wp - w, 0, hp - h), mode="replicate")
    with torch.no_grad():
        g, _ = net.gains(torch.tensor([quality_to_level(quality, net.config.num_levels)]))
        z = net.h_a(net.g_a(x) * g)
        return net.entropy_bottleneck.decompress(net.entropy_bottleneck.compress(z), z.shape[-2:])


def test_every_partial_sum_of_the_real_layers_fits_float64_exactly(net):
    """The bound from the layers the model really has (fan-in from each weight's shape, the
    largest grid weight it really holds) stays below 2**53, and check_bounds does not understate it."""
    fp = net.config.fixed_point
    a_units, bias_units = fp.a_max * 2**fp.a_bits, fp.a_max * 2 ** (fp.w_bits + fp.a_bits)
    worst = 0.0
    for layer, (w, _) in zip(net.h_s.layers, net.h_s._grid_params(exact=True)):
        c_in = layer.in_channels
        k = layer.weight.shape[-1] * layer.weight.shape[-2]
        w_units = float(w.abs().max()) * 2**fp.w_bits
        assert w_units <= fp.w_max * 2**fp.w_bits and float(w_units).is_integer()
        worst = max(worst, c_in * k * w_units * a_units + bias_units)
    assert math.log2(worst) < 53
    assert check_bounds(net.config.N, net.config.M, fp) >= math.ceil(math.log2(worst))


# --- an independent route: numpy int64, explicit im2col, transposed conv as dilated conv ---------
def _round_half_even_div(v: np.ndarray, shift: int) -> np.ndarray:
    q, r = np.divmod(v, 1 << shift)
    half = 1 << (shift - 1)
    return q + ((r > half) | ((r == half) & (q % 2 == 1)))


def _conv_int(x: np.ndarray, w: np.ndarray, pad: tuple[int, int, int, int]) -> np.ndarray:
    """x (C, H, W) int64, w (O, C, k, k) int64, pad (top, bottom, left, right) → (O, H', W')."""
    k = w.shape[-1]
    xp = np.pad(x, ((0, 0), (pad[0], pad[1]), (pad[2], pad[3])))
    win = np.lib.stride_tricks.sliding_window_view(xp, (k, k), axis=(1, 2))  # C, H', W', k, k
    C, Ho, Wo = win.shape[:3]
    cols = win.transpose(1, 2, 0, 3, 4).reshape(Ho * Wo, C * k * k)  # im2col
    return (cols @ w.reshape(w.shape[0], -1).T).T.reshape(w.shape[0], Ho, Wo)  # int64 matmul


def _exact_int64(hs, z_hat: torch.Tensor) -> np.ndarray:
    fp: FixedPoint = hs.fp
    wb, ab = fp.w_bits, fp.a_bits
    a_max = int(fp.a_max * 2**ab)
    x = np.clip(np.round(z_hat[0].double().numpy() * 2**ab), -a_max, a_max).astype(np.int64)
    for i, layer in enumerate(hs.layers):
        w = np.round(np.clip(layer.weight.detach().double().numpy(), -fp.w_max, fp.w_max) * 2**wb).astype(np.int64)
        b = np.round(np.clip(layer.bias.detach().double().numpy(), -fp.a_max, fp.a_max) * 2 ** (wb + ab)).astype(np.int64)
        if isinstance(layer, torch.nn.ConvTranspose2d):
            C, H, W = x.shape
            dil = np.zeros((C, 2 * H - 1, 2 * W - 1), np.int64)
            dil[:, ::2, ::2] = x
            w_eq = np.flip(w, (-2, -1)).transpose(1, 0, 2, 3)  # (Cout, Cin, k, k)
            acc = _conv_int(dil, np.ascontiguousarray(w_eq), (2, 3, 2, 3))
        else:
            acc = _conv_int(x, w, (1, 1, 1, 1))
        assert np.abs(acc).max() < 2**53
        x = _round_half_even_div(acc + b[:, None, None], wb)
        last = i == len(hs.layers) - 1
        x = np.clip(x, -a_max if last else 0, a_max)
    return x  # units of 2**-a_bits


def test_entropy_parameters_match_an_independent_int64_recomputation(net, images):
    table = net.gaussian_conditional.scale_table.double().numpy()
    for rgb in images:
        z_hat = _z_hat(net, rgb)
        indexes, means = net.entropy_parameters(z_hat)
        ref = _exact_int64(net.h_s, net.exact_hyper_input(z_hat)) / 2.0**net.config.fixed_point.a_bits
        scales_ref, means_ref = np.split(ref, 2, axis=0)
        idx_ref = np.searchsorted(table[:-1], np.maximum(scales_ref, table[0]), side="left")
        np.testing.assert_array_equal(indexes[0].numpy(), idx_ref)
        np.testing.assert_array_equal(means[0].double().numpy(), means_ref)


def test_other_memory_layout_and_dtype_give_identical_indexes(net, images):
    for rgb in images[:2]:
        z_hat = _z_hat(net, rgb)
        ref = net.h_s.exact(z_hat)
        alt = net.h_s.exact(z_hat.to(memory_format=torch.channels_last).double())
        assert torch.equal(ref, alt)
        # batch of two (other GEMM blocking), each item equal to the single run
        both = net.h_s.exact(torch.cat([z_hat, z_hat.flip(-1)]))
        assert torch.equal(both[:1], ref)


def test_tiny_perturbations_of_the_input_do_not_change_the_result(net, images):
    z_hat = _z_hat(net, images[0])
    ref = net.entropy_parameters(z_hat)
    for eps in (1e-7, -1e-7, 1e-6, -1e-6, 1e-3, -1e-3):
        out = net.entropy_parameters(z_hat + eps * torch.randn_like(z_hat).sign())
        assert torch.equal(out[0], ref[0]) and torch.equal(out[1], ref[1])


def test_training_path_matches_the_exact_path(net, images):
    z_hat = _z_hat(net, images[0])
    with torch.no_grad():
        float_path = net.h_s(z_hat).double()
    exact = net.h_s.exact(z_hat)
    assert (float_path - exact).abs().max() <= 2 * 2.0**-net.config.fixed_point.a_bits + 1e-6


def test_the_exact_path_in_pieces_equals_one_pass_bit_for_bit():
    net = zoo.load()[0]
    gen = torch.Generator().manual_seed(1)
    for h, w in ((5, 7), (37, 9), (16, 16), (1, 1)):
        z_hat = net.exact_hyper_input(torch.randn(1, net.config.N, h, w, generator=gen) * 3)
        whole = net.h_s.exact(z_hat, piece=max(h, w))
        for piece in (1, 2, 3, 5):
            assert torch.equal(net.h_s.exact(z_hat, piece=piece), whole), (h, w, piece)

"""Device-independent entropy parameters: the fixed-point h_s is exact, whatever the route."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from aecodec.codec.images import prepare_image
from aecodec.codec.geometry import padded
from aecodec.codec.pipeline import quality_to_level
from aecodec.models import zoo
from aecodec.models.fixed_point import FixedPoint, check_bounds

from .conftest import smooth_image


@pytest.fixture(scope="module")
def net():
    return zoo.load()[0]


def _z_hat(net, rgb: np.ndarray, quality: float = 60) -> torch.Tensor:
    x = torch.from_numpy(rgb.copy()).permute(2, 0, 1)[None].float() / 255
    h, w = x.shape[-2:]
    hp, wp = padded(h, w, net.config.stride)
    x = torch.nn.functional.pad(x, (0, wp - w, 0, hp - h), mode="replicate")
    with torch.no_grad():
        g, _ = net.gains(torch.tensor([quality_to_level(quality, net.config.num_levels)]))
        z = net.h_a(net.g_a(x) * g)
        return net.entropy_bottleneck.decompress(net.entropy_bottleneck.compress(z), z.shape[-2:])


def _images(kodak_dir):
    imgs = [smooth_image(128, 192, seed=1)]
    if kodak_dir is not None:
        # natural photos, cropped to 256×384 to keep the int64 reference fast
        imgs += [prepare_image(kodak_dir / f"kodim{i:02d}.png")[0][:256, :384] for i in (1, 7, 23)]
    return imgs


@pytest.fixture(scope="module")
def images(request):
    from .conftest import KODAK
    return _images(KODAK if (KODAK / "kodim23.png").is_file() else None)


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


def _decode_with_threads(data: bytes, threads: int):
    import aecodec
    from aecodec.codec.api import decode_latents
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return decode_latents(data), np.asarray(aecodec.decode(data))
    finally:
        torch.set_num_threads(old)


def _encode_with_threads(img, threads: int) -> bytes:
    import aecodec
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return aecodec.encode(img, quality=50)
    finally:
        torch.set_num_threads(old)


def test_latents_and_pixels_do_not_depend_on_the_thread_count(images):
    img = images[-1]
    enc1, enc2 = _encode_with_threads(img, 1), _encode_with_threads(img, 2)
    for data in (enc1, enc2):
        y1, p1 = _decode_with_threads(data, 1)
        y2, p2 = _decode_with_threads(data, 2)
        assert torch.equal(y1, y2)
        assert np.abs(p1.astype(int) - p2.astype(int)).max() <= 1
        assert np.array_equal(p1, p2)


def test_thread_invariant_gdn_computes_compressais_gdn():
    from aecodec._compressai import compressai
    from aecodec.models.layers import GDN
    x = torch.randn(2, 16, 9, 7)
    for inverse in (False, True):
        ref = compressai().layers.GDN(16, inverse=inverse)
        with torch.no_grad():
            ref.gamma.add_(0.05 * torch.rand_like(ref.gamma))
        ours = GDN(16, inverse=inverse)
        ours.load_state_dict(ref.state_dict())
        torch.testing.assert_close(ours(x), ref(x), rtol=1e-5, atol=1e-6)


def test_channels_last_synthesis_gives_the_same_bits_as_the_planar_one(net, images):
    """The decoder runs g_s on channels-last tensors for speed (MeanScaleHyperprior.synthesize);
    every decoded value must be the one the planar g_s gives, with 1 and 2 threads."""
    from aecodec.codec.geometry import pad_to_stride

    old = torch.get_num_threads()
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            for img in images:
                x = torch.from_numpy(pad_to_stride(img, net.config.stride).copy()).permute(2, 0, 1)[None].float() / 255
                for quality in (0, 75, 100):
                    level = quality_to_level(quality, net.config.num_levels)
                    with torch.inference_mode():
                        gain, inv_gain = net.gains(torch.tensor([level]))
                        y_hat = torch.round(net.g_a(x) * gain)
                        planar = net.synthesis(y_hat * inv_gain).clamp_(0, 1)
                        fast = net.synthesize(y_hat, level)
                    assert fast.is_contiguous(memory_format=torch.channels_last)
                    assert torch.equal(fast, planar), (threads, quality)
    finally:
        torch.set_num_threads(old)


@pytest.mark.parametrize("inverse", [False, True])
def test_gdn_on_channels_last_input_computes_the_same_function(inverse):
    from aecodec.models.layers import GDN
    torch.manual_seed(0)
    gdn = GDN(16, inverse=inverse)
    with torch.no_grad():
        gdn.gamma.add_(0.05 * torch.rand_like(gdn.gamma))
    x = torch.randn(2, 16, 9, 7)
    xc = x.contiguous(memory_format=torch.channels_last).requires_grad_()
    ref = gdn(x.requires_grad_())
    out = gdn(xc)  # with autograd: no in-place ops on its way
    torch.testing.assert_close(out, ref, rtol=1e-6, atol=1e-6)
    out.sum().backward()
    ref.sum().backward()
    torch.testing.assert_close(xc.grad, x.grad, rtol=1e-5, atol=1e-6)
    with torch.inference_mode():
        torch.testing.assert_close(gdn(x.detach().contiguous(memory_format=torch.channels_last)), ref.detach(),
                                   rtol=1e-6, atol=1e-6)


def test_entropy_coding_gives_compressais_strings_and_values(net):
    """aecodec's compress/decompress (cached tables, numpy conversion) against CompressAI's own
    EntropyModel methods on the same model: the same strings, the same decoded values; and the
    cached tables follow a change of the tables (update at export)."""
    from aecodec._compressai import compressai

    base = compressai().entropy_models.EntropyModel
    gc, eb = net.gaussian_conditional, net.entropy_bottleneck
    g = torch.Generator().manual_seed(0)
    y = torch.randn(1, 8, 6, 5, generator=g) * 6
    means = torch.randn(1, 8, 6, 5, generator=g)
    indexes = torch.randint(0, gc._quantized_cdf.shape[0], (1, 8, 6, 5), generator=g, dtype=torch.int32)
    with torch.inference_mode():
        ours, theirs = gc.compress(y, indexes, means), base.compress(gc, y, indexes, means)
        assert ours == theirs
        assert torch.equal(gc.decompress(ours, indexes, means=means), base.decompress(gc, theirs, indexes, means=means))
        z = torch.randn(1, net.config.N, 3, 4, generator=g) * 3
        z_str = eb.compress(z)
        assert z_str == compressai().entropy_models.EntropyBottleneck.compress(eb, z)  # through super()
        z_hat = eb.decompress(z_str, (3, 4))
        assert torch.equal(z_hat, torch.round(z - eb._get_medians().reshape(1, -1, 1, 1)) + eb._get_medians().reshape(1, -1, 1, 1))
    import copy

    other = copy.deepcopy(gc)
    with torch.inference_mode():
        before = other.compress(y, indexes, means)
        for name in ("_quantized_cdf", "_cdf_length", "_offset"):  # other tables (in place): the
            getattr(other, name).copy_(getattr(other, name).flip(0))  # cache must not serve the old ones
        assert other.compress(y, indexes, means) == base.compress(other, y, indexes, means) != before

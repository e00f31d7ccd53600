"""aecodec.entropy.latents: the torch-free coding path gives the torch path's z_hat, indexes, means
and y_hat, refuses damaged strings with a ValueError only, and checks the arrays it is built from."""

from __future__ import annotations

import time

import numpy as np
import pytest

from aecodec.entropy.exact import FixedPoint
from aecodec.entropy.latents import MAX_LATENT, HyperpriorCoding
from tests.entropy.test_ans import gaussian_tables

N, M = 4, 8  # the synthetic model's channels


def synthetic_arrays(seed: int = 0) -> dict[str, np.ndarray]:
    """A small model's state-dict arrays: random h_s, Gaussian tables for z and y."""
    rng = np.random.default_rng(seed)
    gc, eb = gaussian_tables(8), gaussian_tables(N)
    shapes = [(N, M, 5, 5), (M, M * 3 // 2, 5, 5), (2 * M, M * 3 // 2, 3, 3)]
    arrays = {f"h_s.layers.{i}.weight": rng.normal(0, 0.2, s).astype(np.float32) for i, s in enumerate(shapes)}
    arrays.update({f"h_s.layers.{i}.bias": rng.normal(0, 0.3, n).astype(np.float32)
                   for i, n in enumerate((M, M * 3 // 2, 2 * M))})
    quantiles = np.zeros((N, 1, 3), np.float32)
    quantiles[:, 0, 1] = rng.normal(0, 0.4, N)
    arrays["entropy_bottleneck.quantiles"] = quantiles
    for name, t in [("entropy_bottleneck", eb), ("gaussian_conditional", gc)]:
        arrays.update({f"{name}._quantized_cdf": t.cdfs.astype(np.int32), f"{name}._cdf_length": t.lengths.astype(np.int32),
                       f"{name}._offset": t.offsets.astype(np.int32)})
    arrays["gaussian_conditional.scale_table"] = np.geomspace(0.11, 40, 8).astype(np.float32)
    return arrays


@pytest.fixture(scope="module")
def small() -> HyperpriorCoding:
    return HyperpriorCoding.from_arrays(synthetic_arrays(), FixedPoint())


def _latents(h: int, w: int, seed: int = 0, channels=(M, N), scale: float = 3.0):
    rng = np.random.default_rng(seed)
    y = (rng.normal(0, scale, (1, channels[0], 4 * h, 4 * w))).astype(np.float32)
    z = (rng.normal(0, scale, (1, channels[1], h, w))).astype(np.float32)
    return y, z


@pytest.mark.parametrize("size", [(0, 0), (0, 3), (1, 1), (3, 5)])
def test_round_trip_of_a_small_model(small, size):
    y, z = _latents(*size)
    if y.size:
        y[0, 0, 0, 0] = 500.0  # an escape
    s = small.compress(y, z)
    assert s["z_shape"] == size
    out = small.decompress(s["y"], s["z"], s["z_shape"])
    med = small.medians[None, :, None, None]
    assert np.array_equal(out["z_hat"], np.round(z - med) + med)
    assert np.array_equal(out["y_hat"], np.round(y - out["means"]) + out["means"])
    assert out["y_hat"].dtype == out["means"].dtype == out["z_hat"].dtype == np.float32
    assert out["indexes"].dtype == np.int32 and out["indexes"].shape == y.shape


def test_latents_it_cannot_code_are_refused(small):
    y, z = _latents(1, 2)
    for bad in [np.nan, np.inf, 2 * MAX_LATENT]:
        y2 = y.copy()
        y2[0, 0, 0, 0] = bad
        with pytest.raises(ValueError, match="cannot be entropy-coded"):
            small.compress(y2, z)
    with pytest.raises(ValueError, match="shapes"):
        small.compress(y[..., :4], z)


def test_damaged_strings_raise_value_error_only(small):
    """Truncated, bit-flipped, extended, random and swapped strings: a ValueError, or (a valid string of
    other values) a decode whose strings re-encode to exactly the given ones."""
    y, z = _latents(2, 3, seed=1)
    good = small.compress(y, z)
    rng = np.random.default_rng(3)
    refused = 0
    for i in range(300):
        strings = {"y": bytearray(good["y"]), "z": bytearray(good["z"])}
        key = "yz"[i % 2]
        how = (i // 2) % 5
        s = strings[key]
        if how == 0:
            del s[int(rng.integers(0, len(s) + 1)):]
        elif how == 1:
            s[int(rng.integers(len(s)))] ^= 1 << int(rng.integers(8))
        elif how == 2:
            s += rng.bytes(int(rng.integers(1, 9)))
        elif how == 3:
            s[:] = rng.bytes(int(rng.integers(0, 2 * len(s))))
        else:
            strings = {"y": bytearray(good["z"]), "z": bytearray(good["y"])}
        try:
            out = small.decompress(bytes(strings["y"]), bytes(strings["z"]), good["z_shape"])
        except ValueError as exc:
            assert str(exc) in ("damaged z string", "damaged y string")
            refused += 1
            continue
        again = small.compress(out["y_hat"], out["z_hat"])
        assert (again["y"], again["z"]) == (bytes(strings["y"]), bytes(strings["z"]))
    assert refused > 250


@pytest.mark.parametrize("name, damage, message", [
    ("entropy_bottleneck.quantiles", "missing", "missing"),
    ("h_s.layers.1.weight", "shape", "h_s.layers.1.weight"),
    ("h_s.layers.2.bias", "nan", "not finite"),
    ("gaussian_conditional._cdf_length", "float", "_cdf_length"),
    ("gaussian_conditional._quantized_cdf", "zero", "gaussian_conditional: tables"),
    ("entropy_bottleneck._offset", "shape", "entropy_bottleneck._offset"),
    ("gaussian_conditional.scale_table", "unsorted", "scale_table"),
    ("entropy_bottleneck.quantiles", "huge", "medians"),
])
def test_malformed_arrays_are_refused_by_name(name, damage, message):
    arrays = synthetic_arrays()
    a = arrays[name]
    if damage == "missing":
        del arrays[name]
    elif damage == "shape":
        arrays[name] = a[:-1]
    elif damage == "nan":
        arrays[name] = np.full_like(a, np.nan)
    elif damage == "float":
        arrays[name] = a.astype(np.float32)
    elif damage == "zero":
        arrays[name] = a.copy()
        arrays[name][0, 1] = 0
    elif damage == "unsorted":
        arrays[name] = a[::-1].copy()
    else:
        arrays[name] = a * 0 + 1e30
    with pytest.raises(ValueError, match=message):
        HyperpriorCoding.from_arrays(arrays, FixedPoint())


# --- against the torch path, on the shipped model ------------------------------------------------
@pytest.fixture(scope="module")
def shipped():
    torch = pytest.importorskip("torch")
    from aecodec.models import zoo

    net = zoo.load()[0]
    coding = HyperpriorCoding.from_arrays({k: v.numpy() for k, v in net.state_dict().items()}, net.config.fixed_point)
    return torch, net, coding


@pytest.fixture(scope="module")
def sample_y(shipped):
    """g_a of the sample photo's 192×320 crop (odd z: 3×5) and of a 64×64 one (z: 1×1), before the gain."""
    from PIL import Image

    import aecodec.samples

    torch, net, _ = shipped
    rgb = np.asarray(Image.open(aecodec.samples.path()).convert("RGB"))
    x = torch.from_numpy(rgb[100:292, 140:460].copy()).permute(2, 0, 1)[None].float() / 255
    return [net.analyze(x, None), net.analyze(x[..., 50:114, 20:84], None)]


@pytest.mark.parametrize("level", [0.0, 3.3, 7.0])
def test_the_same_z_hat_indexes_means_and_y_hat_as_the_torch_path(shipped, sample_y, level):
    torch, net, coding = shipped
    for y0 in sample_y:
        with torch.no_grad():
            y = net.apply_gain(y0, level)
            z = net.h_a(y)
        ours = coding.decompress(**_strings(coding.compress(y.numpy(), z.numpy())))
        theirs = net.decode_latents(**_strings(net.compress_latents(y, z)))
        for k in ("z_hat", "indexes", "means", "y_hat"):
            assert ours[k].dtype == theirs[k].numpy().dtype and np.array_equal(ours[k], theirs[k].numpy()), k
        z_symbols = np.round(z.numpy() - coding.medians[None, :, None, None]).astype(np.int32)
        indexes, means = net.entropy_parameters(theirs["z_hat"])
        assert all(np.array_equal(a, b.numpy()) for a, b in zip(coding.entropy_parameters(z_symbols), (indexes, means)))


def test_table_choice_matches_bucketize_at_the_boundaries(shipped):
    """Scales at, just below and just above each table scale (float64 of the float32 table) pick the
    table torch.bucketize picks."""
    torch, net, coding = shipped
    table = coding.scale_table.astype(np.float64)
    scales = np.concatenate([table, np.nextafter(table, 0), np.nextafter(table, np.inf), [0.0, -1.0, 1e9]])
    ours = np.searchsorted(table[:-1], np.maximum(scales, table[0]), side="left")
    theirs = net.gaussian_conditional.indexes(torch.from_numpy(scales))
    assert np.array_equal(ours, theirs.numpy())


def test_speed_of_a_kodak_sized_tile(shipped, capsys):
    """A 512×768 tile's latents (y 192×32×48, z 128×8×12): printed, loosely bounded."""
    torch, net, coding = shipped
    rng = np.random.default_rng(0)
    y = torch.from_numpy(rng.normal(0, 4, (1, 192, 32, 48)).astype(np.float32))
    with torch.no_grad():
        z = net.h_a(y).numpy()
    t0 = time.perf_counter()
    s = coding.compress(y.numpy(), z)
    t1 = time.perf_counter()
    coding.decompress(**_strings(s))
    t2 = time.perf_counter()
    with capsys.disabled():
        print(f"\nKodak-sized tile: compress {1e3 * (t1 - t0):.0f} ms, decompress {1e3 * (t2 - t1):.0f} ms "
              f"(y {len(s['y'])} bytes, z {len(s['z'])} bytes)")
    assert t2 - t1 < 5


def _strings(s: dict) -> dict:
    return {"y_string": s["y"], "z_string": s["z"], "z_shape": s["z_shape"]}

"""aecodec.metrics: PSNR, SSIM and MS-SSIM against direct computations and pytorch_msssim's own calls
(those skipped without torch: the runtime computes them in numpy)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from aecodec.metrics import ms_ssim, ms_ssim_db, psnr, ssim, ssim_and_ms_ssim
from tests.helpers import KODAK, synthetic


def test_psnr_matches_a_direct_numpy_computation():
    ref = np.asarray(synthetic())
    rec = np.clip(ref.astype(int) + np.random.default_rng(1).integers(-9, 10, ref.shape), 0, 255).astype(np.uint8)
    mse = ((ref.astype(np.float64) - rec.astype(np.float64)) ** 2).mean()
    assert psnr(ref, rec) == pytest.approx(10 * np.log10(255**2 / mse), abs=1e-9)
    assert psnr(Image.fromarray(ref), Image.fromarray(rec)) == pytest.approx(psnr(ref, rec), abs=1e-12)


def test_psnr_of_an_error_of_one_level_everywhere_is_48_13_db():
    ref = np.full((10, 12, 3), 100, np.uint8)
    assert psnr(ref, ref + 1) == pytest.approx(20 * math.log10(255), abs=1e-9)  # 48.1308 dB


def test_psnr_of_a_gray_image_is_on_the_gray_plane_and_identical_images_give_inf():
    ref = synthetic(75, 61, "L")
    rec = Image.fromarray(np.clip(np.asarray(ref).astype(int) + 3, 0, 255).astype(np.uint8), "L")
    a, b = np.asarray(ref, np.float64), np.asarray(rec, np.float64)
    assert psnr(ref, rec) == pytest.approx(10 * np.log10(255**2 / ((a - b) ** 2).mean()))
    assert psnr(ref, ref) == math.inf


def test_ssim_is_one_for_identical_images_and_falls_with_noise():
    ref = synthetic()
    noisy = Image.fromarray(np.clip(np.asarray(ref).astype(int) + np.random.default_rng(2).normal(0, 20, (80, 96, 3)),
                                    0, 255).astype(np.uint8))
    assert ssim(ref, ref) == pytest.approx(1.0, abs=1e-6)
    assert 0 < ssim(ref, noisy) < 0.9


def test_ms_ssim_needs_161_pixels_on_the_smaller_side():
    assert ms_ssim(synthetic(), synthetic()) is None  # 96 x 80: too small for 5 scales
    big = synthetic(170, 161)
    assert ms_ssim(big, big) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("size", [(200, 170), (96, 80)])
def test_one_pass_ssim_and_ms_ssim_equal_the_two_public_pytorch_msssim_calls(size):
    ref = synthetic(*size, seed=4)
    rec = Image.fromarray(np.clip(np.asarray(ref).astype(int) + np.random.default_rng(5).normal(0, 12, ref.size[::-1] + (3,)),
                                  0, 255).astype(np.uint8))
    s, m = ssim_and_ms_ssim(ref, rec)
    assert s == pytest.approx(ssim(ref, rec), abs=1e-6)
    assert (m is None and ms_ssim(ref, rec) is None) or m == pytest.approx(ms_ssim(ref, rec), abs=1e-6)


def test_ms_ssim_db_is_minus_ten_log10_of_one_minus_ms_ssim():
    assert ms_ssim_db(0.99) == pytest.approx(20.0)
    assert ms_ssim_db(None) is None and ms_ssim_db(1.0) == math.inf


def _torch_reference(ref, rec, dtype_name: str) -> tuple[float, float | None]:
    """pytorch-msssim's ssim and ms_ssim (data_range 255) of two uint8 arrays, on tensors of the dtype."""
    torch = pytest.importorskip("torch")
    msssim = pytest.importorskip("pytorch_msssim")

    def tensor(a):
        return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1))).to(getattr(torch, dtype_name))[None]

    x, y = tensor(ref), tensor(rec)
    s = float(msssim.ssim(x, y, data_range=255))
    m = float(msssim.ms_ssim(x, y, data_range=255)) if min(ref.shape[:2]) >= 161 else None
    return s, m


def _noisy(ref: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    noise = np.random.default_rng(seed).normal(0, sigma, ref.shape)
    return np.clip(ref.astype(int) + noise, 0, 255).astype(np.uint8)


def _pairs():
    """(name, reference, reconstruction): random and photo content, the minimum sizes, odd sides
    (MS-SSIM's pooling pads them), gray and colour."""
    rng = np.random.default_rng(7)
    for h, w, c in [(11, 11, 3), (11, 40, 1), (13, 12, 3), (161, 161, 3), (161, 175, 1), (163, 301, 3)]:
        ref = rng.integers(0, 256, (h, w, c), dtype=np.uint8)
        yield f"random{h}x{w}x{c}", ref, _noisy(ref, 25, h * w)
    photo = np.asarray(synthetic(333, 250, seed=3))
    yield "synthetic", photo, _noisy(photo, 6, 1)
    if (KODAK / "kodim23.png").exists():
        kodak = np.asarray(Image.open(KODAK / "kodim23.png").convert("RGB"))
        yield "kodim23", kodak, _noisy(kodak, 4, 2)
        yield "kodim23-crop161", kodak[:161, 5:166], _noisy(kodak[:161, 5:166], 4, 3)


@pytest.mark.parametrize("name,ref,rec", list(_pairs()), ids=lambda v: v if isinstance(v, str) else "")
def test_ssim_and_ms_ssim_equal_pytorch_msssim(name, ref, rec):
    """Equal to pytorch-msssim on float64 tensors, the definition; within float32's rounding of it on
    float32 tensors (what aecodec passed it before), which lose up to ~1e-5 of SSIM on a photo to the
    cancellation in E[x^2] - E[x]^2."""
    s, m = ssim_and_ms_ssim(ref, rec)
    for dtype_name, tolerance in (("float64", 1e-10), ("float32", 3e-5)):
        ts, tm = _torch_reference(ref, rec, dtype_name)
        assert abs(s - ts) < tolerance, dtype_name
        assert (m is None and tm is None) or abs(m - tm) < tolerance, dtype_name


def test_the_window_is_pytorch_msssims_float32_gaussian():
    pytest.importorskip("torch")
    from pytorch_msssim.ssim import _fspecial_gauss_1d

    from aecodec.metrics import _WINDOW_TAPS

    assert np.array_equal(_WINDOW_TAPS, _fspecial_gauss_1d(11, 1.5).numpy().ravel().astype(np.float64))


def test_metrics_refuse_images_of_different_shapes():
    with pytest.raises(ValueError, match="shape mismatch"):
        ssim(np.zeros((20, 20, 3), np.uint8), np.zeros((20, 21, 3), np.uint8))

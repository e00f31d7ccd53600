"""aecodec.metrics: PSNR, SSIM and MS-SSIM against direct computations and pytorch_msssim's own calls."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from aecodec.metrics import ms_ssim, ms_ssim_db, psnr, ssim, ssim_and_ms_ssim
from tests.helpers import synthetic


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

"""aecodec.codec.refine (--effort): the encoder refines the latents against the fixed decoder for smaller files.

Every effort writes an ordinary file of the current format that the unchanged decoder reads; effort
1 is the plain encoder; a refined file is never worse in the coder's own objective R + λ·D."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

import aecodec
from aecodec.codec import api, ratesearch, refine
from aecodec.codec.format import unpack
from aecodec.codec.pipeline import quality_to_level
from tests.helpers import smooth_image


def _rd_cost(data: bytes, original: np.ndarray) -> float:
    """The coder's objective on real bytes: bits per pixel + λ(quality) · 255² · MSE."""
    c = unpack(data)
    net, _, _ = api.load_model()
    lam = refine.rd_lambda(net.config.lambdas, quality_to_level(c.quality, net.config.num_levels))
    decoded = np.asarray(aecodec.decode(data), dtype=np.float64)
    mse = np.mean((decoded - original.astype(np.float64)) ** 2) / 255**2
    return 8 * len(data) / (c.width * c.height) + lam * 255**2 * mse


def test_effort_1_is_the_plain_encoder_and_never_refines(photo_pixels, monkeypatch):
    plain = aecodec.encode(photo_pixels, 60)

    def boom(*a, **k):
        raise AssertionError("effort 1 must not refine")

    monkeypatch.setattr(api, "refine_tiles", boom)
    monkeypatch.setattr(ratesearch, "refine_tiles", boom)
    assert aecodec.encode(photo_pixels, 60, effort=1) == plain
    assert (aecodec.encode(photo_pixels, target_size=len(plain), effort=1)
            == aecodec.encode(photo_pixels, target_size=len(plain)))


@pytest.mark.parametrize("effort", [2, 5, 9])
def test_every_effort_writes_a_file_the_unchanged_decoder_reads(photo_pixels, effort):
    data = aecodec.encode(photo_pixels, 60, effort=effort)
    header = aecodec.info(data)
    assert header["format_version"] == aecodec.info(aecodec.encode(photo_pixels, 60))["format_version"]
    assert header["quality"] == 60
    img = aecodec.decode(data)
    assert img.size == (128, 96) and img.mode == "RGB"
    plain = np.asarray(aecodec.decode(aecodec.encode(photo_pixels, 60)), dtype=np.float64)
    mse = np.mean((np.asarray(img, dtype=np.float64) - photo_pixels) ** 2)
    assert 10 * math.log10(255**2 / mse) > 10 * math.log10(255**2 / np.mean((plain - photo_pixels) ** 2)) - 1.5


@pytest.mark.parametrize("quality", [20, 75])
def test_highest_effort_lowers_the_rate_distortion_cost(photo_pixels, quality):
    plain = aecodec.encode(photo_pixels, quality)
    refined = aecodec.encode(photo_pixels, quality, effort=9)
    assert refined != plain
    assert _rd_cost(refined, photo_pixels) < _rd_cost(plain, photo_pixels)


@pytest.mark.parametrize("quality", [25, 75])
def test_kodak_crop_gets_smaller_at_equal_quality(kodak, quality):
    # With the shipped weights (7afdad6548ea9f4f) effort 9 saves 7-8 % of this crop's bytes at
    # qualities 25, 50 and 75 (the search before this schedule only paid at 75)
    rgb = np.asarray(Image.open(kodak / "kodim23.png").convert("RGB"))[128:384, 256:512]
    plain, refined = aecodec.encode(rgb, quality), aecodec.encode(rgb, quality, effort=9)
    assert _rd_cost(refined, rgb) < _rd_cost(plain, rgb)
    assert len(refined) < 0.96 * len(plain)


def test_a_refinement_that_does_not_pay_keeps_the_plain_tile(photo_pixels, monkeypatch):
    # with no iterations the "refined" latents are the plain ones: the plain bytes come out
    monkeypatch.setitem(refine.Z_ITERATIONS, 2, 0)
    monkeypatch.setitem(refine.ITERATIONS, 2, 0)
    assert aecodec.encode(photo_pixels, 60, effort=2) == aecodec.encode(photo_pixels, 60)


def test_refined_encoding_is_deterministic(photo_pixels):
    assert aecodec.encode(photo_pixels, 40, effort=4) == aecodec.encode(photo_pixels, 40, effort=4)


def test_tiled_image_is_refined_tile_by_tile_without_seams():
    rgb = smooth_image(160, 200, seed=5)
    plain = aecodec.encode(rgb, 50, tile=64)
    refined = aecodec.encode(rgb, 50, tile=64, effort=5)
    assert unpack(refined).tile == 64 and len(unpack(refined).tiles) == 12
    assert _rd_cost(refined, rgb) < _rd_cost(plain, rgb)
    out = np.asarray(aecodec.decode(refined), dtype=np.float64)
    err = np.abs(out - rgb).mean(axis=2)
    # errors on the tile borders (rows/columns 63-64, 127-128, …) are no worse than elsewhere
    border = np.zeros(err.shape, bool)
    for k in range(64, 200, 64):
        border[:, k - 1:k + 1] = True
        if k < 160:
            border[k - 1:k + 1, :] = True
    assert err[border].mean() < 1.5 * err[~border].mean() + 1.0


def test_gray_and_alpha_images_keep_their_layout(photo_pixels):
    gray = photo_pixels[..., 0]
    g = aecodec.decode(aecodec.encode(gray, 50, effort=4))
    assert g.mode == "L" and g.size == (128, 96)
    assert _rd_cost(aecodec.encode(gray, 50, effort=9), gray) < _rd_cost(aecodec.encode(gray, 50), gray)
    alpha = (np.arange(96 * 128) % 256).astype(np.uint8).reshape(96, 128)
    rgba = Image.fromarray(np.dstack([photo_pixels, alpha]), "RGBA")
    out = aecodec.decode(aecodec.encode(rgba, 50, effort=3))
    assert out.mode == "RGBA"
    assert np.array_equal(np.asarray(out)[..., 3], alpha)


@pytest.mark.parametrize("bad", [0, 10, -1, 2.5, "5", True, None])
def test_effort_outside_1_to_9_is_refused(photo_pixels, bad):
    with pytest.raises(aecodec.CodecError, match="effort"):
        aecodec.encode(photo_pixels, 50, effort=bad)


def test_lambda_follows_the_quality_between_trained_levels():
    lambdas = (0.001, 0.004, 0.016)
    assert refine.rd_lambda(lambdas, 0.0) == pytest.approx(0.001)
    assert refine.rd_lambda(lambdas, 1.5) == pytest.approx(0.008)  # log-linear: geometric mean
    assert refine.rd_lambda(lambdas, 2.0) == pytest.approx(0.016)

"""aecodec.comparison.budget: every codec at the highest quality whose file fits one budget, measured
from its real bytes; what cannot run or cannot fit is left out with its reason, not an error."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import aecodec
from aecodec.comparison import budget, compare
from aecodec.comparison.budget import check_codecs, fit, search_values
from aecodec.comparison.codecs import CODECS, CodecUnavailable, get_codec
from aecodec.errors import CodecError
from aecodec.metrics import ms_ssim, psnr
from tests.helpers import smooth_image


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    return Image.fromarray(smooth_image(120, 176, seed=4))


@pytest.fixture(scope="module")
def at_2k(photo):
    return compare(photo, size=2000, codecs=["aecodec", "jpeg", "webp"], curves=False)


# ----------------------------------------------------------------------------- fit
def test_fit_finds_the_last_value_whose_file_fits_a_growing_size():
    sizes = {q: 100 + 10 * q for q in range(101)}
    calls = []

    def encode(q):
        calls.append(q)
        return b"x" * sizes[q]

    q, data = fit(encode, list(range(101)), budget=555)
    assert q == 45 and len(data) == 550
    assert len(calls) <= 12  # a bisection and three values above, not a sweep


def test_fit_steps_over_a_small_dip_in_size_to_a_higher_quality_that_fits():
    sizes = [10, 20, 30, 41, 39, 50, 60]  # quality 3 is larger than quality 4, as WebP does now and then
    q, data = fit(lambda q: b"x" * sizes[q], list(range(7)), budget=40)
    assert q == 4 and len(data) == 39


def test_fit_is_none_when_the_worst_quality_does_not_fit_and_takes_the_best_when_all_fit():
    assert fit(lambda q: b"x" * (50 + q), list(range(10)), budget=49) is None
    assert fit(lambda q: b"x" * (50 + q), list(range(10)), budget=10_000)[0] == 9


def test_search_values_run_from_worst_to_best_within_each_librarys_range():
    assert search_values("jpeg-420")[0] == 1 and search_values("jpeg-420")[-1] == 100
    assert search_values("webp") == list(range(0, 101))
    assert search_values("pca-8x8")[0] > search_values("pca-8x8")[-1]  # a step: larger is worse
    assert search_values("jpeg2000")[0] < search_values("jpeg2000")[-1]  # a target PSNR


@pytest.mark.parametrize("name", [n for n in CODECS if n != "aecodec"])
def test_each_classical_codec_encodes_at_both_ends_of_its_search(name, photo):
    codec = get_codec(name)
    try:
        codec.check()
    except CodecUnavailable as e:
        pytest.skip(f"{name} unavailable: {e}")
    values = search_values(name)
    worst, best = (len(codec.encode(photo, v)) for v in (values[0], values[-1]))
    assert worst < best


def test_check_codecs_resolves_aliases_keeps_order_and_names_the_choices_for_an_unknown_one():
    assert check_codecs(["WebP", " jpeg", "aecodec", "webp", "jpeg-xl"]) == ["webp", "jpeg-420", "aecodec", "jxl"]
    with pytest.raises(CodecError, match="unknown codec 'png'.*choose from .*avif"):
        check_codecs(["aecodec", "png"])
    with pytest.raises(CodecError, match="no codec"):
        check_codecs([])


# ----------------------------------------------------------------------------- compare
def test_every_file_fits_the_budget_and_the_next_quality_up_does_not(photo, at_2k):
    assert at_2k.budget == 2000 and at_2k.target == "2000 bytes"
    assert [k.codec for k in at_2k.coded] == ["aecodec", "jpeg-420", "webp"]
    for k in at_2k.coded:
        assert len(k.data) <= 2000, k.codec
        if k.codec == "aecodec":
            assert aecodec.info(k.data)["quality"] == k.quality
            assert len(aecodec.encode(photo, quality=min(100, k.quality + 0.5))) > 2000
        else:
            assert len(get_codec(k.codec).encode(photo, k.quality + 1)) > 2000, k.codec


def test_the_numbers_are_those_of_the_files_decoded_again(photo, at_2k):
    original = np.asarray(photo)
    for k in at_2k.coded:
        again = get_codec(k.codec).decode(k.data).convert("RGB")
        assert np.array_equal(np.asarray(again), np.asarray(k.reconstruction)), k.codec
        assert k.psnr == pytest.approx(psnr(original, np.asarray(again)))
        assert k.ms_ssim is None or k.ms_ssim == pytest.approx(ms_ssim(original, np.asarray(again)))
        assert k.bpp(at_2k.pixels) == 8 * len(k.data) / (176 * 120)
        assert k.encode_s > 0 and k.decode_s > 0
        assert k.extension == CODECS[k.codec].extension


def test_a_quality_alone_sets_the_budget_to_aecodecs_file_at_that_quality(photo):
    c = compare(photo, quality=40, codecs=["jpeg", "aecodec"], curves=False)
    aec = len(aecodec.encode(photo, quality=40))
    assert c.budget == aec and c.target == "aecodec at quality 40"
    assert [k.codec for k in c.coded] == ["jpeg-420", "aecodec"]
    assert c.coded[1].quality == 40 and len(c.coded[1].data) == aec
    with pytest.raises(CodecError, match="include aecodec"):
        compare(photo, quality=40, codecs=["jpeg"])


def test_a_bpp_budget_is_bits_per_pixel_of_the_whole_file(photo):
    c = compare(photo, bpp=2.0, codecs=["jpeg"], curves=False)
    assert c.budget == int(2.0 * 176 * 120 / 8) and c.target == "2 bpp"
    assert c.coded[0].bpp(c.pixels) <= 2.0


def test_a_codec_that_cannot_run_here_is_left_out_with_its_reason(photo, monkeypatch):
    def missing(self):
        raise CodecUnavailable("pillow-jxl-plugin not installed (test)")

    monkeypatch.setattr(CODECS["jxl"], "check", missing)
    c = compare(photo, size=2000, codecs=["jpeg", "jxl"], curves=False)
    assert [k.codec for k in c.coded] == ["jpeg-420"]
    assert c.left_out == {"jxl": "pillow-jxl-plugin not installed (test)"}


def test_a_codec_whose_smallest_file_is_above_the_budget_is_left_out_and_none_fitting_is_an_error(photo):
    smallest_jpeg = len(get_codec("jpeg-420").encode(photo, 1))
    c = compare(photo, size=smallest_jpeg - 1, codecs=["webp", "jpeg"], curves=False)
    assert [k.codec for k in c.coded] == ["webp"]
    assert c.left_out["jpeg-420"] == f"its smallest file (quality 1) is {smallest_jpeg} bytes, above the budget"
    with pytest.raises(CodecError, match="no codec fits 10 bytes .*aecodec: its smallest file \\(quality 0\\)"):
        compare(photo, size=10, codecs=["aecodec", "jpeg"], curves=False)


def test_gray_and_alpha_images_are_compared_on_their_rgb_pixels():
    gray = Image.fromarray(smooth_image(64, 72, channels=1, seed=2)[..., 0])
    c = compare(gray, size=3000, codecs=["jpeg"], curves=False)
    assert c.original.mode == "RGB" and np.array_equal(np.asarray(c.original)[..., 0], np.asarray(gray))
    rgba = Image.fromarray(smooth_image(64, 72, channels=4, seed=2))
    c = compare(rgba, size=3000, codecs=["webp"], curves=False)
    assert np.array_equal(np.asarray(c.original), np.asarray(rgba)[..., :3])


def test_curves_are_each_codecs_sweep_on_this_image_with_rate_rising(photo):
    c = compare(photo, size=2000, codecs=["jpeg", "webp"])
    assert set(c.curves) == {"jpeg-420", "webp"} and c.labels == {"jpeg-420": "JPEG 4:2:0", "webp": "WebP"}
    for cid, points in c.curves.items():
        assert [p.quality for p in points] == list(CODECS[cid].qualities)
        assert all(p.bpp == 8 * p.bytes / c.pixels for p in points)
        assert points[-1].bytes > points[0].bytes and points[-1].psnr > points[0].psnr


def test_bad_options_and_images_are_one_line_errors(photo, tmp_path, monkeypatch):
    with pytest.raises(CodecError, match="one of size, bpp or quality"):
        compare(photo, size=5000, quality=50)
    with pytest.raises(CodecError, match="target size must be a positive"):
        compare(photo, size=0)
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(CodecError, match="bad.png: cannot read image"):
        compare(tmp_path / "bad.png", size=5000)
    monkeypatch.setattr(budget, "MAX_PIXELS", 176 * 120 - 1)
    photo.save(tmp_path / "big.png")
    with pytest.raises(CodecError, match=r"big.png: 176×120 = 0.0 megapixels; aecodec compare takes up to"):
        compare(tmp_path / "big.png", size=5000)


def test_the_comparison_as_json_holds_the_numbers_without_pixels(at_2k):
    d = at_2k.to_dict()
    assert d["budget_bytes"] == 2000 and d["width"] == 176 and d["height"] == 120
    assert [row["codec"] for row in d["codecs"]] == ["aecodec", "jpeg-420", "webp"]
    assert all(row["bytes"] <= 2000 and set(row) >= {"quality", "bpp", "psnr", "ms_ssim_db"} for row in d["codecs"])


def test_above_effort_1_aecodec_says_its_effort_and_its_curve_has_the_benchmarks_three_points():
    small = Image.fromarray(smooth_image(32, 48, seed=4))
    c = compare(small, size=600, codecs=["aecodec"], effort=2)
    (k,) = c.coded
    assert k.codec == "aecodec" and k.label == "aecodec effort 2" and len(k.data) <= 600
    assert [p.quality for p in c.curves["aecodec"]] == [15, 45, 75]

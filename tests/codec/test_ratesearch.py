"""aecodec.codec.ratesearch: a target size or bpp buys the best quality that fits, with or without the search."""

from __future__ import annotations

import pytest

import aecodec
from aecodec.codec.format import unpack
from aecodec.errors import CodecError


@pytest.mark.parametrize("fraction", [0.35, 0.6, 0.9])
def test_target_size_gives_the_best_quality_that_fits(rgb_image, fraction):
    smallest, largest = len(aecodec.encode(rgb_image, quality=0)), len(aecodec.encode(rgb_image, quality=100))
    target = int(smallest + fraction * (largest - smallest))
    data = aecodec.encode(rgb_image, target_size=target)
    q = aecodec.info(data)["quality"]
    assert len(data) <= target and 0 < q < 100
    assert data == aecodec.encode(rgb_image, quality=q)  # the very file -q would write
    assert len(aecodec.encode(rgb_image, quality=min(100, q + 0.5))) > target or len(data) >= 0.995 * target
    assert aecodec.decode(data).size == (90, 70)


def test_target_bpp_counts_the_whole_file(rgb_image):
    data = aecodec.encode(rgb_image, target_bpp=1.0)
    assert 8 * len(data) / (90 * 70) <= 1.0
    assert len(aecodec.encode(rgb_image, target_bpp=50)) == len(aecodec.encode(rgb_image, quality=100))


def test_unreachable_or_invalid_targets_are_refused(rgb_image):
    smallest = len(aecodec.encode(rgb_image, quality=0))
    with pytest.raises(CodecError, match=f"smallest file \\(quality 0\\) is {smallest} bytes"):
        aecodec.encode(rgb_image, target_size=smallest - 1)
    for kw in ({"target_size": 0}, {"target_size": 1.5}, {"target_bpp": -1}, {"target_bpp": "x"},
               {"quality": 50, "target_size": 10_000}, {"target_size": 10_000, "target_bpp": 2}):
        with pytest.raises(CodecError):
            aecodec.encode(rgb_image, **kw)


def test_a_budget_is_respected_and_buys_at_least_the_plain_quality(photo_pixels):
    budget = len(aecodec.encode(photo_pixels, 50))
    plain = aecodec.encode(photo_pixels, target_size=budget)
    refined = aecodec.encode(photo_pixels, target_size=budget, effort=5)
    assert len(refined) <= budget
    assert unpack(refined).quality >= unpack(plain).quality
    assert len(aecodec.encode(photo_pixels, target_bpp=0.5, effort=3)) <= 0.5 * 96 * 128 / 8

"""aecodec.codec.geometry: thin images folded into strips in proportion to their pixels; fold and unfold inverse."""

from __future__ import annotations

import numpy as np
import pytest

import aecodec
from aecodec.codec import format as fmt
from aecodec.codec import geometry
from tests.helpers import smooth_image


@pytest.mark.parametrize("h,w", [(1, 20000), (20000, 1), (3, 4000), (17, 5000)])
def test_thin_images_are_coded_folded_in_proportion_to_their_pixels(h, w):
    """A 1×20 000 strip was coded as 64×20 032 pixels (87 bpp at 33 dB); folded — strips side by
    side, guard ramps between them, lines repeated up to 4 pixels — the coded area stays within 9×
    the pixels (plus two stride blocks), the file under 24 bpp, and the quality above 30 dB."""
    img = smooth_image(h, w, seed=2)
    data = aecodec.encode(img, quality=75)
    c = fmt.unpack(data)
    cw, ch = c.coded_size
    hp, wp = geometry.padded(ch, cw)
    assert c.strips > 1 and c.version == fmt.VERSION == 3  # version 3 holds any strips
    assert hp * wp <= 9 * h * w + 2 * 64 * 64, (c.strips, c.coded_size)
    assert 8 * len(data) / (h * w) < 24
    out = np.asarray(aecodec.decode(data))
    assert out.shape == img.shape
    assert 10 * np.log10(255**2 / ((out.astype(float) - img) ** 2).mean()) > 30


def test_ordinary_images_are_not_folded():
    """One strip (version 3's strips field 1); aecodec 0.1 wrote these as version 1."""
    for h, w in ((512, 768), (100, 3000), (40, 56)):
        c = fmt.unpack(aecodec.encode(smooth_image(h, w), quality=50))
        assert c.strips == 1 and c.version == 3


@pytest.mark.parametrize("h,w", [(1, 300), (2, 5000), (3, 500), (500, 3), (7, 129), (17, 10000), (100000, 1)])
def test_fold_and_unfold_are_inverse(h, w):
    rng = np.random.default_rng(h * w)
    strips = geometry.strips_for(w, h)
    for shape in ((h, w, 3), (h, w)):
        a = rng.integers(0, 256, shape, dtype=np.uint8)
        folded = geometry.fold(a, strips)
        assert folded.shape[:2][::-1] == geometry.coded_size(w, h, strips)
        assert np.array_equal(geometry.unfold(folded, w, h, strips), a)


def test_a_thin_image_with_alpha_keeps_its_alpha_exactly():
    rgba = np.dstack([smooth_image(2, 3000), (np.arange(6000).reshape(2, 3000) % 256).astype(np.uint8)])
    out = np.asarray(aecodec.decode(aecodec.encode(rgba, quality=60)))
    assert out.shape == (2, 3000, 4) and np.array_equal(out[..., 3], rgba[..., 3])

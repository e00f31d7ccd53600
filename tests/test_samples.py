"""The sample photo shipped inside the package (aecodec/samples), used by the README's first command."""

from __future__ import annotations

import pytest
from PIL import Image

import aecodec.samples


def test_the_sample_is_a_600x400_rgb_png():
    path = aecodec.samples.path()
    assert path.name == "coffee.png" and path.is_file()
    assert (path.parent / "README.md").is_file()  # source, author, licence
    with Image.open(path) as im:
        assert (im.format, im.size, im.mode) == ("PNG", (600, 400), "RGB")


def test_an_unknown_sample_is_refused():
    with pytest.raises(ValueError, match="coffee.png"):
        aecodec.samples.path("kodim23.png")

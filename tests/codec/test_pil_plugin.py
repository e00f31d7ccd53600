"""The Pillow plugin (aecodec.codec.pil_plugin): lazy open, every layout, damaged files, saving with options.

The plugin keeps to Pillow's documented plugin interface; it was checked by hand on Pillow 10.1,
10.2, 10.4, 11.0, 11.3, 12.0, 12.3 and 13.0 (10.0 does not read ``_mode``: pyproject says >= 10.1).
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

import aecodec
from aecodec.codec import api
from tests.helpers import smooth_image


def test_open_reads_the_header_only_and_load_decodes(tmp_path, monkeypatch):
    path = tmp_path / "x.aec"
    path.write_bytes(aecodec.encode(smooth_image(40, 56), quality=60))
    calls = []
    real = api.decode
    monkeypatch.setattr(api, "decode", lambda data, **kw: calls.append(len(data)) or real(data, **kw))
    im = Image.open(path)
    assert (im.format, im.size, im.mode, im.info["quality"]) == ("AEC", (56, 40), "RGB", 60)
    assert calls == []
    im.load()
    assert calls == [path.stat().st_size]  # the whole file, once
    assert im.fp is None  # Pillow closed the file it opened
    np.testing.assert_array_equal(np.asarray(im), np.asarray(real(path.read_bytes())))


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA"])
def test_every_layout_opens_in_its_mode(mode):
    rgb = smooth_image(33, 47)
    arr = {"L": rgb[..., 0], "LA": np.dstack([rgb[..., 0], rgb[..., 1]]), "RGB": rgb,
           "RGBA": np.dstack([rgb, rgb[..., 2]])}[mode]
    data = aecodec.encode(arr, quality=50)
    with Image.open(io.BytesIO(data)) as im:
        assert im.mode == mode and im.size == (47, 33)
        np.testing.assert_array_equal(np.asarray(im), np.asarray(aecodec.decode(data)))
        copy = im.convert("RGB")  # loads first
    assert copy.size == (47, 33)


def test_a_damaged_payload_opens_but_does_not_load():
    data = bytearray(aecodec.encode(smooth_image(40, 56), quality=60))
    data[-10] ^= 0xFF  # inside the last section: the CRC no longer matches
    im = Image.open(io.BytesIO(bytes(data)))
    assert im.size == (56, 40)
    with pytest.raises(ValueError, match="CRC"):
        im.load()


def test_not_an_aec_file_is_left_to_other_plugins():
    with pytest.raises(Image.UnidentifiedImageError):
        Image.open(io.BytesIO(b"\x89AEC" + b"\x00" * 10), formats=["AEC"])


def test_pillow_plugin_opens_and_saves_aec(tmp_path, rgb_image):
    path = tmp_path / "x.aec"
    Image.fromarray(rgb_image).save(path, quality=70)
    with Image.open(path) as im:
        assert im.format == "AEC" and im.size == (90, 70) and im.mode == "RGB"
        assert im.info["quality"] == 70
        arr = np.asarray(im)
    np.testing.assert_array_equal(arr, np.asarray(aecodec.decode(path.read_bytes())))


def test_pillow_plugin_saves_to_a_target_size(tmp_path, rgb_image):
    path = tmp_path / "x.aec"
    target = len(aecodec.encode(rgb_image, quality=60))
    Image.fromarray(rgb_image).save(path, target_size=target)
    assert path.stat().st_size <= target


def test_pillow_plugin_saves_with_effort(photo_pixels):
    buf = io.BytesIO()
    Image.fromarray(photo_pixels).save(buf, format="AEC", quality=60, effort=5)
    assert buf.getvalue() == aecodec.encode(photo_pixels, 60, effort=5)
    assert Image.open(io.BytesIO(buf.getvalue())).size == (128, 96)


def test_the_pixel_cap_is_pillows(monkeypatch):
    """Image.MAX_IMAGE_PIXELS decides (an error above twice it; None lifts it), not aecodec's own
    default cap, which is not applied a second time."""
    from aecodec.codec import format as fmt

    data = aecodec.encode(smooth_image(40, 56), quality=50)  # 2240 pixels
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(Image.DecompressionBombError):
        Image.open(io.BytesIO(data))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    monkeypatch.setattr(fmt, "DEFAULT_MAX_PIXELS", 100)
    monkeypatch.setattr(api.decode, "__kwdefaults__", {**api.decode.__kwdefaults__, "max_pixels": 100})
    with Image.open(io.BytesIO(data)) as im:
        assert np.asarray(im).shape == (40, 56, 3)

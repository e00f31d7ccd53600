"""aecodec.codec.api: round trips, refused inputs and options, the model a file names, rate rising with quality."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from PIL import Image

import aecodec
from aecodec.codec import api, refine
from aecodec.codec import format as fmt
from aecodec.errors import CodecError
from aecodec.metrics import psnr
from aecodec.models import zoo
from tests.helpers import smooth_image


def test_rgb_round_trip_keeps_size_mode_and_content(rgb_image):
    img = aecodec.decode(aecodec.encode(rgb_image, quality=90))
    assert img.mode == "RGB" and img.size == (90, 70)
    # Measured 35.5 dB with the shipped weights (a 4× down-and-up-scaled copy: 34.4 dB, the mean
    # colour: 17.3 dB); swapped channels, a shifted tile or a wrong gain fall far below 32.
    assert psnr(np.asarray(img), rgb_image) > 32


def test_gray_stays_gray():
    gray = smooth_image(40, 52, channels=1)
    data = aecodec.encode(Image.fromarray(gray, "L"), quality=80)
    assert fmt.unpack(data).layout == fmt.Layout.GRAY
    img = aecodec.decode(data)
    assert img.mode == "L" and img.size == (52, 40)
    assert psnr(np.asarray(img), gray) > 32  # measured 36.4 dB


def test_rgba_keeps_its_alpha_exactly(rgb_image):
    alpha = (np.arange(70 * 90) % 256).astype(np.uint8).reshape(70, 90)
    rgba = np.dstack([rgb_image, alpha])
    img = aecodec.decode(aecodec.encode(rgba, quality=50))
    assert img.mode == "RGBA"
    np.testing.assert_array_equal(np.asarray(img)[..., 3], alpha)


def test_gray_alpha_round_trip():
    la = np.dstack([smooth_image(20, 30, channels=1), np.full((20, 30), 7, np.uint8)])
    img = aecodec.decode(aecodec.encode(Image.fromarray(la, "LA")))
    assert img.mode == "LA" and np.all(np.asarray(img)[..., 1] == 7)


@pytest.mark.parametrize("h,w", [(1, 1), (1, 7), (13, 1), (63, 65), (65, 129)])
def test_any_size_round_trips(h, w):
    arr = smooth_image(h, w, seed=h * w)
    img = aecodec.decode(aecodec.encode(arr, quality=60))
    assert img.size == (w, h) and img.mode == "RGB"


def test_flat_image_decodes_close_to_its_colour():
    arr = np.full((48, 48, 3), (200, 80, 30), np.uint8)
    out = np.asarray(aecodec.decode(aecodec.encode(arr, quality=100))).astype(int)
    assert np.abs(out.mean(axis=(0, 1)) - (200, 80, 30)).max() < 12


def test_unreadable_image_raises_codec_error(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(CodecError, match="cannot read image"):
        aecodec.encode(bad)
    with pytest.raises(CodecError, match="no such file"):
        aecodec.encode(tmp_path / "missing.png")


@pytest.mark.parametrize("q", [-1, 100.5, float("nan")])
def test_quality_out_of_range_is_refused(rgb_image, q):
    with pytest.raises(CodecError, match="quality"):
        aecodec.encode(rgb_image, quality=q)


def test_file_names_its_model_by_id_and_weights_hash(rgb_image):
    _, model_id, digest = api.load_model()
    assert (model_id, digest) == zoo.load()[1:]  # the runtime bundle is the shipped checkpoint's weights
    c = fmt.unpack(aecodec.encode(rgb_image))
    assert c.model_id == model_id == zoo.DEFAULT_MODEL_ID
    assert c.weights_hash == digest[:16]


def _with_header(data: bytes, **changes) -> bytes:
    return fmt.pack(dataclasses.replace(fmt.unpack(data), **changes))


def test_decode_names_the_weights_a_file_needs(rgb_image):
    data = aecodec.encode(rgb_image)
    with pytest.raises(aecodec.ModelNotFound, match="needs model mean-scale-vr-128@00000000deadbeef"):
        aecodec.decode(_with_header(data, weights_hash="00000000deadbeef"))
    with pytest.raises(aecodec.ModelNotFound, match="needs model no-such-model@"):
        aecodec.decode(_with_header(data, model_id="no-such-model"))


def test_decode_rejects_corrupt_bytes_through_the_api(rgb_image):
    data = aecodec.encode(rgb_image)
    with pytest.raises(aecodec.FormatError, match="truncated"):
        aecodec.decode(data[:-5])
    flipped = bytearray(data)
    flipped[40] ^= 0x20
    with pytest.raises(aecodec.FormatError):
        aecodec.decode(bytes(flipped))


def test_bpp_increases_with_quality(rgb_image):
    sizes = [len(aecodec.encode(rgb_image, quality=q)) for q in (0, 25, 50, 75, 100)]
    assert sizes == sorted(sizes) and sizes[0] < sizes[-1], sizes


def test_kodak_bpp_increases_with_quality(kodak):
    img = Image.open(kodak / "kodim23.png")
    sizes = [len(aecodec.encode(img, quality=q)) for q in (0, 20, 40, 60, 80, 100)]
    assert all(a < b for a, b in zip(sizes, sizes[1:])), sizes


def test_tile_size_must_be_a_multiple_of_64(rgb_image):
    with pytest.raises(CodecError, match="tile size"):
        aecodec.encode(rgb_image, tile=100)


@pytest.mark.parametrize("w,h,tiles", [(3000, 2000, 6), (100000, 1, 13)])
def test_the_progress_bar_counts_the_iterations_of_the_tiles_really_coded(monkeypatch, w, h, tiles):
    """Its total is iterations × tiles of the coded size: a folded 1×100 000 strip is 13 tiles of
    1024, not the 98 its width alone would suggest."""
    import tqdm

    totals = []

    class Bar:
        def __init__(self, total=None, **kwargs):
            totals.append(total)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(tqdm, "tqdm", Bar)
    with api._progress_bar(9, w, h, 1024, False, True):
        pass
    assert totals == [(refine.Z_ITERATIONS[9] + refine.ITERATIONS[9]) * tiles]


# ----------------------------------------------------------------------------- pixel cap and progress
def test_the_decoders_pixel_cap_is_raised_per_call_and_the_message_says_how():
    data = aecodec.encode(smooth_image(40, 56), quality=50)  # 2240 pixels
    with pytest.raises(aecodec.FormatError, match="exceeds the cap of 2239 pixels .*--max-pixels or max_pixels="):
        aecodec.decode(data, max_pixels=2239)
    assert aecodec.decode(data, max_pixels=2240).size == (56, 40)
    assert fmt.DEFAULT_MAX_PIXELS < fmt.MAX_ENCODE_PIXELS
    assert 9504 * 6336 <= fmt.DEFAULT_MAX_PIXELS  # a 61 MP camera photo decodes by default


def test_encode_warns_when_its_file_will_need_a_raised_cap(monkeypatch):
    monkeypatch.setattr(fmt, "DEFAULT_MAX_PIXELS", 2000)
    with pytest.warns(UserWarning, match="above the decoder's default cap of 2000: decoding it will need "
                                         "--max-pixels 2240") as caught:
        aecodec.encode(smooth_image(40, 56), quality=50)
    assert len(caught) == 1 and "\n" not in str(caught[0].message)
    monkeypatch.setattr(fmt, "DEFAULT_MAX_PIXELS", 2240)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        aecodec.encode(smooth_image(40, 56), quality=50)


def test_decode_reports_every_tile_and_every_synthesis_piece(codec_net):
    data = aecodec.encode(smooth_image(100, 130), quality=50, tile=64)  # 2×3 tiles, one synthesis piece
    c = fmt.unpack(data)
    steps, tiles = [], []
    img = api.decode_with(codec_net, c, on_tile=lambda rect, lat: tiles.append(rect), on_progress=lambda: steps.append(1))
    assert len(tiles) == 6 and len(steps) == api.decode_steps(c) == 6 + 1
    np.testing.assert_array_equal(np.asarray(img), np.asarray(aecodec.decode(data)))


def test_the_progress_bar_shows_on_a_terminal_only(monkeypatch):
    import io
    import sys

    import tqdm

    class Now(tqdm.tqdm):  # the bar without its delays, so that a tiny decode shows every step
        def __init__(self, *a, **kw):
            super().__init__(*a, **{**kw, "delay": 0, "mininterval": 0, "miniters": 1})

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr(tqdm, "tqdm", Now)
    data = aecodec.encode(smooth_image(100, 130), quality=50, tile=64)
    for stream, shown in ((io.StringIO(), False), (Terminal(), True)):
        monkeypatch.setattr(sys, "stderr", stream)
        aecodec.decode(data, progress=True)
        assert ("decoding" in stream.getvalue() and "7/7" in stream.getvalue()) == shown, stream.getvalue()
    stream = Terminal()
    monkeypatch.setattr(sys, "stderr", stream)
    aecodec.decode(data)  # progress=False: never a bar
    assert stream.getvalue() == ""


@pytest.mark.parametrize("bpp, message", [(0, "above 0"), (-1, "above 0"), (1e6, "below 1000000"),
                                          (float("nan"), "got nan"), ("x", "must be a number")])
def test_a_target_bpp_out_of_range_is_refused_saying_the_range(bpp, message):
    with pytest.raises(aecodec.CodecError, match=message):
        api.check_target(target_bpp=bpp)

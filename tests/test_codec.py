"""The codec API: image ↔ bytes round trips, input handling, model identity, rate."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from PIL import Image

import aecodec
from aecodec.codec import format as fmt
from aecodec.errors import CodecError
from aecodec.codec.images import prepare_image
from aecodec.metrics import psnr
from aecodec.models import zoo

from .conftest import smooth_image


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


def test_16_bit_input_is_converted_with_a_warning():
    arr16 = (smooth_image(30, 40, channels=1).astype(np.uint16) * 257)
    im = Image.fromarray(arr16)
    assert im.mode.startswith("I")
    with pytest.warns(UserWarning, match="16-bit"):
        rgb, alpha, layout = prepare_image(im)
    assert layout == fmt.Layout.GRAY and rgb.dtype == np.uint8
    np.testing.assert_array_equal(rgb[..., 0], smooth_image(30, 40, channels=1))


def test_palette_image_is_expanded():
    im = Image.fromarray(smooth_image(30, 30)).convert("P", palette=Image.Palette.ADAPTIVE)
    rgb, alpha, layout = prepare_image(im)
    assert layout == fmt.Layout.RGB and alpha is None
    np.testing.assert_array_equal(rgb, np.asarray(im.convert("RGB")))


def test_exif_orientation_is_applied(tmp_path):
    im = Image.fromarray(smooth_image(20, 40))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    path = tmp_path / "rotated.jpg"
    im.save(path, exif=exif)
    rgb, _, _ = prepare_image(path)
    assert rgb.shape[:2] == (40, 20)


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
    _, model_id, digest = zoo.load()
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


def test_file_variants_write_atomically_and_refuse_overwrite(tmp_path, rgb_image):
    dst = tmp_path / "a.aec"
    aecodec.encode_file(rgb_image, dst, quality=40)
    with pytest.raises(CodecError, match="already exists"):
        aecodec.encode_file(rgb_image, dst)
    aecodec.decode_file(dst, tmp_path / "a.png")
    assert Image.open(tmp_path / "a.png").size == (90, 70)
    with pytest.raises(CodecError, match="does not exist"):
        aecodec.encode_file(rgb_image, tmp_path / "nodir" / "b.aec")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.aec", "a.png"]  # no temp files left


def test_pillow_plugin_opens_and_saves_aec(tmp_path, rgb_image):
    path = tmp_path / "x.aec"
    Image.fromarray(rgb_image).save(path, quality=70)
    with Image.open(path) as im:
        assert im.format == "AEC" and im.size == (90, 70) and im.mode == "RGB"
        assert im.info["quality"] == 70
        arr = np.asarray(im)
    np.testing.assert_array_equal(arr, np.asarray(aecodec.decode(path.read_bytes())))


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


def test_pillow_plugin_saves_to_a_target_size(tmp_path, rgb_image):
    path = tmp_path / "x.aec"
    target = len(aecodec.encode(rgb_image, quality=60))
    Image.fromarray(rgb_image).save(path, target_size=target)
    assert path.stat().st_size <= target


def test_bpp_increases_with_quality(rgb_image):
    sizes = [len(aecodec.encode(rgb_image, quality=q)) for q in (0, 25, 50, 75, 100)]
    assert sizes == sorted(sizes) and sizes[0] < sizes[-1], sizes


def test_kodak_bpp_increases_with_quality(kodak):
    img = Image.open(kodak / "kodim23.png")
    sizes = [len(aecodec.encode(img, quality=q)) for q in (0, 20, 40, 60, 80, 100)]
    assert all(a < b for a, b in zip(sizes, sizes[1:])), sizes


@pytest.mark.parametrize("quality", [25, 75])
def test_real_bits_match_the_likelihood_estimate(kodak, quality):
    """The file size (rANS + container) is within 5 % of -log2 of the model's likelihoods."""
    img = Image.open(kodak / "kodim23.png").convert("RGB")
    data = aecodec.encode(img, quality=quality)
    net, _, _ = zoo.load()
    x = torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1)[None].float() / 255
    level = aecodec.codec.api.quality_to_level(quality, net.config.num_levels)
    with torch.no_grad():
        out = net(x, torch.tensor([level]))
    estimate = sum(float(-torch.log2(l).sum()) for l in out["likelihoods"].values())
    assert abs(8 * len(data) - estimate) / estimate < 0.05, (8 * len(data), estimate)


def test_tiled_encoding_has_no_visible_seams():
    """Tiles of 64 px vs one tile: same quality everywhere, no extra error along tile edges."""
    arr = smooth_image(192, 256, seed=3)
    one = np.asarray(aecodec.decode(aecodec.encode(arr, quality=80, tile=1024))).astype(float)
    tiled_data = aecodec.encode(arr, quality=80, tile=64)
    assert aecodec.info(tiled_data)["tiles"] == "4x3"
    tiled = np.asarray(aecodec.decode(tiled_data)).astype(float)
    err = ((tiled - arr) ** 2).mean(axis=2)
    edge = np.zeros(err.shape, bool)
    for k in range(64, 256, 64):
        edge[:, k - 2:k + 2] = True
    for k in range(64, 192, 64):
        edge[k - 2:k + 2, :] = True
    assert err[edge].mean() < 1.5 * err[~edge].mean() + 1.0
    assert abs(psnr(tiled.astype(np.uint8), arr) - psnr(one.astype(np.uint8), arr)) < 0.5


def test_tile_size_must_be_a_multiple_of_64(rgb_image):
    with pytest.raises(CodecError, match="tile size"):
        aecodec.encode(rgb_image, tile=100)


def test_interrupted_write_leaves_no_partial_file(tmp_path, rgb_image, monkeypatch):
    """Ctrl-C while the output is being written: neither the output nor a temp file remains."""
    img = aecodec.decode(aecodec.encode(rgb_image))
    real_save = Image.Image.save

    def save_then_interrupt(self, fp, *args, **kwargs):
        real_save(self, fp, *args, **kwargs)  # the temp file is complete on disk…
        raise KeyboardInterrupt  # …when the user presses Ctrl-C

    monkeypatch.setattr(Image.Image, "save", save_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        aecodec.codec.files.save_image(img, tmp_path / "out.png")
    assert list(tmp_path.iterdir()) == []

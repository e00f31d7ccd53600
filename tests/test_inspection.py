"""aecodec.inspection: rate maps that add up to the file's bits and peak where the bits go; error maps; any shape."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

import aecodec
from aecodec.inspection import inspect
from aecodec.reports import render_report
from tests.helpers import ROOT, payload_bits, smooth_image, with_noise_patch

GOLDEN = ROOT / "tests" / "golden"


@pytest.mark.parametrize("h, w", [(192, 256), (150, 200)])
def test_rate_map_adds_up_to_the_payload_bits_of_the_real_file(h, w):
    img = smooth_image(h, w, seed=3)
    data = aecodec.encode(img, 90)
    real = payload_bits(data)
    r = inspect(img, 90)
    assert r.file_bytes == len(data) and r.payload_bits == real  # the same file as `aecodec encode`
    total = float(r.rate_map.sum())
    assert total == pytest.approx(r.map_bits, rel=1e-9)  # padding is folded in, not dropped
    assert abs(total - real) <= 0.01 * real
    # What is left is the v3 coder's termination: its final 64-bit state, flushed as whole
    # 32-bit words, i.e. at most 64 bits per string (z and y).
    assert 0 < real - total <= 64 * 2 * r.tiles


def test_tiled_files_are_measured_tile_by_tile():
    img = smooth_image(160, 200, seed=4)
    data = aecodec.encode(img, 70, tile=64)  # a 4 × 3 grid of independently coded tiles
    r = inspect(data)
    assert r.tiles == 12 and r.original is None and r.error_map is None
    assert r.rate_map.shape == (160, 200)
    assert 0 < payload_bits(data) - r.rate_map.sum() <= 64 * 24


def test_inspect_decodes_a_file_once_through_the_decoder(monkeypatch):
    """Each tile is entropy-decoded exactly once and the image synthesised once (in the decoder's
    pieces: one for 200×160, whatever the file's tiles), and the reconstruction is the decoder's
    own output, pixel for pixel."""
    from aecodec.models.runtime import CodecModel

    img = smooth_image(160, 200, seed=4)
    data = aecodec.encode(img, 70, tile=64)  # 12 tiles
    calls = {"decode_latents": 0, "synthesize": 0}
    for name in calls:
        real = getattr(CodecModel, name)

        def counted(self, *args, _real=real, _name=name, **kwargs):
            calls[_name] += 1
            return _real(self, *args, **kwargs)

        monkeypatch.setattr(CodecModel, name, counted)
    r = inspect(data)
    assert calls == {"decode_latents": 12, "synthesize": 1}
    monkeypatch.undo()
    np.testing.assert_array_equal(r.reconstruction, np.asarray(aecodec.decode(data)))


@pytest.mark.parametrize("case", ["rgb", "tiles"])
def test_format_1_files_are_measured_with_compressais_costs_and_agree_with_format_3(case):
    """A format-1 golden file and its format-3 twin code the same symbols with the same tables:
    their maps agree within the few escapes the two coders price differently, and each map is
    its file's payload less its coder's termination (CompressAI's: more than 32 and at most 64
    bits per string)."""
    pytest.importorskip("torch")
    v1, v3 = (inspect((GOLDEN / f"v{n}-{case}.aec").read_bytes()) for n in (1, 3))
    strings = 2 * v1.tiles
    assert 32 * strings - 1 < v1.payload_bits - v1.map_bits <= 64 * strings + 1
    assert 0 < v3.payload_bits - v3.map_bits <= 64 * strings
    assert v1.escapes == v3.escapes
    assert abs(v1.map_bits - v3.map_bits) <= 32 * v1.escapes + 1e-6
    np.testing.assert_array_equal(v1.reconstruction, v3.reconstruction)


def test_aec_input_is_inspected_at_its_own_quality(tmp_path):
    img = smooth_image(64, 96, seed=2)
    path = tmp_path / "x.aec"
    path.write_bytes(aecodec.encode(img, 40))
    with pytest.warns(UserWarning, match="own quality"):
        r = inspect(path, 80)
    assert r.quality == 40 and r.reconstruction.shape == (64, 96, 3)
    assert r.bpp == pytest.approx(8 * path.stat().st_size / (64 * 96))


def test_error_map_psnr_and_regions_agree_with_a_direct_computation():
    img = smooth_image(96, 128, seed=5)
    r = inspect(img, 50)
    rec = np.asarray(aecodec.decode(aecodec.encode(img, 50)), dtype=np.float64)
    se = (rec - img.astype(np.float64)) ** 2
    np.testing.assert_allclose(r.error_map, se.mean(-1))
    assert r.psnr == pytest.approx(10 * np.log10(255**2 / se.mean()))
    assert 0 < r.ssim <= 1
    d = r.to_dict()
    cells = d["regions"]["cells"]
    assert len(cells) == 16
    assert sum(c["bits"] for c in cells) == pytest.approx(d["rate"]["total_bits_map"])
    assert np.mean([c["mse"] for c in cells]) == pytest.approx(se.mean(), rel=1e-6)  # equal cells
    json.dumps(d, allow_nan=False)


def test_gray_and_rgba_images():
    gray = smooth_image(40, 48, channels=1)
    r = inspect(Image.fromarray(gray, "L"), 60)
    assert r.layout == "gray" and r.original.shape == r.reconstruction.shape == (40, 48)
    assert r.error_map.shape == (40, 48)
    rgba = np.dstack([smooth_image(40, 48), np.full((40, 48), 200, np.uint8)])
    r = inspect(rgba, 60)
    assert r.layout == "RGBA"
    assert r.section_bytes == aecodec.info(aecodec.encode(rgba, quality=60))["sections"]  # the file's sections
    assert r.payload_bits == 8 * (r.section_bytes["y"] + r.section_bytes["z"])  # alpha not counted


def test_rate_map_peaks_inside_a_noise_patch():
    img = with_noise_patch(smooth_image(256, 256, seed=7), 64, 128, 128, 192)
    r = inspect(img, 75)
    iy, ix = np.unravel_index(np.argmax(r.rate_map), r.rate_map.shape)
    assert 64 <= iy < 128 and 128 <= ix < 192, (iy, ix)


def test_rate_map_peaks_inside_a_noise_patch_on_a_kodak_photo(kodak):
    img = np.asarray(Image.open(kodak / "kodim03.png").convert("RGB"))
    img = with_noise_patch(img, 64, 128, 384, 448)
    r = inspect(img, 75)
    iy, ix = np.unravel_index(np.argmax(r.rate_map), r.rate_map.shape)
    assert 64 <= iy < 128 and 384 <= ix < 448, (iy, ix)


@pytest.mark.parametrize("h,w", [(4000, 3), (3, 4000), (1, 600)])
def test_thin_images_are_inspected_in_their_own_geometry_with_a_bounded_report(h, w):
    """A thin image is coded folded; its maps come back in the image's geometry, and the report of
    a 4000×3 image is a figure of ordinary size (it used to be sized by the aspect ratio: 4000/3
    panels tall)."""
    r = inspect(smooth_image(h, w, seed=1))
    assert r.rate_map.shape == (h, w) and r.reconstruction.shape[:2] == (h, w)
    assert r.psnr > 30
    with Image.open(io.BytesIO(render_report(r))) as im:
        assert max(im.size) < 4000

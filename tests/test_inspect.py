"""aecodec.inspection, .ranking, .reports: rate maps that add up to the file, point at what is expensive, and rank."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import aecodec
from aecodec.cli import app
from aecodec.codec import format as fmt
from aecodec.entropy.coding import symbol_bits
from aecodec.inspection import inspect
from aecodec.ranking import rank
from aecodec.reports import render_contact_sheet, render_report

from .conftest import smooth_image

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
runner = CliRunner()


def with_noise_patch(img: np.ndarray, y0: int, y1: int, x0: int, x1: int, seed: int = 0,
                     grain: int = 4) -> np.ndarray:
    """A copy of ``img`` with a patch of random noise in ``grain``×``grain``-pixel blocks of random
    colours: an out-of-place texture. (Per-pixel noise, grain 1, is no test for a briefly trained
    model: it cannot afford such detail, reconstructs it as flat gray and spends few bits on it —
    measured with the CPU-trained weights, which the 4-pixel texture does not fool.)"""
    out = img.copy()
    h, w = y1 - y0, x1 - x0
    blocks = np.random.default_rng(seed).integers(0, 256, (-(-h // grain), -(-w // grain), 3), dtype=np.uint8)
    out[y0:y1, x0:x1] = np.repeat(np.repeat(blocks, grain, 0), grain, 1)[:h, :w, : out.shape[2]]
    return out


def payload_bits(data: bytes) -> int:
    c = fmt.unpack(data)
    return 8 * sum(len(z) + len(y) for z, y in c.tiles)


# ----------------------------------------------------------------------------- bookkeeping
def test_symbol_bits_match_compressais_rans_coder_including_escapes():
    import torch

    from aecodec._compressai import compressai

    gc = compressai().entropy_models.GaussianConditional(None)
    gc.update_scale_table(torch.exp(torch.linspace(np.log(0.11), np.log(64), 32)))
    g = torch.Generator().manual_seed(0)
    indexes = torch.randint(0, 32, (1, 4, 64, 64), generator=g, dtype=torch.int32)
    scales = gc.scale_table[indexes.long()]
    symbols = torch.round(torch.randn(indexes.shape, generator=g) * scales * 3)  # wide: escapes
    symbols[0, 0, 0, :8] = torch.tensor([-5000, 5000, 70000, -70000, 2**20, 300, -300, 0])
    bits, escapes = symbol_bits(symbols.int(), indexes, gc._quantized_cdf, gc._cdf_length, gc._offset)
    coded = 8 * len(gc.compress(symbols, indexes)[0])
    assert escapes > 100
    assert 32 < coded - float(bits.sum()) <= 64  # only the rANS termination is left over


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
    # What is left is CompressAI's rANS termination: its 64-bit state flush minus the 31 bits
    # of the initial state, i.e. more than 32 and at most 64 bits per string (z and y).
    strings = 2 * r.tiles
    assert 32 * strings - 1 < real - total <= 64 * strings + 1


def test_tiled_files_are_measured_tile_by_tile():
    img = smooth_image(160, 200, seed=4)
    data = aecodec.encode(img, 70, tile=64)  # a 4 × 3 grid of independently coded tiles
    r = inspect(data)
    assert r.tiles == 12 and r.original is None and r.error_map is None
    assert r.rate_map.shape == (160, 200)
    assert 32 * 24 - 1 < payload_bits(data) - r.rate_map.sum() <= 64 * 24 + 1


def test_inspect_decodes_a_file_once_through_the_decoder(monkeypatch):
    """Each tile is entropy-decoded exactly once and the image synthesised once (in the decoder's
    pieces: one for 200×160, whatever the file's tiles), and the reconstruction is the decoder's
    own output, pixel for pixel."""
    from aecodec.models.hyperprior import MeanScaleHyperprior

    img = smooth_image(160, 200, seed=4)
    data = aecodec.encode(img, 70, tile=64)  # 12 tiles
    calls = {"decode_latents": 0, "synthesize": 0}
    for name in calls:
        real = getattr(MeanScaleHyperprior, name)

        def counted(self, *args, _real=real, _name=name, **kwargs):
            calls[_name] += 1
            return _real(self, *args, **kwargs)

        monkeypatch.setattr(MeanScaleHyperprior, name, counted)
    r = inspect(data)
    assert calls == {"decode_latents": 12, "synthesize": 1}
    monkeypatch.undo()
    np.testing.assert_array_equal(r.reconstruction, np.asarray(aecodec.decode(data)))


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


def test_reports_are_pngs():
    r = inspect(smooth_image(64, 80), 60)
    png = render_report(r)
    assert png.startswith(PNG_MAGIC)
    assert Image.open(io.BytesIO(png)).size[0] > 400


# ----------------------------------------------------------------------------- teeth
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


def test_rank_puts_the_doctored_image_first(tmp_path):
    for seed in range(12):
        Image.fromarray(smooth_image(128, 128, seed=seed)).save(tmp_path / f"img-{seed:02d}.png")
    doctored = with_noise_patch(smooth_image(128, 128, seed=12), 32, 96, 32, 96)
    Image.fromarray(doctored).save(tmp_path / "img-05-b.png")  # not first by name
    (tmp_path / "notes.txt").write_text("not an image")
    ranking = rank(tmp_path, 75, top=3)
    assert [row["file"] for row in ranking.rows][0] == "img-05-b.png"
    assert len(ranking.rows) == 13 and [row["rank"] for row in ranking.rows] == list(range(1, 14))
    assert all(a["bpp"] >= b["bpp"] for a, b in zip(ranking.rows, ranking.rows[1:]))
    assert [i.source.endswith("img-05-b.png") for i in ranking.top] == [True, False, False]
    assert render_contact_sheet(ranking).startswith(PNG_MAGIC)


# ----------------------------------------------------------------------------- CLI
def ok(result):
    assert result.exit_code == 0, result.output
    return result


def fails(result, message: str):
    assert result.exit_code != 0, result.output
    assert message in result.output and "Traceback" not in result.output, result.output
    return result


def test_cli_inspect_writes_png_and_json_and_refuses_to_overwrite(tmp_path):
    src = tmp_path / "photo.png"
    Image.fromarray(smooth_image(64, 80)).save(src)
    png, js = tmp_path / "report.png", tmp_path / "report.json"
    ok(runner.invoke(app, ["inspect", str(src), "-q", "60", "-o", str(png), "--json", str(js)]))
    assert png.read_bytes().startswith(PNG_MAGIC)
    d, data = json.loads(js.read_text()), aecodec.encode(src, 60)
    assert d["quality"] == 60 and d["totals"]["bytes"] == len(data)
    assert d["rate"]["payload_bits_file"] == payload_bits(data)

    png.write_bytes(b"keep me")
    fails(runner.invoke(app, ["inspect", str(src), "-o", str(png)]), "already exists")
    assert png.read_bytes() == b"keep me"
    ok(runner.invoke(app, ["inspect", str(src), "-o", str(png), "--force"]))
    assert png.read_bytes().startswith(PNG_MAGIC)

    aec = tmp_path / "photo.aec"
    aec.write_bytes(aecodec.encode(src, 30))
    ok(runner.invoke(app, ["inspect", str(aec), "-o", str(tmp_path / "aec.png")]))
    assert (tmp_path / "aec.png").read_bytes().startswith(PNG_MAGIC)
    fails(runner.invoke(app, ["inspect", str(tmp_path / "missing.png"), "-o", str(tmp_path / "m.png")]),
          "no such file")


def test_cli_rank_writes_csv_json_and_contact_sheet_and_refuses_to_overwrite(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    for seed in range(3):
        Image.fromarray(smooth_image(48, 64, seed=seed)).save(images / f"{seed}.png")
    out = tmp_path / "out"
    ok(runner.invoke(app, ["rank", str(images), "-q", "50", "--top", "2", "-o", str(out)]))
    rows = list(csv.DictReader((out / "rank.csv").open()))
    assert [r["rank"] for r in rows] == ["1", "2", "3"] and {r["file"] for r in rows} == {"0.png", "1.png", "2.png"}
    d = json.loads((out / "rank.json").read_text())
    assert [r["file"] for r in d["images"]] == [r["file"] for r in rows] and d["quality"] == 50
    assert (out / "contact.png").read_bytes().startswith(PNG_MAGIC)

    fails(runner.invoke(app, ["rank", str(images), "-o", str(out)]), "already exists")
    ok(runner.invoke(app, ["rank", str(images), "-o", str(out), "--force"]))
    fails(runner.invoke(app, ["rank", str(tmp_path / "nope"), "-o", str(out), "--force"]), "not a directory")


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

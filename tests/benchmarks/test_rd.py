"""benchmarks.rd: image loading, peak memory, a quick run's results, the effort axis, failing on insane results."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from PIL import Image

from benchmarks import rd
from benchmarks.bdrate import bd_rate
from benchmarks.codecs import CLASSICAL, CODECS, Codec
from tests.helpers import aecodec_api_or_skip, synthetic


def test_load_image_drops_metadata_and_gives_rgb_or_l(tmp_path):
    from PIL import ImageCms

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    synthetic().save(tmp_path / "icc.png", icc_profile=icc)
    synthetic().convert("RGBA").save(tmp_path / "rgba.png")
    synthetic().convert("P").save(tmp_path / "palette.png")
    Image.fromarray((np.asarray(synthetic(mode="L")).astype(np.uint16) * 257)).save(tmp_path / "gray16.png")
    loaded = {p.name: rd.load_image(p) for p in rd.list_images(tmp_path)}
    assert {n: im.mode for n, im in loaded.items()} == {
        "gray16.png": "L", "icc.png": "RGB", "palette.png": "RGB", "rgba.png": "RGB"}
    assert all(not im.info for im in loaded.values())
    assert np.array_equal(np.asarray(loaded["gray16.png"]), np.asarray(synthetic(mode="L")))


def test_peak_memory_sees_a_50_mib_allocation_inside_the_block():
    with rd.PeakMemory() as mem:
        block = np.ones(50 * 2**20 // 8)
        del block
    assert 45 < mem.peak_mb < 200


def test_quick_run_writes_sane_results_json_plot_and_bd_table(dataset, tmp_path):
    out = tmp_path / "out"
    t = time.perf_counter()
    code = rd.main(["--dataset", str(dataset), "--out", str(out), "--quick", "--codecs", "classical",
                    "--jobs", "2", "--no-progress"])
    wall = time.perf_counter() - t
    assert code == 0
    res = json.loads((out / "results.json").read_text())
    assert res["checks"] == {"passed": True, "failures": []}
    assert {i["name"]: i["mode"] for i in res["dataset"]["images"]} == {"gray-odd.png": "L", "rgb.png": "RGB"}
    assert set(res["codecs"]) == set(CLASSICAL)
    for name, c in res["codecs"].items():
        if c["status"] == "skipped":
            continue
        assert c["status"] == "ok", (name, c["reason"])
        assert set(c["per_image"]) == {"gray-odd.png", "rgb.png"} and len(c["mean"]) == 3
        for p in c["per_image"]["rgb.png"]:
            assert p["bpp"] == pytest.approx(8 * p["bytes"] / (96 * 80)) and 15 < p["psnr"] < 60 and 0 < p["ssim"] <= 1
            assert p["ms_ssim"] is None  # too small for MS-SSIM's 5 scales
            assert 0 < p["encode_s"] and 0 < p["decode_s"] and p["encode_s"] + p["decode_s"] < wall
            # the block's growth (MiB) holds at least the decoded 96×80 RGB image, and is part of the absolute peak
            assert p["mem_method"] == "rss" and 96 * 80 * 3 <= p["peak_mem_mb"] * 2**20 < p["peak_rss_mb"] * 2**20
    timed = [p["encode_s"] + p["decode_s"] for c in res["codecs"].values() if c["status"] == "ok"
             for pts in c["per_image"].values() for p in pts]
    assert sum(timed) < 2 * wall  # two jobs at a time: all the calls fit in twice the run's wall time
    jpeg_rows = [r for r in res["bd_rate"]["pchip"] if r["anchor"] == "jpeg-420"]
    assert jpeg_rows and all(r["psnr"] is not None for r in jpeg_rows)
    assert res["machine"]["versions"]["Pillow"] and res["machine"]["cpu_model"]
    assert (out / "rd.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| test | anchor |" in (out / "bdrate.md").read_text()


def test_effort_axis_reports_bd_rate_and_time_against_effort_1(dataset, tmp_path):
    aecodec_api_or_skip()
    out = tmp_path / "out"
    code = rd.main(["--dataset", str(dataset), "--out", str(out), "--quick", "--codecs", "jpeg-420", "--efforts", "3",
                    "--images", "1", "--jobs", "1", "--no-progress"])
    assert code == 0
    res = json.loads((out / "results.json").read_text())
    assert set(res["codecs"]) == {"jpeg-420", "aecodec", "aecodec-e3"}
    assert len(res["dataset"]["images"]) == 1
    assert res["codecs"]["aecodec-e3"]["settings"]["effort"] == 3
    (row,) = res["effort"]
    plain, searched = (res["codecs"][n]["mean"] for n in ("aecodec", "aecodec-e3"))
    assert row["effort"] == 3 and row["n_images"] == 1
    assert row["bd_psnr"] == pytest.approx(bd_rate([p["bpp"] for p in plain], [p["psnr"] for p in plain],
                                                   [p["bpp"] for p in searched], [p["psnr"] for p in searched]))
    assert row["encode_s_effort1"] == pytest.approx(np.mean([p["encode_s"] for p in plain]))
    assert row["encode_s"] == pytest.approx(np.mean([p["encode_s"] for p in searched]))
    assert row["encode_s"] > row["encode_s_effort1"]  # the search costs time
    assert all("aecodec-e3" not in (r["anchor"], r["test"]) for r in res["bd_rate"]["pchip"])
    assert "| 3 | 1 |" in (out / "effort.md").read_text()
    assert (out / "effort.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("bad", ["1", "10", "x", ""])
def test_efforts_outside_2_to_9_are_refused(bad):
    with pytest.raises(SystemExit):
        rd.parse_args(["--dataset", ".", "--out", ".", "--efforts", bad])


class _BrokenCodec(Codec):
    """Returns a flat gray image whatever the input: bpp fine, PSNR far too low."""

    name, label, qualities = "broken", "broken", (10, 50, 90)

    def encode(self, image, quality):
        return bytes(int(quality))

    def decode(self, data):
        return Image.new("RGB", (96, 80), (0, 0, 0))


def test_quick_run_exits_non_zero_when_a_codec_gives_insane_results(dataset, tmp_path, monkeypatch):
    for p in list(dataset.iterdir()):
        if p.name != "rgb.png":
            p.unlink()
    monkeypatch.setitem(CODECS, "broken", _BrokenCodec)
    code = rd.main(["--dataset", str(dataset), "--out", str(tmp_path / "out"), "--quick", "--codecs", "broken",
                    "--jobs", "1", "--no-progress"])
    assert code == 1
    failures = json.loads((tmp_path / "out" / "results.json").read_text())["checks"]["failures"]
    assert any("mean PSNR" in f for f in failures)

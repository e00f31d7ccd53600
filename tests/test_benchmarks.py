"""Specifications of the rate-distortion benchmark (benchmarks/): metrics, BD-rate, codecs, CLI.

Self-contained: synthetic images only, no dataset folder needed.
"""

import json
import math
import sys
import time
import types

import numpy as np
import pytest
from PIL import Image

from benchmarks import rd
from benchmarks.codecs import CLASSICAL, CODECS, AECodec, Codec, CodecUnavailable, get_codec
from aecodec.metrics import ms_ssim, ms_ssim_db, psnr, ssim, ssim_and_ms_ssim
from benchmarks.bdrate import bd_rate


def synthetic(width=96, height=80, mode="RGB", seed=0) -> Image.Image:
    """Smooth gradients and waves plus mild noise: compresses like a photo, not like noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / max(width, height)
    channels = 3 if mode == "RGB" else 1
    planes = [120 + 60 * x - 40 * y + 50 * np.sin(2 * np.pi * (1.5 * x + (c + 1) * y) + c) for c in range(channels)]
    a = np.stack(planes, -1) + rng.normal(0, 4, (height, width, channels))
    a = np.clip(np.rint(a), 0, 255).astype(np.uint8)
    return Image.fromarray(a if channels == 3 else a[..., 0], mode)


def codec_or_skip(name) -> Codec:
    codec = get_codec(name)
    try:
        codec.check()
    except CodecUnavailable as e:
        pytest.skip(f"{name} unavailable: {e}")
    return codec


def aecodec_api_or_skip():
    try:
        import aecodec
    except ImportError:
        pytest.skip("aecodec not importable")
    if not callable(getattr(aecodec, "encode", None)):
        pytest.skip("aecodec.encode does not exist yet")


# ----------------------------------------------------------------------------- metrics

def test_psnr_matches_a_direct_numpy_computation():
    ref = np.asarray(synthetic())
    rec = np.clip(ref.astype(int) + np.random.default_rng(1).integers(-9, 10, ref.shape), 0, 255).astype(np.uint8)
    mse = ((ref.astype(np.float64) - rec.astype(np.float64)) ** 2).mean()
    assert psnr(ref, rec) == pytest.approx(10 * np.log10(255**2 / mse), abs=1e-9)
    assert psnr(Image.fromarray(ref), Image.fromarray(rec)) == pytest.approx(psnr(ref, rec), abs=1e-12)


def test_psnr_of_an_error_of_one_level_everywhere_is_48_13_db():
    ref = np.full((10, 12, 3), 100, np.uint8)
    assert psnr(ref, ref + 1) == pytest.approx(20 * math.log10(255), abs=1e-9)  # 48.1308 dB


def test_psnr_of_a_gray_image_is_on_the_gray_plane_and_identical_images_give_inf():
    ref = synthetic(75, 61, "L")
    rec = Image.fromarray(np.clip(np.asarray(ref).astype(int) + 3, 0, 255).astype(np.uint8), "L")
    a, b = np.asarray(ref, np.float64), np.asarray(rec, np.float64)
    assert psnr(ref, rec) == pytest.approx(10 * np.log10(255**2 / ((a - b) ** 2).mean()))
    assert psnr(ref, ref) == math.inf


def test_ssim_is_one_for_identical_images_and_falls_with_noise():
    ref = synthetic()
    noisy = Image.fromarray(np.clip(np.asarray(ref).astype(int) + np.random.default_rng(2).normal(0, 20, (80, 96, 3)),
                                    0, 255).astype(np.uint8))
    assert ssim(ref, ref) == pytest.approx(1.0, abs=1e-6)
    assert 0 < ssim(ref, noisy) < 0.9


def test_ms_ssim_needs_161_pixels_on_the_smaller_side():
    assert ms_ssim(synthetic(), synthetic()) is None  # 96 x 80: too small for 5 scales
    big = synthetic(170, 161)
    assert ms_ssim(big, big) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("size", [(200, 170), (96, 80)])
def test_one_pass_ssim_and_ms_ssim_equal_the_two_public_pytorch_msssim_calls(size):
    ref = synthetic(*size, seed=4)
    rec = Image.fromarray(np.clip(np.asarray(ref).astype(int) + np.random.default_rng(5).normal(0, 12, ref.size[::-1] + (3,)),
                                  0, 255).astype(np.uint8))
    s, m = ssim_and_ms_ssim(ref, rec)
    assert s == pytest.approx(ssim(ref, rec), abs=1e-6)
    assert (m is None and ms_ssim(ref, rec) is None) or m == pytest.approx(ms_ssim(ref, rec), abs=1e-6)


def test_ms_ssim_db_is_minus_ten_log10_of_one_minus_ms_ssim():
    assert ms_ssim_db(0.99) == pytest.approx(20.0)
    assert ms_ssim_db(None) is None and ms_ssim_db(1.0) == math.inf


# ----------------------------------------------------------------------------- BD-rate

RATES = np.array([0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.0])
PSNR_CURVE = 24 + 4.5 * np.log2(RATES / 0.1) - 0.08 * np.log2(RATES / 0.1) ** 2  # concave, like a real codec
MS_SSIM_DB_CURVE = 8 + 3.2 * np.log(RATES / 0.05)


@pytest.mark.parametrize("method", ["pchip", "cubic"])
@pytest.mark.parametrize("metric", [PSNR_CURVE, MS_SSIM_DB_CURVE], ids=["psnr", "ms-ssim-db"])
def test_bd_rate_of_the_same_curve_at_0_8_times_the_rate_is_minus_20_percent(metric, method):
    assert bd_rate(RATES, metric, 0.8 * RATES, metric, method=method) == pytest.approx(-20.0, abs=0.5)


@pytest.mark.parametrize("method", ["pchip", "cubic"])
def test_bd_rate_matches_the_closed_form_for_linear_log_rate_curves(method):
    # anchor: ln R = -5 + 0.15 D, test: ln R = -4.4 + 0.13 D (sampled at other points, other range).
    # Over the shared range [30, 38] the mean log-rate difference is 0.6 - 0.02 * 34 = -0.08.
    d_anchor, d_test = np.linspace(27, 38, 6), np.linspace(30, 41, 7)
    r_anchor, r_test = np.exp(-5 + 0.15 * d_anchor), np.exp(-4.4 + 0.13 * d_test)
    expected = (math.exp(-0.08) - 1) * 100
    assert bd_rate(r_anchor, d_anchor, r_test, d_test, method=method) == pytest.approx(expected, abs=1e-6)


def test_bd_rate_both_ways_round_trips_and_no_overlap_gives_none():
    other = 1.3 * RATES ** 1.1
    ab, ba = bd_rate(RATES, PSNR_CURVE, other, PSNR_CURVE), bd_rate(other, PSNR_CURVE, RATES, PSNR_CURVE)
    assert (1 + ab / 100) * (1 + ba / 100) == pytest.approx(1.0, abs=1e-9)
    assert bd_rate(RATES, PSNR_CURVE, RATES, PSNR_CURVE + 50) is None


# ----------------------------------------------------------------------------- codecs

@pytest.mark.parametrize("name", CLASSICAL)
@pytest.mark.parametrize("image", [synthetic(), synthetic(75, 61, "L", seed=3)], ids=["rgb-96x80", "gray-75x61"])
def test_each_classical_codec_round_trips_a_small_image_with_bpp_from_its_bytes(name, image):
    codec = codec_or_skip(name)
    runs = []
    for q in (codec.qualities[1], codec.qualities[-1]):
        t = time.perf_counter()
        runs.append((codec.run(image, q), time.perf_counter() - t))
    (low, _), (high, _) = runs
    for r, wall in runs:
        assert r.reconstruction.size == image.size and r.reconstruction.mode == image.mode
        assert r.num_bytes > 0 and r.bpp == pytest.approx(r.num_bytes * 8 / (image.width * image.height))
        assert 18 < psnr(image, r.reconstruction) < 60
        assert 0 < r.encode_s and 0 < r.decode_s and r.encode_s + r.decode_s <= wall  # seconds, inside the call
    assert high.bpp > low.bpp and psnr(image, high.reconstruction) > psnr(image, low.reconstruction)


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


def test_aecodec_is_skipped_with_a_reason_when_its_api_is_missing(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "aecodec", types.ModuleType("aecodec"))
    with pytest.raises(CodecUnavailable, match="aecodec.encode"):
        AECodec().check()

    def raise_import_error(image, quality):
        raise ImportError("no weights backend")

    fake = types.ModuleType("aecodec")
    fake.encode, fake.decode = raise_import_error, lambda data: None
    monkeypatch.setitem(sys.modules, "aecodec", fake)
    synthetic().save(tmp_path / "a.png")
    out = rd.run_job((str(tmp_path / "a.png"), "aecodec", [50]))
    assert out["status"] == "skipped" and "ImportError" in out["reason"] and out["points"] == []


def test_aecodec_round_trips_through_its_public_api():
    aecodec_api_or_skip()
    image = synthetic()
    import aecodec

    r = AECodec().run(image, 75)
    data = aecodec.encode(image, quality=75)
    assert r.reconstruction.size == image.size and r.reconstruction.mode == "RGB"
    assert r.num_bytes == len(data) and np.array_equal(np.asarray(r.reconstruction), np.asarray(aecodec.decode(data)))
    assert psnr(image, r.reconstruction) > 25


# ----------------------------------------------------------------------------- command line

@pytest.fixture
def dataset(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    synthetic().save(folder / "rgb.png")
    synthetic(75, 61, "L", seed=5).save(folder / "gray-odd.png")
    return folder


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


def test_effort_ceiling_reruns_effort_9_with_more_steps_and_resumes_from_its_points(dataset, tmp_path):
    aecodec_api_or_skip()
    import aecodec
    from aecodec.codec import refine
    from benchmarks import effort_ceiling

    out, before = tmp_path / "ceiling", dict(refine.ITERATIONS)
    args = ["--dataset", str(dataset), "--images", "rgb", "--iterations", "2", "--qualities", "30,90",
            "--out", str(out)]
    assert effort_ceiling.main(args) == 0
    assert refine.ITERATIONS == before  # the search's table is put back
    res = json.loads((out / "results.json").read_text())
    pts = {(p["iterations"], p["quality"]): p for p in res["points"]}
    assert sorted(pts) == [(n, q) for n in (0, 2) for q in (30.0, 90.0)]  # 0, the anchor, always added
    image = rd.load_image(dataset / "rgb.png")
    # 0 steps is effort 1's file; 2 steps is the file effort 9 writes when its joint steps are 2
    assert pts[0, 30.0]["bytes"] == len(aecodec.encode(image, quality=30))
    with pytest.MonkeyPatch.context() as m:
        m.setitem(refine.ITERATIONS, 9, 2)
        assert pts[2, 90.0]["bytes"] == len(aecodec.encode(image, quality=90, effort=9))
    (row,) = res["rows"]
    assert row["iterations"] == 2 and row["n_images"] == 1 and row["bd_psnr"] is not None
    assert row["bd_psnr_per_image"] == {"rgb.png": pytest.approx(row["bd_psnr"])}  # one image: its own curve
    assert "| 2 | " in (out / "ceiling.md").read_text()
    assert (out / "ceiling.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # a second run finds every point in points.jsonl and codes nothing again
    log = (out / "points.jsonl").read_text()
    assert effort_ceiling.main(args) == 0
    assert (out / "points.jsonl").read_text() == log
    assert effort_ceiling.main([*args[:2], "--images", "nope", *args[4:]]) == 2


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


def test_speed_measures_whole_commands_and_writes_the_readme_block(tmp_path):
    """benchmarks.speed's command timings (real processes on the shipped sample) and the README
    block written from them (benchmarks.report, which speed --page and landing both use; the block
    lives in docs/performance.md, so its link to the results climbs out of docs/);
    ``aecodec info`` must stay far below the commands that load torch."""
    from pathlib import Path

    import aecodec.samples
    from benchmarks import report, speed

    t = time.perf_counter()
    c = speed.commands(aecodec.samples.path(), 50, repeat=1, threads=1)
    wall = time.perf_counter() - t
    assert set(c) == {"import torch", "encode", "decode", "info"}
    assert all(0 < r["min_s"] <= r["median_s"] for r in c.values()) and sum(r["min_s"] for r in c.values()) < wall
    torch_mb = c["import torch"]["peak_rss_MB"]
    assert c["encode"]["peak_rss_MB"] >= torch_mb and c["decode"]["peak_rss_MB"] >= torch_mb  # both load torch
    assert c["info"]["peak_rss_MB"] < 0.5 * c["import torch"]["peak_rss_MB"]
    assert c["decode"]["min_s"] > c["info"]["min_s"]
    result = {"date": "2026-11-28", "quality": 50, "machine": {"cpu": "X", "threads": 1, "torch": "2", "steal_percent": 1.5},
              "commands": {"image": "coffee.png", "repeat": 1, **c},
              "speed": [{"device": "cpu", "size": "600x400", "megapixels": 0.24, "bpp": 1.0, "encode_s": 0.3,
                         "decode_s": 0.4, "encode_min_s": 0.29, "decode_min_s": 0.39, "encode_MPps": 0.8, "decode_MPps": 0.6}]}
    text = "# x\n\nbefore\n\n<!-- speed:begin -->\nold\n<!-- speed:end -->\n\nafter\n"
    text = report.replace_block(text, "speed", report.speed_markdown(result, Path("benchmarks/results/speed.json")))
    assert "old" not in text and text.startswith("# x\n\nbefore\n\n<!-- speed:begin -->\n**Speed**")
    assert text.endswith("<!-- speed:end -->\n\nafter\n") and "steal" in text
    assert f"| `aecodec info` | {c['info']['min_s']:.2f} s |" in text
    assert "| cpu | 600x400 (0.24 MP) | 1.000 | 0.30 / 0.29 s | 0.40 / 0.39 s | 0.8 | 0.6 |" in text
    in_docs = report.speed_markdown(result, Path("benchmarks/results/speed.json"), Path("docs"))
    assert "[`benchmarks/results/speed.json`](../benchmarks/results/speed.json)" in in_docs
    older = {**result, "speed": [{k: v for k, v in result["speed"][0].items() if not k.endswith("_min_s")}]}
    del older["commands"]  # results written before whole commands and minimums were measured
    assert "| 0.30 s | 0.40 s |" in report.speed_markdown(older, Path("speed.json"))

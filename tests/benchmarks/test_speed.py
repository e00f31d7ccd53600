"""benchmarks.speed: whole commands timed as real processes, and the speed block written from them."""

from __future__ import annotations

import time


def test_speed_measures_whole_commands_and_writes_the_readme_block(tmp_path):
    """benchmarks.speed's command timings (real processes on the shipped sample) and the README
    block written from them (benchmarks.report, which speed --page and landing both use; the block
    lives in docs/performance.md, so its link to the results climbs out of docs/);
    ``aecodec info`` must stay far below the commands that load the model."""
    import sys
    from pathlib import Path

    import aecodec.samples
    from benchmarks import report, speed

    t = time.perf_counter()
    c = speed.commands(aecodec.samples.path(), 50, repeat=1, threads=1, runtime=sys.executable, baseline=None)
    wall = time.perf_counter() - t
    assert set(c) == {"floor", "encode", "decode", "info"}
    assert all(0 < r["min_s"] <= r["median_s"] for r in c.values()) and sum(r["min_s"] for r in c.values()) < wall
    floor_mb = c["floor"]["peak_rss_MB"]
    assert c["encode"]["peak_rss_MB"] >= floor_mb and c["decode"]["peak_rss_MB"] >= floor_mb  # both load onnxruntime
    assert c["info"]["peak_rss_MB"] < c["decode"]["peak_rss_MB"]
    assert c["decode"]["min_s"] > c["info"]["min_s"]
    result = {"date": "2026-11-28", "quality": 50,
              "machine": {"cpu": "X", "threads": 1, "onnxruntime": "1.32.0", "torch": "2", "steal_percent": 1.5},
              "runtime_install": {"venv_MB": 250.5, "site_packages_MB": 224.0, "largest": {"onnxruntime": 78.0}},
              "commands": {"image": "coffee.png", "repeat": 1, "runtime": "runtime venv (no torch)", **c},
              "speed": [{"engine": "onnxruntime", "size": "600x400", "megapixels": 0.24, "bpp": 1.0, "encode_s": 0.3,
                         "decode_s": 0.4, "encode_min_s": 0.29, "decode_min_s": 0.39, "encode_MPps": 0.8,
                         "decode_MPps": 0.6}],
              "classical": [{"codec": "WebP q 90", "bpp": 2.5, "encode_s": 0.04, "encode_min_s": 0.035,
                             "decode_s": 0.0055, "decode_min_s": 0.005}]}
    text = "# x\n\nbefore\n\n<!-- speed:begin -->\nold\n<!-- speed:end -->\n\nafter\n"
    text = report.replace_block(text, "speed", report.speed_markdown(result, Path("benchmarks/results/speed.json")))
    assert "old" not in text and text.startswith("# x\n\nbefore\n\n<!-- speed:begin -->\n**Speed**")
    assert text.endswith("<!-- speed:end -->\n\nafter\n") and "steal" in text
    assert f"| `aecodec info` | {c['info']['min_s']:.2f} s |" in text
    assert "by the runtime install" in text and "takes **250.5 MB** on disk" in text
    assert "| onnxruntime | 600x400 (0.24 MP) | 1.000 | 0.30 / 0.29 s | 0.40 / 0.39 s | 0.8 | 0.6 |" in text
    assert "| WebP q 90 | 2.500 | 40.0 / 35.0 ms | 5.5 / 5.0 ms |" in text
    in_docs = report.speed_markdown(result, Path("benchmarks/results/speed.json"), Path("docs"))
    assert "[`benchmarks/results/speed.json`](../benchmarks/results/speed.json)" in in_docs
    older = {**result, "speed": [{("device" if k == "engine" else k): v for k, v in result["speed"][0].items()
                                  if not k.endswith("_min_s")}]}
    for key in ("commands", "runtime_install", "classical"):  # results written before these were measured
        del older[key]
    assert "| 0.30 s | 0.40 s |" in report.speed_markdown(older, Path("speed.json"))


def test_classical_codecs_are_timed_through_pillow():
    import numpy as np

    from benchmarks import speed

    rows = speed.classical(np.random.default_rng(0).integers(0, 256, (64, 96, 3), dtype=np.uint8), repeat=1)
    assert [r["codec"].split()[0] for r in rows] == ["JPEG", "WebP", "AVIF"]
    assert all(r["bpp"] > 0 and 0 < r["decode_min_s"] <= r["decode_s"] for r in rows)

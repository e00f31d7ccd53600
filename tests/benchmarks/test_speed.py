"""benchmarks.speed: whole commands timed as real processes, and the speed block written from them."""

from __future__ import annotations

import time


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

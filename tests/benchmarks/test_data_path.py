"""benchmarks.data_path: our photo loader and crops timed against torchvision's."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny training runs: one thread


def test_the_data_path_benchmark_times_our_loader_and_crops_against_torchvision(data_dir, tmp_path):
    # A subprocess: where torchvision needs its operator schemas registered by hand, that stays there.
    import subprocess
    import sys
    import time
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    out = tmp_path / "dp.json"
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "benchmarks.data_path", "--data", str(data_dir), "--photos", "3",
                        "--crop", "64", "--batch", "2", "--out", str(out)], cwd=root, capture_output=True,
                       text=True, timeout=300)
    wall = time.perf_counter() - t
    assert r.returncode == 0, r.stderr[-2000:]
    d = json.loads(out.read_text())
    # medians of 3 (and 50) timed repeats: at least 2 (25) of them took that long, inside the process
    assert d["decode"]["photos"] == 3 and 0 < 2 * 3 * d["decode"]["pillow_ms_per_photo"] / 1e3 < wall
    assert "torchvision_ms_per_photo" in d["decode"] or d["decode"]["torchvision"].startswith("unavailable")
    cpu = d["crops"][0]
    assert cpu["device"] == "cpu" and 0 < 25 * cpu["crop_sampler_ms"] / 1e3 < wall

"""benchmarks.effort_ceiling: effort 9 rerun with more steps, resumed from the points already measured."""

from __future__ import annotations

import json

import pytest

from benchmarks import rd
from tests.helpers import aecodec_api_or_skip


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

"""aecodec.batch (run_job, rd_curve): the rd curve does not depend on the order the images finished in."""

from __future__ import annotations

import pytest


def test_the_rd_curve_does_not_depend_on_the_order_images_finished_in():
    """The manifest lists images as they finished, so a rerun reads them in another order; four
    times whose float sum, divided by 4 and rounded, gave 0.4948 one way round and 0.4949 the other."""
    from aecodec.batch import rd_curve

    rows = [{"status": "done", "points": [{"bpp": 0.5, "psnr": 30.0, "ms_ssim_db": None, "encode_s": s,
                                           "decode_s": s}]} for s in (0.4376, 0.9192, 0.5796, 0.043)]
    curves = [rd_curve(order, [50.0]) for order in (rows, rows[::-1])]
    assert curves[0] == curves[1]
    assert curves[0][0]["images"] == 4 and curves[0][0]["ms_ssim_db"] is None
    assert curves[0][0]["encode_s"] == pytest.approx(0.49485, abs=1e-4)

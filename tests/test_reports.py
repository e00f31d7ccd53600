"""aecodec.reports: an inspection's report is a PNG; a ranking's contact sheet outlines each region."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from aecodec.inspection import inspect
from aecodec.reports import render_report
from tests.helpers import PNG_MAGIC, smooth_image


def test_reports_are_pngs():
    r = inspect(smooth_image(64, 80), 60)
    png = render_report(r)
    assert png.startswith(PNG_MAGIC)
    assert Image.open(io.BytesIO(png)).size[0] > 400


@pytest.mark.parametrize("by", ["error", "peak", "mean"])
def test_a_contact_sheet_outlines_each_top_images_region_on_the_map_that_scored_it(tmp_path, by):
    from aecodec.ranking import rank
    from aecodec.reports import render_contact_sheet
    from tests.helpers import with_noise_patch

    for seed in range(2):
        Image.fromarray(smooth_image(64, 64, seed=seed)).save(tmp_path / f"{seed}.png")
    Image.fromarray(with_noise_patch(smooth_image(64, 64, seed=5), 16, 48, 16, 48)).save(tmp_path / "odd.png")
    png = render_contact_sheet(rank(tmp_path, 60, by=by, top=2))
    sheet = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    outline = (abs(sheet[..., 0] - 0x00) < 40) & (abs(sheet[..., 1] - 0xE5) < 40) & (abs(sheet[..., 2] - 0xFF) < 40)
    assert outline.sum() > 100  # the regions' cyan boxes are drawn

"""aecodec.reports: an inspection's report is a PNG."""

from __future__ import annotations

import io

from PIL import Image

from aecodec.inspection import inspect
from aecodec.reports import render_report
from tests.helpers import PNG_MAGIC, smooth_image


def test_reports_are_pngs():
    r = inspect(smooth_image(64, 80), 60)
    png = render_report(r)
    assert png.startswith(PNG_MAGIC)
    assert Image.open(io.BytesIO(png)).size[0] > 400

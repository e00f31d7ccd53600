"""Fixtures of the comparison tests: a comparison made by the real codecs, and a real browser.

The browser is the system's Chromium driven by Playwright (``playwright install`` is not needed):
found as ``$AECODEC_CHROMIUM``, ``chromium`` or ``chromium-browser`` on the PATH. Without it, or
without Playwright, the browser tests are skipped with the reason — unless ``AECODEC_REQUIRE_BROWSER=1``
(CI sets it), where they fail instead.
"""

from __future__ import annotations

import os
import time

import pytest

from aecodec.comparison.codecs import CodecUnavailable, get_codec
from aecodec.comparison.results import Coded, Comparison, CurvePoint
from aecodec.metrics import ms_ssim, psnr
from benchmarks.compare import chromium_or_reason
from tests.helpers import synthetic

IMAGE_SIZE = (200, 168)  # MS-SSIM needs 161 pixels on the smaller side: this one has it
CODED = (("aecodec", 40), ("jpeg-420", 50), ("webp", 60), ("avif", 50))  # codec id, quality
CURVE_POINTS = 4  # qualities of each sweep drawn on the chart


def _coded(codec_id: str, quality: float, image) -> Coded:
    """``image`` through codec ``codec_id`` at ``quality``: its real file, timed, decoded, measured."""
    codec = get_codec(codec_id)
    start = time.perf_counter()
    data = codec.encode(image, quality)
    encoded = time.perf_counter()
    reconstruction = codec.decode(data).convert("RGB")
    decoded = time.perf_counter()
    return Coded(codec=codec_id, label=codec.label, quality=quality, data=data, extension=codec.extension,
                 psnr=psnr(image, reconstruction), ms_ssim=ms_ssim(image, reconstruction),
                 encode_s=encoded - start, decode_s=decoded - encoded, reconstruction=reconstruction)


def _curve(codec_id: str, image) -> list[CurvePoint]:
    """A few points of the codec's quality sweep on ``image``, from its real files."""
    codec = get_codec(codec_id)
    step = max(1, len(codec.qualities) // CURVE_POINTS)
    points = []
    for quality in codec.qualities[::step]:
        run = codec.run(image, quality)
        points.append(CurvePoint(quality, run.num_bytes, run.bpp, psnr(image, run.reconstruction)))
    return points


@pytest.fixture(scope="session")
def comparison() -> Comparison:
    """A photo-like 200×168 image coded by aecodec, JPEG 4:2:0, WebP and AVIF (where Pillow has it),
    with a short rate–distortion sweep of each; the budget is the largest file."""
    image = synthetic(*IMAGE_SIZE)
    coded, left_out = [], {}
    for codec_id, quality in CODED:
        try:
            get_codec(codec_id).check()
        except CodecUnavailable as e:
            left_out[codec_id] = str(e)
            continue
        coded.append(_coded(codec_id, quality, image))
    budget = max(f.num_bytes for f in coded)
    curves = {f.codec: _curve(f.codec, image) for f in coded}
    return Comparison(name="synthetic.png", original=image, budget=budget, target=f"{budget} bytes", coded=coded,
                      left_out={**left_out, "jxl": "pillow-jxl-plugin not installed (a test's note)"},
                      curves=curves, labels={f.codec: f.label for f in coded})


@pytest.fixture(scope="session")
def browser():
    """A headless Chromium for the session (skipped, or failed under AECODEC_REQUIRE_BROWSER=1, without one)."""
    executable, reason = chromium_or_reason()
    if executable is None:
        if os.environ.get("AECODEC_REQUIRE_BROWSER") == "1":
            pytest.fail(f"the browser tests need a browser: {reason}")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            yield chromium
        finally:
            chromium.close()


class PageLog:
    """What a browser page reported while it ran: console messages, uncaught errors, requests."""

    def __init__(self, page):
        self.console: list[str] = []
        self.errors: list[str] = []
        self.requests: list[str] = []
        page.on("console", lambda m: self.console.append(f"{m.type}: {m.text}"))
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on("request", lambda r: self.requests.append(r.url))

    def clear(self):
        self.console.clear(), self.errors.clear(), self.requests.clear()

    def problems(self, *pages: str) -> list[str]:
        """Console errors and warnings, page errors, and requests for anything but data: URLs and
        the URLs of ``pages`` (those the test opened)."""
        return ([m for m in self.console if m.startswith(("error", "warning"))] + self.errors
                + [f"request {u[:80]}" for u in self.requests if u not in pages and not u.startswith("data:")])


@pytest.fixture(scope="session")
def open_page(browser):
    """``open_page(path, width=1280, height=1000, scale=1)``: a new page (``scale`` device pixels
    per CSS pixel) that loaded the file at ``path`` over file://, and its :class:`PageLog`. Pages
    are closed at the session's end."""
    contexts = []

    def open_(path, width=1280, height=1000, scale=1):
        context = browser.new_context(viewport={"width": width, "height": height}, device_scale_factor=scale)
        contexts.append(context)
        page = context.new_page()
        log = PageLog(page)
        page.goto(path.as_uri())
        return page, log

    yield open_
    for context in contexts:
        context.close()

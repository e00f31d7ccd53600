"""The page in a real browser (Chromium through Playwright, device scale 1): it loads from disk with
no error and no network, and its canvas shows each decoder's pixels exactly — at 100 %, either side
of the divider wherever it is dragged, at 4× as 4×4 blocks, after the keys, the menus and a click in
the table; the table's numbers are those of the files it offers; the index leads to the pages.

The canvas is read back with toDataURL (lossless PNG) and compared with the images the page was
made from, within one level. The image's place on the canvas is found from its pixels (the stage
around it is one flat grey), the divider's from its handle's position on the screen."""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from aecodec.comparison.page import ORIGINAL_ID, index_entry, render_index, render_page
from aecodec.metrics import psnr

BACKGROUND = (0x2E, 0x2E, 0x2E)  # viewer.js's stage colour
SAMPLE = Path(__file__).resolve().parents[2] / "aecodec" / "samples" / "coffee.png"


# ----------------------------------------------------------------------------- fixtures and helpers
@pytest.fixture(scope="module")
def pages(comparison, tmp_path_factory) -> dict[str, Path]:
    """The comparison's page, a second page with two of its codecs, and their index, on disk."""
    folder = tmp_path_factory.mktemp("compare pages")
    other = dataclasses.replace(comparison, name="other image.png", coded=comparison.coded[:2])
    files = {"page": folder / "synthetic.html", "other": folder / "other image.html", "index": folder / "index.html"}
    files["page"].write_bytes(render_page(comparison, index_href="index.html"))
    files["other"].write_bytes(render_page(other, index_href="index.html"))
    entries = [index_entry("synthetic.html", comparison), index_entry("other image.html", other)]
    files["index"].write_bytes(render_index(entries))
    return files


@pytest.fixture(scope="module")
def tab(open_page, pages):
    """One browser tab for the module's tests, each of which loads its page afresh."""
    return open_page(pages["page"])


@pytest.fixture
def viewer(tab, pages):
    """The comparison's page, freshly loaded and decoded; after the test, no error, warning or
    network request may have happened on it."""
    page, log = tab
    log.clear()
    page.goto(pages["page"].as_uri())
    wait_decoded(page)
    yield page
    assert log.problems(page.url) == []


def wait_decoded(page):
    """Wait until both sides' images are decoded and drawn (their labels stop saying "decoding")."""
    page.wait_for_function("""() => ['left-label', 'right-label'].every(id => {
        const text = document.getElementById(id).textContent; return text && !text.includes('decoding'); })""")


def images_of(comparison) -> dict[str, np.ndarray]:
    """Each id's pixels as the page should show them: the original and each decoder's output."""
    return {ORIGINAL_ID: np.asarray(comparison.original), **{f.codec: np.asarray(f.reconstruction)
                                                              for f in comparison.coded}}


def canvas_pixels(page) -> np.ndarray:
    """The viewer canvas's pixels (H, W, 3), read back losslessly."""
    url = page.evaluate("document.getElementById('view').toDataURL('image/png')")
    with Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))) as png:
        return np.asarray(png.convert("RGB"))


def image_box(pixels: np.ndarray) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) of what is not the stage's grey: where the image is drawn."""
    drawn = np.any(pixels != BACKGROUND, axis=-1)
    ys, xs = np.flatnonzero(drawn.any(1)), np.flatnonzero(drawn.any(0))
    return int(xs[0]), int(ys[0]), int(xs[-1]) + 1, int(ys[-1]) + 1


def split_column(page) -> int:
    """The canvas column where the right side begins, from the divider's place on the screen."""
    divider, canvas = page.locator("#divider").bounding_box(), page.locator("#view").bounding_box()
    return math.floor(divider["x"] + divider["width"] / 2 - canvas["x"])


def assert_close(shown: np.ndarray, expected: np.ndarray, what: str):
    assert shown.shape == expected.shape, f"{what}: shape {shown.shape} != {expected.shape}"
    worst = int(np.abs(shown.astype(int) - expected.astype(int)).max())
    assert worst <= 1, f"{what}: pixels differ by up to {worst}"


def assert_sides(page, comparison, left: str, right: str, zoom: int = 1):
    """The canvas shows image ``left`` left of the divider and ``right`` from it on, each pixel a
    zoom × zoom block, the whole image on the canvas."""
    images = images_of(comparison)
    assert (page.input_value("#left-choice"), page.input_value("#right-choice")) == (left, right)
    pixels = canvas_pixels(page)
    x0, y0, x1, y1 = image_box(pixels)
    assert (x1 - x0, y1 - y0) == (comparison.width * zoom, comparison.height * zoom)
    split = split_column(page) - x0  # in the zoomed image's columns
    assert 0 < split < x1 - x0, "the divider is not over the image"
    shown = pixels[y0:y1, x0:x1]
    left_expected, right_expected = (np.repeat(np.repeat(images[i], zoom, 0), zoom, 1) for i in (left, right))
    assert_close(shown[:, :split], left_expected[:, :split], f"left of the divider ({left})")
    assert_close(shown[:, split:], right_expected[:, split:], f"right of the divider ({right})")


def readout(page) -> tuple[int, int, tuple[int, ...]]:
    """The image pixel under the pointer, as the viewer's readout says: x, y, the left side's RGB."""
    text = page.text_content("#pixel-readout")
    match = re.match(r"x (\d+)\s+y (\d+)\s+left (\d+) (\d+) (\d+)", text)
    assert match, f"readout {text!r}"
    x, y, *rgb = map(int, match.groups())
    return x, y, tuple(rgb)


# ----------------------------------------------------------------------------- the page
def test_the_page_loads_from_disk_with_no_error_and_no_network(tab, pages, comparison):
    page, log = tab
    log.clear()
    page.goto(pages["page"].as_uri())
    wait_decoded(page)
    assert page.url.startswith("file://")
    assert log.problems(page.url) == []
    assert all(url == page.url or url.startswith("data:") for url in log.requests)
    assert page.evaluate("document.querySelectorAll('script[src], link, iframe, object, embed').length") == 0
    assert page.title().startswith("synthetic.png")
    assert image_box(canvas_pixels(page))[2] > 0  # something was drawn


def test_at_100_percent_the_canvas_shows_the_originals_pixels(viewer, comparison):
    viewer.select_option("#left-choice", ORIGINAL_ID)
    viewer.select_option("#right-choice", ORIGINAL_ID)
    viewer.click("#zoom-100")
    assert viewer.text_content("#zoom-level") == "100\u00a0%"
    pixels = canvas_pixels(viewer)
    x0, y0, x1, y1 = image_box(pixels)
    assert_close(pixels[y0:y1, x0:x1], np.asarray(comparison.original), "the original at 100 %")


def test_on_a_screen_of_two_device_pixels_per_css_pixel_100_percent_is_one_image_pixel_per_device_pixel(
        open_page, pages, comparison):
    page, log = open_page(pages["page"], width=900, height=700, scale=2)
    wait_decoded(page)
    size = page.evaluate("(c => [c.width, c.height, c.clientWidth, c.clientHeight])(document.getElementById('view'))")
    assert size[:2] == [2 * size[2], 2 * size[3]]  # the backing store in device pixels
    page.select_option("#left-choice", ORIGINAL_ID)
    page.select_option("#right-choice", ORIGINAL_ID)
    page.keyboard.press("0")
    pixels = canvas_pixels(page)
    x0, y0, x1, y1 = image_box(pixels)
    assert_close(pixels[y0:y1, x0:x1], np.asarray(comparison.original), "the original at 100 % on a 2× screen")
    assert log.problems(page.url) == []


def test_dragging_the_divider_moves_it_and_each_side_shows_its_choice(viewer, comparison):
    first, second, third = (f.codec for f in comparison.coded[:3])
    assert_sides(viewer, comparison, first, second)
    before = split_column(viewer)
    handle = viewer.locator("#divider .handle").bounding_box()
    x, y = handle["x"] + handle["width"] / 2, handle["y"] + handle["height"] / 2
    viewer.mouse.move(x, y)
    viewer.mouse.down()
    viewer.mouse.move(x + 25, y + 30, steps=3)
    viewer.mouse.move(x + 40, y, steps=2)
    viewer.mouse.up()
    assert abs(split_column(viewer) - (before + 40)) <= 1
    assert_sides(viewer, comparison, first, second)
    viewer.select_option("#left-choice", third)
    viewer.select_option("#right-choice", ORIGINAL_ID)
    wait_decoded(viewer)
    assert_sides(viewer, comparison, third, ORIGINAL_ID)


def test_zooming_to_4x_shows_each_pixel_as_an_exact_4x4_block(viewer, comparison):
    first, second = (f.codec for f in comparison.coded[:2])
    canvas = viewer.locator("#view").bounding_box()
    viewer.mouse.move(canvas["x"] + canvas["width"] / 2, canvas["y"] + canvas["height"] / 2)
    viewer.mouse.wheel(0, -120)  # one step in: 200 %
    viewer.wait_for_function("document.getElementById('zoom-level').textContent === '200\u00a0%'")
    viewer.click("#zoom-in")
    assert viewer.text_content("#zoom-level") == "400\u00a0%"
    assert_sides(viewer, comparison, first, second, zoom=4)


def test_zooming_keeps_the_pixel_under_the_pointer_and_dragging_pans_both_sides(viewer, comparison):
    viewer.keyboard.press("Shift+Digit1")  # the original on the left: the readout's values are its
    for _ in range(3):
        viewer.keyboard.press("+")  # 800 %: larger than the canvas
    canvas = viewer.locator("#view").bounding_box()
    point = (canvas["x"] + 300, canvas["y"] + 200)  # left of the divider
    viewer.mouse.move(*point)
    x, y, _ = readout(viewer)
    viewer.mouse.wheel(0, -120)  # 1600 %, about the pointer
    assert viewer.text_content("#zoom-level") == "1600\u00a0%"
    x16, y16, _ = readout(viewer)
    assert abs(x16 - x) <= 1 and abs(y16 - y) <= 1
    viewer.mouse.down()
    viewer.mouse.move(point[0] - 160, point[1] - 80, steps=4)
    viewer.mouse.up()
    viewer.mouse.move(*point)
    x_panned, y_panned, rgb = readout(viewer)
    assert (x_panned, y_panned) == (x16 + 10, y16 + 5)  # 160 and 80 screen pixels at 16 per image pixel
    assert rgb == tuple(np.asarray(comparison.original)[y_panned, x_panned])
    shown = canvas_pixels(viewer)[round(point[1] - canvas["y"]), round(point[0] - canvas["x"])]
    assert tuple(shown) == rgb


def test_keys_pick_the_right_side_the_left_side_and_swap_them(viewer, comparison):
    ids = [ORIGINAL_ID] + [f.codec for f in comparison.coded]
    viewer.locator("h1").click()  # focus on the page, not on a control
    viewer.keyboard.press("Digit4")
    viewer.keyboard.press("Shift+Digit1")
    wait_decoded(viewer)
    assert_sides(viewer, comparison, ORIGINAL_ID, ids[3])
    viewer.keyboard.press("Space")
    assert_sides(viewer, comparison, ids[3], ORIGINAL_ID)
    viewer.keyboard.press("f")
    assert viewer.text_content("#zoom-level") != "100\u00a0%"  # the small image fits larger
    viewer.keyboard.press("0")
    assert viewer.text_content("#zoom-level") == "100\u00a0%"


def test_clicking_a_row_of_the_table_shows_that_codec_on_the_right(viewer, comparison):
    first, last = comparison.coded[0].codec, comparison.coded[-1].codec
    viewer.click(f"#results tr[data-codec='{last}'] td.codec")
    wait_decoded(viewer)
    assert_sides(viewer, comparison, first, last)
    assert viewer.get_attribute(f"#results tr[data-codec='{last}']", "class") == "shown-right"
    viewer.click(f"#results tr[data-codec='{ORIGINAL_ID}'] td.codec")
    assert_sides(viewer, comparison, first, ORIGINAL_ID)


def test_the_tables_numbers_are_those_of_the_files_it_offers(viewer, comparison, tmp_path):
    from typer.testing import CliRunner

    import aecodec
    from aecodec.cli import app
    from benchmarks.codecs import get_codec

    data = json.loads(viewer.text_content("#aecodec-compare-data"))
    with Image.open(io.BytesIO(base64.b64decode(data["images"][0]["src"].split(",", 1)[1]))) as png:
        original = np.asarray(png.convert("RGB"))
    shown = {entry["id"]: entry["src"] for entry in data["images"]}
    rows = viewer.eval_on_selector_all("#results tbody tr[data-codec]:not([data-codec='original'])", """rows =>
        rows.map(row => ({codec: row.dataset.codec,
                          values: [...row.querySelectorAll('td[data-value]')].map(td => td.dataset.value),
                          name: row.querySelector('a[download]').getAttribute('download'),
                          href: row.querySelector('a[download]').href}))""")
    assert [row["codec"] for row in rows] == [f.codec for f in comparison.coded]
    pixels = original.shape[0] * original.shape[1]
    for row in rows:
        quality, size, bpp, table_psnr = row["values"][:4]
        file = base64.b64decode(row["href"].split(",", 1)[1])
        assert int(size) == len(file) and float(bpp) == 8 * len(file) / pixels
        if row["name"].endswith(".aec"):
            path = tmp_path / row["name"]
            path.write_bytes(file)
            result = CliRunner().invoke(app, ["info", "--json", str(path)])
            assert result.exit_code == 0, result.output
            info = json.loads(result.output)
            assert (info["bytes"], info["width"], info["height"]) == (len(file), *original.shape[1::-1])
            assert info["bpp"] == pytest.approx(float(bpp), rel=1e-12)
            assert info["quality"] == pytest.approx(float(quality), abs=1e-3)
            decoded = np.asarray(aecodec.decode(file).convert("RGB"))
        else:
            decoded = np.asarray(get_codec(row["codec"]).decode(file).convert("RGB"))
        assert psnr(original, decoded) == pytest.approx(float(table_psnr), rel=1e-12)
        with Image.open(io.BytesIO(base64.b64decode(shown[row["codec"]].split(",", 1)[1]))) as png:
            np.testing.assert_array_equal(np.asarray(png.convert("RGB")), decoded)  # the viewer shows this file


# ----------------------------------------------------------------------------- the index
def test_the_index_loads_with_a_thumbnail_per_image_linked_to_its_page(tab, pages):
    page, log = tab
    log.clear()
    page.goto(pages["index"].as_uri())
    page.wait_for_function("[...document.images].every(img => img.complete && img.naturalWidth > 0)")
    assert log.problems(page.url) == []
    thumbnails = page.locator("img.thumb")
    assert thumbnails.count() == 2
    links = page.eval_on_selector_all("img.thumb", "images => images.map(img => img.closest('a').href)")
    assert links == [pages["page"].as_uri(), pages["other"].as_uri()]
    thumbnails.nth(1).click()
    page.wait_for_url(pages["other"].as_uri())
    wait_decoded(page)
    assert page.title().startswith("other image.png")
    page.click("text=← All images")
    page.wait_for_url(pages["index"].as_uri())
    assert log.problems(pages["index"].as_uri(), pages["other"].as_uri()) == []


# ----------------------------------------------------------------------------- the command
def test_aecodec_compare_writes_a_page_that_opens_with_every_default_codec(open_page, tmp_path):
    pytest.importorskip("aecodec.cli.compare")
    from typer.testing import CliRunner

    from aecodec.cli import app

    out = tmp_path / "compare.html"
    result = CliRunner().invoke(app, ["compare", str(SAMPLE), "--size", "20k", "-o", str(out)])
    assert result.exit_code == 0, result.output
    page, log = open_page(out)
    wait_decoded(page)
    expected = ["Original", "aecodec", "JPEG 4:2:0", "WebP", "AVIF", "JPEG XL"]
    try:
        import pillow_jxl  # noqa: F401
    except ImportError:
        expected.remove("JPEG XL")
    for side in ("left", "right"):
        options = page.eval_on_selector_all(f"#{side}-choice option", "options => options.map(o => o.textContent)")
        assert [o.split(" · ", 1)[1] for o in options] == expected
    sizes = page.eval_on_selector_all("#results td:nth-child(3)[data-value]", "tds => tds.map(td => td.dataset.value)")
    assert len(sizes) == len(expected) - 1 and all(int(s) <= 20_000 for s in sizes)
    assert page.locator("section.chart svg").count() == 1
    assert log.problems(page.url) == []

"""The page and the index as HTML, without a browser: what they carry is the comparison's, exactly
(images, files, numbers), every outside text is escaped, and nothing points at the network."""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import re
from html.parser import HTMLParser

import numpy as np
import pytest
from PIL import Image

from aecodec.comparison.chart import codec_colour
from aecodec.comparison.page import ORIGINAL_ID, index_entry, render_index, render_page

HOSTILE = "<script>alert(1)</script>.png"


class Elements(HTMLParser):
    """Every start tag of a document with its attributes, its text, the data-codec of its row and
    the id of its table."""

    def __init__(self, document: bytes):
        super().__init__()
        self.elements: list[dict] = []
        self._open: list[dict] = []
        self._row = self._table = None
        self.feed(document.decode("utf-8"))

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self._table = dict(attrs).get("id")
        if tag == "tr":
            self._row = dict(attrs).get("data-codec")
        element = {"tag": tag, "attrs": dict(attrs), "text": "", "row": self._row, "table": self._table}
        self.elements.append(element)
        if tag not in ("meta", "br", "img", "input", "link"):  # void elements hold no text
            self._open.append(element)

    def handle_endtag(self, tag):
        while self._open:
            if self._open.pop()["tag"] == tag:
                break

    def handle_data(self, data):
        for element in self._open:
            element["text"] += data

    def all(self, tag, **attrs):
        return [e for e in self.elements if e["tag"] == tag
                and all(e["attrs"].get(k.replace("_", "-")) == v for k, v in attrs.items())]

    def one(self, tag, **attrs):
        found = self.all(tag, **attrs)
        assert len(found) == 1, f"{len(found)} <{tag} {attrs}>"
        return found[0]


def _data_uri_bytes(uri: str, media_type: str) -> bytes:
    prefix = f"data:{media_type};base64,"
    assert uri.startswith(prefix), uri[:40]
    return base64.b64decode(uri[len(prefix):], validate=True)


def _script_data(elements: Elements) -> dict:
    return json.loads(elements.one("script", type="application/json", id="aecodec-compare-data")["text"])


@pytest.fixture(scope="module")
def page(comparison) -> Elements:
    return Elements(render_page(comparison, index_href="index.html"))


def test_the_page_carries_the_original_and_each_decoders_output_losslessly(comparison, page):
    data = _script_data(page)
    assert (data["width"], data["height"]) == comparison.original.size
    expected = [(ORIGINAL_ID, "Original", comparison.original)] + [
        (f.codec, f.label, f.reconstruction) for f in comparison.coded]
    assert [(e["id"], e["label"]) for e in data["images"]] == [(i, label) for i, label, _ in expected]
    for entry, (_, _, image) in zip(data["images"], expected):
        with Image.open(io.BytesIO(_data_uri_bytes(entry["src"], "image/png"))) as png:
            assert png.format == "PNG"
            np.testing.assert_array_equal(np.asarray(png.convert("RGB")), np.asarray(image))
    assert (data["left"], data["right"]) == (comparison.coded[0].codec, comparison.coded[1].codec)


def test_each_codecs_file_is_offered_byte_for_byte_under_the_images_name(comparison, page):
    links = [e for e in page.all("a") if "download" in e["attrs"]]
    assert [link["attrs"]["download"] for link in links] == [f"synthetic{f.extension}" for f in comparison.coded]
    for link, f in zip(links, comparison.coded):
        assert link["row"] == f.codec
        assert _data_uri_bytes(link["attrs"]["href"], "application/octet-stream") == f.data


def test_the_tables_data_values_are_the_exact_numbers(comparison, page):
    for f in comparison.coded:
        cells = [e for e in page.all("td") if e["row"] == f.codec and "data-value" in e["attrs"]]
        values = [e["attrs"]["data-value"] for e in cells]
        assert values == [repr(v) for v in (f.quality, f.num_bytes, f.bpp(comparison.pixels), f.psnr,
                                             f.ms_ssim_db, f.encode_s, f.decode_s)]
    rows = [e["attrs"]["data-codec"] for e in page.all("tr") if "data-codec" in e["attrs"]]
    assert rows == [ORIGINAL_ID] + [f.codec for f in comparison.coded]
    shown = [e["text"] for e in page.all("td") if e["row"] == comparison.coded[0].codec]
    f = comparison.coded[0]
    assert f"{f.bpp(comparison.pixels):.3f}" in shown and f"{f.psnr:.2f}" in shown
    assert f"{f.num_bytes:,}".replace(",", "\u2009") in shown


def test_a_missing_ms_ssim_shows_a_dash_and_the_best_psnr_is_bold(comparison):
    small = dataclasses.replace(comparison.coded[0], ms_ssim=None, psnr=99.0)
    page = Elements(render_page(dataclasses.replace(comparison, coded=[small, *comparison.coded[1:]])))
    cells = [e for e in page.all("td") if e["row"] == small.codec]
    assert "—" in [c["text"] for c in cells]
    assert [c["attrs"]["data-value"] for c in cells if c["attrs"].get("class") == "best"] == ["99.0"]


def test_the_budget_the_image_and_the_left_out_codecs_are_stated(comparison, page):
    text = " ".join(e["text"] for e in page.all("p") + page.all("h1") + page.all("li"))
    assert "synthetic.png" in text and f"{comparison.width} × {comparison.height}" in text
    assert f"{comparison.budget:,}".replace(",", "\u2009") + " bytes" in text
    assert f"{comparison.budget_bpp:.3f} bpp" in text and comparison.target in text
    for codec, reason in comparison.left_out.items():
        assert reason in text
    assert "JPEG XL left out: pillow-jxl-plugin not installed" in text
    assert page.one("a", href="index.html")["text"].strip() == "← All images"
    assert not Elements(render_page(comparison)).all("nav")


def test_both_menus_list_the_original_then_each_codec(comparison, page):
    ids = [ORIGINAL_ID] + [f.codec for f in comparison.coded]
    for side in ("left", "right"):
        select = page.one("select", id=f"{side}-choice")
        options = page.elements[page.elements.index(select) + 1:][:len(ids)]
        assert [o["attrs"]["value"] for o in options] == ids
        assert options[0]["text"] == "1 · Original"


def test_the_chart_is_inline_absent_without_curves_and_each_codec_has_one_colour(comparison, page):
    assert len(page.all("svg")) == 1
    circles = page.all("circle", **{"class": "coded"})
    assert sorted((c["attrs"]["data-codec"], c["attrs"]["fill"]) for c in circles) == sorted(
        (f.codec, codec_colour(f.codec)) for f in comparison.coded)
    swatches = {e["row"]: e["attrs"]["style"] for e in page.all("span", **{"class": "swatch"})
                if e["table"] == "results"}
    assert swatches == {ORIGINAL_ID: "background:#888888",
                        **{f.codec: f"background:{codec_colour(f.codec)}" for f in comparison.coded}}
    assert [e["colour"] for e in _script_data(page)["images"][1:]] == [codec_colour(f.codec) for f in comparison.coded]
    assert not Elements(render_page(dataclasses.replace(comparison, curves={}))).all("svg")


def test_text_from_a_hostile_file_name_or_reason_is_escaped(comparison):
    hostile = dataclasses.replace(comparison, name=HOSTILE, target=HOSTILE,
                                  left_out={"jxl": "<img src=x onerror=alert(2)>"})
    document = render_page(hostile, index_href="<evil>.html").decode()
    index = render_index([index_entry("<evil> page.html", hostile)]).decode()
    for text in (document, index):
        assert "<script>alert" not in text and "<img src=x" not in text and "<evil>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;.png" in document
    page = Elements(document.encode())
    assert [s["attrs"] for s in page.all("script")] == [{"type": "application/json", "id": "aecodec-compare-data"}, {}]
    downloads = {e["attrs"]["download"] for e in page.all("a") if "download" in e["attrs"]}
    assert all("/" not in name and name.startswith("<script>alert(1)<_script>") for name in downloads)
    assert Elements(index.encode()).one("img")["attrs"]["alt"] == HOSTILE
    assert Elements(index.encode()).all("a")[0]["attrs"]["href"] == "%3Cevil%3E%20page.html"


def test_a_label_that_closes_the_script_cannot_end_the_data_blob(comparison):
    label = "</script><script>alert(1)</script><!--"
    coded = [dataclasses.replace(f, label=label) for f in comparison.coded]
    page = Elements(render_page(dataclasses.replace(comparison, coded=coded)))
    assert [e["label"] for e in _script_data(page)["images"][1:]] == [label] * len(coded)
    assert len(page.all("script")) == 2


@pytest.mark.parametrize("render", ["page", "index"])
def test_nothing_is_fetched_from_the_network(comparison, render):
    entry = index_entry("a.html", comparison)
    document = (render_page(comparison) if render == "page" else render_index([entry])).decode()
    references = re.findall(r"""(?:src|href|action|poster|srcset)\s*=\s*["']?([^"'\s>]+)""", document, re.I)
    assert references and all(not re.match(r"(?:https?:|//|ftp:)", r, re.I) for r in references), references
    assert not re.search(r"""url\(\s*["']?(?:https?:|//)|@import|<link\b|<script\b[^>]*\bsrc\s*=""", document, re.I)


def test_the_index_links_a_thumbnail_per_image_and_averages_each_codec(comparison):
    other = dataclasses.replace(comparison, name="other.png", coded=comparison.coded[:2])
    index = Elements(render_index([index_entry("synthetic.html", comparison),
                                   index_entry("sub/other page.html", other)]))
    thumbnails = index.all("img", **{"class": "thumb"})
    assert [t["attrs"]["alt"] for t in thumbnails] == ["synthetic.png", "other.png"]
    for thumbnail in thumbnails:
        with Image.open(io.BytesIO(_data_uri_bytes(thumbnail["attrs"]["src"], "image/jpeg"))) as jpeg:
            assert jpeg.width == 200 and abs(jpeg.height - 200 * comparison.height / comparison.width) <= 1
    hrefs = {a["attrs"]["href"] for a in index.all("a")}
    assert hrefs == {"synthetic.html", "sub/other%20page.html"}

    def means_of(codec):
        return [e["attrs"].get("data-value") for e in index.all("td") if e["table"] == "means" and e["row"] == codec]

    assert [e["row"] for e in index.all("tr") if e["table"] == "means" and e["row"]] == [
        f.codec for f in comparison.coded]
    first, last = comparison.coded[0], comparison.coded[-1]
    assert means_of(first.codec)[1:] == ["2", repr(float(first.num_bytes)), repr(first.bpp(comparison.pixels)),
                                         repr(first.psnr), repr(first.ms_ssim_db)]  # one file twice: its numbers
    assert means_of(last.codec)[1] == "1"  # the other image has no such file

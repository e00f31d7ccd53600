"""The HTML pages of ``aecodec compare``: one self-contained page per image, and an index of pages.

A page (:func:`render_page`) needs nothing but itself: no network, no external script, stylesheet or
font. It holds the original and every decoder's output as lossless PNG data URIs (what the viewer
shows is exactly what each decoder produced), each codec's coded file as a download link, a table of
the numbers, and the rate–distortion chart of :mod:`.chart`. The viewer (``viewer.js`` and
``viewer.css``, inlined) draws two of the images side by side on one canvas, split by a divider,
both always showing the same region at the same zoom.

The data the script reads is one JSON blob in ``<script type="application/json"
id="aecodec-compare-data">``:  ``width``, ``height``, ``left`` and ``right`` (the ids shown first) and
``images``, a list of ``{id, label, caption, colour, src}``, the original first (id ``"original"``), then the
coded files in the comparison's order. Each numeric cell of the table carries its exact value in
``data-value`` (Python's ``repr``; times in seconds, MS-SSIM in dB) and each row its codec in
``data-codec``, for a reader's script or a test.

The index (:func:`render_index`) is drawn from :class:`IndexEntry` s (:func:`index_entry`): a page's
numbers and a thumbnail without its pixels, so that a command comparing many large images holds one
image's decodes at a time.

Every text that comes from outside (an image's file name, a reason a codec was left out) is escaped.
Standard library, Pillow and numpy only: this runs in the torch-free runtime install.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import os
from dataclasses import dataclass
from importlib import resources
from urllib.parse import quote

from PIL import Image

from .chart import ORIGINAL_COLOUR, codec_colour, rd_chart
from .codecs import CODECS
from .results import Coded, Comparison

__all__ = ["render_page", "render_index", "index_entry", "IndexEntry", "ORIGINAL_ID"]

ORIGINAL_ID = "original"  # the original's id in the viewer's menus and the table (no codec has it)
THUMBNAIL_WIDTH = 200  # pixels, the index's thumbnails
DATA_ID = "aecodec-compare-data"
DASH = "—"
READOUT_HINT = "point at the image for a pixel's position and values"  # while no pixel is pointed at


def render_page(c: Comparison, *, index_href: str | None = None) -> bytes:
    """The page of comparison ``c`` (a complete UTF-8 HTML document). ``index_href``, a relative path
    (not URL-encoded), adds a link back to the index."""
    images = [_original_entry(c)] + [_coded_entry(f, c.pixels) for f in c.coded]
    coded_ids = [f.codec for f in c.coded]
    left = coded_ids[0] if coded_ids else ORIGINAL_ID  # aecodec, when asked for: first
    right = coded_ids[1] if len(coded_ids) > 1 else ORIGINAL_ID
    data = {"width": c.width, "height": c.height, "left": left, "right": right, "images": images}
    name = html.escape(c.name)
    chart = rd_chart(c)
    nav = f'<nav><a href="{_href(index_href)}">← All images</a></nav>' if index_href is not None else ""
    left_out = "".join(f"<li>{html.escape(_label(c, codec))} left out: {html.escape(reason)}</li>"
                       for codec, reason in c.left_out.items())
    body = f"""<header>
{nav}<h1>{name} <span class="dims">{c.width} × {c.height}</span></h1>
<p class="budget">Budget: <strong>{_bytes(c.budget)} bytes</strong> (<strong>{c.budget_bpp:.3f} bpp</strong>),
given as “{html.escape(c.target)}”. Each codec at its highest quality setting whose file fits.</p>
{f'<ul class="left-out">{left_out}</ul>' if left_out else ""}
</header>
<main>
{_viewer(images, left, right)}
<section class="results">
<h2>Files</h2>
{_table(c)}
</section>
{f'<section class="chart"><h2>Rate–distortion on this image</h2>{chart}</section>' if chart else ""}
</main>
<script type="application/json" id="{DATA_ID}">{_script_json(data)}</script>
<script>{_asset("viewer.js")}</script>"""
    return _document(f"{c.name} at {c.target} — aecodec compare", body)


@dataclass(frozen=True)
class IndexEntry:
    """What the index shows of one page: its link, the image's name, size and budget, a thumbnail and
    each coded file's numbers — no pixels, so that an index of many large images stays small."""

    href: str  # the page's path relative to the index (not URL-encoded)
    name: str
    width: int
    height: int
    budget: int  # bytes
    thumbnail: str  # a JPEG data URI, THUMBNAIL_WIDTH pixels wide at most
    files: tuple[dict, ...]  # per coded file: codec, label and the _INDEX_COLUMNS' exact values

    @property
    def budget_bpp(self) -> float:
        return 8 * self.budget / (self.width * self.height)


_INDEX_COLUMNS = ("bytes", "bpp", "psnr", "ms_ssim_db")


def index_entry(href: str, c: Comparison) -> IndexEntry:
    """The index's entry for comparison ``c``, whose page is at ``href`` (relative to the index)."""
    files = tuple({"codec": f.codec, "label": f.label, **{k: _value(f, c.pixels, k) for k in _INDEX_COLUMNS}}
                  for f in c.coded)
    return IndexEntry(href=href, name=c.name, width=c.width, height=c.height, budget=c.budget,
                      thumbnail=_thumbnail(c.original), files=files)


def render_index(entries: list[IndexEntry]) -> bytes:
    """The index of several pages (a complete UTF-8 HTML document): a thumbnail per image linked to
    its page, each codec's numbers per image, and each codec's means over the images it coded."""
    rows = []
    for e in entries:
        link = _href(e.href)
        thumb = f'<a href="{link}"><img class="thumb" src="{e.thumbnail}" alt="{html.escape(e.name)}"></a>'
        first = (f'<td rowspan="{max(1, len(e.files))}" class="image">{thumb}'
                 f'<a href="{link}">{html.escape(e.name)}</a><br><span class="dims">{e.width} × {e.height}, '
                 f"budget {_bytes(e.budget)} bytes ({e.budget_bpp:.3f} bpp)</span></td>")
        if not e.files:
            rows.append(f'<tr class="image-start">{first}<td colspan="5">no codec fits the budget</td></tr>')
        best = {k: max((f[k] for f in e.files if f[k] is not None), default=None) for k in ("psnr", "ms_ssim_db")}
        for i, f in enumerate(e.files):
            cells = "".join(_cell(f[k], _FORMATS[k], k in best and f[k] is not None and f[k] == best[k])
                            for k in _INDEX_COLUMNS)
            rows.append(f'<tr data-image="{html.escape(e.name)}" data-codec="{html.escape(f["codec"])}"'
                        f'{" class=image-start" if i == 0 else ""}>{first if i == 0 else ""}'
                        f'<td class="codec">{_swatch(f["codec"])}{html.escape(f["label"])}</td>{cells}</tr>')
    body = f"""<header><h1>aecodec compare: {len(entries)} image{"s" if len(entries) != 1 else ""}</h1>
<p>Each codec at its highest quality setting whose file fits the image's budget. Open an image for its
viewer, its files and its rate–distortion chart.</p></header>
<main>
<section class="results"><h2>Means over the images</h2>{_means_table(entries)}</section>
<section class="results"><h2>Images</h2>
<table class="numbers index"><thead><tr><th>Image</th><th class="codec">Codec</th><th>Bytes</th><th>bpp</th>
<th>PSNR (dB)</th><th>MS-SSIM (dB)</th></tr></thead>
<tbody>{"".join(rows)}</tbody></table></section>
</main>"""
    return _document(f"aecodec compare — {len(entries)} images", body)


# ----------------------------------------------------------------------------- the viewer's data
def _original_entry(c: Comparison) -> dict:
    return {"id": ORIGINAL_ID, "label": "Original", "caption": f"Original · {c.width} × {c.height}",
            "colour": ORIGINAL_COLOUR, "src": _png_data_uri(c.original)}


def _coded_entry(f: Coded, pixels: int) -> dict:
    caption = f"{f.label} · q {f.quality:g} · {_bytes(f.num_bytes)} B · {f.bpp(pixels):.3f} bpp · {_db(f.psnr)} dB"
    return {"id": f.codec, "label": f.label, "caption": caption, "colour": codec_colour(f.codec),
            "src": _png_data_uri(f.reconstruction)}


def _png_data_uri(image: Image.Image) -> str:
    """The image as a lossless PNG data URI, in RGB (the viewer draws it as it is)."""
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _thumbnail(image: Image.Image) -> str:
    """A JPEG data URI of the image scaled to THUMBNAIL_WIDTH pixels wide (never enlarged)."""
    scale = min(1.0, THUMBNAIL_WIDTH / image.width)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    buffer = io.BytesIO()
    image.convert("RGB").resize(size, Image.Resampling.LANCZOS).save(buffer, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _script_json(data: dict) -> str:
    """JSON safe inside a <script> element: no "<", ">" or "&" (so no "</script>" nor "<!--")."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


# ----------------------------------------------------------------------------- page parts
def _viewer(images: list[dict], left: str, right: str) -> str:
    """The toolbar (two menus, zoom controls), the stage (canvas, side labels, divider) and the keys."""
    def menu(side: str, chosen: str) -> str:
        options = "".join(f'<option value="{html.escape(e["id"])}"{" selected" if e["id"] == chosen else ""}>'
                          f'{i + 1} · {html.escape(e["label"])}</option>' for i, e in enumerate(images))
        return (f'<label class="side-choice {side}">{side.capitalize()} '
                f'<select id="{side}-choice" aria-label="{side} image">{options}</select></label>')

    return f"""<section class="viewer" id="viewer" aria-label="Image viewer">
<div class="toolbar">
{menu("left", left)}
<div class="zoom" role="group" aria-label="Zoom">
<button type="button" id="zoom-out" title="Zoom out (−)">−</button>
<output id="zoom-level" aria-live="polite">100 %</output>
<button type="button" id="zoom-in" title="Zoom in (+)">+</button>
<button type="button" id="zoom-100" title="One image pixel per screen pixel (0)">100 %</button>
<button type="button" id="zoom-fit" title="Fit the image (F)">Fit</button>
</div>
{menu("right", right)}
</div>
<div class="stage" id="stage">
<canvas id="view"></canvas>
<div class="side-label left" id="left-label"></div>
<div class="side-label right" id="right-label"></div>
<div class="divider" id="divider" role="separator" aria-orientation="vertical" aria-label="Divider"
 title="Drag to move the divider"><div class="handle"></div></div>
<noscript><p class="noscript">The viewer needs JavaScript; the table below works without it.</p></noscript>
</div>
<p class="help"><span class="keys"><kbd>1</kbd>–<kbd>9</kbd> right image (<kbd>1</kbd> = Original) ·
<kbd>Shift</kbd>+<kbd>1</kbd>–<kbd>9</kbd> left image · <kbd>Space</kbd> swap sides ·
<kbd>+</kbd> <kbd>−</kbd> zoom · <kbd>0</kbd> 100 % · <kbd>F</kbd> fit · drag to pan, wheel to zoom,
drag the handle to move the divider · click a row of the table to show it on the right</span>
<output class="pixel" id="pixel-readout">{READOUT_HINT}</output></p>
</section>"""


def _table(c: Comparison) -> str:
    """One row for the original, one per coded file: numbers with exact data-values, the download.
    The best PSNR and MS-SSIM among the files are bold."""
    rows = [f'<tr data-codec="{ORIGINAL_ID}" tabindex="0"><td class="codec">{_swatch(ORIGINAL_ID)}Original</td>'
            f'<td colspan="8" class="note">{c.width} × {c.height} pixels ({_bytes(c.pixels)} pixels), '
            f"what every codec was given and is measured against</td></tr>"]
    for f in c.coded:
        columns = ("quality", "bytes", "bpp", "psnr", "ms_ssim_db", "encode", "decode")
        download = _stem(c.name).replace("/", "_").replace("\\", "_") + f.extension
        link = (f'<a download="{html.escape(download)}" href="data:application/octet-stream;base64,'
                f'{base64.b64encode(f.data).decode("ascii")}">{html.escape(download)}</a>')
        rows.append(f'<tr data-codec="{html.escape(f.codec)}" tabindex="0">'
                    f'<td class="codec">{_swatch(f.codec)}{html.escape(f.label)}</td>'
                    f"{_number_cells(f, c.pixels, columns, _best(c, f))}<td>{link}</td></tr>")
    return f"""<table class="numbers" id="results">
<thead><tr><th>Codec</th><th>Quality</th><th>Bytes</th><th>bpp</th><th>PSNR (dB)</th><th>MS-SSIM (dB)</th>
<th>Encode (ms)</th><th>Decode (ms)</th><th>File</th></tr></thead>
<tbody>
{"".join(rows)}
</tbody></table>"""


def _means_table(entries: list[IndexEntry]) -> str:
    """Each codec's mean bytes, bpp, PSNR and MS-SSIM (dB) over the images it coded (an infinite
    PSNR, or an MS-SSIM the image was too small for, is left out of its mean)."""
    files: dict[str, list[dict]] = {}
    for e in entries:
        for f in e.files:
            files.setdefault(f["codec"], []).append(f)
    rows = []
    for codec, coded in files.items():
        means = {}
        for column in _INDEX_COLUMNS:
            values = [v for v in (f[column] for f in coded) if v is not None and math.isfinite(v)]
            means[column] = sum(values) / len(values) if values else None
        label = html.escape(coded[0]["label"])
        rows.append(f'<tr data-codec="{html.escape(codec)}"><td class="codec">{_swatch(codec)}{label}</td>'
                    f'<td data-value="{len(coded)}">{len(coded)}</td>'
                    f'{_cell(means["bytes"], lambda v: _bytes(round(v)))}{_cell(means["bpp"], "{:.3f}".format)}'
                    f'{_cell(means["psnr"], _db)}{_cell(means["ms_ssim_db"], _db)}</tr>')
    return (f'<table class="numbers means" id="means"><thead><tr><th>Codec</th><th>Images</th><th>Mean bytes</th>'
            f"<th>Mean bpp</th><th>Mean PSNR (dB)</th><th>Mean MS-SSIM (dB)</th></tr></thead>"
            f'<tbody>{"".join(rows)}</tbody></table>')


def _best(c: Comparison, f: Coded) -> set[str]:
    """The columns (of PSNR and MS-SSIM) in which file ``f`` is the best of ``c``'s files."""
    best = set()
    for column in ("psnr", "ms_ssim_db"):
        values = [v for v in (_value(g, c.pixels, column) for g in c.coded) if v is not None]
        if values and _value(f, c.pixels, column) == max(values):
            best.add(column)
    return best


def _value(f: Coded, pixels: int, column: str):
    """File ``f``'s exact value in ``column`` (times in seconds, MS-SSIM in dB; None if unknown)."""
    return {"quality": f.quality, "bytes": f.num_bytes, "bpp": f.bpp(pixels), "psnr": f.psnr,
            "ms_ssim_db": f.ms_ssim_db, "encode": f.encode_s, "decode": f.decode_s}[column]


def _number_cells(f: Coded, pixels: int, columns: tuple[str, ...], best: set[str] = frozenset()) -> str:
    """The <td>s of ``columns`` for file ``f``, each with its exact value in data-value; those in
    ``best`` marked as the best of their column."""
    return "".join(_cell(_value(f, pixels, column), _FORMATS[column], column in best) for column in columns)


def _cell(value, text, best: bool = False) -> str:
    """A numeric <td>: ``text(value)`` shown, ``repr(value)`` in data-value; "—" for None."""
    if value is None:
        return f'<td class="none">{DASH}</td>'
    return f'<td{" class=best" if best else ""} data-value="{html.escape(repr(value))}">{text(value)}</td>'


def _swatch(codec: str) -> str:
    colour = ORIGINAL_COLOUR if codec == ORIGINAL_ID else codec_colour(codec)
    return f'<span class="swatch" style="background:{colour}"></span>'


# ----------------------------------------------------------------------------- text
def _bytes(count: int) -> str:
    """An integer with thin spaces between thousands: 20 480."""
    return f"{count:_}".replace("_", "\u2009")


def _db(value: float) -> str:
    return "∞" if math.isinf(value) else f"{value:.2f}"


def _milliseconds(seconds: float) -> str:
    """Seconds as milliseconds: one decimal below 10 ms, whole above, thousands spaced."""
    ms = seconds * 1000
    return f"{ms:.1f}" if ms < 10 else _bytes(round(ms))


# How each numeric column shows its value.
_FORMATS = {"quality": "{:g}".format, "bytes": _bytes, "bpp": "{:.3f}".format, "psnr": _db, "ms_ssim_db": _db,
            "encode": _milliseconds, "decode": _milliseconds}


def _label(c: Comparison, codec: str) -> str:
    """What a reader calls codec id ``codec``: the comparison's label, the registry's, or the id."""
    known = CODECS.get(codec)
    return c.labels.get(codec) or (known.label if known else codec)


def _stem(name: str) -> str:
    """A file name without its extension (a name is not parsed as a path: it may hold anything)."""
    return os.path.splitext(name)[0] or name


def _href(path: str) -> str:
    """An attribute value linking to relative path ``path`` (URL-encoded, then HTML-escaped)."""
    return html.escape(quote(path, safe="/"))


def _asset(name: str) -> str:
    """viewer.js or viewer.css, shipped beside this module."""
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


def _document(title: str, body: str) -> bytes:
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="aecodec compare">
<title>{html.escape(title)}</title>
<style>{_asset("viewer.css")}</style>
</head>
<body>
{body}
</body>
</html>
""".encode("utf-8")

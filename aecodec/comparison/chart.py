"""The rate–distortion chart of one comparison: an inline SVG, written by hand (no plotting library,
so the torch-free runtime install can draw it).

PSNR (dB) against bits per pixel for every codec of :attr:`Comparison.curves`, a dashed vertical
line at the budget, and each coded file of :attr:`Comparison.coded` as a larger point (its bpp, its
PSNR) — on its curve, since both come from the same encoder. Points of infinite PSNR (a
reconstruction identical to the original) have no place on the axis and are left out. Axis lines,
ticks and text are drawn in ``currentColor``, so the chart follows the page's text colour; each codec
has one colour (:func:`codec_colour`), which the page uses for it too.
"""

from __future__ import annotations

import html
import math
import zlib

from .results import Comparison, CurvePoint

__all__ = ["rd_chart", "codec_colour", "ORIGINAL_COLOUR"]

# Okabe & Ito's colour-blind-safe palette for the usual codecs, aecodec in the most visible one.
COLOURS = {
    "aecodec": "#d55e00",
    "jpeg-420": "#0072b2",
    "jpeg-444": "#56b4e9",
    "webp": "#009e73",
    "avif": "#cc79a7",
    "jxl": "#e69f00",
    "heic": "#7f3c8d",
    "jpeg2000": "#808080",
    "pca-8x8": "#999933",
}
# Any other id (aecodec at another effort, a codec added later) gets one of these, chosen by a hash
# of its id: the same colour on every page and in every run.
SPARE_COLOURS = ("#a6611a", "#5e3c99", "#1b7837", "#b2182b", "#2166ac", "#8c510a", "#762a83", "#35978f")
ORIGINAL_COLOUR = "#888888"

# Geometry of the drawing, in SVG user units (the SVG scales to its container's width).
WIDTH, HEIGHT = 720, 420
PLOT_LEFT, PLOT_RIGHT, PLOT_TOP, PLOT_BOTTOM = 64, 548, 28, 366
LEGEND_X = 566


def codec_colour(codec: str) -> str:
    """The colour of codec id ``codec`` on the chart and the page (``#rrggbb``)."""
    return COLOURS.get(codec) or SPARE_COLOURS[zlib.crc32(codec.encode()) % len(SPARE_COLOURS)]


def rd_chart(c: Comparison) -> str:
    """The SVG element (a string) of ``c``'s rate–distortion curves, or "" when it has none (no
    curves, or no point of finite PSNR)."""
    curves = {codec: _finite(points) for codec, points in c.curves.items()}
    curves = {codec: points for codec, points in curves.items() if points}
    coded = [f for f in c.coded if math.isfinite(f.psnr)]
    if not curves:
        return ""
    bpps = [p.bpp for points in curves.values() for p in points] + [f.bpp(c.pixels) for f in coded] + [c.budget_bpp]
    psnrs = [p.psnr for points in curves.values() for p in points] + [f.psnr for f in coded]
    x_ticks = _ticks(0.0, max(bpps))
    y_ticks = _ticks(min(psnrs), max(psnrs))
    x_axis = _Axis(x_ticks[0], x_ticks[-1], PLOT_LEFT, PLOT_RIGHT)
    y_axis = _Axis(y_ticks[0], y_ticks[-1], PLOT_BOTTOM, PLOT_TOP)
    labels = {**{f.codec: f.label for f in c.coded}, **c.labels}

    title = f"Rate–distortion of {c.name}: PSNR against bits per pixel, budget {c.budget_bpp:.3f} bpp"
    parts = [
        f'<svg class="rd-chart" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'role="img" aria-labelledby="rd-chart-title" font-family="system-ui, sans-serif" font-size="12">',
        f'<title id="rd-chart-title">{html.escape(title)}</title>',
        *_grid_and_axes(x_ticks, y_ticks, x_axis, y_axis),
        *_budget_line(c.budget_bpp, x_axis),
    ]
    for codec, points in curves.items():
        colour = codec_colour(codec)
        line = " ".join(f"{x_axis(p.bpp):.1f},{y_axis(p.psnr):.1f}" for p in sorted(points, key=lambda p: p.bpp))
        parts.append(f'<g class="curve" data-codec="{html.escape(codec)}" stroke="{colour}" fill="{colour}">')
        parts.append(f'<polyline points="{line}" fill="none" stroke-width="2" stroke-linejoin="round"/>')
        for p in points:
            tip = f"{labels.get(codec, codec)}, quality {p.quality:g}: {p.bpp:.3f} bpp, {p.psnr:.2f} dB"
            parts.append(f'<circle cx="{x_axis(p.bpp):.1f}" cy="{y_axis(p.psnr):.1f}" r="2.5">'
                         f'<title>{html.escape(tip)}</title></circle>')
        parts.append("</g>")
    for f in reversed(coded):  # the first (aecodec, as a rule) drawn last: on top where points meet
        tip = f"{f.label}, the file compared (quality {f.quality:g}): {f.num_bytes} bytes, " \
              f"{f.bpp(c.pixels):.3f} bpp, {f.psnr:.2f} dB"
        parts.append(f'<circle class="coded" data-codec="{html.escape(f.codec)}" cx="{x_axis(f.bpp(c.pixels)):.1f}" '
                     f'cy="{y_axis(f.psnr):.1f}" r="5.5" fill="{codec_colour(f.codec)}" stroke="#fff" '
                     f'stroke-width="1.5"><title>{html.escape(tip)}</title></circle>')
    parts += _legend([(codec, labels.get(codec, codec)) for codec in curves])
    parts.append("</svg>")
    return "\n".join(parts)


def _finite(points: list[CurvePoint]) -> list[CurvePoint]:
    """The points a PSNR axis can show (an identical reconstruction's infinite PSNR cannot)."""
    return [p for p in points if math.isfinite(p.psnr) and math.isfinite(p.bpp)]


class _Axis:
    """A linear map from data values [lo, hi] to SVG coordinates [start, end]."""

    def __init__(self, lo: float, hi: float, start: float, end: float):
        self.lo, self.hi, self.start, self.end = lo, hi, start, end

    def __call__(self, value: float) -> float:
        return self.start + (value - self.lo) / (self.hi - self.lo) * (self.end - self.start)


def _ticks(lo: float, hi: float, count: int = 6) -> list[float]:
    """Round tick values (steps of 1, 2 or 5 times a power of ten) from at or below ``lo`` to at or
    above ``hi``, about ``count`` of them; a range of one value is widened to show something."""
    if hi - lo < 1e-9:
        lo, hi = lo - 0.5, hi + 0.5
    raw = (hi - lo) / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first, last = math.floor(lo / step + 1e-9), math.ceil(hi / step - 1e-9)
    return [round(i * step, 10) for i in range(first, last + 1)]


def _grid_and_axes(x_ticks, y_ticks, x_axis: _Axis, y_axis: _Axis) -> list[str]:
    """Grid lines at the ticks, the frame of the plot, the tick labels and the axis titles."""
    parts = ['<g class="grid" stroke="currentColor" stroke-opacity="0.15">']
    parts += [f'<line x1="{x_axis(t):.1f}" y1="{PLOT_TOP}" x2="{x_axis(t):.1f}" y2="{PLOT_BOTTOM}"/>' for t in x_ticks]
    parts += [f'<line x1="{PLOT_LEFT}" y1="{y_axis(t):.1f}" x2="{PLOT_RIGHT}" y2="{y_axis(t):.1f}"/>' for t in y_ticks]
    parts.append("</g>")
    parts.append(f'<rect x="{PLOT_LEFT}" y="{PLOT_TOP}" width="{PLOT_RIGHT - PLOT_LEFT}" '
                 f'height="{PLOT_BOTTOM - PLOT_TOP}" fill="none" stroke="currentColor" stroke-opacity="0.6"/>')
    parts.append('<g class="x-ticks" fill="currentColor" text-anchor="middle">')
    parts += [f'<text x="{x_axis(t):.1f}" y="{PLOT_BOTTOM + 17}">{t:g}</text>' for t in x_ticks]
    parts.append("</g>")
    parts.append('<g class="y-ticks" fill="currentColor" text-anchor="end">')
    parts += [f'<text x="{PLOT_LEFT - 7}" y="{y_axis(t) + 4:.1f}">{t:g}</text>' for t in y_ticks]
    parts.append("</g>")
    middle_x, middle_y = (PLOT_LEFT + PLOT_RIGHT) / 2, (PLOT_TOP + PLOT_BOTTOM) / 2
    parts.append(f'<text x="{middle_x:.0f}" y="{PLOT_BOTTOM + 40}" text-anchor="middle" fill="currentColor">'
                 f"bits per pixel (bpp)</text>")
    parts.append(f'<text transform="translate(18 {middle_y:.0f}) rotate(-90)" text-anchor="middle" '
                 f'fill="currentColor">PSNR (dB, RGB)</text>')
    return parts


def _budget_line(budget_bpp: float, x_axis: _Axis) -> list[str]:
    """The dashed vertical line at the budget, labelled above the plot."""
    x = x_axis(budget_bpp)
    return [f'<g class="budget" stroke="currentColor" fill="currentColor">'
            f'<line x1="{x:.1f}" y1="{PLOT_TOP}" x2="{x:.1f}" y2="{PLOT_BOTTOM}" stroke-dasharray="5 4" '
            f'stroke-opacity="0.8"/>'
            f'<text x="{x:.1f}" y="{PLOT_TOP - 8}" text-anchor="middle" stroke="none">'
            f"budget {budget_bpp:.3f} bpp</text></g>"]


def _legend(entries: list[tuple[str, str]]) -> list[str]:
    """One line per codec: a stroke of its colour, a point, its label; then the coded file's marker."""
    parts = ['<g class="legend" fill="currentColor">']
    y = PLOT_TOP + 8
    for codec, label in entries:
        colour = codec_colour(codec)
        parts.append(f'<line x1="{LEGEND_X}" y1="{y}" x2="{LEGEND_X + 24}" y2="{y}" stroke="{colour}" '
                     f'stroke-width="2"/><circle cx="{LEGEND_X + 12}" cy="{y}" r="2.5" fill="{colour}"/>'
                     f'<text x="{LEGEND_X + 32}" y="{y + 4}">{html.escape(label)}</text>')
        y += 20
    y += 6
    parts.append(f'<circle cx="{LEGEND_X + 12}" cy="{y}" r="5.5" fill="none" stroke="currentColor" '
                 f'stroke-width="1.5"/><text x="{LEGEND_X + 32}" y="{y + 4}">file compared</text>')
    parts.append("</g>")
    return parts

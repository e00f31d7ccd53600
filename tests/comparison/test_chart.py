"""The rate–distortion chart: an SVG whose points are where the numbers say, read back through its
own tick labels (not through the code that placed them)."""

from __future__ import annotations

import dataclasses
import math
import xml.etree.ElementTree as ElementTree

import numpy as np
import pytest

from aecodec.comparison.chart import codec_colour, rd_chart
from aecodec.comparison.results import CurvePoint


def _svg(c) -> ElementTree.Element:
    text = rd_chart(c)
    assert text.startswith("<svg") and text.endswith("</svg>")
    return ElementTree.fromstring(text)


def _axis_from_ticks(svg, group: str, coordinate: str):
    """The map from an SVG coordinate to a data value, fitted to the tick labels of ``group``."""
    ticks = svg.find(f"g[@class='{group}']").findall("text")
    positions = np.array([float(t.get(coordinate)) for t in ticks])
    values = np.array([float(t.text) for t in ticks])
    if coordinate == "y":  # the label's baseline sits 4 units below its grid line
        positions -= 4
    slope, intercept = np.polyfit(positions, values, 1)
    spread = values.max() - values.min()  # coordinates are written to 0.1 units
    assert np.allclose(slope * positions + intercept, values, atol=1e-3 * spread), "tick labels not evenly spaced"
    return lambda position: slope * float(position) + intercept


def test_each_coded_file_is_drawn_at_its_bpp_and_psnr_in_its_codecs_colour(comparison):
    svg = _svg(comparison)
    to_bpp, to_psnr = _axis_from_ticks(svg, "x-ticks", "x"), _axis_from_ticks(svg, "y-ticks", "y")
    points = {p.get("data-codec"): p for p in svg.findall("circle[@class='coded']")}
    assert sorted(points) == sorted(f.codec for f in comparison.coded)
    for f in comparison.coded:
        point = points[f.codec]
        assert to_bpp(point.get("cx")) == pytest.approx(f.bpp(comparison.pixels), abs=0.002)
        assert to_psnr(point.get("cy")) == pytest.approx(f.psnr, abs=0.01)
        assert point.get("fill") == codec_colour(f.codec)
        assert f.label in point.find("title").text and str(f.num_bytes) in point.find("title").text


def test_each_curve_passes_through_its_sweep_points_in_bpp_order(comparison):
    svg = _svg(comparison)
    to_bpp, to_psnr = _axis_from_ticks(svg, "x-ticks", "x"), _axis_from_ticks(svg, "y-ticks", "y")
    curves = {g.get("data-codec"): g for g in svg.findall("g[@class='curve']")}
    assert list(curves) == list(comparison.curves)
    for codec, points in comparison.curves.items():
        group = curves[codec]
        assert group.get("stroke") == codec_colour(codec)
        drawn = [tuple(map(float, xy.split(","))) for xy in group.find("polyline").get("points").split()]
        expected = sorted((p.bpp, p.psnr) for p in points)
        assert [(to_bpp(x), to_psnr(y)) for x, y in drawn] == [pytest.approx(e, abs=0.01) for e in expected]
        assert len(group.findall("circle")) == len(points)


def test_the_budget_line_stands_at_the_budget_and_the_axes_cover_every_point(comparison):
    svg = _svg(comparison)
    to_bpp = _axis_from_ticks(svg, "x-ticks", "x")
    line = svg.find("g[@class='budget']/line")
    assert line.get("x1") == line.get("x2")
    assert to_bpp(line.get("x1")) == pytest.approx(comparison.budget_bpp, abs=0.002)
    assert f"{comparison.budget_bpp:.3f} bpp" in svg.find("g[@class='budget']/text").text
    frame = svg.find("rect")
    left, top = float(frame.get("x")), float(frame.get("y"))
    right, bottom = left + float(frame.get("width")), top + float(frame.get("height"))
    for circle in svg.iter("circle"):
        if circle.get("class") == "coded" or circle.find("title") is not None:  # points, not the legend's
            assert left <= float(circle.get("cx")) <= right and top <= float(circle.get("cy")) <= bottom


def test_the_chart_has_a_title_axis_titles_and_a_legend_of_every_codec(comparison):
    svg = _svg(comparison)
    assert comparison.name in svg.find("title").text
    texts = [t.text for t in svg.iter("text")]
    assert "bits per pixel (bpp)" in texts and "PSNR (dB, RGB)" in texts
    legend = [t.text for t in svg.find("g[@class='legend']").findall("text")]
    assert legend[:-1] == [comparison.labels[codec] for codec in comparison.curves]


def test_an_infinite_psnr_is_left_out_and_no_curves_give_no_chart(comparison):
    codec = next(iter(comparison.curves))
    identical = CurvePoint(quality=100, bytes=99_999, bpp=9.0, psnr=math.inf)
    with_inf = dataclasses.replace(comparison, curves={**comparison.curves,
                                                       codec: comparison.curves[codec] + [identical]})
    group = next(g for g in _svg(with_inf).findall("g[@class='curve']") if g.get("data-codec") == codec)
    assert len(group.findall("circle")) == len(comparison.curves[codec])
    assert "inf" not in rd_chart(with_inf).lower()
    assert rd_chart(dataclasses.replace(comparison, curves={})) == ""
    all_inf = dataclasses.replace(comparison, curves={codec: [identical]})
    assert rd_chart(all_inf) == ""


def test_a_hostile_label_is_escaped(comparison):
    codec = next(iter(comparison.curves))
    hostile = dataclasses.replace(comparison, name="<img src=x onerror=alert(1)>.png",
                                  labels={**comparison.labels, codec: "</svg><script>alert(1)</script>"})
    text = rd_chart(hostile)
    assert "<script>" not in text and "<img" not in text
    ElementTree.fromstring(text)  # still one well-formed element

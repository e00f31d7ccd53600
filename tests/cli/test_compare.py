"""aecodec.cli.compare: one page per image (and an index for several), every output checked before
the work and written atomically; bad input is one line and a non-zero exit; a codec that cannot run
is a warning, not an error."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from PIL import Image
from typer.testing import CliRunner

from aecodec.cli import app
from aecodec.comparison.codecs import CODECS, CodecUnavailable
from tests.helpers import fails, ok, smooth_image

runner = CliRunner()
FAST = ["--size", "2000", "--codecs", "aecodec,jpeg,webp", "--no-curves"]


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for seed in range(2):
        Image.fromarray(smooth_image(96, 128, seed=seed)).save(folder / f"p{seed}.png")
    return folder


def page_codecs(path) -> list[str]:
    """The codec ids a page's table lists, in order."""
    html = path.read_text()
    return [part.split('"', 1)[0] for part in html.split('data-codec="')[1:]]


def test_one_image_gives_one_page_a_table_on_stderr_and_the_numbers_as_json(photos, tmp_path):
    page, js = tmp_path / "page.html", tmp_path / "numbers.json"
    result = ok(runner.invoke(app, ["compare", str(photos / "p0.png"), *FAST, "-o", str(page), "--json", str(js)]))
    html = page.read_text()
    assert html.lstrip().lower().startswith("<!doctype html>") and "<canvas" in html
    assert [c for c in dict.fromkeys(page_codecs(page)) if c != "original"] == ["aecodec", "jpeg-420", "webp"]
    assert "budget 2000 bytes (1.302 bpp)" in result.output
    assert all(label in result.output for label in ("aecodec", "JPEG 4:2:0", "WebP", "PSNR"))
    (image,) = json.loads(js.read_text())["images"]
    assert image["image"] == "p0.png" and image["budget_bytes"] == 2000
    assert [c["codec"] for c in image["codecs"]] == ["aecodec", "jpeg-420", "webp"]
    assert all(c["bytes"] <= 2000 for c in image["codecs"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["numbers.json", "page.html", "photos"]


def test_several_images_give_a_folder_of_pages_and_an_index(photos, tmp_path):
    out = tmp_path / "out"
    result = ok(runner.invoke(app, ["compare", str(photos / "p0.png"), str(photos / "p1.png"), *FAST, "-o", str(out)]))
    assert sorted(p.name for p in out.iterdir()) == ["index.html", "p0.html", "p1.html"]
    index = (out / "index.html").read_text()
    assert 'href="p0.html"' in index and 'href="p1.html"' in index
    assert 'href="index.html"' in (out / "p0.html").read_text()  # each page links back
    assert "2 of 2 images compared" in result.output


def test_a_bad_image_among_several_is_one_line_and_exit_1_and_the_index_lists_the_others(photos, tmp_path):
    (photos / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot an image")
    out = tmp_path / "out"
    js = tmp_path / "numbers.json"
    result = runner.invoke(app, ["compare", str(photos / "p0.png"), str(photos / "broken.png"), *FAST, "-o", str(out),
                                 "--json", str(js)])
    assert result.exit_code == 1
    assert [image["image"] for image in json.loads(js.read_text())["images"]] == ["p0.png"]
    errors = [line for line in result.output.splitlines() if line.startswith("aecodec: error:")]
    assert len(errors) == 1 and "broken.png: cannot read image" in errors[0] and "Traceback" not in result.output
    assert sorted(p.name for p in out.iterdir()) == ["index.html", "p0.html"]
    assert "broken.html" not in (out / "index.html").read_text()


@pytest.mark.parametrize("args, message", [
    (["--codecs", "aecodec,png"], "unknown codec 'png'"),
    (["--size", "20k", "-q", "50"], "give one of --size, --bpp and -q/--quality"),
    (["--size", "lots"], "--size must be a positive size"),
    (["--bpp", "0"], "target bpp must be above 0"),
    (["--codecs", "jpeg,webp"], "include aecodec"),
], ids=["unknown-codec", "size-and-quality", "bad-size", "zero-bpp", "no-aecodec-for-q"])
def test_bad_options_are_one_line_exit_2_and_write_nothing(photos, tmp_path, args, message):
    page = tmp_path / "page.html"
    result = fails(runner.invoke(app, ["compare", str(photos / "p0.png"), "-o", str(page), *args]), message)
    assert result.exit_code == 2 and not page.exists()


def test_outputs_are_checked_before_the_work(photos, tmp_path):
    src = str(photos / "p0.png")
    fails(runner.invoke(app, ["compare", src, *FAST, "-o", str(tmp_path / "page.png")]), "a page's name ends in .html")
    (tmp_path / "page.html").write_text("keep me")
    fails(runner.invoke(app, ["compare", src, *FAST, "-o", str(tmp_path / "page.html")]), "already exists")
    assert (tmp_path / "page.html").read_text() == "keep me"
    ok(runner.invoke(app, ["compare", src, *FAST, "-o", str(tmp_path / "page.html"), "--force"]))
    assert "<canvas" in (tmp_path / "page.html").read_text()
    (tmp_path / "file").write_text("")
    fails(runner.invoke(app, ["compare", src, src, *FAST, "-o", str(tmp_path / "file")]), "not a directory")
    fails(runner.invoke(app, ["compare", src, str(photos / "index.png"), *FAST, "-o", str(tmp_path / "out")]),
          "both the index and")
    twin = tmp_path / "twin"
    twin.mkdir()
    Image.open(src).save(twin / "p0.webp", lossless=True)
    fails(runner.invoke(app, ["compare", src, str(twin / "p0.webp"), *FAST, "-o", str(tmp_path / "out")]),
          "both")


def test_a_codec_that_cannot_run_here_is_a_warning_and_the_page_is_written(photos, tmp_path, monkeypatch):
    def missing(self):
        raise CodecUnavailable("pillow-jxl-plugin not installed")

    monkeypatch.setattr(CODECS["jxl"], "check", missing)
    page = tmp_path / "page.html"
    result = ok(runner.invoke(app, ["compare", str(photos / "p0.png"), "--size", "2000", "--codecs", "jpeg,jxl,aecodec",
                                    "--no-curves", "-o", str(page)]))
    assert "aecodec: warning: " in result.output
    assert "JPEG XL left out: pillow-jxl-plugin not installed" in result.output
    assert "jxl" not in page_codecs(page) and "pillow-jxl-plugin not installed" in page.read_text()


def test_a_budget_no_codec_fits_is_one_line_exit_1_and_no_page(photos, tmp_path):
    page = tmp_path / "page.html"
    result = fails(runner.invoke(app, ["compare", str(photos / "p0.png"), "--size", "100", "--no-curves",
                                       "-o", str(page)]), "no codec fits 100 bytes")
    assert result.exit_code == 1 and not page.exists()


def test_the_command_runs_as_a_subprocess_with_quality_alone(photos, tmp_path):
    page = tmp_path / "page.html"
    proc = subprocess.run([sys.executable, "-m", "aecodec", "compare", str(photos / "p1.png"), "-q", "30",
                           "--codecs", "aecodec,webp", "--no-curves", "-o", str(page)],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "aecodec at quality 30" in page.read_text() and "WebP" in proc.stderr

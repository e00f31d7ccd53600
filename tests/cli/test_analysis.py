"""aecodec.cli.analysis: inspect and rank write their reports and refuse to overwrite them."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest
from PIL import Image
from typer.testing import CliRunner

import aecodec
from aecodec.cli import app
from tests.helpers import PNG_MAGIC, fails, no_torch_env, ok, payload_bits, smooth_image, with_noise_patch

runner = CliRunner()


def test_cli_inspect_writes_png_and_json_and_refuses_to_overwrite(tmp_path):
    src = tmp_path / "photo.png"
    Image.fromarray(smooth_image(64, 80)).save(src)
    png, js = tmp_path / "report.png", tmp_path / "report.json"
    ok(runner.invoke(app, ["inspect", str(src), "-q", "60", "-o", str(png), "--json", str(js)]))
    assert png.read_bytes().startswith(PNG_MAGIC)
    d, data = json.loads(js.read_text()), aecodec.encode(src, 60)
    assert d["quality"] == 60 and d["totals"]["bytes"] == len(data)
    assert d["rate"]["payload_bits_file"] == payload_bits(data)

    png.write_bytes(b"keep me")
    fails(runner.invoke(app, ["inspect", str(src), "-o", str(png)]), "already exists")
    assert png.read_bytes() == b"keep me"
    ok(runner.invoke(app, ["inspect", str(src), "-o", str(png), "--force"]))
    assert png.read_bytes().startswith(PNG_MAGIC)

    aec = tmp_path / "photo.aec"
    aec.write_bytes(aecodec.encode(src, 30))
    ok(runner.invoke(app, ["inspect", str(aec), "-o", str(tmp_path / "aec.png")]))
    assert (tmp_path / "aec.png").read_bytes().startswith(PNG_MAGIC)
    fails(runner.invoke(app, ["inspect", str(tmp_path / "missing.png"), "-o", str(tmp_path / "m.png")]),
          "no such file")


def test_cli_rank_writes_csv_json_and_contact_sheet_and_refuses_to_overwrite(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    for seed in range(3):
        Image.fromarray(smooth_image(48, 64, seed=seed)).save(images / f"{seed}.png")
    out = tmp_path / "out"
    ok(runner.invoke(app, ["rank", str(images), "-q", "50", "--top", "2", "-o", str(out)]))
    rows = list(csv.DictReader((out / "rank.csv").open()))
    assert [r["rank"] for r in rows] == ["1", "2", "3"] and {r["file"] for r in rows} == {"0.png", "1.png", "2.png"}
    d = json.loads((out / "rank.json").read_text())
    assert [r["file"] for r in d["images"]] == [r["file"] for r in rows] and d["quality"] == 50
    assert (out / "contact.png").read_bytes().startswith(PNG_MAGIC)

    fails(runner.invoke(app, ["rank", str(images), "-o", str(out)]), "already exists")
    ok(runner.invoke(app, ["rank", str(images), "-o", str(out), "--force"]))
    fails(runner.invoke(app, ["rank", str(tmp_path / "nope"), "-o", str(out), "--force"]), "not a directory")


def test_cli_inspect_needs_one_output():
    fails(runner.invoke(app, ["inspect", "photo.png"]), "nothing to write: give -o REPORT.png, --json FILE or both")


def test_without_torch_and_matplotlib_inspect_writes_json_refuses_the_png_and_rank_skips_only_its_contact_sheet(tmp_path):
    """A runtime install (no torch, no CompressAI, no matplotlib) does the numbers; a PNG it was
    asked for is one line and exit 2 before any work, the contact sheet rank always drew a warning."""
    images = tmp_path / "images"
    images.mkdir()
    for seed in range(2):
        Image.fromarray(smooth_image(48, 64, seed=seed)).save(images / f"{seed}.png")
    env = no_torch_env(tmp_path, blocked=("torch", "compressai", "pytorch_msssim", "matplotlib"))

    def run(*args):
        return subprocess.run([sys.executable, "-m", "aecodec", *args], env=env, capture_output=True, text=True,
                              timeout=300)

    js = tmp_path / "report.json"
    r = run("inspect", str(images / "0.png"), "-q", "60", "--json", str(js))
    assert r.returncode == 0, r.stderr
    d = json.loads(js.read_text())
    assert d["totals"]["ssim"] > 0.5 and 0 < d["rate"]["coder_overhead_bits"] <= 2 * 64  # a thumbnail: 2 strings

    r = run("inspect", str(images / "0.png"), "-o", str(tmp_path / "report.png"), "--json", str(tmp_path / "r2.json"))
    assert r.returncode == 2 and not (tmp_path / "r2.json").exists()
    assert r.stderr.splitlines() == ["aecodec: error: the report PNG (-o) needs matplotlib: pip install "
                                     "'aecodec[plots]' (--json alone works without it)"]

    out = tmp_path / "out"
    r = run("rank", str(images), "-q", "50", "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in out.iterdir()) == ["rank.csv", "rank.json"]
    assert ("aecodec: warning: contact.png not drawn: the contact sheet needs matplotlib: "
            "pip install 'aecodec[plots]'") in r.stderr.splitlines()


def test_cli_rank_finds_the_doctored_image_by_default_and_says_where(tmp_path):
    images, normal = tmp_path / "images", tmp_path / "normal"
    images.mkdir(), normal.mkdir()
    for seed in range(3):
        Image.fromarray(smooth_image(64, 64, seed=seed)).save(images / f"{seed}.png")
        Image.fromarray(smooth_image(64, 64, seed=10 + seed)).save(normal / f"n{seed}.png")
    Image.fromarray(with_noise_patch(smooth_image(64, 64, seed=9), 16, 48, 16, 48)).save(images / "odd.png")
    out = tmp_path / "out"
    result = ok(runner.invoke(app, ["rank", str(images), "--reference", str(normal), "-o", str(out)]))
    rows = list(csv.DictReader((out / "rank.csv").open()))
    assert rows[0]["file"] == "odd.png" and float(rows[0]["score"]) > 2
    assert int(rows[0]["region_x0"]) <= 32 <= int(rows[0]["region_x1"])  # the patch is at 16-48
    assert "region x" in result.output and "4 images ranked by error" in result.output
    assert json.loads((out / "rank.json").read_text())["reference"]["source"] == str(normal)


@pytest.mark.parametrize("args, message", [
    (["--by", "median"], "--by must be one of error, peak, mean, not 'median'"),
    (["--by", "mean", "--reference", "."], "not for --by mean"),
    (["--reference", "nowhere"], "nowhere: not a directory (--reference)"),
])
def test_cli_rank_refuses_bad_choices_in_one_line_before_any_work(tmp_path, args, message):
    Image.fromarray(smooth_image(24, 32)).save(tmp_path / "a.png")
    result = fails(runner.invoke(app, ["rank", str(tmp_path), "-o", str(tmp_path / "out"), *args]), message)
    assert result.exit_code == 2 and not (tmp_path / "out").exists()

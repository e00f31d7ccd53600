"""benchmarks.compare: the pages at each budget, their numbers as JSON and Markdown, and a screenshot."""

from __future__ import annotations

import json
import shutil

from PIL import Image

from benchmarks import compare
from tests.helpers import PNG_MAGIC, smooth_image


def test_compare_writes_pages_numbers_table_and_screenshot(tmp_path):
    kodak = tmp_path / "kodak"
    kodak.mkdir()
    Image.fromarray(smooth_image(96, 128, seed=7)).save(kodak / "kodim99.png")
    pages, out, shot = tmp_path / "pages", tmp_path / "results", tmp_path / "shot.png"
    assert compare.main(["--dataset", str(kodak), "--image", "kodim99.png", "--bpp", "1", "2", "--pages", str(pages),
                         "--out", str(out), "--screenshot", str(shot), "--right", "webp"]) == 0
    assert sorted(p.name for p in pages.iterdir()) == ["index.html", "kodim99-1bpp.html", "kodim99-2bpp.html"]
    record = json.loads((out / "kodim99.json").read_text())
    assert [c["budget_bytes"] for c in record["comparisons"]] == [1536, 3072]
    for c in record["comparisons"]:
        assert all(row["bytes"] <= c["budget_bytes"] for row in c["codecs"]) and c["curves"]
    assert set(record["settings"]) == {row["codec"] for row in record["comparisons"][0]["codecs"]}
    table = (out / "kodim99.md").read_text().splitlines()
    assert table[0].startswith("| budget | aecodec | JPEG 4:2:0 | WebP") and len(table) == 4
    assert table[2].startswith("| 1 bpp (1 536 B) |") and " dB (" in table[2]
    if shutil.which("chromium") or shutil.which("chromium-browser"):
        assert shot.read_bytes().startswith(PNG_MAGIC)
        with Image.open(shot) as png:
            assert png.size == (1280, 800)

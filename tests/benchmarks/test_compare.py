"""benchmarks.compare: the pages at each budget, their numbers as JSON and Markdown, and a screenshot."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from PIL import Image

from tests.helpers import PNG_MAGIC, smooth_image

ROOT = Path(__file__).resolve().parents[2]


def test_compare_writes_pages_numbers_table_and_screenshot(tmp_path):
    kodak = tmp_path / "kodak"
    kodak.mkdir()
    Image.fromarray(smooth_image(96, 128, seed=7)).save(kodak / "kodim99.png")
    pages, out, shot, readme = tmp_path / "pages", tmp_path / "results", tmp_path / "shot.png", tmp_path / "README.md"
    readme.write_text("# x\n\n<!-- compare:begin -->\nold\n<!-- compare:end -->\n\nafter\n")
    # A process of its own, as it is run: Playwright's sync API cannot start beside the browser tests' one.
    run = subprocess.run([sys.executable, "-m", "benchmarks.compare", "--dataset", str(kodak), "--image", "kodim99.png",
                          "--bpp", "1", "2", "--pages", str(pages), "--out", str(out), "--screenshot", str(shot),
                          "--right", "webp", "--readme", str(readme)], cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert sorted(p.name for p in pages.iterdir()) == ["index.html", "kodim99-1bpp.html", "kodim99-2bpp.html"]
    record = json.loads((out / "kodim99.json").read_text())
    assert [c["budget_bytes"] for c in record["comparisons"]] == [1536, 3072]
    for c in record["comparisons"]:
        assert all(row["bytes"] <= c["budget_bytes"] for row in c["codecs"]) and c["curves"]
    assert set(record["settings"]) == {row["codec"] for row in record["comparisons"][0]["codecs"]}
    table = (out / "kodim99.md").read_text().splitlines()
    assert table[0].startswith("| kodim99, PSNR (bytes) | aecodec | JPEG 4:2:0 | WebP") and len(table) == 4
    block = "<!-- compare:begin -->\n" + "\n".join(table) + "\n<!-- compare:end -->"
    assert readme.read_text() == f"# x\n\n{block}\n\nafter\n"
    assert table[2].startswith("| 1 bpp (1 536 B) |") and " dB (" in table[2]
    if shutil.which("chromium") or shutil.which("chromium-browser"):
        assert shot.read_bytes().startswith(PNG_MAGIC)
        with Image.open(shot) as png:
            assert png.size == (1280, 800)

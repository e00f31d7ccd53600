"""One Kodak photo beside JPEG, WebP, AVIF and JPEG XL at three sizes: the pages, their numbers, a screenshot.

    python -m benchmarks.compare --dataset path/to/kodak

For kodim23 at 0.25, 0.5 and 1 bpp (``--image``, ``--bpp``), :func:`aecodec.compare` codes the
photo with each codec at the highest quality that fits, and this writes:

* the pages ``<pages>/kodim23-<bpp>bpp.html`` and ``<pages>/index.html`` (``--pages``, default
  build/compare: each page holds every decode losslessly, a few MB, so they are not committed);
* the numbers, ``benchmarks/results/compare/kodim23.json`` and a Markdown table of them (``.md``,
  also written into the README's ``<!-- compare:begin -->`` block, ``--readme``);
* a screenshot of the first page, taken in headless Chromium (``docs/compare-kodim23.png``): the
  split view at ``--zoom`` with aecodec on the left and ``--right`` on the right, the table below.

The screenshot needs Playwright and a Chromium (:func:`chromium_or_reason`, which the browser tests
use too); without them the rest is written and the screenshot is skipped with a note.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(photo: Path, bpps: list[float], codecs: list[str] | None = None) -> list:
    """The comparisons of ``photo`` at each of ``bpps``."""
    from aecodec.comparison import compare

    out = []
    for bpp in bpps:
        start = time.perf_counter()
        c = compare(photo, bpp=bpp, codecs=codecs)
        print(f"{photo.name} at {bpp:g} bpp: {time.perf_counter() - start:.1f} s", file=sys.stderr)
        out.append(c)
    return out


def table(image: str, comparisons: list) -> str:
    """PSNR (dB) and bytes of each codec at each budget, as Markdown."""
    codecs = list(dict.fromkeys(k.label for c in comparisons for k in c.coded))
    lines = [f"| {image}, PSNR (bytes) | " + " | ".join(codecs) + " |", "|---|" + "---:|" * len(codecs)]
    for c in comparisons:
        by = {k.label: k for k in c.coded}
        cells = [f"{by[name].psnr:.2f} dB ({by[name].num_bytes:,} B)".replace(",", " ") if name in by else "—"
                 for name in codecs]
        lines.append(f"| {c.budget_bpp:.3g} bpp ({c.budget:,} B) | ".replace(",", " ") + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def chromium_or_reason() -> tuple[str | None, str]:
    """The Chromium that Playwright drives here (``$AECODEC_CHROMIUM``, else ``chromium`` or
    ``chromium-browser`` on the PATH), or None and why not — for this screenshot and for the browser
    tests (tests/comparison/conftest.py)."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError as e:
        return None, f"Playwright is not installed ({e}); pip install 'aecodec[test]'"
    candidates = [os.environ.get("AECODEC_CHROMIUM"), shutil.which("chromium"), shutil.which("chromium-browser")]
    executable = next((c for c in candidates if c and os.path.isfile(c)), None)
    if executable is None:
        return None, "no Chromium found (set AECODEC_CHROMIUM, or apt-get install chromium)"
    return executable, ""


def screenshot(page: Path, png: Path, *, right: str, zoom: int, width: int = 1280, height: int = 800,
               full_page: bool = False) -> str | None:
    """A screenshot of ``page`` in headless Chromium, or why none was taken."""
    chromium, reason = chromium_or_reason()
    if chromium is None:
        return reason
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        view = browser.new_page(viewport={"width": width, "height": height}, device_scale_factor=1)
        view.goto(page.resolve().as_uri())
        view.select_option("#left-choice", "aecodec")
        view.select_option("#right-choice", right)
        for _ in range(zoom.bit_length() - 1):  # each "+" doubles the magnification
            view.keyboard.press("+")
        view.wait_for_function("""() => ['left-label', 'right-label'].every(id => {
            const text = document.getElementById(id).textContent; return text && !text.includes('decoding'); })""")
        view.screenshot(path=str(png), full_page=full_page)
        browser.close()
    return None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", type=Path, required=True, help="folder of the Kodak images")
    ap.add_argument("--image", default="kodim23.png")
    ap.add_argument("--bpp", type=float, nargs="+", default=[0.25, 0.5, 1.0])
    ap.add_argument("--pages", type=Path, default=ROOT / "build" / "compare")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "compare")
    ap.add_argument("--screenshot", type=Path, default=ROOT / "docs" / "compare-kodim23.png")
    ap.add_argument("--readme", type=Path, default=ROOT / "README.md",
                    help="the page whose <!-- compare:begin/end --> block gets the table")
    ap.add_argument("--right", default="avif", help="the codec beside aecodec in the screenshot")
    ap.add_argument("--zoom", type=int, default=2, help="the screenshot's magnification (a power of two)")
    args = ap.parse_args(argv)

    from aecodec.comparison.page import index_entry, render_index, render_page

    photo = args.dataset / args.image
    start = time.perf_counter()
    comparisons = run(photo, args.bpp)
    args.pages.mkdir(parents=True, exist_ok=True)
    pages = []
    for bpp, c in zip(args.bpp, comparisons):
        name = f"{photo.stem}-{bpp:g}bpp.html"
        (args.pages / name).write_bytes(render_page(c, index_href="index.html"))
        pages.append((name, c))
    (args.pages / "index.html").write_bytes(render_index([index_entry(name, c) for name, c in pages]))

    from aecodec.comparison.codecs import CODECS
    from aecodec.device import cpu_name
    from PIL import Image, features

    args.out.mkdir(parents=True, exist_ok=True)
    record = {"date": date.today().isoformat(), "cpu": cpu_name(), "seconds": round(time.perf_counter() - start, 1),
              "command": "python -m benchmarks.compare " + " ".join(sys.argv[1:] if argv is None else argv),
              "pillow": Image.__version__, "libraries": {n: features.version(n) for n in ("jpg", "webp", "avif")},
              "settings": {cid: CODECS[cid]().settings() for cid in dict.fromkeys(k.codec for c in comparisons
                                                                                 for k in c.coded)},
              "comparisons": [c.to_dict() for c in comparisons]}
    stem = args.out / photo.stem
    stem.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    markdown = table(photo.stem, comparisons)
    stem.with_suffix(".md").write_text(markdown)
    print(markdown)
    if args.readme is not None:
        from benchmarks.report import replace_block

        args.readme.write_text(replace_block(args.readme.read_text(), "compare", markdown.rstrip("\n")))
    why = screenshot(args.pages / pages[0][0], args.screenshot, right=args.right, zoom=args.zoom)
    print(f"screenshot: {why or args.screenshot}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

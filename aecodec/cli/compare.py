"""``compare``: an image coded by aecodec, JPEG, WebP, AVIF and JPEG XL at the same file size, in one
page that opens in any browser (:mod:`aecodec.comparison`)."""

from __future__ import annotations

import json
import os
from contextlib import nullcontext
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import AecodecError
from .options import QUALITY_HELP, Force, Quiet
from .output import check_outputs, check_quality, fail, for_each, item_started, parse_size, say, shown_progress_bar

__all__ = ["compare"]

_CODECS_HELP = ("Codecs to compare, comma-separated, in the order the page lists them: aecodec, jpeg (4:2:0), "
                "jpeg-444, webp, avif, jxl, heic, jpeg2000, pca-8x8. One that cannot run here (a Pillow plugin "
                "missing) or cannot fit the budget is left out with a one-line note.")


def compare(
    inputs: Annotated[list[str], typer.Argument(metavar="IMAGE...", help="Images to compare (PNG, JPEG, WebP, TIFF, …; up to 16 megapixels each).")],
    output: Annotated[str, typer.Option("-o", "--output", help="The page (.html) for one image; for several, a folder (created if missing) that gets one page each and index.html. A folder for one image gets its page and the index.")],
    size: Annotated[Optional[str], typer.Option("--size", metavar="SIZE", help="The byte budget every codec's file must fit, e.g. 30k, 30000, 1.5M (k, M = 1000s; KiB, MiB = 1024s).")] = None,
    bpp: Annotated[Optional[float], typer.Option("--bpp", metavar="BPP", help="The budget in bits per pixel (of the whole file).")] = None,
    quality: Annotated[Optional[float], typer.Option("-q", "--quality", min=0, max=100, help=QUALITY_HELP + " Without --size or --bpp: aecodec at this quality (default 75), the others at its file's size.")] = None,
    codecs: Annotated[str, typer.Option("--codecs", metavar="LIST", help=_CODECS_HELP)] = "aecodec,jpeg,webp,avif,jxl",
    effort: Annotated[int, typer.Option("-e", "--effort", min=1, max=9, help="aecodec's encoder effort 1-9 (as aecodec encode -e; 2 and up need the [train] extra).")] = 1,
    curves: Annotated[bool, typer.Option("--curves/--no-curves", help="Also draw this image's rate–distortion curves (each codec's quality sweep: a few seconds more per image).")] = True,
    json_out: Annotated[Optional[str], typer.Option("--json", metavar="FILE", help="Also write the numbers as JSON (per image: the budget, each codec's quality, bytes, bpp, PSNR, MS-SSIM, times, its curve).")] = None,
    force: Force = False,
    quiet: Quiet = False,
) -> None:
    """Compare codecs by eye: each at the highest quality whose file fits one budget, in a page
    with a split view, synchronized zoom, a table of bytes, PSNR, MS-SSIM and times, and this
    image's rate–distortion curves. The page is one self-contained HTML file (no network)."""
    from ..codec.api import check_effort, check_target
    from ..codec.files import write_atomic
    from ..comparison import compare as run_compare
    from ..comparison.budget import check_codecs
    from ..comparison.page import index_entry, render_index, render_page

    if sum(v is not None for v in (size, bpp, quality)) > 1:
        fail("give one of --size, --bpp and -q/--quality")
    budget = None
    if size is not None:
        budget = parse_size(size)
        if budget is None:
            fail(f"--size must be a positive size like 30000, 30k, 1.5M or 64KiB, not {size!r}")
    check_quality(quality)
    try:
        check_target(None, bpp)
        ids = check_codecs(codecs.split(","))
        check_effort(effort)  # above 1 without torch: one line naming the [train] extra, before any input
    except AecodecError as exc:
        fail(str(exc))
    if quality is None and budget is None and bpp is None:
        quality = 75.0
    if budget is None and bpp is None and "aecodec" not in ids:
        fail("without --size or --bpp the budget is aecodec's file at -q: include aecodec in --codecs")

    into_dir = len(inputs) > 1 or output.endswith(("/", os.sep)) or Path(output).is_dir()
    out = Path(output)
    if into_dir:
        if os.path.lexists(out) and not out.is_dir():
            fail(f"{out}: not a directory (several images need a folder for their pages)")
        pages = [out / (Path(src).stem + ".html") for src in inputs]
        index = out / "index.html"
        claimed = {index.name: "the index"}  # check_outputs finds these only in a folder that exists
        for src, page in zip(inputs, pages):
            if page.name in claimed:
                fail(f"{page}: both {claimed[page.name]} and {src} would be written there")
            claimed[page.name] = src
        targets = [*pages, index]
    else:
        if out.suffix.lower() not in (".html", ".htm"):
            fail(f"{output}: a page's name ends in .html (or give a folder, ending in /)")
        pages, index, targets = [out], None, [out]
    sources = [*inputs, *(["the index"] if index is not None else [])]
    if json_out is not None:
        targets.append(Path(json_out))
        sources.append("--json")
    if into_dir and not out.is_dir():  # created after the first page: its parent must take it
        check_outputs([out, *targets[len(pages) + 1:]], inputs, force)
    else:
        check_outputs(targets, inputs, force, sources=sources)

    entries: list = []  # the index's: numbers and a thumbnail, not the pixels
    numbers: list[dict] = []  # --json's
    said: set[tuple[str, str]] = set()

    def one(pair):
        src, page = pair
        # one image: a bar over its steps (a search, then a curve, per codec); several: for_each's bar
        steps = (shown_progress_bar(len(ids) * (2 if curves else 1), quiet, "step") if len(inputs) == 1
                 else nullcontext())
        with steps as bar:
            c = run_compare(src, size=budget, bpp=bpp, quality=quality, codecs=ids, effort=effort, curves=curves,
                            on_step=item_started(describe=True) if bar is not None else None)
        if into_dir:
            out.mkdir(exist_ok=True)
        write_atomic(page, render_page(c, index_href="index.html" if into_dir else None), overwrite=force)
        numbers.append(c.to_dict())
        if index is not None:  # the index and the JSON are rewritten after each page: they always
            entries.append(index_entry(page.name, c))  # list the pages that exist, whatever fails next
            write_atomic(index, render_index(entries), overwrite=force or len(entries) > 1)
        if json_out is not None:
            write_atomic(json_out, (json.dumps({"images": numbers}, indent=2) + "\n").encode(),
                         overwrite=force or len(numbers) > 1)
        for cid, why in c.left_out.items():
            if (cid, why) not in said and not quiet:
                said.add((cid, why))
                say(f"aecodec: warning: {src}: {_label(cid)} left out: {why}")
        if not quiet:
            say(_summary(src, page, c, table=len(inputs) == 1))

    for_each(list(zip(inputs, pages)), one, quiet, "compared")


def _label(cid: str) -> str:
    from ..comparison.codecs import CODECS

    return CODECS[cid].label


def _summary(src: str, page: Path, c, *, table: bool) -> str:
    """One line per image; for a single image, the table of what the page shows."""
    head = f"{src} -> {page}: {c.width}x{c.height}, budget {c.budget} bytes ({c.budget_bpp:.3f} bpp)"
    if not table:
        best = max(c.coded, key=lambda k: k.psnr)
        return f"{head}, best PSNR {best.label} {best.psnr:.2f} dB"
    width = max(len("codec"), *(len(k.label) for k in c.coded))
    rows = [f"  {'codec':<{width}} {'quality':>8} {'bytes':>8} {'bpp':>7} {'PSNR':>7} {'MS-SSIM':>8}"]
    for k in c.coded:
        ms = "—" if k.ms_ssim_db is None else f"{k.ms_ssim_db:.2f}"
        rows.append(f"  {k.label:<{width}} {k.quality:>8.4g} {k.num_bytes:>8} {k.bpp(c.pixels):>7.3f} "
                    f"{k.psnr:>7.2f} {ms:>8}")
    return "\n".join([head, *rows])

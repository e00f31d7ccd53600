"""``inspect`` and ``rank``: where one image spends its bits, and which images of a folder hold
something unusual (:mod:`aecodec.inspection`, :mod:`aecodec.ranking`, drawn by :mod:`aecodec.reports`)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from .options import QUALITY_HELP, Device, Force, Model, Quiet
from .output import check_outputs, check_quality, fail, for_each, say

__all__ = ["inspect", "rank"]


def inspect(
    source: Annotated[str, typer.Argument(metavar="IMAGE_OR_AEC", help="An image (encoded at -q) or an .aec file (measured as it is).")],
    output: Annotated[Optional[str], typer.Option("-o", "--output", help="Report PNG to write: original, reconstruction, rate map, error map (needs matplotlib: the [plots] extra).")] = None,
    quality: Annotated[Optional[float], typer.Option("-q", "--quality", min=0, max=100, help=QUALITY_HELP + " Default 75; an .aec file keeps its own.")] = None,
    json_out: Annotated[Optional[str], typer.Option("--json", metavar="FILE", help="Also write the numbers as JSON: totals, a 4×4 grid of regions, rate sums vs the file.")] = None,
    force: Force = False,
    device: Device = "auto",
    model: Model = None,
    quiet: Quiet = False,
) -> None:
    """See where the bits go: a rate map (bits per pixel, from the coder's own tables) and an
    error map of one image, with bpp, PSNR and SSIM — drawn in a PNG (-o), written as JSON
    (--json), or both."""
    from ..codec.files import write_atomic
    from ..inspection import inspect as measure
    from ..reports import has_matplotlib, needs_matplotlib, render_report

    check_quality(quality)
    if output is None and json_out is None:
        fail("nothing to write: give -o REPORT.png, --json FILE or both")
    if output is not None and not has_matplotlib():
        fail(needs_matplotlib("the report PNG (-o)") + " (--json alone works without it)")
    targets = [t for t in (output, json_out) if t is not None]
    check_outputs(targets, [source], force)

    def one(src):
        r = measure(src, quality, model=model, device=device)
        if output is not None:
            write_atomic(output, render_report(r), overwrite=force)
        if json_out:
            write_atomic(json_out, (json.dumps(r.to_dict(), indent=2) + "\n").encode(), overwrite=force)
        if not quiet:
            psnr = "" if r.psnr is None else f", PSNR {r.psnr:.2f} dB, SSIM {r.ssim or float('nan'):.4f}"
            typer.echo(f"{src} -> {', '.join(targets)}: {r.width}x{r.height}, q {r.quality:g}, "
                       f"{r.bpp:.3f} bpp{psnr}", err=True)

    for_each([source], one, quiet)


def rank(
    folder: Annotated[str, typer.Argument(metavar="DIR", help="Folder of images (not searched recursively).")],
    output: Annotated[str, typer.Option("-o", "--output", help="Folder for rank.csv, rank.json and contact.png (created if missing; not the folder of images).")],
    by: Annotated[str, typer.Option("--by", metavar="SCORE", help="error (default): the worst-reconstructed 48x48 region against what is usual — finds what is unusual in an image; peak: the same for the most expensive region's bits; mean: the whole image's bits per pixel — the most detailed images first.")] = "error",
    reference: Annotated[Optional[str], typer.Option("--reference", metavar="DIR", help="A folder of normal images that sets what is usual for error and peak (default: DIR itself).")] = None,
    quality: Annotated[float, typer.Option("-q", "--quality", min=0, max=100, help=QUALITY_HELP)] = 75.0,
    top: Annotated[int, typer.Option("--top", min=1, help="How many of the most unusual images the contact sheet shows.")] = 10,
    force: Force = False,
    device: Device = "auto",
    model: Model = None,
    quiet: Quiet = False,
) -> None:
    """Rank the images of a folder, most unusual first: by default by the region each one
    reconstructs worst, against what is usual in the folder (or in --reference) — a pasted object,
    a defect, a patch of noise; --by mean ranks by bits per pixel, the most detailed first.

    Writes rank.csv and rank.json (score, region, bpp, MSE, PSNR, SSIM of every image) and
    contact.png (the top images with the region outlined on the map that scored it; only with
    matplotlib, the [plots] extra — without it, a warning says so).
    """
    from ..codec.files import same_file, write_atomic
    from ..ranking import SCORES
    from ..ranking import rank as rank_folder
    from ..reports import has_matplotlib, needs_matplotlib, render_contact_sheet
    from .output import item_started, shown_progress_bar, tick

    check_quality(quality)
    if by not in SCORES:
        fail(f"--by must be one of {', '.join(SCORES)}, not {by!r}")
    if reference is not None and by == "mean":
        fail("--reference sets what is usual for --by error and --by peak, not for --by mean")
    out = Path(output)
    if os.path.lexists(out) and not out.is_dir():
        fail(f"{out}: not a directory")
    if Path(folder).is_dir() and same_file(out, folder):
        fail(f"{out}: the report would land among the images it ranks (choose another folder)")
    for named, what in ((folder, "DIR"), (reference, "--reference")):
        if named is not None and not Path(named).is_dir():
            fail(f"{named}: not a directory ({what})")
    draw = has_matplotlib()
    targets = [out / name for name in ("rank.csv", "rank.json", "contact.png")[: 3 if draw else 2]]
    if out.is_dir():
        check_outputs(targets, [], force)
    else:  # created after the work: its parent must take it
        check_outputs([out], [], force)

    def one(src):
        from ..codec.images import image_files

        count = len(image_files([Path(src)])) + (len(image_files([Path(reference)])) if reference else 0)
        with shown_progress_bar(count, quiet):
            ranking = rank_folder(src, quality, by=by, top=top, reference=reference, model=model, device=device,
                                  progress=item_started())
            tick()
        out.mkdir(exist_ok=True)
        write_atomic(targets[0], ranking.to_csv().encode(), overwrite=force)
        write_atomic(targets[1], (json.dumps(ranking.to_dict(), indent=2) + "\n").encode(), overwrite=force)
        if draw:
            write_atomic(targets[2], render_contact_sheet(ranking), overwrite=force)
        else:
            say(f"aecodec: warning: contact.png not drawn: {needs_matplotlib('the contact sheet')}")
        if not quiet:
            for row in ranking.rows[:top]:
                region = f"region x {row['region_x0']}-{row['region_x1']}, y {row['region_y0']}-{row['region_y1']}"
                typer.echo(f"{row['rank']:4d}  score {row['score']:.3f}  {row['bpp']:.4f} bpp  {region}  "
                           f"{row['file']}", err=True)
            typer.echo(f"{len(ranking.rows)} images ranked by {by} -> {out}", err=True)

    for_each([folder], one, quiet)

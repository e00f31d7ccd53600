"""Help texts and option types that several commands share, so that they read the same everywhere."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from ..codec.format import DEFAULT_MAX_PIXELS

QUALITY_HELP = ("Quality 0–100, higher is better and larger (like cwebp's -q): 0 is the model's lowest "
                "trained rate, 100 its highest; fractional values interpolate. See the README for "
                "bpp and PSNR on Kodak at each quality.")
DEVICE_HELP = "Where to run the network: auto (GPU if present), cpu or cuda."
VERBOSE_HELP = ("One line per file (size, bpp, …) also for several inputs, which otherwise show a progress bar "
                "on a terminal; one input always gets its line unless --quiet.")
MODEL_HELP = "Model id or checkpoint path (default: the shipped model)."

MAX_PIXELS_HELP = (f"Refuse images larger than this, e.g. 100M (k, M = 1000s); default {DEFAULT_MAX_PIXELS} "
                   f"({DEFAULT_MAX_PIXELS / 1e6:.0f} MP: camera photos decode). A guard against decompression "
                   "bombs, like Pillow's limit; raise it for larger images.")

MaxPixels = Annotated[Optional[str], typer.Option("--max-pixels", metavar="PIXELS", help=MAX_PIXELS_HELP)]
Force = Annotated[bool, typer.Option("--force", "-f", help="Overwrite existing outputs.")]
Device = Annotated[str, typer.Option(help=DEVICE_HELP)]
Model = Annotated[Optional[str], typer.Option(help=MODEL_HELP)]
Quiet = Annotated[bool, typer.Option("--quiet", help="Print nothing but errors.")]

"""``encode``, ``decode``, ``upgrade`` and ``info``: files in, files out, through :mod:`aecodec.codec.api`.

The codec is imported inside each command, not here: ``info`` and ``--version`` must not load torch.
"""

from __future__ import annotations

import json
from typing import Annotated, Optional

import typer

from ..errors import AecodecError
from .options import QUALITY_HELP, VERBOSE_HELP, Device, Force, MaxPixels, Model, Quiet
from .output import (check_quality, fail, for_each, pair_outputs, per_file, pixel_cap, read_input, say,
                     size_budget, write_stdout)

__all__ = ["encode", "decode", "upgrade", "info"]

Verbose = Annotated[bool, typer.Option("-v", "--verbose", help=VERBOSE_HELP)]


def encode(
    inputs: Annotated[list[str], typer.Argument(metavar="INPUT...", help="Images to encode (PNG, JPEG, WebP, TIFF, BMP, … or - for stdin).")],
    output: Annotated[Optional[str], typer.Option("-o", "--output", help="Output file, directory (several inputs) or - for stdout. Default: the input name with .aec.")] = None,
    quality: Annotated[Optional[float], typer.Option("-q", "--quality", min=0, max=100, help=QUALITY_HELP + " Default 75.")] = None,
    target_size: Annotated[Optional[str], typer.Option("--target-size", metavar="SIZE", help="Largest file allowed, e.g. 50000, 50k, 1.5M (k, M = 1000s; KiB, MiB = 1024s): the best quality that fits is searched (like cwebp -size). An error if even quality 0 does not fit.")] = None,
    target_bpp: Annotated[Optional[float], typer.Option("--target-bpp", metavar="BPP", help="Largest file allowed in bits per pixel (whole file, header included); the best quality that fits is searched.")] = None,
    effort: Annotated[int, typer.Option("-e", "--effort", min=1, max=9, help="Encoder effort 1-9 (like cjxl -e): higher searches longer for smaller files at the same quality (9: about 10 % smaller on Kodak, a minute per 0.4 MP image on 2 CPU cores); every effort decodes the same way. 1 (default) is fastest.")] = 1,
    force: Force = False,
    device: Device = "auto",
    model: Model = None,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Encode images to .aec files.

    Quality runs from 0 (smallest file) to 100 (best image); 75 is the default, like cwebp. Or
    give a size budget (--target-size / --target-bpp): the best quality that fits is found.
    --effort trades encode time for smaller files.
    """
    from ..codec import api, files

    size = size_budget(quality, target_size, target_bpp)
    check_quality(quality)
    try:
        api.check_target(size, target_bpp)  # before any input is read
    except AecodecError as exc:
        fail(f"--target-bpp: {exc}")
    api.check_effort(effort)  # above 1 the search runs on torch: without it, one line and exit 2, before any input

    def one(pair):
        src, dst = pair
        source = read_input(src)
        if src == "-":
            import io
            source = io.BytesIO(source)
            source.name = "<stdin>"  # what messages call it
        data = api.encode(source, quality, target_size=size, target_bpp=target_bpp, effort=effort, model=model,
                          device=device, progress=not quiet and len(pairs) == 1)
        if dst == "-":
            write_stdout(data)
        else:
            files.write_atomic(dst, data, overwrite=force)
        if per_file(len(pairs), quiet, verbose):
            i = api.info(data)
            say(f"{src} -> {dst}: {i['width']}x{i['height']} {i['layout']}, {i['bytes']} bytes, "
                f"{i['bpp']:.3f} bpp (q {i['quality']:g})")

    pairs = pair_outputs(inputs, output, ".aec", force)
    for_each(pairs, one, quiet, "encoded", verbose)


def decode(
    inputs: Annotated[list[str], typer.Argument(metavar="INPUT...", help=".aec files to decode (or - for stdin).")],
    output: Annotated[Optional[str], typer.Option("-o", "--output", help="Output image (format from its extension: .png, .jpg, .webp, .tif, .bmp …), directory, or - for PNG on stdout. Default: the input name with .png.")] = None,
    force: Force = False,
    device: Device = "auto",
    max_pixels: MaxPixels = None,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Decode .aec files to images.

    A long decode shows its progress on a terminal (tiles done / total)."""
    from ..codec import api, files

    cap = pixel_cap(max_pixels)

    def one(pair):
        src, dst = pair
        data = files.read_file(src, max_pixels=cap)  # no further than the header allows; errors name src
        img = files.named(src, api.decode, data, device=device, max_pixels=cap,
                          progress=not quiet and len(pairs) == 1)
        if dst == "-":
            import io
            buf = io.BytesIO()
            img.save(buf, format="PNG", compress_level=files.PNG_COMPRESS_LEVEL)  # as a file would be
            write_stdout(buf.getvalue())
        else:
            files.save_image(img, dst, overwrite=force)
        if per_file(len(pairs), quiet, verbose):
            say(f"{src} -> {dst}: {img.width}x{img.height} {img.mode}")

    pairs = pair_outputs(inputs, output, ".png", force, check=files.check_image_format)
    for_each(pairs, one, quiet, "decoded", verbose)


def upgrade(
    inputs: Annotated[list[str], typer.Argument(metavar="INPUT...", help=".aec files of an earlier format version.")],
    output: Annotated[Optional[str], typer.Option("-o", "--output", help="Output file, directory (several inputs) or - for stdout. Default: the input name with .v3.aec.")] = None,
    force: Force = False,
    device: Device = "auto",
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Re-code .aec files in the current format version, losslessly.

    The latents are decoded with the entropy coder of the file's version and coded again with
    today's: the new file decodes to the same pixels, and without PyTorch (files of format 1 and 2,
    written by aecodec 0.1, need it: pip install 'aecodec[train]'). A file already in the current
    version is copied unchanged."""
    from ..codec import api, files
    from ..codec.format import MAX_ENCODE_PIXELS

    def one(pair):
        src, dst = pair
        data = files.read_file(src, max_pixels=MAX_ENCODE_PIXELS)
        new = files.named(src, api.upgrade, data, device=device)
        if dst == "-":
            write_stdout(new)
        else:
            files.write_atomic(dst, new, overwrite=force)
        if per_file(len(pairs), quiet, verbose):
            say(f"{src} -> {dst}: format {data[4]} -> {new[4]}, {len(data)} -> {len(new)} bytes")

    pairs = pair_outputs(inputs, output, ".v3.aec", force)
    for_each(pairs, one, quiet, "upgraded", verbose)


def info(
    files: Annotated[list[str], typer.Argument(metavar="FILE...", help=".aec files.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show the header of .aec files: model id, weights hash, size, quality, bpp.

    Only the header is read (its size is compared with the file's on disk); the payload is
    neither read nor checked — decode does that."""
    from ..codec import api
    from ..codec.files import read_header

    def one(src):
        i = api.info(read_header(src)[0])
        if as_json:
            typer.echo(json.dumps({"file": src, **i}))
        else:
            typer.echo(f"{src}: aecodec v{i['format_version']}, model {i['model_id']}@{i['weights_hash']}, "
                       f"{i['width']}x{i['height']} {i['layout']}, quality {i['quality']:g}, "
                       f"{i['bytes']} bytes, {i['bpp']:.4f} bpp")

    for_each(files, one, quiet=False)

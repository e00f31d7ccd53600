"""``aecodec batch encode | decode | rd``: a folder at once, on this machine's cores or a Ray cluster
(:mod:`aecodec.batch`). That package, and Ray with it, is imported by these commands only: a
single-image command does not pay for it."""

from __future__ import annotations

from contextlib import ExitStack
from typing import Annotated, Optional

import typer

from ..errors import AecodecError, one_line
from .options import QUALITY_HELP, MaxPixels, Model, Quiet
from .output import (error, fail, os_error_line, pixel_cap, progress_bar, say, show_bar, signals_stop, size_budget,
                     stop_reason, tick)

__all__ = ["batch_app"]

batch_app = typer.Typer(no_args_is_help=True, help=(
    "Many images at once, spread over this machine's cores or a Ray cluster (needs Ray: "
    "pip install 'aecodec[cluster]'). Outputs mirror the input folder in a folder outside it; manifest.jsonl "
    "records each image; a rerun skips outputs that are there and verify, and never writes over a file it did "
    "not write (without --force)."))

Address = Annotated[Optional[str], typer.Option(
    help="Join this running Ray cluster (auto, ray://HOST:10001, …) instead of starting Ray on this machine. "
         "The inputs and outputs must be paths every node sees (a shared filesystem).")]
Workers = Annotated[Optional[int], typer.Option(
    help="Worker processes, each with the model loaded once. Default: one per GPU, else one per CPU core.")]
CpusPerWorker = Annotated[Optional[int], typer.Option(
    help="CPU cores (= the threads of the model's transforms) each worker reserves. Default 1, or the cores shared out with --workers.")]
GpusPerWorker = Annotated[Optional[float], typer.Option(
    help="GPUs each worker reserves (0: CPU only). Default: 1 when the cluster has GPUs, else 0.")]
Manifest = Annotated[Optional[str], typer.Option(
    help="Where to write the manifest (JSON lines, one per image). Default: DST/manifest.jsonl.")]
BatchForce = Annotated[bool, typer.Option("--force", "-f", help="Redo outputs that are already there and verify "
                                                                 "(default: skip them).")]
BatchVerbose = Annotated[bool, typer.Option("-v", "--verbose", help="One line per image.")]
Effort = Annotated[int, typer.Option("-e", "--effort", min=1, max=9, help="Encoder effort 1-9, as for aecodec encode.")]


def _batch(job: dict, src: str, dst: str, *, address, workers, cpus_per_worker, gpus_per_worker, manifest,
           quiet: bool, verbose: bool) -> None:
    """Run a batch job with a progress bar, one line per failure (and per image with -v), a summary.
    A job that cannot start (bad options, no Ray, bad folders, a pool the cluster cannot hold) raises
    an :class:`~aecodec.errors.AecodecError`, which the command group reports (one line, exit 2); one
    that fails later (its cluster: :class:`~aecodec.batch.JobFailed`) is one line and exit 1."""
    from ..batch import Job, JobFailed, run_job

    job = Job(**job)
    with ExitStack() as bars:
        def started(n: int, pool: str) -> None:
            if not quiet:
                say(f"{n} images, {pool}")
            show_bar(bars.enter_context(progress_bar(n, quiet)))

        def finished(row: dict) -> None:
            if row["status"] == "failed":
                error(row["error"])
            elif verbose and not quiet:
                size = f", {row['bytes']} bytes, {row['bpp']:.3f} bpp" if row.get("bytes") else ""
                say(f"{row['input']} -> {row['output'] or '-'}: {row['status']}{size}, {row['seconds']:.2f} s")
            tick()

        try:
            with signals_stop():
                summary = run_job(job, src, dst, manifest=manifest, on_row=finished, on_start=started, watch=True,
                                  address=address, workers=workers, cpus_per_worker=cpus_per_worker,
                                  gpus_per_worker=gpus_per_worker)
        except JobFailed as exc:  # the cluster failed partway: what failed, where the manifest is
            fail(str(exc), 1)
        except AecodecError:  # the job cannot start: the command group's one line, exit 2
            raise
        except KeyboardInterrupt as exc:
            what, code = stop_reason(exc)
            fail(f"{what}; what was done is in the manifest's .partial file, and a rerun resumes", code)
        except OSError as exc:
            fail(os_error_line(exc), 1)
        except Exception as exc:  # the engine's (cannot reach the cluster, a worker that keeps dying, …)
            fail(f"batch job failed: {type(exc).__name__}: {one_line(exc)}", 1)
        finally:
            show_bar(None)  # the error lines above were written above the bar; the stack closes it
    if not quiet:
        say(summary.line())
        say(f"manifest: {summary.manifest}")
    if summary.failed:
        raise typer.Exit(1)


@batch_app.command("encode")
def batch_encode(
    src: Annotated[str, typer.Argument(metavar="SRC", help="Folder of images (searched recursively), or one image.")],
    dst: Annotated[str, typer.Argument(metavar="DST", help="Folder for the .aec files (created; outside SRC): the inputs' relative paths, suffix .aec.")],
    quality: Annotated[Optional[float], typer.Option("-q", "--quality", min=0, max=100, help=QUALITY_HELP + " Default 75.")] = None,
    target_size: Annotated[Optional[str], typer.Option("--target-size", metavar="SIZE", help="Largest file allowed per image, e.g. 50k (see aecodec encode --help).")] = None,
    target_bpp: Annotated[Optional[float], typer.Option("--target-bpp", metavar="BPP", help="Largest file allowed per image in bits per pixel.")] = None,
    effort: Effort = 1,
    model: Model = None,
    force: BatchForce = False,
    address: Address = None,
    workers: Workers = None,
    cpus_per_worker: CpusPerWorker = None,
    gpus_per_worker: GpusPerWorker = None,
    manifest: Manifest = None,
    quiet: Quiet = False,
    verbose: BatchVerbose = False,
) -> None:
    """Encode a folder of images to .aec files, in parallel (the same bytes as aecodec encode)."""
    size = size_budget(quality, target_size, target_bpp)
    _batch(dict(kind="encode", quality=quality, target_size=size, target_bpp=target_bpp, effort=effort, model=model,
                force=force), src, dst, address=address, workers=workers, cpus_per_worker=cpus_per_worker,
           gpus_per_worker=gpus_per_worker, manifest=manifest, quiet=quiet, verbose=verbose)


@batch_app.command("decode")
def batch_decode(
    src: Annotated[str, typer.Argument(metavar="SRC", help="Folder of .aec files (searched recursively), or one file.")],
    dst: Annotated[str, typer.Argument(metavar="DST", help="Folder for the images (created; outside SRC): the inputs' relative paths.")],
    image_format: Annotated[str, typer.Option("--format", help="Output format by extension: png, webp, tif, bmp, jpg, …")] = "png",
    max_pixels: MaxPixels = None,
    force: BatchForce = False,
    address: Address = None,
    workers: Workers = None,
    cpus_per_worker: CpusPerWorker = None,
    gpus_per_worker: GpusPerWorker = None,
    manifest: Manifest = None,
    quiet: Quiet = False,
    verbose: BatchVerbose = False,
) -> None:
    """Decode a folder of .aec files to images, in parallel (the same pixels as aecodec decode)."""
    cap = None if max_pixels is None else pixel_cap(max_pixels)
    _batch(dict(kind="decode", image_format=image_format, max_pixels=cap, force=force), src, dst, address=address, workers=workers,
           cpus_per_worker=cpus_per_worker, gpus_per_worker=gpus_per_worker, manifest=manifest, quiet=quiet,
           verbose=verbose)


@batch_app.command("rd")
def batch_rd(
    src: Annotated[str, typer.Argument(metavar="SRC", help="Folder of images (searched recursively), or one image.")],
    output: Annotated[str, typer.Option("-o", "--output", help="Folder (outside SRC) for manifest.jsonl (per image and quality), rd.json (the mean curve) and rd.png.")] = "aecodec-rd",
    qualities: Annotated[Optional[str], typer.Option("--qualities", metavar="Q1,Q2,…", help="Qualities to code each image at. Default: the Kodak benchmark's (0,15,30,45,60,75,90,100).")] = None,
    effort: Annotated[int, typer.Option("-e", "--effort", min=1, max=9, help="Encoder effort 1-9.")] = 1,
    model: Model = None,
    force: Annotated[bool, typer.Option("--force", "-f", help="Measure every image again (default: keep the rows of an earlier run that still hold).")] = False,
    address: Address = None,
    workers: Workers = None,
    cpus_per_worker: CpusPerWorker = None,
    gpus_per_worker: GpusPerWorker = None,
    quiet: Quiet = False,
    verbose: BatchVerbose = False,
) -> None:
    """Rate–distortion of a folder at scale: each image coded at each quality (bpp from the real
    file, PSNR, MS-SSIM), and the mean curve (rd.json, rd.png; the plot only with matplotlib, the
    [plots] extra: without it, a warning says so before the work)."""
    from ..batch.work import RD_QUALITIES
    from ..reports import has_matplotlib, needs_matplotlib

    try:
        qs = RD_QUALITIES if qualities is None else tuple(float(q) for q in qualities.split(","))
    except ValueError:
        fail(f"--qualities must be comma-separated numbers, got {qualities!r}")
    if not has_matplotlib():
        say(f"aecodec: warning: rd.png will not be drawn: {needs_matplotlib('the RD plot')}")
    _batch(dict(kind="rd", qualities=qs, effort=effort, model=model, force=force), src, output, address=address,
           workers=workers, cpus_per_worker=cpus_per_worker, gpus_per_worker=gpus_per_worker, manifest=None,
           quiet=quiet, verbose=verbose)

"""The ``aecodec`` command line: thin Typer commands over the library.

Errors are one line on stderr (``aecodec: error: …``) and a non-zero exit, usage errors included
(:func:`main`, the console script); outputs are checked before any work and written atomically, so
a failed or interrupted (Ctrl-C, SIGTERM, SIGHUP) command leaves no partial file.

Longer than 300 lines on purpose: one function per command, most of it the option declarations
with their help text (what ``--help`` shows); each command's work is a call into the library.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import threading
import warnings
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Annotated, NoReturn, Optional

import typer

from .models.registry import DEFAULT_MODEL_ID

try:  # typer vendors click since 0.2x
    from typer._click.exceptions import ClickException
except ImportError:
    from click.exceptions import ClickException

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  rich_markup_mode=None,
                  help="aecodec — a learned image codec (encode, decode, info, train).")


def _version(value: bool) -> None:
    if not value:
        return
    from importlib.metadata import PackageNotFoundError, version

    from . import __version__
    from .codec.format import VERSION

    def v(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "missing"

    typer.echo(f"aecodec {__version__} (container format {VERSION}; torch {v('torch')}, "
               f"compressai {v('compressai')}, Pillow {v('pillow')})")
    raise typer.Exit()


@app.callback()
def _main(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                                help="Show the versions and exit.")] = False) -> None:
    """aecodec — a learned image codec (encode, decode, info, train)."""


QUALITY_HELP = ("Quality 0–100, higher is better and larger (like cwebp's -q): 0 is the model's lowest "
                "trained rate, 100 its highest; fractional values interpolate. See the README for "
                "bpp and PSNR on Kodak at each quality.")
DEVICE_HELP = "Where to run the network: auto (GPU if present), cpu or cuda."
VERBOSE_HELP = ("One line per file (size, bpp, …) also for several inputs, which otherwise show a progress bar "
                "on a terminal; one input always gets its line unless --quiet.")


def main(args: Optional[list[str]] = None) -> int:
    """The console script: :data:`app`, with click's usage errors as one ``aecodec: error:`` line (exit 2)."""
    args = sys.argv[1:] if args is None else list(args)
    try:
        return typer.main.get_command(app).main(args, prog_name="aecodec", standalone_mode=False) or 0
    except ClickException as exc:
        if not args:  # no_args_is_help: the help, as click shows it
            exc.show()
        else:
            ctx = getattr(exc, "ctx", None)
            _err(exc.format_message() + (f" (see {ctx.command_path} --help)" if ctx else ""))
        return exc.exit_code
    except typer.Abort:
        _err("aborted")
        return 1


def run() -> NoReturn:
    """The console script and ``python -m aecodec``: :func:`main`, then the process ends without
    tearing the interpreter down. With torch loaded, Python's finalisation (clearing some 2 000
    modules, the libraries' destructors) took 0.7–0.85 s on the 2-core machines — a fifth of a
    whole decode — and does nothing a finished command needs: its outputs are already written,
    synced and renamed into place; atexit handlers still run and stdout / stderr are flushed.
    In-process callers (tests, other programs) use :func:`main`, which returns."""
    code = main()
    import atexit

    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (| head): nothing more can reach it
            pass
    os._exit(code)


class _Failed(Exception):
    pass


class _Stopped(KeyboardInterrupt):
    """SIGTERM or SIGHUP (``args[0]``), raised where the command is, so that it stops as on Ctrl-C."""


def _err(msg: str) -> None:
    _say(f"aecodec: error: {msg}")


_BAR = None  # the batch's progress bar while one is shown (:func:`_run_all`)


def _say(line: str) -> None:
    """One line on stderr, above the batch's progress bar if one is shown."""
    if _BAR is not None:
        _BAR.write(line, file=sys.stderr)
    else:
        typer.echo(line, err=True)


def _exit(msg: str, code: int = 2) -> NoReturn:
    _err(msg)
    raise typer.Exit(code)


@contextmanager
def _guard(quiet: bool, src: str):
    """Turn library errors into one-line messages; show warnings as one line each."""
    from .codec.api import CodecError
    from .errors import one_line
    from .codec.format import FormatError
    from .errors import CheckpointError, ModelNotFound

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield
        except (CodecError, FormatError, ModelNotFound, CheckpointError) as exc:
            _err(str(exc))
            raise _Failed from None
        except OSError as exc:
            _err(_os_error(exc))
            raise _Failed from None
        except MemoryError:
            _err(f"{src}: not enough memory")
            raise _Failed from None
        except RuntimeError as exc:  # torch's, e.g. "DefaultCPUAllocator: can't allocate memory: …"
            _err(f"{src}: {one_line(exc)}")
            raise _Failed from None
        finally:
            if not quiet:
                for w in caught:
                    if issubclass(w.category, UserWarning) and "aecodec" in (w.filename or ""):
                        _say(f"aecodec: warning: {w.message}")


def _run_all(items, fn, quiet: bool, done: str = "", verbose: bool = False) -> None:
    """``fn`` on each item (a source, or a (source, output) pair), one error line for each that fails
    (exit 1); Ctrl-C, SIGTERM and SIGHUP stop it with exit 128 + the signal number. Several items
    show a progress bar on a terminal (stderr; not with ``quiet``) and, unless ``verbose`` (each
    printed its own line) or ``quiet``, end with one line: how many were ``done``."""
    global _BAR
    items = list(items)
    failed = 0
    try:
        with _signals_stop(), _batch_bar(len(items), quiet) as bar:
            _BAR = bar
            for item in items:
                try:
                    with _guard(quiet, item[0] if isinstance(item, tuple) else item):
                        fn(item)
                except _Failed:
                    failed += 1
                if bar is not None:
                    bar.update()
    except KeyboardInterrupt as exc:
        _BAR = None
        _exit(*_stopped(exc))
    finally:
        _BAR = None
    if done and len(items) > 1 and not quiet and not verbose:
        _say(f"{len(items) - failed} of {len(items)} images {done}" + (f", {failed} failed" if failed else ""))
    if failed:
        raise typer.Exit(1)


def _os_error(exc: OSError) -> str:
    """An OSError in one line: the file it names, then the system's words."""
    return f"{exc.filename or ''}{': ' if exc.filename else ''}{exc.strerror or exc}"


def _stopped(exc: KeyboardInterrupt) -> tuple[str, int]:
    """What stopped a command (Ctrl-C, or SIGTERM / SIGHUP as :class:`_Stopped`) and its exit status."""
    signum = exc.args[0] if isinstance(exc, _Stopped) else signal.SIGINT
    return ("interrupted" if signum == signal.SIGINT else f"terminated by {signal.Signals(signum).name}",
            128 + signum)


@contextmanager
def _batch_bar(n: int, quiet: bool):
    """A tqdm bar over a batch of ``n`` > 1 items, shown only when stderr is a terminal; else None."""
    if n < 2 or quiet or not sys.stderr.isatty():
        yield None
        return
    from tqdm import tqdm

    with tqdm(total=n, unit="image", file=sys.stderr, dynamic_ncols=True, leave=False) as bar:
        yield bar


@contextmanager
def _signals_stop():
    """While a command runs, SIGTERM and SIGHUP raise :class:`_Stopped` as Ctrl-C raises
    KeyboardInterrupt, so the temp file being written is removed. Only where they would kill the
    process (default handler: not under nohup, not in a program with its own); restored after."""
    def stop(signum, frame):
        raise _Stopped(signum)

    main_thread = threading.current_thread() is threading.main_thread()  # signal.signal works only there
    ours = [s for s in (signal.SIGTERM, getattr(signal, "SIGHUP", None))  # no SIGHUP on Windows
            if s and main_thread and signal.getsignal(s) == signal.SIG_DFL]
    for s in ours:
        signal.signal(s, stop)
    try:
        yield
    finally:
        for s in ours:
            signal.signal(s, signal.SIG_DFL)


def _outputs(inputs: list[str], out: Optional[str], suffix: str, force: bool) -> list[tuple[str, str]]:
    """Pair each input with its output, and check them all before any work (no two inputs onto one
    output; none already there without --force). -o FILE (one input); -o DIR (an existing directory,
    or any -o ending in /): the input names with ``suffix`` inside it; -o -; default: the input name
    with ``suffix`` (stdin: stdout)."""
    if out == "":
        _exit("-o: empty path")
    into_dir = out not in (None, "-") and (out.endswith(("/", os.sep)) or Path(out).is_dir())
    if into_dir and not Path(out).is_dir():
        _exit(f"{out}: {'not a' if Path(out).exists() else 'no such'} directory")
    if len(inputs) > 1 and out is not None and not into_dir:
        _exit("with several inputs, -o must name an existing directory")
    if out is not None and not into_dir:
        pairs = [(inputs[0], out)]
    else:
        pairs = [(i, "-" if i == "-" and not into_dir else _named(i, out, suffix)) for i in inputs]
    seen = {}
    for src, dst in pairs:
        key = dst if dst == "-" else Path(dst).resolve()
        if key in seen:
            _exit(f"{dst}: both {seen[key]} and {src} would be written there")
        seen[key] = src
    for path in (Path(dst) for _, dst in pairs if dst != "-"):
        if not path.parent.is_dir():
            _exit(f"{path}: output directory {path.parent} does not exist", 1)
        if path.is_dir():
            _exit(f"{path}: is a directory", 1)
        if path.exists() and not force:
            _exit(f"{path}: already exists (use --force to overwrite)", 1)
    return pairs


def _per_file(n: int, quiet: bool, verbose: bool) -> bool:
    """Whether each file gets its summary line: one input (unless --quiet), or -v."""
    return not quiet and (n == 1 or verbose)


def _named(src: str, directory: Optional[str], suffix: str) -> str:
    """The default output for ``src``: its name with ``suffix``, beside it or in ``directory``."""
    try:
        path = Path("stdin" if src == "-" else src).with_suffix(suffix)
    except ValueError:  # "", ".", "/"
        _exit(f"{src!r}: not a file name")
    return str(path if directory is None else Path(directory) / path.name)


def _read_input(src: str):
    return sys.stdin.buffer.read() if src == "-" else src


_SIZE_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2, "kib": 1024, "mib": 1024**2}


def _parse_size(text: str) -> int | None:
    """'50000', '50k', '1.5M', '64KiB' → bytes; None when it is not a positive size."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-zA-Z]*)\s*", text)
    if not m or m.group(2).lower() not in _SIZE_UNITS:
        return None
    n = int(float(m.group(1)) * _SIZE_UNITS[m.group(2).lower()])
    return n if n > 0 else None


def _target_size(quality, target_size: str | None, target_bpp) -> int | None:
    """The byte budget of --target-size (None without one); exits on a bad size, or on more than
    one of -q, --target-size and --target-bpp."""
    if sum(v is not None for v in (quality, target_size, target_bpp)) > 1:
        _exit("give one of -q/--quality, --target-size and --target-bpp")
    if target_size is None:
        return None
    size = _parse_size(target_size)
    if size is None:
        _exit(f"--target-size must be a positive size like 50000, 50k, 1.5M or 64KiB, not {target_size!r}")
    return size


@app.command()
def encode(
    inputs: Annotated[list[str], typer.Argument(metavar="INPUT...", help="Images to encode (PNG, JPEG, WebP, TIFF, BMP, … or - for stdin).")],
    output: Annotated[Optional[str], typer.Option("-o", "--output", help="Output file, directory (several inputs) or - for stdout. Default: the input name with .aec.")] = None,
    quality: Annotated[Optional[float], typer.Option("-q", "--quality", min=0, max=100, help=QUALITY_HELP + " Default 75.")] = None,
    target_size: Annotated[Optional[str], typer.Option("--target-size", metavar="SIZE", help="Largest file allowed, e.g. 50000, 50k, 1.5M (k, M = 1000s; KiB, MiB = 1024s): the best quality that fits is searched (like cwebp -size). An error if even quality 0 does not fit.")] = None,
    target_bpp: Annotated[Optional[float], typer.Option("--target-bpp", metavar="BPP", help="Largest file allowed in bits per pixel (whole file, header included); the best quality that fits is searched.")] = None,
    effort: Annotated[int, typer.Option("-e", "--effort", min=1, max=9, help="Encoder effort 1-9 (like cjxl -e): higher searches longer for smaller files at the same quality (9: about 10 % smaller on Kodak, a minute per 0.4 MP image on 2 CPU cores); every effort decodes the same way. 1 (default) is fastest.")] = 1,
    force: Annotated[bool, typer.Option("--force", "-f", help="Overwrite existing outputs.")] = False,
    device: Annotated[str, typer.Option(help=DEVICE_HELP)] = "auto",
    model: Annotated[Optional[str], typer.Option(help="Model id or checkpoint path (default: the shipped model).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="Print nothing but errors.")] = False,
    verbose: Annotated[bool, typer.Option("-v", "--verbose", help=VERBOSE_HELP)] = False,
) -> None:
    """Encode images to .aec files.

    Quality runs from 0 (smallest file) to 100 (best image); 75 is the default, like cwebp. Or
    give a size budget (--target-size / --target-bpp): the best quality that fits is found.
    --effort trades encode time for smaller files.
    """
    from .codec import api, files

    size = _target_size(quality, target_size, target_bpp)
    try:
        api.check_target(size, target_bpp)  # before any input is read
    except api.CodecError as exc:
        _exit(f"--target-bpp: {exc}")

    def one(pair):
        src, dst = pair
        source = _read_input(src)
        if src == "-":
            import io
            source = io.BytesIO(source)
            source.name = "<stdin>"  # what messages call it
        data = api.encode(source, quality, target_size=size, target_bpp=target_bpp, effort=effort, model=model,
                          device=device, progress=not quiet and len(pairs) == 1)
        if dst == "-":
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
        else:
            files.write_atomic(dst, data, overwrite=force)
        if _per_file(len(pairs), quiet, verbose):
            i = api.info(data)
            _say(f"{src} -> {dst}: {i['width']}x{i['height']} {i['layout']}, {i['bytes']} bytes, "
                 f"{i['bpp']:.3f} bpp (q {i['quality']:g})")

    pairs = _outputs(inputs, output, ".aec", force)
    _run_all(pairs, one, quiet, "encoded", verbose)


@app.command()
def decode(
    inputs: Annotated[list[str], typer.Argument(metavar="INPUT...", help=".aec files to decode (or - for stdin).")],
    output: Annotated[Optional[str], typer.Option("-o", "--output", help="Output image (format from its extension: .png, .jpg, .webp, .tif, .bmp …), directory, or - for PNG on stdout. Default: the input name with .png.")] = None,
    force: Annotated[bool, typer.Option("--force", "-f", help="Overwrite existing outputs.")] = False,
    device: Annotated[str, typer.Option(help=DEVICE_HELP)] = "auto",
    quiet: Annotated[bool, typer.Option("--quiet", help="Print nothing but errors.")] = False,
    verbose: Annotated[bool, typer.Option("-v", "--verbose", help=VERBOSE_HELP)] = False,
) -> None:
    """Decode .aec files to images."""
    from .codec import api, files

    def one(pair):
        src, dst = pair
        data = sys.stdin.buffer.read() if src == "-" else files.read_file(src)
        img = api.decode(data, device=device)
        if dst == "-":
            import io
            buf = io.BytesIO()
            img.save(buf, format="PNG", compress_level=files.PNG_COMPRESS_LEVEL)  # as a file would be
            sys.stdout.buffer.write(buf.getvalue())
            sys.stdout.buffer.flush()
        else:
            files.save_image(img, dst, overwrite=force)
        if _per_file(len(pairs), quiet, verbose):
            _say(f"{src} -> {dst}: {img.width}x{img.height} {img.mode}")

    pairs = _outputs(inputs, output, ".png", force)
    _run_all(pairs, one, quiet, "decoded", verbose)


@app.command()
def info(
    files: Annotated[list[str], typer.Argument(metavar="FILE...", help=".aec files.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show the header of .aec files: model id, weights hash, size, quality, bpp."""
    from .codec import api
    from .codec.files import read_file

    def one(src):
        i = api.info(read_file(src))
        if as_json:
            typer.echo(json.dumps({"file": src, **i}))
        else:
            typer.echo(f"{src}: aecodec v{i['format_version']}, model {i['model_id']}@{i['weights_hash']}, "
                       f"{i['width']}x{i['height']} {i['layout']}, quality {i['quality']:g}, "
                       f"{i['bytes']} bytes, {i['bpp']:.4f} bpp")

    _run_all(files, one, quiet=False)


@app.command()
def inspect(
    source: Annotated[str, typer.Argument(metavar="IMAGE_OR_AEC", help="An image (encoded at -q) or an .aec file (measured as it is).")],
    output: Annotated[str, typer.Option("-o", "--output", help="Report PNG to write: original, reconstruction, rate map, error map.")],
    quality: Annotated[Optional[float], typer.Option("-q", "--quality", min=0, max=100, help=QUALITY_HELP + " Default 75; an .aec file keeps its own.")] = None,
    json_out: Annotated[Optional[str], typer.Option("--json", metavar="FILE", help="Also write the numbers as JSON: totals, a 4×4 grid of regions, rate sums vs the file.")] = None,
    force: Annotated[bool, typer.Option("--force", "-f", help="Overwrite existing outputs.")] = False,
    device: Annotated[str, typer.Option(help=DEVICE_HELP)] = "auto",
    model: Annotated[Optional[str], typer.Option(help="Model id or checkpoint path (default: the shipped model).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="Print nothing but errors.")] = False,
) -> None:
    """See where the bits go: a rate map (bits per pixel, from the coder's own tables) and an
    error map of one image, with bpp, PSNR and SSIM."""
    from .errors import CodecError
    from .codec.files import write_atomic
    from .inspection import inspect as run
    from .reports import render_report

    def one(src):
        targets = [output] + ([json_out] if json_out else [])
        for path in targets:  # before the work, not after it
            if Path(path).exists() and not force:
                raise CodecError(f"{path}: already exists (use --force to overwrite)")
        r = run(src, quality, model=model, device=device)
        write_atomic(output, render_report(r), overwrite=force)
        if json_out:
            write_atomic(json_out, (json.dumps(r.to_dict(), indent=2) + "\n").encode(), overwrite=force)
        if not quiet:
            psnr = "" if r.psnr is None else f", PSNR {r.psnr:.2f} dB, SSIM {r.ssim or float('nan'):.4f}"
            typer.echo(f"{src} -> {', '.join(targets)}: {r.width}x{r.height}, q {r.quality:g}, "
                       f"{r.bpp:.3f} bpp{psnr}", err=True)

    _run_all([source], one, quiet)


@app.command()
def rank(
    folder: Annotated[str, typer.Argument(metavar="DIR", help="Folder of images (not searched recursively).")],
    output: Annotated[str, typer.Option("-o", "--output", help="Folder for rank.csv, rank.json and contact.png (created if missing).")],
    quality: Annotated[float, typer.Option("-q", "--quality", min=0, max=100, help=QUALITY_HELP)] = 75.0,
    top: Annotated[int, typer.Option("--top", min=1, help="How many of the most expensive images the contact sheet shows.")] = 10,
    force: Annotated[bool, typer.Option("--force", "-f", help="Overwrite existing outputs.")] = False,
    device: Annotated[str, typer.Option(help=DEVICE_HELP)] = "auto",
    model: Annotated[Optional[str], typer.Option(help="Model id or checkpoint path (default: the shipped model).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="Print nothing but errors.")] = False,
) -> None:
    """Rank images by the bits per pixel they cost at one quality, most unusual first.

    A model trained on normal photos spends many bits where an image is unlike them, so the top
    of the list is where to look for anomalies. Writes rank.csv, rank.json and contact.png.
    """
    from .errors import CodecError
    from .codec.files import write_atomic
    from .ranking import rank as run
    from .reports import render_contact_sheet

    def one(src):
        out = Path(output)
        if out.exists() and not out.is_dir():
            raise CodecError(f"{out}: not a directory")
        targets = [out / name for name in ("rank.csv", "rank.json", "contact.png")]
        for path in targets:
            if path.exists() and not force:
                raise CodecError(f"{path}: already exists (use --force to overwrite)")
        ranking = run(src, quality, top=top, model=model, device=device)
        out.mkdir(parents=True, exist_ok=True)
        write_atomic(targets[0], ranking.to_csv().encode(), overwrite=force)
        write_atomic(targets[1], (json.dumps(ranking.to_dict(), indent=2) + "\n").encode(), overwrite=force)
        write_atomic(targets[2], render_contact_sheet(ranking), overwrite=force)
        if not quiet:
            for row in ranking.rows[:top]:
                typer.echo(f"{row['rank']:4d}  {row['bpp']:.4f} bpp  {row['file']}", err=True)
            typer.echo(f"{len(ranking.rows)} images ranked -> {out}", err=True)

    _run_all([folder], one, quiet)


@app.command()
def train(
    data: Annotated[list[Path], typer.Argument(help="Folders of training photos (searched recursively).")],
    out: Annotated[Path, typer.Option("-o", "--out", help="Resumable checkpoint to write.")],
    resume: Annotated[Optional[Path], typer.Option(help="Resumable checkpoint to continue from.")] = None,
    steps: Annotated[int, typer.Option(help="Length of the LR schedule in global steps.")] = 100_000,
    max_minutes: Annotated[Optional[float], typer.Option(help="Stop this chunk after so many minutes.")] = None,
    batch_size: Annotated[int, typer.Option(help="Crops per step (per process under torchrun).")] = 8,
    crop: Annotated[int, typer.Option(help="Crop side in pixels (a multiple of 64; at least 192 for ms-ssim).")] = 256,
    lr: Annotated[float, typer.Option(help="Peak learning rate.")] = 1e-4,
    warmup: Annotated[int, typer.Option(help="Linear warm-up steps.")] = 500,
    distortion: Annotated[str, typer.Option(help="mse or ms-ssim.")] = "mse",
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    init_from: Annotated[Optional[Path], typer.Option(help="Start from the weights of this checkpoint (exported or resumable) with fresh optimisers; the global step comes from its training record.")] = None,
    init_warmup: Annotated[int, typer.Option(help="Steps of LR ramp after --init-from.")] = 200,
    amp: Annotated[str, typer.Option(help="none, or bf16: g_a/h_a/g_s under bf16 autocast (entropy models and h_s stay float32).")] = "none",
    channels_last: Annotated[bool, typer.Option("--channels-last", help="Channels-last memory format (GPU).")] = False,
    compile: Annotated[bool, typer.Option("--compile", help="torch.compile the model's forward pass.")] = False,
    data_on_device: Annotated[Optional[bool], typer.Option("--data-on-device/--data-on-host", help="Keep the photos (uint8) on the training device. Default: on the GPU when training on CUDA.")] = None,
    eval_dir: Annotated[Optional[Path], typer.Option(help="Evaluate on these images (e.g. Kodak) with real bitstreams: at the start of a continued chunk, every --eval-every steps and at the end.")] = None,
    eval_every: Annotated[int, typer.Option(help="Steps between evaluations (0: start and end of the chunk only).")] = 0,
    eval_images: Annotated[int, typer.Option(help="How many images of --eval-dir to code.")] = 24,
    log_every: Annotated[int, typer.Option(help="Steps between log lines.")] = 50,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar (the log lines stay).")] = False,
    threads: Annotated[Optional[int], typer.Option(min=1, help="CPU threads for torch (default: torch's choice). On a busy machine 1 can be several times faster than 2.")] = None,
    lambdas: Annotated[Optional[str], typer.Option(metavar="L1,L2,…", help="A new run's rate–distortion trade-offs, low rate to high, comma-separated (one value: a single-rate model). Default: 8 levels 0.0018 … 0.18.")] = None,
    model_id: Annotated[str, typer.Option(help="A new run's model id (kebab-case); files name it. Continued runs keep theirs.")] = DEFAULT_MODEL_ID,
    level_bias: Annotated[float, typer.Option(help="How often each gain level is trained: ∝ 1 + bias·level/(L−1); 0 uniform, 2 trains the highest quality 3× as often as the lowest.")] = 0.0,
    aux_transform: Annotated[bool, typer.Option("--aux-transform", help="Add AuxT, a zero-initialised linear Haar shortcut beside g_a and g_s (a new run, or --init-from weights without one).")] = False,
    n_channels: Annotated[int, typer.Option("--N", hidden=True, help="Channels of g_a/g_s (new runs).")] = 128,
    m_channels: Annotated[int, typer.Option("--M", hidden=True, help="Latent channels (new runs).")] = 192,
) -> None:
    """Train (or continue training) a variable-rate model on folders of photos.

    Ctrl-C (or SIGTERM) stops after the current step and saves the checkpoint; --resume continues it.

    Several processes (DistributedDataParallel): torchrun --nproc_per_node N -m aecodec train …
    """
    from .models.checkpoint import CheckpointError
    from .train import TrainError, TrainOptions, train as run

    try:
        lams = None
        if lambdas is not None:
            try:
                lams = tuple(float(v) for v in lambdas.split(","))
            except ValueError:
                raise TrainError(f"--lambdas must be comma-separated numbers, got {lambdas!r}") from None
        run(TrainOptions(data=data, out=out, resume=resume, lambdas=lams, model_id=model_id, steps=steps, max_minutes=max_minutes,
                         batch_size=batch_size, crop=crop, lr=lr, warmup=warmup, distortion=distortion,
                         device=device, seed=seed, init_from=init_from, init_warmup=init_warmup, amp=amp,
                         channels_last=channels_last, compile=compile, data_on_device=data_on_device,
                         eval_dir=eval_dir, eval_every=eval_every, eval_images=eval_images,
                         log_every=log_every, progress=False if quiet else None,
                         threads=threads, level_bias=level_bias, aux_transform=aux_transform,
                         N=n_channels, M=m_channels))
    except (TrainError, CheckpointError, FileNotFoundError) as exc:
        _exit(str(exc))


@app.command()
def export(
    checkpoint: Annotated[Path, typer.Argument(help="Resumable training checkpoint.")],
    out: Annotated[Path, typer.Option("-o", "--out", help="Shippable weights file to write.")],
    storage: Annotated[str, typer.Option(
        "--storage", help="mixed: float16 convolutions, float32 GDN and entropy models (half the size); "
                          "or fp32.")] = "mixed",
) -> None:
    """Strip training state and compute the entropy coder's CDF tables once."""
    from .models.checkpoint import STORAGES, CheckpointError
    from .train import export as run

    if storage not in STORAGES:
        _exit(f"--storage must be one of {', '.join(STORAGES)}, not {storage!r}")
    try:
        run(checkpoint, out, storage=storage)
    except FileNotFoundError:
        _exit(f"{checkpoint}: no such file")
    except (CheckpointError, OSError) as exc:
        _exit(str(exc))


# ----------------------------------------------------------------------------- batch (Ray)
# (aecodec.batch is imported by these commands only: a single-image command does not pay for it.)
batch_app = typer.Typer(no_args_is_help=True, help=(
    "Many images at once, spread over this machine's cores or a Ray cluster (needs Ray: "
    "pip install 'aecodec[cluster]'). Outputs mirror the input folder; manifest.jsonl records each "
    "image; a rerun skips outputs that are there and verify."))
app.add_typer(batch_app, name="batch")

Address = Annotated[Optional[str], typer.Option(
    help="Join this running Ray cluster (auto, ray://HOST:10001, …) instead of starting Ray on this machine. "
         "The inputs and outputs must be paths every node sees (a shared filesystem).")]
Workers = Annotated[Optional[int], typer.Option(
    help="Worker processes, each with the model loaded once. Default: one per GPU, else one per CPU core.")]
CpusPerWorker = Annotated[Optional[int], typer.Option(
    help="CPU cores (= torch threads) each worker reserves. Default 1, or the cores shared out with --workers.")]
GpusPerWorker = Annotated[Optional[float], typer.Option(
    help="GPUs each worker reserves (0: CPU only). Default: 1 when the cluster has GPUs, else 0.")]
Manifest = Annotated[Optional[str], typer.Option(
    help="Where to write the manifest (JSON lines, one per image). Default: DST/manifest.jsonl.")]
BatchForce = Annotated[bool, typer.Option("--force", "-f", help="Redo outputs that are already there and verify "
                                                                 "(default: skip them).")]
Quiet = Annotated[bool, typer.Option("--quiet", help="Print nothing but errors.")]
BatchVerbose = Annotated[bool, typer.Option("-v", "--verbose", help="One line per image.")]


def _batch(job: dict, src: str, dst: str, *, address, workers, cpus_per_worker, gpus_per_worker, manifest,
           quiet: bool, verbose: bool) -> None:
    """Run a batch job with a progress bar, one line per failure (and per image with -v), a summary."""
    global _BAR
    from .batch import Job, run_job
    from .errors import CodecError, one_line

    try:
        job = Job(**job)
    except CodecError as exc:
        _exit(str(exc))

    with ExitStack() as bars:
        def started(n: int, pool: str) -> None:
            global _BAR
            if not quiet:
                _say(f"{n} images, {pool}")
            _BAR = bars.enter_context(_batch_bar(n, quiet))

        def finished(row: dict) -> None:
            if row["status"] == "failed":
                _err(row["error"])
            elif verbose and not quiet:
                size = f", {row['bytes']} bytes, {row['bpp']:.3f} bpp" if row.get("bytes") else ""
                _say(f"{row['input']} -> {row['output'] or '-'}: {row['status']}{size}, {row['seconds']:.2f} s")
            if _BAR is not None:
                _BAR.update()

        try:
            with _signals_stop():
                summary = run_job(job, src, dst, manifest=manifest, on_row=finished, on_start=started,
                                  address=address, workers=workers, cpus_per_worker=cpus_per_worker,
                                  gpus_per_worker=gpus_per_worker)
        except CodecError as exc:  # a job that cannot start: no Ray, bad folders, a pool the cluster cannot hold
            _exit(str(exc))
        except KeyboardInterrupt as exc:
            what, code = _stopped(exc)
            _exit(f"{what}; what was done is in the manifest's .partial file, and a rerun resumes", code)
        except OSError as exc:
            _exit(_os_error(exc), 1)
        except Exception as exc:  # the engine's (cannot reach the cluster, a worker that keeps dying, …)
            _exit(f"batch job failed: {type(exc).__name__}: {one_line(exc)}", 1)
        finally:
            _BAR = None  # the error lines above were written above the bar; the stack closes it
    if not quiet:
        _say(summary.line())
        _say(f"manifest: {summary.manifest}")
    if summary.failed:
        raise typer.Exit(1)


@batch_app.command("encode")
def batch_encode(
    src: Annotated[str, typer.Argument(metavar="SRC", help="Folder of images (searched recursively), or one image.")],
    dst: Annotated[str, typer.Argument(metavar="DST", help="Folder for the .aec files (created): the inputs' relative paths, suffix .aec.")],
    quality: Annotated[Optional[float], typer.Option("-q", "--quality", min=0, max=100, help=QUALITY_HELP + " Default 75.")] = None,
    target_size: Annotated[Optional[str], typer.Option("--target-size", metavar="SIZE", help="Largest file allowed per image, e.g. 50k (see aecodec encode --help).")] = None,
    target_bpp: Annotated[Optional[float], typer.Option("--target-bpp", metavar="BPP", help="Largest file allowed per image in bits per pixel.")] = None,
    effort: Annotated[int, typer.Option("-e", "--effort", min=1, max=9, help="Encoder effort 1-9, as for aecodec encode.")] = 1,
    model: Annotated[Optional[str], typer.Option(help="Model id or checkpoint path (default: the shipped model).")] = None,
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
    size = _target_size(quality, target_size, target_bpp)
    _batch(dict(kind="encode", quality=quality, target_size=size, target_bpp=target_bpp, effort=effort, model=model,
                force=force), src, dst, address=address, workers=workers, cpus_per_worker=cpus_per_worker,
           gpus_per_worker=gpus_per_worker, manifest=manifest, quiet=quiet, verbose=verbose)


@batch_app.command("decode")
def batch_decode(
    src: Annotated[str, typer.Argument(metavar="SRC", help="Folder of .aec files (searched recursively), or one file.")],
    dst: Annotated[str, typer.Argument(metavar="DST", help="Folder for the images (created): the inputs' relative paths.")],
    image_format: Annotated[str, typer.Option("--format", help="Output format by extension: png, webp, tif, bmp, jpg, …")] = "png",
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
    _batch(dict(kind="decode", image_format=image_format, force=force), src, dst, address=address, workers=workers,
           cpus_per_worker=cpus_per_worker, gpus_per_worker=gpus_per_worker, manifest=manifest, quiet=quiet,
           verbose=verbose)


@batch_app.command("rd")
def batch_rd(
    src: Annotated[str, typer.Argument(metavar="SRC", help="Folder of images (searched recursively), or one image.")],
    output: Annotated[str, typer.Option("-o", "--output", help="Folder for manifest.jsonl (per image and quality), rd.json (the mean curve) and rd.png.")] = "aecodec-rd",
    qualities: Annotated[Optional[str], typer.Option("--qualities", metavar="Q1,Q2,…", help="Qualities to code each image at. Default: the Kodak benchmark's (0,15,30,45,60,75,90,100).")] = None,
    effort: Annotated[int, typer.Option("-e", "--effort", min=1, max=9, help="Encoder effort 1-9.")] = 1,
    model: Annotated[Optional[str], typer.Option(help="Model id or checkpoint path (default: the shipped model).")] = None,
    force: Annotated[bool, typer.Option("--force", "-f", help="Measure every image again (default: keep the rows of an earlier run that still hold).")] = False,
    address: Address = None,
    workers: Workers = None,
    cpus_per_worker: CpusPerWorker = None,
    gpus_per_worker: GpusPerWorker = None,
    quiet: Quiet = False,
    verbose: BatchVerbose = False,
) -> None:
    """Rate–distortion of a folder at scale: each image coded at each quality (bpp from the real
    file, PSNR, MS-SSIM), and the mean curve (rd.json, rd.png)."""
    from .batch.work import RD_QUALITIES

    try:
        qs = RD_QUALITIES if qualities is None else tuple(float(q) for q in qualities.split(","))
    except ValueError:
        _exit(f"--qualities must be comma-separated numbers, got {qualities!r}")
    _batch(dict(kind="rd", qualities=qs, effort=effort, model=model, force=force), src, output, address=address,
           workers=workers, cpus_per_worker=cpus_per_worker, gpus_per_worker=gpus_per_worker, manifest=None,
           quiet=quiet, verbose=verbose)

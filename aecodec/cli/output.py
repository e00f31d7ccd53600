"""How the commands talk and what they promise, apart from what they do.

- Messages: one line each on stderr (``aecodec: error: …``, ``aecodec: warning: …``), written above
  the progress bar while one is shown, so that the bar is never torn.
- Errors: a library error, a failed read or write, running out of memory become one line that
  names the file (:func:`guard`); a batch of items goes on past a failed one and exits 1
  (:func:`for_each`); Ctrl-C, SIGTERM and SIGHUP stop a command with exit 128 + the signal number.
- Outputs: every output is named and checked before any work starts (:func:`check_outputs`, the
  one output policy of every command that writes), so that a mistake costs nothing, leaves nothing
  and never replaces an input.

Standard library and Typer only: loaded by every command, ``info`` and ``--version`` included.
"""

from __future__ import annotations

import os
import re
import signal
import sys
import threading
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, NoReturn, Optional

import typer

from ..errors import AecodecError, one_line

_bar = None  # the progress bar while one is shown: messages are written above it


def say(line: str) -> None:
    """One line on stderr, above the progress bar if one is shown."""
    if _bar is not None:
        _bar.write(line, file=sys.stderr)
    else:
        typer.echo(line, err=True)


def error(msg: str) -> None:
    say(f"aecodec: error: {msg}")


def fail(msg: str, code: int = 2) -> NoReturn:
    """One error line, then end the command with ``code`` (2: what was asked cannot be done)."""
    error(msg)
    raise typer.Exit(code)


def show_bar(bar) -> None:
    """Make ``bar`` (a tqdm bar, or None) the one :func:`say` writes above and :func:`tick` advances."""
    global _bar
    _bar = bar


def tick() -> None:
    """One more item done on the progress bar, if one is shown."""
    if _bar is not None:
        _bar.update()


# ----------------------------------------------------------------------------- errors and signals
class ItemFailed(Exception):
    """One item of a command failed; its error line is already written."""


class Stopped(KeyboardInterrupt):
    """SIGTERM or SIGHUP (``args[0]``), raised where the command is, so that it stops as on Ctrl-C."""


@contextmanager
def guard(quiet: bool, src: str):
    """One item's errors as one line each, then :class:`ItemFailed`: aecodec's own
    (:class:`~aecodec.errors.AecodecError`), a failed read or write, running out of memory, and
    torch's RuntimeError (e.g. "DefaultCPUAllocator: can't allocate memory: …"). aecodec's
    warnings are shown as one line each (not with ``quiet``). An error that is no input's fault
    (``whole_command``: a missing extra, e.g. PyTorch for a format-1 file) goes through: the
    command stops with one line, exit 2."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield
        except AecodecError as exc:
            if getattr(exc, "whole_command", False):
                raise
            error(str(exc))
            raise ItemFailed from None
        except OSError as exc:
            error(os_error_line(exc))
            raise ItemFailed from None
        except MemoryError:
            error(f"{src}: not enough memory")
            raise ItemFailed from None
        except RuntimeError as exc:
            error(f"{src}: {one_line(exc)}")
            raise ItemFailed from None
        finally:
            if not quiet:
                for w in caught:
                    line = warning_line(w, src)
                    if line:
                        say(f"aecodec: warning: {line}")


_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # aecodec/, wherever it is installed


def warning_line(w: warnings.WarningMessage, src: str) -> Optional[str]:
    """What the user sees of a warning raised while ``src`` was worked on, or None: aecodec's own
    (UserWarning, already naming the file), and Pillow's about the image (a UserWarning or a
    DecompressionBombWarning), prefixed with ``src``. Decided by the module that raised it, not by
    the words in the path it is installed under; other libraries' warnings are not the user's."""
    where = os.path.abspath(w.filename or "")
    if issubclass(w.category, UserWarning) and where.startswith(_PACKAGE + os.sep):
        return str(w.message)
    pil = sys.modules.get("PIL")
    pil_dir = os.path.dirname(os.path.abspath(pil.__file__)) if pil is not None and pil.__file__ else None
    if (pil_dir and where.startswith(pil_dir + os.sep) and issubclass(w.category, (UserWarning, RuntimeWarning))):
        return f"{src}: {w.message}"
    return None


def for_each(items, fn: Callable, quiet: bool, done: str = "", verbose: bool = False) -> None:
    """``fn`` on each item (a source, or a (source, output) pair), one error line for each that fails
    (exit 1); Ctrl-C, SIGTERM and SIGHUP stop it with exit 128 + the signal number. Several items
    show a progress bar on a terminal (stderr; not with ``quiet``) and, unless ``verbose`` (each
    printed its own line) or ``quiet``, end with one line: how many were ``done``."""
    items = list(items)
    failed = 0
    try:
        with signals_stop(), progress_bar(len(items), quiet) as bar:
            show_bar(bar)
            for item in items:
                try:
                    with guard(quiet, item[0] if isinstance(item, tuple) else item):
                        fn(item)
                except ItemFailed:
                    failed += 1
                tick()
    except KeyboardInterrupt as exc:
        show_bar(None)
        fail(*stop_reason(exc))
    finally:
        show_bar(None)
    if done and len(items) > 1 and not quiet and not verbose:
        say(f"{len(items) - failed} of {len(items)} images {done}" + (f", {failed} failed" if failed else ""))
    if failed:
        raise typer.Exit(1)


def os_error_line(exc: OSError) -> str:
    """An OSError in one line: the file it names, then the system's words."""
    return f"{exc.filename or ''}{': ' if exc.filename else ''}{exc.strerror or exc}"


def stop_reason(exc: KeyboardInterrupt) -> tuple[str, int]:
    """What stopped a command (Ctrl-C, or SIGTERM / SIGHUP as :class:`Stopped`) and its exit status."""
    signum = exc.args[0] if isinstance(exc, Stopped) else signal.SIGINT
    return ("interrupted" if signum == signal.SIGINT else f"terminated by {signal.Signals(signum).name}",
            128 + signum)


@contextmanager
def progress_bar(n: int, quiet: bool, unit: str = "image"):
    """A tqdm bar over a batch of ``n`` > 1 items, shown only when stderr is a terminal; else None."""
    if n < 2 or quiet or not sys.stderr.isatty():
        yield None
        return
    from tqdm import tqdm

    with tqdm(total=n, unit=unit, file=sys.stderr, dynamic_ncols=True, leave=False) as bar:
        yield bar


@contextmanager
def shown_progress_bar(n: int, quiet: bool, unit: str = "image"):
    """:func:`progress_bar`, made the bar :func:`say` writes above and :func:`tick` advances while
    the block runs (for the steps inside one item); the bar shown before comes back after."""
    previous = _bar
    with progress_bar(n, quiet, unit) as bar:
        show_bar(bar)
        try:
            yield bar
        finally:
            show_bar(previous)


def item_started(describe: bool = False) -> Callable[[str], None]:
    """A progress callback for work that names each item as it starts it (a file, a step): every call
    after the first ticks the bar shown (the item before is done), and with ``describe`` the bar
    says what is being done."""
    started = []

    def start(what: str) -> None:
        if started:
            tick()
        started.append(what)
        if describe and _bar is not None:
            _bar.set_description_str(what)

    return start


@contextmanager
def signals_stop():
    """While a command runs, SIGTERM and SIGHUP raise :class:`Stopped` as Ctrl-C raises
    KeyboardInterrupt, so the temp file being written is removed. Only where they would kill the
    process (default handler: not under nohup, not in a program with its own); restored after."""
    def stop(signum, frame):
        raise Stopped(signum)

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


# ----------------------------------------------------------------------------- inputs and outputs
def pair_outputs(inputs: list[str], out: Optional[str], suffix: str, force: bool,
                 check: Optional[Callable[[str], None]] = None) -> list[tuple[str, str]]:
    """Pair each input with its output and check them all by :func:`check_outputs`, and by ``check``
    (an output file name → an :class:`~aecodec.errors.AecodecError` if it cannot be written, e.g. an
    image format without a writer: exit 2). -o FILE (one input); -o DIR (an existing directory, or
    any -o ending in /): the input names with ``suffix`` inside it; -o -; default: the input name
    with ``suffix`` (stdin: stdout)."""
    if out == "":
        fail("-o: empty path")
    into_dir = out not in (None, "-") and (out.endswith(("/", os.sep)) or _is_dir(out))
    if into_dir and not _is_dir(out):
        fail(f"{out}: {'not a' if os.path.lexists(out) else 'no such'} directory")
    if len(inputs) > 1 and out is not None and not into_dir:
        fail("with several inputs, -o must name an existing directory")
    if out is not None and not into_dir:
        pairs = [(inputs[0], out)]
    else:
        pairs = [(i, "-" if i == "-" and not into_dir else default_output(i, out, suffix)) for i in inputs]
    for _, dst in pairs:
        if check is not None and dst != "-":
            try:
                check(dst)
            except AecodecError as exc:
                fail(str(exc))
    check_outputs([dst for _, dst in pairs], inputs, force, sources=[src for src, _ in pairs])
    return pairs


def check_outputs(outputs: list, inputs: list, force: bool, *, sources: Optional[list] = None) -> None:
    """The output policy of every command that writes, applied before any work, so that a mistake
    costs nothing and no user's file is lost (exit 2: what was asked is impossible; 1: the file
    system refuses it):

    - an output that is, or resolves to (a link, ``..``, a hard link), one of ``inputs`` is refused
      even with --force: writing it would destroy the input (2);
    - two outputs that are one file are refused (2); ``sources`` (one per output) name who collides;
    - each output must be writable (:func:`aecodec.codec.files.check_output`): its folder exists, is
      a folder and takes a new file, its name leaves room for the temp file's, it is not a
      directory, and anything already there — a dangling link too — needs --force (1);
    - ``-`` (standard output) must be open (1).
    """
    from ..codec.files import check_output, file_identity, same_file

    inputs = [str(i) for i in inputs if str(i) != "-"]
    seen: dict = {}
    for n, dst in enumerate(map(str, outputs)):
        if dst == "-":
            if not stdout_open():
                fail("-o -: standard output is closed", 1)
            continue
        for src in inputs:
            if same_file(dst, src):
                fail(f"{dst}: is {'also ' if dst != src else ''}an input{f' ({src})' if dst != src else ''}; "
                     "writing it would destroy it (choose another output)")
        key = file_identity(dst)
        if key in seen:
            fail(f"{dst}: both {seen[key][1]} and {sources[n]} would be written there" if sources
                 else f"{dst}: named for two outputs")
        seen[key] = (dst, sources[n] if sources else dst)
    for dst in map(str, outputs):
        if dst != "-":
            try:
                check_output(dst, overwrite=force)
            except AecodecError as exc:
                fail(str(exc), 1)


def _is_dir(path: str) -> bool:
    """Whether ``path`` is a directory; False for a name the system refuses (too long, a loop)."""
    try:
        return Path(path).is_dir()
    except OSError:
        return False


def stdout_open() -> bool:
    """Whether standard output can be written (a command started with ``>&-`` has none)."""
    if sys.stdout is None:  # Python's stdout when the process started without file descriptor 1
        return False
    try:
        fd = sys.stdout.fileno()
    except (OSError, ValueError, AttributeError):  # an in-process stream (a test's), not a descriptor
        return not getattr(sys.stdout, "closed", False)
    try:
        os.fstat(fd)
        return True
    except OSError:
        return False


def write_stdout(data: bytes) -> None:
    """``data`` on standard output; a closed or broken one is an error that says so."""
    try:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    except (OSError, ValueError, AttributeError) as exc:
        raise AecodecError(f"standard output: {getattr(exc, 'strerror', None) or 'closed'}") from None


def per_file(n: int, quiet: bool, verbose: bool) -> bool:
    """Whether each file gets its summary line: one input (unless --quiet), or -v."""
    return not quiet and (n == 1 or verbose)


def default_output(src: str, directory: Optional[str], suffix: str) -> str:
    """The default output for ``src``: its name with ``suffix``, beside it or in ``directory``."""
    try:
        path = Path("stdin" if src == "-" else src).with_suffix(suffix)
    except ValueError:  # "", ".", "/"
        fail(f"{src!r}: not a file name")
    return str(path if directory is None else Path(directory) / path.name)


def read_input(src: str):
    """The bytes of stdin for ``-``, else the path itself (the library reads it)."""
    return sys.stdin.buffer.read() if src == "-" else src


# ----------------------------------------------------------------------------- sizes
_SIZE_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2, "kib": 1024, "mib": 1024**2}


def parse_size(text: str) -> int | None:
    """'50000', '50k', '1.5M', '64KiB' → bytes; None when it is not a positive size."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-zA-Z]*)\s*", text)
    if not m or m.group(2).lower() not in _SIZE_UNITS:
        return None
    n = int(float(m.group(1)) * _SIZE_UNITS[m.group(2).lower()])
    return n if n > 0 else None


def check_quality(quality) -> None:
    """-q before any work: a number from 0 to 100 (NaN is not one), else exit 2 like any bad option."""
    if quality is None:
        return
    from ..codec.api import check_quality as check

    try:
        check(quality)
    except AecodecError as exc:
        fail(f"-q/--quality: {exc}")


def pixel_cap(text: Optional[str]) -> int:
    """--max-pixels: the decoder's pixel cap (default :data:`~aecodec.codec.format.DEFAULT_MAX_PIXELS`),
    at most the largest image aecodec encodes; exit 2 on anything else."""
    from ..codec import format as fmt

    if text is None:
        return fmt.DEFAULT_MAX_PIXELS
    cap = parse_size(text)
    if cap is None or cap > fmt.MAX_ENCODE_PIXELS:
        fail(f"--max-pixels must be a number of pixels from 1 to {fmt.MAX_ENCODE_PIXELS} (the largest image "
             f"aecodec encodes), like 100000000 or 100M, not {text!r}")
    return cap


def size_budget(quality, target_size: str | None, target_bpp) -> int | None:
    """The byte budget of --target-size (None without one); exits on a bad size, or on more than
    one of -q, --target-size and --target-bpp."""
    if sum(v is not None for v in (quality, target_size, target_bpp)) > 1:
        fail("give one of -q/--quality, --target-size and --target-bpp")
    if target_size is None:
        return None
    size = parse_size(target_size)
    if size is None:
        fail(f"--target-size must be a positive size like 50000, 50k, 1.5M or 64KiB, not {target_size!r}")
    return size

"""How the commands talk and what they promise, apart from what they do.

- Messages: one line each on stderr (``aecodec: error: …``, ``aecodec: warning: …``), written above
  the progress bar while one is shown, so that the bar is never torn.
- Errors: a library error, a failed read or write, running out of memory become one line that
  names the file (:func:`guard`); a batch of items goes on past a failed one and exits 1
  (:func:`for_each`); Ctrl-C, SIGTERM and SIGHUP stop a command with exit 128 + the signal number.
- Outputs: every output is named and checked before any work starts (:func:`pair_outputs`), so
  that a mistake costs nothing and leaves nothing.

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
    warnings are shown as one line each (not with ``quiet``)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield
        except AecodecError as exc:
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
                    if issubclass(w.category, UserWarning) and "aecodec" in (w.filename or ""):
                        say(f"aecodec: warning: {w.message}")


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
def progress_bar(n: int, quiet: bool):
    """A tqdm bar over a batch of ``n`` > 1 items, shown only when stderr is a terminal; else None."""
    if n < 2 or quiet or not sys.stderr.isatty():
        yield None
        return
    from tqdm import tqdm

    with tqdm(total=n, unit="image", file=sys.stderr, dynamic_ncols=True, leave=False) as bar:
        yield bar


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
def pair_outputs(inputs: list[str], out: Optional[str], suffix: str, force: bool) -> list[tuple[str, str]]:
    """Pair each input with its output, and check them all before any work (no two inputs onto one
    output; none already there without --force). -o FILE (one input); -o DIR (an existing directory,
    or any -o ending in /): the input names with ``suffix`` inside it; -o -; default: the input name
    with ``suffix`` (stdin: stdout)."""
    if out == "":
        fail("-o: empty path")
    into_dir = out not in (None, "-") and (out.endswith(("/", os.sep)) or Path(out).is_dir())
    if into_dir and not Path(out).is_dir():
        fail(f"{out}: {'not a' if Path(out).exists() else 'no such'} directory")
    if len(inputs) > 1 and out is not None and not into_dir:
        fail("with several inputs, -o must name an existing directory")
    if out is not None and not into_dir:
        pairs = [(inputs[0], out)]
    else:
        pairs = [(i, "-" if i == "-" and not into_dir else default_output(i, out, suffix)) for i in inputs]
    seen = {}
    for src, dst in pairs:
        key = dst if dst == "-" else Path(dst).resolve()
        if key in seen:
            fail(f"{dst}: both {seen[key]} and {src} would be written there")
        seen[key] = src
    for path in (Path(dst) for _, dst in pairs if dst != "-"):
        if not path.parent.is_dir():
            fail(f"{path}: output directory {path.parent} does not exist", 1)
        if path.is_dir():
            fail(f"{path}: is a directory", 1)
        if path.exists() and not force:
            fail(f"{path}: already exists (use --force to overwrite)", 1)
    return pairs


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

"""The ``aecodec`` command line: thin Typer commands over the library.

Errors are one line on stderr (``aecodec: error: …``) and a non-zero exit, usage errors included
(:func:`main`, the console script); outputs are checked before any work and written atomically, so
a failed or interrupted (Ctrl-C, SIGTERM, SIGHUP) command leaves no partial file.

The modules: :mod:`.coding` (encode, decode, info), :mod:`.compare` (compare), :mod:`.analysis` (inspect, rank),
:mod:`.training` (train, export), :mod:`.batch` (the ``batch`` group), each command a list of
option declarations with their help text (what ``--help`` shows) and a call into the library;
:mod:`.output` (messages, errors, signals, the progress bar, naming and checking outputs) and
:mod:`.options` (the help texts several commands share). Each command imports the library it
needs when it runs, so that ``info`` and ``--version`` do not load torch, and a single-image
command loads neither Ray nor the training code.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated, NoReturn, Optional

import typer
from typer.core import TyperGroup

from ..errors import AecodecError
from .analysis import inspect, rank
from .batch import batch_app
from .coding import decode, encode, info, upgrade
from .compare import compare
from .output import error, fail
from .training import export, train

try:  # typer vendors click since 0.2x
    from typer._click.exceptions import ClickException
except ImportError:
    from click.exceptions import ClickException

__all__ = ["app", "main", "run"]


class _Commands(TyperGroup):
    """The top-level group: an :class:`~aecodec.errors.AecodecError` that a command lets through
    (an option the library refuses, a checkpoint that cannot be used, a batch job that cannot
    start) is one ``aecodec: error:`` line and exit 2. Errors of one input among several are
    handled by :func:`.output.guard` instead, so that the others still run."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except AecodecError as exc:
            fail(str(exc))


app = typer.Typer(cls=_Commands, add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  rich_markup_mode=None,
                  help="aecodec — a learned image codec (encode, decode, info, train).")
for _command in (encode, decode, info, upgrade, compare, inspect, rank, train, export):  # the order --help lists them in
    app.command()(_command)
app.add_typer(batch_app, name="batch")


def _version(value: bool) -> None:
    if not value:
        return
    from importlib.metadata import PackageNotFoundError, version

    from .. import __version__
    from ..codec.format import VERSION

    def v(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "missing"

    typer.echo(f"aecodec {__version__} (container format {VERSION}; onnxruntime {v('onnxruntime')}, "
               f"constriction {v('constriction')}, Pillow {v('pillow')}; torch {v('torch')}, "
               f"compressai {v('compressai')})")
    raise typer.Exit()


@app.callback()
def _main(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                                help="Show the versions and exit.")] = False) -> None:
    """aecodec — a learned image codec (encode, decode, info, train)."""


def main(args: Optional[list[str]] = None) -> int:
    """The command line in-process: :data:`app`, with click's usage errors as one ``aecodec: error:``
    line (exit 2); returns the exit status."""
    args = sys.argv[1:] if args is None else list(args)
    try:
        return typer.main.get_command(app).main(args, prog_name="aecodec", standalone_mode=False) or 0
    except ClickException as exc:
        if not args:  # no_args_is_help: the help, as click shows it
            exc.show()
        else:
            ctx = getattr(exc, "ctx", None)
            error(exc.format_message() + (f" (see {ctx.command_path} --help)" if ctx else ""))
        return exc.exit_code
    except typer.Abort:
        error("aborted")
        return 1


def run() -> NoReturn:
    """The console script and ``python -m aecodec``: :func:`main`, then the process ends without
    tearing the interpreter down. With torch loaded, Python's finalisation (clearing thousands of
    modules, the libraries' destructors) is slow — a large share of a whole decode — and does
    nothing a finished command needs: its outputs are already written, synced and renamed into
    place; atexit handlers still run and stdout / stderr are flushed. In-process callers (tests,
    other programs) use :func:`main`, which returns."""
    code = main()
    import atexit

    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:  # None: started with that stream closed
                stream.flush()
        except (OSError, ValueError):  # a closed pipe (| head): nothing more can reach it
            pass
    os._exit(code)

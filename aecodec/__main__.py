"""``python -m aecodec`` — the command line (see :mod:`aecodec.cli`)."""

from .cli import run

run()

"""The codec's error for bad input, and the one-line rule its messages follow."""

from __future__ import annotations

__all__ = ["CodecError", "one_line"]


class CodecError(ValueError):
    """Bad input to the codec (unreadable image, bad option); one-line message."""


def one_line(exc: BaseException) -> str:
    """The first line of an exception's message (its class name when it has none)."""
    text = str(exc).strip().splitlines()
    return text[0] if text else exc.__class__.__name__
